package ratelimit

import (
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tradewire/tradewire/internal/testutil/poll"
)

func TestRedisKilledFallbackAndRecovery(t *testing.T) {
	if os.Getenv("TRADEWIRE_TEST_REDIS_URL") != "" {
		t.Skip("kills and restarts Redis: needs a private redis-server, not TRADEWIRE_TEST_REDIS_URL")
	}
	s, rdb, _ := startRedis(t)
	var modes modeLog
	var logs syncBuffer
	l := newLim(t, Config{ProbeInterval: 100 * time.Millisecond, LeaseTTL: 600 * time.Millisecond,
		OnModeChange: modes.record, Logger: testLogger(&logs)}, rdb)
	sock := newSocket(t, l, "u")
	if g, _ := sock.AcquireSubscriptions(ctx, rooms("r", 0, 10)); len(g) != 10 {
		t.Fatal("acquire")
	}

	s.Kill()
	// Many concurrent checks hit the dead Redis at once: no panic, every one
	// answered, a single switch.
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			if d := l.AllowEvent(ctx, "user-"+itoa(i)); !d.Allowed {
				t.Errorf("event of user-%d refused", i)
			}
			l.AllowConnection(ctx, netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}))
		})
	}
	wg.Wait()
	if l.Mode() != ModeMemory {
		t.Fatalf("mode %v after kill", l.Mode())
	}
	if got := modes.get(); !slices.Equal(got, []Mode{ModeMemory}) {
		t.Fatalf("mode changes %v", got)
	}
	if n := strings.Count(logs.String(), "Redis unavailable"); n != 1 {
		t.Fatalf("%d switch logs:\n%s", n, logs.String())
	}
	// Limits still apply, per node, from memory.
	ip := netip.MustParseAddr("198.51.100.1")
	for i := range 10 {
		if !l.AllowConnection(ctx, ip).Allowed {
			t.Fatalf("connection %d refused", i)
		}
	}
	if d := l.AllowConnection(ctx, ip); d.Allowed || d.RetryAfter <= 0 {
		t.Fatalf("11th connection in memory mode: %+v", d)
	}
	for range 100 {
		sock.AllowEvent(ctx)
	}
	if sock.AllowEvent(ctx).Allowed {
		t.Fatal("101st event allowed in memory mode")
	}
	sock.ReleaseSubscriptions(ctx, rooms("r", 0, 5))
	g, d := sock.AcquireSubscriptions(ctx, rooms("r", 10, 60))
	if !slices.Equal(g, rooms("r", 10, 55)) || d.Allowed {
		t.Fatalf("memory-mode subscriptions: %v %+v", g, d)
	}

	// Redis comes back empty on the same port: the Limiter notices by itself.
	s.Restart()
	poll.For(t, 5*time.Second, "back to Redis mode", func() bool { return l.Mode() == ModeRedis })
	if got := modes.get(); !slices.Equal(got, []Mode{ModeMemory, ModeRedis}) {
		t.Fatalf("mode changes %v", got)
	}
	if !strings.Contains(logs.String(), "Redis reachable again") {
		t.Fatalf("no recovery log:\n%s", logs.String())
	}
	// The node's rooms were pushed to the new Redis before switching.
	m, err := rdb.ZRange(ctx, l.subsKey("u"), 0, -1).Result()
	if err != nil || len(m) != 50 {
		t.Fatalf("%d members after recovery, %v", len(m), err)
	}
	// And checks go to Redis again.
	if !l.AllowEvent(ctx, "fresh").Allowed {
		t.Fatal("refused")
	}
	if n, _ := rdb.Exists(ctx, l.eventKey("fresh")).Result(); n != 1 {
		t.Fatal("event bucket not in Redis after recovery")
	}
}

// TestPartitionReleasesDuringOutage: Redis keeps its data while one node is
// cut off; rooms that node released meanwhile are removed from Redis when it
// reconnects, instead of blocking the user's quota until the leases expire.
func TestPartitionReleasesDuringOutage(t *testing.T) {
	_, direct, _ := startRedis(t)
	proxy := startProxy(t, direct.Options().Addr)
	viaProxy, _ := newClient(t, proxy.Addr, true)
	var modes modeLog
	a := newLim(t, Config{NodeID: "a", ProbeInterval: 50 * time.Millisecond, OnModeChange: modes.record}, viaProxy)
	b := newLim(t, Config{NodeID: "b"}, direct)
	sa := newSocket(t, a, "u")
	sa2 := newSocket(t, a, "u2")
	sb := newSocket(t, b, "u")
	sa.AcquireSubscriptions(ctx, rooms("a", 0, 30))
	sa2.AcquireSubscriptions(ctx, rooms("a", 0, 3))
	sb.AcquireSubscriptions(ctx, rooms("b", 0, 20))

	proxy.cut()
	sa.ReleaseSubscriptions(ctx, rooms("a", 0, 10)) // cannot reach Redis
	sa2.Close(ctx)                                  // user u2 has nothing left on node a
	if a.Mode() != ModeMemory {
		t.Fatal("partition not detected")
	}
	if g, _ := sb.AcquireSubscriptions(ctx, []string{"x"}); len(g) != 0 {
		t.Fatal("quota changed while node a was cut off")
	}
	proxy.restore()
	poll.For(t, 5*time.Second, "node a back to Redis", func() bool { return a.Mode() == ModeRedis })
	if g, _ := sb.AcquireSubscriptions(ctx, rooms("x", 0, 10)); len(g) != 10 {
		t.Fatalf("rooms released during the partition still counted: %d granted", len(g))
	}
	if n, _ := direct.Exists(ctx, a.subsKey("u2")).Result(); n != 0 {
		t.Fatal("leases of u2 left in Redis")
	}
	if got := modes.get(); !slices.Equal(got, []Mode{ModeMemory, ModeRedis}) {
		t.Fatalf("mode changes %v", got)
	}
}

// TestRedisHangs: a Redis that accepts connections but never answers costs at
// most RedisTimeout per check (not the client's 10s ReadTimeout), with or
// without ContextTimeoutEnabled on the client.
func TestRedisHangs(t *testing.T) {
	for _, ctxTimeout := range []bool{true, false} {
		name := "ContextTimeoutEnabled=false"
		if ctxTimeout {
			name = "ContextTimeoutEnabled=true"
		}
		t.Run(name, func(t *testing.T) {
			rdb, _ := newClient(t, blackHole(t), ctxTimeout)
			var modes modeLog
			var logs syncBuffer
			l := newLim(t, Config{RedisTimeout: 50 * time.Millisecond, OnModeChange: modes.record,
				ProbeInterval: 100 * time.Millisecond, Logger: testLogger(&logs)}, rdb)
			if l.direct != ctxTimeout {
				t.Fatalf("direct = %v", l.direct)
			}
			start := time.Now()
			d := l.AllowConnection(ctx, netip.MustParseAddr("192.0.2.1"))
			if took := time.Since(start); took > 5*time.Second || !d.Allowed {
				t.Fatalf("check took %v (client ReadTimeout 10s): %+v", took, d)
			}
			if l.Mode() != ModeMemory || !slices.Equal(modes.get(), []Mode{ModeMemory}) {
				t.Fatalf("mode %v, changes %v", l.Mode(), modes.get())
			}
			sock := newSocket(t, l, "u")
			if g, d := sock.AllowSubscribe(ctx, []string{"a"}); len(g) != 1 || !d.Allowed {
				t.Fatalf("%v %+v", g, d)
			}
			time.Sleep(300 * time.Millisecond) // a few failed probes
			if l.Mode() != ModeMemory {
				t.Fatal("switched back to a Redis that does not answer")
			}
			if !ctxTimeout && !strings.Contains(logs.String(), "did not answer within 50ms") {
				t.Fatalf("timeout not logged:\n%s", logs.String())
			}
		})
	}
}

// TestCallerCancellationKeepsMode: a caller giving up is not a Redis failure.
func TestCallerCancellationKeepsMode(t *testing.T) {
	_, rdb, _ := startRedis(t)
	l := newLim(t, Config{}, rdb)
	cctx, cancel := contextWithCancel()
	cancel()
	d := l.AllowEvent(cctx, "u")
	if !d.Allowed {
		t.Fatalf("%+v", d)
	}
	sock := newSocket(t, l, "u")
	sock.AcquireSubscriptions(ctx, []string{"a"})
	sock.ReleaseSubscriptions(cctx, []string{"a"})
	if g, _ := sock.AllowSubscribe(cctx, []string{"b"}); len(g) != 1 {
		t.Fatal("not granted from memory")
	}
	if l.Mode() != ModeRedis {
		t.Fatal("caller cancellation switched the mode")
	}
}
