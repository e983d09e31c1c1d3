package clientip

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// checkHops verifies invariants shared by both header parsers.
func checkHops(t *testing.T, in string, hops []netip.Addr) {
	t.Helper()
	if len(hops) > strings.Count(in, ",")+1 {
		t.Fatalf("%q: %d hops from %d list elements", in, len(hops), strings.Count(in, ",")+1)
	}
	for _, a := range hops {
		if a.IsValid() && (a.Zone() != "" || a.Is4In6()) {
			t.Fatalf("%q: hop %v not normalized", in, a)
		}
	}
}

func FuzzParseXForwardedFor(f *testing.F) {
	f.Add("203.0.113.9, 10.0.0.7")
	f.Fuzz(func(t *testing.T, in string) {
		hops := ParseXForwardedFor([]string{in})
		checkHops(t, in, hops)
		for _, a := range hops {
			if !a.IsValid() {
				continue
			}
			// A parsed hop printed back parses to itself.
			again := ParseXForwardedFor([]string{a.String()})
			if len(again) != 1 || again[0] != a {
				t.Fatalf("%q: hop %v reparses as %v", in, a, again)
			}
		}
	})
}

func FuzzParseForwarded(f *testing.F) {
	f.Add(`for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8::1]:4711"`)
	f.Fuzz(func(t *testing.T, in string) {
		hops := ParseForwarded([]string{in})
		// Quoted commas do not split elements, so only the upper bound holds.
		checkHops(t, in, hops)
		for _, a := range hops {
			if !a.IsValid() {
				continue
			}
			again := ParseForwarded([]string{`for="` + netip.AddrPortFrom(a, 1).String() + `"`})
			if len(again) != 1 || again[0] != a {
				t.Fatalf("%q: hop %v reparses as %v", in, a, again)
			}
		}
	})
}

// FuzzClientIP checks the security property: an untrusted peer is always the
// answer whatever the headers say, and a trusted peer's answer is either the
// peer or an address that appears in the header.
func FuzzClientIP(f *testing.F) {
	f.Add("10.0.0.5:443", "198.51.100.9, 10.0.0.7", false)
	f.Add("203.0.113.1:1", "for=1.1.1.1", true)
	trusted, err := ParseTrustedProxies("10.0.0.0/8, 2001:db8::/32")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, remote, header string, forwarded bool) {
		mode, name := XForwardedFor, "X-Forwarded-For"
		if forwarded {
			mode, name = Forwarded, "Forwarded"
		}
		r := New(trusted, mode)
		h := http.Header{}
		h.Set(name, header)
		got, err := r.ClientIP(remote, h)
		peer, ok := ParseAddr(remote)
		if !ok {
			if err == nil {
				t.Fatalf("remote %q accepted as %v", remote, got)
			}
			return
		}
		if err != nil || !got.IsValid() {
			t.Fatalf("ClientIP(%q) = %v, %v", remote, got, err)
		}
		if !r.Trusted(peer) {
			if got != peer {
				t.Fatalf("untrusted peer %v, header %q: got %v", peer, header, got)
			}
			return
		}
		var hops []netip.Addr
		if forwarded {
			hops = ParseForwarded([]string{header})
		} else {
			hops = ParseXForwardedFor([]string{header})
		}
		if got == peer {
			return
		}
		for _, a := range hops {
			if a == got {
				return
			}
		}
		t.Fatalf("trusted peer %v, header %q: %v is neither the peer nor a hop", peer, header, got)
	})
}
