package ratelimit

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tradewire/tradewire/internal/clientip"
)

var ctx = context.Background()

func TestConnectionLimitRedis(t *testing.T) {
	_, rdb, cnt := startRedis(t)
	var allowed, denied int
	l := newLim(t, Config{OnDecision: func(k Kind, ok bool) {
		if k != KindConnection {
			t.Errorf("decision kind %v", k)
		}
		if ok {
			allowed++
		} else {
			denied++
		}
	}}, rdb)
	ip := netip.MustParseAddr("203.0.113.7")
	for i := range 10 {
		d := l.AllowConnection(ctx, ip)
		if !d.Allowed || d.Remaining != 9-i || d.Limit != 10 || d.Code() != "" {
			t.Fatalf("connection %d: %+v", i+1, d)
		}
	}
	d := l.AllowConnection(ctx, ip)
	if d.Allowed || d.Code() != CodeRateLimit || d.Kind != KindConnection {
		t.Fatalf("11th connection allowed: %+v", d)
	}
	// 10 per minute with burst 10: the next slot opens one emission interval
	// (6s) after the burst.
	if d.RetryAfter <= 5*time.Second || d.RetryAfter > 6*time.Second {
		t.Fatalf("RetryAfter = %v, want about 6s", d.RetryAfter)
	}
	if d.RetryAfterMs() <= 5000 || d.RetryAfterSeconds() != 6 {
		t.Fatalf("RetryAfterMs %d, RetryAfterSeconds %d", d.RetryAfterMs(), d.RetryAfterSeconds())
	}
	// While the denial is in force, checks are answered without Redis.
	before := cnt.n.Load()
	for range 5 {
		if l.AllowConnection(ctx, ip).Allowed {
			t.Fatal("allowed during denial")
		}
	}
	if n := cnt.n.Load() - before; n != 0 {
		t.Fatalf("%d Redis commands for cached denials", n)
	}
	if allowed != 10 || denied != 6 {
		t.Fatalf("observer saw %d allowed, %d denied", allowed, denied)
	}
	// Another IP has its own budget.
	if !l.AllowConnection(ctx, netip.MustParseAddr("203.0.113.8")).Allowed {
		t.Fatal("other IP refused")
	}
	// The bucket lives under the prefix and expires by itself.
	ttl, err := rdb.PTTL(ctx, l.connKey(ip)).Result()
	if err != nil || ttl <= 50*time.Second || ttl > time.Minute {
		t.Fatalf("bucket TTL = %v, %v", ttl, err)
	}
	if l.Mode() != ModeRedis {
		t.Fatalf("mode %v", l.Mode())
	}
}

func TestConnectionLimitIPv6Prefix(t *testing.T) {
	_, rdb, _ := startRedis(t)
	l := newLim(t, Config{ConnPerMinute: 2}, rdb)
	a := netip.MustParseAddr("2001:db8:1:2::1")
	b := netip.MustParseAddr("2001:db8:1:2:ffff::9") // same /64
	c := netip.MustParseAddr("2001:db8:1:3::1")      // other /64
	if !l.AllowConnection(ctx, a).Allowed || !l.AllowConnection(ctx, b).Allowed {
		t.Fatal("first two refused")
	}
	if l.AllowConnection(ctx, a).Allowed {
		t.Fatal("third connection from the same /64 allowed")
	}
	if !l.AllowConnection(ctx, c).Allowed {
		t.Fatal("other /64 refused")
	}
	l128 := newLim(t, Config{ConnPerMinute: 1, IPv6PrefixBits: 128, KeyPrefix: "t128:"}, rdb)
	if !l128.AllowConnection(ctx, a).Allowed || !l128.AllowConnection(ctx, b).Allowed {
		t.Fatal("per-address IPv6 keys shared a bucket")
	}
	// Mapped IPv4 and plain IPv4 are the same client; invalid addresses share one bucket.
	if got, want := l.connKey(netip.MustParseAddr("::ffff:192.0.2.1")), l.cfg.KeyPrefix+"conn:192.0.2.1"; got != want {
		t.Fatalf("connKey = %q, want %q", got, want)
	}
	if got := l.connKey(netip.Addr{}); got != l.cfg.KeyPrefix+"conn:invalid" {
		t.Fatalf("connKey(invalid) = %q", got)
	}
}

// TestConnectionLimitBehindProxy wires clientip and the limiter the way the
// gateway does: a trusted proxy's X-Forwarded-For selects the bucket, an
// untrusted peer's header is ignored.
func TestConnectionLimitBehindProxy(t *testing.T) {
	_, rdb, _ := startRedis(t)
	l := newLim(t, Config{}, rdb)
	trusted, err := clientip.ParseTrustedProxies("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	res := clientip.New(trusted, clientip.XForwardedFor)
	connect := func(remote, xff string) Decision {
		h := http.Header{}
		h.Set("X-Forwarded-For", xff)
		ip, err := res.ClientIP(remote, h)
		if err != nil {
			t.Fatal(err)
		}
		return l.AllowConnection(ctx, ip)
	}
	// Clients behind the proxy are not one client: each has its own budget,
	// whichever trusted proxy it comes through.
	for i := range 5 {
		client := "198.51.100." + itoa(i)
		for j := range 10 {
			if !connect("10.0.0.2:443", client+", 10.0.0.9").Allowed {
				t.Fatalf("client %d connection %d refused", i, j)
			}
		}
		if connect("10.0.0.3:443", client).Allowed {
			t.Fatalf("11th connection of client %d via another proxy allowed", i)
		}
	}
	// A direct client rotating a forged header is still one client.
	for i := range 10 {
		if !connect("203.0.113.50:1000", "192.0.2."+itoa(i)).Allowed {
			t.Fatalf("connection %d refused", i)
		}
	}
	if connect("203.0.113.50:1000", "192.0.2.200").Allowed {
		t.Fatal("spoofed X-Forwarded-For escaped the limit")
	}
}

func TestEventLimitAcrossTwoNodes(t *testing.T) {
	_, rdb, _ := startRedis(t)
	_, rdb2, _ := newClientFor(t, rdb.Options().Addr)
	a := newLim(t, Config{NodeID: "a"}, rdb)
	b := newLim(t, Config{NodeID: "b"}, rdb2)
	sa := newSocket(t, a, "user-1")
	sb := newSocket(t, b, "user-1")
	// The bucket refills one event every 600ms. On a loaded machine 100
	// round trips can take longer than that; then each refill lets exactly
	// one more event through, which the count below allows for.
	start := time.Now()
	allowed := 0
	for i := range 200 {
		s := sa
		if i%2 == 1 {
			s = sb
		}
		d := s.AllowEvent(ctx)
		if !d.Allowed {
			if d.Code() != CodeRateLimit || d.Kind != KindEvent || d.RetryAfter <= 0 || d.RetryAfter > 600*time.Millisecond || d.Disconnect {
				t.Fatalf("denial: %+v", d)
			}
			break
		}
		if allowed < 100 && d.Remaining != 99-allowed {
			t.Fatalf("event %d: %+v", i+1, d)
		}
		allowed++
	}
	refills := int(time.Since(start) / (600 * time.Millisecond))
	if allowed < 100 || allowed > 100+refills {
		t.Fatalf("%d events allowed in %v, want 100 (+%d refills)", allowed, time.Since(start), refills)
	}
	// Both nodes now refuse.
	for _, s := range []*Socket{sa, sb} {
		if d := s.AllowEvent(ctx); d.Allowed {
			t.Fatalf("event allowed after the limit: %+v", d)
		}
	}
	// Another user is not affected; the plain Limiter check agrees.
	if !a.AllowEvent(ctx, "user-2").Allowed {
		t.Fatal("user-2 refused")
	}
	if a.AllowEvent(ctx, "user-1").Allowed || b.AllowEvent(ctx, "user-1").Allowed {
		t.Fatal("user-1 allowed by Limiter.AllowEvent")
	}
	// After one emission interval (600ms) one more event fits.
	time.Sleep(650 * time.Millisecond)
	if !sb.AllowEvent(ctx).Allowed {
		t.Fatal("event refused after the retry time")
	}
}

func TestFloodPolicy(t *testing.T) {
	clk := &fakeClock{}
	l := newLimClock(t, Config{EventsPerMinute: 60, FloodMaxDenials: 5, FloodWindow: 2 * time.Second}, nil, clk.now)
	s := newSocket(t, l, "flooder")
	other := newSocket(t, l, "flooder") // second socket of the same user
	for range 60 {
		if !s.AllowEvent(ctx).Allowed {
			t.Fatal("burst refused")
		}
	}
	for i := 1; i <= 4; i++ {
		if d := s.AllowEvent(ctx); d.Allowed || d.Disconnect {
			t.Fatalf("denial %d: %+v", i, d)
		}
	}
	// The other socket shares the quota but not the flood count.
	if d := other.AllowEvent(ctx); d.Allowed || d.Disconnect {
		t.Fatalf("other socket: %+v", d)
	}
	if d := s.AllowEvent(ctx); d.Allowed || !d.Disconnect {
		t.Fatalf("5th consecutive denial: %+v", d)
	}
	// An allowed event resets the streak.
	clk.advance(time.Second)
	if !s.AllowEvent(ctx).Allowed {
		t.Fatal("not allowed after refill")
	}
	for i := 1; i <= 4; i++ {
		if d := s.AllowEvent(ctx); d.Disconnect {
			t.Fatalf("disconnect after %d denials following an allowed event", i)
		}
	}
	// Denials spread over more than the window never add up to a disconnect.
	slow := newSocket(t, l, "slow")
	for range 60 {
		slow.AllowEvent(ctx)
	}
	for i := range 20 {
		clk.advance(600 * time.Millisecond) // 600ms: past FloodWindow every 4 denials
		slow.AllowEvent(ctx)                // consumes the refilled slot
		if d := slow.AllowEvent(ctx); d.Allowed || d.Disconnect {
			t.Fatalf("slow denial %d: %+v", i, d)
		}
	}
	// Disabled policy.
	l2 := newLimClock(t, Config{EventsPerMinute: 1, FloodMaxDenials: -1}, nil, clk.now)
	s2 := newSocket(t, l2, "u")
	for range 100 {
		if s2.AllowEvent(ctx).Disconnect {
			t.Fatal("disconnect with disabled flood policy")
		}
	}
}

func TestMemoryGCRA(t *testing.T) {
	clk := &fakeClock{}
	clk.advance(time.Hour)
	l := newLimClock(t, Config{EventsPerMinute: 60, EventBurst: 3}, nil, clk.now)
	if l.Mode() != ModeMemory {
		t.Fatalf("mode %v without Redis", l.Mode())
	}
	for i := range 3 {
		if d := l.AllowEvent(ctx, "u"); !d.Allowed || d.Remaining != 2-i {
			t.Fatalf("event %d: %+v", i, d)
		}
	}
	d := l.AllowEvent(ctx, "u")
	if d.Allowed || d.RetryAfter != time.Second {
		t.Fatalf("4th: %+v, want RetryAfter 1s", d)
	}
	clk.advance(999 * time.Millisecond)
	if d := l.AllowEvent(ctx, "u"); d.Allowed || d.RetryAfter != time.Millisecond {
		t.Fatalf("1ms early: %+v", d)
	}
	clk.advance(time.Millisecond)
	if !l.AllowEvent(ctx, "u").Allowed {
		t.Fatal("refused at the retry time")
	}
	// After a full refill the bucket is back to its burst.
	clk.advance(10 * time.Second)
	for range 3 {
		if !l.AllowEvent(ctx, "u").Allowed {
			t.Fatal("refused after refill")
		}
	}
	if l.AllowEvent(ctx, "u").Allowed {
		t.Fatal("burst exceeded after refill")
	}
}

func TestMemoryBounded(t *testing.T) {
	clk := &fakeClock{}
	l := newLimClock(t, Config{MaxMemoryKeys: 640}, nil, clk.now)
	for i := range 20_000 {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if !l.AllowConnection(ctx, ip).Allowed {
			t.Fatalf("first connection of %v refused", ip)
		}
		clk.advance(time.Microsecond)
	}
	if n := l.connMem.len(); n > 640 || n < 600 {
		t.Fatalf("%d entries after 20000 distinct keys, want at most 640 (and a full table)", n)
	}
	// Recently used keys survive eviction better than old ones: the newest key
	// is still limited.
	last := netip.AddrFrom4([4]byte{10, 0, 78, 31}) // i = 19999
	for range 9 {
		l.AllowConnection(ctx, last)
	}
	if l.AllowConnection(ctx, last).Allowed {
		t.Fatal("11th connection of the newest key allowed")
	}
	// Idle entries (buckets that refilled) are swept.
	clk.advance(time.Minute + time.Second)
	l.sweep()
	if n := l.connMem.len(); n != 0 {
		t.Fatalf("%d entries after sweep, want 0", n)
	}
	// Inserting into a full shard first sweeps expired entries (at most once
	// per sweepGap), and only then evicts the live entry closest to expiry.
	sh := &memShard{m: map[string]int64{"a": 100, "b": 10, "c": 20}, lastSweep: -sweepGap}
	sh.makeRoom(50, 3)
	if len(sh.m) != 1 || sh.m["a"] != 100 {
		t.Fatalf("after sweep: %v", sh.m)
	}
	sh = &memShard{m: map[string]int64{"a": 100, "b": 60}, lastSweep: 40}
	sh.makeRoom(50, 2) // swept 10ns ago: evict instead
	if len(sh.m) != 1 || sh.m["a"] != 100 {
		t.Fatalf("after eviction: %v", sh.m)
	}
}

func TestDisabledLimits(t *testing.T) {
	_, rdb, cnt := startRedis(t)
	var observed int
	l := newLim(t, Config{ConnPerMinute: -1, EventsPerMinute: -1, MaxSubscriptions: -1,
		OnDecision: func(Kind, bool) { observed++ }}, rdb)
	before := cnt.n.Load()
	for range 200 {
		if d := l.AllowConnection(ctx, netip.MustParseAddr("192.0.2.1")); !d.Allowed || d.Limit != 0 {
			t.Fatalf("%+v", d)
		}
	}
	s := newSocket(t, l, "u")
	for range 200 {
		if !s.AllowEvent(ctx).Allowed {
			t.Fatal("event refused")
		}
	}
	granted, d := s.AllowSubscribe(ctx, rooms("r", 0, 500))
	if len(granted) != 500 || !d.Allowed || d.Limit != 0 {
		t.Fatalf("granted %d, %+v", len(granted), d)
	}
	s.Close(ctx)
	if n := cnt.n.Load() - before; n != 0 {
		t.Fatalf("%d Redis commands with every limit disabled", n)
	}
	if observed != 402 { // 200 + 200 + event and subscription of AllowSubscribe
		t.Fatalf("observed %d decisions", observed)
	}
}

func TestConfig(t *testing.T) {
	l, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := l.Config()
	if c.ConnPerMinute != 10 || c.ConnBurst != 10 || c.EventsPerMinute != 100 || c.EventBurst != 100 ||
		c.MaxSubscriptions != 50 || c.FloodMaxDenials != 20 || c.FloodWindow != 10*time.Second ||
		c.IPv6PrefixBits != 64 || c.KeyPrefix != "tradewire:rl:" || c.RedisTimeout != 50*time.Millisecond ||
		c.ProbeInterval != time.Second || c.LeaseTTL != 30*time.Second || c.MaxMemoryKeys != 100_000 ||
		c.Logger == nil || c.NodeID == "" || l.NodeID() != c.NodeID {
		t.Fatalf("defaults: %+v", c)
	}
	l2 := newLim(t, Config{}, nil)
	if l2.NodeID() == l.NodeID() {
		t.Fatal("default node IDs collide")
	}
	bad := map[string]Config{
		"ConnPerMinute":   {ConnPerMinute: 100_000_000},
		"EventsPerMinute": {EventsPerMinute: 100_000_000},
		"ConnBurst":       {ConnBurst: -1},
		"EventBurst":      {EventBurst: 2_000_000},
		"FloodWindow":     {FloodWindow: -time.Second},
		"IPv6PrefixBits":  {IPv6PrefixBits: 129},
		"KeyPrefix":       {KeyPrefix: "rl:{x}:"},
		"NodeID":          {NodeID: "a|b"},
		"RedisTimeout":    {RedisTimeout: -1},
		"ProbeInterval":   {ProbeInterval: -1},
		"LeaseTTL":        {LeaseTTL: time.Millisecond},
		"MaxMemoryKeys":   {MaxMemoryKeys: -5},
	}
	for field, cfg := range bad {
		_, err := New(cfg, nil)
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: error %v", field, err)
		}
	}
}

func TestDecisionAndNames(t *testing.T) {
	d := Decision{Kind: KindSubscription}
	if d.Code() != CodeSubscriptionLimit {
		t.Fatal(d.Code())
	}
	d = Decision{Kind: KindEvent, RetryAfter: 1500*time.Millisecond + time.Microsecond}
	if d.Code() != CodeRateLimit || d.RetryAfterMs() != 1501 || d.RetryAfterSeconds() != 2 {
		t.Fatalf("%s %d %d", d.Code(), d.RetryAfterMs(), d.RetryAfterSeconds())
	}
	if (Decision{Allowed: true}).RetryAfterSeconds() != 0 {
		t.Fatal("allowed decision has a Retry-After")
	}
	names := map[string]string{
		KindConnection.String(): "connection", KindEvent.String(): "event", KindSubscription.String(): "subscription",
		Kind(9).String(): "kind(9)", ModeRedis.String(): "redis", ModeMemory.String(): "memory", Mode(7).String(): "mode(7)",
	}
	for got, want := range names {
		if got != want {
			t.Errorf("%q != %q", got, want)
		}
	}
}

func TestNewSocketEmptyUser(t *testing.T) {
	l := newLim(t, Config{}, nil)
	if _, err := l.NewSocket(""); !errors.Is(err, ErrEmptyUserID) {
		t.Fatalf("err = %v", err)
	}
	s := newSocket(t, l, "u")
	if s.UserID() != "u" {
		t.Fatal(s.UserID())
	}
}
