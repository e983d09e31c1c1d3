package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Defaults for Config fields left zero.
const (
	DefaultCacheTTL      = 5 * time.Second
	DefaultCacheSize     = 10000
	DefaultLookupTimeout = 3 * time.Second
	DefaultRole          = "user"
	DefaultTier          = "free"
	// MaxSessionIDLength bounds session ids taken from clients.
	MaxSessionIDLength = 256
	// RevalidateChunk is the most session ids Revalidate sends in one query.
	RevalidateChunk = 1000
)

// Config configures an Authenticator.
type Config struct {
	// CookieName is the express-session cookie name; default "connect.sid".
	CookieName string
	// Secrets verify signed session ids; any of them verifies (rotation),
	// Sign-style signing uses Secrets[0]. At least one non-empty secret is
	// required unless AllowUnsignedSessionID is set.
	Secrets []string
	// AllowUnsignedSessionID accepts a raw (unsigned) auth.sessionID from
	// the CONNECT payload. Default false: a raw id is a bearer token that
	// bypasses the cookie secret, so a session id leaked through logs, a
	// URL, another system sharing the store, or guessed, would be enough to
	// impersonate its user. Signed "s:<sid>.<sig>" ids are always accepted.
	AllowUnsignedSessionID bool
	// CacheTTL is how long a successful lookup is reused; default 5 s,
	// negative disables the cache. Failed lookups are never cached.
	CacheTTL time.Duration
	// CacheSize bounds the cache (LRU eviction); default 10000 entries.
	CacheSize int
	// LookupTimeout bounds one store round trip; default 3 s.
	LookupTimeout time.Duration
	// DefaultRole and DefaultTier apply when the user record has no role or
	// tier, or when Authenticator has no UserStore; defaults "user", "free".
	DefaultRole string
	DefaultTier string
	// Observer receives lookup timings and cache hits; optional.
	Observer Observer
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Observer receives metrics events. Implementations must be safe for
// concurrent use and fast.
type Observer interface {
	// ObserveLookup reports one store round trip. store is the store's
	// Name(); err is nil when the store answered (including "not found").
	ObserveLookup(store string, d time.Duration, err error)
	// ObserveCache reports a cache hit or miss.
	ObserveCache(hit bool)
}

// Credentials are what a client presents.
type Credentials struct {
	// Cookie is the handshake request's Cookie header (several headers
	// joined with "; ").
	Cookie string
	// SessionID is auth.sessionID from the CONNECT payload: "s:<sid>.<sig>"
	// (also accepted URL-encoded) or, with AllowUnsignedSessionID, a raw sid.
	SessionID string
	// UserID is auth.userId from the CONNECT payload; optional. When set it
	// must equal the session's user.
	UserID string
}

// Authenticator turns credentials into an Identity. It is safe for
// concurrent use.
type Authenticator struct {
	cfg      Config
	sessions SessionStore
	users    UserStore
	cache    *identityCache // nil when disabled
	flight   flight
}

// New returns an Authenticator reading sessions from sessions and users from
// users. users may be nil: every identity then gets DefaultRole and
// DefaultTier.
func New(cfg Config, sessions SessionStore, users UserStore) (*Authenticator, error) {
	if sessions == nil {
		return nil, errors.New("auth: nil SessionStore")
	}
	cfg.Secrets = slices.DeleteFunc(slices.Clone(cfg.Secrets), func(s string) bool { return s == "" })
	if len(cfg.Secrets) == 0 && !cfg.AllowUnsignedSessionID {
		return nil, errors.New("auth: no secrets: signed session ids cannot be verified")
	}
	if cfg.CookieName == "" {
		cfg.CookieName = DefaultCookieName
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.LookupTimeout <= 0 {
		cfg.LookupTimeout = DefaultLookupTimeout
	}
	if cfg.DefaultRole == "" {
		cfg.DefaultRole = DefaultRole
	}
	if cfg.DefaultTier == "" {
		cfg.DefaultTier = DefaultTier
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Authenticator{cfg: cfg, sessions: sessions, users: users}
	if cfg.CacheTTL > 0 {
		a.cache = newIdentityCache(cfg.CacheTTL, cfg.CacheSize, cfg.Now)
	}
	return a, nil
}

// Authenticate verifies the credentials and returns the identity. Errors are
// *Error values; see the Code* constants.
func (a *Authenticator) Authenticate(ctx context.Context, c Credentials) (*Identity, error) {
	sid, err := a.SessionID(c)
	if err != nil {
		return nil, err
	}
	id, err := a.identity(ctx, sid)
	if err != nil {
		return nil, err
	}
	if c.UserID != "" && !sameUser(c.UserID, id.UserID) {
		return nil, newError(CodeUserMismatch, "auth.userId does not match the session's user")
	}
	return id, nil
}

// SessionID extracts and verifies the session id from the credentials
// without a store lookup. The signed cookie is tried first, then
// auth.sessionID.
func (a *Authenticator) SessionID(c Credentials) (string, error) {
	var cookieErr error
	if c.Cookie != "" {
		if v, ok := ParseCookie(c.Cookie, a.cfg.CookieName); ok {
			if sid, ok := Unsign(v, a.cfg.Secrets); ok && validSID(sid) {
				// A copy: the id outlives the request as part of the
				// connection's identity, and would keep the whole
				// decoded cookie (or Cookie header) alive.
				return strings.Clone(sid), nil
			}
			cookieErr = newError(CodeUnauthorized, "session cookie is missing a valid signature")
		}
	}
	if c.SessionID != "" {
		v := c.SessionID
		if len(v) > 4 && strings.EqualFold(v[:4], "s%3A") {
			v = decodeURIComponent(v)
		}
		if strings.HasPrefix(v, signedPrefix) {
			if sid, ok := Unsign(v, a.cfg.Secrets); ok && validSID(sid) {
				return strings.Clone(sid), nil
			}
			return "", newError(CodeUnauthorized, "auth.sessionID has an invalid signature")
		}
		if !a.cfg.AllowUnsignedSessionID {
			return "", newError(CodeUnauthorized, "unsigned auth.sessionID is not accepted")
		}
		if !validSID(v) {
			return "", newError(CodeUnauthorized, "auth.sessionID is malformed")
		}
		return strings.Clone(v), nil
	}
	if cookieErr != nil {
		return "", cookieErr
	}
	return "", newError(CodeUnauthorized, "no session credentials")
}

// validSID accepts 1..MaxSessionIDLength bytes without control characters.
func validSID(sid string) bool {
	if sid == "" || len(sid) > MaxSessionIDLength {
		return false
	}
	for i := 0; i < len(sid); i++ {
		if sid[i] < 0x20 || sid[i] == 0x7f {
			return false
		}
	}
	return true
}

// sameUser compares user ids, ignoring case for ObjectID hex strings.
func sameUser(a, b string) bool {
	if a == b {
		return true
	}
	return isObjectIDHex(a) && isObjectIDHex(b) && strings.EqualFold(a, b)
}

func isObjectIDHex(s string) bool {
	if len(s) != 24 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// identity returns the identity for a verified sid, from the cache or the
// stores, coalescing concurrent lookups of the same sid.
func (a *Authenticator) identity(ctx context.Context, sid string) (*Identity, error) {
	if a.cache != nil {
		id, ok := a.cache.get(sid)
		a.observeCache(ok)
		if ok {
			return id, nil
		}
	}
	id, err := a.flight.do(ctx, sid, func(ctx context.Context) (*Identity, error) {
		var gen uint64
		if a.cache != nil {
			gen = a.cache.generation()
		}
		id, err := a.lookup(ctx, sid)
		if err == nil && a.cache != nil {
			a.cache.put(gen, id)
		}
		return id, err
	})
	if err != nil {
		if CodeOf(err) == "" { // the caller's ctx ended first
			return nil, storeError("authentication cancelled", err)
		}
		return nil, err
	}
	return id, nil
}

// lookup reads the session and the user from the stores.
func (a *Authenticator) lookup(ctx context.Context, sid string) (*Identity, error) {
	sctx, cancel := context.WithTimeout(ctx, a.cfg.LookupTimeout)
	s, err := timed(a, a.sessions.Name(), ErrNoSession, func() (*Session, error) { return a.sessions.Get(sctx, sid) })
	cancel()
	if errors.Is(err, ErrNoSession) {
		return nil, newError(CodeSessionNotFound, "session not found")
	}
	if err != nil {
		return nil, storeError("session store unavailable", err)
	}
	uid, expires, aerr := a.check(s)
	if aerr != nil {
		return nil, aerr
	}
	id := &Identity{UserID: uid, Role: a.cfg.DefaultRole, Tier: a.cfg.DefaultTier, SessionID: sid}
	id.setExpiry(expires)
	if a.users == nil {
		return id, nil
	}
	uctx, cancel := context.WithTimeout(ctx, a.cfg.LookupTimeout)
	u, err := timed(a, a.users.Name(), ErrNoUser, func() (*User, error) { return a.users.User(uctx, uid) })
	cancel()
	if errors.Is(err, ErrNoUser) {
		return nil, newError(CodeForbidden, "user not found")
	}
	if err != nil {
		return nil, storeError("user store unavailable", err)
	}
	if u.Role != "" {
		id.Role = u.Role
	}
	if u.Tier != "" {
		id.Tier = u.Tier
	}
	return id, nil
}

// check validates a stored session and returns its user id and expiry.
//
// The store's own expiry (connect-mongo "expires", Redis TTL) is
// authoritative when present: express-session's touch (rolling sessions)
// extends it without rewriting cookie.expires inside the stored JSON, so
// the copy inside can be older than what Node accepts. cookie.expires is
// enforced when the store keeps no expiry.
func (a *Authenticator) check(s *Session) (uid string, expires time.Time, err *Error) {
	now := a.cfg.Now()
	if !s.Expires.IsZero() && !now.Before(s.Expires) {
		return "", time.Time{}, newError(CodeSessionExpired, "session expired")
	}
	info, perr := ParseSession(s.Data)
	if perr != nil {
		return "", time.Time{}, newError(CodeUnauthorized, "session data is unreadable")
	}
	expires = s.Expires
	if expires.IsZero() && !info.CookieExpires.IsZero() {
		if !now.Before(info.CookieExpires) {
			return "", time.Time{}, newError(CodeSessionExpired, "session expired")
		}
		expires = info.CookieExpires
	}
	if info.UserID == "" {
		return "", time.Time{}, newError(CodeUnauthorized, "session has no logged-in user")
	}
	return info.UserID, expires, nil
}

// timed runs fn and reports its duration to the observer; notFound errors
// count as answers, not failures.
func timed[T any](a *Authenticator, store string, notFound error, fn func() (T, error)) (T, error) {
	start := time.Now()
	v, err := fn()
	if o := a.cfg.Observer; o != nil {
		oerr := err
		if errors.Is(err, notFound) {
			oerr = nil
		}
		o.ObserveLookup(store, time.Since(start), oerr)
	}
	return v, err
}

func (a *Authenticator) observeCache(hit bool) {
	if o := a.cfg.Observer; o != nil {
		o.ObserveCache(hit)
	}
}

// Invalidate drops cached lookups of the given session ids (e.g. on a
// logout notification), so their next Authenticate reads the store.
func (a *Authenticator) Invalidate(sids ...string) {
	if a.cache != nil {
		a.cache.invalidate(sids...)
	}
}

// Revalidate re-reads the given sessions, RevalidateChunk ids per store
// query, and returns, in input order without duplicates, the ids that are no
// longer valid: destroyed, expired, unreadable or logged out. Those ids are
// also dropped from the cache. Users are not re-read.
//
// On a store error it returns the invalid ids found by the chunks that
// succeeded and a STORE_UNAVAILABLE *Error; callers must not treat ids of a
// failed chunk as invalid.
func (a *Authenticator) Revalidate(ctx context.Context, sids []string) ([]string, error) {
	seen := make(map[string]struct{}, len(sids))
	uniq := make([]string, 0, len(sids))
	for _, sid := range sids {
		if _, dup := seen[sid]; !dup {
			seen[sid] = struct{}{}
			uniq = append(uniq, sid)
		}
	}
	var invalid []string
	for chunk := range slices.Chunk(uniq, RevalidateChunk) {
		cctx, cancel := context.WithTimeout(ctx, a.cfg.LookupTimeout)
		found, err := timed(a, a.sessions.Name(), ErrNoSession, func() (map[string]*Session, error) {
			return a.sessions.GetMany(cctx, chunk)
		})
		cancel()
		if err != nil {
			a.Invalidate(invalid...)
			return invalid, storeError("session store unavailable", fmt.Errorf("revalidate %d sessions: %w", len(chunk), err))
		}
		for _, sid := range chunk {
			s, ok := found[sid]
			if !ok {
				invalid = append(invalid, sid)
				continue
			}
			if _, _, aerr := a.check(s); aerr != nil {
				invalid = append(invalid, sid)
			}
		}
	}
	a.Invalidate(invalid...)
	return invalid, nil
}
