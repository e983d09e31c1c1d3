package auth_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tradewire/tradewire/auth"
	"github.com/tradewire/tradewire/auth/memstore"
)

const secret = "test-secret"

// counting wraps a real store, counting round trips and optionally holding
// them until gate is closed.
type counting struct {
	auth.SessionStore
	gets, many atomic.Int64
	gate       chan struct{}
}

func (c *counting) Get(ctx context.Context, sid string) (*auth.Session, error) {
	c.gets.Add(1)
	if c.gate != nil {
		<-c.gate
	}
	return c.SessionStore.Get(ctx, sid)
}

func (c *counting) GetMany(ctx context.Context, sids []string) (map[string]*auth.Session, error) {
	c.many.Add(1)
	return c.SessionStore.GetMany(ctx, sids)
}

type recorder struct {
	mu      sync.Mutex
	lookups []string
	hits    int
	misses  int
}

func (r *recorder) ObserveLookup(store string, d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lookups = append(r.lookups, fmt.Sprintf("%s:%v", store, err == nil))
}

func (r *recorder) ObserveCache(hit bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if hit {
		r.hits++
	} else {
		r.misses++
	}
}

func newAuth(t testing.TB, cfg auth.Config, s auth.SessionStore, u auth.UserStore) *auth.Authenticator {
	t.Helper()
	if cfg.Secrets == nil {
		cfg.Secrets = []string{secret}
	}
	a, err := auth.New(cfg, s, u)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func cookie(sid string) auth.Credentials {
	return auth.Credentials{Cookie: "theme=dark; " + auth.SignedCookie(auth.DefaultCookieName, sid, secret)}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := auth.CodeOf(err); got != code {
		t.Fatalf("code = %q (err %v), want %q", got, err, code)
	}
	var ae *auth.Error
	if !errors.As(err, &ae) || ae.Message == "" {
		t.Fatalf("err %v is not an *auth.Error with a message", err)
	}
}

func TestAuthenticateCredentialSources(t *testing.T) {
	ms := memstore.New(time.Hour)
	sid := ms.Create("u1", "trader", "premium")
	ctx := context.Background()
	a := newAuth(t, auth.Config{Secrets: []string{"new", secret}}, ms, ms)

	check := func(name string, c auth.Credentials) {
		t.Helper()
		id, err := a.Authenticate(ctx, c)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if id.UserID != "u1" || id.Role != "trader" || id.Tier != "premium" || id.SessionID != sid {
			t.Fatalf("%s: identity %+v", name, *id)
		}
		if time.Until(id.ExpiresAt()) < 59*time.Minute {
			t.Fatalf("%s: ExpiresAt %v", name, id.ExpiresAt())
		}
	}
	check("cookie signed with an older secret", cookie(sid))
	check("signed auth.sessionID", auth.Credentials{SessionID: auth.Sign(sid, secret)})
	check("URL-encoded signed auth.sessionID", auth.Credentials{SessionID: strings.TrimPrefix(auth.SignedCookie("x", sid, secret), "x=")})
	check("forged cookie falls back to signed auth.sessionID", auth.Credentials{
		Cookie: auth.SignedCookie(auth.DefaultCookieName, sid, "wrong"), SessionID: auth.Sign(sid, "new")})
	check("matching userId", auth.Credentials{SessionID: auth.Sign(sid, secret), UserID: "u1"})

	fails := map[string]auth.Credentials{
		"none":                      {},
		"forged cookie":             {Cookie: auth.SignedCookie(auth.DefaultCookieName, sid, "wrong")},
		"unsigned cookie":           {Cookie: auth.DefaultCookieName + "=" + sid},
		"other cookie name":         {Cookie: auth.SignedCookie("sid", sid, secret)},
		"raw auth.sessionID":        {SessionID: sid},
		"forged auth.sessionID":     {SessionID: auth.Sign(sid, "wrong")},
		"cookie ok is tried first":  {Cookie: auth.DefaultCookieName + "=s%3Ajunk", UserID: "u1"},
		"signed empty-ish sid":      {SessionID: auth.Sign("bad\x01sid", secret)},
		"oversized signed sid":      {SessionID: auth.Sign(strings.Repeat("a", auth.MaxSessionIDLength+1), secret)},
		"forged cookie, raw sessID": {Cookie: auth.SignedCookie(auth.DefaultCookieName, sid, "wrong"), SessionID: sid},
	}
	for name, c := range fails {
		_, err := a.Authenticate(ctx, c)
		wantCode(t, err, auth.CodeUnauthorized)
		if strings.Contains(err.Error(), sid) || strings.Contains(err.Error(), secret) {
			t.Fatalf("%s: error %q leaks the session id or secret", name, err)
		}
	}

	_, err := a.Authenticate(ctx, auth.Credentials{SessionID: auth.Sign(sid, secret), UserID: "u2"})
	wantCode(t, err, auth.CodeUserMismatch)
}

func TestUnsignedSessionIDSetting(t *testing.T) {
	ms := memstore.New(0)
	sid := ms.Create("u1", "", "")
	a := newAuth(t, auth.Config{AllowUnsignedSessionID: true, CookieName: "app.sid"}, ms, ms)
	id, err := a.Authenticate(context.Background(), auth.Credentials{SessionID: sid})
	if err != nil || id.UserID != "u1" {
		t.Fatalf("raw sid with AllowUnsignedSessionID: %v %v", id, err)
	}
	if id.Role != auth.DefaultRole || id.Tier != auth.DefaultTier {
		t.Fatalf("defaults not applied: %+v", *id)
	}
	_, err = a.Authenticate(context.Background(), auth.Credentials{SessionID: "bad\nsid"})
	wantCode(t, err, auth.CodeUnauthorized)
	// The configured cookie name is used.
	id, err = a.Authenticate(context.Background(), auth.Credentials{Cookie: auth.SignedCookie("app.sid", sid, secret)})
	if err != nil || id.UserID != "u1" {
		t.Fatalf("custom cookie name: %v %v", id, err)
	}

	// Without secrets, only unsigned ids can work.
	noSecret, err := auth.New(auth.Config{AllowUnsignedSessionID: true, Secrets: []string{""}}, ms, ms)
	if err != nil {
		t.Fatal(err)
	}
	_, err = noSecret.Authenticate(context.Background(), auth.Credentials{SessionID: auth.Sign(sid, "")})
	wantCode(t, err, auth.CodeUnauthorized)
}

func TestNewValidatesConfig(t *testing.T) {
	ms := memstore.New(0)
	if _, err := auth.New(auth.Config{}, ms, ms); err == nil {
		t.Fatal("no secrets accepted")
	}
	if _, err := auth.New(auth.Config{Secrets: []string{""}}, ms, ms); err == nil {
		t.Fatal("empty secret accepted")
	}
	if _, err := auth.New(auth.Config{Secrets: []string{"x"}}, nil, ms); err == nil {
		t.Fatal("nil store accepted")
	}
}

func TestSessionValidation(t *testing.T) {
	ms := memstore.New(0)
	now := time.Now()
	future := now.Add(time.Hour).UTC()
	past := now.Add(-time.Minute).UTC()
	iso := func(t time.Time) string { return t.Format("2006-01-02T15:04:05.000Z") }
	ms.PutUser(auth.User{ID: "u1", Role: "admin", Tier: "enterprise"})
	ms.PutUser(auth.User{ID: "64b7f0c2a1b2c3d4e5f60718", Role: "trader"})
	ms.PutUser(auth.User{ID: "42"})

	cases := []struct {
		name    string
		expires time.Time
		data    string
		code    string
		user    string
	}{
		{"string user", future, `{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"},"passport":{"user":"u1"},"foo":"bar"}`, "", "u1"},
		{"object _id", future, `{"cookie":{},"passport":{"user":{"_id":"u1","name":"x"}}}`, "", "u1"},
		{"object id", future, `{"passport":{"user":{"id":"u1"}}}`, "", "u1"},
		{"ObjectID ext JSON", future, `{"passport":{"user":{"$oid":"64b7f0c2a1b2c3d4e5f60718"}}}`, "", "64b7f0c2a1b2c3d4e5f60718"},
		{"_id ObjectID ext JSON", future, `{"passport":{"user":{"_id":{"$oid":"64b7f0c2a1b2c3d4e5f60718"}}}}`, "", "64b7f0c2a1b2c3d4e5f60718"},
		{"numeric id", future, `{"passport":{"user":42}}`, "", "42"},
		{"no store expiry, cookie expiry ahead", time.Time{}, `{"cookie":{"expires":"` + iso(future) + `"},"passport":{"user":"u1"}}`, "", "u1"},
		{"no store expiry, ext JSON cookie expiry ahead", time.Time{}, `{"cookie":{"expires":{"$date":"` + iso(future) + `"}},"passport":{"user":"u1"}}`, "", "u1"},
		{"store expiry ahead, stale cookie expiry (rolling touch)", future, `{"cookie":{"expires":"` + iso(past) + `"},"passport":{"user":"u1"}}`, "", "u1"},
		{"store expiry passed", past, `{"passport":{"user":"u1"}}`, auth.CodeSessionExpired, ""},
		{"no store expiry, cookie expiry passed", time.Time{}, `{"cookie":{"expires":"` + iso(past) + `"},"passport":{"user":"u1"}}`, auth.CodeSessionExpired, ""},
		{"no store expiry, canonical date passed", time.Time{}, fmt.Sprintf(`{"cookie":{"expires":{"$date":{"$numberLong":"%d"}}},"passport":{"user":"u1"}}`, past.UnixMilli()), auth.CodeSessionExpired, ""},
		{"anonymous session", future, `{"cookie":{}}`, auth.CodeUnauthorized, ""},
		{"logged out (passport without user)", future, `{"passport":{}}`, auth.CodeUnauthorized, ""},
		{"empty user", future, `{"passport":{"user":""}}`, auth.CodeUnauthorized, ""},
		{"not JSON", future, `{"passport":`, auth.CodeUnauthorized, ""},
		{"bad user shape", future, `{"passport":{"user":{"name":"x"}}}`, auth.CodeUnauthorized, ""},
		{"bad user type", future, `{"passport":{"user":true}}`, auth.CodeUnauthorized, ""},
		{"bad cookie expiry", future, `{"cookie":{"expires":"yesterday"},"passport":{"user":"u1"}}`, auth.CodeUnauthorized, ""},
		{"unknown user", future, `{"passport":{"user":"ghost"}}`, auth.CodeForbidden, ""},
	}
	a := newAuth(t, auth.Config{}, ms, ms)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sid := fmt.Sprintf("sid-%d", i)
			ms.Put(auth.Session{ID: sid, Expires: c.expires, Data: []byte(c.data)})
			id, err := a.Authenticate(context.Background(), cookie(sid))
			if c.code != "" {
				wantCode(t, err, c.code)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.UserID != c.user {
				t.Fatalf("user %q, want %q", id.UserID, c.user)
			}
		})
	}
	_, err := a.Authenticate(context.Background(), cookie("never-created"))
	wantCode(t, err, auth.CodeSessionNotFound)
}

func TestMissingUserIsForbiddenAndDefaultsApply(t *testing.T) {
	ms := memstore.New(0)
	sid := ms.Create("u1", "", "")
	a := newAuth(t, auth.Config{DefaultRole: "viewer", DefaultTier: "basic"}, ms, ms)
	id, err := a.Authenticate(context.Background(), cookie(sid))
	if err != nil || id.Role != "viewer" || id.Tier != "basic" {
		t.Fatalf("defaults: %v %v", id, err)
	}
	ms.DeleteUser("u1")
	a.Invalidate(sid)
	_, err = a.Authenticate(context.Background(), cookie(sid))
	wantCode(t, err, auth.CodeForbidden)

	// Without a user store every identity gets the defaults.
	b := newAuth(t, auth.Config{}, ms, nil)
	id, err = b.Authenticate(context.Background(), cookie(sid))
	if err != nil || id.Role != auth.DefaultRole || id.Tier != auth.DefaultTier {
		t.Fatalf("nil users: %v %v", id, err)
	}
}

func TestCacheHitTTLAndInvalidate(t *testing.T) {
	ms := memstore.New(time.Hour)
	cs := &counting{SessionStore: ms}
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	rec := &recorder{}
	a := newAuth(t, auth.Config{Now: now, Observer: rec}, cs, ms)
	sid := ms.Create("u1", "r", "t")
	ctx := context.Background()

	for i := 0; i < 3; i++ {
		if _, err := a.Authenticate(ctx, cookie(sid)); err != nil {
			t.Fatal(err)
		}
	}
	if n := cs.gets.Load(); n != 1 {
		t.Fatalf("store read %d times for 3 authentications within the TTL, want 1", n)
	}
	if rec.hits != 2 || rec.misses != 1 || len(rec.lookups) != 2 || rec.lookups[0] != "memory:true" {
		t.Fatalf("observer: hits %d misses %d lookups %v", rec.hits, rec.misses, rec.lookups)
	}

	// A cached identity is a copy: changing it does not change the cache.
	id, _ := a.Authenticate(ctx, cookie(sid))
	id.Role = "admin"
	if id2, _ := a.Authenticate(ctx, cookie(sid)); id2.Role != "r" {
		t.Fatal("cache returned a shared pointer")
	}

	// userId is checked on cache hits too.
	_, err := a.Authenticate(ctx, auth.Credentials{Cookie: cookie(sid).Cookie, UserID: "other"})
	wantCode(t, err, auth.CodeUserMismatch)

	advance(auth.DefaultCacheTTL + time.Millisecond)
	if _, err := a.Authenticate(ctx, cookie(sid)); err != nil {
		t.Fatal(err)
	}
	if n := cs.gets.Load(); n != 2 {
		t.Fatalf("store reads after TTL = %d, want 2", n)
	}

	// Logout: after Invalidate the next call reads the store and fails.
	ms.Destroy(sid)
	if _, err := a.Authenticate(ctx, cookie(sid)); err != nil {
		t.Fatal("expected a cache hit before Invalidate")
	}
	a.Invalidate(sid)
	_, err = a.Authenticate(ctx, cookie(sid))
	wantCode(t, err, auth.CodeSessionNotFound)
	// Failures are not cached.
	_, _ = a.Authenticate(ctx, cookie(sid))
	if n := cs.gets.Load(); n != 4 {
		t.Fatalf("store reads = %d, want 4 (negative results are not cached)", n)
	}
	a.Invalidate() // no-op
}

func TestNegativeResultNotCached(t *testing.T) {
	ms := memstore.New(0)
	a := newAuth(t, auth.Config{}, ms, ms)
	_, err := a.Authenticate(context.Background(), cookie("late"))
	wantCode(t, err, auth.CodeSessionNotFound)
	ms.PutUser(auth.User{ID: "u1"})
	ms.Put(auth.Session{ID: "late", Expires: time.Now().Add(time.Hour), Data: []byte(`{"passport":{"user":"u1"}}`)})
	if _, err := a.Authenticate(context.Background(), cookie("late")); err != nil {
		t.Fatalf("session created after a miss is not seen: %v", err)
	}
}

func TestCacheEntryDoesNotOutliveSession(t *testing.T) {
	ms := memstore.New(0)
	cs := &counting{SessionStore: ms}
	ms.PutUser(auth.User{ID: "u1"})
	ms.Put(auth.Session{ID: "short", Expires: time.Now().Add(80 * time.Millisecond), Data: []byte(`{"passport":{"user":"u1"}}`)})
	a := newAuth(t, auth.Config{CacheTTL: time.Hour}, cs, ms)
	if _, err := a.Authenticate(context.Background(), cookie("short")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	_, err := a.Authenticate(context.Background(), cookie("short"))
	wantCode(t, err, auth.CodeSessionExpired)
	if cs.gets.Load() != 2 {
		t.Fatalf("gets %d", cs.gets.Load())
	}
}

func TestCacheIsBounded(t *testing.T) {
	ms := memstore.New(time.Hour)
	cs := &counting{SessionStore: ms}
	a := newAuth(t, auth.Config{CacheSize: 2}, cs, ms)
	sids := []string{ms.Create("a", "", ""), ms.Create("b", "", ""), ms.Create("c", "", "")}
	ctx := context.Background()
	for _, sid := range sids { // a evicted when c arrives
		if _, err := a.Authenticate(ctx, cookie(sid)); err != nil {
			t.Fatal(err)
		}
	}
	for _, sid := range sids[1:] { // b, c hit
		_, _ = a.Authenticate(ctx, cookie(sid))
	}
	if n := cs.gets.Load(); n != 3 {
		t.Fatalf("gets %d, want 3", n)
	}
	_, _ = a.Authenticate(ctx, cookie(sids[0])) // a misses
	if n := cs.gets.Load(); n != 4 {
		t.Fatalf("gets %d, want 4: evicted entry served", n)
	}
	_, _ = a.Authenticate(ctx, cookie(sids[2])) // c was most recent before a: still cached
	if n := cs.gets.Load(); n != 4 {
		t.Fatalf("gets %d, want 4: LRU order wrong", n)
	}
}

func TestCacheDisabled(t *testing.T) {
	ms := memstore.New(time.Hour)
	cs := &counting{SessionStore: ms}
	a := newAuth(t, auth.Config{CacheTTL: -1}, cs, ms)
	sid := ms.Create("u1", "", "")
	for i := 0; i < 3; i++ {
		if _, err := a.Authenticate(context.Background(), cookie(sid)); err != nil {
			t.Fatal(err)
		}
	}
	if cs.gets.Load() != 3 {
		t.Fatalf("gets %d, want 3 with the cache off", cs.gets.Load())
	}
	a.Invalidate(sid) // no-op without a cache
}

func TestConcurrentLookupsAreCoalesced(t *testing.T) {
	ms := memstore.New(time.Hour)
	cs := &counting{SessionStore: ms, gate: make(chan struct{})}
	a := newAuth(t, auth.Config{CacheTTL: -1}, cs, ms)
	sid := ms.Create("u1", "", "")
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := a.Authenticate(context.Background(), cookie(sid))
			if err == nil && id.UserID != "u1" {
				err = fmt.Errorf("user %q", id.UserID)
			}
			errs <- err
		}()
	}
	// Wait until the one lookup is in the store, give the others time to
	// queue behind it, then release it.
	for cs.gets.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(cs.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if g := cs.gets.Load(); g > 2 {
		t.Fatalf("%d concurrent authentications made %d store reads", n, g)
	}
}

func TestCallerCancellationDoesNotFailOthers(t *testing.T) {
	ms := memstore.New(time.Hour)
	cs := &counting{SessionStore: ms, gate: make(chan struct{})}
	a := newAuth(t, auth.Config{}, cs, ms)
	sid := ms.Create("u1", "", "")
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := a.Authenticate(ctx, cookie(sid)); first <- err }()
	for cs.gets.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	second := make(chan error, 1)
	go func() { _, err := a.Authenticate(context.Background(), cookie(sid)); second <- err }()
	cancel()
	err := <-first
	wantCode(t, err, auth.CodeStoreUnavailable)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cause %v is not context.Canceled", err)
	}
	close(cs.gate)
	if err := <-second; err != nil {
		t.Fatalf("second caller failed because the first gave up: %v", err)
	}
}

func TestRevalidate(t *testing.T) {
	ms := memstore.New(time.Hour)
	cs := &counting{SessionStore: ms}
	a := newAuth(t, auth.Config{}, cs, ms)
	valid := ms.Create("u1", "", "")
	loggedOut := ms.Create("u2", "", "")
	destroyed := ms.Create("u3", "", "")
	ms.Put(auth.Session{ID: "expired", Expires: time.Now().Add(-time.Second), Data: []byte(`{"passport":{"user":"u1"}}`)})
	ms.Put(auth.Session{ID: "anon", Expires: time.Now().Add(time.Hour), Data: []byte(`{"cookie":{}}`)})
	ms.Put(auth.Session{ID: loggedOut, Expires: time.Now().Add(time.Hour), Data: []byte(`{"passport":{}}`)})
	ctx := context.Background()
	if _, err := a.Authenticate(ctx, cookie(destroyed)); err != nil { // now cached
		t.Fatal(err)
	}
	ms.Destroy(destroyed)
	invalid, err := a.Revalidate(ctx, []string{valid, destroyed, "expired", valid, "anon", loggedOut, destroyed, "unknown"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{destroyed, "expired", "anon", loggedOut, "unknown"}
	if fmt.Sprint(invalid) != fmt.Sprint(want) {
		t.Fatalf("invalid = %v, want %v", invalid, want)
	}
	if cs.many.Load() != 1 {
		t.Fatalf("GetMany calls = %d, want 1 per batch", cs.many.Load())
	}
	// Revalidate dropped the cached identity of the destroyed session.
	_, err = a.Authenticate(ctx, cookie(destroyed))
	wantCode(t, err, auth.CodeSessionNotFound)

	// Batches larger than RevalidateChunk are split.
	many := make([]string, auth.RevalidateChunk+1)
	for i := range many {
		many[i] = fmt.Sprintf("x%d", i)
	}
	many[0] = valid
	invalid, err = a.Revalidate(ctx, many)
	if err != nil || len(invalid) != auth.RevalidateChunk || cs.many.Load() != 3 {
		t.Fatalf("chunked: %d invalid, err %v, calls %d", len(invalid), err, cs.many.Load())
	}
	invalid, err = a.Revalidate(ctx, nil)
	if err != nil || len(invalid) != 0 {
		t.Fatalf("empty: %v %v", invalid, err)
	}
}

func TestRevalidateStoreError(t *testing.T) {
	ms := memstore.New(time.Hour)
	a := newAuth(t, auth.Config{}, ms, ms)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	invalid, err := a.Revalidate(ctx, []string{"a"})
	wantCode(t, err, auth.CodeStoreUnavailable)
	if len(invalid) != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("invalid %v err %v", invalid, err)
	}
}

func TestErrorsAndGates(t *testing.T) {
	cause := errors.New("dial tcp: refused")
	e := &auth.Error{Code: auth.CodeStoreUnavailable, Message: "session store unavailable", Err: cause}
	wrapped := fmt.Errorf("middleware: %w", e)
	if auth.CodeOf(wrapped) != auth.CodeStoreUnavailable || !errors.Is(wrapped, cause) {
		t.Fatal("CodeOf/Unwrap through wrapping")
	}
	if !errors.Is(wrapped, &auth.Error{Code: auth.CodeStoreUnavailable}) || errors.Is(wrapped, &auth.Error{Code: auth.CodeForbidden}) {
		t.Fatal("errors.Is by code")
	}
	if e.Error() != "auth: STORE_UNAVAILABLE: session store unavailable: dial tcp: refused" {
		t.Fatalf("Error() = %q", e.Error())
	}
	if (&auth.Error{Code: "X", Message: "m"}).Error() != "auth: X: m" {
		t.Fatal("Error() without cause")
	}
	if auth.CodeOf(nil) != "" || auth.CodeOf(cause) != "" {
		t.Fatal("CodeOf of non-auth errors")
	}

	admin := &auth.Identity{UserID: "u", Role: "admin", Tier: "free", SessionID: "secret-sid"}
	user := &auth.Identity{UserID: "u", Role: "user", Tier: "premium", SessionID: "secret-sid"}
	if auth.RequireAdmin(admin) != nil {
		t.Fatal("admin rejected")
	}
	wantCode(t, auth.RequireAdmin(user), auth.CodeForbidden)
	wantCode(t, auth.RequireAdmin(nil), auth.CodeUnauthorized)
	if auth.RequireTier(user, "premium", "enterprise") != nil {
		t.Fatal("premium rejected")
	}
	wantCode(t, auth.RequireTier(admin, "premium", "enterprise"), auth.CodeForbidden)
	wantCode(t, auth.RequireTier(user), auth.CodeForbidden)
	wantCode(t, auth.RequireTier(nil, "premium"), auth.CodeUnauthorized)

	// The session id never appears in formatted or logged identities.
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("connected", "identity", *user, "ptr", user)
	for _, s := range []string{fmt.Sprint(*user), fmt.Sprintf("%+v", *user), fmt.Sprintf("%#v", *user), fmt.Sprintf("%v", user), b.String()} {
		if strings.Contains(s, "secret-sid") {
			t.Fatalf("session id leaked: %s", s)
		}
		if !strings.Contains(s, "premium") {
			t.Fatalf("identity not described: %s", s)
		}
	}
}

func TestSessionIDHelper(t *testing.T) {
	a := newAuth(t, auth.Config{}, memstore.New(0), nil)
	sid, err := a.SessionID(cookie("abc"))
	if err != nil || sid != "abc" {
		t.Fatalf("%q %v", sid, err)
	}
}
