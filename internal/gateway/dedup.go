package gateway

import (
	"context"
	"sync"
	"time"
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

// dedupPrefix is where the event-id marks live (<key prefix>:dedup:).
func (g *Gateway) dedupPrefix() string { return g.cfg.KeyPrefix + ":dedup:" }

// dedupSeen and dedupPublished share the ingest's event-id marks with the
// HTTP API, so a backend may retry through either path and any node.
func (g *Gateway) dedupSeen(id string) bool {
	if g.recent.seen(id) {
		return true
	}
	if g.rdb == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	v, err := g.rdb.Get(ctx, g.dedupPrefix()+id).Result()
	return err == nil && v == "done"
}

func (g *Gateway) dedupPublished(id string) {
	g.recent.add(id)
	if g.rdb == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	g.rdb.Set(ctx, g.dedupPrefix()+id, "done", 24*time.Hour)
}
