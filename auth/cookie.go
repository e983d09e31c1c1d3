package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/url"
	"strings"
	"unicode/utf8"
)

// DefaultCookieName is express-session's default cookie name.
const DefaultCookieName = "connect.sid"

// signedPrefix marks a signed express-session cookie value.
const signedPrefix = "s:"

// signature returns cookie-signature's signature of value: standard base64
// of HMAC-SHA256(secret, value) without "=" padding.
func signature(value, secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(value))
	return base64.RawStdEncoding.EncodeToString(m.Sum(nil))
}

// Sign returns the express-session cookie value for sid: "s:<sid>.<sig>",
// signed with secret as cookie-signature does. The Set-Cookie header carries
// it URL-encoded (see SignedCookie).
func Sign(sid, secret string) string {
	return signedPrefix + sid + "." + signature(sid, secret)
}

// SignedCookie returns "name=<encodeURIComponent(Sign(sid, secret))>", the
// name=value pair express-session puts in Set-Cookie and browsers send back.
func SignedCookie(name, sid, secret string) string {
	return name + "=" + encodeURIComponent(Sign(sid, secret))
}

// Unsign verifies a signed value "s:<sid>.<sig>" (already URL-decoded)
// against each secret in turn and returns sid if any secret matches. The
// comparison is constant-time for each secret. A value without the "s:"
// prefix, without a ".", with an empty sid, or with no matching secret is
// rejected.
func Unsign(value string, secrets []string) (sid string, ok bool) {
	if !strings.HasPrefix(value, signedPrefix) {
		return "", false
	}
	body := value[len(signedPrefix):]
	dot := strings.LastIndexByte(body, '.')
	if dot <= 0 {
		return "", false
	}
	sid = body[:dot]
	matched := 0
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		expected := sid + "." + signature(sid, secret)
		// Every secret is tried, so timing does not reveal which one matched.
		matched |= subtle.ConstantTimeCompare([]byte(expected), []byte(body))
	}
	if matched != 1 {
		return "", false
	}
	return sid, true
}

// ParseCookie returns the value of the first cookie called name in a Cookie
// header, URL-decoded, as the npm cookie package (0.7) parses it: pairs are
// split on ";", names and values are trimmed of spaces and tabs, one pair of
// surrounding double quotes is removed, and a value that fails to decode is
// returned as is. Several Cookie headers can be joined with "; ".
func ParseCookie(header, name string) (value string, ok bool) {
	for len(header) > 0 {
		var pair string
		pair, header, _ = strings.Cut(header, ";")
		k, v, found := strings.Cut(pair, "=")
		if !found || trimOWS(k) != name {
			continue
		}
		v = trimOWS(v)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		return decodeURIComponent(v), true
	}
	return "", false
}

func trimOWS(s string) string { return strings.Trim(s, " \t") }

// decodeURIComponent decodes %XX escapes like JavaScript's
// decodeURIComponent, returning s unchanged where that would throw
// (malformed escapes or invalid UTF-8), as the cookie package does.
func decodeURIComponent(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	d, err := url.PathUnescape(s)
	if err != nil || !utf8.ValidString(d) {
		return s
	}
	return d
}

// encodeURIComponent escapes s like JavaScript's encodeURIComponent.
func encodeURIComponent(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
