package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/internal/testutil/redistest"
)

// quietRedis drops go-redis' own log lines (dial failures while a test
// has Redis down on purpose).
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quietRedis{})
	os.Exit(m.Run())
}

// testRedis starts a private redis-server and returns a client for it.
func testRedis(t *testing.T) (*redistest.Server, *redis.Client) {
	t.Helper()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	return srv, rdb
}

// prefix gives each test its own key space, also on a shared server.
func prefix(t *testing.T) string {
	return "cltest-" + strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
}

// logBuffer collects a router's log output.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newRouter(t *testing.T, rdb redis.UniversalClient, opts Options) (*Router, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	r, err := NewRouter(rdb, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r, logs
}

func TestNewRouterValidation(t *testing.T) {
	if _, err := NewRouter(nil, Options{}); err == nil || !strings.Contains(err.Error(), "node URL is required") {
		t.Fatalf("empty URL: %v", err)
	}
	if _, err := NewRouter(nil, Options{URL: "http://[::1"}); err == nil || !strings.Contains(err.Error(), "cluster: node URL:") {
		t.Fatalf("unparsable URL: %v", err)
	}
}

func TestNewRouterDefaults(t *testing.T) {
	_, rdb := testRedis(t)
	r, err := NewRouter(rdb, Options{URL: "http://10.0.0.7:8080"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Del(context.Background(), "tradewire:route:"+r.Tag()) })
	if r.opts.KeyPrefix != "tradewire" || r.opts.TTL != 6*time.Second || r.log == nil {
		t.Fatalf("defaults: prefix %q ttl %v logger %v", r.opts.KeyPrefix, r.opts.TTL, r.log)
	}
	ctx := context.Background()
	if err := r.Advertise(ctx); err != nil {
		t.Fatal(err)
	}
	key := "tradewire:route:" + r.Tag()
	if v, err := rdb.Get(ctx, key).Result(); err != nil || v != "http://10.0.0.7:8080" {
		t.Fatalf("advertised %q, %v", v, err)
	}
	if ttl := rdb.PTTL(ctx, key).Val(); ttl <= 5*time.Second || ttl > 6*time.Second {
		t.Fatalf("advertisement TTL %v, want about 6s", ttl)
	}
}

var idChars = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func TestTagAndNewID(t *testing.T) {
	tags := map[string]bool{}
	for range 50 {
		r, _ := newRouter(t, nil, Options{URL: "http://a:1"})
		if len(r.Tag()) != TagLen || !idChars.MatchString(r.Tag()) {
			t.Fatalf("tag %q: want %d URL-safe characters", r.Tag(), TagLen)
		}
		tags[r.Tag()] = true
	}
	if len(tags) < 45 {
		t.Fatalf("only %d distinct tags among 50 routers", len(tags))
	}
	r, _ := newRouter(t, nil, Options{URL: "http://a:1"})
	seen := map[string]bool{}
	for range 2000 {
		id := r.NewID()
		if len(id) != 20 || !strings.HasPrefix(id, r.Tag()) || !idChars.MatchString(id) {
			t.Fatalf("id %q: want 20 URL-safe characters starting with %q", id, r.Tag())
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

func TestOwner(t *testing.T) {
	_, rdb := testRedis(t)
	p := prefix(t)
	ttl := 600 * time.Millisecond // lookups cached for 200ms
	a, _ := newRouter(t, rdb, Options{URL: "http://node-a:8080", KeyPrefix: p, TTL: ttl})
	b, _ := newRouter(t, rdb, Options{URL: "http://node-b:8080", KeyPrefix: p, TTL: ttl})
	ctx := context.Background()
	if err := b.Advertise(ctx); err != nil {
		t.Fatal(err)
	}
	check := func(sid, want string) {
		t.Helper()
		got, err := a.Owner(ctx, sid)
		if err != nil || got != want {
			t.Fatalf("Owner(%q) = %q, %v; want %q", sid, got, err, want)
		}
	}
	check(b.NewID(), "http://node-b:8080")
	check(a.NewID(), "") // own session
	check("abc", "")     // shorter than a tag
	check("", "")
	check("zzzz"+strings.Repeat("x", 16), "") // nobody advertises zzzz

	// Lookups are cached for TTL/3: a changed advertisement is seen after.
	if err := rdb.Set(ctx, p+":route:"+b.Tag(), "http://node-b2:8080", ttl).Err(); err != nil {
		t.Fatal(err)
	}
	check(b.NewID(), "http://node-b:8080")
	time.Sleep(ttl/3 + 50*time.Millisecond)
	check(b.NewID(), "http://node-b2:8080")

	// An unknown owner is cached too, then found once advertised.
	c, _ := newRouter(t, rdb, Options{URL: "http://node-c:8080", KeyPrefix: p, TTL: ttl})
	check(c.NewID(), "")
	if err := c.Advertise(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(ttl/3 + 50*time.Millisecond)
	check(c.NewID(), "http://node-c:8080")
}

func TestOwnerCacheIsBounded(t *testing.T) {
	_, rdb := testRedis(t)
	a, _ := newRouter(t, rdb, Options{URL: "http://node-a:8080", KeyPrefix: prefix(t)})
	ctx := context.Background()
	for i := range 4200 {
		tag := strconv.FormatInt(int64(100000+i), 36)[:TagLen] + strconv.Itoa(i)
		if _, err := a.Owner(ctx, tag+"xxxxxxxxxxxxxxxx"); err != nil {
			t.Fatal(err)
		}
	}
	a.mu.Lock()
	n := len(a.cache)
	a.mu.Unlock()
	if n > 4097 || n == 0 {
		t.Fatalf("owner cache holds %d entries, want at most 4097", n)
	}
}

func TestOwnerRedisDown(t *testing.T) {
	srv, rdb := testRedis(t)
	a, _ := newRouter(t, rdb, Options{URL: "http://node-a:8080", KeyPrefix: prefix(t)})
	b, _ := newRouter(t, rdb, Options{URL: "http://node-b:8080", KeyPrefix: prefix(t)})
	srv.Kill()
	_, err := a.Owner(context.Background(), b.NewID())
	if err == nil || !strings.Contains(err.Error(), "cluster: owner lookup") {
		t.Fatalf("Owner with Redis down: %v", err)
	}
	// Forward leaves the request alone (the engine answers it).
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/socket.io/?sid="+b.NewID(), nil)
	if a.Forward(rec, req, b.NewID()) {
		t.Fatal("Forward served a request although the owner is unknown")
	}
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 || len(rec.Header()) != 0 {
		t.Fatalf("Forward wrote a response: %d %q", rec.Code, rec.Body.String())
	}
}

// seen is what an owner node's handler observed.
type seen struct {
	Method, Path, Query, Host, Body, Forwarded, XFF string
}

// ownerServer is a node answering with what it received.
func ownerServer(t *testing.T) (*httptest.Server, chan seen) {
	t.Helper()
	ch := make(chan seen, 16)
	up := websocket.Upgrader{}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if websocket.IsWebSocketUpgrade(r) {
			ch <- seen{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host, Forwarded: r.Header.Get(ForwardedHeader), XFF: r.Header.Get("X-Forwarded-For")}
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			for {
				mt, msg, err := c.ReadMessage()
				if err != nil {
					return
				}
				_ = c.WriteMessage(mt, append([]byte("echo:"), msg...))
			}
		}
		b, _ := io.ReadAll(r.Body)
		ch <- seen{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host, Body: string(b), Forwarded: r.Header.Get(ForwardedHeader), XFF: r.Header.Get("X-Forwarded-For")}
		w.Header().Set("X-Owner", "b")
		_, _ = w.Write([]byte("owner says " + r.Method))
	}))
	t.Cleanup(s.Close)
	return s, ch
}

// frontServer is a node that forwards every request whose sid it does not own.
func frontServer(t *testing.T, r *Router) (*httptest.Server, *sync.Map) {
	t.Helper()
	var local sync.Map // sids served locally, for assertions
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		sid := req.URL.Query().Get("sid")
		if r.Forward(w, req, sid) {
			return
		}
		local.Store(sid, true)
		w.WriteHeader(http.StatusTeapot)
	}))
	t.Cleanup(s.Close)
	return s, &local
}

func TestForwardPollingRequests(t *testing.T) {
	_, rdb := testRedis(t)
	p := prefix(t)
	owner, got := ownerServer(t)
	a, _ := newRouter(t, rdb, Options{URL: "http://127.0.0.1:1", KeyPrefix: p})
	b, _ := newRouter(t, rdb, Options{URL: owner.URL, KeyPrefix: p})
	if err := b.Advertise(context.Background()); err != nil {
		t.Fatal(err)
	}
	front, local := frontServer(t, a)
	sid := b.NewID()
	q := "EIO=4&transport=polling&sid=" + sid

	req, _ := http.NewRequest(http.MethodGet, front.URL+"/socket.io/?"+q, nil)
	req.Host = "app.example.com"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "owner says GET" || resp.Header.Get("X-Owner") != "b" {
		t.Fatalf("GET through the router: %d %q", resp.StatusCode, body)
	}
	s := <-got
	if s.Method != "GET" || s.Path != "/socket.io/" || s.Query != q || s.Host != "app.example.com" || s.Forwarded != "1" || s.XFF != "127.0.0.1" {
		t.Fatalf("owner saw %+v", s)
	}

	resp, err = http.Post(front.URL+"/socket.io/?"+q, "text/plain;charset=UTF-8", strings.NewReader(`42["subscribe:trades"]`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "owner says POST" {
		t.Fatalf("POST through the router: %d %q", resp.StatusCode, body)
	}
	if s := <-got; s.Method != "POST" || s.Body != `42["subscribe:trades"]` || s.Forwarded != "1" {
		t.Fatalf("owner saw %+v", s)
	}

	// One reverse proxy per owner, reused.
	a.mu.Lock()
	n := len(a.proxys)
	a.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d proxies for one owner", n)
	}
	// Own and unknown sessions are served locally.
	for _, sid := range []string{a.NewID(), "nope" + strings.Repeat("x", 16), ""} {
		resp, err := http.Get(front.URL + "/socket.io/?EIO=4&transport=polling&sid=" + sid)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTeapot {
			t.Fatalf("sid %q: %d, want it served locally", sid, resp.StatusCode)
		}
		if _, ok := local.Load(sid); !ok {
			t.Fatalf("sid %q not served locally", sid)
		}
	}
}

func TestForwardNeverTwice(t *testing.T) {
	_, rdb := testRedis(t)
	p := prefix(t)
	owner, got := ownerServer(t)
	a, _ := newRouter(t, rdb, Options{URL: "http://127.0.0.1:1", KeyPrefix: p})
	b, _ := newRouter(t, rdb, Options{URL: owner.URL, KeyPrefix: p})
	if err := b.Advertise(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/socket.io/?sid="+b.NewID(), nil)
	req.Header.Set(ForwardedHeader, "1")
	if a.Forward(rec, req, b.NewID()) {
		t.Fatal("an already forwarded request was forwarded again")
	}
	select {
	case s := <-got:
		t.Fatalf("owner received %+v", s)
	case <-time.After(50 * time.Millisecond):
	}

	// Two nodes that each think the other owns a session do not loop:
	// a forwards to b, b finds the header and serves it itself.
	var bLocal, aLocal int
	var mu sync.Mutex
	var bSrv, aSrv *httptest.Server
	var ra, rb *Router
	aSrv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ra.Forward(w, r, r.URL.Query().Get("sid")) {
			return
		}
		mu.Lock()
		aLocal++
		mu.Unlock()
		w.WriteHeader(http.StatusNotFound)
	}))
	defer aSrv.Close()
	bSrv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rb.Forward(w, r, r.URL.Query().Get("sid")) {
			return
		}
		mu.Lock()
		bLocal++
		mu.Unlock()
		w.WriteHeader(http.StatusNotFound)
	}))
	defer bSrv.Close()
	ra, _ = newRouter(t, rdb, Options{URL: aSrv.URL, KeyPrefix: p + "-loop"})
	rb, _ = newRouter(t, rdb, Options{URL: bSrv.URL, KeyPrefix: p + "-loop"})
	// A stale advertisement: b's tag now points at a.
	if err := rdb.Set(context.Background(), p+"-loop:route:"+rb.Tag(), aSrv.URL, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(context.Background(), p+"-loop:route:"+ra.Tag(), bSrv.URL, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(aSrv.URL + "/?sid=" + rb.NewID())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || aLocal != 1 || bLocal != 0 {
		t.Fatalf("status %d, a served %d, b served %d: want exactly one hop", resp.StatusCode, aLocal, bLocal)
	}
	// b, told by the stale key that a's sessions are its own, serves them.
	resp, err = http.Get(bSrv.URL + "/?sid=" + ra.NewID())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || aLocal != 1 || bLocal != 1 {
		t.Fatalf("status %d, a served %d, b served %d: want b to serve it", resp.StatusCode, aLocal, bLocal)
	}
}

func TestForwardToOwnURLIsLocal(t *testing.T) {
	_, rdb := testRedis(t)
	p := prefix(t)
	a, _ := newRouter(t, rdb, Options{URL: "http://node-a:8080", KeyPrefix: p})
	// A restarted node with a new tag but the same URL.
	old, _ := newRouter(t, rdb, Options{URL: "http://node-a:8080", KeyPrefix: p})
	if err := old.Advertise(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	if a.Forward(rec, httptest.NewRequest(http.MethodGet, "/", nil), old.NewID()) {
		t.Fatal("forwarded a request to this node's own URL")
	}
}

func TestForwardOwnerDown(t *testing.T) {
	_, rdb := testRedis(t)
	p := prefix(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	a, logs := newRouter(t, rdb, Options{URL: "http://127.0.0.1:1", KeyPrefix: p})
	b, _ := newRouter(t, rdb, Options{URL: dead, KeyPrefix: p})
	if err := b.Advertise(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/socket.io/?EIO=4&transport=polling&sid="+b.NewID(), nil)
	if !a.Forward(rec, req, b.NewID()) {
		t.Fatal("Forward did not take the request")
	}
	if rec.Code != http.StatusBadRequest || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("owner down: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var body struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Code != 1 || body.Message != "Session ID unknown" {
		t.Fatalf("owner down body %q: want Engine.IO error 1", rec.Body.String())
	}
	if !strings.Contains(logs.String(), "cluster: forward failed") || !strings.Contains(logs.String(), dead) {
		t.Fatalf("no warning naming the owner: %s", logs.String())
	}
}

func TestForwardBadOwnerURL(t *testing.T) {
	_, rdb := testRedis(t)
	p := prefix(t)
	a, _ := newRouter(t, rdb, Options{URL: "http://node-a:8080", KeyPrefix: p})
	b, _ := newRouter(t, rdb, Options{URL: "http://node-b:8080", KeyPrefix: p})
	if err := rdb.Set(context.Background(), p+":route:"+b.Tag(), "http://[::1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	if a.Forward(rec, httptest.NewRequest(http.MethodGet, "/", nil), b.NewID()) {
		t.Fatal("forwarded to an unparsable URL")
	}
}

func TestProxyMapIsBounded(t *testing.T) {
	_, rdb := testRedis(t)
	a, _ := newRouter(t, rdb, Options{URL: "http://node-a:8080", KeyPrefix: prefix(t)})
	for i := range 300 {
		if _, err := a.proxy("http://10.0.0.1:" + strconv.Itoa(1000+i)); err != nil {
			t.Fatal(err)
		}
	}
	p1, _ := a.proxy("http://10.0.0.1:1299")
	p2, _ := a.proxy("http://10.0.0.1:1299")
	if p1 != p2 {
		t.Fatal("proxy not reused")
	}
	a.mu.Lock()
	n := len(a.proxys)
	a.mu.Unlock()
	if n > 257 {
		t.Fatalf("%d proxies kept, want at most 257", n)
	}
}

func TestForwardWebSocketUpgrade(t *testing.T) {
	_, rdb := testRedis(t)
	p := prefix(t)
	owner, got := ownerServer(t)
	a, _ := newRouter(t, rdb, Options{URL: "http://127.0.0.1:1", KeyPrefix: p})
	b, _ := newRouter(t, rdb, Options{URL: owner.URL, KeyPrefix: p})
	if err := b.Advertise(context.Background()); err != nil {
		t.Fatal(err)
	}
	front, _ := frontServer(t, a)
	sid := b.NewID()
	u := strings.Replace(front.URL, "http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket&sid=" + sid
	ws, resp, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatalf("upgrade through the router: %v (%v)", err, resp)
	}
	defer ws.Close()
	s := <-got
	if s.Path != "/socket.io/" || !strings.Contains(s.Query, "sid="+sid) || s.Forwarded != "1" || s.Host != strings.TrimPrefix(front.URL, "http://") {
		t.Fatalf("owner saw %+v", s)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range 3 {
		msg := "2probe" + strconv.Itoa(i)
		if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, reply, err := ws.ReadMessage()
		if err != nil || string(reply) != "echo:"+msg {
			t.Fatalf("reply %q, %v", reply, err)
		}
	}
	// Binary frames pass unchanged.
	if err := ws.WriteMessage(websocket.BinaryMessage, []byte{0, 1, 2, 255}); err != nil {
		t.Fatal(err)
	}
	mt, reply, err := ws.ReadMessage()
	if err != nil || mt != websocket.BinaryMessage || !bytes.Equal(reply, append([]byte("echo:"), 0, 1, 2, 255)) {
		t.Fatalf("binary reply %v %q, %v", mt, reply, err)
	}
}

func TestRunAdvertisesAndWithdraws(t *testing.T) {
	srv, rdb := testRedis(t)
	p := prefix(t)
	ttl := 300 * time.Millisecond
	a, logs := newRouter(t, rdb, Options{URL: "http://node-a:8080", KeyPrefix: p, TTL: ttl})
	key := p + ":route:" + a.Tag()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	bg := context.Background()
	deadline := time.Now().Add(5 * time.Second)
	for rdb.Get(bg, key).Val() != "http://node-a:8080" {
		if time.Now().After(deadline) {
			t.Fatal("Run did not advertise")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The advertisement outlives its TTL because Run refreshes it.
	time.Sleep(3 * ttl)
	if v := rdb.Get(bg, key).Val(); v != "http://node-a:8080" {
		t.Fatalf("advertisement after 3 TTLs: %q", v)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if n := rdb.Exists(bg, key).Val(); n != 0 {
		t.Fatal("advertisement not withdrawn when Run ended")
	}
	if strings.Contains(logs.String(), "cannot advertise") {
		t.Fatalf("unexpected warning: %s", logs.String())
	}

	// With Redis down Run warns and keeps going; it still returns on cancel.
	srv.Kill()
	ctx, cancel = context.WithCancel(context.Background())
	done = make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	deadline = time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "cluster: cannot advertise node route") {
		if time.Now().After(deadline) {
			t.Fatalf("no warning with Redis down: %s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return after cancel with Redis down")
	}
}
