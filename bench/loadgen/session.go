package loadgen

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sign returns cookie-signature's sign(value, secret): value + "." +
// base64(HMAC-SHA256) without padding.
func Sign(value, secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(value))
	return value + "." + strings.TrimRight(base64.StdEncoding.EncodeToString(m.Sum(nil)), "=")
}

// CookieValue returns the Cookie header value express-session sets for sid:
// connect.sid=encodeURIComponent("s:" + sign(sid, secret)).
func CookieValue(sid, secret string) string {
	return "connect.sid=" + EncodeURIComponent("s:"+Sign(sid, secret))
}

// EncodeURIComponent escapes like JavaScript's encodeURIComponent.
func EncodeURIComponent(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// SessionID derives the 32-character base64url session id of user i in a run,
// so the coordinator and every worker compute the same ids without talking.
func SessionID(runID string, i int) string {
	h := sha256.Sum256([]byte(runID + ":" + strconv.Itoa(i)))
	return base64.RawURLEncoding.EncodeToString(h[:24])
}

// UserID is the passport user of user i.
func UserID(i int) string { return "u" + strconv.Itoa(i) }

// SessionJSON is the connect-redis value of a logged-in passport session.
func SessionJSON(userID string) string {
	return `{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"},"passport":{"user":` +
		strconv.Quote(userID) + `}}`
}

// SessionKey is the connect-redis key of sid.
func SessionKey(sid string) string { return "sess:" + sid }

// SeedSessions writes users sessions (sess:<sid> with a ttl) in pipelined
// batches and returns how many were written.
func SeedSessions(ctx context.Context, rdb redis.UniversalClient, runID string, users int, ttl time.Duration) (int, error) {
	const batch = 1000
	written := 0
	for start := 0; start < users; start += batch {
		end := min(start+batch, users)
		pipe := rdb.Pipeline()
		for i := start; i < end; i++ {
			pipe.Set(ctx, SessionKey(SessionID(runID, i)), SessionJSON(UserID(i)), ttl)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return written, fmt.Errorf("seed sessions: %w", err)
		}
		written = end
	}
	return written, nil
}
