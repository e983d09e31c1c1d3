package socketio

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"

	"github.com/tradewire/tradewire/internal/testutil/poll"
	"github.com/tradewire/tradewire/parser"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testServer is a Socket.IO server at /socket.io/ on a free port.
type testServer struct {
	t    testing.TB
	io   *Server
	hs   *httptest.Server
	host string
}

func newTestServer(t testing.TB, opts Options) *testServer {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	s := &testServer{t: t, io: NewServer(opts)}
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", s.io)
	s.hs = httptest.NewServer(mux)
	s.host = s.hs.Listener.Addr().String()
	t.Cleanup(func() {
		_ = s.io.Close()
		s.hs.CloseClientConnections()
		s.hs.Close()
	})
	return s
}

// wsClient is a minimal Socket.IO client over a websocket: it answers
// Engine.IO pings and decodes Socket.IO packets (binary included).
type wsClient struct {
	t       testing.TB
	ws      *gws.Conn
	eioSID  string
	wmu     sync.Mutex
	packets chan *parser.Packet
	errs    chan error
	closed  chan struct{}
}

func (s *testServer) dial(query string) *wsClient {
	s.t.Helper()
	c := s.dialNoOpen(query)
	return c
}

func (s *testServer) dialNoOpen(query string) *wsClient {
	s.t.Helper()
	d := gws.Dialer{HandshakeTimeout: 5 * time.Second}
	u := "ws://" + s.host + "/socket.io/?EIO=4&transport=websocket"
	if query != "" {
		u += "&" + query
	}
	ws, resp, err := d.Dial(u, nil)
	if err != nil {
		s.t.Fatalf("dial: %v", err)
	}
	resp.Body.Close()
	c := &wsClient{t: s.t, ws: ws, packets: make(chan *parser.Packet, 10000), errs: make(chan error, 1), closed: make(chan struct{})}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, open, err := ws.ReadMessage()
	if err != nil || len(open) == 0 || open[0] != '0' {
		s.t.Fatalf("open packet: %q %v", open, err)
	}
	var o struct{ SID string }
	_ = json.Unmarshal(open[1:], &o)
	c.eioSID = o.SID
	_ = ws.SetReadDeadline(time.Time{})
	go c.readLoop()
	s.t.Cleanup(c.close)
	return c
}

func (c *wsClient) close() { _ = c.ws.Close() }

func (c *wsClient) readLoop() {
	defer close(c.closed)
	var dec parser.Decoder
	for {
		typ, data, err := c.ws.ReadMessage()
		if err != nil {
			c.errs <- err
			return
		}
		var p *parser.Packet
		if typ == gws.BinaryMessage {
			p, err = dec.DecodeBinary(data)
		} else {
			if len(data) == 1 && data[0] == '2' {
				c.sendRaw("3")
				continue
			}
			if len(data) == 0 || data[0] != '4' {
				continue
			}
			p, err = dec.DecodeText(data[1:])
		}
		if err != nil {
			c.errs <- err
			return
		}
		if p != nil {
			c.packets <- p
		}
	}
}

// sendRaw sends one Engine.IO text packet.
func (c *wsClient) sendRaw(s string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.WriteMessage(gws.TextMessage, []byte(s))
}

// send sends one Socket.IO packet (text, then attachments).
func (c *wsClient) send(text string, attachments ...[]byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(gws.TextMessage, []byte("4"+text)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
	for _, a := range attachments {
		if err := c.ws.WriteMessage(gws.BinaryMessage, a); err != nil {
			c.t.Fatalf("write: %v", err)
		}
	}
}

// next returns the next Socket.IO packet.
func (c *wsClient) next() *parser.Packet {
	c.t.Helper()
	select {
	case p := <-c.packets:
		return p
	case err := <-c.errs:
		c.errs <- err
		c.t.Fatalf("connection ended while waiting for a packet: %v", err)
	case <-time.After(10 * time.Second):
		c.t.Fatal("no packet")
	}
	return nil
}

// nextText returns the next packet's text form.
func (c *wsClient) nextText() string {
	c.t.Helper()
	return string(c.next().AppendText(nil))
}

// none checks that no packet arrives for d.
func (c *wsClient) none(d time.Duration) {
	c.t.Helper()
	select {
	case p := <-c.packets:
		c.t.Fatalf("unexpected packet %s", p.AppendText(nil))
	case <-time.After(d):
	}
}

// waitClosed waits until the server ends the connection.
func (c *wsClient) waitClosed() {
	c.t.Helper()
	select {
	case <-c.closed:
	case <-time.After(10 * time.Second):
		c.t.Fatal("connection not closed")
	}
}

// connect joins nsp with auth (raw JSON or "") and returns the socket id.
func (c *wsClient) connect(nsp, auth string) string {
	c.t.Helper()
	text := "0"
	if nsp != "/" {
		text += nsp + ","
	}
	c.send(text + auth)
	p := c.next()
	if p.Type != parser.Connect || p.Nsp != nsp {
		c.t.Fatalf("CONNECT %s: got %s", nsp, p.AppendText(nil))
	}
	var r struct{ SID string }
	if err := json.Unmarshal(p.Data, &r); err != nil || r.SID == "" {
		c.t.Fatalf("CONNECT reply %s", p.Data)
	}
	return r.SID
}

// eventArgs decodes an EVENT packet's name and arguments.
func eventArgs(t testing.TB, p *parser.Packet) (string, []any) {
	t.Helper()
	v, err := parser.Unpack(p.Data, p.Attachments)
	if err != nil {
		t.Fatalf("unpack %s: %v", p.Data, err)
	}
	arr := v.([]any)
	name, _ := arr[0].(string)
	return name, arr[1:]
}

// sockets collects connected sockets by id.
type sockets struct {
	mu sync.Mutex
	m  map[string]*Socket
	ch chan *Socket
}

func collectSockets(n *Namespace) *sockets {
	ss := &sockets{m: map[string]*Socket{}, ch: make(chan *Socket, 20000)}
	n.OnConnection(func(s *Socket) {
		ss.mu.Lock()
		ss.m[s.ID()] = s
		ss.mu.Unlock()
		ss.ch <- s
	})
	return ss
}

func (ss *sockets) get(t testing.TB, id string) *Socket {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ss.mu.Lock()
		s := ss.m[id]
		ss.mu.Unlock()
		if s != nil {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("socket %s not connected", id)
		}
		time.Sleep(time.Millisecond)
	}
}

// getRecovered returns the restored socket id: a restore reuses the id, so
// until the new socket's connection handler ran, get would return the old one.
func (ss *sockets) getRecovered(t testing.TB, id string) *Socket {
	t.Helper()
	var s *Socket
	poll.Until(t, "restored socket "+id, func() bool {
		ss.mu.Lock()
		s = ss.m[id]
		ss.mu.Unlock()
		return s != nil && s.Recovered()
	})
	return s
}

// reasons records disconnect reasons.
type reasons struct {
	ch chan string
}

func onDisconnect(s *Socket) *reasons {
	r := &reasons{ch: make(chan string, 4)}
	s.OnDisconnect(func(reason string) { r.ch <- reason })
	return r
}

func (r *reasons) wait(t testing.TB) string {
	t.Helper()
	select {
	case s := <-r.ch:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no disconnect")
	}
	return ""
}

var _ = strings.HasPrefix
