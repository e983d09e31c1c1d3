package gateway

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/auth"
	"github.com/tradewire/tradewire/auth/memstore"
)

// devSessionTTL is the lifetime of a session created by POST /dev/login.
const devSessionTTL = 24 * time.Hour

// devSessions creates and destroys the sessions of POST /dev/login and
// /dev/logout. It exists only in dev mode.
type devSessions interface {
	Create(ctx context.Context, userID, role, tier string) (sid string, err error)
	Destroy(ctx context.Context, sid string) error
}

// memDev logs in against the in-memory store.
type memDev struct{ s *memstore.Store }

func (m memDev) Create(_ context.Context, userID, role, tier string) (string, error) {
	return m.s.Create(userID, role, tier), nil
}

func (m memDev) Destroy(_ context.Context, sid string) error {
	m.s.Destroy(sid)
	return nil
}

// redisDev logs in against a connect-redis store: the session is written in
// connect-redis's layout (JSON under <sessionPrefix><sid> with a TTL), so it
// survives a gateway restart like a real Express login; role and tier go to
// a hash under <userPrefix><id>, read back by redisDev.User.
type redisDev struct {
	rdb           redis.UniversalClient
	sessionPrefix string
	userPrefix    string
}

func (r redisDev) Create(ctx context.Context, userID, role, tier string) (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("dev login: %w", err)
	}
	sid := base64.RawURLEncoding.EncodeToString(b[:])
	exp := time.Now().Add(devSessionTTL).UTC()
	data, err := json.Marshal(map[string]any{
		"cookie": map[string]any{
			"originalMaxAge": devSessionTTL.Milliseconds(),
			"expires":        exp.Format("2006-01-02T15:04:05.000Z07:00"),
			"httpOnly":       true,
			"path":           "/",
		},
		"passport": map[string]any{"user": userID},
	})
	if err != nil {
		return "", fmt.Errorf("dev login: %w", err)
	}
	_, err = r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, r.sessionPrefix+sid, data, devSessionTTL)
		p.HSet(ctx, r.userPrefix+userID, "role", role, "tier", tier)
		p.Expire(ctx, r.userPrefix+userID, devSessionTTL)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("dev login: %w", err)
	}
	return sid, nil
}

func (r redisDev) Destroy(ctx context.Context, sid string) error {
	if err := r.rdb.Del(ctx, r.sessionPrefix+sid).Err(); err != nil {
		return fmt.Errorf("dev logout: %w", err)
	}
	return nil
}

// Name implements auth.UserStore.
func (r redisDev) Name() string { return "redis-dev-users" }

// User implements auth.UserStore with the role and tier of the last dev login.
func (r redisDev) User(ctx context.Context, id string) (*auth.User, error) {
	m, err := r.rdb.HGetAll(ctx, r.userPrefix+id).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("dev users: %w", err)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("dev users: %s: %w", id, auth.ErrNoUser)
	}
	return &auth.User{ID: id, Role: m["role"], Tier: m["tier"]}, nil
}
