package ratelimit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/internal/testutil/poll"
	"github.com/tradewire/tradewire/internal/testutil/redistest"
)

// cmdCounter is a go-redis hook counting the commands sent to Redis
// (pipelines count once per command).
type cmdCounter struct{ n atomic.Int64 }

func (c *cmdCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *cmdCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}
func (c *cmdCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// newClient connects to a test Redis; ctxTimeout sets ContextTimeoutEnabled.
func newClient(t testing.TB, addr string, ctxTimeout bool) (*redis.Client, *cmdCounter) {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:                  addr,
		ContextTimeoutEnabled: ctxTimeout,
		MaxRetries:            -1,
		DialTimeout:           time.Second,
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          10 * time.Second,
	})
	cnt := &cmdCounter{}
	c.AddHook(cnt)
	t.Cleanup(func() { _ = c.Close() })
	return c, cnt
}

func startRedis(t testing.TB) (*redistest.Server, *redis.Client, *cmdCounter) {
	t.Helper()
	s := redistest.Start(t)
	c, cnt := newClient(t, s.Addr, true)
	return s, c, cnt
}

// modeLog records OnModeChange calls.
type modeLog struct {
	mu    sync.Mutex
	modes []Mode
}

func (m *modeLog) record(mode Mode) {
	m.mu.Lock()
	m.modes = append(m.modes, mode)
	m.mu.Unlock()
}

func (m *modeLog) get() []Mode {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Mode(nil), m.modes...)
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLogger(buf *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newLim builds a Limiter closed at test end.
func newLim(t testing.TB, cfg Config, rdb redis.UniversalClient) *Limiter {
	t.Helper()
	return newLimClock(t, cfg, rdb, nil)
}

func newLimClock(t testing.TB, cfg Config, rdb redis.UniversalClient, clock func() int64) *Limiter {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// Keys of every test and run are apart, even on a shared server
	// (TRADEWIRE_TEST_REDIS_URL).
	cfg.KeyPrefix = "tradewire:rl:" + runID + ":" + t.Name() + ":" + cfg.KeyPrefix
	if cfg.RedisTimeout == 0 {
		// The test machine is shared and loaded: a generous timeout keeps
		// tests that are not about timeouts from falling back to memory.
		// TestConfig checks the 50ms default; TestRedisHangs uses it.
		cfg.RedisTimeout = 2 * time.Second
	}
	l, err := newLimiter(cfg, rdb, clock)
	if err != nil {
		t.Fatalf("newLimiter: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// runID separates the keys of concurrent or successive test runs.
var runID = func() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}()

// fakeClock is a manual monotonic clock in nanoseconds.
type fakeClock struct{ t atomic.Int64 }

func (c *fakeClock) now() int64              { return c.t.Load() }
func (c *fakeClock) advance(d time.Duration) { c.t.Add(int64(d)) }

func newSocket(t testing.TB, l *Limiter, user string) *Socket {
	t.Helper()
	s, err := l.NewSocket(user)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func rooms(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, prefix+itoa(i))
	}
	return out
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	for ; i > 0; i /= 10 {
		n--
		b[n] = byte('0' + i%10)
	}
	return string(b[n:])
}

// newClientFor is a second client (a second "node") on the same server.
func newClientFor(t testing.TB, addr string) (string, *redis.Client, *cmdCounter) {
	c, cnt := newClient(t, addr, true)
	return addr, c, cnt
}

// tcpProxy forwards a local port to a Redis server; cut() drops every
// connection and refuses new ones (a network partition that keeps Redis and
// its data alive), restore() listens again on the same port.
type tcpProxy struct {
	t      testing.TB
	target string
	Addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
}

func startProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{t: t, target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.Addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = struct{}{}, struct{}{}
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close(); c.Close() }()
			go func() { _, _ = io.Copy(c, up); up.Close(); c.Close() }()
		}
	}()
}

func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *tcpProxy) restore() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.Addr)
	if err != nil {
		p.t.Fatalf("proxy restore: %v", err)
	}
	p.serve(ln)
}

// blackHole accepts connections and never answers (a hung Redis).
func blackHole(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

// startClusterNode starts a redis-server in cluster mode owning every slot.
func startClusterNode(t testing.TB) string {
	t.Helper()
	s := redistest.Start(t, "--cluster-enabled", "yes")
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	if err := c.Do(context.Background(), "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatalf("CLUSTER ADDSLOTSRANGE: %v", err)
	}
	poll.For(t, 10*time.Second, "cluster state ok", func() bool {
		info, err := c.ClusterInfo(context.Background()).Result()
		return err == nil && strings.Contains(info, "cluster_state:ok")
	})
	return s.Addr
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}
