package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/auth"
	"github.com/tradewire/tradewire/internal/testutil/redistest"
	"github.com/tradewire/tradewire/internal/testutil/sioclient"
	"github.com/tradewire/tradewire/trading"
)

const (
	testSecret = "cluster-test-secret"
	testAPIKey = "cluster-test-api-key-0001"
)

// seedSession writes a connect-redis session and returns its cookie header.
func seedSession(t *testing.T, rdb *redis.Client, sid, user string) string {
	t.Helper()
	v := `{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"},"passport":{"user":"` + user + `"}}`
	if err := rdb.Set(context.Background(), "sess:"+sid, v, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	return "connect.sid=" + url.QueryEscape(auth.Sign(sid, testSecret))
}

func startClusterNode(t *testing.T, redisURL string) *testGateway {
	return startGateway(t, "-redis-url", redisURL, "-session-store", "redis", "-session-secrets", testSecret,
		"-api-keys", testAPIKey, "-demo-feed=false", "-rate-connections-per-minute", "1000")
}

func TestTwoNodesShareRooms(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	a := startClusterNode(t, srv.URL())
	b := startClusterNode(t, srv.URL())

	cookie := seedSession(t, rdb, "sid-two-nodes-u1-aaaaaaaaaaaaaa", "u1")
	h := http.Header{}
	h.Set("Cookie", cookie)
	c, err := sioclient.Dial(b.URL, sioclient.Options{Header: h})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.EmitWithAck(3*time.Second, "subscribe:trades"); err != nil {
		t.Fatal(err)
	}
	code, body := post(t, a.URL+"/api/v1/events", testAPIKey,
		`{"type":"trade.executed","userId":"u1","trade":{"symbol":"MSFT","side":"sell","quantity":1,"price":2}}`)
	if code != http.StatusAccepted {
		t.Fatalf("publish on node A: %d %s", code, body)
	}
	if _, err := c.WaitEvent("trade:executed", 5*time.Second); err != nil {
		t.Fatalf("event published on node A did not reach the client on node B: %v", err)
	}
	// Readiness includes the adapter.
	resp, err := http.Get(a.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(rb), "redis-adapter") {
		t.Fatalf("readyz %d %s", resp.StatusCode, rb)
	}
}

// roundRobin proxies each request (websocket upgrades included) to the next
// backend, with no stickiness at all.
func roundRobin(t *testing.T, backends ...string) *httptest.Server {
	var n atomic.Int64
	var proxies []*httputil.ReverseProxy
	for _, b := range backends {
		u, _ := url.Parse(b)
		proxies = append(proxies, &httputil.ReverseProxy{
			Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(u); pr.Out.Host = pr.In.Host },
			FlushInterval: -1,
		})
	}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxies[int(n.Add(1))%len(proxies)].ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func TestRoundRobinPollingWithoutStickySessions(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	a := startClusterNode(t, srv.URL())
	b := startClusterNode(t, srv.URL())
	lb := roundRobin(t, a.URL, b.URL)
	cookie := seedSession(t, rdb, "sid-round-robin-u7-aaaaaaaaaaaaa", "u7")

	client := &http.Client{Timeout: 10 * time.Second}
	do := func(method, q, body string) string {
		t.Helper()
		req, _ := http.NewRequest(method, lb.URL+"/socket.io/?EIO=4&transport=polling"+q, strings.NewReader(body))
		req.Header.Set("Cookie", cookie)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s %s: %d %s", method, q, resp.StatusCode, b)
		}
		return string(b)
	}
	open := do("GET", "", "")
	var hs struct{ SID string }
	if err := json.Unmarshal([]byte(strings.TrimPrefix(open, "0")), &hs); err != nil {
		t.Fatalf("open %q: %v", open, err)
	}
	q := "&sid=" + hs.SID
	if got := do("POST", q, "40"); got != "ok" {
		t.Fatalf("connect post: %q", got)
	}
	if got := do("GET", q, ""); !strings.HasPrefix(got, "40{") {
		t.Fatalf("connect reply: %q", got)
	}
	if got := do("POST", q, `420["subscribe:trades"]`); got != "ok" {
		t.Fatalf("subscribe: %q", got)
	}
	// Collect polls until the ack arrives (events and acks may share a poll).
	deadline := time.Now().Add(5 * time.Second)
	var polled string
	for !strings.Contains(polled, `430[{"success":true}]`) && time.Now().Before(deadline) {
		polled += do("GET", q, "") + "\x1e"
	}
	if !strings.Contains(polled, `430[{"success":true}]`) {
		t.Fatalf("no subscribe ack over round-robin polling: %q", polled)
	}
	for _, node := range []*testGateway{a, b} {
		code, body := post(t, node.URL+"/api/v1/events", testAPIKey,
			`{"type":"trade.executed","userId":"u7","trade":{"symbol":"AAPL","side":"buy","quantity":1,"price":1}}`)
		if code != http.StatusAccepted {
			t.Fatalf("publish: %d %s", code, body)
		}
		if got := do("GET", q, ""); !strings.Contains(got, `trade:executed`) {
			t.Fatalf("poll after publish: %q", got)
		}
	}

	// Upgrade to websocket through the same load balancer.
	wsURL := strings.Replace(lb.URL, "http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket&sid=" + hs.SID
	h := http.Header{}
	h.Set("Cookie", cookie)
	ws, _, err := websocket.DefaultDialer.Dial(wsURL, h)
	if err != nil {
		t.Fatalf("upgrade through the balancer: %v", err)
	}
	defer ws.Close()
	_ = ws.WriteMessage(websocket.TextMessage, []byte("2probe"))
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := ws.ReadMessage()
	if err != nil || string(msg) != "3probe" {
		t.Fatalf("probe: %q %v", msg, err)
	}
	_ = ws.WriteMessage(websocket.TextMessage, []byte("5"))
	code, body := post(t, a.URL+"/api/v1/events", testAPIKey,
		`{"type":"trade.executed","userId":"u7","trade":{"symbol":"TSLA","side":"buy","quantity":3,"price":1}}`)
	if code != http.StatusAccepted {
		t.Fatalf("publish: %d %s", code, body)
	}
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("no event over the upgraded websocket: %v", err)
		}
		if strings.Contains(string(msg), "TSLA") {
			break
		}
	}
}

func tradeNumbers(c *sioclient.Client) []int {
	var out []int
	for _, e := range c.EventsNamed("trade:executed") {
		var p struct {
			Trade struct {
				N int `json:"n"`
			} `json:"trade"`
		}
		_ = json.Unmarshal(e.Args[0], &p)
		out = append(out, p.Trade.N)
	}
	return out
}

func publishTrade(t *testing.T, base, user string, n int) {
	t.Helper()
	code, body := post(t, base+"/api/v1/events", testAPIKey,
		`{"type":"trade.executed","userId":"`+user+`","trade":{"symbol":"AAPL","side":"buy","quantity":1,"price":1,"n":`+strconvI(n)+`}}`)
	if code != http.StatusAccepted {
		t.Fatalf("publish %d: %d %s", n, code, body)
	}
}

func strconvI(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestRecoveryOnAnotherNode(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	a := startClusterNode(t, srv.URL())
	b := startClusterNode(t, srv.URL())
	cookie := seedSession(t, rdb, "sid-recovery-u9-aaaaaaaaaaaaaaaa", "u9")
	h := http.Header{}
	h.Set("Cookie", cookie)

	c1, err := sioclient.Dial(a.URL, sioclient.Options{Header: h})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c1.EmitWithAck(3*time.Second, "subscribe:trades"); err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 3; n++ {
		publishTrade(t, a.URL, "u9", n)
	}
	if _, err := c1.WaitEventN("trade:executed", 3, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	pid, offset := c1.PID(), c1.LastOffset()
	if pid == "" || offset == "" {
		t.Fatalf("no pid/offset: %q %q", pid, offset)
	}
	c1.Close() // the network drops
	time.Sleep(200 * time.Millisecond)
	for n := 4; n <= 6; n++ {
		publishTrade(t, b.URL, "u9", n)
	}
	// Reconnect to the other node with the recovery credentials.
	c2, err := sioclient.Dial(b.URL, sioclient.Options{Header: h, Auth: map[string]any{"pid": pid, "offset": offset}})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if c2.PID() != pid {
		t.Fatalf("not recovered: pid %q, want %q", c2.PID(), pid)
	}
	if _, err := c2.WaitEventN("trade:executed", 3, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	publishTrade(t, a.URL, "u9", 7)
	if _, err := c2.WaitEventN("trade:executed", 4, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	got := tradeNumbers(c2)
	if want := []int{4, 5, 6, 7}; !equalInts(got, want) {
		t.Fatalf("events after recovery %v, want %v", got, want)
	}

	// An offset that is not in the stream: not recovered, nothing replayed.
	c3, err := sioclient.Dial(b.URL, sioclient.Options{Header: h, Auth: map[string]any{"pid": pid, "offset": "1-0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if c3.PID() == pid {
		t.Fatal("recovered from an offset that is not in the stream")
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(c3.EventsNamed("trade:executed")); n != 0 {
		t.Fatalf("unrecovered client got %d replayed events", n)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func getJSON(t *testing.T, url, key string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(v)
	return resp.StatusCode
}

func TestClusterViews(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	a := startClusterNode(t, srv.URL())
	b := startClusterNode(t, srv.URL())
	h := http.Header{}
	h.Set("Cookie", seedSession(t, rdb, "sid-views-u5-aaaaaaaaaaaaaaaaaaa", "u5"))
	var clients []*sioclient.Client
	for _, base := range []string{a.URL, b.URL, b.URL} {
		c, err := sioclient.Dial(base, sioclient.Options{Header: h})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	if _, err := clients[2].EmitWithAck(3*time.Second, "subscribe:trades"); err != nil {
		t.Fatal(err)
	}
	var uc struct{ Connections int }
	if code := getJSON(t, a.URL+"/api/v1/users/u5/connections", testAPIKey, &uc); code != 200 || uc.Connections != 3 {
		t.Fatalf("user connections from node A: %d %+v, want 3 across both nodes", code, uc)
	}
	var rs struct{ Sockets []string }
	if code := getJSON(t, a.URL+"/api/v1/rooms/trades:u5/sockets", testAPIKey, &rs); code != 200 || len(rs.Sockets) != 1 || rs.Sockets[0] != clients[2].ID() {
		t.Fatalf("room sockets: %d %+v", code, rs)
	}
	var st Stats
	if code := getJSON(t, a.URL+"/api/v1/stats", testAPIKey, &st); code != 200 || st.Cluster == nil ||
		len(st.Cluster.Nodes) != 2 || st.Cluster.Connections != 3 || st.Cluster.Users != 1 {
		t.Fatalf("cluster stats: %d %+v", code, st.Cluster)
	}
	if code := getJSON(t, a.URL+"/api/v1/users/u5/connections", "", &uc); code != 401 {
		t.Fatalf("no key: %d", code)
	}
}

// A recovery pid is not a credential: restoring another user's session
// with one's own login is refused.
func TestRecoveryOfAnotherUsersSessionIsRefused(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	a := startClusterNode(t, srv.URL())
	victim := http.Header{}
	victim.Set("Cookie", seedSession(t, rdb, "sid-victim-aaaaaaaaaaaaaaaaaaaaaa", "victim"))
	attacker := http.Header{}
	attacker.Set("Cookie", seedSession(t, rdb, "sid-attacker-aaaaaaaaaaaaaaaaaaaa", "attacker"))
	c, err := sioclient.Dial(a.URL, sioclient.Options{Header: victim})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.EmitWithAck(3*time.Second, "subscribe:trades"); err != nil {
		t.Fatal(err)
	}
	publishTrade(t, a.URL, "victim", 1)
	if _, err := c.WaitEvent("trade:executed", 3*time.Second); err != nil {
		t.Fatal(err)
	}
	pid, off := c.PID(), c.LastOffset()
	c.Close()
	time.Sleep(200 * time.Millisecond)
	_, err = sioclient.Dial(a.URL, sioclient.Options{Header: attacker, Auth: map[string]any{"pid": pid, "offset": off}})
	ce, ok := err.(*sioclient.ConnectError)
	if !ok || ce.Data["code"] != "FORBIDDEN" {
		t.Fatalf("attacker restoring the victim's session: %v, want FORBIDDEN", err)
	}
	// The refusal left the victim's saved state alone: the victim recovers.
	oldID := c.ID()
	v, err := sioclient.Dial(a.URL, sioclient.Options{Header: victim, Auth: map[string]any{"pid": pid, "offset": off}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if v.ID() != oldID {
		t.Fatalf("victim got socket %s, want its recovered %s", v.ID(), oldID)
	}
}

// A single node with memory sessions and in-process recovery: the same.
func TestRefusedRecoveryKeepsTheVictimsState(t *testing.T) {
	g := startGateway(t, "-demo-feed=false", "-rate-connections-per-minute", "1000")
	victim := devLogin(t, g.URL, "victim", "user")
	attacker := devLogin(t, g.URL, "attacker", "user")
	c := dialCookie(t, g.URL, victim.Cookie)
	if _, err := c.EmitWithAck(3*time.Second, "subscribe:trades"); err != nil {
		t.Fatal(err)
	}
	if err := g.Emitter().Notify(context.Background(), "victim", trading.Notification{Title: "t", Message: "m"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitEvent(trading.EventNotification, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	pid, off, oldID := c.PID(), c.LastOffset(), c.ID()
	c.Close()
	time.Sleep(200 * time.Millisecond)
	ha := http.Header{}
	ha.Set("Cookie", attacker.Cookie)
	_, err := sioclient.Dial(g.URL, sioclient.Options{Header: ha, Auth: map[string]any{"pid": pid, "offset": off}})
	if ce, ok := err.(*sioclient.ConnectError); !ok || ce.Data["code"] != "FORBIDDEN" {
		t.Fatalf("attacker: %v", err)
	}
	hv := http.Header{}
	hv.Set("Cookie", victim.Cookie)
	v, err := sioclient.Dial(g.URL, sioclient.Options{Header: hv, Auth: map[string]any{"pid": pid, "offset": off}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if v.ID() != oldID {
		t.Fatalf("victim got socket %s, want its recovered %s", v.ID(), oldID)
	}
}

// The event limit is per user across nodes: two sockets of one user on two
// gateways sharing Redis share it.
func TestEventLimitAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	start := func() *testGateway {
		return startGateway(t, "-redis-url", srv.URL(), "-session-store", "redis", "-session-secrets", testSecret,
			"-api-keys", testAPIKey, "-demo-feed=false", "-rate-connections-per-minute", "1000", "-rate-events-per-minute", "10")
	}
	a, b := start(), start()
	h := http.Header{}
	h.Set("Cookie", seedSession(t, rdb, "sid-limit-u3-aaaaaaaaaaaaaaaaaaa", "u3"))
	ca, err := sioclient.Dial(a.URL, sioclient.Options{Header: h})
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	cb, err := sioclient.Dial(b.URL, sioclient.Options{Header: h})
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	allowed, limited := 0, 0
	for i := 0; i < 11; i++ {
		c := ca
		if i%2 == 1 {
			c = cb
		}
		ack, err := c.EmitWithAck(3*time.Second, "ping")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(ack[0]), `"code":"RATE_LIMIT"`) {
			limited++
			if !strings.Contains(string(ack[0]), "retryAfterMs") {
				t.Fatalf("no retryAfterMs: %s", ack[0])
			}
		} else {
			allowed++
		}
	}
	if allowed != 10 || limited != 1 {
		t.Fatalf("allowed %d, limited %d: want the 11th event of the user refused across both nodes", allowed, limited)
	}
}
