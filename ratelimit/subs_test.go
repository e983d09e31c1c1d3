package ratelimit

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/internal/testutil/poll"
)

func TestSubscriptionsAcrossTwoNodes(t *testing.T) {
	_, rdb, cnt := startRedis(t)
	_, rdb2, _ := newClientFor(t, rdb.Options().Addr)
	a := newLim(t, Config{NodeID: "a"}, rdb)
	b := newLim(t, Config{NodeID: "b"}, rdb2)
	sa := newSocket(t, a, "u")
	sb := newSocket(t, b, "u")

	granted, d := sa.AcquireSubscriptions(ctx, rooms("r", 0, 30))
	if len(granted) != 30 || !d.Allowed || d.Remaining != 20 || d.Limit != 50 {
		t.Fatalf("node a: %d granted, %+v", len(granted), d)
	}
	// r20..r29 are already counted (held on node a), r30..r49 fill the quota,
	// r50..r59 are refused.
	granted, d = sb.AcquireSubscriptions(ctx, rooms("r", 20, 60))
	if !slices.Equal(granted, rooms("r", 20, 50)) || d.Allowed || d.Code() != CodeSubscriptionLimit || d.Remaining != 0 {
		t.Fatalf("node b: granted %v, %+v", granted, d)
	}
	if g, d := sa.AcquireSubscriptions(ctx, []string{"x"}); len(g) != 0 || d.Allowed {
		t.Fatalf("51st room granted on node a: %v %+v", g, d)
	}
	// Acquiring what the socket or another local socket holds is free and
	// costs no round trip.
	sa2 := newSocket(t, a, "u")
	before := cnt.n.Load()
	if g, d := sa.AcquireSubscriptions(ctx, []string{"r0", "r0", "r1"}); !slices.Equal(g, []string{"r0", "r1"}) || !d.Allowed {
		t.Fatalf("re-acquire: %v %+v", g, d)
	}
	if g, d := sa2.AcquireSubscriptions(ctx, []string{"r0"}); len(g) != 1 || !d.Allowed {
		t.Fatalf("second local socket: %v %+v", g, d)
	}
	if n := cnt.n.Load() - before; n != 0 {
		t.Fatalf("%d Redis commands for rooms already held on the node", n)
	}
	members, err := rdb.ZCard(ctx, a.subsKey("u")).Result()
	if err != nil || members != 60 { // 30 leases of a + 30 of b, 50 distinct rooms
		t.Fatalf("ZCARD = %d, %v", members, err)
	}

	// Unsubscribing frees quota, but r0 stays counted while sa2 holds it.
	sa.ReleaseSubscriptions(ctx, rooms("r", 0, 10))
	granted, d = sb.AcquireSubscriptions(ctx, rooms("r", 50, 60))
	if !slices.Equal(granted, rooms("r", 50, 59)) || d.Allowed {
		t.Fatalf("after release: granted %v, %+v", granted, d)
	}
	// Releasing again is a no-op without a round trip.
	before = cnt.n.Load()
	sa.ReleaseSubscriptions(ctx, rooms("r", 0, 10))
	if n := cnt.n.Load() - before; n != 0 {
		t.Fatalf("%d Redis commands for a repeated release", n)
	}
	// Disconnect of sa2 frees r0.
	sa2.Close(ctx)
	sa2.Close(ctx)
	if g, d := sb.AcquireSubscriptions(ctx, []string{"r59"}); len(g) != 1 || !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after disconnect: %v %+v", g, d)
	}
	if g, d := sa2.AcquireSubscriptions(ctx, []string{"r0"}); g != nil || d.Allowed {
		t.Fatalf("closed socket granted %v %+v", g, d)
	}
	if got := sa.Rooms(); !slices.Equal(got, rooms("r", 10, 30)) {
		t.Fatalf("sa.Rooms() = %v", got)
	}
	// Closing every socket empties the key.
	sa.Close(ctx)
	sb.Close(ctx)
	if n, _ := rdb.Exists(ctx, a.subsKey("u")).Result(); n != 0 {
		t.Fatal("subscription key left behind")
	}
	if len(a.snapshotUsers())+len(b.snapshotUsers()) != 0 {
		t.Fatal("local state left behind")
	}
}

func TestAllowSubscribeOneRoundTrip(t *testing.T) {
	_, rdb, cnt := startRedis(t)
	l := newLim(t, Config{EventsPerMinute: 3}, rdb)
	s := newSocket(t, l, "u")
	if _, d := s.AllowSubscribe(ctx, []string{"warm"}); !d.Allowed { // loads the script
		t.Fatalf("%+v", d)
	}
	before := cnt.n.Load()
	g, d := s.AllowSubscribe(ctx, []string{"a", "b"})
	if len(g) != 2 || !d.Allowed || d.Kind != KindSubscription || d.Remaining != 47 {
		t.Fatalf("%v %+v", g, d)
	}
	if n := cnt.n.Load() - before; n != 1 {
		t.Fatalf("subscribe event cost %d commands, want 1", n)
	}
	// Only rooms already held: the event still costs one GCRA call.
	if g, d := s.AllowSubscribe(ctx, []string{"a"}); len(g) != 1 || !d.Allowed {
		t.Fatalf("%v %+v", g, d)
	}
	// Event limit reached: nothing is acquired, the code is RATE_LIMIT.
	g, d = s.AllowSubscribe(ctx, []string{"c"})
	if g != nil || d.Allowed || d.Kind != KindEvent || d.Code() != CodeRateLimit || d.RetryAfter <= 0 {
		t.Fatalf("%v %+v", g, d)
	}
	before = cnt.n.Load()
	if _, d := s.AllowSubscribe(ctx, []string{"c"}); d.Allowed || d.Kind != KindEvent {
		t.Fatalf("%+v", d)
	}
	if n := cnt.n.Load() - before; n != 0 {
		t.Fatalf("cached denial cost %d commands", n)
	}
	if slices.Contains(s.Rooms(), "c") {
		t.Fatal("room acquired although the event was refused")
	}
	// Oversized requests are cut at MaxSubscriptions new rooms.
	s2 := newSocket(t, newLim(t, Config{MaxSubscriptions: 5, KeyPrefix: "big:"}, rdb), "v")
	g, d = s2.AcquireSubscriptions(ctx, rooms("x", 0, 1000))
	if !slices.Equal(g, rooms("x", 0, 5)) || d.Allowed {
		t.Fatalf("%v %+v", g, d)
	}
}

func TestSubscriptionLeaseExpiresAfterCrash(t *testing.T) {
	_, rdb, _ := startRedis(t)
	_, rdb2, _ := newClientFor(t, rdb.Options().Addr)
	const lease = 1500 * time.Millisecond
	a := newLim(t, Config{NodeID: "a", LeaseTTL: lease}, rdb)
	b := newLim(t, Config{NodeID: "b", LeaseTTL: lease}, rdb2)
	sa := newSocket(t, a, "u")
	sb := newSocket(t, b, "u")
	if g, _ := sa.AcquireSubscriptions(ctx, rooms("r", 0, 50)); len(g) != 50 {
		t.Fatalf("granted %d", len(g))
	}
	// The heartbeat keeps a live node's leases beyond LeaseTTL.
	time.Sleep(2 * lease)
	if g, _ := sb.AcquireSubscriptions(ctx, []string{"x"}); len(g) != 0 {
		t.Fatal("live node's lease expired")
	}
	// Crash: heartbeat stops, nothing is released.
	a.halt()
	if g, _ := sb.AcquireSubscriptions(ctx, []string{"x"}); len(g) != 0 {
		t.Fatal("quota freed before the lease ran out")
	}
	took := poll.For(t, lease+2*time.Second, "quota of crashed node released", func() bool {
		g, _ := sb.AcquireSubscriptions(ctx, []string{"x"})
		return len(g) == 1
	})
	t.Logf("quota released %v after the crash (LeaseTTL %v)", took, lease)
	if g, d := sb.AcquireSubscriptions(ctx, rooms("y", 0, 49)); len(g) != 49 || !d.Allowed {
		t.Fatalf("after crash: %d granted, %+v", len(g), d)
	}
	ttl, err := rdb.PTTL(ctx, b.subsKey("u")).Result()
	if err != nil || ttl <= 0 || ttl > lease {
		t.Fatalf("subscription key PTTL = %v, %v", ttl, err)
	}
}

func TestCloseReleasesLeases(t *testing.T) {
	_, rdb, _ := startRedis(t)
	a := newLim(t, Config{NodeID: "a"}, rdb)
	b := newLim(t, Config{NodeID: "b"}, rdb)
	for _, u := range []string{"u1", "u2"} {
		if g, _ := newSocket(t, a, u).AcquireSubscriptions(ctx, rooms("r", 0, 50)); len(g) != 50 {
			t.Fatal("acquire")
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"u1", "u2"} {
		if g, _ := newSocket(t, b, u).AcquireSubscriptions(ctx, rooms("z", 0, 50)); len(g) != 50 {
			t.Fatalf("%s: quota not released by Close", u)
		}
	}
}

func TestHeartbeatRestoresLostLeases(t *testing.T) {
	_, rdb, _ := startRedis(t)
	l := newLim(t, Config{LeaseTTL: 300 * time.Millisecond}, rdb)
	s := newSocket(t, l, "u")
	s.AcquireSubscriptions(ctx, []string{"a", "b", "c"})
	// A Redis restart between two calls loses data and scripts without any
	// error reaching the Limiter.
	if err := rdb.Del(ctx, l.subsKey("u")).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	poll.For(t, 3*time.Second, "leases restored", func() bool {
		m, _ := rdb.ZRange(ctx, l.subsKey("u"), 0, -1).Result()
		return slices.Equal(m, []string{l.NodeID() + "|a", l.NodeID() + "|b", l.NodeID() + "|c"})
	})
	if l.Mode() != ModeRedis {
		t.Fatal("left Redis mode")
	}
}

func TestSubscriptionsMemoryOnly(t *testing.T) {
	l := newLim(t, Config{MaxSubscriptions: 3}, nil)
	s1 := newSocket(t, l, "u")
	s2 := newSocket(t, l, "u")
	if g, d := s1.AllowSubscribe(ctx, []string{"a", "b"}); len(g) != 2 || !d.Allowed || d.Remaining != 1 {
		t.Fatalf("%v %+v", g, d)
	}
	if g, d := s2.AcquireSubscriptions(ctx, []string{"b", "c", "d"}); !slices.Equal(g, []string{"b", "c"}) || d.Allowed {
		t.Fatalf("%v %+v", g, d)
	}
	s1.Close(ctx)
	if g, d := s2.AcquireSubscriptions(ctx, []string{"d"}); len(g) != 1 || !d.Allowed {
		t.Fatalf("%v %+v", g, d)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestParseAcquireRejectsBadReplies(t *testing.T) {
	for _, v := range [][]any{
		{int64(1)},
		{int64(1), int64(0), int64(0), int64(1), int64(5)},
		{"x", int64(0), int64(0), int64(1), "1"},
		{int64(1), int64(0), int64(0), int64(1), "11"},
	} {
		if _, err := parseAcquire(v, 1); err == nil || !strings.Contains(err.Error(), "unexpected acquire reply") {
			t.Errorf("parseAcquire(%v) err = %v", v, err)
		}
	}
	r, err := parseAcquire([]any{int64(0), int64(0), int64(1500), int64(0), ""}, 3)
	if err != nil || r.event.allowed || r.event.wait != 1500*time.Microsecond {
		t.Fatalf("%+v %v", r, err)
	}
}

// TestRedisCluster runs every script against a one-node Redis Cluster, which
// rejects scripts whose keys hash to different slots (CROSSSLOT).
func TestRedisCluster(t *testing.T) {
	s := startClusterNode(t)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{s}, ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { _ = cc.Close() })
	l := newLim(t, Config{LeaseTTL: 300 * time.Millisecond}, cc)
	if !l.direct {
		t.Fatal("ContextTimeoutEnabled of a ClusterClient not detected")
	}
	sock := newSocket(t, l, "user-42")
	for range 3 {
		if !sock.AllowEvent(ctx).Allowed {
			t.Fatal("event refused")
		}
	}
	if g, d := sock.AllowSubscribe(ctx, []string{"a", "b"}); len(g) != 2 || !d.Allowed {
		t.Fatalf("%v %+v", g, d)
	}
	time.Sleep(250 * time.Millisecond) // at least two heartbeats
	if err := l.resyncAll(); err != nil {
		t.Fatal(err)
	}
	sock.ReleaseSubscriptions(ctx, []string{"a"})
	if l.Mode() != ModeRedis {
		t.Fatal("a script failed on Redis Cluster")
	}
	m, err := cc.ZRange(ctx, l.subsKey("user-42"), 0, -1).Result()
	if err != nil || !slices.Equal(m, []string{l.NodeID() + "|b"}) {
		t.Fatalf("members %v, %v", m, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n, _ := cc.Exists(ctx, l.subsKey("user-42")).Result(); n != 0 {
		t.Fatal("Close left leases behind")
	}
}

// TestHeartbeatExtendsLeases: the heartbeat pushes lease expiry forward
// (without re-adding anything) and the key's TTL follows the longest lease.
func TestHeartbeatExtendsLeases(t *testing.T) {
	_, rdb, _ := startRedis(t)
	var logs syncBuffer
	l := newLim(t, Config{LeaseTTL: 300 * time.Millisecond, Logger: testLogger(&logs)}, rdb)
	s := newSocket(t, l, "u")
	s.AcquireSubscriptions(ctx, []string{"a"})
	member := l.NodeID() + "|a"
	first, err := rdb.ZScore(ctx, l.subsKey("u"), member).Result()
	if err != nil {
		t.Fatal(err)
	}
	poll.For(t, 2*time.Second, "lease extended", func() bool {
		score, err := rdb.ZScore(ctx, l.subsKey("u"), member).Result()
		return err == nil && score > first
	})
	ttl, err := rdb.PTTL(ctx, l.subsKey("u")).Result()
	if err != nil || ttl <= 0 || ttl > 300*time.Millisecond {
		t.Fatalf("PTTL %v, %v", ttl, err)
	}
	if strings.Contains(logs.String(), "resyncing") {
		t.Fatal("a plain heartbeat needed a resync")
	}
}
