// Package redisstore reads express-session sessions as connect-redis (7.x,
// 10.x) writes them: key "<prefix><sid>", value JSON, expiry as a Redis TTL.
// It implements auth.SessionStore and works with a single node or a cluster
// client.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/auth"
)

// DefaultPrefix is connect-redis's default key prefix.
const DefaultPrefix = "sess:"

// Sessions reads connect-redis sessions.
type Sessions struct {
	rdb    redis.UniversalClient
	prefix string
	now    func() time.Time
}

// New reads sessions from rdb under prefix (DefaultPrefix if empty).
func New(rdb redis.UniversalClient, prefix string) *Sessions {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Sessions{rdb: rdb, prefix: prefix, now: time.Now}
}

// Name returns "redis".
func (s *Sessions) Name() string { return "redis" }

// Get implements auth.SessionStore: GET and PTTL in one pipeline.
func (s *Sessions) Get(ctx context.Context, sid string) (*auth.Session, error) {
	m, err := s.GetMany(ctx, []string{sid})
	if err != nil {
		return nil, err
	}
	if sess, ok := m[sid]; ok {
		return sess, nil
	}
	return nil, auth.ErrNoSession
}

// GetMany implements auth.SessionStore: one pipeline of GET and PTTL per id
// (one round trip on a single node; one per node on a cluster, where MGET
// across slots would fail). Session.Expires is now+PTTL, zero for keys
// without a TTL (connect-redis disableTTL).
func (s *Sessions) GetMany(ctx context.Context, sids []string) (map[string]*auth.Session, error) {
	out := make(map[string]*auth.Session, len(sids))
	if len(sids) == 0 {
		return out, nil
	}
	gets := make([]*redis.StringCmd, len(sids))
	ttls := make([]*redis.DurationCmd, len(sids))
	now := s.now()
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sid := range sids {
			key := s.prefix + sid // one key for both commands
			gets[i] = p.Get(ctx, key)
			ttls[i] = p.PTTL(ctx, key)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisstore: get sessions: %w", err)
	}
	for i, sid := range sids {
		val, err := gets[i].Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("redisstore: get session: %w", err)
		}
		sess := &auth.Session{ID: sid, Data: val}
		// PTTL: -1 no expiry, -2 gone since the GET (treated as still there:
		// the next lookup will miss).
		if ttl, err := ttls[i].Result(); err == nil && ttl > 0 {
			sess.Expires = now.Add(ttl)
		}
		out[sid] = sess
	}
	return out, nil
}
