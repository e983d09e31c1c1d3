package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
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

var _ = bufio.NewReader
var _ net.Conn
