package auth

import (
	"strings"
	"testing"
)

// Vectors from wire-formats.md §4 (cookie-signature 1.0.7/1.2.2, express-session 1.19.0).
const (
	vecSID    = "2Wk8G1uV0lB-iNm3pQ4rS5tU6vW7xY8z"
	vecSecret = "keyboard cat"
	vecSigned = "s:2Wk8G1uV0lB-iNm3pQ4rS5tU6vW7xY8z.Zzdlt1yuLAUDQgmFicmsbM/xaih88Q5Z5ya83/Cs8Xc"
	vecCookie = "connect.sid=s%3A2Wk8G1uV0lB-iNm3pQ4rS5tU6vW7xY8z.Zzdlt1yuLAUDQgmFicmsbM%2Fxaih88Q5Z5ya83%2FCs8Xc"
	// Real express app, secret ["new-secret","old-secret"], sid "sid-redis-2".
	vecRotNew = "s%3Asid-redis-2.f1525kODo0ptBfCeTPc6jjOMlux1XH2jkR%2FKT38w9os"
	vecRotOld = "s%3Asid-redis-2.hFnbP2ZB0Gl3bC8ejSMP%2BhYZdtfbacnbctkZZ%2Bj4gVM"
)

func TestSignatureVector(t *testing.T) {
	if got := signature("hello", "tobiiscool"); got != "DGDUkGlIkCzPz+C0B064FNgHdEjox7ch8tOBGslZ5QI" {
		t.Fatalf("signature = %q", got)
	}
	if got := Sign(vecSID, vecSecret); got != vecSigned {
		t.Fatalf("Sign = %q, want %q", got, vecSigned)
	}
	if got := SignedCookie(DefaultCookieName, vecSID, vecSecret); got != vecCookie {
		t.Fatalf("SignedCookie = %q, want %q", got, vecCookie)
	}
}

func TestUnsignVectorsAndRotation(t *testing.T) {
	if sid, ok := Unsign(vecSigned, []string{vecSecret}); !ok || sid != vecSID {
		t.Fatalf("Unsign(vector) = %q, %v", sid, ok)
	}
	secrets := []string{"new-secret", "old-secret"}
	for _, c := range []string{vecRotNew, vecRotOld} {
		v, ok := ParseCookie("connect.sid="+c, DefaultCookieName)
		if !ok {
			t.Fatal("cookie not found")
		}
		if sid, ok := Unsign(v, secrets); !ok || sid != "sid-redis-2" {
			t.Fatalf("Unsign(%q) = %q, %v", v, sid, ok)
		}
	}
	// The old-secret form must fail with the new secret alone.
	v, _ := ParseCookie("connect.sid="+vecRotOld, DefaultCookieName)
	if _, ok := Unsign(v, []string{"new-secret"}); ok {
		t.Fatal("old-secret signature accepted by new-secret only")
	}
	if Sign("sid-redis-2", "new-secret") != decodeURIComponent(vecRotNew) {
		t.Fatal("Sign with secrets[0] does not reproduce the express Set-Cookie value")
	}
}

func TestUnsignRejects(t *testing.T) {
	good := Sign("abc", "k")
	cases := map[string]string{
		"no prefix":        strings.TrimPrefix(good, "s:"),
		"no dot":           "s:abcdef",
		"empty sid":        "s:." + signature("", "k"),
		"tampered sid":     strings.Replace(good, "abc", "abd", 1),
		"tampered sig":     good[:len(good)-1] + "A",
		"truncated sig":    good[:len(good)-2],
		"padded sig":       good + "=",
		"wrong secret":     Sign("abc", "other"),
		"empty":            "",
		"prefix only":      "s:",
		"uppercase prefix": "S:" + strings.TrimPrefix(good, "s:"),
	}
	for name, v := range cases {
		if sid, ok := Unsign(v, []string{"k"}); ok {
			t.Errorf("%s: Unsign(%q) accepted, sid %q", name, v, sid)
		}
	}
	if _, ok := Unsign(good, nil); ok {
		t.Error("accepted with no secrets")
	}
	if _, ok := Unsign(Sign("abc", ""), []string{""}); ok {
		t.Error("accepted with an empty secret")
	}
	// A sid containing dots splits at the last dot.
	if sid, ok := Unsign(Sign("a.b.c", "k"), []string{"x", "k"}); !ok || sid != "a.b.c" {
		t.Errorf("dotted sid: %q %v", sid, ok)
	}
}

func TestParseCookie(t *testing.T) {
	cases := []struct {
		header, name, want string
		ok                 bool
	}{
		{"connect.sid=abc", "connect.sid", "abc", true},
		{"a=1; connect.sid=first; connect.sid=second", "connect.sid", "first", true},
		{"a=1;connect.sid=x", "connect.sid", "x", true},
		{" \tconnect.sid \t= \tv \t; b=2", "connect.sid", "v", true},
		{`connect.sid="quoted"`, "connect.sid", "quoted", true},
		{`connect.sid="`, "connect.sid", `"`, true},
		{"connect.sid=s%3Aabc.d%2Fe%2Bf", "connect.sid", "s:abc.d/e+f", true},
		{"connect.sid=bad%ZZescape", "connect.sid", "bad%ZZescape", true},
		{"connect.sid=%FF", "connect.sid", "%FF", true}, // invalid UTF-8: decodeURIComponent throws, kept raw
		{"connect.sid=a+b", "connect.sid", "a+b", true},
		{"connect.sid=", "connect.sid", "", true},
		{"connect.sid=a=b", "connect.sid", "a=b", true},
		{"xconnect.sid=1; connect.sidx=2", "connect.sid", "", false},
		{"junk; connect.sid=v", "connect.sid", "v", true},
		{"connect.sid", "connect.sid", "", false},
		{"", "connect.sid", "", false},
		{"sid=1", "sid", "1", true},
	}
	for _, c := range cases {
		got, ok := ParseCookie(c.header, c.name)
		if got != c.want || ok != c.ok {
			t.Errorf("ParseCookie(%q, %q) = %q, %v; want %q, %v", c.header, c.name, got, ok, c.want, c.ok)
		}
	}
}

func TestEncodeURIComponent(t *testing.T) {
	in := "s:a/b+c d-_.!~*'()é;"
	want := "s%3Aa%2Fb%2Bc%20d-_.!~*'()%C3%A9%3B"
	if got := encodeURIComponent(in); got != want {
		t.Fatalf("encodeURIComponent = %q, want %q", got, want)
	}
	if decodeURIComponent(want) != in {
		t.Fatal("round trip failed")
	}
}
