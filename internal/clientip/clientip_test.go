package clientip

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func mustTrusted(t *testing.T, list string) []netip.Prefix {
	t.Helper()
	p, err := ParseTrustedProxies(list)
	if err != nil {
		t.Fatalf("ParseTrustedProxies(%q): %v", list, err)
	}
	return p
}

func TestParseTrustedProxies(t *testing.T) {
	got := mustTrusted(t, " 10.0.0.0/8,192.168.1.10 , 2001:db8::/32,::1, 10.1.0.0/16, ::ffff:172.16.0.0/108")
	want := []string{"10.0.0.0/8", "192.168.1.10/32", "2001:db8::/32", "::1/128", "10.1.0.0/16", "172.16.0.0/12"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("entry %d = %s, want %s", i, got[i], want[i])
		}
	}
	for _, blank := range []string{"", "  ", "\t"} {
		if p, err := ParseTrustedProxies(blank); err != nil || len(p) != 0 {
			t.Errorf("ParseTrustedProxies(%q) = %v, %v; want empty, nil", blank, p, err)
		}
	}
}

func TestParseTrustedProxiesErrors(t *testing.T) {
	cases := map[string]string{
		"10.0.0.0/33":           `entry 1 "10.0.0.0/33" is not a valid CIDR prefix`,
		"10.0.0.1,,10.0.0.2":    "entry 2 is empty",
		"10.0.0.1, proxy":       `entry 2 "proxy" is not an IP address or CIDR prefix`,
		"10.0.0.1,":             "entry 2 is empty",
		"fe80::1%eth0":          "zoned addresses are not supported",
		"1.2.3.4:80":            `entry 1 "1.2.3.4:80" is not an IP address`,
		"10.0.0.0/8,10.0.0.1/8": `entry 2 "10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?`,
	}
	for in, want := range cases {
		_, err := ParseTrustedProxies(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseTrustedProxies(%q) error = %v, want it to contain %q", in, err, want)
		}
	}
}

func TestNewMasksPrefixes(t *testing.T) {
	r := New([]netip.Prefix{netip.MustParsePrefix("10.1.2.3/16")}, XForwardedFor)
	if !r.Trusted(netip.MustParseAddr("10.1.200.1")) || r.Trusted(netip.MustParseAddr("10.2.0.1")) {
		t.Fatal("prefix given to New not masked")
	}
}

func TestClientIPUntrustedPeerIgnoresHeaders(t *testing.T) {
	r := New(mustTrusted(t, "10.0.0.0/8"), XForwardedFor)
	h := http.Header{}
	h.Set("X-Forwarded-For", "1.1.1.1")
	h.Set("Forwarded", "for=2.2.2.2")
	got, err := r.ClientIP("203.0.113.7:5555", h)
	if err != nil || got != netip.MustParseAddr("203.0.113.7") {
		t.Fatalf("spoofed header from untrusted peer: got %v, %v; want 203.0.113.7", got, err)
	}
	// The zero Resolver and a nil one trust nobody.
	var zero Resolver
	if got, _ := zero.ClientIP("203.0.113.7:1", h); got != netip.MustParseAddr("203.0.113.7") {
		t.Fatalf("zero Resolver used header: %v", got)
	}
	var nilR *Resolver
	if nilR.Trusted(netip.MustParseAddr("10.0.0.1")) {
		t.Fatal("nil Resolver trusts an address")
	}
}

func TestClientIPTrustedProxyXFF(t *testing.T) {
	r := New(mustTrusted(t, "10.0.0.0/8, 2001:db8:ffff::/48"), XForwardedFor)
	cases := []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"single hop", "10.0.0.5:443", []string{"198.51.100.9"}, "198.51.100.9"},
		{"client-supplied entries left of the real client are ignored", "10.0.0.5:443", []string{"6.6.6.6, 198.51.100.9"}, "198.51.100.9"},
		{"chain of trusted proxies skipped", "10.0.0.5:443", []string{"6.6.6.6, 198.51.100.9, 10.0.0.7, 10.9.9.9"}, "198.51.100.9"},
		{"multiple header lines are one list", "10.0.0.5:443", []string{"6.6.6.6", "198.51.100.9, 10.0.0.7"}, "198.51.100.9"},
		{"ports and IPv6", "[2001:db8:ffff::1]:443", []string{"[2001:db8::7]:5000, 10.1.1.1:80"}, "2001:db8::7"},
		{"IPv4-mapped peer and hop", "[::ffff:10.0.0.5]:443", []string{"::ffff:198.51.100.9"}, "198.51.100.9"},
		{"zone dropped", "10.0.0.5:443", []string{"fe80::1%eth0"}, "fe80::1"},
		{"no header: the proxy itself", "10.0.0.5:443", nil, "10.0.0.5"},
		{"empty elements skipped", "10.0.0.5:443", []string{" , 198.51.100.9 ,, "}, "198.51.100.9"},
		{"malformed rightmost: last verified hop", "10.0.0.5:443", []string{"198.51.100.9, unknown"}, "10.0.0.5"},
		{"malformed after trusted: that trusted hop", "10.0.0.5:443", []string{"198.51.100.9, garbage!, 10.0.0.8"}, "10.0.0.8"},
		{"every hop trusted: leftmost", "10.0.0.5:443", []string{"10.0.0.1, 10.0.0.2"}, "10.0.0.1"},
		{"bare peer IP", "10.0.0.5", []string{"198.51.100.9"}, "198.51.100.9"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range c.xff {
				h.Add("X-Forwarded-For", v)
			}
			h.Set("Forwarded", "for=9.9.9.9") // not the configured header: ignored
			got, err := r.ClientIP(c.remote, h)
			if err != nil {
				t.Fatal(err)
			}
			if got != netip.MustParseAddr(c.want) {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
}

func TestClientIPTrustedProxyForwarded(t *testing.T) {
	r := New(mustTrusted(t, "10.0.0.0/8"), Forwarded)
	cases := []struct {
		fwd  []string
		want string
	}{
		{[]string{`for=198.51.100.9;proto=https;by=10.0.0.5`}, "198.51.100.9"},
		{[]string{`for=6.6.6.6, For="[2001:db8:cafe::17]:4711"`}, "2001:db8:cafe::17"},
		{[]string{`for=6.6.6.6`, `for=198.51.100.9, for=10.0.0.3`}, "198.51.100.9"},
		{[]string{`for=198.51.100.9, for=unknown`}, "10.0.0.5"},
		{[]string{`for=198.51.100.9, for=_hidden, for=10.0.0.3`}, "10.0.0.3"},
		{[]string{`for=198.51.100.9, proto=http`}, "10.0.0.5"},
		{[]string{`for="198.51.100.9:_obf"`}, "198.51.100.9"},
		{[]string{`for=198.51.100.9;for=1.1.1.1`}, "10.0.0.5"},
		{[]string{`for="unterminated`, `for=198.51.100.9`}, "198.51.100.9"},
	}
	for _, c := range cases {
		h := http.Header{}
		for _, v := range c.fwd {
			h.Add("Forwarded", v)
		}
		h.Set("X-Forwarded-For", "9.9.9.9") // not the configured header
		got, err := r.ClientIP("10.0.0.5:80", h)
		if err != nil {
			t.Fatal(err)
		}
		if got != netip.MustParseAddr(c.want) {
			t.Errorf("Forwarded %q: got %s, want %s", c.fwd, got, c.want)
		}
	}
}

func TestClientIPBadRemoteAddr(t *testing.T) {
	r := New(nil, XForwardedFor)
	for _, ra := range []string{"", "@", "example.com:80", "1.2.3.4:99999", "[::1", "[::1]x", "1.2.3.4:"} {
		if _, err := r.ClientIP(ra, nil); !errors.Is(err, ErrRemoteAddr) {
			t.Errorf("ClientIP(%q) error = %v, want ErrRemoteAddr", ra, err)
		}
	}
}

func TestFromRequest(t *testing.T) {
	r := New(mustTrusted(t, "192.0.2.1"), XForwardedFor)
	req := httptest.NewRequest(http.MethodGet, "/socket.io/?EIO=4&transport=websocket", nil)
	req.RemoteAddr = "192.0.2.1:1234" // httptest's default peer, made explicit
	req.Header.Set("X-Forwarded-For", "203.0.113.50")
	got, err := r.FromRequest(req)
	if err != nil || got.String() != "203.0.113.50" {
		t.Fatalf("got %v, %v", got, err)
	}
	req.RemoteAddr = "192.0.2.2:1234"
	if got, _ := r.FromRequest(req); got.String() != "192.0.2.2" {
		t.Fatalf("untrusted peer: got %v", got)
	}
}

func TestParseAddr(t *testing.T) {
	good := map[string]string{
		"1.2.3.4":             "1.2.3.4",
		" 1.2.3.4:0 ":         "1.2.3.4",
		"1.2.3.4:65535":       "1.2.3.4",
		"2001:db8::1":         "2001:db8::1",
		"[2001:db8::1]":       "2001:db8::1",
		"[2001:db8::1]:443":   "2001:db8::1",
		"[fe80::1%eth0]:1":    "fe80::1",
		"::ffff:192.0.2.1":    "192.0.2.1",
		"[::ffff:192.0.2.1]:": "", // invalid, see below
	}
	for in, want := range good {
		a, ok := ParseAddr(in)
		if want == "" {
			if ok {
				t.Errorf("ParseAddr(%q) = %v, want invalid", in, a)
			}
			continue
		}
		if !ok || a.String() != want {
			t.Errorf("ParseAddr(%q) = %v, %v; want %s", in, a, ok, want)
		}
	}
	for _, in := range []string{"", "unknown", "1.2.3.4:65536", "1.2.3.4:123456", "1.2.3.4:8a", "[1:2", "[::1]:", "[::1]8", "1.2.3", "1.2.3.4:_x", "300.1.1.1"} {
		if a, ok := ParseAddr(in); ok {
			t.Errorf("ParseAddr(%q) = %v, want invalid", in, a)
		}
	}
	if a, ok := parseNode("[2001:db8::1]:_x-1.y", true); !ok || a.String() != "2001:db8::1" {
		t.Errorf("obfuscated port: %v %v", a, ok)
	}
	if _, ok := parseNode("1.2.3.4:_bad!", true); ok {
		t.Error("bad obfuscated port accepted")
	}
}

func TestParseForwardedSyntax(t *testing.T) {
	cases := []struct {
		in   string
		want []string // "" = invalid hop
	}{
		{`for=192.0.2.60;proto=http;by=203.0.113.43`, []string{"192.0.2.60"}},
		{`for="\"_x\""`, []string{""}},
		{`for="[2001:db8::1]:80"`, []string{"2001:db8::1"}},
		{`for=2001:db8::1`, []string{"2001:db8::1"}}, // unquoted IPv6: tolerated
		{`for="1.2.3.4\`, []string{""}},
		{`for=1.2.3.4 ; proto=https , for=5.6.7.8`, []string{"1.2.3.4", "5.6.7.8"}},
		{`,, for=1.2.3.4 ,;, `, []string{"1.2.3.4"}},
		{`for=1.2.3.4 x, for=5.6.7.8`, []string{"", "5.6.7.8"}},
		{`=1.2.3.4, for=5.6.7.8`, []string{"", "5.6.7.8"}},
		{`for, for=5.6.7.8`, []string{"", "5.6.7.8"}},
		{`for=, for=5.6.7.8`, []string{"", "5.6.7.8"}},
		{`by="a,b", for=5.6.7.8`, []string{"", "5.6.7.8"}},
		{`for="1.2.3.4"junk, for=5.6.7.8`, []string{"", "5.6.7.8"}},
		{`bad"quote,still", for=5.6.7.8`, []string{"", "5.6.7.8"}},
		{`bad "q\"uo,te", for=5.6.7.8`, []string{"", "5.6.7.8"}},
	}
	for _, c := range cases {
		got := ParseForwarded([]string{c.in})
		if len(got) != len(c.want) {
			t.Errorf("ParseForwarded(%q) = %v, want %v", c.in, got, c.want)
			continue
		}
		for i, w := range c.want {
			if (w == "" && got[i].IsValid()) || (w != "" && got[i].String() != w) {
				t.Errorf("ParseForwarded(%q)[%d] = %v, want %q", c.in, i, got[i], w)
			}
		}
	}
}

func TestHeaderString(t *testing.T) {
	if XForwardedFor.String() != "X-Forwarded-For" || Forwarded.String() != "Forwarded" {
		t.Fatal("Header.String")
	}
}

func BenchmarkClientIPTrustedXFF(b *testing.B) {
	trusted, _ := ParseTrustedProxies("10.0.0.0/8, 172.16.0.0/12")
	r := New(trusted, XForwardedFor)
	h := http.Header{}
	h.Set("X-Forwarded-For", "203.0.113.9, 10.0.0.7")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ClientIP("10.0.0.5:443", h); err != nil {
			b.Fatal(err)
		}
	}
}
