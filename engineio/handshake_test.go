package engineio

import (
	"net/http"
	"net/url"
	"reflect"
	"testing"
)

func TestHandshakeCompactKeepsNamedHeadersPacked(t *testing.T) {
	h := &Handshake{
		Header: http.Header{
			"User-Agent":      {"ua/1.0"},
			"X-Forwarded-For": {"10.0.0.1", "10.0.0.2"},
			"Cookie":          {"connect.sid=s%3Asecret"},
		},
		Query: url.Values{"EIO": {"4"}},
		URL:   "/socket.io/?EIO=4",
	}
	if got := h.Headers(); !reflect.DeepEqual(got, h.Header) {
		t.Fatalf("before Compact Headers() = %v", got)
	}
	h.Compact([]string{"user-agent", "X-Forwarded-For", "Origin"})
	if h.Header != nil || h.Query != nil || h.URL != "/socket.io/?EIO=4" {
		t.Fatalf("after Compact: header %v query %v url %q", h.Header, h.Query, h.URL)
	}
	want := http.Header{"User-Agent": {"ua/1.0"}, "X-Forwarded-For": {"10.0.0.1", "10.0.0.2"}}
	if got := h.Headers(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Headers() = %v, want %v (the cookie must be gone)", got, want)
	}
	empty := &Handshake{Header: http.Header{"Cookie": {"x"}}}
	empty.Compact([]string{"Origin"})
	if got := empty.Headers(); got != nil {
		t.Fatalf("nothing kept: Headers() = %v", got)
	}
}

// With KeepHeaders, a session keeps only the named headers of its
// handshake from the start: a client that never authenticates holds none
// of the rest.
func TestSessionKeepsOnlyNamedHeaders(t *testing.T) {
	srv := NewServer(Options{KeepHeaders: []string{"Cookie", "user-agent"}})
	defer srv.Close()
	r, _ := http.NewRequest("GET", "/engine.io/?EIO=4&transport=polling", nil)
	r.Header.Set("Cookie", "connect.sid=x")
	r.Header.Set("User-Agent", "ua")
	r.Header.Set("X-Padding", string(make([]byte, 8<<10)))
	s := newSession(srv, "sid", r, "polling")
	want := http.Header{"Cookie": {"connect.sid=x"}, "User-Agent": {"ua"}}
	if !reflect.DeepEqual(s.Handshake().Header, want) {
		t.Fatalf("kept %v, want %v", s.Handshake().Header, want)
	}
	all := newSession(NewServer(Options{}), "sid2", r, "polling")
	if len(all.Handshake().Header) != 3 {
		t.Fatalf("without KeepHeaders every header is kept: %v", all.Handshake().Header)
	}
}
