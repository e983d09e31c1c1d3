package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/tradewire/tradewire/auth"
	"github.com/tradewire/tradewire/auth/mongostore"
	"github.com/tradewire/tradewire/internal/config"
	"github.com/tradewire/tradewire/internal/testutil/mongotest"
	"github.com/tradewire/tradewire/internal/testutil/poll"
	"github.com/tradewire/tradewire/internal/testutil/redistest"
	"github.com/tradewire/tradewire/internal/testutil/sioclient"
	"github.com/tradewire/tradewire/trading"
)

// acked decodes the first ack argument: acked(t)(c.EmitWithAck(...)).
func acked(t *testing.T) func([]json.RawMessage, error) map[string]any {
	return func(ack []json.RawMessage, err error) map[string]any { t.Helper(); return ackMap(t, ack, err) }
}

func ackMap(t *testing.T, ack []json.RawMessage, err error) map[string]any {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if len(ack) == 0 {
		t.Fatal("empty ack")
	}
	var m map[string]any
	if err := json.Unmarshal(ack[0], &m); err != nil {
		t.Fatalf("ack %s: %v", ack[0], err)
	}
	return m
}

// firstArg decodes an event's first argument.
func firstArg(t *testing.T, ev sioclient.Event) map[string]any {
	t.Helper()
	if len(ev.Args) == 0 {
		t.Fatalf("%s without payload", ev.Name)
	}
	var m map[string]any
	if err := json.Unmarshal(ev.Args[0], &m); err != nil {
		t.Fatalf("%s payload %s: %v", ev.Name, ev.Args[0], err)
	}
	return m
}

// roundTrip sends a ping with ack: everything the server queued for c
// before it handled the ping has arrived when it returns.
func roundTrip(t *testing.T, c *sioclient.Client) {
	t.Helper()
	if _, err := c.EmitWithAck(3*time.Second, "ping"); err != nil {
		t.Fatal(err)
	}
}

func publishOK(t *testing.T, g *testGateway, path, body string) {
	t.Helper()
	code, resp := post(t, g.URL+path, g.DevAPIKey(), body)
	if code != http.StatusAccepted {
		t.Fatalf("POST %s %s: %d %s", path, body, code, resp)
	}
}

func TestSubscriptionFlowsThroughGateway(t *testing.T) {
	g := startGateway(t, "-demo-feed=false")
	c := dialCookie(t, g.URL, devLogin(t, g.URL, "u1", "user").Cookie)

	if a := acked(t)(c.EmitWithAck(3*time.Second, "subscribe:portfolio")); a["success"] != true {
		t.Fatalf("subscribe:portfolio ack %v", a)
	}
	if _, err := c.WaitEvent("subscribed:portfolio", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	publishOK(t, g, "/api/v1/events", `{"type":"portfolio.updated","userId":"u1","portfolio":{"cash":100}}`)
	ev, err := c.WaitEvent("portfolio:updated", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if p := firstArg(t, ev); p["userId"] != "u1" {
		t.Fatalf("portfolio payload %v", p)
	}

	a := acked(t)(c.EmitWithAck(3*time.Second, "subscribe:watchlist", map[string]any{"symbols": []string{"aapl", "MSFT", "aapl"}}))
	if a["success"] != true || fmt.Sprint(a["symbols"]) != "[AAPL MSFT]" {
		t.Fatalf("subscribe:watchlist ack %v", a)
	}
	publishOK(t, g, "/api/v1/events", `{"type":"quote.update","symbol":"AAPL","quote":{"price":187.5}}`)
	ev, err = c.WaitEvent("quote:update", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if q := firstArg(t, ev); q["symbol"] != "AAPL" {
		t.Fatalf("quote payload %v", q)
	}
	st := g.Stats()
	if st.Connections != 1 || st.Users != 1 || st.Rooms < 5 { // own id, user:, portfolio:, 2 watchlists
		t.Fatalf("stats %+v", st)
	}

	// Unsubscribing AAPL keeps MSFT.
	if a := acked(t)(c.EmitWithAck(3*time.Second, "unsubscribe:watchlist", []string{"AAPL"})); a["success"] != true {
		t.Fatalf("unsubscribe:watchlist ack %v", a)
	}
	publishOK(t, g, "/api/v1/events", `{"type":"quote.update","symbol":"AAPL","quote":{"price":1}}`)
	publishOK(t, g, "/api/v1/events", `{"type":"quote.update","symbol":"MSFT","quote":{"price":2}}`)
	ev, err = c.WaitEventN("quote:update", 2, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if q := firstArg(t, ev); q["symbol"] != "MSFT" {
		t.Fatalf("after unsubscribing AAPL the next quote is %v", q)
	}
	if a := acked(t)(c.EmitWithAck(3*time.Second, "unsubscribe:portfolio")); a["success"] != true {
		t.Fatalf("unsubscribe:portfolio ack %v", a)
	}
	publishOK(t, g, "/api/v1/events", `{"type":"portfolio.updated","userId":"u1","portfolio":{"cash":1}}`)
	roundTrip(t, c)
	if n := len(c.EventsNamed("portfolio:updated")); n != 1 {
		t.Fatalf("%d portfolio updates after unsubscribing, want 1", n)
	}
	if n := len(c.EventsNamed("quote:update")); n != 2 {
		t.Fatalf("%d quotes, want 2", n)
	}

	// Refusals: ack {success:false, code} plus an error event.
	for _, tc := range []struct {
		event string
		args  []any
		code  string
	}{
		{"subscribe:admin", nil, "FORBIDDEN"},
		{"subscribe:watchlist", []any{map[string]any{"symbols": 5}}, "INVALID_PAYLOAD"},
		{"subscribe:watchlist", []any{map[string]any{"symbols": []string{"not a symbol!"}}}, "INVALID_PAYLOAD"},
		{"buy:everything", []any{1}, "INVALID_PAYLOAD"},
	} {
		errorsBefore := len(c.EventsNamed("error"))
		a := acked(t)(c.EmitWithAck(3*time.Second, tc.event, tc.args...))
		if a["success"] != false || a["code"] != tc.code {
			t.Fatalf("%s: ack %v, want code %s", tc.event, a, tc.code)
		}
		if _, err := c.WaitEventN("error", errorsBefore+1, 2*time.Second); err != nil {
			t.Fatalf("%s: %v", tc.event, err)
		}
	}
	if c.Closed() {
		t.Fatal("bad input closed the connection")
	}
}

func TestStatsLoopPushesToAdmins(t *testing.T) {
	g := startGateway(t, "-demo-feed=false")
	admin := dialCookie(t, g.URL, devLogin(t, g.URL, "boss", "admin").Cookie)
	user := dialCookie(t, g.URL, devLogin(t, g.URL, "u1", "user").Cookie)
	if a := acked(t)(admin.EmitWithAck(3*time.Second, "subscribe:admin")); a["success"] != true {
		t.Fatalf("subscribe:admin ack %v", a)
	}
	ev, err := admin.WaitEvent("stats:update", 8*time.Second) // pushed every 5s
	if err != nil {
		t.Fatal(err)
	}
	st := firstArg(t, ev)
	if st["nodeId"] != g.cfg.NodeID || st["connections"] != float64(2) || st["users"] != float64(2) || st["draining"] != false || st["limiterMode"] == "" {
		t.Fatalf("stats:update %v", st)
	}
	if ns, _ := st["namespaces"].(map[string]any); ns["/"] != float64(2) {
		t.Fatalf("namespaces %v", st["namespaces"])
	}
	roundTrip(t, user)
	if n := len(user.EventsNamed("stats:update")); n != 0 {
		t.Fatalf("a non-admin got %d stats updates", n)
	}
}

func TestDemoFeedDeliversQuotes(t *testing.T) {
	g := startGateway(t) // dev mode: demo feed on by default
	if !g.cfg.DemoFeed {
		t.Fatal("demo feed off in dev mode")
	}
	c := dialCookie(t, g.URL, devLogin(t, g.URL, "u1", "user").Cookie)
	if a := acked(t)(c.EmitWithAck(3*time.Second, "subscribe:watchlist", map[string]any{"symbols": []string{"AAPL"}})); a["success"] != true {
		t.Fatalf("ack %v", a)
	}
	ev, err := c.WaitEventN("quote:update", 2, 5*time.Second) // one per second
	if err != nil {
		t.Fatal(err)
	}
	q := firstArg(t, ev)
	price, _ := q["price"].(float64)
	if q["symbol"] != "AAPL" || q["source"] != "demo" || price < 150 || price > 230 {
		t.Fatalf("demo quote %v", q)
	}
	for _, e := range c.EventsNamed("quote:update") {
		if s := firstArg(t, e)["symbol"]; s != "AAPL" {
			t.Fatalf("quote for %v delivered to an AAPL-only watchlist", s)
		}
	}
}

func TestDevLoginAndLogoutRejectBadInput(t *testing.T) {
	g := startGateway(t, "-demo-feed=false")
	errCode := func(body string) string {
		var r struct {
			Error struct{ Code, Message string }
		}
		_ = json.Unmarshal([]byte(body), &r)
		return r.Error.Code
	}
	for _, body := range []string{``, `not json`, `{}`, `{"userId":""}`, `{"userId":5}`, `[]`, `{"userId":"` + strings.Repeat("x", 5000) + `"}`} {
		code, resp := post(t, g.URL+"/dev/login", "", body)
		if code != http.StatusBadRequest || errCode(resp) != "INVALID_PAYLOAD" {
			t.Fatalf("login %.40q: %d %s", body, code, resp)
		}
	}
	resp, err := http.Post(g.URL+"/dev/login", "application/json", strings.NewReader(`{"userId":"u5","role":"admin","tier":"enterprise"}`))
	if err != nil {
		t.Fatal(err)
	}
	var login struct{ UserID, Role, Tier, SessionID, Cookie string }
	_ = json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	if login.UserID != "u5" || login.Role != "admin" || login.Tier != "enterprise" || !strings.HasPrefix(login.SessionID, "s:") {
		t.Fatalf("login reply %+v", login)
	}
	var sc *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "connect.sid" {
			sc = ck
		}
	}
	if sc == nil || !sc.HttpOnly || sc.Path != "/" || sc.SameSite != http.SameSiteLaxMode || "connect.sid="+sc.Value != login.Cookie {
		t.Fatalf("Set-Cookie %+v, reply cookie %q", sc, login.Cookie)
	}
	if r, err := http.Get(g.URL + "/dev/login"); err != nil || r.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /dev/login: %v %v", r, err)
	}

	for _, tc := range []struct{ body, code string }{
		{`nope`, "INVALID_PAYLOAD"},
		{`{"sessionID":5}`, "INVALID_PAYLOAD"},
		{`{"sessionID":"s:abc.bad-signature"}`, "UNAUTHORIZED"},
		{`{"sessionID":"` + strings.TrimPrefix(login.SessionID, "s:") + `"}`, "UNAUTHORIZED"}, // unsigned
		{`{}`, "UNAUTHORIZED"},
	} {
		code, resp := post(t, g.URL+"/dev/logout", "", tc.body)
		if code != http.StatusBadRequest || errCode(resp) != tc.code {
			t.Fatalf("logout %q: %d %s, want %s", tc.body, code, resp, tc.code)
		}
	}
	// The session survived the bad logouts; a good one ends it.
	c := dialCookie(t, g.URL, login.Cookie)
	if code, resp := post(t, g.URL+"/dev/logout", "", `{"sessionID":"`+login.SessionID+`"}`); code != 200 || !strings.Contains(resp, `"success":true`) {
		t.Fatalf("logout: %d %s", code, resp)
	}
	if err := c.WaitClosed(6 * time.Second); err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("Cookie", login.Cookie)
	_, err = sioclient.Dial(g.URL, sioclient.Options{Header: h})
	var ce *sioclient.ConnectError
	if !asConnectError(err, &ce) || ce.Data["code"] == nil {
		t.Fatalf("dial after logout: %v", err)
	}
}

func TestPublishEmitRoomsAndExcept(t *testing.T) {
	g := startGateway(t, "-demo-feed=false")
	clients := map[string]*sioclient.Client{}
	for _, u := range []string{"u1", "u2", "u3"} {
		clients[u] = dialCookie(t, g.URL, devLogin(t, g.URL, u, "user").Cookie)
		roundTrip(t, clients[u])
	}
	publishOK(t, g, "/api/v1/emit", `{"rooms":["user:u1","user:u2"],"except":["user:u2"],"event":"custom:hello","data":{"x":1}}`)
	publishOK(t, g, "/api/v1/emit", `{"event":"custom:all"}`)
	publishOK(t, g, "/api/v1/emit", `[{"rooms":["user:u3"],"event":"b1"},{"rooms":["user:u3"],"event":"b2","data":"s"}]`)
	for _, c := range clients {
		if _, err := c.WaitEvent("custom:all", 3*time.Second); err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c)
	}
	want := map[string]map[string]int{
		"u1": {"custom:hello": 1, "custom:all": 1, "b1": 0, "b2": 0},
		"u2": {"custom:hello": 0, "custom:all": 1, "b1": 0, "b2": 0},
		"u3": {"custom:hello": 0, "custom:all": 1, "b1": 1, "b2": 1},
	}
	for u, events := range want {
		for ev, n := range events {
			if got := len(clients[u].EventsNamed(ev)); got != n {
				t.Errorf("%s got %d %s, want %d", u, got, ev, n)
			}
		}
	}
	hello := clients["u1"].EventsNamed("custom:hello")
	if len(hello) == 1 && (len(hello[0].Args) == 0 || string(hello[0].Args[0]) != `{"x":1}`) {
		t.Errorf("custom:hello args %s", hello[0].Args)
	}
	if all := clients["u2"].EventsNamed("custom:all"); len(all) == 1 && len(all[0].Args) > 0 {
		var s string
		if json.Unmarshal(all[0].Args[0], &s) != nil { // a recovery offset is a string; nothing else may be there
			t.Errorf("custom:all without data carried %s", all[0].Args)
		}
	}
	for _, tc := range []struct {
		body string
		code int
	}{
		{`{"event":"connect"}`, http.StatusBadRequest},
		{`{"event":""}`, http.StatusBadRequest},
		{`{"event":"x","rooms":[""]}`, http.StatusBadRequest},
		{`{"event":"x","unknown":1}`, http.StatusBadRequest},
	} {
		if code, body := post(t, g.URL+"/api/v1/emit", g.DevAPIKey(), tc.body); code != tc.code || !strings.Contains(body, "INVALID_EVENT") {
			t.Errorf("emit %s: %d %s", tc.body, code, body)
		}
	}
	if code, _ := post(t, g.URL+"/api/v1/emit", "", `{"event":"x"}`); code != http.StatusUnauthorized {
		t.Errorf("emit without key: %d", code)
	}
}

func TestEmitterAndHandlerAccessors(t *testing.T) {
	g := startGateway(t, "-demo-feed=false")
	c := dialCookie(t, g.URL, devLogin(t, g.URL, "u1", "user").Cookie)
	// The user room is joined after the CONNECT reply is written (see
	// report): an acked event proves the socket is set up.
	roundTrip(t, c)
	if err := g.Emitter().Notify(context.Background(), "u1", trading.Notification{Title: "Hi", Message: "there"}); err != nil {
		t.Fatal(err)
	}
	ev, err := c.WaitEvent("notification", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if n := firstArg(t, ev); n["userId"] != "u1" {
		t.Fatalf("notification %v", n)
	}
	if n := g.SocketIO().Engine().Count(); n != 1 {
		t.Fatalf("engine count %d", n)
	}
	// Handler serves the same routes on another server.
	hs := httptest.NewServer(g.Handler())
	defer hs.Close()
	r, err := http.Get(hs.URL + "/healthz")
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("healthz via Handler: %v %v", r, err)
	}
	r.Body.Close()
}

func TestEngineRejectionsAreCounted(t *testing.T) {
	g := startGateway(t, "-demo-feed=false")
	do := func(method, q string, hdr map[string]string) int {
		req, _ := http.NewRequest(method, g.URL+"/socket.io/?"+q, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	cases := []struct {
		method, q string
		hdr       map[string]string
		status    int
		label     string
	}{
		{"GET", "EIO=4&transport=carrier-pigeon", nil, 400, "transport_unknown"},
		{"GET", "EIO=4&transport=polling&sid=nosuchsessionxxxxxxx", nil, 400, "session_id_unknown"},
		{"POST", "EIO=4&transport=polling", nil, 400, "bad_handshake_method"},
		{"GET", "EIO=4&transport=websocket", nil, 400, "bad_request"},
		{"GET", "EIO=4&transport=polling", map[string]string{"Origin": "https://evil.example"}, 403, "forbidden"},
		{"GET", "EIO=3&transport=polling", nil, 400, "unsupported_protocol_version"},
	}
	for _, tc := range cases {
		if got := do(tc.method, tc.q, tc.hdr); got != tc.status {
			t.Errorf("%s %s: HTTP %d, want %d", tc.method, tc.q, got, tc.status)
		}
	}
	resp, err := http.Get(g.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, tc := range cases {
		line := `tradewire_handshake_failures_total{code="` + tc.label + `"} 1`
		if !strings.Contains(string(b), line) {
			t.Errorf("metrics lack %s:\n%s", line, grepLines(string(b), "handshake_failures"))
		}
	}
	if engineCode(99) != "other" {
		t.Errorf("engineCode(99) = %q", engineCode(99))
	}
}

func TestGoroutineWebSocketMode(t *testing.T) {
	g := startGateway(t, "-demo-feed=false", "-ws-mode=goroutine", "-drain-window=200ms")
	if g.cfg.WSMode != "goroutine" {
		t.Fatalf("ws mode %q", g.cfg.WSMode)
	}
	login := devLogin(t, g.URL, "u1", "user")
	var cs []*sioclient.Client
	for range 5 {
		cs = append(cs, dialCookie(t, g.URL, login.Cookie))
	}
	if a := acked(t)(cs[0].EmitWithAck(3*time.Second, "subscribe:trades")); a["success"] != true {
		t.Fatalf("ack %v", a)
	}
	publishOK(t, g, "/api/v1/events", `{"type":"trade.executed","userId":"u1","trade":{"symbol":"NVDA","side":"buy","quantity":1,"price":2}}`)
	if _, err := cs[0].WaitEvent("trade:executed", 3*time.Second); err != nil {
		t.Fatal(err)
	}
	g.stop(t)
	for i, c := range cs {
		if _, err := c.WaitEvent("server:shutdown", 2*time.Second); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		if err := c.WaitClosed(2 * time.Second); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
}

// TestShutdownNoticeReachesEveryClient: with no drain window all clients
// are closed at once; in-process (no exit racing the writes) every one
// still gets server:shutdown first.
func TestShutdownNoticeReachesEveryClient(t *testing.T) {
	g := startGateway(t, "-demo-feed=false", "-drain-window=0s", "-rate-connections-per-minute=100000", "-ws-mode=epoll")
	cs := dialN(t, g.URL, devLogin(t, g.URL, "u1", "user").Cookie, 300)
	g.stop(t)
	lost := 0
	for _, c := range cs {
		if _, err := c.WaitEvent("server:shutdown", 3*time.Second); err != nil {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d clients never got server:shutdown", lost, len(cs))
	}
}

func dialN(t *testing.T, base, cookie string, n int) []*sioclient.Client {
	t.Helper()
	out := make([]*sioclient.Client, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	h := http.Header{}
	h.Set("Cookie", cookie)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i], errs[i] = sioclient.Dial(base, sioclient.Options{Header: h, Timeout: 10 * time.Second})
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range out {
			if c != nil {
				c.Close()
			}
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	return out
}

// goroutineStacks returns the other live goroutines grouped by stack
// (function names and files, without arguments and offsets).
func goroutineStacks() map[string]int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]int{}
	for i, block := range strings.Split(string(buf), "\n\n") {
		if i == 0 {
			continue // this goroutine
		}
		lines := strings.Split(block, "\n")
		var key []string
		for _, l := range lines[1:] {
			l = strings.TrimSpace(l)
			if j := strings.LastIndex(l, "("); j > 0 && !strings.HasPrefix(l, "/") {
				l = l[:j]
			}
			if j := strings.LastIndex(l, " +0x"); j > 0 {
				l = l[:j]
			}
			if strings.HasPrefix(l, "created by ") {
				if j := strings.Index(l, " in goroutine"); j > 0 {
					l = l[:j]
				}
			}
			key = append(key, l)
		}
		out[strings.Join(key, "\n")]++
	}
	return out
}

// gatewayCycle starts a gateway, connects n clients (half subscribe to a
// room), disconnects half of them from the client side, then shuts down.
func gatewayCycle(t *testing.T, mode string, n int) {
	t.Helper()
	g := startGateway(t, "-demo-feed=false", "-ws-mode="+mode, "-drain-window=100ms", "-rate-connections-per-minute=100000")
	cs := dialN(t, g.URL, devLogin(t, g.URL, "u1", "user").Cookie, n)
	for i, c := range cs {
		if i%2 == 0 {
			if _, err := c.EmitWithAck(3*time.Second, "subscribe:watchlist", []string{"AAPL"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range cs[:n/2] {
		c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for g.SocketIO().Engine().Count() > n-n/2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	g.stop(t)
	for i, c := range cs[n/2:] {
		if err := c.WaitClosed(5 * time.Second); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		c.Close() // release the client's end of the socket
	}
	http.DefaultClient.CloseIdleConnections()
}

// openFDs counts this process's open file descriptors (-1 when unknown).
func openFDs() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(entries)
}

func TestNoGoroutineLeak(t *testing.T) {
	for _, mode := range []string{"epoll", "goroutine"} {
		t.Run(mode, func(t *testing.T) {
			gatewayCycle(t, mode, 5) // process-wide lazy goroutines start here
			settle := func(limit int) int {
				var n int
				for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
					runtime.GC()
					if n = runtime.NumGoroutine(); n <= limit {
						break
					}
				}
				return n
			}
			// Baseline: the count once it holds still.
			before := runtime.NumGoroutine()
			for i := 0; i < 60; i++ {
				time.Sleep(50 * time.Millisecond)
				runtime.GC()
				n := runtime.NumGoroutine()
				if n == before {
					break
				}
				before = n
			}
			fdsBefore := openFDs()
			stacksBefore := goroutineStacks()
			gatewayCycle(t, mode, 200)
			after := settle(before)
			fdsAfter := openFDs()
			t.Logf("%s: goroutines before %d, after a gateway with 200 clients %d; open files %d -> %d", mode, before, after, fdsBefore, fdsAfter)
			if fdsBefore >= 0 && fdsAfter > fdsBefore {
				t.Errorf("%d file descriptors leaked by one gateway lifecycle", fdsAfter-fdsBefore)
			}
			if after > before {
				var leaked []string
				for stack, n := range goroutineStacks() {
					if d := n - stacksBefore[stack]; d > 0 {
						leaked = append(leaked, fmt.Sprintf("+%d\n%s", d, stack))
					}
				}
				sort.Strings(leaked)
				t.Errorf("%d goroutines leaked by one gateway lifecycle:\n%s", after-before, strings.Join(leaked, "\n\n"))
			}
		})
	}
}

func TestNewRedisURLs(t *testing.T) {
	for _, tc := range []struct {
		target config.RedisTarget
		ok     bool
	}{
		{config.RedisTarget{ClientURL: "redis://127.0.0.1:1/0"}, true},
		{config.RedisTarget{ClientURL: "http://127.0.0.1:1"}, false},
		{config.RedisTarget{ClientURL: "redis://127.0.0.1:1/notanumber"}, false},
		{config.RedisTarget{Cluster: true, ClientURL: "redis://127.0.0.1:1?addr=127.0.0.1:2"}, true},
		{config.RedisTarget{Cluster: true, ClientURL: "http://127.0.0.1:1"}, false},
	} {
		rdb, err := newRedis(&config.Config{Redis: tc.target})
		if tc.ok {
			if err != nil || rdb == nil {
				t.Errorf("%+v: %v", tc.target, err)
				continue
			}
			if _, isCluster := rdb.(*redis.ClusterClient); isCluster != tc.target.Cluster {
				t.Errorf("%+v: got %T", tc.target, rdb)
			}
			rdb.Close()
			continue
		}
		if err == nil || !strings.HasPrefix(err.Error(), "TRADEWIRE_REDIS_URL: ") {
			t.Errorf("%+v: error %v, want one naming TRADEWIRE_REDIS_URL", tc.target, err)
		}
	}
}

func loadConfig(t *testing.T, args ...string) *config.Config {
	t.Helper()
	cfg, err := config.Load(testArgs(append([]string{"-addr", "127.0.0.1:0", "-log-level", "error"}, args...)), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestNewFailsOnBadSettings(t *testing.T) {
	// Settings that pass config validation one by one but cannot be used.
	cfg := loadConfig(t, "-redis-url", "redis://127.0.0.1:1", "-session-store", "redis", "-session-secrets", "s")
	cfg.Redis.ClientURL = "http://not-redis"
	if _, err := New(context.Background(), cfg, quietLog()); err == nil || !strings.Contains(err.Error(), "TRADEWIRE_REDIS_URL") {
		t.Errorf("bad Redis URL: %v", err)
	}
	cfg = loadConfig(t, "-mongo-url", "mongodb://127.0.0.1:1", "-session-secrets", "s")
	if _, err := New(context.Background(), cfg, quietLog()); err == nil || !strings.Contains(err.Error(), "TRADEWIRE_MONGO_URL") {
		t.Errorf("Mongo URL without a database: %v", err)
	}
	cfg = loadConfig(t, "-redis-url", "redis://127.0.0.1:1", "-session-store", "redis", "-session-secrets", "s", "-mongo-url", "mongodb://127.0.0.1:1")
	if _, err := New(context.Background(), cfg, quietLog()); err == nil || !strings.Contains(err.Error(), "TRADEWIRE_MONGO_URL") {
		t.Errorf("redis sessions with a Mongo URL without a database: %v", err)
	}
	cfg = loadConfig(t, "-redis-url", "redis://127.0.0.1:1", "-session-store", "redis", "-session-secrets", "s")
	cfg.SessionSecrets = nil
	if _, err := New(context.Background(), cfg, quietLog()); err == nil || !strings.Contains(err.Error(), "session auth") {
		t.Errorf("no secrets: %v", err)
	}
	cfg = loadConfig(t)
	cfg.RateEventsPerMinute = 1 << 40
	if _, err := New(context.Background(), cfg, quietLog()); err == nil || !strings.Contains(err.Error(), "rate limits") {
		t.Errorf("rate out of range: %v", err)
	}
}

func TestAdvertiseURL(t *testing.T) {
	host, _ := os.Hostname()
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("10.0.0.7"), Port: 8080}, "http://10.0.0.7:8080"},
		{&net.TCPAddr{IP: net.ParseIP("::1"), Port: 80}, "http://[::1]:80"},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 9000}, "http://" + net.JoinHostPort(host, "9000")},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 9001}, "http://" + net.JoinHostPort(host, "9001")},
		{&net.TCPAddr{Port: 9002}, "http://" + net.JoinHostPort(host, "9002")},
		{&net.UnixAddr{Name: "/run/tw.sock", Net: "unix"}, "http:///run/tw.sock"},
	} {
		if got := advertiseURL(tc.addr); got != tc.want {
			t.Errorf("advertiseURL(%v) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

func TestProductionModeWithRedis(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	g := startClusterNode(t, srv.URL())
	if g.DevAPIKey() != "" {
		t.Fatal("dev API key outside dev mode")
	}
	code, _ := post(t, g.URL+"/dev/login", "", `{"userId":"u1"}`)
	if code != http.StatusNotFound {
		t.Fatalf("/dev/login outside dev mode: %d", code)
	}
	r, err := http.Get(g.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if !strings.Contains(string(b), "production") {
		t.Fatalf("index %q", b)
	}
	// The node advertises its listener for session forwarding (written as
	// the node starts serving: wait for it).
	var u string
	poll.Check(5*time.Second, func() bool {
		u, err = rdb.Get(context.Background(), "tradewire:route:"+g.router.Tag()).Result()
		return err == nil
	})
	if err != nil || !strings.HasPrefix(u, g.URL+"#sig=") {
		t.Fatalf("advertised %q (%v), want %q signed", u, err, g.URL)
	}
	// A session the store does not know is refused with a stable code.
	h := http.Header{}
	h.Set("Cookie", "connect.sid="+url.QueryEscape(auth.Sign("nosuchsession", testSecret)))
	_, err = sioclient.Dial(g.URL, sioclient.Options{Header: h})
	var ce *sioclient.ConnectError
	if !asConnectError(err, &ce) || ce.Data["code"] == nil {
		t.Fatalf("unknown session: %v", err)
	}
	// Redis down: lookups fail with a store error, not a crash.
	good := seedSession(t, rdb, "sid-redis-down-aaaaaaaaaaaaaaaa", "u1")
	srv.Kill()
	h.Set("Cookie", good)
	_, err = sioclient.Dial(g.URL, sioclient.Options{Header: h, Timeout: 10 * time.Second})
	if !asConnectError(err, &ce) {
		t.Fatalf("Redis down: %v", err)
	}
	t.Logf("connect_error with Redis down: %v %v", ce.Message, ce.Data)
	resp, err := http.Get(g.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(m), `tradewire_session_lookup_errors_total{code=`) {
		t.Fatalf("no session lookup error counted:\n%s", grepLines(string(m), "session_lookup_errors"))
	}
	// Readiness reports Redis (results are cached for a second).
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err = http.Get(g.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz with Redis down: %d", resp.StatusCode)
		}
	}
}

// TestMongoSessionsAndUsers runs the gateway with connect-mongo sessions and
// users in a real MongoDB-wire server (FerretDB or TRADEWIRE_TEST_MONGO_URL).
func TestMongoSessionsAndUsers(t *testing.T) {
	mongoURL := mongotest.Start(t)
	client, db, err := mongostore.Connect(mongoURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	defer client.Disconnect(ctx)
	sess := `{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"},"passport":{"user":"m-admin"}}`
	if _, err := db.Collection("sessions").InsertOne(ctx, bson.D{{Key: "_id", Value: "mongo-sid-1"}, {Key: "expires", Value: time.Now().Add(time.Hour)}, {Key: "session", Value: sess}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection("users").InsertOne(ctx, bson.D{{Key: "_id", Value: "m-admin"}, {Key: "role", Value: "admin"}, {Key: "subscriptionTier", Value: "enterprise"}}); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, "-mongo-url", mongoURL, "-session-secrets", testSecret, "-api-keys", testAPIKey, "-demo-feed=false")
	h := http.Header{}
	h.Set("Cookie", "connect.sid="+url.QueryEscape(auth.Sign("mongo-sid-1", testSecret)))
	c, err := sioclient.Dial(g.URL, sioclient.Options{Header: h, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The role comes from the users collection.
	if a := acked(t)(c.EmitWithAck(5*time.Second, "subscribe:admin")); a["success"] != true {
		t.Fatalf("subscribe:admin with a Mongo admin: %v", a)
	}
	resp, err := http.Get(g.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "mongo") {
		t.Fatalf("readyz %d %s", resp.StatusCode, b)
	}
	// Deleting the session document disconnects the socket.
	if _, err := db.Collection("sessions").DeleteOne(ctx, bson.D{{Key: "_id", Value: "mongo-sid-1"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitClosed(10 * time.Second); err != nil {
		t.Fatalf("socket of a deleted session: %v", err)
	}
}

// TestRedisSessionsWithMongoUsers: connect-redis sessions, users in Mongo.
func TestRedisSessionsWithMongoUsers(t *testing.T) {
	mongoURL := mongotest.Start(t)
	client, db, err := mongostore.Connect(mongoURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	defer client.Disconnect(ctx)
	if _, err := db.Collection("users").InsertOne(ctx, bson.D{{Key: "_id", Value: "r-user"}, {Key: "role", Value: "user"}, {Key: "subscriptionTier", Value: "free"}}); err != nil {
		t.Fatal(err)
	}
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	g := startGateway(t, "-redis-url", srv.URL(), "-session-store", "redis", "-mongo-url", mongoURL,
		"-session-secrets", testSecret, "-api-keys", testAPIKey, "-demo-feed=false")
	h := http.Header{}
	h.Set("Cookie", seedSession(t, rdb, "sid-redis-mongo-aaaaaaaaaaaaaaa", "r-user"))
	c, err := sioclient.Dial(g.URL, sioclient.Options{Header: h, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Free tier: at most 10 watchlist symbols.
	syms := make([]string, 11)
	for i := range syms {
		syms[i] = "SYM" + string(rune('A'+i))
	}
	a := acked(t)(c.EmitWithAck(5*time.Second, "subscribe:watchlist", syms))
	if a["success"] != false || a["code"] != "SUBSCRIPTION_LIMIT" {
		t.Fatalf("11 symbols on the free tier (tier from Mongo): %v", a)
	}
}

// TestSlowConsumerIsDisconnected: a client that stops reading is closed
// once its send queue is over the limit, the metrics say so, and the
// publish API and the other clients carry on.
func TestSlowConsumerIsDisconnected(t *testing.T) {
	g := startGateway(t, "-demo-feed=false", "-send-queue-limit=64KiB")
	login := devLogin(t, g.URL, "slow", "user")
	other := dialCookie(t, g.URL, devLogin(t, g.URL, "fast", "user").Cookie)
	roundTrip(t, other)
	h := http.Header{}
	h.Set("Cookie", login.Cookie)
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(g.URL, "http", "ws", 1)+"/socket.io/?EIO=4&transport=websocket", h)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); err != nil { // open
		t.Fatal(err)
	}
	_ = ws.WriteMessage(websocket.TextMessage, []byte("40"))
	if _, msg, err := ws.ReadMessage(); err != nil || !strings.HasPrefix(string(msg), "40") {
		t.Fatalf("connect: %q %v", msg, err)
	}
	// Stop reading; publish far more than the socket buffers and the queue hold.
	big := strings.Repeat("x", 200_000)
	items := make([]string, 4)
	for i := range items {
		items[i] = `{"rooms":["user:slow"],"event":"bulk","data":"` + big + `"}`
	}
	batch := "[" + strings.Join(items, ",") + "]"
	client := &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for g.SocketIO().Engine().Count() > 1 && time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodPost, g.URL+"/api/v1/emit", strings.NewReader(batch))
		req.Header.Set("Authorization", "Bearer "+g.DevAPIKey())
		resp, err := client.Do(req)
		if err != nil {
			// Leave the wedged gateway behind: stopping it would hang too.
			g.cancel()
			g.done <- nil
			t.Fatalf("publish to a slow consumer blocked for 10s (%v): the namespace is deadlocked "+
				"(Namespace.Deliver holds n.mu.RLock while Session.Send closes the slow consumer, whose "+
				"onClose calls Namespace.removeSocket -> n.mu.Lock)", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("publish: %d", resp.StatusCode)
		}
	}
	if n := g.SocketIO().Engine().Count(); n != 1 {
		t.Fatalf("%d sessions, want only the reading client left", n)
	}
	resp, err := http.Get(g.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(m), "tradewire_slow_consumer_disconnects_total 0") {
		t.Errorf("no slow-consumer disconnect counted:\n%s", grepLines(string(m), "slow_consumer"))
	}
	// The other client is unaffected.
	publishOK(t, g, "/api/v1/emit", `{"rooms":["user:fast"],"event":"still:here"}`)
	if _, err := other.WaitEvent("still:here", 3*time.Second); err != nil {
		t.Fatal(err)
	}
}
