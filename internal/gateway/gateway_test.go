package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"

	"github.com/tradewire/tradewire/internal/config"
	"github.com/tradewire/tradewire/internal/testutil/sioclient"
)

type testGateway struct {
	*Gateway
	URL    string
	cancel context.CancelFunc
	done   chan error
}

func startGateway(t *testing.T, args ...string) *testGateway {
	t.Helper()
	cfg, err := config.Load(testArgs(append([]string{"-addr", "127.0.0.1:0", "-log-level", "error"}, args...)), func(string) string { return "" })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
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
	return tg
}

func (tg *testGateway) stop(t *testing.T) {
	tg.cancel()
	select {
	case err := <-tg.done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		tg.done <- nil
	case <-time.After(15 * time.Second):
		t.Error("gateway did not stop")
	}
}

type loginReply struct {
	SessionID string `json:"sessionID"`
	Cookie    string `json:"cookie"`
}

func devLogin(t *testing.T, base, user, role string) loginReply {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"userId": user, "role": role})
	resp, err := http.Post(base+"/dev/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("dev login: %d", resp.StatusCode)
	}
	var r loginReply
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r.SessionID, "s:") || !strings.HasPrefix(r.Cookie, "connect.sid=s%3A") {
		t.Fatalf("unexpected login reply %+v", r)
	}
	return r
}

func dialCookie(t *testing.T, base, cookie string) *sioclient.Client {
	t.Helper()
	h := http.Header{}
	h.Set("Cookie", cookie)
	c, err := sioclient.Dial(base, sioclient.Options{Header: h})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func post(t *testing.T, url, key, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestDevModeEndToEnd(t *testing.T) {
	g := startGateway(t, "-demo-feed=false")
	login := devLogin(t, g.URL, "u1", "user")
	c := dialCookie(t, g.URL, login.Cookie)

	ack, err := c.EmitWithAck(3*time.Second, "subscribe:trades")
	if err != nil || !strings.Contains(string(ack[0]), `"success":true`) {
		t.Fatalf("subscribe:trades ack %s, %v", ack, err)
	}
	other := dialCookie(t, g.URL, devLogin(t, g.URL, "u2", "user").Cookie)
	if _, err := other.EmitWithAck(3*time.Second, "subscribe:trades"); err != nil {
		t.Fatal(err)
	}

	code, body := post(t, g.URL+"/api/v1/events", g.DevAPIKey(),
		`{"type":"trade.executed","userId":"u1","trade":{"id":"t1","symbol":"AAPL","side":"buy","quantity":10,"price":187.12}}`)
	if code != http.StatusAccepted {
		t.Fatalf("publish: %d %s", code, body)
	}
	ev, err := c.WaitEvent("trade:executed", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var payload struct {
		UserID       string `json:"userId"`
		Notification struct{ Title, Message string }
	}
	_ = json.Unmarshal(ev.Args[0], &payload)
	if payload.UserID != "u1" || payload.Notification.Title != "Trade Executed: AAPL" || payload.Notification.Message != "BUY 10 AAPL @ $187.12" {
		t.Fatalf("payload %s", ev.Args[0])
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(other.EventsNamed("trade:executed")); n != 0 {
		t.Fatalf("u2 received %d of u1's trades", n)
	}

	// Bad key and bad payload.
	if code, _ := post(t, g.URL+"/api/v1/events", "wrong-key-wrong-key", `{}`); code != http.StatusUnauthorized {
		t.Fatalf("bad key: %d", code)
	}
	if code, _ := post(t, g.URL+"/api/v1/events", g.DevAPIKey(), `{"type":"trade.executed","userId":"u1"}`); code != http.StatusBadRequest {
		t.Fatalf("bad payload: %d", code)
	}
}

func TestForgedCookieAndMissingCredentials(t *testing.T) {
	g := startGateway(t, "-demo-feed=false")
	login := devLogin(t, g.URL, "u1", "user")
	forged := strings.Replace(login.Cookie, "s%3A", "s%3AX", 1)
	for _, cookie := range []string{forged, ""} {
		h := http.Header{}
		if cookie != "" {
			h.Set("Cookie", cookie)
		}
		_, err := sioclient.Dial(g.URL, sioclient.Options{Header: h})
		var ce *sioclient.ConnectError
		if err == nil || !asConnectError(err, &ce) || ce.Data["code"] != "UNAUTHORIZED" {
			t.Fatalf("cookie %q: want UNAUTHORIZED connect_error, got %v", cookie, err)
		}
	}
	// auth.sessionID with a mismatched userId.
	_, err := sioclient.Dial(g.URL, sioclient.Options{Auth: map[string]any{"sessionID": login.SessionID, "userId": "u2"}})
	var ce *sioclient.ConnectError
	if !asConnectError(err, &ce) || ce.Data["code"] != "USER_MISMATCH" {
		t.Fatalf("mismatch: %v", err)
	}
	// auth.sessionID alone works.
	c, err := sioclient.Dial(g.URL, sioclient.Options{Auth: map[string]any{"sessionID": login.SessionID, "userId": "u1"}})
	if err != nil {
		t.Fatalf("auth.sessionID: %v", err)
	}
	c.Close()
}

func asConnectError(err error, target **sioclient.ConnectError) bool {
	ce, ok := err.(*sioclient.ConnectError)
	if ok {
		*target = ce
	}
	return ok
}

func TestConnectionRateLimit(t *testing.T) {
	g := startGateway(t, "-demo-feed=false", "-rate-connections-per-minute", "3")
	login := devLogin(t, g.URL, "u1", "user")
	for i := 0; i < 3; i++ {
		dialCookie(t, g.URL, login.Cookie)
	}
	h := http.Header{}
	h.Set("Cookie", login.Cookie)
	_, err := sioclient.Dial(g.URL, sioclient.Options{Header: h})
	var ce *sioclient.ConnectError
	if !asConnectError(err, &ce) || ce.Data["code"] != "RATE_LIMIT" {
		t.Fatalf("4th connection: want RATE_LIMIT, got %v", err)
	}
	if ms, _ := ce.Data["retryAfterMs"].(float64); ms <= 0 {
		t.Fatalf("retryAfterMs = %v", ce.Data["retryAfterMs"])
	}
	// The server closes a refused client's session by itself.
	ws, resp, err := gws.DefaultDialer.Dial(strings.Replace(g.URL, "http", "ws", 1)+"/socket.io/?EIO=4&transport=websocket", h)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	defer ws.Close()
	_, _, _ = ws.ReadMessage() // open
	_ = ws.WriteMessage(gws.TextMessage, []byte("40"))
	_ = ws.SetReadDeadline(time.Now().Add(3 * time.Second))
	var frames []string
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				t.Fatalf("refused session still open after 3 s (frames %q)", frames)
			}
			break
		}
		frames = append(frames, string(msg))
	}
	if len(frames) == 0 || !strings.Contains(frames[0], "RATE_LIMIT") {
		t.Fatalf("frames before the close: %q", frames)
	}
}

func TestLogoutDisconnects(t *testing.T) {
	g := startGateway(t, "-demo-feed=false")
	login := devLogin(t, g.URL, "u1", "user")
	c := dialCookie(t, g.URL, login.Cookie)
	start := time.Now()
	code, body := post(t, g.URL+"/dev/logout", "", `{"sessionID":"`+login.SessionID+`"}`)
	if code != 200 {
		t.Fatalf("logout: %d %s", code, body)
	}
	if err := c.WaitClosed(6 * time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("disconnected after %v, want <= 5s", d)
	}
	if len(c.EventsNamed("error")) == 0 {
		t.Fatal("no error event before the disconnect")
	}
}

func TestHealthMetricsStats(t *testing.T) {
	g := startGateway(t, "-demo-feed=false")
	get := func(path string, key string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, g.URL+path, nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz", ""); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, body := get("/readyz", ""); code != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Fatalf("readyz %d %s", code, body)
	}
	dialCookie(t, g.URL, devLogin(t, g.URL, "u1", "admin").Cookie)
	_, metrics := get("/metrics", "")
	if !strings.Contains(metrics, `tradewire_connections{transport="websocket"} 1`) {
		t.Fatalf("metrics do not show the websocket connection:\n%s", grepLines(metrics, "tradewire_connections"))
	}
	if !strings.Contains(metrics, `tradewire_handshakes_total`) {
		t.Fatal("no handshake metric")
	}
	if code, _ := get("/api/v1/stats", ""); code != 401 {
		t.Fatalf("stats without key: %d", code)
	}
	code, body := get("/api/v1/stats", g.DevAPIKey())
	var st Stats
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil || st.Connections != 1 || st.Users != 1 || st.Namespaces["/"] != 1 {
		t.Fatalf("stats %d %s", code, body)
	}
	if code, body := get("/info", ""); code != 200 || !strings.Contains(body, "dev mode") {
		t.Fatalf("info %d %s", code, body)
	}
	// Dev mode serves the dashboard at /.
	if code, body := get("/", ""); code != 200 || !strings.Contains(body, `<div id="root">`) {
		t.Fatalf("dashboard %d %s", code, body)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestGracefulShutdown(t *testing.T) {
	g := startGateway(t, "-demo-feed=false", "-drain-window", "1s", "-shutdown-timeout", "5s", "-rate-connections-per-minute", "1000")
	login := devLogin(t, g.URL, "u1", "user")
	var clients []*sioclient.Client
	for i := 0; i < 50; i++ {
		clients = append(clients, dialCookie(t, g.URL, login.Cookie))
	}
	start := time.Now()
	g.cancel()
	select {
	case err := <-g.done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
		g.done <- nil
	case <-time.After(10 * time.Second):
		t.Fatal("no shutdown")
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	for i, c := range clients {
		ev, err := c.WaitEvent("server:shutdown", time.Second)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		if !strings.Contains(string(ev.Args[0]), "reconnectInMs") {
			t.Fatalf("payload %s", ev.Args[0])
		}
		if err := c.WaitClosed(2 * time.Second); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
}

// Every session lands in one tick of each round, and the ticks share the
// sessions about evenly (each tick's batch is about 1/8 of the node's).
func TestSessionShards(t *testing.T) {
	var counts [revalidateShards]int
	for i := range 8000 {
		sid := "sess-" + strconv.Itoa(i) + "-" + strconv.FormatInt(int64(i*7919), 16)
		sh := sessionShard(sid)
		if sh != sessionShard(sid) || sh < 0 || sh >= revalidateShards {
			t.Fatalf("shard of %q: %d", sid, sh)
		}
		counts[sh]++
	}
	for sh, n := range counts {
		if n < 800 || n > 1200 {
			t.Errorf("shard %d has %d of 8000 sessions: %v", sh, n, counts)
		}
	}
}
