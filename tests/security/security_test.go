package security

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/adapter/redisadapter"
	"github.com/tradewire/tradewire/auth"
	"github.com/tradewire/tradewire/internal/testutil/sioclient"
	"github.com/tradewire/tradewire/socketio"
)

// Item 1: a deployment never falls into dev mode by itself.
func TestNoSilentDevMode(t *testing.T) {
	srv, _ := startRedis(t)
	// The configuration: secrets, keys, Redis, and MONGO_URL empty.
	kv := map[string]string{
		"TRADEWIRE_SESSION_SECRETS": secret, "TRADEWIRE_API_KEYS": apiKey,
		"TRADEWIRE_REDIS_URL": srv.URL(), "TRADEWIRE_MONGO_URL": "", "TRADEWIRE_ADDR": freeAddr(t, "127.0.0.1"),
	}
	code, stderr := exitOf(t, kv)
	if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "TRADEWIRE_MONGO_URL is set but empty") {
		t.Fatalf("empty MONGO_URL: exit %d, stderr %q; want exit 2 naming it", code, stderr)
	}
	delete(kv, "TRADEWIRE_MONGO_URL")
	code, stderr = exitOf(t, kv)
	if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "no session store") || !strings.Contains(stderr, "TRADEWIRE_SESSION_STORE") {
		t.Fatalf("no session store: exit %d, stderr %q; want exit 2 naming it", code, stderr)
	}
	// Redis shared without a cluster secret is refused too.
	kv["TRADEWIRE_SESSION_STORE"] = "redis"
	code, stderr = exitOf(t, kv)
	if code != 2 || !strings.Contains(stderr, "TRADEWIRE_CLUSTER_SECRET") {
		t.Fatalf("no cluster secret: exit %d, stderr %q", code, stderr)
	}
}

// Item 1 and the frontend's dev login on Redis: explicit dev mode with the
// redis store, on a non-loopback address, warns loudly, prints a working
// key, and its logins survive a restart; a demoted admin is put out of
// admin:stats within 5 s (item 5).
func TestExplicitDevModeOnRedis(t *testing.T) {
	srv, rdb := startRedis(t)
	kv := deployment(srv.URL())
	delete(kv, "TRADEWIRE_CLUSTER_SECRET")
	kv["TRADEWIRE_DEV_MODE"] = "true"
	kv["TRADEWIRE_DEMO_FEED"] = "false"
	addr := freeAddr(t, "0.0.0.0")
	n := start(t, addr, kv)
	n.waitLog(t, "DEV MODE ON A NON-LOOPBACK ADDRESS", 3*time.Second)

	// The banner's curl line works as printed.
	var example string
	for _, line := range strings.Split(n.waitLog(t, "publish_example", 3*time.Second), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["publish_example"] != nil {
			example = rec["publish_example"].(string)
		}
	}
	m := regexp.MustCompile(`Bearer ([^']+)'.* -d '([^']+)' (http://\S+)$`).FindStringSubmatch(example)
	if m == nil {
		t.Fatalf("banner curl line %q: no key, body and URL", example)
	}
	req, _ := http.NewRequest(http.MethodPost, m[3], strings.NewReader(m[2]))
	req.Header.Set("Authorization", "Bearer "+m[1])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("the banner's curl: %d", resp.StatusCode)
	}

	// Dev login writes a connect-redis session that survives a restart.
	body, _ := json.Marshal(map[string]string{"userId": "dana", "role": "admin"})
	resp, err = http.Post(n.URL+"/dev/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var login struct{ Cookie string }
	_ = json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	if resp.StatusCode != 200 || login.Cookie == "" {
		t.Fatalf("dev login with the redis store: %d", resp.StatusCode)
	}
	n.stop()
	n = start(t, addr, kv)
	h := http.Header{}
	h.Set("Cookie", login.Cookie)
	c, err := sioclient.Dial(n.URL, sioclient.Options{Header: h})
	if err != nil {
		t.Fatalf("dev session after a restart: %v", err)
	}
	defer c.Close()
	ack, err := c.EmitWithAck(3*time.Second, "subscribe:admin")
	if err != nil || !strings.Contains(string(ack[0]), `"success":true`) {
		t.Fatalf("subscribe:admin: %s %v", ack, err)
	}
	// Demoted in the user store: out within 5 s.
	if err := rdb.HSet(bg, "tradewire:devuser:dana", "role", "user").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitClosed(5 * time.Second); err != nil {
		t.Fatalf("demoted admin still connected after 5 s: %v", err)
	}
	c2, err := sioclient.Dial(n.URL, sioclient.Options{Header: h})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if ack, err := c2.EmitWithAck(3*time.Second, "subscribe:admin"); err != nil || strings.Contains(string(ack[0]), `"success":true`) {
		t.Fatalf("demoted admin subscribed again: %s %v", ack, err)
	}
}

// Item 3: no wildcard CORS with cookie sessions, and same-origin needs the
// same scheme.
func TestCrossSiteWebsocketHijacking(t *testing.T) {
	srv, _ := startRedis(t)
	kv := deployment(srv.URL())
	kv["TRADEWIRE_CORS_ORIGINS"] = "*"
	kv["TRADEWIRE_ADDR"] = freeAddr(t, "127.0.0.1")
	code, stderr := exitOf(t, kv)
	if code != 2 || !strings.Contains(stderr, "TRADEWIRE_CORS_ORIGINS") {
		t.Fatalf("CORS * in a deployment: exit %d, stderr %q", code, stderr)
	}
	delete(kv, "TRADEWIRE_CORS_ORIGINS")
	delete(kv, "TRADEWIRE_ADDR")
	n := start(t, "", kv)
	host := strings.TrimPrefix(n.URL, "http://")
	for origin, want := range map[string]int{"https://evil.example": 403, "https://" + host: 403, "http://" + host: 101} {
		hdr := http.Header{"Origin": {origin}}
		ws, resp, err := gws.DefaultDialer.Dial("ws://"+host+"/socket.io/?EIO=4&transport=websocket", hdr)
		if ws != nil {
			ws.Close()
		}
		if resp == nil {
			t.Fatalf("origin %s: %v", origin, err)
		}
		if resp.StatusCode != want {
			t.Errorf("origin %s: %d, want %d", origin, resp.StatusCode, want)
		}
	}
}

// Item 4: a route written to Redis by someone else does not receive
// requests, let alone cookies; the gateway's keys follow KEY_PREFIX.
func TestForgedClusterRoute(t *testing.T) {
	srv, rdb := startRedis(t)
	var mu sync.Mutex
	var got []string
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Cookie"))
		mu.Unlock()
		_, _ = w.Write([]byte("ok"))
	}))
	defer evil.Close()
	kv := deployment(srv.URL())
	kv["TRADEWIRE_KEY_PREFIX"] = "dep2"
	n := start(t, "", kv)
	for _, prefix := range []string{"tradewire", "dep2"} {
		if err := rdb.Set(bg, prefix+":route:ZZZZ", evil.URL, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, n.URL+"/socket.io/?EIO=4&transport=polling&sid=ZZZZaaaaaaaaaaaaaaaa", nil)
	req.Header.Set("Cookie", "connect.sid="+url.QueryEscape(auth.Sign("victim-session", secret)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 0 || resp.StatusCode != 400 {
		t.Fatalf("forged route: the listener got %d requests (cookies %q), status %d", len(got), got, resp.StatusCode)
	}
	keys := rdb.Keys(bg, "dep2:route:*").Val()
	if len(keys) != 2 || len(rdb.Keys(bg, "tradewire:route:*").Val()) != 1 {
		t.Fatalf("route keys under dep2: %q; under tradewire: %q", keys, rdb.Keys(bg, "tradewire:route:*").Val())
	}
}

// Item 5: what another node (or anyone on Redis) sees of a socket carries
// no credential.
func TestFetchSocketsCarriesNoCredentials(t *testing.T) {
	srv, rdb := startRedis(t)
	n := start(t, "", deployment(srv.URL()))
	seed := `{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"},"passport":{"user":"alice"}}`
	if err := rdb.Set(bg, "sess:alice-session-0123456789abcdef", seed, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	signed := auth.Sign("alice-session-0123456789abcdef", secret)
	c, err := sioclient.Dial(n.URL, sioclient.Options{Auth: map[string]any{"sessionID": signed}, Header: http.Header{"Cookie": {"connect.sid=" + url.QueryEscape(signed)}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A Go node on the same Redis asks every node for its sockets.
	spy := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer spy.Close()
	sio := socketio.NewServer(socketio.Options{Adapter: redisadapter.New(spy, redisadapter.Options{})})
	defer sio.Close()
	var infos string
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		list, err := sio.Of("/").FetchSockets(bg)
		if err == nil && len(list) > 0 {
			b, _ := json.Marshal(list)
			infos = string(b)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if infos == "" {
		t.Fatal("no socket fetched over Redis")
	}
	sig := signed[strings.LastIndexByte(signed, '.')+1:]
	for _, leak := range []string{"alice-session-0123456789abcdef", sig, `"pid"`, `"offset"`, "connect.sid"} {
		if strings.Contains(infos, leak) {
			t.Errorf("FETCH_SOCKETS reply carries %q: %s", leak, infos)
		}
	}
}

// Item 2: oversized headers, handshake floods and slow bodies hold nothing.
func TestRefusedClientsHoldNothing(t *testing.T) {
	srv, _ := startRedis(t)
	kv := deployment(srv.URL())
	kv["TRADEWIRE_RATE_CONNECTIONS_PER_MINUTE"] = "3"
	kv["TRADEWIRE_HTTP_READ_TIMEOUT"] = "1s"
	n := start(t, "", kv)
	handshake := "/socket.io/?EIO=4&transport=polling"

	req, _ := http.NewRequest(http.MethodGet, n.URL+handshake, nil)
	req.Header.Set("X-Padding", strings.Repeat("a", 100<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("100 KiB header: %d, want 431", resp.StatusCode)
	}

	var codes []int
	retryAfter := ""
	for i := 0; i < 10; i++ {
		resp, err := http.Get(n.URL + handshake)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == http.StatusTooManyRequests {
			retryAfter = resp.Header.Get("Retry-After")
		}
	}
	// 3 allowed, 3 refused at CONNECT (a session each, closed soon), then 429.
	want := []int{200, 200, 200, 200, 200, 200, 429, 429, 429, 429}
	if len(codes) != len(want) || codes[5] != 200 || codes[6] != 429 || codes[9] != 429 || retryAfter == "" {
		t.Fatalf("handshake statuses %v (Retry-After %q), want %v", codes, retryAfter, want)
	}

	// A body that does not arrive within the read timeout closes the connection.
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = conn.Write([]byte("POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + apiKey + "\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"type\":"))
	_ = conn.SetReadDeadline(time.Now().Add(4 * time.Second))
	start := time.Now()
	_, err = io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("slow body still held after %v", time.Since(start))
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("slow body closed after %v, want about 1s", time.Since(start))
	}
}
