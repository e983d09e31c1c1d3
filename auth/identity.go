package auth

import (
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// RoleAdmin is the role RequireAdmin accepts.
const RoleAdmin = "admin"

// Identity is an authenticated user.
type Identity struct {
	UserID string
	Role   string
	Tier   string // subscription tier
	// SessionID is the verified express-session id, for revalidation and
	// cache invalidation. Never log it; String, GoString and LogValue
	// leave it out.
	SessionID string
	// expires is the earliest known expiry of the session (store expiry or
	// cookie expiry) in Unix nanoseconds, 0 when unknown: 8 bytes, not a
	// time.Time's 24, since every connection keeps a copy of its identity.
	expires int64
}

// ExpiresAt returns the earliest known expiry of the session (store expiry
// or cookie expiry); zero when unknown.
func (id Identity) ExpiresAt() time.Time {
	if id.expires == 0 {
		return time.Time{}
	}
	return time.Unix(0, id.expires)
}

// setExpiry records t as the session's expiry (zero: unknown).
func (id *Identity) setExpiry(t time.Time) {
	id.expires = 0
	if !t.IsZero() {
		id.expires = t.UnixNano()
	}
}

// String describes the identity without the session id.
func (id Identity) String() string {
	return fmt.Sprintf("user=%s role=%s tier=%s expires=%s", id.UserID, id.Role, id.Tier, id.ExpiresAt().Format(time.RFC3339))
}

// GoString is like String, so %#v does not print the session id either.
func (id Identity) GoString() string { return "auth.Identity{" + id.String() + "}" }

// LogValue implements slog.LogValuer without the session id.
func (id Identity) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("user", id.UserID),
		slog.String("role", id.Role),
		slog.String("tier", id.Tier),
		slog.Time("expires", id.ExpiresAt()),
	)
}

// RequireAdmin returns nil if id has the admin role, a FORBIDDEN *Error if
// not, and an UNAUTHORIZED *Error if id is nil.
func RequireAdmin(id *Identity) error {
	if id == nil {
		return newError(CodeUnauthorized, "not authenticated")
	}
	if id.Role != RoleAdmin {
		return newError(CodeForbidden, "admin role required")
	}
	return nil
}

// RequireTier returns nil if id's subscription tier is one of tiers, a
// FORBIDDEN *Error if not (including when tiers is empty), and an
// UNAUTHORIZED *Error if id is nil. Admins get no exemption: gate them with
// RequireAdmin separately if needed.
func RequireTier(id *Identity, tiers ...string) error {
	if id == nil {
		return newError(CodeUnauthorized, "not authenticated")
	}
	if !slices.Contains(tiers, id.Tier) {
		return newError(CodeForbidden, "subscription tier not allowed")
	}
	return nil
}
