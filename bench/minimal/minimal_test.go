package main

// The reference server is driven by the real load generator (bench/loadgen)
// with a real Redis holding the sessions, and by raw sockets for the error
// paths. Assertions are about behaviour (every client ready, every published
// message delivered, heartbeats kept connections alive, the right error),
// never about timings: the machine is shared.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"
	"github.com/tradewire/tradewire/bench/loadgen"
	"github.com/tradewire/tradewire/internal/testutil/poll"
	"github.com/tradewire/tradewire/internal/testutil/redistest"
)

type testServer struct {
	*Server
	URL string
}

func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.APIKey == "" {
		cfg.APIKey = "test-key"
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval, cfg.PingTimeout = 25*time.Second, 20*time.Second
	}
	s, err := newServer(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("server did not stop")
		}
	})
	return &testServer{Server: s, URL: "http://" + s.Addr()}
}

func debugVars(t *testing.T, s *testServer) map[string]float64 {
	t.Helper()
	_, body := httpGet(t, s.URL+"/debug/vars")
	var m map[string]float64
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return m
}

func lgConfig(scenario, redisURL, url string) loadgen.Config {
	return loadgen.Config{
		Scenario: scenario, URLs: []string{url}, RedisURL: redisURL, Secret: "any-secret", APIKey: "test-key",
		RampRate: 1000, Hold: 1500 * time.Millisecond, StepDur: 500 * time.Millisecond, Warmup: 200 * time.Millisecond,
		RateStart: 20, RateFactor: 2, MaxSteps: 2, P99Limit: 10 * time.Second, MinDeliver: 0.97, Drain: 300 * time.Millisecond,
		ConnectTimeout: 10 * time.Second, SourceIPs: []string{"127.0.0.2", "127.0.0.3"},
	}
}

// TestLoadgenScenarios runs the load generator's idle, fanout and
// user-events scenarios against the server with sessions in Redis, with a
// heartbeat every 400 ms so that every connection answers several pings.
func TestLoadgenScenarios(t *testing.T) {
	rs := redistest.Start(t)
	s := startServer(t, Config{RedisURL: rs.URL(), PingInterval: 400 * time.Millisecond, PingTimeout: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var log bytes.Buffer

	t.Run("idle: 300 clients stay connected through several heartbeats", func(t *testing.T) {
		cfg := lgConfig("idle", rs.URL(), s.URL)
		cfg.Conns = 300
		cfg.DebugURLs = []string{s.URL + "/debug/vars"}
		cfg.ServerPIDs = []int{os.Getpid()} // the server runs in this process
		res, err := loadgen.Run(ctx, cfg, &log)
		if err != nil {
			t.Fatalf("%v\n%s", err, log.String())
		}
		if res.Ramp.Ready != 300 || res.Ramp.Never != 0 || res.Ramp.FailedAttempts != 0 {
			t.Fatalf("ramp %+v\n%s", res.Ramp, log.String())
		}
		if res.Client.Drops != 0 {
			t.Fatalf("%d connections dropped: heartbeats not answered?", res.Client.Drops)
		}
		if got := res.Server.DebugAfter["sockets"]; got != 300 {
			t.Fatalf("server sockets after hold = %v", got)
		}
	})
	poll.Until(t, "the idle clients to leave", func() bool { return debugVars(t, s)["rooms"] == 0 })

	t.Run("fanout: every quote reaches its watchlist room", func(t *testing.T) {
		cfg := lgConfig("fanout", rs.URL(), s.URL)
		cfg.Conns = 300
		res, err := loadgen.Run(ctx, cfg, &log)
		if err != nil {
			t.Fatalf("%v\n%s", err, log.String())
		}
		if len(res.Steps) == 0 {
			t.Fatal("no steps")
		}
		// a busy machine may fail a step on latency or on the publisher's
		// pace, never on what arrives
		for _, st := range res.Steps {
			if st.Received == 0 || float64(st.Received) < 0.97*st.Expected ||
				st.PublishFailed != 0 || st.Latency.Count == 0 {
				t.Fatalf("step %+v", st)
			}
		}
	})

	t.Run("user-events: each trade reaches its user, sessions via auth.sessionID", func(t *testing.T) {
		cfg := lgConfig("user-events", rs.URL(), s.URL)
		cfg.Conns, cfg.RateStart, cfg.MaxSteps, cfg.AuthMode = 100, 40, 1, "auth"
		res, err := loadgen.Run(ctx, cfg, &log)
		if err != nil {
			t.Fatalf("%v\n%s", err, log.String())
		}
		st := res.Steps[0]
		if st.Received == 0 || float64(st.Received) < 0.97*st.Expected || st.PublishFailed != 0 {
			t.Fatalf("step %+v", st)
		}
	})
}

// ---- raw clients ---------------------------------------------------------------

type rawClient struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

// dialRaw performs the upgrade by hand; head is the extra header lines.
func dialRaw(t *testing.T, s *testServer, uri string, head ...string) (*rawClient, string) {
	t.Helper()
	nc, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	req := "GET " + uri + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	for _, h := range head {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	c := &rawClient{t: t, nc: nc, r: bufio.NewReader(nc)}
	status, err := c.r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var hdr strings.Builder
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if l == "\r\n" {
			break
		}
		hdr.WriteString(l)
	}
	return c, strings.TrimSpace(status) + "\n" + hdr.String()
}

// open upgrades, checks the open packet and connects the main namespace.
func open(t *testing.T, s *testServer, headers ...string) *rawClient {
	t.Helper()
	c, status := dialRaw(t, s, "/socket.io/?EIO=4&transport=websocket", headers...)
	if !strings.HasPrefix(status, "HTTP/1.1 101") || !strings.Contains(status, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") {
		t.Fatalf("upgrade: %s", status)
	}
	if _, p := c.read(); !strings.HasPrefix(p, `0{"sid":"e`) || !strings.Contains(p, `"pingInterval":`) {
		t.Fatalf("open packet %q", p)
	}
	return c
}

func (c *rawClient) write(op byte, fin, masked bool, payload string) {
	c.t.Helper()
	_ = c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.nc.Write(loadgen.AppendFrame(nil, op, fin, masked, [4]byte{1, 2, 3, 4}, []byte(payload))); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawClient) text(p string) { c.t.Helper(); c.write(opText, true, true, p) }

// read returns the next frame (opcode and payload); the payload of a close
// frame is its status code in decimal.
func (c *rawClient) read() (byte, string) {
	c.t.Helper()
	op, p, err := c.tryRead()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return op, p
}

func (c *rawClient) tryRead() (byte, string, error) {
	// A deadline per frame, not per connection: a test that first fills
	// the socket (TestBackpressure) may take long on a loaded machine.
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var h [2]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		return 0, "", err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(c.r, b[:]); err != nil {
			return 0, "", err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(c.r, b[:]); err != nil {
			return 0, "", err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c.r, p); err != nil {
		return 0, "", err
	}
	if op := h[0] & 0x0f; op == opClose && len(p) >= 2 {
		return op, fmt.Sprint(binary.BigEndian.Uint16(p)), nil
	}
	return h[0] & 0x0f, string(p), nil
}

// expectText reads frames until a text frame and compares it.
func (c *rawClient) expectText(want string) {
	c.t.Helper()
	if op, p := c.read(); op != opText || p != want {
		c.t.Fatalf("got op %d %q, want %q", op, p, want)
	}
}

// expectClose reads until the close frame with code, then EOF.
func (c *rawClient) expectClose(code string) {
	c.t.Helper()
	op, p := c.read()
	if op != opClose || p != code {
		c.t.Fatalf("got op %d %q, want close %s", op, p, code)
	}
	if _, _, err := c.tryRead(); err == nil {
		c.t.Fatal("connection still open after close")
	}
}

func (c *rawClient) expectEOF() {
	c.t.Helper()
	if op, p, err := c.tryRead(); err == nil {
		c.t.Fatalf("got op %d %q, want the connection closed", op, p)
	}
}

// connect sends 40 and expects 40{"sid"}; the server has no Redis, so the
// session id is the user id.
func (c *rawClient) connect() {
	c.t.Helper()
	c.text("40")
	if _, p := c.read(); !strings.HasPrefix(p, `40{"sid":"s`) {
		c.t.Fatalf("connect answer %q", p)
	}
}

const cookieU1 = "Cookie: other=1; connect.sid=s%3Au1.signature"

func TestProtocol(t *testing.T) {
	s := startServer(t, Config{})

	t.Run("subscriptions are acked and joined", func(t *testing.T) {
		c := open(t, s, cookieU1)
		c.connect()
		c.text(`420["subscribe:portfolio"]`)
		c.expectText(`430[{"success":true}]`)
		c.text(`421["subscribe:trades"]`)
		c.expectText(`431[{"success":true}]`)
		c.text(`421["subscribe:trades"]`) // joining twice is harmless
		c.expectText(`431[{"success":true}]`)
		c.text(`422["subscribe:watchlist",{"symbols":["AAA","BBB"]}]`)
		c.expectText(`432[{"success":true,"symbols":["AAA","BBB"]}]`)
		c.text(`423["subscribe:watchlist",{"symbols":["bad symbol"]}]`)
		c.expectText(`433[{"success":false,"code":"INVALID_SYMBOLS","message":"symbols must be 1-50 ticker strings"}]`)
		c.text(`424["subscribe:watchlist"]`)
		c.expectText(`434[{"success":false,"code":"INVALID_SYMBOLS","message":"symbols must be 1-50 ticker strings"}]`)
		c.text(`425["nope"]`)
		c.expectText(`435[{"success":false,"code":"UNKNOWN_EVENT","message":"unknown event"}]`)
		c.text(`42["nope"]`) // no ack id: no answer
		c.text(`40`)         // a second connect is ignored
		c.text(`43[1]`)      // an ack from the client is ignored
		c.text(`6`)          // noop
		c.text(`2probe`)     // a client ping is answered
		c.expectText(`3probe`)
		c.write(opPing, true, true, "hi")
		if op, p := c.read(); op != opPong || p != "hi" {
			c.t.Fatalf("pong %d %q", op, p)
		}
		c.text(`40/admin,`)
		c.expectText(`44/admin,{"message":"Invalid namespace"}`)
		c.text(`42/admin,["subscribe:trades"]`) // other namespaces are ignored
		c.text(`41`)
		c.expectEOF()
	})

	t.Run("connect with auth.sessionID and events before connect", func(t *testing.T) {
		c := open(t, s)
		c.text(`421["subscribe:trades"]`)
		c.expectText(`431[{"success":false,"code":"NOT_CONNECTED","message":"connect first"}]`)
		c.text(`40{"sessionID":"u2"}`)
		if _, p := c.read(); !strings.HasPrefix(p, `40{"sid":"s`) {
			t.Fatalf("connect answer %q", p)
		}
		c.text("1")
		c.expectEOF()
	})

	t.Run("no session is a connect_error", func(t *testing.T) {
		c := open(t, s, "Cookie: connect.sid=unsigned")
		c.text(`40{"sessionID":7}`)
		c.expectText(`44{"message":"Authentication required","data":{"code":"NO_SESSION"}}`)
		c.text(`40{bad`)
		c.expectClose("1003")
	})

	closes := []struct {
		name string
		send func(c *rawClient)
		code string
	}{
		{"unmasked frame", func(c *rawClient) { c.write(opText, true, false, "3") }, "1002"},
		{"fragmented message", func(c *rawClient) { c.write(opText, false, true, "4") }, "1003"},
		{"continuation", func(c *rawClient) { c.write(opCont, true, true, "4") }, "1003"},
		{"binary message", func(c *rawClient) { c.write(opBin, true, true, "4") }, "1003"},
		{"reserved opcode", func(c *rawClient) { c.write(0x3, true, true, "4") }, "1002"},
		{"client close", func(c *rawClient) { c.write(opClose, true, true, "\x03\xe9") }, "1001"},
		{"client close without code", func(c *rawClient) { c.write(opClose, true, true, "") }, "1000"},
		{"empty packet", func(c *rawClient) { c.text("") }, "1003"},
		{"unknown engine.io packet", func(c *rawClient) { c.text("9") }, "1003"},
		{"bad socket.io type", func(c *rawClient) { c.text("4x") }, "1003"},
		{"empty socket.io packet", func(c *rawClient) { c.text("4") }, "1003"},
		{"ack id overflow", func(c *rawClient) { c.text("4299999999999999999999[]") }, "1003"},
		{"binary event", func(c *rawClient) { c.text(`451-["x",{"_placeholder":true,"num":0}]`) }, "1003"},
		{"invalid event payload", func(c *rawClient) { c.connect(); c.text(`42{"a":1}`) }, "1003"},
		{"event name not a string", func(c *rawClient) { c.connect(); c.text(`42[1]`) }, "1003"},
		{"too big", func(c *rawClient) {
			c.nc.Write([]byte{0x81, 0xff, 0, 0, 0, 0, 0x10, 0, 0, 0})
		}, "1009"},
	}
	for _, tc := range closes {
		t.Run(tc.name, func(t *testing.T) {
			c := open(t, s, cookieU1)
			tc.send(c)
			c.expectClose(tc.code)
		})
	}

	t.Run("frames split over several reads and pipelined after the head", func(t *testing.T) {
		c, _ := dialRaw(t, s, "/socket.io/?EIO=4&transport=websocket", cookieU1)
		c.read() // open
		f := loadgen.AppendFrame(nil, opText, true, true, [4]byte{9, 9, 9, 9}, []byte(`40`))
		f = loadgen.AppendFrame(f, opText, true, true, [4]byte{9, 8, 7, 6}, []byte(`420["subscribe:watchlist",{"symbols":["`+strings.Repeat("A", 200)+`"]}]`))
		for _, b := range f {
			c.nc.Write([]byte{b})
			time.Sleep(100 * time.Microsecond)
		}
		if _, p := c.read(); !strings.HasPrefix(p, `40{`) {
			t.Fatalf("connect answer %q", p)
		}
		c.expectText(`430[{"success":false,"code":"INVALID_SYMBOLS","message":"symbols must be 1-50 ticker strings"}]`)
	})
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestBadRequests(t *testing.T) {
	s := startServer(t, Config{})
	for _, tc := range []struct{ uri, head, status, code string }{
		{"/socket.io/?EIO=3&transport=websocket", "", "400", "UNSUPPORTED_PROTOCOL_VERSION"},
		{"/socket.io/?EIO=4&transport=polling", "", "400", "UNKNOWN_TRANSPORT"},
		{"/socket.io/?EIO=4&transport=websocket&sid=abc", "", "400", "UNKNOWN_TRANSPORT"},
		{"/other", "", "400", "NOT_FOUND"},
		{"/socket.io/?EIO=4&transport=websocket", "Sec-WebSocket-Version: 8", "400", "BAD_HANDSHAKE"},
	} {
		c, status := dialRaw(t, s, tc.uri, tc.head)
		body, _ := io.ReadAll(c.r)
		if !strings.HasPrefix(status, "HTTP/1.1 "+tc.status) || !strings.Contains(string(body), `"code":"`+tc.code+`"`) {
			t.Errorf("%s %s: %s %s", tc.uri, tc.head, status, body)
		}
	}
	raw := func(req string) string {
		nc, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(nc, req)
		b, _ := io.ReadAll(nc)
		return string(b)
	}
	if got := raw("GET / HTTP/1.1\r\nBad Header\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 400") {
		t.Errorf("malformed head: %q", got)
	}
	if got := raw("GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n"); !strings.Contains(got, "BAD_HANDSHAKE") {
		t.Errorf("bad key: %q", got)
	}
	if got := raw("POST /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n\r\n"); !strings.Contains(got, "BAD_HANDSHAKE") {
		t.Errorf("POST upgrade: %q", got)
	}
	if got := raw("GET /x HTTP/1.1\r\nX: " + strings.Repeat("a", 9000)); !strings.HasPrefix(got, "HTTP/1.1 431") {
		t.Errorf("huge head: %.100q", got)
	}
	if st, body := httpGet(t, s.URL+"/nope"); st != 404 || !strings.Contains(body, "NOT_FOUND") {
		t.Errorf("404: %d %s", st, body)
	}
	if st, body := httpGet(t, s.URL+"/health"); st != 200 || !strings.Contains(body, "ok") {
		t.Errorf("health: %d %s", st, body)
	}
}

func post(t *testing.T, s *testServer, path, key, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.URL+path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestPublishAPI(t *testing.T) {
	s := startServer(t, Config{})
	c := open(t, s, cookieU1)
	c.connect()
	c.text(`420["subscribe:watchlist",{"symbols":["AAA","BBB"]}]`)
	c.expectText(`430[{"success":true,"symbols":["AAA","BBB"]}]`)
	c.text(`421["subscribe:trades"]`)
	c.expectText(`431[{"success":true}]`)
	if got := debugVars(t, s)["rooms"]; got != 3 {
		t.Fatalf("rooms = %v, want watchlist:AAA, watchlist:BBB, trades:u1", got)
	}

	// one message to two rooms the client is in arrives once
	st, body := post(t, s, "/api/v1/emit", "test-key", `{"rooms":["watchlist:AAA","watchlist:BBB","watchlist:CCC"],"event":"quote:update","data":{"p":1}}`)
	if st != 200 || body != `{"accepted":1,"success":true}` {
		t.Fatalf("%d %s", st, body)
	}
	st, _ = post(t, s, "/api/v1/emit", "test-key", `[{"rooms":["watchlist:BBB"],"event":"market:open"},{"rooms":["nobody"],"event":"x","data":1}]`)
	if st != 200 {
		t.Fatal(st)
	}
	c.expectText(`42["quote:update",{"p":1}]`)
	c.expectText(`42["market:open"]`)
	st, _ = post(t, s, "/api/v1/events", "test-key", `{"type":"trade.executed","userId":"u1","trade":{"id":"t1"}}`)
	if st != 200 {
		t.Fatal(st)
	}
	c.expectText(`42["trade:executed",{"userId":"u1","trade":{"id":"t1"}}]`)

	for _, tc := range []struct {
		path, key, body string
		status          int
		code            string
	}{
		{"/api/v1/emit", "", `{}`, 401, "UNAUTHORIZED"},
		{"/api/v1/emit", "wrong", `{}`, 401, "UNAUTHORIZED"},
		{"/api/v1/emit", "test-key", `[{"rooms":`, 400, "BAD_REQUEST"},
		{"/api/v1/emit", "test-key", `{"rooms":"x"}`, 400, "BAD_REQUEST"},
		{"/api/v1/emit", "test-key", `{"rooms":[],"event":"x"}`, 400, "BAD_REQUEST"},
		{"/api/v1/events", "test-key", `{"type":"trade.failed","userId":"u1"}`, 400, "BAD_REQUEST"},
		{"/api/v1/events", "test-key", `[1]`, 400, "BAD_REQUEST"},
		{"/api/v1/events", "test-key", `{"a":` + strings.Repeat(" ", maxBody) + `1}`, 413, "BODY_TOO_LARGE"},
	} {
		st, body := post(t, s, tc.path, tc.key, tc.body)
		if st != tc.status || !strings.Contains(body, `"code":"`+tc.code+`"`) || !strings.Contains(body, `"success":false`) {
			t.Errorf("%s %.40s: %d %s", tc.path, tc.body, st, body)
		}
	}
	if resp, err := http.Get(s.URL + "/api/v1/emit"); err != nil || resp.StatusCode/100 != 4 {
		t.Errorf("GET emit: %v %v", resp, err)
	}
}

func TestSessionsFromRedis(t *testing.T) {
	rs := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer rdb.Close()
	ctx := context.Background()
	for k, v := range map[string]string{
		"sess:num":     `{"passport":{"user":42}}`,
		"sess:nouser":  `{"cookie":{}}`,
		"sess:garbage": `{`,
		"sess:ok":      loadgen.SessionJSON("u9"),
	} {
		if err := rdb.Set(ctx, k, v, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	s := startServer(t, Config{RedisURL: rs.URL()})
	for sid, want := range map[string]string{
		"missing": `44{"message":"session refused","data":{"code":"SESSION_NOT_FOUND"}}`,
		"nouser":  `44{"message":"session refused","data":{"code":"UNAUTHORIZED"}}`,
		"garbage": `44{"message":"session refused","data":{"code":"SESSION_INVALID"}}`,
	} {
		c := open(t, s, "Cookie: "+loadgen.CookieValue(sid, "x"))
		c.text("40")
		c.expectText(want)
	}
	for sid, user := range map[string]string{"num": "42", "ok": "u9"} {
		c := open(t, s, "Cookie: "+loadgen.CookieValue(sid, "x"))
		c.connect()
		c.text(`421["subscribe:trades"]`)
		c.expectText(`431[{"success":true}]`)
		post(t, s, "/api/v1/events", "test-key", `{"type":"trade.executed","userId":"`+user+`","trade":{"id":"t"}}`)
		c.expectText(`42["trade:executed",{"userId":"` + user + `","trade":{"id":"t"}}]`)
	}
	// a lookup still running when the client leaves, and Redis gone
	c := open(t, s, "Cookie: "+loadgen.CookieValue("ok", "x"))
	c.text("40")
	c.nc.Close()
	rs.Kill()
	c = open(t, s, "Cookie: "+loadgen.CookieValue("ok", "x"))
	c.text("40")
	c.expectText(`44{"message":"session refused","data":{"code":"SESSION_STORE_UNAVAILABLE"}}`)
}

func TestHeartbeat(t *testing.T) {
	s := startServer(t, Config{PingInterval: 600 * time.Millisecond, PingTimeout: 500 * time.Millisecond})
	alive := open(t, s, cookieU1)
	silent := open(t, s, cookieU1)
	silentErr := make(chan string, 1)
	go func() {
		if _, p, err := silent.tryRead(); err != nil || p != "2" {
			silentErr <- fmt.Sprintf("first frame %q %v, want a ping", p, err)
			return
		}
		if _, p, err := silent.tryRead(); err == nil {
			silentErr <- fmt.Sprintf("got %q after an unanswered ping, want the connection closed", p)
			return
		}
		silentErr <- ""
	}()
	for i := 0; i < 3; i++ {
		alive.expectText("2")
		alive.text("3")
	}
	if msg := <-silentErr; msg != "" {
		t.Fatal(msg)
	}
	if got := debugVars(t, s)["sockets"]; got != 1 {
		t.Fatalf("sockets = %v, want the one that answered", got)
	}
}

// TestBackpressure fills a client's socket buffers: the queue waits for
// EPOLLOUT and is delivered in order once the client reads; a client whose
// queue passes MaxQueue is dropped.
func TestBackpressure(t *testing.T) {
	s := startServer(t, Config{MaxQueue: 40})
	big := `"` + strings.Repeat("x", 400<<10) + `"`
	emit := func(i int) {
		st, body := post(t, s, "/api/v1/emit", "test-key", fmt.Sprintf(`{"rooms":["watchlist:AAA"],"event":"e%d","data":%s}`, i, big))
		if st != 200 {
			t.Fatalf("%d %s", st, body)
		}
	}
	slow := open(t, s, cookieU1)
	slow.connect()
	slow.text(`420["subscribe:watchlist",{"symbols":["AAA"]}]`)
	slow.expectText(`430[{"success":true,"symbols":["AAA"]}]`)
	for i := 0; i < 30; i++ { // 12 MB: more than the socket buffers hold
		emit(i)
	}
	for i := 0; i < 30; i++ {
		if _, p := slow.read(); !strings.HasPrefix(p, fmt.Sprintf(`42["e%d",`, i)) {
			t.Fatalf("message %d: %.20q", i, p)
		}
	}
	for i := 0; i < 200; i++ { // never read: dropped once 40 frames wait
		emit(i)
		if debugVars(t, s)["sockets"] == 0 {
			break
		}
	}
	poll.Until(t, "the slow client to be dropped", func() bool { return debugVars(t, s)["sockets"] == 0 })
}

func TestConfigErrors(t *testing.T) {
	var out bytes.Buffer
	if _, err := parseFlags([]string{"-nope"}, &out); err == nil {
		t.Error("unknown flag accepted")
	}
	if _, err := parseFlags([]string{"extra"}, &out); err == nil {
		t.Error("extra argument accepted")
	}
	c, err := parseFlags([]string{"-addr", "127.0.0.1:0", "-ping-interval", "1s"}, &out)
	if err != nil || c.PingInterval != time.Second || c.PingTimeout != 20*time.Second || c.MaxQueue != 4096 {
		t.Errorf("%+v %v", c, err)
	}
	if err := run([]string{"-addr", "nonsense"}, &out); err == nil {
		t.Error("bad address accepted")
	}
	if err := run([]string{"-ping-timeout", "0"}, &out); err == nil {
		t.Error("zero ping timeout accepted")
	}
	if err := run([]string{"-addr", "127.0.0.1:0", "-redis", "http://x"}, &out); err == nil {
		t.Error("bad redis url accepted")
	}
	s := startServer(t, Config{})
	if err := run([]string{"-addr", s.Addr()}, &out); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("second listener on the same port: %v", err)
	}
	if s, err := newServer(Config{Addr: "127.0.0.1:0", PingInterval: 1, PingTimeout: 1}, nil); err != nil {
		t.Error(err)
	} else {
		s.closeFDs()
	}
}

// TestRunUntilSignal runs the command's entry point and stops it with SIGTERM.
func TestRunUntilSignal(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- run([]string{"-addr", addr}, &out) }()
	poll.Until(t, "the server to listen", func() bool {
		resp, err := http.Get("http://" + addr + "/health")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after SIGTERM")
	}
	if !strings.Contains(out.String(), "listening") {
		t.Errorf("log: %s", out.String())
	}
}

func TestCookieSession(t *testing.T) {
	for in, want := range map[string]string{
		"connect.sid=s%3Aabc.sig":        "abc",
		"a=b; connect.sid=s:a.b.c":       "a.b",
		"connect.sid=abc.sig":            "",
		"connect.sid=s%3Anodot":          "",
		"connect.sid=s%zz":               "",
		"other=s%3Aabc.sig; connect.sid": "",
		"":                               "",
	} {
		if got := cookieSession(in); got != want {
			t.Errorf("cookieSession(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDebugVarsJSON(t *testing.T) {
	s := startServer(t, Config{})
	_, body := httpGet(t, s.URL+"/debug/vars")
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil || m["sockets"] != 0.0 || m["heap_alloc"] == nil {
		t.Fatalf("%v %s", err, body)
	}
}

// TestConnSize guards the point of the reference: one small struct per
// connection.
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(conn{}); n > 200 {
		t.Fatalf("conn is %d bytes, want <= 200", n)
	} else {
		t.Logf("conn is %d bytes", n)
	}
}
