// Package fault runs tradewire processes and breaks things under them: a
// node killed with SIGKILL while users receive numbered trade events, Redis
// restarted mid-stream. Every user must end with every event exactly once,
// in order.
package fault

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/auth"
	"github.com/tradewire/tradewire/internal/testutil/redistest"
	"github.com/tradewire/tradewire/internal/testutil/sioclient"
)

const (
	secret = "fault-test-secret"
	apiKey = "fault-test-api-key-000001"
)

var buildOnce sync.Once
var binPath string
var buildErr error

func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("TRADEWIRE_FAULT_GATEWAY_BIN"); p != "" {
			binPath = p // a prebuilt binary, e.g. of an older commit
			return
		}
		dir, err := os.MkdirTemp("", "tradewire-fault-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "tradewire")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/tradewire/tradewire/cmd/tradewire").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type node struct {
	url  string
	cmd  *exec.Cmd
	done chan struct{}
	log  *strings.Builder
	mu   sync.Mutex
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startNode(t *testing.T, redisURL string, extra ...string) *node {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(binary(t))
	cmd.Env = append(os.Environ(),
		"TRADEWIRE_ADDR="+addr, "TRADEWIRE_REDIS_URL="+redisURL, "TRADEWIRE_SESSION_STORE=redis",
		"TRADEWIRE_SESSION_SECRETS="+secret, "TRADEWIRE_API_KEYS="+apiKey, "TRADEWIRE_LOG_FORMAT=text",
		"TRADEWIRE_CLUSTER_SECRET=fault-test-cluster-secret-0123456789",
		"TRADEWIRE_LOG_LEVEL=info", "TRADEWIRE_RATE_CONNECTIONS_PER_MINUTE=100000",
		"TRADEWIRE_RATE_EVENTS_PER_MINUTE=100000", "TRADEWIRE_DRAIN_WINDOW=1s", "TRADEWIRE_SHUTDOWN_TIMEOUT=5s")
	cmd.Env = append(cmd.Env, extra...)
	stderr, _ := cmd.StderrPipe()
	n := &node{url: "http://" + addr, cmd: cmd, done: make(chan struct{}), log: &strings.Builder{}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			n.mu.Lock()
			n.log.WriteString(sc.Text() + "\n")
			n.mu.Unlock()
		}
	}()
	go func() { _ = cmd.Wait(); close(n.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-n.done
		n.mu.Lock()
		defer n.mu.Unlock()
		if strings.Contains(n.log.String(), "panic") {
			t.Errorf("node %s panicked:\n%s", n.url, n.log.String())
		}
		if os.Getenv("FAULT_DUMP") != "" {
			t.Logf("log %s:\n%s", n.url, n.log.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(n.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return n
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("node %s not ready:\n%s", n.url, n.log.String())
	return nil
}

func seedSessions(t *testing.T, rdb *redis.Client, users int) []string {
	t.Helper()
	cookies := make([]string, users)
	pipe := rdb.Pipeline()
	for i := 0; i < users; i++ {
		sid := fmt.Sprintf("fault-session-%06d-aaaaaaaaaaaaa", i)
		v := fmt.Sprintf(`{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"},"passport":{"user":"user%d"}}`, i)
		pipe.Set(context.Background(), "sess:"+sid, v, time.Hour)
		cookies[i] = "connect.sid=" + url.QueryEscape(auth.Sign(sid, secret))
	}
	if _, err := pipe.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	return cookies
}

// user is one trader: its current connection and every trade number seen.
type user struct {
	idx    int
	cookie string
	mu     sync.Mutex
	conns  []*sioclient.Client
}

func (u *user) current() *sioclient.Client {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.conns[len(u.conns)-1]
}

func (u *user) numbers() []int {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []int
	for _, c := range u.conns {
		for _, e := range c.EventsNamed("trade:executed") {
			var p struct {
				Trade struct{ N int } `json:"trade"`
			}
			_ = json.Unmarshal(e.Args[0], &p)
			out = append(out, p.Trade.N)
		}
	}
	return out
}

func dial(base, cookie string, auth map[string]any) (*sioclient.Client, error) {
	h := http.Header{}
	h.Set("Cookie", cookie)
	return sioclient.Dial(base, sioclient.Options{Header: h, Auth: auth, Timeout: 10 * time.Second})
}

func publishRound(t *testing.T, base string, users, n int) error {
	var b strings.Builder
	b.WriteByte('[')
	for i := 0; i < users; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"type":"trade.executed","id":"u%d-n%d","userId":"user%d","trade":{"symbol":"AAPL","side":"buy","quantity":1,"price":1,"n":%d}}`, i, n, i, n)
	}
	b.WriteByte(']')
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/events", strings.NewReader(b.String()))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("publish round %d: %d %s", n, resp.StatusCode, body)
	}
	return nil
}

// connectAlternating makes one user per cookie and connects them, even
// indexes to a, odd ones to b.
func connectAlternating(t *testing.T, cookies []string, a, b *node) []*user {
	t.Helper()
	users := make([]*user, len(cookies))
	for i := range users {
		users[i] = &user{idx: i, cookie: cookies[i]}
	}
	connectAll(t, users, func(i int) string {
		if i%2 == 0 {
			return a.url
		}
		return b.url
	})
	return users
}

func connectAll(t *testing.T, users []*user, pick func(i int) string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(users))
	sem := make(chan struct{}, 50)
	for _, u := range users {
		wg.Add(1)
		go func(u *user) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := dial(pick(u.idx), u.cookie, nil)
			if err == nil {
				_, err = c.EmitWithAck(10*time.Second, "subscribe:trades")
			}
			if err != nil {
				errs <- fmt.Errorf("user %d: %w", u.idx, err)
				return
			}
			u.conns = []*sioclient.Client{c}
		}(u)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func waitAll(t *testing.T, users []*user, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		short := 0
		for _, u := range users {
			if len(u.numbers()) < want {
				short++
			}
		}
		if short == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, u := range users[:2] {
				t.Logf("user %d got %v", u.idx, u.numbers())
			}
			t.Fatalf("%d users have fewer than %d events", short, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func checkExactlyOnce(t *testing.T, users []*user, rounds int) (dupes, lost int) {
	t.Helper()
	for _, u := range users {
		got := u.numbers()
		seen := map[int]int{}
		for _, n := range got {
			seen[n]++
		}
		for n := 1; n <= rounds; n++ {
			switch {
			case seen[n] == 0:
				lost++
			case seen[n] > 1:
				dupes += seen[n] - 1
			}
		}
		for i := 1; i < len(got); i++ {
			if got[i] <= got[i-1] {
				t.Errorf("user %d: out of order %v", u.idx, got)
				break
			}
		}
	}
	return dupes, lost
}

// TestKillNodeDuringTradeStream: 1,000 users on two nodes; node A gets
// SIGKILL mid-stream; its clients reconnect to node B with their recovery
// offsets; every user must end with every event exactly once, in order.
func TestKillNodeDuringTradeStream(t *testing.T) {
	const nUsers, rounds, killAt = 1000, 20, 8
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	a := startNode(t, srv.URL())
	b := startNode(t, srv.URL())
	cookies := seedSessions(t, rdb, nUsers)
	users := connectAlternating(t, cookies, a, b)
	// Round 1 gives every client an offset to recover from.
	if err := publishRound(t, b.url, nUsers, 1); err != nil {
		t.Fatal(err)
	}
	waitAll(t, users, 1, 20*time.Second)

	// Reconnector: when a client's connection drops, resume on node B.
	var recoverMu sync.Mutex
	recovered, notRecovered := 0, 0
	var reconnectTimes []time.Duration
	stopWatch := make(chan struct{})
	var watchWG sync.WaitGroup
	var killedAt time.Time
	for _, u := range users {
		watchWG.Add(1)
		go func(u *user) {
			defer watchWG.Done()
			for {
				c := u.current()
				for !c.Closed() {
					select {
					case <-stopWatch:
						return
					case <-time.After(20 * time.Millisecond):
					}
				}
				pid, off := c.PID(), c.LastOffset()
				var nc *sioclient.Client
				var err error
				for attempt := 0; attempt < 50; attempt++ {
					nc, err = dial(b.url, u.cookie, map[string]any{"pid": pid, "offset": off})
					if err == nil {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				if err != nil {
					t.Errorf("user %d: reconnect: %v", u.idx, err)
					return
				}
				recoverMu.Lock()
				if nc.PID() == pid {
					recovered++
				} else {
					notRecovered++
				}
				reconnectTimes = append(reconnectTimes, time.Since(killedAt))
				recoverMu.Unlock()
				u.mu.Lock()
				u.conns = append(u.conns, nc)
				u.mu.Unlock()
			}
		}(u)
	}

	for n := 2; n <= rounds; n++ {
		if n == killAt {
			killedAt = time.Now()
			if err := a.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
		}
		if err := publishRound(t, b.url, nUsers, n); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitAll(t, users, rounds, 60*time.Second)
	close(stopWatch)
	watchWG.Wait()
	dupes, lost := checkExactlyOnce(t, users, rounds)
	var worst time.Duration
	for _, d := range reconnectTimes {
		worst = max(worst, d)
	}
	t.Logf("users %d, rounds %d, reconnected %d (recovered %d, not recovered %d), lost %d, duplicates %d, slowest recovery %v after the kill",
		nUsers, rounds, recovered+notRecovered, recovered, notRecovered, lost, dupes, worst)
	if notRecovered != 0 || lost != 0 || dupes != 0 {
		t.Fatalf("not exactly once: not recovered %d, lost %d, duplicates %d", notRecovered, lost, dupes)
	}
	if recovered != nUsers/2 {
		t.Fatalf("%d clients recovered, want %d (every client of the killed node)", recovered, nUsers/2)
	}
}

func ready(base string) bool {
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// TestRedisRestartMidStream: the adapter's Redis is killed and restarted
// (empty) while users on two nodes receive numbered trades. A backend that
// retries refused publishes (same event ids) once the nodes are ready again
// gets every event to every user exactly once, in order; no client is
// disconnected.
func TestRedisRestartMidStream(t *testing.T) {
	const nUsers, rounds, killAt = 200, 12, 4
	bus := redistest.Start(t)      // adapter, recovery, rate limits
	sessions := redistest.Start(t) // connect-redis sessions (kept)
	srdb := redis.NewClient(&redis.Options{Addr: sessions.Addr})
	defer srdb.Close()
	extra := "TRADEWIRE_SESSION_REDIS_URL=" + sessions.URL()
	a := startNode(t, bus.URL(), extra)
	b := startNode(t, bus.URL(), extra)
	cookies := seedSessions(t, srdb, nUsers)
	users := connectAlternating(t, cookies, a, b)
	refused := 0
	for n := 1; n <= rounds; n++ {
		if n == killAt {
			bus.Kill()
			go func() { time.Sleep(time.Second); bus.Restart() }()
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := publishRound(t, a.url, nUsers, n)
			if err == nil {
				break
			}
			refused++
			if time.Now().After(deadline) {
				t.Fatalf("round %d never accepted: %v", n, err)
			}
			for !(ready(a.url) && ready(b.url)) && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	waitAll(t, users, rounds, 30*time.Second)
	for _, n := range []*node{a, b} {
		n.mu.Lock()
		for _, l := range strings.Split(n.log.String(), "\n") {
			if strings.Contains(l, "caught up") {
				t.Logf("%s: %s", n.url, l)
			}
		}
		n.mu.Unlock()
	}
	dupes, lost := checkExactlyOnce(t, users, rounds)
	disconnected := 0
	for _, u := range users {
		if u.current().Closed() {
			disconnected++
		}
	}
	t.Logf("users %d, rounds %d, publishes refused during the outage %d, lost %d, duplicates %d, disconnected %d",
		nUsers, rounds, refused, lost, dupes, disconnected)
	if lost != 0 || dupes != 0 || disconnected != 0 {
		t.Fatalf("lost %d, duplicates %d, disconnected %d", lost, dupes, disconnected)
	}
}
