// Package cluster lets a tradewire node serve Engine.IO requests for
// sessions owned by another node, so a plain round-robin load balancer
// works without sticky sessions.
//
// Each node has a short random tag that prefixes the session ids it
// issues, and advertises its internal URL in Redis under that tag (a key
// with a TTL, refreshed by a heartbeat). A node receiving a request for a
// session id it does not hold reads the tag, looks the owner up (cached),
// and proxies the request to it: long-polling GETs and POSTs, and the
// websocket upgrade, which then stays proxied for the connection's life.
package cluster

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// TagLen is the length of the owner tag at the start of a session id.
const TagLen = 4

// ForwardedHeader marks a proxied request, so it is never proxied twice.
const ForwardedHeader = "X-Tradewire-Forwarded"

// Options configure a Router.
type Options struct {
	// URL is this node's address as other nodes reach it, e.g.
	// http://10.0.0.7:8080.
	URL string
	// KeyPrefix namespaces the Redis keys (default "tradewire").
	KeyPrefix string
	// TTL is how long an advertisement lives without refresh (default 6s);
	// it is refreshed every TTL/3.
	TTL    time.Duration
	Logger *slog.Logger
	// Secret authenticates route entries: each is stored with an HMAC of
	// tag and URL, and entries without a valid one are ignored, so anyone
	// able to write to Redis cannot point a tag at their own listener.
	// Empty: entries are plain URLs (dev mode, tests).
	Secret string
	// LookupsPerSecond bounds the Redis lookups of tags not in the cache
	// (default 50): requests with made-up tags cost no round trip beyond it.
	LookupsPerSecond int
}

// routeSigPrefix separates a route URL from its signature.
const routeSigPrefix = "#sig="

// strippedHeaders never travel to another node: handshakes are never
// proxied, the session id is the credential of a forwarded request.
var strippedHeaders = []string{"Cookie", "Authorization", "Proxy-Authorization"}

// Router issues session ids carrying this node's tag and forwards requests
// for other nodes' sessions.
type Router struct {
	rdb  redis.UniversalClient
	opts Options
	tag  string
	log  *slog.Logger

	mu      sync.Mutex
	cache   map[string]cached
	proxys  map[string]*httputil.ReverseProxy
	budget  int
	budgetT time.Time
}

type cached struct {
	url string
	at  time.Time
}

// NewRouter returns a Router for this node.
func NewRouter(rdb redis.UniversalClient, opts Options) (*Router, error) {
	if opts.URL == "" {
		return nil, errors.New("cluster: the node URL is required")
	}
	if _, err := url.Parse(opts.URL); err != nil {
		return nil, fmt.Errorf("cluster: node URL: %w", err)
	}
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = "tradewire"
	}
	if opts.TTL <= 0 {
		opts.TTL = 6 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.LookupsPerSecond <= 0 {
		opts.LookupsPerSecond = 50
	}
	if err := checkRouteURL(opts.URL); err != nil {
		return nil, fmt.Errorf("cluster: node URL: %w", err)
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return &Router{
		rdb: rdb, opts: opts, log: opts.Logger,
		tag:    base64.RawURLEncoding.EncodeToString(b[:]),
		cache:  make(map[string]cached),
		proxys: make(map[string]*httputil.ReverseProxy),
	}, nil
}

// Tag returns this node's tag.
func (r *Router) Tag() string { return r.tag }

// NewID returns a 20-character session id starting with this node's tag.
func (r *Router) NewID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return r.tag + base64.RawURLEncoding.EncodeToString(b[:])
}

func (r *Router) key(tag string) string { return r.opts.KeyPrefix + ":route:" + tag }

// Advertise publishes this node's URL once.
func (r *Router) Advertise(ctx context.Context) error {
	return r.rdb.Set(ctx, r.key(r.tag), r.entry(r.tag, r.opts.URL), r.opts.TTL).Err()
}

// entry is the stored form of a route: the URL, signed when a secret is set.
func (r *Router) entry(tag, u string) string {
	if r.opts.Secret == "" {
		return u
	}
	return u + routeSigPrefix + r.sign(tag, u)
}

func (r *Router) sign(tag, u string) string {
	m := hmac.New(sha256.New, []byte(r.opts.Secret))
	m.Write([]byte("tradewire-route\x00" + tag + "\x00" + u))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// parseEntry returns the URL of a stored route, or an error when the
// entry is unsigned or wrongly signed (with a secret) or not an http(s) URL.
func (r *Router) parseEntry(tag, v string) (string, error) {
	u := v
	if r.opts.Secret != "" {
		i := strings.LastIndex(v, routeSigPrefix)
		if i < 0 {
			return "", errors.New("route entry is not signed")
		}
		u = v[:i]
		if !hmac.Equal([]byte(v[i+len(routeSigPrefix):]), []byte(r.sign(tag, u))) {
			return "", errors.New("route entry has a bad signature")
		}
	}
	if err := checkRouteURL(u); err != nil {
		return "", err
	}
	return u, nil
}

// checkRouteURL accepts absolute http and https URLs without user info.
func checkRouteURL(u string) error {
	p, err := url.Parse(u)
	if err != nil {
		return err
	}
	if p.Scheme != "http" && p.Scheme != "https" {
		return fmt.Errorf("scheme %q is not http or https", p.Scheme)
	}
	if p.Host == "" || p.User != nil {
		return errors.New("want http(s)://host:port")
	}
	return nil
}

// takeLookup reports whether a Redis lookup of an uncached tag fits in
// this second's budget.
func (r *Router) takeLookup(now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.budgetT) >= time.Second {
		r.budgetT, r.budget = now, r.opts.LookupsPerSecond
	}
	if r.budget <= 0 {
		return false
	}
	r.budget--
	return true
}

// Run advertises this node until ctx ends, then withdraws it.
func (r *Router) Run(ctx context.Context) {
	t := time.NewTicker(r.opts.TTL / 3)
	defer t.Stop()
	for {
		if err := r.Advertise(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("cluster: cannot advertise node route", "err", err)
		}
		select {
		case <-ctx.Done():
			wctx, cancel := context.WithTimeout(context.Background(), time.Second)
			r.rdb.Del(wctx, r.key(r.tag))
			cancel()
			return
		case <-t.C:
		}
	}
}

// Owner returns the URL of the node owning sid ("" when unknown).
func (r *Router) Owner(ctx context.Context, sid string) (string, error) {
	if len(sid) < TagLen {
		return "", nil
	}
	tag := sid[:TagLen]
	if tag == r.tag {
		return "", nil
	}
	r.mu.Lock()
	c, ok := r.cache[tag]
	r.mu.Unlock()
	if ok && time.Since(c.at) < r.opts.TTL/3 {
		return c.url, nil
	}
	if !ok && !r.takeLookup(time.Now()) {
		// A flood of made-up tags: answer "unknown" without Redis.
		return "", nil
	}
	v, err := r.rdb.Get(ctx, r.key(tag)).Result()
	if errors.Is(err, redis.Nil) {
		v, err = "", nil
	}
	if err != nil {
		return "", fmt.Errorf("cluster: owner lookup: %w", err)
	}
	u := ""
	if v != "" {
		if u, err = r.parseEntry(tag, v); err != nil {
			r.log.Warn("cluster: ignoring a route entry", "tag", tag, "err", err)
			u = ""
		}
	}
	r.mu.Lock()
	r.cache[tag] = cached{url: u, at: time.Now()}
	if len(r.cache) > 4096 {
		r.cache = map[string]cached{tag: r.cache[tag]}
	}
	r.mu.Unlock()
	return u, nil
}

func (r *Router) proxy(target string) (*httputil.ReverseProxy, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.proxys[target]; ok {
		return p, nil
	}
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host // keep Host so same-origin checks still hold
			pr.SetXForwarded()
			for _, h := range strippedHeaders {
				pr.Out.Header.Del(h)
			}
			pr.Out.Header.Set(ForwardedHeader, "1")
		},
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			r.log.Warn("cluster: forward failed", "owner", target, "err", err)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"code":1,"message":"Session ID unknown"}`))
		},
	}
	if len(r.proxys) > 256 {
		r.proxys = make(map[string]*httputil.ReverseProxy)
	}
	r.proxys[target] = p
	return p, nil
}

// Forward serves req for a session owned by another node by proxying it
// there. It returns false (request untouched) when sid is this node's, the
// owner is unknown, or req was already forwarded once.
func (r *Router) Forward(w http.ResponseWriter, req *http.Request, sid string) bool {
	if req.Header.Get(ForwardedHeader) != "" {
		return false
	}
	ctx, cancel := context.WithTimeout(req.Context(), time.Second)
	owner, err := r.Owner(ctx, sid)
	cancel()
	if err != nil || owner == "" || owner == r.opts.URL {
		return false
	}
	p, err := r.proxy(owner)
	if err != nil {
		return false
	}
	p.ServeHTTP(w, req)
	return true
}
