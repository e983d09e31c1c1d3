package logging

import (
	"log/slog"
	"regexp"
	"strings"
)

// Redacted replaces every redacted value.
const Redacted = "[REDACTED]"

// Redact returns Redacted for a non-empty s and "" for an empty one, so a log
// line still tells whether a secret was set.
func Redact(s string) string {
	if s == "" {
		return ""
	}
	return Redacted
}

var (
	// scheme://user:password@ -> scheme://user:[REDACTED]@ (also user-less ":password@").
	urlPassword = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s]*):[^@/?#\s]*@`)
	// ?password=x or &authToken=x -> value redacted.
	queryPassword = regexp.MustCompile(`(?i)([?&][^=&#\s]*(?:password|passwd|secret|token|api_?key)[^=&#\s]*=)[^&#\s]*`)
)

// RedactURLs returns s with the password of every URL in it (the part after
// "user:" in "scheme://user:password@host") and the values of query
// parameters whose names contain password, secret, token or apikey replaced
// by Redacted. s may be a single URL or any text such as an error message.
func RedactURLs(s string) string {
	if !strings.Contains(s, "://") && !strings.ContainsAny(s, "?&") {
		return s
	}
	s = urlPassword.ReplaceAllString(s, "${1}:"+Redacted+"@")
	return queryPassword.ReplaceAllString(s, "${1}"+Redacted)
}

// Attribute keys are normalised (lower case, without '_', '-', '.' and
// spaces) and then compared with these lists.
var (
	secretKeys = map[string]bool{
		// Credentials.
		"secret": true, "secrets": true, "password": true, "passwd": true, "pwd": true,
		"passphrase": true, "apikey": true, "apikeys": true, "token": true, "auth": true,
		"authorization": true, "credentials": true, "privatekey": true, "cookie": true,
		"cookies": true, "setcookie": true,
		// Session identifiers: the Express session id (connect.sid) and the
		// Engine.IO sid are bearer credentials; Socket.IO socket ids are not.
		"sid": true, "sessid": true, "sessionid": true, "connectsid": true, "session": true,
	}
	secretSuffixes = []string{"secret", "secrets", "password", "passwd", "token", "apikey", "apikeys", "sessionid", "privatekey"}
)

func normalizeKey(k string) string {
	var b strings.Builder
	b.Grow(len(k))
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '_' || c == '-' || c == '.' || c == ' ':
		case 'A' <= c && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// IsSecretKey reports whether an attribute with this key must never be
// logged in clear. It matches, case-insensitively and ignoring '_', '-' and
// '.': secret(s), password, passwd, pwd, passphrase, apikey(s), token, auth,
// authorization, credentials, privatekey, cookie(s), set-cookie, sid, sessid,
// session, session_id, connect.sid, and any key ending in secret(s),
// password, passwd, token, apikey(s), session_id or private_key (so
// session_secrets, db_password, access_token and x-api-key are secret).
// socket_id, user_id and request_id are not.
func IsSecretKey(key string) bool {
	k := normalizeKey(key)
	if secretKeys[k] {
		return true
	}
	for _, s := range secretSuffixes {
		if strings.HasSuffix(k, s) {
			return true
		}
	}
	return false
}

// ReplaceAttr is a slog.HandlerOptions.ReplaceAttr that redacts the value of
// every attribute whose key IsSecretKey (an "id" inside a group named
// "session" or "sess" too), and the URL passwords (see RedactURLs) in string
// and error values. Booleans are left alone: a flag such as
// allow_unsigned_session_id holds no secret.
func ReplaceAttr(groups []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindBool {
		return a
	}
	if IsSecretKey(a.Key) || (len(groups) > 0 && strings.EqualFold(a.Key, "id") && isSessionGroup(groups[len(groups)-1])) {
		return slog.String(a.Key, Redacted)
	}
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); strings.Contains(s, "://") || strings.Contains(s, "=") {
			if r := RedactURLs(s); r != s {
				return slog.String(a.Key, r)
			}
		}
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok && err != nil {
			s := err.Error()
			if r := RedactURLs(s); r != s {
				return slog.String(a.Key, r)
			}
		}
	}
	return a
}

func isSessionGroup(g string) bool {
	g = normalizeKey(g)
	return g == "session" || g == "sess"
}
