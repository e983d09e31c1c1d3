// Package memstore is an in-memory session and user store for dev mode and
// tests. It implements auth.SessionStore and auth.UserStore.
package memstore

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/tradewire/tradewire/auth"
)

// DefaultTTL is the session lifetime when New is given zero.
const DefaultTTL = 24 * time.Hour

// Store keeps sessions and users in memory. It is safe for concurrent use.
type Store struct {
	ttl time.Duration
	now func() time.Time

	mu        sync.RWMutex
	sessions  map[string]*auth.Session
	users     map[string]auth.User
	lastSweep time.Time
}

// New returns an empty store whose sessions created by Create live for ttl
// (DefaultTTL if zero).
func New(ttl time.Duration) *Store {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Store{ttl: ttl, now: time.Now, sessions: map[string]*auth.Session{}, users: map[string]auth.User{}}
}

// Name returns "memory".
func (s *Store) Name() string { return "memory" }

// Create logs a user in: it records the user with role and tier and stores
// a new session whose passport.user is userID, shaped like express-session's
// JSON. It returns the new session id (24 random bytes, base64url, like
// uid-safe); sign it with auth.Sign for a cookie.
func (s *Store) Create(userID, role, tier string) (sid string) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("memstore: crypto/rand: %v", err))
	}
	sid = base64.RawURLEncoding.EncodeToString(b[:])
	exp := s.now().Add(s.ttl).UTC()
	data, _ := json.Marshal(map[string]any{
		"cookie": map[string]any{
			"originalMaxAge": s.ttl.Milliseconds(),
			"expires":        exp.Format("2006-01-02T15:04:05.000Z07:00"),
			"httpOnly":       true,
			"path":           "/",
		},
		"passport": map[string]any{"user": userID},
	})
	s.mu.Lock()
	s.sweep(s.now())
	s.users[userID] = auth.User{ID: userID, Role: role, Tier: tier}
	s.sessions[sid] = &auth.Session{ID: sid, Expires: exp, Data: data}
	s.mu.Unlock()
	return sid
}

// Put stores a session record as given (for tests of unusual shapes).
func (s *Store) Put(sess auth.Session) {
	cp := sess
	cp.Data = append(json.RawMessage(nil), sess.Data...)
	s.mu.Lock()
	s.sessions[sess.ID] = &cp
	s.mu.Unlock()
}

// PutUser stores or replaces a user.
func (s *Store) PutUser(u auth.User) {
	s.mu.Lock()
	s.users[u.ID] = u
	s.mu.Unlock()
}

// Destroy deletes a session (logout). Unknown ids are ignored.
func (s *Store) Destroy(sid string) {
	s.mu.Lock()
	delete(s.sessions, sid)
	s.mu.Unlock()
}

// DeleteUser deletes a user.
func (s *Store) DeleteUser(id string) {
	s.mu.Lock()
	delete(s.users, id)
	s.mu.Unlock()
}

// Get implements auth.SessionStore.
func (s *Store) Get(ctx context.Context, sid string) (*auth.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m, err := s.GetMany(ctx, []string{sid})
	if err != nil {
		return nil, err
	}
	if sess, ok := m[sid]; ok {
		return sess, nil
	}
	return nil, auth.ErrNoSession
}

// GetMany implements auth.SessionStore. Expired sessions are returned as
// they are (the authenticator reports them as expired); Create sweeps them
// out at most once a minute.
func (s *Store) GetMany(ctx context.Context, sids []string) (map[string]*auth.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make(map[string]*auth.Session, len(sids))
	s.mu.RLock()
	for _, sid := range sids {
		if sess, ok := s.sessions[sid]; ok {
			cp := *sess
			out[sid] = &cp
		}
	}
	s.mu.RUnlock()
	return out, nil
}

// sweep deletes expired sessions; the caller holds s.mu.
func (s *Store) sweep(now time.Time) {
	if now.Sub(s.lastSweep) < time.Minute {
		return
	}
	s.lastSweep = now
	for sid, sess := range s.sessions {
		if !sess.Expires.IsZero() && !now.Before(sess.Expires) {
			delete(s.sessions, sid)
		}
	}
}

// User implements auth.UserStore.
func (s *Store) User(ctx context.Context, id string) (*auth.User, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	u, ok := s.users[id]
	s.mu.RUnlock()
	if !ok {
		return nil, auth.ErrNoUser
	}
	return &u, nil
}

// Len returns the number of stored sessions, expired ones included.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.sessions)
}
