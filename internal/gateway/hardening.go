package gateway

import (
	"bufio"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tradewire/tradewire/engineio"
	"github.com/tradewire/tradewire/ratelimit"
)

// maxHeaderBytes bounds a request's header block. net/http allows 4 KiB
// beyond MaxHeaderBytes, so the effective bound is 16 KiB, Node's default;
// a larger header block is answered 431.
const maxHeaderBytes = 16<<10 - 4096

// handshakeGuard answers handshakes HTTP 429 once an IP has been refused by
// the connection limit as many times as the limit allows in the current
// minute (twice the limit in all), so a flood creates no session at all.
// It is per node and in memory.
type handshakeGuard struct {
	limit int
	now   func() time.Time

	mu      sync.Mutex
	window  time.Time
	refused map[string]int
}

// handshakeGuardSize bounds the IPs tracked in one window.
const handshakeGuardSize = 100000

func newHandshakeGuard(limit int) *handshakeGuard {
	return &handshakeGuard{limit: limit, now: time.Now, refused: make(map[string]int)}
}

func (h *handshakeGuard) roll(now time.Time) {
	if now.Sub(h.window) >= time.Minute {
		h.window = now.Truncate(time.Minute)
		clear(h.refused)
	}
}

// refuse records a handshake of ip refused by the connection limit.
func (h *handshakeGuard) refuse(ip string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.roll(h.now())
	if len(h.refused) >= handshakeGuardSize {
		clear(h.refused)
	}
	h.refused[ip]++
}

// retryAfter is how long ip must wait before a handshake is accepted again,
// or 0 when it may try now.
func (h *handshakeGuard) retryAfter(ip string) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	h.roll(now)
	if h.refused[ip] < h.limit {
		return 0
	}
	return h.window.Add(time.Minute).Sub(now)
}

// allowHandshake is engineio's AllowRequest: the 429 of handshakeGuard.
func (g *Gateway) allowHandshake(r *http.Request) error {
	ip, err := g.ips.FromRequest(r)
	if err != nil {
		return nil
	}
	wait := g.hsGuard.retryAfter(ip.String())
	if wait <= 0 {
		return nil
	}
	secs := int((wait + time.Second - 1) / time.Second)
	g.metrics.Handshake(ratelimit.CodeRateLimit)
	return &engineio.RequestError{
		Status: http.StatusTooManyRequests, Code: engineio.CodeForbidden, Message: "too many connections",
		Header: http.Header{"Retry-After": {strconv.Itoa(secs)}},
	}
}

// hardenHTTP wraps the public handler: request bodies must arrive within
// the read timeout (long-polling GETs and websockets are not cut), and JSON
// responses are never sniffed or cached.
func (g *Gateway) hardenHTTP(next http.Handler) http.Handler {
	readTimeout := g.cfg.HTTPReadTimeout
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if readTimeout > 0 && r.Body != nil && r.Body != http.NoBody && (r.ContentLength != 0) {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(readTimeout))
		}
		next.ServeHTTP(jsonHeaders{w}, r)
	})
}

// jsonHeaders adds nosniff and no-store to every JSON response.
type jsonHeaders struct{ http.ResponseWriter }

func (j jsonHeaders) WriteHeader(code int) {
	j.mark()
	j.ResponseWriter.WriteHeader(code)
}

// Write marks too: a handler may write without calling WriteHeader.
func (j jsonHeaders) Write(b []byte) (int, error) {
	j.mark()
	return j.ResponseWriter.Write(b)
}

func (j jsonHeaders) mark() {
	h := j.Header()
	if strings.HasPrefix(h.Get("Content-Type"), "application/json") && h.Get("X-Content-Type-Options") == "" {
		h.Set("X-Content-Type-Options", "nosniff")
		if h.Get("Cache-Control") == "" {
			h.Set("Cache-Control", "no-store")
		}
	}
}

// Unwrap lets http.ResponseController reach the connection (deadlines,
// hijacking for websockets, flushing for long-polling).
func (j jsonHeaders) Unwrap() http.ResponseWriter { return j.ResponseWriter }

// Hijack hands the connection to the websocket layer.
func (j jsonHeaders) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(j.ResponseWriter).Hijack()
}

// Flush sends buffered data (long-polling).
func (j jsonHeaders) Flush() { _ = http.NewResponseController(j.ResponseWriter).Flush() }

// acceptErrorLog is the http.Server error log: net/http's own messages
// (accept errors at the file-descriptor limit, TLS handshake noise) go to
// slog at most once per second, with the number of lines left out.
func acceptErrorLog(l *slog.Logger) *log.Logger {
	return log.New(&throttledLog{log: l, every: time.Second, now: time.Now}, "", 0)
}

type throttledLog struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (t *throttledLog) Write(p []byte) (int, error) {
	t.mu.Lock()
	now := t.now()
	if now.Sub(t.last) < t.every {
		t.suppressed++
		t.mu.Unlock()
		return len(p), nil
	}
	n := t.suppressed
	t.last, t.suppressed = now, 0
	t.mu.Unlock()
	t.log.Warn("http server", "msg", strings.TrimSpace(string(p)), "suppressed", n)
	return len(p), nil
}
