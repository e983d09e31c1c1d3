package ratelimit

import (
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"golang.org/x/time/rate"
)

// Limits high enough that benchmarks measure allowed checks, not cached
// denials.
var benchCfg = Config{ConnPerMinute: maxPerMinute, ConnBurst: 1_000_000,
	EventsPerMinute: maxPerMinute, EventBurst: 1_000_000, MaxSubscriptions: 1_000_000,
	OnModeChange: func(m Mode) { panic("benchmark Limiter switched to " + m.String()) }}

func BenchmarkAllowEventMemory(b *testing.B) {
	l := newLim(b, benchCfg, nil)
	b.ReportAllocs()
	for b.Loop() {
		l.AllowEvent(ctx, "user-1")
	}
}

func BenchmarkAllowEventMemoryParallel(b *testing.B) {
	l := newLim(b, benchCfg, nil)
	var id atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		user := "user-" + itoa(int(id.Add(1)))
		for pb.Next() {
			l.AllowEvent(ctx, user)
		}
	})
}

func BenchmarkAllowConnectionMemory(b *testing.B) {
	l := newLim(b, benchCfg, nil)
	ip := netip.MustParseAddr("2001:db8::1")
	b.ReportAllocs()
	for b.Loop() {
		l.AllowConnection(ctx, ip)
	}
}

func BenchmarkAllowEventRedis(b *testing.B) {
	_, rdb, _ := startRedis(b)
	l := newLim(b, benchCfg, rdb)
	l.AllowEvent(ctx, "user-1") // load the script
	b.ReportAllocs()
	for b.Loop() {
		if !l.AllowEvent(ctx, "user-1").Allowed {
			b.Fatal("refused")
		}
	}
	if l.Mode() != ModeRedis {
		b.Fatal("fell back to memory")
	}
}

func BenchmarkAllowEventRedisParallel(b *testing.B) {
	_, rdb, _ := startRedis(b)
	l := newLim(b, benchCfg, rdb)
	l.AllowEvent(ctx, "warm")
	var id atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		user := "user-" + itoa(int(id.Add(1)))
		for pb.Next() {
			l.AllowEvent(ctx, user)
		}
	})
	if l.Mode() != ModeRedis {
		b.Fatal("fell back to memory")
	}
}

// BenchmarkAllowEventRedisDenied: a flooding user is answered from the
// denial cache, without a round trip.
func BenchmarkAllowEventRedisDenied(b *testing.B) {
	_, rdb, cnt := startRedis(b)
	l := newLim(b, Config{EventsPerMinute: 1}, rdb)
	l.AllowEvent(ctx, "flooder")
	before := cnt.n.Load()
	b.ReportAllocs()
	for b.Loop() {
		if l.AllowEvent(ctx, "flooder").Allowed {
			b.Fatal("allowed")
		}
	}
	b.ReportMetric(float64(cnt.n.Load()-before)/float64(b.N), "redis-cmds/op")
}

func BenchmarkAllowConnectionRedis(b *testing.B) {
	_, rdb, _ := startRedis(b)
	l := newLim(b, benchCfg, rdb)
	ip := netip.MustParseAddr("192.0.2.1")
	l.AllowConnection(ctx, ip)
	b.ReportAllocs()
	for b.Loop() {
		l.AllowConnection(ctx, ip)
	}
}

// BenchmarkSubscribeUnsubscribeRedis: one AllowSubscribe of a new room
// (event + quota, one round trip) and its release (ZREM, one round trip).
func BenchmarkSubscribeUnsubscribeRedis(b *testing.B) {
	_, rdb, _ := startRedis(b)
	l := newLim(b, benchCfg, rdb)
	s := newSocket(b, l, "user-1")
	s.AcquireSubscriptions(ctx, rooms("held", 0, 20)) // a realistic set
	room := []string{"watchlist:AAPL"}
	b.ReportAllocs()
	for b.Loop() {
		if g, _ := s.AllowSubscribe(ctx, room); len(g) != 1 {
			b.Fatal("refused")
		}
		s.ReleaseSubscriptions(ctx, room)
	}
}

// BenchmarkRedisRateAllow is github.com/go-redis/redis_rate/v10 on the same
// server, for comparison with our script (BenchmarkAllowEventRedis).
func BenchmarkRedisRateAllow(b *testing.B) {
	_, rdb, _ := startRedis(b)
	rl := redis_rate.NewLimiter(rdb)
	limit := redis_rate.Limit{Rate: maxPerMinute, Burst: 1_000_000, Period: time.Minute}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rl.Allow(ctx, "tradewire:rl:ev:{user-1}", limit); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoryPerKey reports the heap cost of one idle-able key in the
// fallback table, against a map of golang.org/x/time/rate limiters.
func BenchmarkMemoryPerKey(b *testing.B) {
	const n = 100_000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "tradewire:rl:ev:{user-" + itoa(i) + "}"
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	b.Run("memStore", func(b *testing.B) {
		for b.Loop() {
			before := heap()
			s := newMemStore(n)
			for _, k := range keys {
				s.gcra(k, 1, int64(600*time.Millisecond), 100)
			}
			b.ReportMetric(float64(heap()-before)/n, "B/key")
			runtime.KeepAlive(s)
		}
	})
	b.Run("x-time-rate", func(b *testing.B) {
		for b.Loop() {
			before := heap()
			var mu sync.Mutex
			m := make(map[string]*rate.Limiter)
			for _, k := range keys {
				mu.Lock()
				lim := rate.NewLimiter(rate.Every(600*time.Millisecond), 100)
				m[k] = lim
				mu.Unlock()
				lim.Allow()
			}
			b.ReportMetric(float64(heap()-before)/n, "B/key")
			runtime.KeepAlive(m)
		}
	})
}
