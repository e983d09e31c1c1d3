package adminui

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"

	"github.com/tradewire/tradewire/internal/testutil/redistest"
	"github.com/tradewire/tradewire/internal/testutil/sioclient"
	"github.com/tradewire/tradewire/socketio"
)

var regexpDate = regexp.MustCompile(`"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"`)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// admin is a raw Socket.IO client of one namespace over websocket.
type admin struct {
	t    *testing.T
	ws   *websocket.Conn
	nsp  string
	mu   sync.Mutex
	evs  []json.RawMessage // each event as its JSON array
	raw  []string
	cond *sync.Cond
	err  error
}

func dialAdmin(t *testing.T, base, nsp string, auth map[string]any) (*admin, string, error) {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(base, "http", "ws", 1)+"/socket.io/?EIO=4&transport=websocket", http.Header{"Cookie": {"connect.sid=s%3Asecret-session"}})
	if err != nil {
		t.Fatal(err)
	}
	a := &admin{t: t, ws: ws, nsp: nsp}
	a.cond = sync.NewCond(&a.mu)
	t.Cleanup(func() { ws.Close() })
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, msg, err := ws.ReadMessage(); err != nil || msg[0] != '0' {
		t.Fatalf("open: %q %v", msg, err)
	}
	b, _ := json.Marshal(auth)
	_ = ws.WriteMessage(websocket.TextMessage, []byte("40"+nsp+","+string(b)))
	_, msg, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	s := string(msg)
	if strings.HasPrefix(s, "44"+nsp+",") {
		return nil, s[len("44"+nsp+","):], fmt.Errorf("refused")
	}
	if !strings.HasPrefix(s, "40"+nsp+",") {
		t.Fatalf("connect answer %q", s)
	}
	_ = ws.SetReadDeadline(time.Time{})
	go a.read()
	return a, s, nil
}

func (a *admin) read() {
	prefix := "42" + a.nsp + ","
	for {
		_, msg, err := a.ws.ReadMessage()
		a.mu.Lock()
		if err != nil {
			a.err = err
			a.cond.Broadcast()
			a.mu.Unlock()
			return
		}
		s := string(msg)
		a.raw = append(a.raw, s)
		if s == "2" {
			_ = a.ws.WriteMessage(websocket.TextMessage, []byte("3"))
		}
		if strings.HasPrefix(s, prefix) {
			a.evs = append(a.evs, json.RawMessage(s[len(prefix):]))
		}
		a.cond.Broadcast()
		a.mu.Unlock()
	}
}

func (a *admin) send(args ...any) {
	b, _ := json.Marshal(args)
	if err := a.ws.WriteMessage(websocket.TextMessage, []byte("42"+a.nsp+","+string(b))); err != nil {
		a.t.Fatal(err)
	}
}

// wait returns the arguments of the first event named name whose
// arguments satisfy ok.
func (a *admin) wait(name string, ok func(args []json.RawMessage) bool) []json.RawMessage {
	a.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	timer := time.AfterFunc(10*time.Second, func() { a.mu.Lock(); a.cond.Broadcast(); a.mu.Unlock() })
	defer timer.Stop()
	a.mu.Lock()
	defer a.mu.Unlock()
	for {
		for _, e := range a.evs {
			var arr []json.RawMessage
			_ = json.Unmarshal(e, &arr)
			var n string
			if len(arr) > 0 && json.Unmarshal(arr[0], &n) == nil && n == name && (ok == nil || ok(arr[1:])) {
				return arr[1:]
			}
		}
		if a.err != nil || time.Now().After(deadline) {
			a.t.Fatalf("no %s event (err %v); got %d events", name, a.err, len(a.evs))
		}
		a.cond.Wait()
	}
}

func (a *admin) all() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.Join(a.raw, "\n")
}

type fixture struct {
	io   *socketio.Server
	base string
	in   *Instrumentation
}

func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	io := socketio.NewServer(socketio.Options{Logger: quiet})
	io.Of("/").Use(func(ctx context.Context, s *socketio.Socket) error {
		if s.Auth()["token"] != "ok" {
			return &socketio.ConnectError{Message: "no", Data: map[string]any{"code": "UNAUTHORIZED"}}
		}
		return nil
	})
	io.Of("/").OnConnection(func(s *socketio.Socket) { s.Join("portfolio:u1") })
	io.Of("/").On("sub", func(s *socketio.Socket, e *socketio.Event) { s.Join("watchlist:AAPL") })
	io.Of("/").On("unsub", func(s *socketio.Socket, e *socketio.Event) { s.Leave("watchlist:AAPL") })
	opts.Logger = quiet
	if opts.Poll == 0 {
		opts.Poll = 50 * time.Millisecond
	}
	if opts.StatsInterval == 0 {
		opts.StatsInterval = 200 * time.Millisecond
	}
	in, err := Instrument(io, opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(io)
	t.Cleanup(func() { in.Close(); _ = io.Close(); hs.CloseClientConnections(); hs.Close() })
	return &fixture{io: io, base: hs.URL, in: in}
}

var hash = func() string {
	h, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return string(h)
}()

func TestAuthAndSession(t *testing.T) {
	f := newFixture(t, Options{Username: "admin", PasswordHash: hash})
	for _, bad := range []map[string]any{
		{}, {"username": "admin", "password": "wrong"}, {"username": "root", "password": "s3cret"},
		{"sessionId": "forged"}, {"username": "admin", "password": 42},
	} {
		_, data, err := dialAdmin(t, f.base, "/admin", bad)
		if err == nil || !strings.Contains(data, `"invalid credentials"`) || !strings.Contains(data, "ADMIN_UNAUTHORIZED") {
			t.Fatalf("auth %v: %v %s", bad, err, data)
		}
	}
	a, _, err := dialAdmin(t, f.base, "/admin", map[string]any{"username": "admin", "password": "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	var sid string
	_ = json.Unmarshal(a.wait("session", nil)[0], &sid)
	if len(sid) != 16 {
		t.Fatalf("session id %q", sid)
	}
	cfg := a.wait("config", nil)
	if !strings.Contains(string(cfg[0]), `"MDISCONNECT"`) || !strings.Contains(string(cfg[0]), `"AGGREGATED_EVENTS"`) {
		t.Fatalf("config %s", cfg[0])
	}
	if _, _, err := dialAdmin(t, f.base, "/admin", map[string]any{"sessionId": sid}); err != nil {
		t.Fatal("the session id is not accepted")
	}
}

func TestBadOptions(t *testing.T) {
	io := socketio.NewServer(socketio.Options{Logger: quiet})
	defer io.Close()
	if _, err := Instrument(io, Options{}); err == nil {
		t.Fatal("no credentials and auth on: accepted")
	}
	if _, err := Instrument(io, Options{Username: "a", PasswordHash: "plain"}); err != ErrBadPasswordHash {
		t.Fatalf("plain password: %v", err)
	}
}

func TestSocketsRoomsStatsAndCommands(t *testing.T) {
	f := newFixture(t, Options{NoAuth: true, ServerID: "node-a", Namespace: "admin"})
	c1, err := sioclient.Dial(f.base, sioclient.Options{Auth: map[string]any{"token": "ok"}, Header: http.Header{"Cookie": {"connect.sid=s%3Asecret-session"}, "Authorization": {"Bearer secret-token"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	a, _, err := dialAdmin(t, f.base, "/admin", map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	all := a.wait("all_sockets", nil)
	var socks []map[string]any
	_ = json.Unmarshal(all[0], &socks)
	var mine map[string]any
	for _, s := range socks {
		if s["id"] == c1.ID() {
			mine = s
		}
	}
	if mine == nil || mine["nsp"] != "/" || mine["transport"] != "websocket" || !strings.Contains(fmt.Sprint(mine["rooms"]), "portfolio:u1") {
		t.Fatalf("all_sockets %s", all[0])
	}
	stats := a.wait("server_stats", func(args []json.RawMessage) bool { return strings.Contains(string(args[0]), `"name":"/"`) })
	var st map[string]any
	_ = json.Unmarshal(stats[0], &st)
	if st["serverId"] != "node-a" || st["clientsCount"].(float64) < 2 || st["aggregatedEvents"] == nil {
		t.Fatalf("server_stats %s", stats[0])
	}

	// A second client: socket_connected, then a room joined and left.
	c2, err := sioclient.Dial(f.base, sioclient.Options{Auth: map[string]any{"token": "ok"}})
	if err != nil {
		t.Fatal(err)
	}
	a.wait("socket_connected", func(args []json.RawMessage) bool { return strings.Contains(string(args[0]), c2.ID()) })
	if !regexpDate.MatchString(a.all()) {
		t.Fatal("socket_connected carries no JavaScript-style date")
	}
	_ = c2.Emit("sub")
	a.wait("room_joined", func(args []json.RawMessage) bool {
		return string(args[0]) == `"/"` && string(args[1]) == `"watchlist:AAPL"` && string(args[2]) == `"`+c2.ID()+`"`
	})
	_ = c2.Emit("unsub")
	a.wait("room_left", func(args []json.RawMessage) bool { return string(args[1]) == `"watchlist:AAPL"` })

	// Commands: emit to a room, join, leave, disconnect.
	a.send("emit", "/", "portfolio:u1", "notice", map[string]any{"text": "hi"})
	if ev, err := c2.WaitEvent("notice", 5*time.Second); err != nil || !strings.Contains(string(ev.Args[0]), `"hi"`) {
		t.Fatalf("emit command: %v", err)
	}
	a.send("join", "/", "vip", c1.ID())
	a.wait("room_joined", func(args []json.RawMessage) bool {
		return string(args[1]) == `"vip"` && string(args[2]) == `"`+c1.ID()+`"`
	})
	a.send("leave", "/", "vip", nil)
	a.wait("room_left", func(args []json.RawMessage) bool { return string(args[1]) == `"vip"` })
	// Malformed commands and unknown namespaces are ignored, not fatal.
	a.send("emit")
	a.send("emit", "/nope", nil, "x")
	a.send("join", 1)
	a.send("join", "/nope", "r")
	a.send("_disconnect")
	a.send("_disconnect", "/nope", true)
	a.send("emit", "/", nil, "ping-all", 1, "two")
	if ev, err := c1.WaitEvent("ping-all", 5*time.Second); err != nil || len(ev.Args) != 2 {
		t.Fatalf("emit to the namespace: %v", err)
	}
	a.send("_disconnect", "/", true, c2.ID())
	if err := c2.WaitClosed(5 * time.Second); err != nil {
		t.Fatal("the _disconnect command did not close the client")
	}
	a.wait("socket_disconnected", func(args []json.RawMessage) bool { return string(args[1]) == `"`+c2.ID()+`"` })
	a.wait("server_stats", func(args []json.RawMessage) bool { return strings.Contains(string(args[0]), `"rawDisconnection"`) })
	if c1.Closed() {
		t.Fatal("the other client was closed too")
	}

	// Nothing sent to the admin namespace carries credentials.
	out := a.all()
	for _, secret := range []string{"secret-session", "connect.sid", "secret-token", "Bearer", `"token"`, `"auth"`, `"sid=`} {
		if strings.Contains(out, secret) {
			t.Errorf("the admin namespace received %q", secret)
		}
	}
}

func TestReadOnly(t *testing.T) {
	f := newFixture(t, Options{NoAuth: true, ReadOnly: true})
	c1, err := sioclient.Dial(f.base, sioclient.Options{Auth: map[string]any{"token": "ok"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	a, _, err := dialAdmin(t, f.base, "/admin", map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg := a.wait("config", nil); string(cfg[0]) != `{"supportedFeatures":["AGGREGATED_EVENTS","ALL_EVENTS"]}` {
		t.Fatalf("config %s", cfg[0])
	}
	a.send("_disconnect", "/", true, c1.ID())
	time.Sleep(300 * time.Millisecond)
	if c1.Closed() {
		t.Fatal("a read-only admin disconnected a client")
	}
}

func TestHelpers(t *testing.T) {
	if got := stripSID("/socket.io/?EIO=4&transport=polling&sid=abc&t=1"); got != "/socket.io/?EIO=4&transport=polling&t=1" {
		t.Fatal(got)
	}
	if got := stripSID("/socket.io/?sid=abc"); got != "/socket.io/" {
		t.Fatal(got)
	}
	if got := stripSID("/x"); got != "/x" {
		t.Fatal(got)
	}
	if ClientID("a") == ClientID("b") || len(ClientID("a")) != 12 {
		t.Fatal("client ids")
	}
	m := NewMemorySessions(time.Minute)
	now := time.Now()
	m.now = func() time.Time { return now }
	_ = m.Save(context.Background(), "x")
	if ok, _ := m.Exists(context.Background(), "x"); !ok {
		t.Fatal("saved id missing")
	}
	now = now.Add(2 * time.Minute)
	_ = m.Save(context.Background(), "y") // sweeps x
	if ok, _ := m.Exists(context.Background(), "x"); ok {
		t.Fatal("expired id accepted")
	}
	if len(m.ids) != 1 {
		t.Fatalf("not swept: %v", m.ids)
	}
}

func TestRedisSessions(t *testing.T) {
	rs := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr, MaxRetries: -1, DialTimeout: 500 * time.Millisecond})
	defer rdb.Close()
	s := NewRedisSessions(rdb, "", time.Minute)
	ctx := context.Background()
	if err := s.Save(ctx, "abc"); err != nil {
		t.Fatal(err)
	}
	if ttl := rdb.TTL(ctx, "socket.io-admin#abc").Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("key layout or ttl: %v", ttl)
	}
	if ok, err := s.Exists(ctx, "abc"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if ok, _ := s.Exists(ctx, "nope"); ok {
		t.Fatal("unknown id accepted")
	}
	rs.Kill()
	if err := s.Save(ctx, "x"); err == nil {
		t.Fatal("no error with Redis down")
	}
	if _, err := s.Exists(ctx, "x"); err == nil {
		t.Fatal("no error with Redis down")
	}
}

func TestProductionMode(t *testing.T) {
	f := newFixture(t, Options{NoAuth: true, Production: true, ServerID: "prod"})
	a, _, err := dialAdmin(t, f.base, "/admin", map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := a.wait("config", nil)
	if strings.Contains(string(cfg[0]), "ALL_EVENTS") {
		t.Fatalf("production config %s", cfg[0])
	}
	c, err := sioclient.Dial(f.base, sioclient.Options{Auth: map[string]any{"token": "ok"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a.wait("server_stats", func(args []json.RawMessage) bool { return strings.Contains(string(args[0]), `"serverId":"prod"`) })
	time.Sleep(300 * time.Millisecond)
	if out := a.all(); strings.Contains(out, "socket_connected") || strings.Contains(out, "all_sockets") || strings.Contains(out, "room_joined") {
		t.Fatalf("per-socket events in production mode:\n%s", out)
	}
}
