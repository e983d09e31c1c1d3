package ratelimit

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// batchSize is how many users one heartbeat/resync pipeline carries.
const batchSize = 128

// bgTimeout bounds one background pipeline (heartbeat, resync, release at
// Close): longer than RedisTimeout since it carries up to batchSize scripts.
func (l *Limiter) bgTimeout() time.Duration {
	return max(4*l.cfg.RedisTimeout, 100*time.Millisecond)
}

type gcraResult struct {
	allowed   bool
	remaining int
	wait      time.Duration
}

// redisGCRA charges one request on a Redis bucket: one round trip (EVALSHA;
// EVAL once more after a Redis restart flushed the script cache).
func (l *Limiter) redisGCRA(ctx context.Context, key string, b bucket) (gcraResult, error) {
	return callRedis(l, ctx, l.cfg.RedisTimeout, func(ctx context.Context) (gcraResult, error) {
		v, err := scriptGCRA.Run(ctx, l.rdb, []string{key}, usec(b.interval), b.burst).Int64Slice()
		if err != nil {
			return gcraResult{}, err
		}
		if len(v) != 3 {
			return gcraResult{}, fmt.Errorf("ratelimit: unexpected GCRA reply %v", v)
		}
		return gcraResult{allowed: v[0] == 1, remaining: int(v[1]), wait: time.Duration(v[2]) * time.Microsecond}, nil
	})
}

// usec converts nanoseconds to whole microseconds, at least 1.
func usec(ns int64) int64 { return max(ns/1000, 1) }

type acquireResult struct {
	event   gcraResult // meaningful when an event was charged
	count   int        // distinct rooms of the user after the call
	granted []bool     // per requested room
	capped  bool       // some room was refused by the room cap
}

// redisAcquire optionally charges one event and grants rooms against the
// cluster-wide quota, atomically, in one round trip.
func (l *Limiter) redisAcquire(ctx context.Context, user string, charge bool, rooms []string, rc roomCap) (acquireResult, error) {
	var interval int64
	if charge {
		interval = usec(l.events.interval)
	}
	args := make([]any, 0, 7+len(rooms))
	args = append(args, interval, max(l.events.burst, 1), l.cfg.NodeID, l.cfg.MaxSubscriptions, l.cfg.LeaseTTL.Milliseconds(), rc.prefix, rc.limit())
	for _, r := range rooms {
		args = append(args, r)
	}
	keys := []string{l.eventKey(user), l.subsKey(user)}
	return callRedis(l, ctx, l.cfg.RedisTimeout, func(ctx context.Context) (acquireResult, error) {
		v, err := scriptAcquire.Run(ctx, l.rdb, keys, args...).Slice()
		if err != nil {
			return acquireResult{}, err
		}
		return parseAcquire(v, len(rooms))
	})
}

func parseAcquire(v []any, n int) (acquireResult, error) {
	var r acquireResult
	bad := fmt.Errorf("ratelimit: unexpected acquire reply %v", v)
	if len(v) != 5 {
		return r, bad
	}
	var ints [4]int64
	for i := range ints {
		x, ok := v[i].(int64)
		if !ok {
			return r, bad
		}
		ints[i] = x
	}
	flags, ok := v[4].(string)
	if !ok || (ints[0] == 1 && len(flags) != n) {
		return r, bad
	}
	r.event = gcraResult{allowed: ints[0] == 1, remaining: int(ints[1]), wait: time.Duration(ints[2]) * time.Microsecond}
	r.count = int(ints[3])
	r.granted = make([]bool, len(flags))
	for i := range flags {
		r.granted[i] = flags[i] == '1'
		r.capped = r.capped || flags[i] == '2'
	}
	return r, nil
}

// zrem removes this node's members for rooms: one round trip.
func (l *Limiter) zrem(ctx context.Context, user string, rooms []string) error {
	members := make([]any, len(rooms))
	for i, r := range rooms {
		members[i] = l.member(r)
	}
	_, err := callRedis(l, ctx, l.cfg.RedisTimeout, func(ctx context.Context) (int64, error) {
		return l.rdb.ZRem(ctx, l.subsKey(user), members...).Result()
	})
	return err
}

// leaseArgs returns the ARGV of scriptExtend / scriptSync.
func (l *Limiter) leaseArgs(rooms []string) []any {
	args := make([]any, 0, 2+len(rooms))
	args = append(args, l.cfg.NodeID, l.cfg.LeaseTTL.Milliseconds())
	for _, r := range rooms {
		args = append(args, r)
	}
	return args
}

// runPipelined sends n script calls in one pipeline, loading the script and
// retrying once if Redis lost its script cache.
func runPipelined(ctx context.Context, rdb redis.UniversalClient, s *redis.Script, n int, call func(i int) (keys []string, args []any)) ([]int64, error) {
	for attempt := 0; ; attempt++ {
		pipe := rdb.Pipeline()
		cmds := make([]*redis.Cmd, n)
		for i := range n {
			keys, args := call(i)
			cmds[i] = s.EvalSha(ctx, pipe, keys, args...)
		}
		_, err := pipe.Exec(ctx)
		if err != nil {
			if attempt == 0 && slices.ContainsFunc(cmds, func(c *redis.Cmd) bool { return redis.HasErrorPrefix(c.Err(), "NOSCRIPT") }) {
				if err := s.Load(ctx, rdb).Err(); err != nil {
					return nil, err
				}
				continue
			}
			return nil, err
		}
		out := make([]int64, n)
		for i, c := range cmds {
			if out[i], err = c.Int64(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
}

// snapshotUsers lists the users holding rooms on this node.
func (l *Limiter) snapshotUsers() []*userSubs {
	l.subsMu.Lock()
	defer l.subsMu.Unlock()
	out := make([]*userSubs, 0, len(l.subs))
	for _, e := range l.subs {
		out = append(out, e)
	}
	return out
}

// holdingRooms keeps the users that hold rooms (a user's entry also exists
// while it only has sockets).
func holdingRooms(users []*userSubs) []*userSubs {
	out := users[:0]
	for _, e := range users {
		e.mu.Lock()
		if len(e.rooms) > 0 {
			out = append(out, e)
		}
		e.mu.Unlock()
	}
	return out
}

// refreshAll is one heartbeat: extend every lease of this node, then resync
// the users whose members had disappeared.
func (l *Limiter) refreshAll() error {
	l.bgMu.Lock()
	defer l.bgMu.Unlock()
	users := l.snapshotUsers()
	for len(users) > 0 {
		n := min(batchSize, len(users))
		if err := l.refreshBatch(users[:n]); err != nil {
			return err
		}
		users = users[n:]
	}
	return nil
}

func (l *Limiter) refreshBatch(batch []*userSubs) error {
	type item struct {
		e     *userSubs
		rooms []string
	}
	items := make([]item, 0, len(batch))
	for _, e := range batch {
		e.mu.Lock()
		if !e.dead && len(e.rooms) > 0 {
			items = append(items, item{e, e.roomList()})
		}
		e.mu.Unlock()
	}
	if len(items) == 0 {
		return nil
	}
	missing, err := callRedis(l, l.ctx, l.bgTimeout(), func(ctx context.Context) ([]int64, error) {
		return runPipelined(ctx, l.rdb, scriptExtend, len(items), func(i int) ([]string, []any) {
			return []string{l.subsKey(items[i].e.user)}, l.leaseArgs(items[i].rooms)
		})
	})
	if err != nil {
		return err
	}
	var lost []*userSubs
	for i, m := range missing {
		if m > 0 {
			lost = append(lost, items[i].e)
		}
	}
	if len(lost) == 0 {
		return nil
	}
	l.log.Debug("ratelimit: subscription leases missing in Redis, resyncing", "node", l.cfg.NodeID, "users", len(lost))
	return l.syncBatch(lost)
}

// syncBatch makes Redis hold exactly this node's rooms for each user. The
// users stay locked during the round trip so no acquire or release of theirs
// can interleave.
func (l *Limiter) syncBatch(batch []*userSubs) error {
	locked := make([]*userSubs, 0, len(batch))
	for _, e := range batch {
		e.mu.Lock()
		if e.dead {
			e.mu.Unlock()
			continue
		}
		locked = append(locked, e)
	}
	defer func() {
		for _, e := range locked {
			e.mu.Unlock()
		}
	}()
	if len(locked) == 0 {
		return nil
	}
	_, err := callRedis(l, l.ctx, l.bgTimeout(), func(ctx context.Context) ([]int64, error) {
		return runPipelined(ctx, l.rdb, scriptSync, len(locked), func(i int) ([]string, []any) {
			return []string{l.subsKey(locked[i].user)}, l.leaseArgs(locked[i].roomList())
		})
	})
	return err
}

// resyncAll pushes this node's subscriptions to a Redis that was unreachable:
// first it drops the members of users who released rooms meanwhile, then it
// rewrites the members of every user holding rooms.
func (l *Limiter) resyncAll() error {
	if l.cfg.MaxSubscriptions < 0 {
		return nil
	}
	l.bgMu.Lock()
	defer l.bgMu.Unlock()
	l.orphMu.Lock()
	orphans := make([]*userSubs, 0, len(l.orphans))
	for u := range l.orphans {
		orphans = append(orphans, &userSubs{user: u})
	}
	l.orphMu.Unlock()
	for _, group := range [][]*userSubs{orphans, holdingRooms(l.snapshotUsers())} {
		for len(group) > 0 {
			n := min(batchSize, len(group))
			if err := l.syncBatch(group[:n]); err != nil {
				return err
			}
			group = group[n:]
		}
	}
	l.orphMu.Lock()
	for _, e := range orphans {
		delete(l.orphans, e.user)
	}
	l.orphMu.Unlock()
	return nil
}

// markOrphan remembers a user whose release could not reach Redis, so that
// resyncAll removes the stale members (bounded by MaxMemoryKeys; beyond that
// the leases simply expire).
func (l *Limiter) markOrphan(user string) {
	l.orphMu.Lock()
	if len(l.orphans) < l.cfg.MaxMemoryKeys {
		l.orphans[user] = struct{}{}
	}
	l.orphMu.Unlock()
}

// releaseAll removes every lease of this node (clean shutdown).
func (l *Limiter) releaseAll() error {
	l.bgMu.Lock()
	defer l.bgMu.Unlock()
	users := l.snapshotUsers()
	for len(users) > 0 {
		n := min(batchSize, len(users))
		batch := users[:n]
		users = users[n:]
		_, err := callRedis(l, context.Background(), l.bgTimeout(), func(ctx context.Context) (int, error) {
			pipe := l.rdb.Pipeline()
			for _, e := range batch {
				e.mu.Lock()
				rooms := e.roomList()
				e.mu.Unlock()
				if len(rooms) == 0 {
					continue
				}
				members := make([]any, len(rooms))
				for i, r := range rooms {
					members[i] = l.member(r)
				}
				pipe.ZRem(ctx, l.subsKey(e.user), members...)
			}
			_, err := pipe.Exec(ctx)
			return 0, err
		})
		if err != nil {
			l.log.Warn("ratelimit: releasing subscription leases at close failed; they expire after LeaseTTL",
				"node", l.cfg.NodeID, "err", err)
			return err
		}
	}
	return nil
}
