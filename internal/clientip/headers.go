package clientip

import (
	"net/netip"
	"strings"
)

// ParseXForwardedFor parses X-Forwarded-For header lines (in the order they
// were received) into hops, leftmost first. Empty list elements are skipped.
// An element that is not an IP address, optionally with a port
// ("1.2.3.4:80", "[2001:db8::1]:443"), yields an invalid netip.Addr in its
// position so that a right-to-left walk can stop there.
func ParseXForwardedFor(values []string) []netip.Addr {
	var out []netip.Addr
	for _, line := range values {
		for elem := range strings.SplitSeq(line, ",") {
			elem = strings.TrimSpace(elem)
			if elem == "" {
				continue
			}
			a, _ := parseNode(elem, false)
			out = append(out, a)
		}
	}
	return out
}

// ParseForwarded parses RFC 7239 Forwarded header lines into hops, leftmost
// first: one per forwarded-element, taken from its "for" parameter. An
// element without a usable "for" (missing, "unknown", an obfuscated
// identifier, a repeated parameter, broken syntax) yields an invalid
// netip.Addr in its position. Each line is parsed on its own, so an
// unterminated quoted string cannot swallow the next line.
func ParseForwarded(values []string) []netip.Addr {
	var out []netip.Addr
	for _, line := range values {
		out = parseForwardedLine(line, out)
	}
	return out
}

// forwardedElem accumulates one forwarded-element.
type forwardedElem struct {
	addr     netip.Addr
	forSeen  bool
	bad      bool
	nonEmpty bool
}

func parseForwardedLine(s string, out []netip.Addr) []netip.Addr {
	var e forwardedElem
	flush := func() {
		if e.nonEmpty {
			if e.bad || !e.forSeen {
				out = append(out, netip.Addr{})
			} else {
				out = append(out, e.addr)
			}
		}
		e = forwardedElem{}
	}
	fail := func(i int) int {
		e.nonEmpty, e.bad = true, true
		return skipElement(s, i)
	}
	i := 0
	for i < len(s) {
		switch c := s[i]; {
		case c == ' ' || c == '\t' || c == ';':
			i++
		case c == ',':
			flush()
			i++
		default:
			e.nonEmpty = true
			start := i
			for i < len(s) && isTokenChar(s[i]) {
				i++
			}
			name := s[start:i]
			if name == "" || i >= len(s) || s[i] != '=' {
				i = fail(i)
				continue
			}
			i++ // '='
			var val string
			ok := true
			if i < len(s) && s[i] == '"' {
				val, i, ok = parseQuoted(s, i)
			} else {
				start = i
				for i < len(s) && (isTokenChar(s[i]) || s[i] == ':' || s[i] == '[' || s[i] == ']') {
					i++
				}
				val = s[start:i]
				ok = val != ""
			}
			for ok && i < len(s) && (s[i] == ' ' || s[i] == '\t') {
				i++
			}
			if !ok || (i < len(s) && s[i] != ';' && s[i] != ',') {
				i = fail(i)
				continue
			}
			if strings.EqualFold(name, "for") {
				if e.forSeen {
					e.bad = true
				}
				e.forSeen = true
				a, valid := parseNode(val, true)
				if !valid {
					e.bad = true
				}
				e.addr = a
			}
		}
	}
	flush()
	return out
}

// skipElement returns the index of the next ',' outside a quoted string, or
// len(s).
func skipElement(s string, i int) int {
	inQuote := false
	for ; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if inQuote {
				i++
			}
		case '"':
			inQuote = !inQuote
		case ',':
			if !inQuote {
				return i
			}
		}
	}
	return len(s)
}

// parseQuoted parses the quoted-string starting at s[i] == '"' and returns its
// unescaped content and the index after the closing quote.
func parseQuoted(s string, i int) (string, int, bool) {
	var b strings.Builder
	for i++; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), i + 1, true
		case '\\':
			if i+1 >= len(s) {
				return "", len(s), false
			}
			i++
			b.WriteByte(s[i])
		default:
			b.WriteByte(c)
		}
	}
	return "", len(s), false
}

// isTokenChar reports whether c is an RFC 7230 tchar.
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// ParseAddr parses a node address as found in RemoteAddr or a forwarding
// header: "1.2.3.4", "1.2.3.4:80", "2001:db8::1", "[2001:db8::1]" or
// "[2001:db8::1]:443". Zones are dropped and IPv4-mapped IPv6 addresses are
// returned as IPv4.
func ParseAddr(s string) (netip.Addr, bool) {
	return parseNode(s, false)
}

// parseNode implements ParseAddr; obfPort additionally accepts RFC 7239
// obfuscated ports ("_abc").
func parseNode(s string, obfPort bool) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	host, port := s, ""
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		host, port = s[1:end], s[end+1:]
		if port != "" {
			if port[0] != ':' {
				return netip.Addr{}, false
			}
			port = port[1:]
			if !validPort(port, obfPort) {
				return netip.Addr{}, false
			}
		}
	case strings.Count(s, ":") == 1:
		i := strings.IndexByte(s, ':')
		host, port = s[:i], s[i+1:]
		if !validPort(port, obfPort) {
			return netip.Addr{}, false
		}
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.WithZone("").Unmap(), true
}

// validPort accepts 1-5 decimal digits up to 65535, or with obf an RFC 7239
// obfport ("_" followed by ALPHA / DIGIT / "." / "_" / "-").
func validPort(p string, obf bool) bool {
	if obf && len(p) > 1 && p[0] == '_' {
		for i := 1; i < len(p); i++ {
			c := p[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
				return false
			}
		}
		return true
	}
	if len(p) == 0 || len(p) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n <= 65535
}
