package engineio

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"
)

// msg is a message a session received.
type msg struct {
	data   string
	binary bool
}

// sessRec records one session's messages and close reason.
type sessRec struct {
	s      *Session
	msgs   chan msg
	closed chan string
}

func (r *sessRec) next(t testing.TB) msg {
	t.Helper()
	select {
	case m := <-r.msgs:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message")
	}
	return msg{}
}

func (r *sessRec) waitClosed(t testing.TB) string {
	t.Helper()
	select {
	case reason := <-r.closed:
		return reason
	case <-time.After(10 * time.Second):
		t.Fatal("session not closed")
	}
	return ""
}

func (r *sessRec) isClosed() bool {
	select {
	case reason := <-r.closed:
		r.closed <- reason
		return true
	default:
		return false
	}
}

// countingObserver counts Observer calls.
type countingObserver struct {
	mu       sync.Mutex
	opened   map[string]int
	closed   map[string]int
	upgraded int
	rejected map[int]int
}

func newCountingObserver() *countingObserver {
	return &countingObserver{opened: map[string]int{}, closed: map[string]int{}, rejected: map[int]int{}}
}

func (o *countingObserver) SessionOpened(tr string) { o.mu.Lock(); o.opened[tr]++; o.mu.Unlock() }
func (o *countingObserver) SessionClosed(tr, reason string) {
	o.mu.Lock()
	o.closed[tr+"/"+reason]++
	o.mu.Unlock()
}
func (o *countingObserver) SessionUpgraded()        { o.mu.Lock(); o.upgraded++; o.mu.Unlock() }
func (o *countingObserver) HandshakeRejected(c int) { o.mu.Lock(); o.rejected[c]++; o.mu.Unlock() }
func (o *countingObserver) get(f func(o *countingObserver) int) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return f(o)
}

// harness is an Engine.IO server at /engine.io/ on a free port.
type harness struct {
	t      testing.TB
	srv    *Server
	hs     *httptest.Server
	host   string
	client *http.Client
	echo   bool

	mu   sync.Mutex
	recs map[string]*sessRec
}

func newHarness(t testing.TB, opts Options) *harness {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	h := &harness{t: t, srv: NewServer(opts), recs: map[string]*sessRec{}}
	h.srv.OnConnection = func(s *Session) {
		r := &sessRec{s: s, msgs: make(chan msg, 4096), closed: make(chan string, 1)}
		s.OnMessage(func(data []byte, binary bool) {
			if h.echo {
				_ = s.Send(NewMessage(append([]byte(nil), data...), binary))
			}
			select {
			case r.msgs <- msg{string(data), binary}:
			default:
			}
		})
		s.OnClose(func(reason string) { r.closed <- reason })
		h.mu.Lock()
		h.recs[s.ID()] = r
		h.mu.Unlock()
	}
	mux := http.NewServeMux()
	mux.Handle("/engine.io/", h.srv)
	h.hs = httptest.NewServer(mux)
	h.host = h.hs.Listener.Addr().String()
	h.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 20 * time.Second}
	t.Cleanup(func() {
		h.srv.Close()
		h.hs.CloseClientConnections()
		h.hs.Close()
		h.client.CloseIdleConnections()
	})
	return h
}

func (h *harness) rec(sid string) *sessRec {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.recs[sid]
	if r == nil {
		h.t.Fatalf("no session %q", sid)
	}
	return r
}

func (h *harness) url(query string) string { return "http://" + h.host + "/engine.io/?" + query }

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   string
}

func (h *harness) do(method, query string, body io.Reader, hdr http.Header) response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url(query), body)
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, query, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("read body: %v", err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

func (h *harness) get(sid string) response {
	h.t.Helper()
	return h.do(http.MethodGet, "EIO=4&transport=polling&sid="+sid, nil, nil)
}

func (h *harness) post(sid, body string) response {
	h.t.Helper()
	return h.do(http.MethodPost, "EIO=4&transport=polling&sid="+sid, strings.NewReader(body), http.Header{"Content-Type": {"text/plain;charset=UTF-8"}})
}

// asyncGet starts a long-poll GET.
func (h *harness) asyncGet(sid string) <-chan response {
	ch := make(chan response, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, h.url("EIO=4&transport=polling&sid="+sid), nil)
		resp, err := h.client.Do(req)
		if err != nil {
			ch <- response{status: -1, body: err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ch <- response{resp.StatusCode, resp.Header, string(b)}
	}()
	return ch
}

func wait(t testing.TB, ch <-chan response) response {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("request did not complete")
	}
	return response{}
}

// openInfo is the decoded open packet.
type openInfo struct {
	SID          string   `json:"sid"`
	Upgrades     []string `json:"upgrades"`
	PingInterval int      `json:"pingInterval"`
	PingTimeout  int      `json:"pingTimeout"`
	MaxPayload   int      `json:"maxPayload"`
}

func parseOpen(t testing.TB, body string) openInfo {
	t.Helper()
	if !strings.HasPrefix(body, "0{") {
		t.Fatalf("not an open packet: %q", body)
	}
	var o openInfo
	if err := json.Unmarshal([]byte(body[1:]), &o); err != nil {
		t.Fatalf("open packet %q: %v", body, err)
	}
	return o
}

// handshake opens a polling session and returns its sid.
func (h *harness) handshake() string {
	h.t.Helper()
	r := h.do(http.MethodGet, "EIO=4&transport=polling", nil, nil)
	if r.status != http.StatusOK {
		h.t.Fatalf("handshake: %d %s", r.status, r.body)
	}
	return parseOpen(h.t, r.body).SID
}

// dialWS opens a websocket to the server.
func (h *harness) dialWS(query string, hdr http.Header) (*gws.Conn, *http.Response, error) {
	d := gws.Dialer{HandshakeTimeout: 5 * time.Second}
	return d.Dial("ws://"+h.host+"/engine.io/?"+query, hdr)
}

func (h *harness) mustDialWS(query string) *gws.Conn {
	h.t.Helper()
	c, resp, err := h.dialWS(query, nil)
	if err != nil {
		h.t.Fatalf("websocket %s: %v", query, err)
	}
	resp.Body.Close()
	h.t.Cleanup(func() { c.Close() })
	return c
}

func readWS(t testing.TB, c *gws.Conn) (int, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	typ, data, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("websocket read: %v", err)
	}
	return typ, string(data)
}

// readWSSkipPings reads the next frame that is not a heartbeat ping.
func readWSSkipPings(t testing.TB, c *gws.Conn) (int, string) {
	t.Helper()
	for {
		typ, s := readWS(t, c)
		if typ == gws.TextMessage && s == "2" {
			continue
		}
		return typ, s
	}
}

func writeWS(t testing.TB, c *gws.Conn, s string) {
	t.Helper()
	if err := c.WriteMessage(gws.TextMessage, []byte(s)); err != nil {
		t.Fatalf("websocket write: %v", err)
	}
}

// expectWSClosed reads until the server ends the connection.
func expectWSClosed(t testing.TB, c *gws.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
			t.Fatal("websocket still open")
		}
		return
	}
}

// settleGoroutines waits until the goroutine count drops to at most n.
func settleGoroutines(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := runtime.NumGoroutine()
		if got <= n {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines: %d, want at most %d\n%s", got, n, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var _ = bytes.Equal
var _ = context.Background
var _ = url.Values{}
