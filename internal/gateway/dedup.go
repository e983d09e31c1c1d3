package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/adapter"
	"github.com/tradewire/tradewire/trading"
)

// recentIDs remembers event ids published by this node, in memory, so a
// backend retry is recognised even while Redis is away or after it lost
// its data. Two generations bound it in size and age.
type recentIDs struct {
	mu        sync.Mutex
	cur, prev map[string]struct{}
	rotated   time.Time
	maxAge    time.Duration
	maxSize   int
}

func newRecentIDs(maxAge time.Duration, maxSize int) *recentIDs {
	return &recentIDs{cur: map[string]struct{}{}, prev: map[string]struct{}{}, rotated: time.Now(), maxAge: maxAge, maxSize: maxSize}
}

func (r *recentIDs) rotateLocked() {
	if time.Since(r.rotated) > r.maxAge/2 || len(r.cur) >= r.maxSize/2 {
		r.prev, r.cur, r.rotated = r.cur, make(map[string]struct{}), time.Now()
	}
}

func (r *recentIDs) seen(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, a := r.cur[id]
	_, b := r.prev[id]
	return a || b
}

func (r *recentIDs) add(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rotateLocked()
	r.cur[id] = struct{}{}
}

// claim marks id as in flight on this node unless it is known; release
// takes a failed claim back.
func (r *recentIDs) claim(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.cur[id]; ok {
		return false
	}
	if _, ok := r.prev[id]; ok {
		return false
	}
	r.rotateLocked()
	r.cur[id] = struct{}{}
	return true
}

func (r *recentIDs) release(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.cur, id)
	delete(r.prev, id)
}

// dedupPrefix is where the event-id marks live (<key prefix>:dedup:).
func (g *Gateway) dedupPrefix() string { return g.cfg.KeyPrefix + ":dedup:" }

const (
	dedupTTL = 24 * time.Hour
	// claimTTL bounds a claim whose node died before finishing.
	claimTTL = 30 * time.Second
	done     = "done"
)

// BroadcastOnce implements trading.OnceBroadcaster: the HTTP API and the
// ingest stream publish events with an id through it, so a backend may
// retry through either path and any node.
//
// Recoverable events (a user's rooms, with Redis recovery) are marked by
// the recovery store's record-and-publish script itself: Redis refuses the
// second publish of an id, so two nodes racing with one id deliver once.
// Other events (quotes, market status, raw emits) claim the id with SET NX
// before the broadcast, mark it done after it and drop the claim when it
// fails; a request that finds another one's claim waits for its outcome.
// Without Redis, this node's memory is the mark.
func (g *Gateway) BroadcastOnce(ctx context.Context, id string, rooms, except []string, event string, data any) error {
	if id == "" {
		return g.Broadcast(ctx, rooms, except, event, data)
	}
	if !g.recent.claim(id) {
		return fmt.Errorf("event %q: %w", id, trading.ErrDuplicate)
	}
	err := g.broadcastOnce(ctx, id, rooms, except, event, data)
	if err != nil && !errors.Is(err, trading.ErrDuplicate) {
		g.recent.release(id)
	}
	return err
}

func (g *Gateway) broadcastOnce(ctx context.Context, id string, rooms, except []string, event string, data any) error {
	if g.rdb == nil {
		return g.Broadcast(ctx, rooms, except, event, data)
	}
	if g.recovery != nil && userPartition(&adapter.BroadcastOptions{Rooms: rooms}) != "" {
		err := g.broadcast(ctx, id, rooms, except, event, data)
		if errors.Is(err, adapter.ErrDuplicate) {
			return fmt.Errorf("event %q: %w", id, trading.ErrDuplicate)
		}
		return err
	}
	key := g.dedupPrefix() + id
	token := "claim:" + randomHex(8)
	deadline := time.Now().Add(3 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		ok, err := g.rdb.SetNX(cctx, key, token, claimTTL).Result()
		if err != nil {
			cancel()
			return fmt.Errorf("dedup claim: %w", err)
		}
		if ok {
			cancel()
			break
		}
		v, err := g.rdb.Get(cctx, key).Result()
		cancel()
		if err == nil && v == done {
			return fmt.Errorf("event %q: %w", id, trading.ErrDuplicate)
		}
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("dedup claim: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("event %q: %w", id, trading.ErrInProgress)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if err := g.broadcast(ctx, "", rooms, except, event, data); err != nil {
		releaseClaim.Run(bctx, g.rdb, []string{key}, token)
		return err
	}
	if err := g.rdb.Set(bctx, key, done, dedupTTL).Err(); err != nil {
		g.log.Warn("dedup: event delivered but not marked; a retry may deliver it again", "err", err)
	}
	return nil
}

// releaseClaim deletes a claim only if it is still ours.
var releaseClaim = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)
