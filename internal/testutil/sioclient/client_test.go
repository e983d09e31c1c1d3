package sioclient

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tradewire/tradewire/engineio"
	"github.com/tradewire/tradewire/socketio"
)

// server is a real Socket.IO server mounted at path on httptest.
type server struct {
	URL string
	sio *socketio.Server
	nsp *socketio.Namespace

	mu       sync.Mutex
	sockets  map[string]*socketio.Socket
	received []string // "event:args-json" in arrival order
	auth     []map[string]any
	cookies  []string
	connCh   chan *socketio.Socket
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startServer(t *testing.T, opts socketio.Options, path string) *server {
	t.Helper()
	opts.Logger = quiet()
	opts.Engine.Logger = quiet()
	s := &server{sio: socketio.NewServer(opts), sockets: map[string]*socketio.Socket{}, connCh: make(chan *socketio.Socket, 64)}
	s.nsp = s.sio.Of("/")
	s.nsp.Use(func(_ context.Context, sock *socketio.Socket) error {
		a := sock.Auth()
		s.mu.Lock()
		s.auth = append(s.auth, a)
		s.cookies = append(s.cookies, sock.Header().Get("Cookie"))
		s.mu.Unlock()
		if a["refuse"] == true {
			return &socketio.ConnectError{Message: "not allowed", Data: map[string]any{"code": "FORBIDDEN"}}
		}
		return nil
	})
	s.nsp.OnConnection(func(sock *socketio.Socket) {
		s.mu.Lock()
		s.sockets[sock.ID()] = sock
		s.mu.Unlock()
		sock.On("echo", func(sock *socketio.Socket, e *socketio.Event) {
			raw, _ := e.RawArgs()
			s.record("echo", raw)
			vals, _ := e.Values()
			if e.HasAck() {
				_ = e.Ack(vals...)
			}
		})
		sock.On("silent", func(_ *socketio.Socket, e *socketio.Event) {
			raw, _ := e.RawArgs()
			s.record("silent", raw)
		})
		sock.On("kick", func(sock *socketio.Socket, _ *socketio.Event) { sock.Disconnect(false) })
		s.connCh <- sock
	})
	mux := http.NewServeMux()
	mux.Handle(path, s.sio)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		_ = s.sio.Close()
		hs.Close()
	})
	s.URL = hs.URL
	return s
}

func (s *server) record(name string, raw []json.RawMessage) {
	b, _ := json.Marshal(raw)
	s.mu.Lock()
	s.received = append(s.received, name+":"+string(b))
	s.mu.Unlock()
}

func (s *server) waitReceived(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		got := append([]string(nil), s.received...)
		s.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("server received %d events, want %d: %v", len(got), n, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *server) socket(t *testing.T) *socketio.Socket {
	t.Helper()
	select {
	case sock := <-s.connCh:
		return sock
	case <-time.After(5 * time.Second):
		t.Fatal("no connection on the server")
		return nil
	}
}

func dial(t *testing.T, base string, opts Options) *Client {
	t.Helper()
	c, err := Dial(base, opts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDialConnectsWithAuthAndHeaders(t *testing.T) {
	s := startServer(t, socketio.Options{}, "/socket.io/")
	h := http.Header{}
	h.Set("Cookie", "connect.sid=abc")
	c := dial(t, s.URL, Options{Header: h, Auth: map[string]any{"token": "t1", "n": 2}})
	sock := s.socket(t)
	if c.ID() == "" || c.ID() != sock.ID() {
		t.Fatalf("client id %q, server socket id %q", c.ID(), sock.ID())
	}
	if c.PID() != "" || c.LastOffset() != "" {
		t.Fatalf("pid %q offset %q without recovery", c.PID(), c.LastOffset())
	}
	s.mu.Lock()
	auth, cookie := s.auth[0], s.cookies[0]
	s.mu.Unlock()
	if auth["token"] != "t1" || auth["n"] != float64(2) || cookie != "connect.sid=abc" {
		t.Fatalf("server saw auth %v cookie %q", auth, cookie)
	}
	if c.Closed() {
		t.Fatal("closed right after dial")
	}

	// Without auth the CONNECT has no payload.
	dial(t, s.URL, Options{})
	s.socket(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.auth[1] != nil {
		t.Fatalf("auth %v, want none", s.auth[1])
	}
}

func TestDialCustomPathAndDialer(t *testing.T) {
	s := startServer(t, socketio.Options{Engine: engineio.Options{}}, "/custom/")
	var dialed bool
	d := &websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		dialed = true
		return net.Dial(network, addr)
	}}
	c := dial(t, s.URL+"/ignored/path?x=1", Options{Path: "/custom/", Dialer: d})
	if c.ID() == "" || !dialed {
		t.Fatalf("id %q, custom dialer used %v", c.ID(), dialed)
	}
	// The default path is not served here.
	_, err := Dial(s.URL, Options{Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Fatalf("dial on the wrong path: %v", err)
	}
}

func TestDialRefused(t *testing.T) {
	s := startServer(t, socketio.Options{}, "/socket.io/")
	_, err := Dial(s.URL, Options{Auth: map[string]any{"refuse": true}})
	var ce *ConnectError
	if !errors.As(err, &ce) || !errors.Is(err, ErrConnectRefused) {
		t.Fatalf("want a ConnectError matching ErrConnectRefused, got %v", err)
	}
	if ce.Message != "not allowed" || ce.Data["code"] != "FORBIDDEN" || ce.Error() != "connect_error: not allowed" {
		t.Fatalf("connect error %+v %q", ce, ce.Error())
	}
}

func TestDialErrors(t *testing.T) {
	if _, err := Dial("http://[::1", Options{}); err == nil {
		t.Fatal("no error for an unparsable URL")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if _, err := Dial("http://"+addr, Options{Timeout: time.Second}); err == nil || !strings.Contains(err.Error(), "sioclient: dial:") || strings.Contains(err.Error(), "HTTP") {
		t.Fatalf("dial to a closed port: %v", err)
	}
}

// fakeServer upgrades and runs script on the server side of the websocket.
func fakeServer(t *testing.T, script func(c *websocket.Conn)) string {
	t.Helper()
	up := websocket.Upgrader{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		script(c)
	}))
	t.Cleanup(hs.Close)
	return hs.URL
}

const openPacket = `0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`

func TestDialProtocolFailures(t *testing.T) {
	t.Run("no open packet", func(t *testing.T) {
		u := fakeServer(t, func(c *websocket.Conn) { _ = c.WriteMessage(websocket.TextMessage, []byte("6")) })
		if _, err := Dial(u, Options{Timeout: time.Second}); err == nil || !strings.Contains(err.Error(), "no open packet") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("closed before open", func(t *testing.T) {
		u := fakeServer(t, func(c *websocket.Conn) {})
		if _, err := Dial(u, Options{Timeout: time.Second}); err == nil || !strings.Contains(err.Error(), "no open packet") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("no connect reply", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		u := fakeServer(t, func(c *websocket.Conn) {
			_ = c.WriteMessage(websocket.TextMessage, []byte(openPacket))
			<-release
		})
		start := time.Now()
		_, err := Dial(u, Options{Timeout: 200 * time.Millisecond})
		if err == nil || !strings.Contains(err.Error(), "connect timeout") {
			t.Fatalf("got %v", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("timeout of 200ms took %v", d)
		}
	})
	t.Run("closed during connect", func(t *testing.T) {
		u := fakeServer(t, func(c *websocket.Conn) {
			_ = c.WriteMessage(websocket.TextMessage, []byte(openPacket))
			_, _, _ = c.ReadMessage() // the CONNECT
		})
		if _, err := Dial(u, Options{Timeout: 2 * time.Second}); err == nil || !strings.Contains(err.Error(), "closed during connect") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("ignores noise", func(t *testing.T) {
		// Empty frames, non-message packets, empty messages, unknown
		// packet types and malformed events are ignored.
		u := fakeServer(t, func(c *websocket.Conn) {
			_ = c.WriteMessage(websocket.TextMessage, []byte(openPacket))
			_, _, _ = c.ReadMessage()
			for _, f := range []string{"", "6", "4", "45x", `42not json`, `42[]`, `40{"sid":"s1"}`, `42["after",1]`} {
				_ = c.WriteMessage(websocket.TextMessage, []byte(f))
			}
			_, _, _ = c.ReadMessage()
		})
		c, err := Dial(u, Options{Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ev, err := c.WaitEvent("after", 2*time.Second)
		if err != nil || string(ev.Args[0]) != "1" {
			t.Fatalf("event %+v, %v", ev, err)
		}
		if n := len(c.Events()); n != 1 {
			t.Fatalf("%d events recorded, want 1: %+v", n, c.Events())
		}
	})
}

func TestEmitAndAcks(t *testing.T) {
	s := startServer(t, socketio.Options{}, "/socket.io/")
	c := dial(t, s.URL, Options{})
	s.socket(t)

	if err := c.Emit("silent", "a", 1, map[string]any{"k": true}); err != nil {
		t.Fatal(err)
	}
	if got := s.waitReceived(t, 1); got[0] != `silent:["a",1,{"k":true}]` {
		t.Fatalf("server got %q", got[0])
	}
	for i := range 3 {
		ack, err := c.EmitWithAck(2*time.Second, "echo", "x", i)
		if err != nil {
			t.Fatal(err)
		}
		if len(ack) != 2 || string(ack[0]) != `"x"` || string(ack[1]) != string(rune('0'+i)) {
			t.Fatalf("ack %d: %s", i, ack)
		}
	}
	// No ack: timeout error naming the event.
	start := time.Now()
	_, err := c.EmitWithAck(150*time.Millisecond, "silent")
	if err == nil || !strings.Contains(err.Error(), `no ack for "silent"`) {
		t.Fatalf("got %v", err)
	}
	if time.Since(start) < 150*time.Millisecond {
		t.Fatal("returned before the timeout")
	}
	// Arguments that cannot be encoded.
	if err := c.Emit("echo", func() {}); err == nil {
		t.Fatal("Emit encoded a func")
	}
	if _, err := c.EmitWithAck(time.Second, "echo", make(chan int)); err == nil {
		t.Fatal("EmitWithAck encoded a channel")
	}
	// Raw frames reach the server as they are.
	if err := c.WriteRaw(`42["silent","raw"]`); err != nil {
		t.Fatal(err)
	}
	if got := s.waitReceived(t, 6); got[5] != `silent:["raw"]` {
		t.Fatalf("server got %v", got)
	}
	// Writes after Close fail.
	c.Close()
	if _, err := c.EmitWithAck(time.Second, "echo"); err == nil {
		t.Fatal("EmitWithAck succeeded on a closed connection")
	}
	if err := c.Emit("echo"); err == nil {
		t.Fatal("Emit succeeded on a closed connection")
	}
}

func TestReceiveEventsAndServerAcks(t *testing.T) {
	s := startServer(t, socketio.Options{}, "/socket.io/")
	c := dial(t, s.URL, Options{})
	sock := s.socket(t)

	_ = sock.Emit("quote", map[string]any{"symbol": "AAPL"})
	_ = sock.Emit("other")
	_ = sock.Emit("quote", map[string]any{"symbol": "MSFT"}, 2)
	ev, err := c.WaitEventN("quote", 2, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Args) != 2 || string(ev.Args[0]) != `{"symbol":"MSFT"}` || string(ev.Args[1]) != "2" {
		t.Fatalf("second quote %+v", ev)
	}
	first, err := c.WaitEvent("quote", time.Second)
	if err != nil || string(first.Args[0]) != `{"symbol":"AAPL"}` {
		t.Fatalf("first quote %+v, %v", first, err)
	}
	if all := c.Events(); len(all) != 3 || all[1].Name != "other" || len(all[1].Args) != 0 {
		t.Fatalf("events %+v", all)
	}
	if n := len(c.EventsNamed("quote")); n != 2 {
		t.Fatalf("%d quotes", n)
	}
	if n := len(c.EventsNamed("none")); n != 0 {
		t.Fatalf("%d events named none", n)
	}
	// Events returns a copy.
	evs := c.Events()
	evs[0].Name = "changed"
	if c.Events()[0].Name != "quote" {
		t.Fatal("Events exposes the client's own slice")
	}

	// Server-side acks are answered with ["ok"].
	got := make(chan []any, 1)
	if err := sock.EmitWithAck("confirm", []any{"please"}, 2*time.Second, func(args []any, err error) {
		if err != nil {
			args = []any{err.Error()}
		}
		got <- args
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case args := <-got:
		if len(args) != 1 || args[0] != "ok" {
			t.Fatalf("server ack %v", args)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no ack from the client")
	}
	if _, err := c.WaitEvent("confirm", time.Second); err != nil {
		t.Fatal(err)
	}

	// A missing event times out with a count of what arrived.
	_, err = c.WaitEventN("quote", 3, 100*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "not received within") || !strings.Contains(err.Error(), "got 2") {
		t.Fatalf("got %v", err)
	}
}

func TestServerDisconnect(t *testing.T) {
	s := startServer(t, socketio.Options{}, "/socket.io/")
	c := dial(t, s.URL, Options{})
	s.socket(t)
	if err := c.WaitClosed(50 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "still open") {
		t.Fatalf("WaitClosed on an open connection: %v", err)
	}
	if err := c.Emit("kick"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitClosed(3 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !c.Closed() {
		t.Fatal("Closed() false after WaitClosed")
	}
	_, err := c.WaitEvent("anything", time.Second)
	if err == nil || !strings.Contains(err.Error(), "closed before") || !strings.Contains(err.Error(), "server namespace disconnect") {
		t.Fatalf("WaitEvent after disconnect: %v", err)
	}

	// A server closing the transport ends the read loop.
	c2 := dial(t, s.URL, Options{})
	sock := s.socket(t)
	sock.CloseTransport("test")
	if err := c2.WaitClosed(3 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestHeartbeat(t *testing.T) {
	s := startServer(t, socketio.Options{Engine: engineio.Options{PingInterval: 30 * time.Millisecond, PingTimeout: 60 * time.Millisecond}}, "/socket.io/")
	c := dial(t, s.URL, Options{})
	s.socket(t)
	// Pongs keep it open over many ping intervals.
	if err := c.WaitClosed(400 * time.Millisecond); err == nil {
		t.Fatal("connection closed although the client answers pings")
	}
	// Without pongs the server closes it after pingInterval+pingTimeout.
	c.SetNoPong(true)
	if err := c.WaitClosed(2 * time.Second); err != nil {
		t.Fatalf("NoPong: %v", err)
	}
}

func TestRecoveryPIDAndOffset(t *testing.T) {
	s := startServer(t, socketio.Options{Recovery: socketio.RecoveryOptions{MaxDisconnection: time.Minute}}, "/socket.io/")
	c := dial(t, s.URL, Options{})
	sock := s.socket(t)
	if c.PID() == "" {
		t.Fatal("no pid with recovery on")
	}
	if err := s.nsp.Emit("tick", 1); err != nil {
		t.Fatal(err)
	}
	ev, err := c.WaitEvent("tick", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var off string
	if len(ev.Args) != 2 || json.Unmarshal(ev.Args[1], &off) != nil || off == "" || c.LastOffset() != off {
		t.Fatalf("tick %+v, last offset %q", ev, c.LastOffset())
	}
	_ = sock.Emit("direct", "x")
	if _, err := c.WaitEvent("direct", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if c.LastOffset() == off {
		t.Fatal("offset not advanced by a later event")
	}
}
