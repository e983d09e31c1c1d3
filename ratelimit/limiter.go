package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// janitorInterval is how often expired in-memory entries are swept.
const janitorInterval = 30 * time.Second

// bucket is one GCRA limit.
type bucket struct {
	enabled  bool
	perMin   int
	interval int64 // nanoseconds between two requests at the sustained rate
	burst    int64
}

func newBucket(perMin, burst int) bucket {
	if perMin < 0 {
		return bucket{}
	}
	return bucket{enabled: true, perMin: perMin, interval: int64(time.Minute) / int64(perMin), burst: int64(burst)}
}

// Limiter enforces the connection, event and subscription limits. It is
// safe for concurrent use. Create it with New and stop it with Close.
type Limiter struct {
	cfg    Config
	rdb    redis.UniversalClient
	direct bool // rdb honours context deadlines itself
	log    *slog.Logger
	now    func() int64 // monotonic nanoseconds

	conn, events bucket
	caps         sync.Map  // roomCap -> *roomCap, see internCap
	connMem      *memStore // per-node buckets, used in memory mode
	eventMem     *memStore
	denied       *memStore // Redis denials cached until their retry time

	mode atomic.Int32
	wake chan struct{} // kicks the prober after a switch to memory mode

	subsMu  sync.Mutex
	subs    map[string]*userSubs // rooms held on this node, per user
	orphMu  sync.Mutex
	orphans map[string]struct{} // users who released rooms while Redis was down

	bgMu      sync.Mutex // serializes heartbeat, resync and final release
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New returns a Limiter. rdb is the shared Redis (a *redis.Client,
// *redis.ClusterClient, failover client or *redis.Ring); nil enforces all
// limits per node from memory. For the RedisTimeout to hold even when Redis
// hangs, rdb should have ContextTimeoutEnabled set; otherwise each Redis call
// runs on its own goroutine that the Limiter stops waiting for at the
// timeout. New does not contact Redis.
func New(cfg Config, rdb redis.UniversalClient) (*Limiter, error) {
	return newLimiter(cfg, rdb, nil)
}

func newLimiter(cfg Config, rdb redis.UniversalClient, clock func() int64) (*Limiter, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if clock == nil {
		base := time.Now()
		clock = func() int64 { return int64(time.Since(base)) }
	}
	l := &Limiter{
		cfg:      cfg,
		rdb:      rdb,
		log:      cfg.Logger,
		now:      clock,
		conn:     newBucket(cfg.ConnPerMinute, cfg.ConnBurst),
		events:   newBucket(cfg.EventsPerMinute, cfg.EventBurst),
		connMem:  newMemStore(cfg.MaxMemoryKeys),
		eventMem: newMemStore(cfg.MaxMemoryKeys),
		denied:   newMemStore(cfg.MaxMemoryKeys),
		wake:     make(chan struct{}, 1),
		subs:     make(map[string]*userSubs),
		orphans:  make(map[string]struct{}),
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.mode.Store(int32(ModeMemory))
	if rdb != nil {
		l.mode.Store(int32(ModeRedis))
		l.direct = honoursContext(rdb)
		l.wg.Add(2)
		go l.probeLoop()
		go l.heartbeatLoop()
	}
	l.wg.Add(1)
	go l.janitor()
	return l, nil
}

// honoursContext reports whether go-redis applies context deadlines to
// socket I/O for this client.
func honoursContext(rdb redis.UniversalClient) bool {
	switch c := rdb.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	case *redis.Ring:
		return c.Options().ContextTimeoutEnabled
	}
	return false
}

// Config returns the configuration in effect, defaults applied.
func (l *Limiter) Config() Config { return l.cfg }

// NodeID returns the node identifier used in subscription leases.
func (l *Limiter) NodeID() string { return l.cfg.NodeID }

// Mode reports where limits are enforced right now.
func (l *Limiter) Mode() Mode { return Mode(l.mode.Load()) }

// AllowConnection checks the connection limit for a client IP (from
// internal/clientip). IPv6 clients are grouped by Config.IPv6PrefixBits.
// Cost: one Redis round trip in Redis mode, none while a previous denial for
// the same IP is still in force.
func (l *Limiter) AllowConnection(ctx context.Context, ip netip.Addr) Decision {
	d := l.rate(ctx, KindConnection, l.connKey(ip), l.conn)
	l.observe(d)
	return d
}

// AllowEvent checks the event limit of a user without the flood policy;
// gateways normally call Socket.AllowEvent instead. Cost: one Redis round
// trip in Redis mode, none while a previous denial is still in force.
func (l *Limiter) AllowEvent(ctx context.Context, userID string) Decision {
	d := l.rate(ctx, KindEvent, l.eventKey(userID), l.events)
	l.observe(d)
	return d
}

// rate charges one request against b for key, in Redis or from memory.
func (l *Limiter) rate(ctx context.Context, kind Kind, key string, b bucket) Decision {
	d := Decision{Kind: kind, Allowed: true, Limit: b.perMin}
	if !b.enabled {
		d.Limit = 0
		return d
	}
	now := l.now()
	if l.Mode() == ModeRedis {
		if w := l.denied.wait(key, now); w > 0 {
			d.Allowed, d.RetryAfter = false, time.Duration(w)
			return d
		}
		r, err := l.redisGCRA(ctx, key, b)
		if err == nil {
			d.Allowed, d.Remaining, d.RetryAfter = r.allowed, r.remaining, r.wait
			if !r.allowed {
				l.denied.block(key, now+int64(r.wait), now)
			}
			return d
		}
		l.redisFailed(ctx, err)
	}
	mem := l.eventMem
	if kind == KindConnection {
		mem = l.connMem
	}
	ok, rem, wait := mem.gcra(key, now, b.interval, b.burst)
	d.Allowed, d.Remaining, d.RetryAfter = ok, rem, time.Duration(wait)
	return d
}

func (l *Limiter) observe(d Decision) {
	if f := l.cfg.OnDecision; f != nil {
		f(d.Kind, d.Allowed)
	}
}

func (l *Limiter) connKey(ip netip.Addr) string {
	ip = ip.Unmap().WithZone("")
	var s string
	switch {
	case !ip.IsValid():
		s = "invalid"
	case ip.Is6() && l.cfg.IPv6PrefixBits < 128:
		s = netip.PrefixFrom(ip, l.cfg.IPv6PrefixBits).Masked().String()
	default:
		s = ip.String()
	}
	return l.cfg.KeyPrefix + "conn:" + s
}

// The event bucket and the subscription set of a user share the hash tag
// {userID} so that one script can use both on Redis Cluster.
func (l *Limiter) eventKey(user string) string { return l.cfg.KeyPrefix + "ev:{" + user + "}" }
func (l *Limiter) subsKey(user string) string  { return l.cfg.KeyPrefix + "sub:{" + user + "}" }
func (l *Limiter) member(room string) string   { return l.cfg.NodeID + "|" + room }

// redisFailed switches to memory mode unless the failure is the caller's own
// cancellation.
func (l *Limiter) redisFailed(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	l.toMemory(err)
}

func (l *Limiter) toMemory(err error) {
	if !l.mode.CompareAndSwap(int32(ModeRedis), int32(ModeMemory)) {
		return
	}
	l.log.Warn("ratelimit: Redis unavailable, enforcing limits per node from memory",
		"node", l.cfg.NodeID, "err", err)
	if f := l.cfg.OnModeChange; f != nil {
		f(ModeMemory)
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// probeLoop waits for a switch to memory mode, then PINGs Redis every
// ProbeInterval until it answers, pushes this node's subscriptions back and
// switches to Redis mode.
func (l *Limiter) probeLoop() {
	defer l.wg.Done()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-l.wake:
		}
		t := time.NewTicker(l.cfg.ProbeInterval)
		for l.Mode() == ModeMemory {
			select {
			case <-l.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			l.tryRecover()
		}
		t.Stop()
	}
}

func (l *Limiter) tryRecover() {
	_, err := callRedis(l, l.ctx, l.cfg.RedisTimeout, func(ctx context.Context) (string, error) {
		return l.rdb.Ping(ctx).Result()
	})
	if err == nil {
		err = l.resyncAll()
	}
	if err != nil {
		l.log.Debug("ratelimit: Redis probe failed", "node", l.cfg.NodeID, "err", err)
		return
	}
	if l.mode.CompareAndSwap(int32(ModeMemory), int32(ModeRedis)) {
		l.log.Info("ratelimit: Redis reachable again, enforcing limits across nodes", "node", l.cfg.NodeID)
		if f := l.cfg.OnModeChange; f != nil {
			f(ModeRedis)
		}
	}
}

// heartbeatLoop extends this node's subscription leases every LeaseTTL/3.
func (l *Limiter) heartbeatLoop() {
	defer l.wg.Done()
	t := time.NewTicker(l.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
		}
		if l.Mode() != ModeRedis || l.cfg.MaxSubscriptions < 0 {
			continue
		}
		if err := l.refreshAll(); err != nil && l.ctx.Err() == nil {
			l.toMemory(err)
		}
	}
}

// janitor sweeps expired in-memory entries.
func (l *Limiter) janitor() {
	defer l.wg.Done()
	t := time.NewTicker(janitorInterval)
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
			l.sweep()
		}
	}
}

func (l *Limiter) sweep() {
	now := l.now()
	l.connMem.sweep(now)
	l.eventMem.sweep(now)
	l.denied.sweep(now)
}

// Close stops background work and, in Redis mode, removes this node's
// subscription leases (best effort, bounded by a short timeout) so that a
// clean shutdown frees quota at once instead of after LeaseTTL. Checks still
// work after Close but leases are no longer refreshed.
func (l *Limiter) Close() error {
	var err error
	l.closeOnce.Do(func() {
		l.halt()
		if l.rdb != nil && l.Mode() == ModeRedis && l.cfg.MaxSubscriptions >= 0 {
			err = l.releaseAll()
		}
	})
	return err
}

// halt stops the background goroutines, leaving leases as they are (what a
// crash does).
func (l *Limiter) halt() {
	l.cancel()
	l.wg.Wait()
}

// callRedis runs fn with the timeout. When the client does not honour
// context deadlines, fn runs on its own goroutine and callRedis returns at
// the deadline; the goroutine ends when go-redis gives up (ReadTimeout).
// Only a few calls can be stranded that way: the first timeout switches the
// Limiter to memory mode and no further client-path calls reach Redis.
func callRedis[T any](l *Limiter, ctx context.Context, timeout time.Duration, fn func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var v T
	var err error
	if l.direct {
		v, err = fn(ctx)
	} else {
		type result struct {
			v   T
			err error
		}
		ch := make(chan result, 1)
		go func() {
			v, err := fn(ctx)
			ch <- result{v, err}
		}()
		select {
		case r := <-ch:
			v, err = r.v, r.err
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("ratelimit: Redis did not answer within %v: %w", timeout, err)
	}
	return v, err
}
