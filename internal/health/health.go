// Package health serves liveness (/healthz) and readiness (/readyz) probes.
// Readiness runs the registered dependency checks concurrently under one
// deadline and shares and caches their results briefly, so a storm of
// probes costs the dependencies one round of checks per cache period.
package health

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tradewire/tradewire/internal/logging"
)

// Defaults of Options.
const (
	DefaultTimeout  = 2 * time.Second
	DefaultCacheTTL = time.Second
)

// maxErrorLen bounds an error message in a readiness report.
const maxErrorLen = 300

// Statuses of a Report and of a CheckResult.
const (
	StatusOK          = "ok"
	StatusError       = "error"
	StatusUnavailable = "unavailable"
	StatusDraining    = "draining"
)

// Options configure New.
type Options struct {
	// Timeout bounds one round of checks; a check still running then is
	// reported as failed. Default DefaultTimeout.
	Timeout time.Duration
	// CacheTTL is how long a round's results answer later probes. Default
	// DefaultCacheTTL; negative disables caching (probes arriving during a
	// round still share it).
	CacheTTL time.Duration
	// Now is the clock, for tests. Default time.Now.
	Now func() time.Time
}

// CheckFunc reports a dependency's health; it should return promptly when
// ctx is done.
type CheckFunc func(ctx context.Context) error

// CheckResult is the outcome of one check.
type CheckResult struct {
	Status     string  `json:"status"`          // "ok" or "error"
	Error      string  `json:"error,omitempty"` // why, with URL passwords redacted
	DurationMS float64 `json:"duration_ms"`
}

// Report is the readiness of the process.
type Report struct {
	// Status is "ok", "unavailable" (a check failed) or "draining".
	Status   string                 `json:"status"`
	Draining bool                   `json:"draining"`
	Checks   map[string]CheckResult `json:"checks"`
}

// Ready reports whether the process should receive traffic.
func (r Report) Ready() bool { return r.Status == StatusOK }

// Health is a registry of readiness checks plus the draining flag.
type Health struct {
	timeout  time.Duration
	cacheTTL time.Duration
	now      func() time.Time
	draining atomic.Bool

	mu       sync.Mutex
	checks   map[string]CheckFunc
	gen      uint64 // bumped by Register; results of older rounds are not cached
	cached   map[string]CheckResult
	cachedAt time.Time
	cacheGen uint64
	inflight *round
}

type round struct {
	done    chan struct{}
	results map[string]CheckResult
}

// New returns an empty registry: ready until a check is registered.
func New(opts Options) *Health {
	h := &Health{timeout: opts.Timeout, cacheTTL: opts.CacheTTL, now: opts.Now, checks: map[string]CheckFunc{}}
	if h.timeout <= 0 {
		h.timeout = DefaultTimeout
	}
	if h.cacheTTL == 0 {
		h.cacheTTL = DefaultCacheTTL
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h
}

// Register adds a readiness check under name, replacing any check of that
// name. It panics on an empty name or a nil check.
func (h *Health) Register(name string, check func(ctx context.Context) error) {
	if name == "" || check == nil {
		panic("health: Register needs a name and a check")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks[name] = check
	h.gen++
	h.cached = nil
}

// SetDraining marks the process as shutting down (readiness fails, liveness
// does not) or back in service.
func (h *Health) SetDraining(draining bool) { h.draining.Store(draining) }

// Draining reports the flag set by SetDraining.
func (h *Health) Draining() bool { return h.draining.Load() }

// Check returns the current readiness: cached results if fresh, else the
// results of the round in progress, else of a new round. ctx only bounds the
// wait; the round itself runs under Options.Timeout so that one impatient
// probe does not fail the others.
func (h *Health) Check(ctx context.Context) Report {
	results := h.results(ctx)
	r := Report{Status: StatusOK, Draining: h.Draining(), Checks: make(map[string]CheckResult, len(results))}
	for n, c := range results { // a copy: results may be shared with other probes
		r.Checks[n] = c
		if c.Status != StatusOK {
			r.Status = StatusUnavailable
		}
	}
	if r.Draining {
		r.Status = StatusDraining
	}
	return r
}

func (h *Health) results(ctx context.Context) map[string]CheckResult {
	h.mu.Lock()
	if h.cached != nil && h.cacheGen == h.gen && h.now().Sub(h.cachedAt) < h.cacheTTL {
		res := h.cached
		h.mu.Unlock()
		return res
	}
	rd := h.inflight
	if rd == nil {
		rd = &round{done: make(chan struct{})}
		h.inflight = rd
		checks := make(map[string]CheckFunc, len(h.checks))
		for n, c := range h.checks {
			checks[n] = c
		}
		gen := h.gen
		go h.run(ctx, rd, checks, gen)
	}
	h.mu.Unlock()

	select {
	case <-rd.done:
		return rd.results
	case <-ctx.Done():
		res := map[string]CheckResult{}
		h.mu.Lock()
		for n := range h.checks {
			res[n] = CheckResult{Status: StatusError, Error: "probe gave up before the checks finished: " + ctx.Err().Error()}
		}
		h.mu.Unlock()
		return res
	}
}

// run executes one round of checks concurrently and publishes the results.
func (h *Health) run(parent context.Context, rd *round, checks map[string]CheckFunc, gen uint64) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), h.timeout)
	defer cancel()

	type outcome struct {
		name string
		res  CheckResult
	}
	out := make(chan outcome, len(checks)) // buffered: a late check never blocks
	start := time.Now()
	for name, check := range checks {
		go func() {
			t0 := time.Now()
			err := safeCall(ctx, check)
			res := CheckResult{Status: StatusOK, DurationMS: ms(time.Since(t0))}
			if err != nil {
				res.Status, res.Error = StatusError, cleanError(err)
			}
			out <- outcome{name, res}
		}()
	}
	results := make(map[string]CheckResult, len(checks))
	for len(results) < len(checks) {
		select {
		case o := <-out:
			results[o.name] = o.res
		case <-ctx.Done():
			for name := range checks {
				if _, ok := results[name]; !ok {
					results[name] = CheckResult{Status: StatusError, Error: fmt.Sprintf("timed out after %s", h.timeout), DurationMS: ms(time.Since(start))}
				}
			}
		}
	}

	h.mu.Lock()
	rd.results = results
	if h.inflight == rd {
		h.inflight = nil
	}
	if gen == h.gen {
		h.cached, h.cachedAt, h.cacheGen = results, h.now(), gen
	}
	h.mu.Unlock()
	close(rd.done)
}

func safeCall(ctx context.Context, check CheckFunc) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("check panicked: %v", p)
		}
	}()
	return check(ctx)
}

func cleanError(err error) string {
	s := logging.RedactURLs(err.Error())
	if len(s) > maxErrorLen {
		s = s[:maxErrorLen] + "…"
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Names returns the registered check names, sorted.
func (h *Health) Names() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	names := make([]string, 0, len(h.checks))
	for n := range h.checks {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// LiveHandler answers 200 {"status":"ok"} while the process can serve HTTP.
func (h *Health) LiveHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !getOrHead(w, r) {
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": StatusOK})
	})
}

// ReadyHandler answers 200 with the Report when ready, else 503 with it.
func (h *Health) ReadyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !getOrHead(w, r) {
			return
		}
		rep := h.Check(r.Context())
		code := http.StatusOK
		if !rep.Ready() {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, rep)
	})
}

// Mount registers GET /healthz and GET /readyz on mux.
func (h *Health) Mount(mux *http.ServeMux) {
	mux.Handle("GET /healthz", h.LiveHandler())
	mux.Handle("GET /readyz", h.ReadyHandler())
}

func getOrHead(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	body, _ := json.Marshal(v) // maps of strings and numbers always marshal
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
}
