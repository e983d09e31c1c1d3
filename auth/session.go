package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
)

// ErrNoSession is returned (possibly wrapped) by SessionStore.Get when the
// session id is not in the store.
var ErrNoSession = errors.New("auth: no such session")

// ErrNoUser is returned (possibly wrapped) by UserStore.User when the user
// does not exist.
var ErrNoUser = errors.New("auth: no such user")

// Session is a stored express-session record as a store returns it.
type Session struct {
	// ID is the session id. Never log it: it is a bearer credential.
	ID string
	// Expires is the store-level expiry (connect-mongo's "expires" field,
	// or now+PTTL for Redis). Zero means the store keeps no expiry.
	Expires time.Time
	// Data is the express-session object as JSON. Stores that hold it as a
	// BSON document give relaxed Extended JSON, so dates may appear as
	// {"$date": ...} and ObjectIDs as {"$oid": ...}.
	Data json.RawMessage
}

// SessionStore reads express-session records. Implementations exist for
// connect-mongo (auth/mongostore), connect-redis (auth/redisstore) and memory
// (auth/memstore).
type SessionStore interface {
	// Name labels the store in metrics, e.g. "mongo".
	Name() string
	// Get returns the session with id sid, or an error wrapping ErrNoSession
	// when there is none. Any other error means the store is unavailable.
	// Get does not check expiry.
	Get(ctx context.Context, sid string) (*Session, error)
	// GetMany returns the sessions that exist among sids, keyed by id, in
	// one round trip. Missing ids are absent from the map.
	GetMany(ctx context.Context, sids []string) (map[string]*Session, error)
}

// User is the part of a user record that authorization needs.
type User struct {
	ID   string
	Role string // empty: Config.DefaultRole applies
	Tier string // subscription tier; empty: Config.DefaultTier applies
}

// UserStore loads users by id.
type UserStore interface {
	// Name labels the store in metrics, e.g. "mongo-users".
	Name() string
	// User returns the user with the given id (an ObjectID hex string or a
	// plain string), or an error wrapping ErrNoUser.
	User(ctx context.Context, id string) (*User, error)
}

// SessionInfo is what authentication needs from the session object.
type SessionInfo struct {
	// UserID is session.passport.user normalised to a string; empty when
	// no user is logged in.
	UserID string
	// CookieExpires is session.cookie.expires; zero when null or absent.
	CookieExpires time.Time
}

// errMalformed reports session data that is not a JSON object or whose
// passport.user has an unsupported shape.
var errMalformed = errors.New("auth: malformed session data")

// ParseSession extracts the logged-in user and the cookie expiry from an
// express-session object. passport.user may be a string, a number, an
// ObjectID ({"$oid": hex}), or an object whose "_id" or "id" is one of those.
func ParseSession(data []byte) (SessionInfo, error) {
	var s struct {
		Cookie *struct {
			Expires json.RawMessage `json:"expires"`
		} `json:"cookie"`
		Passport *struct {
			User json.RawMessage `json:"user"`
		} `json:"passport"`
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return SessionInfo{}, errMalformed
	}
	var info SessionInfo
	if s.Cookie != nil {
		t, err := parseDate(s.Cookie.Expires)
		if err != nil {
			return SessionInfo{}, err
		}
		info.CookieExpires = t
	}
	if s.Passport != nil {
		id, err := userID(s.Passport.User, 0)
		if err != nil {
			return SessionInfo{}, err
		}
		info.UserID = id
	}
	return info, nil
}

// userID normalises a passport.user value.
func userID(raw json.RawMessage, depth int) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", nil
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", errMalformed
		}
		return s, nil
	case '{':
		if depth > 0 {
			// Only {"$oid": ...} is allowed inside {_id|id: ...}.
			var o struct {
				OID *string `json:"$oid"`
			}
			if err := json.Unmarshal(raw, &o); err != nil || o.OID == nil {
				return "", errMalformed
			}
			return *o.OID, nil
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return "", errMalformed
		}
		if oid, ok := m["$oid"]; ok {
			return userID(oid, 1)
		}
		for _, k := range []string{"_id", "id"} {
			if v, ok := m[k]; ok {
				return userID(v, depth+1)
			}
		}
		return "", errMalformed
	default:
		var n json.Number
		if err := json.Unmarshal(raw, &n); err != nil {
			return "", errMalformed
		}
		if _, err := strconv.ParseFloat(n.String(), 64); err != nil {
			return "", errMalformed
		}
		return n.String(), nil
	}
}

// parseDate reads an ISO-8601 string, a relaxed/canonical Extended JSON
// date ({"$date": "..."}, {"$date": millis} or {"$date": {"$numberLong":
// "..."}}), or null.
func parseDate(raw json.RawMessage) (time.Time, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return time.Time{}, nil
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, errMalformed
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, errMalformed
		}
		return t, nil
	case '{':
		var d struct {
			Date json.RawMessage `json:"$date"`
		}
		if err := json.Unmarshal(raw, &d); err != nil || len(d.Date) == 0 {
			return time.Time{}, errMalformed
		}
		v := bytes.TrimSpace(d.Date)
		if len(v) > 0 && v[0] == '{' {
			var nl struct {
				N string `json:"$numberLong"`
			}
			if err := json.Unmarshal(v, &nl); err != nil {
				return time.Time{}, errMalformed
			}
			v = []byte(nl.N)
		}
		if len(v) > 0 && v[0] == '"' {
			return parseDate(v)
		}
		ms, err := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
		if err != nil {
			return time.Time{}, errMalformed
		}
		return time.UnixMilli(ms).UTC(), nil
	default:
		// A number of milliseconds, as some stores serialise dates.
		ms, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return time.Time{}, errMalformed
		}
		return time.UnixMilli(ms).UTC(), nil
	}
}
