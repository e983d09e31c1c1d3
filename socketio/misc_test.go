package socketio

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"

	"github.com/tradewire/tradewire/adapter"
	"github.com/tradewire/tradewire/internal/testutil/poll"
	"github.com/tradewire/tradewire/parser"
)

// memStore is an in-process adapter.RecoveryStore: it records session
// snapshots and hands out offsets, standing in for a shared store.
type memStore struct {
	mu        sync.Mutex
	n         int
	snapshots map[string][]adapter.SessionState
}

func (m *memStore) Record(string, *parser.Packet, *adapter.BroadcastOptions) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n++
	return "off-" + string(rune('a'+m.n%26)), nil
}

func (m *memStore) PersistSession(_ string, s *adapter.SessionState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.snapshots == nil {
		m.snapshots = map[string][]adapter.SessionState{}
	}
	m.snapshots[s.PID] = append(m.snapshots[s.PID], *s)
}

func (m *memStore) RestoreSession(string, string, string) (*adapter.SessionState, error) {
	return nil, adapter.ErrNotRecoverable
}

func (m *memStore) CatchUp(string, []string, string) []*parser.Packet { return nil }

func (m *memStore) count(pid string) (int, adapter.SessionState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.snapshots[pid]
	if len(s) == 0 {
		return 0, adapter.SessionState{}
	}
	return len(s), s[len(s)-1]
}

// With a shared recovery store, live sockets are snapshotted when they
// connect, join, leave or change their data, and refreshed periodically.
func TestSharedRecoverySnapshots(t *testing.T) {
	store := &memStore{}
	srv := newTestServer(t, Options{
		Recovery: RecoveryOptions{MaxDisconnection: 300 * time.Millisecond},
		Adapter:  adapter.MemoryFactory(adapter.Options{RecoveryWindow: 300 * time.Millisecond, Store: store}),
	})
	ss := collectSockets(srv.io.Of("/"))
	c := srv.dial("")
	_, sid, pid := connectRecovering(t, c, "")
	s := ss.get(t, sid)
	n0, st := store.count(pid)
	if n0 < 1 || st.SID != sid {
		t.Fatalf("no snapshot at connect: %d %+v", n0, st)
	}
	s.Join("room")
	s.SetData(map[string]any{"k": "v"})
	n1, st := store.count(pid)
	if n1 < n0+2 || !slices.Contains(st.Rooms, "room") || string(st.Data) != `{"k":"v"}` {
		t.Fatalf("snapshots after join/data: %d %+v", n1, st)
	}
	s.Leave("room")
	if _, st := store.count(pid); slices.Contains(st.Rooms, "room") {
		t.Fatalf("snapshot after leave: %+v", st)
	}
	// Refreshed every third of the window while connected.
	base, _ := store.count(pid)
	poll.Until(t, "periodic refresh", func() bool { n, _ := store.count(pid); return n >= base+2 })
	// Offsets come from the store.
	_ = srv.io.Of("/").Emit("x")
	if p := c.next(); !strings.HasPrefix(string(p.Data), `["x","off-`) {
		t.Fatalf("offset from the store: %s", p.Data)
	}
}

func TestSmallAPIs(t *testing.T) {
	if (&ConnectError{Message: "nope"}).Error() != "nope" {
		t.Fatal("ConnectError.Error")
	}
	srv := newTestServer(t, Options{})
	clients, socks := roomFixture(t, srv)
	nsp := srv.io.Of("/")
	// In is To; Strict on a single node delivers as usual.
	if err := nsp.In("r1").Strict().Emit("strict"); err != nil {
		t.Fatal(err)
	}
	expectRecipients(t, clients, socks, "strict", "a", "b")
	if err := (&BroadcastOperator{nsp: nsp}).In("r2").Emit("in"); err != nil {
		t.Fatal(err)
	}
	expectRecipients(t, clients, socks, "in", "b")

	// CloseTransport ends the connection without a namespace DISCONNECT.
	r := onDisconnect(socks["c"])
	socks["c"].CloseTransport(ReasonServerShuttingDown)
	if reason := r.wait(t); reason != ReasonServerShuttingDown {
		t.Fatalf("reason %q", reason)
	}
	clients["c"].waitClosed()
	select {
	case p := <-clients["c"].packets:
		t.Fatalf("packet before the close: %s", p.AppendText(nil))
	default:
	}
}

// Repeated request headers are joined with ", " in fetchSockets' handshake.
func TestInfoJoinsRepeatedHeaders(t *testing.T) {
	srv := newTestServer(t, Options{})
	ss := collectSockets(srv.io.Of("/"))
	d := gws.Dialer{HandshakeTimeout: 5 * time.Second}
	hdr := http.Header{"X-Multi": {"one", "two", "three"}}
	ws, resp, err := d.Dial("ws://"+srv.host+"/socket.io/?EIO=4&transport=websocket&a=1&a=2", hdr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	defer ws.Close()
	_, _, _ = ws.ReadMessage()
	_ = ws.WriteMessage(gws.TextMessage, []byte("40"))
	var s *Socket
	poll.Until(t, "socket", func() bool {
		ss.mu.Lock()
		defer ss.mu.Unlock()
		for _, v := range ss.m {
			s = v
		}
		return s != nil
	})
	info := s.Info()
	if info.Handshake.Headers["x-multi"] != "one, two, three" || info.Handshake.Query["a"] != "1, 2" {
		t.Fatalf("headers %v query %v", info.Handshake.Headers["x-multi"], info.Handshake.Query)
	}
}

// Info, which fetchSockets sends to other nodes, withholds credentials.
func TestInfoWithholdsCredentials(t *testing.T) {
	srv := newTestServer(t, Options{})
	ss := collectSockets(srv.io.Of("/"))
	d := gws.Dialer{HandshakeTimeout: 5 * time.Second}
	hdr := http.Header{"Cookie": {"connect.sid=s%3Asecret.sig"}, "Authorization": {"Bearer k"}, "User-Agent": {"ua"}}
	ws, resp, err := d.Dial("ws://"+srv.host+"/socket.io/?EIO=4&transport=websocket&sessionID=q&x=1", hdr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	defer ws.Close()
	_, _, _ = ws.ReadMessage()
	_ = ws.WriteMessage(gws.TextMessage, []byte(`40{"sessionID":"s:secret.sig","pid":"p","offset":"o","room":"r"}`))
	var s *Socket
	poll.Until(t, "socket", func() bool {
		ss.mu.Lock()
		defer ss.mu.Unlock()
		for _, v := range ss.m {
			s = v
		}
		return s != nil
	})
	hs := s.Info().Handshake
	for _, k := range []string{"cookie", "authorization"} {
		if _, ok := hs.Headers[k]; ok {
			t.Errorf("header %s in Info", k)
		}
	}
	for _, k := range []string{"sessionID", "pid", "offset"} {
		if _, ok := hs.Auth[k]; ok {
			t.Errorf("auth %s in Info", k)
		}
	}
	if _, ok := hs.Query["sessionID"]; ok || hs.Query["x"] != "1" || hs.Auth["room"] != "r" || hs.Headers["user-agent"] != "ua" {
		t.Errorf("info headers %v query %v auth %v", hs.Headers, hs.Query, hs.Auth)
	}
	if s.Auth()["sessionID"] != "s:secret.sig" {
		t.Error("the local auth lost the session id")
	}
}

// rawWS opens a websocket session and reads the Engine.IO open packet.
func rawWS(t *testing.T, srv *testServer) *gws.Conn {
	t.Helper()
	ws, resp, err := gws.DefaultDialer.Dial("ws://"+srv.host+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	t.Cleanup(func() { ws.Close() })
	if _, _, err := ws.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	return ws
}

// readUntilClosed reads frames until the server closes, or fails after 3 s.
func readUntilClosed(t *testing.T, ws *gws.Conn) []string {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(3 * time.Second))
	var got []string
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				t.Fatalf("still open after 3 s; frames %q", got)
			}
			return got
		}
		got = append(got, string(msg))
	}
}

// Binary attachments are never buffered for a client that has not connected.
func TestNoAttachmentsBeforeConnect(t *testing.T) {
	srv := newTestServer(t, Options{})
	ws := rawWS(t, srv)
	if err := ws.WriteMessage(gws.TextMessage, []byte(`451-["upload",{"_placeholder":true,"num":0}]`)); err != nil {
		t.Fatal(err)
	}
	readUntilClosed(t, ws)
}

// A refused client cannot retry CONNECT forever on one session.
func TestConnectAttemptsBounded(t *testing.T) {
	srv := newTestServer(t, Options{})
	var calls atomic.Int32
	srv.io.Of("/").Use(func(context.Context, *Socket) error {
		calls.Add(1)
		return &ConnectError{Message: "no"}
	})
	ws := rawWS(t, srv)
	for i := 0; i < maxConnectAttempts+3; i++ {
		_ = ws.WriteMessage(gws.TextMessage, []byte("40"))
	}
	got := readUntilClosed(t, ws)
	if n := calls.Load(); n != maxConnectAttempts {
		t.Fatalf("middleware ran %d times, want %d (frames %q)", n, maxConnectAttempts, got)
	}
}

// One string holds a socket's id and pid: new sockets' pids start with the
// id; a restored socket's pid (from any server) follows it.
func TestSocketIDsInOneString(t *testing.T) {
	var s Socket
	s.setIDs("sock-1", "")
	if s.ID() != "sock-1" || s.pid() != "" {
		t.Fatalf("recovery off: id %q pid %q", s.ID(), s.pid())
	}
	s.setIDs("sock-2", "node-made-pid")
	if s.ID() != "sock-2" || s.pid() != "node-made-pid" {
		t.Fatalf("restored: id %q pid %q", s.ID(), s.pid())
	}
	s.setNewPID("sock-3")
	if pid := s.pid(); s.ID() != "sock-3" || !strings.HasPrefix(pid, "sock-3.") || len(pid) <= len("sock-3.") {
		t.Fatalf("new: id %q pid %q", s.ID(), s.pid())
	}
}
