package websocket

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

var testMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// clientFrame encodes a client frame. rsv is ORed into the first byte
// (0x70 bits); masked=false produces an illegal unmasked frame.
func clientFrame(fin bool, rsv, op byte, payload []byte, masked bool) []byte {
	b0 := op | rsv
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	var m byte
	if masked {
		m = 0x80
	}
	n := len(payload)
	switch {
	case n <= 125:
		out = append(out, m|byte(n))
	case n <= 0xFFFF:
		out = append(out, m|126, byte(n>>8), byte(n))
	default:
		out = append(out, m|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if masked {
		out = append(out, testMask[:]...)
		for i, c := range payload {
			out = append(out, c^testMask[i%4])
		}
		return out
	}
	return append(out, payload...)
}

// masked is a final, masked client frame.
func masked(op byte, payload []byte) []byte { return clientFrame(true, 0, op, payload, true) }

func closeBody(code int, reason string) []byte {
	return append([]byte{byte(code >> 8), byte(code)}, reason...)
}

// serverFrame is a frame as read by the test client.
type serverFrame struct {
	fin     bool
	op      byte
	payload []byte
}

func (f serverFrame) closeCode() int {
	if f.op != OpClose || len(f.payload) < 2 {
		return CloseNoStatus
	}
	return int(binary.BigEndian.Uint16(f.payload))
}

func readServerFrame(r io.Reader) (serverFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return serverFrame{}, err
	}
	if h[1]&0x80 != 0 {
		return serverFrame{}, errors.New("server frame is masked")
	}
	if h[0]&0x70 != 0 {
		return serverFrame{}, errors.New("server frame has reserved bits")
	}
	n := int64(h[1] & 0x7f)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(r, e[:]); err != nil {
			return serverFrame{}, err
		}
		n = int64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(r, e[:]); err != nil {
			return serverFrame{}, err
		}
		n = int64(binary.BigEndian.Uint64(e[:]))
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return serverFrame{}, err
	}
	return serverFrame{fin: h[0]&0x80 != 0, op: h[0] & 0x0f, payload: p}, nil
}

// rawClient is a websocket client over a plain TCP connection, able to send
// anything.
type rawClient struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

const testKey = "dGhlIHNhbXBsZSBub25jZQ=="

func upgradeRequest(host, path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + testKey + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
}

// dialRaw opens a connection and upgrades it; extra bytes are sent in the
// same write as the request (early data).
func dialRaw(t testing.TB, addr string, extra ...[]byte) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	req := []byte(upgradeRequest(addr, "/ws"))
	for _, e := range extra {
		req = append(req, e...)
	}
	if _, err := nc.Write(req); err != nil {
		t.Fatalf("write request: %v", err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("accept %q", got)
	}
	return &rawClient{t: t, nc: nc, br: br}
}

func (c *rawClient) send(frames ...[]byte) {
	c.t.Helper()
	var b []byte
	for _, f := range frames {
		b = append(b, f...)
	}
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *rawClient) read() serverFrame {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := readServerFrame(c.br)
	if err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	return f
}

// expectClose reads until a close frame and checks its code, then checks
// the server closes the TCP connection.
func (c *rawClient) expectClose(code int) {
	c.t.Helper()
	for {
		f := c.read()
		if f.op != OpClose {
			continue
		}
		if got := f.closeCode(); got != code {
			c.t.Fatalf("close code %d (%q), want %d", got, f.payload, code)
		}
		break
	}
	c.expectEOF()
}

func (c *rawClient) expectEOF() {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, c.br); err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		c.t.Fatalf("waiting for the server to close: %v", err)
	}
}

func isReset(err error) bool { return err != nil && strings.Contains(err.Error(), "connection reset") }

// event is what a recordingHandler saw.
type event struct {
	binary bool
	data   string
}

// recordingHandler records messages and the close, and optionally echoes.
type recordingHandler struct {
	echo    bool
	msgs    chan event
	closed  chan error
	conns   chan *Conn
	mu      sync.Mutex
	onClose int
}

func newRecordingHandler(echo bool) *recordingHandler {
	return &recordingHandler{echo: echo, msgs: make(chan event, 4096), closed: make(chan error, 1024), conns: make(chan *Conn, 1024)}
}

func (h *recordingHandler) OnMessage(c *Conn, binary bool, data []byte) {
	if h.echo {
		_ = c.WriteMessage(binary, data)
	}
	select {
	case h.msgs <- event{binary, string(data)}:
	default:
	}
}

func (h *recordingHandler) OnClose(c *Conn, err error) {
	h.mu.Lock()
	h.onClose++
	h.mu.Unlock()
	// Handlers run on the poller and flusher goroutines: never block them.
	select {
	case h.closed <- err:
	default:
	}
}

func (h *recordingHandler) closeCalls() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.onClose
}

func (h *recordingHandler) nextMsg(t testing.TB) event {
	t.Helper()
	select {
	case e := <-h.msgs:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no message")
	}
	return event{}
}

func (h *recordingHandler) waitClosed(t testing.TB) error {
	t.Helper()
	select {
	case err := <-h.closed:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("OnClose not called")
	}
	return nil
}

func (h *recordingHandler) conn(t testing.TB) *Conn {
	t.Helper()
	select {
	case c := <-h.conns:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no connection")
	}
	return nil
}

var modes = []struct {
	name string
	mode Mode
}{{"epoll", ModeEpoll}, {"goroutine", ModeGoroutine}}

// startServer serves websocket upgrades at any path with h.
func startServer(t testing.TB, opts Options, h *recordingHandler, initial ...[]byte) (*Server, string) {
	t.Helper()
	ws := NewServer(opts)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := ws.Upgrade(w, r, h, initial...)
		if err != nil {
			return
		}
		h.conns <- c
	}))
	t.Cleanup(srv.Close)
	return ws, srv.Listener.Addr().String()
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var _ = fmt.Sprintf
