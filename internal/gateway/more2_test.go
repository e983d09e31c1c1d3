package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/internal/config"
	"github.com/tradewire/tradewire/internal/testutil/redistest"
	"github.com/tradewire/tradewire/internal/testutil/sioclient"
)

// logSink collects a gateway's log output.
type logSink struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logSink) waitFor(t *testing.T, sub string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(l.String(), sub) {
		if time.Now().After(deadline) {
			t.Fatalf("log %q not seen within %v:\n%s", sub, timeout, l.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startGatewayLogged is startGateway with the log (info and up) kept.
func startGatewayLogged(t *testing.T, args ...string) (*testGateway, *logSink) {
	t.Helper()
	cfg, err := config.Load(testArgs(append([]string{"-addr", "127.0.0.1:0"}, args...)), func(string) string { return "" })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	sink := &logSink{}
	log := slog.New(slog.NewTextHandler(sink, nil))
	ctx, cancel := context.WithCancel(context.Background())
	g, err := New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("gateway: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tg := &testGateway{Gateway: g, URL: "http://" + l.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { tg.done <- g.Serve(ctx, l) }()
	t.Cleanup(func() { tg.stop(t) })
	return tg, sink
}

func uniqueID(t *testing.T, what string) string {
	return what + "-" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
}

func TestEventIDsAreDeliveredOnce(t *testing.T) {
	g := startGateway(t, "-demo-feed=false")
	c := dialCookie(t, g.URL, devLogin(t, g.URL, "u1", "user").Cookie)
	if a := acked(t)(c.EmitWithAck(3*time.Second, "subscribe:trades")); a["success"] != true {
		t.Fatalf("ack %v", a)
	}
	id := uniqueID(t, "evt")
	withID := `{"type":"trade.executed","id":"` + id + `","userId":"u1","trade":{"symbol":"AAPL","side":"buy","quantity":1,"price":1}}`
	noID := `{"type":"trade.executed","userId":"u1","trade":{"symbol":"MSFT","side":"buy","quantity":1,"price":1}}`
	for i, body := range []string{withID, withID, noID, noID, "[" + withID + "," + noID + "]"} {
		want := []int{http.StatusAccepted, http.StatusOK, http.StatusAccepted, http.StatusAccepted, http.StatusMultiStatus}[i]
		if code, resp := post(t, g.URL+"/api/v1/events", g.DevAPIKey(), body); code != want {
			t.Fatalf("POST %s: %d %s, want %d", body, code, resp, want)
		}
	}
	roundTrip(t, c)
	evs := c.EventsNamed("trade:executed")
	if len(evs) != 4 {
		t.Fatalf("%d trade:executed, want 4 (the id'd event once, the others each time)", len(evs))
	}
	if p := firstArg(t, evs[0]); p["eventId"] != id {
		t.Fatalf("first event %v, want eventId %s", p, id)
	}
}

func TestDedupAndIngestAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	stream := uniqueID(t, "stream")
	a := startGateway(t, "-redis-url", srv.URL(), "-session-store", "redis", "-session-secrets", testSecret,
		"-api-keys", testAPIKey, "-demo-feed=false", "-ingest-stream", stream)
	b := startClusterNode(t, srv.URL())
	h := http.Header{}
	h.Set("Cookie", seedSession(t, rdb, "sid-dedup-ingest-u1-aaaaaaaaaaa", "u1"))
	c, err := sioclient.Dial(b.URL, sioclient.Options{Header: h})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if a := acked(t)(c.EmitWithAck(3*time.Second, "subscribe:trades")); a["success"] != true {
		t.Fatalf("ack %v", a)
	}
	id := uniqueID(t, "evt")
	trade := func(id, sym string) string {
		return `{"type":"trade.executed","id":"` + id + `","userId":"u1","trade":{"symbol":"` + sym + `","side":"buy","quantity":1,"price":1}}`
	}
	pubCode := func(node *testGateway, path, body string, want int) {
		t.Helper()
		if code, resp := post(t, node.URL+path, testAPIKey, body); code != want {
			t.Fatalf("publish %s: %d %s, want %d", body, code, resp, want)
		}
	}
	pub := func(node *testGateway, body string) {
		t.Helper()
		pubCode(node, "/api/v1/events", body, http.StatusAccepted)
	}
	pub(a, trade(id, "AAPL"))
	if _, err := c.WaitEvent("trade:executed", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	pubCode(b, "/api/v1/events", trade(id, "AAPL"), http.StatusOK) // a retry through the other node: duplicate
	// Events that are not recorded (market status, a raw emit to a room
	// that is no user's) claim their id: once too.
	status := `{"type":"market.status","id":"` + id + `-ms","status":{"open":true}}`
	pub(a, status)
	pubCode(b, "/api/v1/events", status, http.StatusOK)
	emit := `{"id":"` + id + `-emit","rooms":["nobody-room"],"event":"x"}`
	pubCode(b, "/api/v1/emit", emit, http.StatusAccepted)
	pubCode(a, "/api/v1/emit", emit, http.StatusOK)
	mixed := "[" + status + "," + `{"type":"market.status","id":"` + id + `-ms2","status":{"open":false}}` + "]"
	pubCode(a, "/api/v1/events", mixed, http.StatusMultiStatus)
	ctx := context.Background()
	add := func(field, value string) {
		t.Helper()
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: map[string]any{field: value}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	add("event", trade(id, "AAPL"))      // and through the stream
	add("event", trade(id+"-2", "TSLA")) // a new one
	add("emit", `{"rooms":["user:u1"],"event":"ingest:raw","data":{"k":1}}`)
	if _, err := c.WaitEvent("ingest:raw", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c)
	if n := len(c.EventsNamed("market:status")); n != 2 {
		t.Errorf("%d market:status, want 2 (ms and ms2 once each)", n)
	}
	evs := c.EventsNamed("trade:executed")
	if len(evs) != 2 || firstArg(t, evs[1])["eventId"] != id+"-2" {
		var got []any
		for _, e := range evs {
			got = append(got, firstArg(t, e)["eventId"])
		}
		t.Fatalf("trade events %v, want %s once then %s-2", got, id, id)
	}
	raw := c.EventsNamed("ingest:raw")
	if string(raw[0].Args[0]) != `{"k":1}` {
		t.Fatalf("emit from the stream: %s", raw[0].Args)
	}
	// Every entry is acknowledged.
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, err := rdb.XPending(ctx, stream, "tradewire").Result()
		if err == nil && p.Count == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("entries still pending: %+v %v", p, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSeparateSessionRedis(t *testing.T) {
	adapterRedis := redistest.Start(t)
	sessionRedis := redistest.Start(t)
	srdb := redis.NewClient(&redis.Options{Addr: sessionRedis.Addr})
	defer srdb.Close()
	g := startGateway(t, "-redis-url", adapterRedis.URL(), "-session-store", "redis", "-session-redis-url", sessionRedis.URL(),
		"-session-secrets", testSecret, "-api-keys", testAPIKey, "-demo-feed=false")
	h := http.Header{}
	h.Set("Cookie", seedSession(t, srdb, "sid-separate-session-redis-aaaa", "u1"))
	c, err := sioclient.Dial(g.URL, sioclient.Options{Header: h})
	if err != nil {
		t.Fatalf("session in the session Redis: %v", err)
	}
	c.Close()
	resp, err := http.Get(g.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Status string
		Checks map[string]json.RawMessage
	}
	_ = json.NewDecoder(resp.Body).Decode(&rep)
	resp.Body.Close()
	if resp.StatusCode != 200 || rep.Checks["session-redis"] == nil {
		t.Fatalf("readyz %d %+v", resp.StatusCode, rep)
	}
	// The session Redis down makes the node unready and refuses logins
	// with a store error; the adapter's Redis is unaffected.
	sessionRedis.Kill()
	deadline := time.Now().Add(5 * time.Second) // readiness results are cached briefly
	for {
		resp, err = http.Get(g.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz with the session Redis down: %d", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.Set("Cookie", "connect.sid=s%3Aother.sig")
	if _, err := sioclient.Dial(g.URL, sioclient.Options{Header: h, Timeout: 10 * time.Second}); err == nil {
		t.Fatal("connected without a session store")
	}
}

func TestClusterLinkLostAndRestored(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	g, logs := startGatewayLogged(t, "-redis-url", srv.URL(), "-session-store", "redis", "-session-secrets", testSecret,
		"-api-keys", testAPIKey, "-demo-feed=false", "-log-level", "info")
	const sid = "sid-link-lost-u1-aaaaaaaaaaaaaa"
	h := http.Header{}
	h.Set("Cookie", seedSession(t, rdb, sid, "u1"))
	c, err := sioclient.Dial(g.URL, sioclient.Options{Header: h})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if a := acked(t)(c.EmitWithAck(3*time.Second, "subscribe:trades")); a["success"] != true {
		t.Fatalf("ack %v", a)
	}
	srv.Kill()
	logs.waitFor(t, "cluster link lost", 15*time.Second)
	srv.Restart()
	// The restart lost Redis' data, the session with it, and session
	// revalidation (every 2 s) would end the connection for that, rightly:
	// put the session back, so that what is tested is the cluster link.
	seedSession(t, rdb, sid, "u1")
	logs.waitFor(t, "cluster link restored", 30*time.Second)
	if c.Closed() {
		t.Fatal("the client was disconnected by a Redis restart")
	}
	// The connection lives on and publishes reach it again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := post(t, g.URL+"/api/v1/events", testAPIKey,
			`{"type":"trade.executed","userId":"u1","trade":{"symbol":"AMZN","side":"sell","quantity":2,"price":3}}`)
		if code == http.StatusAccepted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish after the restart: %d", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := c.WaitEvent("trade:executed", 5*time.Second); err != nil {
		t.Fatal(err)
	}
}
