// Package clientip determines the client IP address of an HTTP request or
// WebSocket handshake.
//
// The direct peer (the socket's remote address) is the client unless the peer
// is a trusted proxy. Only then is a forwarding header consulted, and it is
// walked from right to left: each proxy appends the address it received the
// request from, so the rightmost entries were written by our own proxies and
// the leftmost ones by whoever sent the request. The walk skips entries that
// are trusted proxies and stops at the first untrusted address, which is the
// client. Entries further left are client-controlled and never read, so a
// client cannot choose its own address by sending a forged header.
//
// If the walk meets an entry that is not an IP address ("unknown", an
// obfuscated RFC 7239 identifier, garbage), nothing to its left can be
// verified and the last verified hop (the trusted proxy that forwarded the
// malformed entry) is returned. If every entry is trusted, the leftmost one is
// returned.
package clientip

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// Header selects the forwarding header a Resolver reads.
type Header int

const (
	// XForwardedFor reads X-Forwarded-For (nginx, HAProxy, AWS ELB, Traefik...).
	XForwardedFor Header = iota
	// Forwarded reads the RFC 7239 Forwarded header ("for=" parameters).
	Forwarded
)

// String returns the canonical header name.
func (h Header) String() string {
	if h == Forwarded {
		return "Forwarded"
	}
	return "X-Forwarded-For"
}

// Resolver finds client addresses. The zero value trusts no proxy and always
// returns the direct peer. A Resolver is safe for concurrent use.
type Resolver struct {
	trusted []netip.Prefix
	header  Header
}

// New returns a Resolver that reads header only when the direct peer is inside
// one of the trusted prefixes. Only one header is read: the one the trusted
// proxies append to; the other is client-controlled and would be spoofable.
func New(trusted []netip.Prefix, header Header) *Resolver {
	t := make([]netip.Prefix, len(trusted))
	for i, p := range trusted {
		t[i] = normalizePrefix(p)
	}
	return &Resolver{trusted: t, header: header}
}

// ParseTrustedProxies parses a comma-separated list of CIDR prefixes and/or
// single IP addresses (as found in TRADEWIRE_TRUSTED_PROXIES), for example
// "10.0.0.0/8, 192.168.1.10, 2001:db8::/32". A single address trusts exactly
// that address. Blank input yields an empty list (no trusted proxies); an
// empty or invalid entry, or a prefix with host bits set ("10.0.0.1/8", most
// likely a typo), is an error naming the entry.
func ParseTrustedProxies(list string) ([]netip.Prefix, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	parts := strings.Split(list, ",")
	out := make([]netip.Prefix, 0, len(parts))
	for i, part := range parts {
		s := strings.TrimSpace(part)
		if s == "" {
			return nil, fmt.Errorf("clientip: trusted proxy entry %d is empty", i+1)
		}
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("clientip: trusted proxy entry %d %q is not a valid CIDR prefix: %w", i+1, s, err)
			}
			if m := p.Masked(); m != p {
				return nil, fmt.Errorf("clientip: trusted proxy entry %d %q has host bits set; did you mean %s?", i+1, s, m)
			}
			out = append(out, normalizePrefix(p))
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("clientip: trusted proxy entry %d %q is not an IP address or CIDR prefix: %w", i+1, s, err)
		}
		if a.Zone() != "" {
			return nil, fmt.Errorf("clientip: trusted proxy entry %d %q: zoned addresses are not supported", i+1, s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// normalizePrefix turns IPv4-mapped IPv6 prefixes (::ffff:10.0.0.0/104) into
// plain IPv4 ones, since addresses are unmapped before matching, and masks
// host bits of prefixes given to New.
func normalizePrefix(p netip.Prefix) netip.Prefix {
	a := p.Addr()
	if a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

// Trusted reports whether a is inside one of the trusted proxy prefixes.
func (r *Resolver) Trusted(a netip.Addr) bool {
	if r == nil {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ErrRemoteAddr is returned when the direct peer address cannot be parsed.
var ErrRemoteAddr = errors.New("clientip: remote address is not an IP address")

// ClientIP returns the client address for a connection whose direct peer is
// remoteAddr ("ip:port", "[ipv6]:port" or a bare IP, as in
// http.Request.RemoteAddr) and whose request carried headers h. Headers are
// ignored unless the peer is trusted. The result has no zone and IPv4-mapped
// IPv6 addresses are returned as IPv4. The only error is an unparsable
// remoteAddr (wrapping ErrRemoteAddr); malformed headers never fail.
func (r *Resolver) ClientIP(remoteAddr string, h http.Header) (netip.Addr, error) {
	peer, ok := parseNode(remoteAddr, false)
	if !ok {
		return netip.Addr{}, fmt.Errorf("%w: %q", ErrRemoteAddr, remoteAddr)
	}
	if !r.Trusted(peer) {
		return peer, nil
	}
	var hops []netip.Addr
	if r.header == Forwarded {
		hops = ParseForwarded(h.Values("Forwarded"))
	} else {
		hops = ParseXForwardedFor(h.Values("X-Forwarded-For"))
	}
	return r.walk(peer, hops), nil
}

// FromRequest is ClientIP(req.RemoteAddr, req.Header).
func (r *Resolver) FromRequest(req *http.Request) (netip.Addr, error) {
	return r.ClientIP(req.RemoteAddr, req.Header)
}

// walk returns the rightmost untrusted hop; see the package comment.
func (r *Resolver) walk(peer netip.Addr, hops []netip.Addr) netip.Addr {
	last := peer
	for i := len(hops) - 1; i >= 0; i-- {
		h := hops[i]
		if !h.IsValid() {
			return last
		}
		if !r.Trusted(h) {
			return h
		}
		last = h
	}
	return last
}
