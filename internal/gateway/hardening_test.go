package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/auth"
	"github.com/tradewire/tradewire/internal/testutil/redistest"
	"github.com/tradewire/tradewire/internal/testutil/sioclient"
)

func TestHandshakeGuardWindow(t *testing.T) {
	now := time.Date(2026, 1, 1, 10, 0, 30, 0, time.UTC)
	h := newHandshakeGuard(2)
	h.now = func() time.Time { return now }
	if h.retryAfter("1.2.3.4") != 0 {
		t.Fatal("fresh IP refused")
	}
	h.refuse("1.2.3.4")
	if h.retryAfter("1.2.3.4") != 0 {
		t.Fatal("refused after one CONNECT refusal with limit 2")
	}
	h.refuse("1.2.3.4")
	if w := h.retryAfter("1.2.3.4"); w != 30*time.Second {
		t.Fatalf("retry after %v, want the rest of the minute (30s)", w)
	}
	if h.retryAfter("5.6.7.8") != 0 {
		t.Fatal("another IP refused")
	}
	now = now.Add(31 * time.Second)
	if h.retryAfter("1.2.3.4") != 0 {
		t.Fatal("still refused in the next minute")
	}
}

func TestThrottledServerLog(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(100, 0)
	tl := &throttledLog{log: slog.New(slog.NewTextHandler(&buf, nil)), every: time.Second, now: func() time.Time { return now }}
	for i := 0; i < 50; i++ {
		_, _ = tl.Write([]byte("http: Accept error: too many open files; retrying in 5ms\n"))
	}
	now = now.Add(time.Second)
	_, _ = tl.Write([]byte("http: Accept error: too many open files; retrying in 10ms\n"))
	if n := strings.Count(buf.String(), "Accept error"); n != 2 || !strings.Contains(buf.String(), "suppressed=49") {
		t.Fatalf("%d lines logged:\n%s", n, buf.String())
	}
	if acceptErrorLog(slog.Default()) == nil {
		t.Fatal("no logger")
	}
}

func TestJSONResponsesAreNotSniffedOrCached(t *testing.T) {
	g := startGateway(t, "-demo-feed=false")
	for _, path := range []string{"/api/v1/stats", "/readyz"} {
		resp, err := http.Get(g.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			continue
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: headers %v", path, resp.Header)
		}
	}
	resp, err := http.Post(g.URL+"/dev/login", "application/json", strings.NewReader(`{"userId":"u"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("/dev/login: headers %v", resp.Header)
	}
	// Plain-text answers are left alone; websockets still upgrade through the wrapper.
	rec := httptest.NewRecorder()
	g.hardenHTTP(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Header().Get("X-Content-Type-Options") != "" {
		t.Error("nosniff on a text response")
	}
	c, err := sioclient.Dial(g.URL, sioclient.Options{Header: http.Header{"Cookie": {devLogin(t, g.URL, "w", "user").Cookie}}})
	if err != nil {
		t.Fatalf("websocket through the hardened handler: %v", err)
	}
	c.Close()
}

func TestDevLoginOnRedisStore(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	g := startGateway(t, "-dev-mode", "-redis-url", srv.URL(), "-session-store", "redis", "-session-secrets", testSecret, "-demo-feed=false", "-key-prefix", "kp")
	r := devLogin(t, g.URL, "erin", "admin")
	sid, ok := auth.Unsign(r.SessionID, []string{testSecret})
	if !ok {
		t.Fatal("session id not signed with the configured secret")
	}
	raw, err := rdb.Get(context.Background(), "sess:"+sid).Result()
	if err != nil {
		t.Fatalf("no connect-redis session: %v", err)
	}
	var sess map[string]any
	if json.Unmarshal([]byte(raw), &sess) != nil || sess["passport"].(map[string]any)["user"] != "erin" {
		t.Fatalf("session %s", raw)
	}
	if ttl := rdb.TTL(context.Background(), "sess:"+sid).Val(); ttl <= 0 {
		t.Fatalf("session TTL %v", ttl)
	}
	if rdb.HGet(context.Background(), "kp:devuser:erin", "role").Val() != "admin" {
		t.Fatal("role not stored under the key prefix")
	}
	c := dialCookie(t, g.URL, r.Cookie)
	ack, err := c.EmitWithAck(3*time.Second, "subscribe:admin")
	c.Close()
	if err != nil || !strings.Contains(string(ack[0]), `"success":true`) {
		t.Fatalf("admin from the redis dev users: %s %v", ack, err)
	}
	// Logout deletes the Redis session.
	body, _ := json.Marshal(map[string]string{"sessionID": r.SessionID})
	resp, err := http.Post(g.URL+"/dev/logout", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || rdb.Exists(context.Background(), "sess:"+sid).Val() != 0 {
		t.Fatalf("logout: %d, session still there", resp.StatusCode)
	}
	if _, err := (redisDev{rdb: rdb, userPrefix: "kp:devuser:"}).User(context.Background(), "nobody"); err == nil {
		t.Fatal("unknown dev user found")
	}
	// The store down: a clear 503, not a crash.
	srv.Kill()
	resp, err = http.Post(g.URL+"/dev/login", "application/json", strings.NewReader(`{"userId":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dev login with Redis down: %d", resp.StatusCode)
	}
}

func TestDemotedAdminIsDisconnected(t *testing.T) {
	g := startGateway(t, "-demo-feed=false")
	r := devLogin(t, g.URL, "frank", "admin")
	c := dialCookie(t, g.URL, r.Cookie)
	defer c.Close()
	if ack, err := c.EmitWithAck(3*time.Second, "subscribe:admin"); err != nil || !strings.Contains(string(ack[0]), `"success":true`) {
		t.Fatalf("subscribe:admin: %s %v", ack, err)
	}
	g.devStore.PutUser(auth.User{ID: "frank", Role: "user", Tier: "premium"})
	ev, err := c.WaitEvent("error", 5*time.Second)
	if err != nil || !strings.Contains(string(ev.Args[0]), "IDENTITY_CHANGED") {
		t.Fatalf("no IDENTITY_CHANGED: %v %v", ev, err)
	}
	if err := c.WaitClosed(3 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestPublishKeyCannotReadClusterViews(t *testing.T) {
	g := startGateway(t, "-demo-feed=false", "-api-keys", "publisher-key-0123456789:publish")
	for key, want := range map[string]int{"publisher-key-0123456789": 403, g.DevAPIKey(): 200, "wrong": 401} {
		for _, path := range []string{"/api/v1/stats", "/api/v1/users/u1/connections", "/api/v1/rooms/r/sockets"} {
			req, _ := http.NewRequest(http.MethodGet, g.URL+path, nil)
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("%s with %q: %d, want %d", path, key, resp.StatusCode, want)
			}
		}
	}
	if code, body := post(t, g.URL+"/api/v1/events", "publisher-key-0123456789", `{"type":"market.status","status":{"open":true}}`); code/100 != 2 {
		t.Fatalf("publish key cannot publish: %d %s", code, body)
	}
}

func TestAdminPortTakesMetricsReadinessDetailsAndPprof(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin := l.Addr().String()
	l.Close()
	g := startGateway(t, "-demo-feed=false", "-admin-addr", admin)
	get := func(url string) (int, string) {
		var code int
		var body []byte
		deadline := time.Now().Add(5 * time.Second)
		for {
			resp, err := http.Get(url)
			if err == nil {
				code = resp.StatusCode
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				return code, string(body)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v", url, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if code, _ := get(g.URL + "/metrics"); code != 404 {
		t.Errorf("public /metrics: %d, want 404", code)
	}
	if code, body := get(g.URL + "/readyz"); code != 200 || strings.TrimSpace(body) != `{"status":"ready"}` {
		t.Errorf("public /readyz: %d %s, want the bare status", code, body)
	}
	if code, _ := get(g.URL + "/healthz"); code != 200 {
		t.Errorf("public /healthz: %d", code)
	}
	if code, body := get("http://" + admin + "/metrics"); code != 200 || !strings.Contains(body, "# TYPE") {
		t.Errorf("admin /metrics: %d", code)
	}
	if code, body := get("http://" + admin + "/readyz"); code != 200 || strings.TrimSpace(body) == `{"status":"ready"}` {
		t.Errorf("admin /readyz: %d %s, want the detailed report", code, body)
	}
	if code, _ := get("http://" + admin + "/debug/pprof/cmdline"); code != 200 {
		t.Errorf("admin pprof: %d", code)
	}
	if code, _ := get(g.URL + "/debug/pprof/cmdline"); code == 200 {
		t.Error("pprof on the public port")
	}
}
