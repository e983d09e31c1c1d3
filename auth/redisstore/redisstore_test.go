package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/auth"
	"github.com/tradewire/tradewire/auth/memstore"
	"github.com/tradewire/tradewire/auth/redisstore"
	"github.com/tradewire/tradewire/internal/testutil/redistest"
)

const secret = "redis-secret"

func client(t testing.TB, s *redistest.Server) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr, DialTimeout: 500 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// set writes a session as connect-redis does: SET key json EX ttl (or plain
// SET with disableTTL).
func set(t testing.TB, rdb *redis.Client, key, json string, ttl time.Duration) {
	t.Helper()
	if err := rdb.Set(context.Background(), key, json, ttl).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestSessionsAgainstRedis(t *testing.T) {
	srv := redistest.Start(t)
	rdb := client(t, srv)
	ctx := context.Background()
	p := fmt.Sprintf("t%d:sess:", time.Now().UnixNano()) // private key space even on a shared server
	set(t, rdb, p+"s-ttl", `{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"},"passport":{"user":"64b7f0c2a1b2c3d4e5f60718"}}`, 86400*time.Second)
	set(t, rdb, p+"s-nottl", `{"cookie":{},"passport":{"user":{"_id":"u2"}}}`, 0)
	set(t, rdb, p+"s-anon", `{"cookie":{}}`, time.Hour)

	store := redisstore.New(rdb, p)
	if store.Name() != "redis" {
		t.Fatal(store.Name())
	}
	s, err := store.Get(ctx, "s-ttl")
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(s.Expires); d < 86390*time.Second || d > 86400*time.Second {
		t.Fatalf("Expires from PTTL off: %v", d)
	}
	s, err = store.Get(ctx, "s-nottl")
	if err != nil || !s.Expires.IsZero() {
		t.Fatalf("no TTL: %+v %v", s, err)
	}
	if _, err := store.Get(ctx, "s-missing"); !errors.Is(err, auth.ErrNoSession) {
		t.Fatalf("missing: %v", err)
	}
	m, err := store.GetMany(ctx, []string{"s-ttl", "s-missing", "s-nottl"})
	if err != nil || len(m) != 2 || m["s-ttl"] == nil || m["s-nottl"] == nil {
		t.Fatalf("GetMany: %v %v", m, err)
	}
	if m, err := store.GetMany(ctx, nil); err != nil || len(m) != 0 {
		t.Fatalf("GetMany(nil): %v %v", m, err)
	}

	users := memstore.New(0)
	users.PutUser(auth.User{ID: "64b7f0c2a1b2c3d4e5f60718", Role: "trader", Tier: "premium"})
	users.PutUser(auth.User{ID: "u2"})
	a, err := auth.New(auth.Config{Secrets: []string{"new", secret}}, store, users)
	if err != nil {
		t.Fatal(err)
	}
	id, err := a.Authenticate(ctx, auth.Credentials{Cookie: auth.SignedCookie("connect.sid", "s-ttl", secret), UserID: "64B7F0C2A1B2C3D4E5F60718"})
	if err != nil || id.Role != "trader" || id.Tier != "premium" {
		t.Fatalf("s-ttl: %v %v", id, err)
	}
	// Logout: connect-redis destroy is DEL.
	rdb.Del(ctx, p+"s-ttl")
	invalid, err := a.Revalidate(ctx, []string{"s-ttl", "s-nottl", "s-anon"})
	if err != nil || fmt.Sprint(invalid) != "[s-ttl s-anon]" {
		t.Fatalf("Revalidate: %v %v", invalid, err)
	}
	if _, err := a.Authenticate(ctx, auth.Credentials{Cookie: auth.SignedCookie("connect.sid", "s-ttl", secret)}); auth.CodeOf(err) != auth.CodeSessionNotFound {
		t.Fatalf("after logout: %v", err)
	}
	// The default prefix is connect-redis's.
	set(t, rdb, "sess:"+p+"x", `{"passport":{"user":"u2"}}`, time.Minute)
	if _, err := redisstore.New(rdb, "").Get(ctx, p+"x"); err != nil {
		t.Fatalf("default prefix: %v", err)
	}
}

func TestRedisDownIsStoreUnavailable(t *testing.T) {
	srv := redistest.Start(t)
	if srv.URL() == "" {
		t.Fatal("no URL")
	}
	rdb := client(t, srv)
	ctx := context.Background()
	p := fmt.Sprintf("t%d:sess:", time.Now().UnixNano())
	set(t, rdb, p+"s1", `{"passport":{"user":"u1"}}`, time.Hour)
	users := memstore.New(0)
	users.PutUser(auth.User{ID: "u1"})
	a, err := auth.New(auth.Config{Secrets: []string{secret}, CacheTTL: -1, LookupTimeout: time.Second}, redisstore.New(rdb, p), users)
	if err != nil {
		t.Fatal(err)
	}
	creds := auth.Credentials{SessionID: auth.Sign("s1", secret)}
	if _, err := a.Authenticate(ctx, creds); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("TRADEWIRE_TEST_REDIS_URL") != "" {
		// A shared server cannot be killed: use a client to a closed port.
		closed := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t)), MaxRetries: -1})
		defer closed.Close()
		b, _ := auth.New(auth.Config{Secrets: []string{secret}}, redisstore.New(closed, p), users)
		if _, err := b.Authenticate(ctx, creds); auth.CodeOf(err) != auth.CodeStoreUnavailable {
			t.Fatalf("closed port: %v", err)
		}
		return
	}
	srv.Kill()
	_, err = a.Authenticate(ctx, creds)
	if auth.CodeOf(err) != auth.CodeStoreUnavailable {
		t.Fatalf("with Redis killed: %v", err)
	}
	if invalid, err := a.Revalidate(ctx, []string{"s1"}); auth.CodeOf(err) != auth.CodeStoreUnavailable || len(invalid) != 0 {
		t.Fatalf("Revalidate with Redis killed: %v %v", invalid, err)
	}
	// Restarted empty (nothing on disk): the session is gone, not an outage.
	srv.Restart()
	_, err = a.Authenticate(ctx, creds)
	if auth.CodeOf(err) != auth.CodeSessionNotFound {
		t.Fatalf("after restart: %v", err)
	}
}
