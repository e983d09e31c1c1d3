package adminui

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// SessionStore keeps the ids the UI reuses to reconnect without the
// password (the "session" event).
type SessionStore interface {
	Save(ctx context.Context, id string) error
	Exists(ctx context.Context, id string) (bool, error)
}

// MemorySessions is a SessionStore for one node.
type MemorySessions struct {
	ttl time.Duration
	now func() time.Time
	mu  sync.Mutex
	ids map[string]time.Time
}

// NewMemorySessions returns an in-memory store whose ids live for ttl.
func NewMemorySessions(ttl time.Duration) *MemorySessions {
	return &MemorySessions{ttl: ttl, now: time.Now, ids: map[string]time.Time{}}
}

// Save implements SessionStore.
func (m *MemorySessions) Save(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for k, exp := range m.ids { // logins are rare: a sweep per login is cheap
		if now.After(exp) {
			delete(m.ids, k)
		}
	}
	m.ids[id] = now.Add(m.ttl)
	return nil
}

// Exists implements SessionStore.
func (m *MemorySessions) Exists(_ context.Context, id string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	exp, ok := m.ids[id]
	return ok && m.now().Before(exp), nil
}

// RedisSessions shares admin sessions across nodes, with the key layout of
// the npm package's RedisStore ("<prefix>#<id>", default prefix
// "socket.io-admin"), so Node servers and tradewire accept each other's.
type RedisSessions struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
}

// NewRedisSessions returns a Redis store; prefix "" means "socket.io-admin".
func NewRedisSessions(rdb redis.UniversalClient, prefix string, ttl time.Duration) *RedisSessions {
	if prefix == "" {
		prefix = "socket.io-admin"
	}
	return &RedisSessions{rdb: rdb, prefix: prefix, ttl: ttl}
}

// Save implements SessionStore.
func (r *RedisSessions) Save(ctx context.Context, id string) error {
	if err := r.rdb.Set(ctx, r.prefix+"#"+id, "1", r.ttl).Err(); err != nil {
		return fmt.Errorf("adminui: save session: %w", err)
	}
	return nil
}

// Exists implements SessionStore.
func (r *RedisSessions) Exists(ctx context.Context, id string) (bool, error) {
	n, err := r.rdb.Exists(ctx, r.prefix+"#"+id).Result()
	if err != nil {
		return false, fmt.Errorf("adminui: check session: %w", err)
	}
	return n == 1, nil
}
