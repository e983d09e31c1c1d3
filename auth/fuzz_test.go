package auth

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseCookie checks that any header parses without panicking, that the
// value found is the first pair with that name, and that an encoded value
// round-trips.
func FuzzParseCookie(f *testing.F) {
	f.Add(vecCookie, DefaultCookieName)
	f.Add("a=1; connect.sid=s%3Ax.y; connect.sid=2", DefaultCookieName)
	f.Add(`connect.sid="%E0%A4%A"`, DefaultCookieName)
	f.Add(";;=;=connect.sid;", DefaultCookieName)
	f.Fuzz(func(t *testing.T, header, name string) {
		v, ok := ParseCookie(header, name)
		if !ok && v != "" {
			t.Fatalf("not found but value %q", v)
		}
		if ok && !strings.Contains(header, name) {
			t.Fatalf("found %q in a header without the name", name)
		}
		// Property: a value we encode ourselves comes back unchanged.
		if name == "" || strings.ContainsAny(name, ";= \t") || !utf8.ValidString(header) {
			return
		}
		got, ok := ParseCookie(name+"="+encodeURIComponent(header)+"; "+name+"=later", name)
		if !ok || got != header {
			t.Fatalf("round trip of %q = %q, %v", header, got, ok)
		}
	})
}

// FuzzUnsign checks that verification never panics, and accepts exactly the
// values Sign produces.
func FuzzUnsign(f *testing.F) {
	f.Add(vecSigned, vecSecret)
	f.Add("s:.", "k")
	f.Add("s:a.b.c", "k")
	f.Add(decodeURIComponent(vecRotOld), "old-secret")
	f.Fuzz(func(t *testing.T, value, secret string) {
		sid, ok := Unsign(value, []string{secret})
		if ok && Sign(sid, secret) != value {
			t.Fatalf("accepted %q but Sign(%q) = %q", value, sid, Sign(sid, secret))
		}
		if secret == "" || !strings.HasPrefix(value, "s:") {
			if ok {
				t.Fatalf("accepted %q with secret %q", value, secret)
			}
		}
		if secret != "" && value != "" {
			got, ok := Unsign(Sign(value, secret), []string{"other", secret})
			if !ok || got != value {
				t.Fatalf("Sign/Unsign round trip of %q = %q, %v", value, got, ok)
			}
		}
	})
}
