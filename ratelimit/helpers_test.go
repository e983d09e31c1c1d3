package ratelimit

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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
	l, err := newLimiter(cfg, rdb, clock)
	if err != nil {
		t.Fatalf("newLimiter: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

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

// eventually polls cond every 20ms until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("%s: not true after %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
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
