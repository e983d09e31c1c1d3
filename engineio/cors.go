package engineio

import (
	"net/http"
	"net/url"
	"strings"
)

// OriginPolicy decides which browser origins may use the server. The zero
// value allows same-origin requests and requests without an Origin header
// (non-browser clients) only.
type OriginPolicy struct {
	// Allowed lists origins such as "https://app.example.com". "*" allows
	// any origin (without credentials); it must be set explicitly.
	Allowed []string
}

// ParseOrigins builds a policy from a comma-separated list.
func ParseOrigins(list string) OriginPolicy {
	var p OriginPolicy
	for _, o := range strings.Split(list, ",") {
		if o = strings.TrimRight(strings.TrimSpace(o), "/"); o != "" {
			p.Allowed = append(p.Allowed, o)
		}
	}
	return p
}

func (p OriginPolicy) any() bool {
	for _, o := range p.Allowed {
		if o == "*" {
			return true
		}
	}
	return false
}

// Allow reports whether r's Origin may use the server.
func (p OriginPolicy) Allow(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if p.any() {
		return true
	}
	for _, o := range p.Allowed {
		if strings.EqualFold(o, origin) {
			return true
		}
	}
	return sameOrigin(r, origin)
}

// sameOrigin reports whether origin is the origin r was sent to: same host
// and port, and same scheme (https when the connection is TLS or a proxy in
// front says X-Forwarded-Proto: https, else http), so a page served over
// plain http cannot use the https site's cookies.
func sameOrigin(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return strings.EqualFold(u.Host, r.Host) && strings.EqualFold(u.Scheme, requestScheme(r))
}

func requestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	if p, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ","); strings.EqualFold(strings.TrimSpace(p), "https") {
		return "https"
	}
	return "http"
}

// setHeaders writes the CORS response headers for an allowed request.
func (p OriginPolicy) setHeaders(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	listed := false
	for _, o := range p.Allowed {
		if o != "*" && strings.EqualFold(o, origin) {
			listed = true
		}
	}
	if listed || sameOrigin(r, origin) {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
		return
	}
	if p.any() {
		h.Set("Access-Control-Allow-Origin", "*")
	}
}

// preflight answers an OPTIONS request.
func (p OriginPolicy) preflight(w http.ResponseWriter, r *http.Request) {
	p.setHeaders(w, r)
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE")
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
		h.Set("Access-Control-Allow-Headers", req)
		h.Add("Vary", "Access-Control-Request-Headers")
	}
	h.Set("Access-Control-Max-Age", "600")
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
}
