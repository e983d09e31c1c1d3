package health

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tradewire/tradewire/internal/testutil/redistest"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type probe struct {
	code int
	rep  Report
	raw  string
}

func get(t *testing.T, srv *httptest.Server, path string) probe {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	var rep Report
	if err := json.NewDecoder(io.TeeReader(resp.Body, &b)).Decode(&rep); err != nil {
		t.Fatalf("%s: body is not JSON: %v", path, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: content type %q", path, ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("%s: cache control %q", path, cc)
	}
	return probe{resp.StatusCode, rep, b.String()}
}

func serve(t *testing.T, h *Health) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	h.Mount(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestLiveness(t *testing.T) {
	h := New(Options{})
	h.Register("broken", func(context.Context) error { return errors.New("down") })
	h.SetDraining(true)
	srv := serve(t, h)
	p := get(t, srv, "/healthz")
	if p.code != http.StatusOK || strings.TrimSpace(p.raw) != `{"status":"ok"}` {
		t.Fatalf("healthz = %d %s", p.code, p.raw)
	}
}

func TestReadyWithoutChecks(t *testing.T) {
	p := get(t, serve(t, New(Options{})), "/readyz")
	if p.code != http.StatusOK || p.rep.Status != StatusOK || p.rep.Draining || len(p.rep.Checks) != 0 {
		t.Fatalf("readyz = %d %s", p.code, p.raw)
	}
	if !strings.Contains(p.raw, `"checks":{}`) {
		t.Fatalf("checks should be an empty object: %s", p.raw)
	}
}

func TestReadyAllPass(t *testing.T) {
	h := New(Options{})
	h.Register("redis", func(context.Context) error { return nil })
	h.Register("mongo", func(context.Context) error { return nil })
	p := get(t, serve(t, h), "/readyz")
	if p.code != http.StatusOK || p.rep.Status != StatusOK || !p.rep.Ready() {
		t.Fatalf("readyz = %d %s", p.code, p.raw)
	}
	for _, n := range []string{"redis", "mongo"} {
		if c := p.rep.Checks[n]; c.Status != StatusOK || c.Error != "" {
			t.Errorf("%s = %+v", n, c)
		}
	}
	if got := h.Names(); strings.Join(got, ",") != "mongo,redis" {
		t.Errorf("Names = %v", got)
	}
}

func TestReadyOneFails(t *testing.T) {
	h := New(Options{})
	h.Register("redis", func(context.Context) error { return nil })
	h.Register("mongo", func(context.Context) error {
		return errors.New("server selection error: mongodb://app:s3cret@mongo:27017 unreachable")
	})
	p := get(t, serve(t, h), "/readyz")
	if p.code != http.StatusServiceUnavailable || p.rep.Status != StatusUnavailable || p.rep.Ready() {
		t.Fatalf("readyz = %d %s", p.code, p.raw)
	}
	if p.rep.Checks["redis"].Status != StatusOK {
		t.Errorf("redis = %+v", p.rep.Checks["redis"])
	}
	m := p.rep.Checks["mongo"]
	if m.Status != StatusError || !strings.Contains(m.Error, "unreachable") {
		t.Errorf("mongo = %+v", m)
	}
	if strings.Contains(p.raw, "s3cret") {
		t.Errorf("readiness body leaks a password: %s", p.raw)
	}
}

func TestDraining(t *testing.T) {
	h := New(Options{CacheTTL: -1})
	h.Register("redis", func(context.Context) error { return nil })
	srv := serve(t, h)
	h.SetDraining(true)
	if !h.Draining() {
		t.Fatal("Draining() false")
	}
	p := get(t, srv, "/readyz")
	if p.code != http.StatusServiceUnavailable || p.rep.Status != StatusDraining || !p.rep.Draining || p.rep.Checks["redis"].Status != StatusOK {
		t.Fatalf("draining readyz = %d %s", p.code, p.raw)
	}
	h.SetDraining(false)
	if p := get(t, srv, "/readyz"); p.code != http.StatusOK || p.rep.Draining {
		t.Fatalf("after draining readyz = %d %s", p.code, p.raw)
	}
}

func TestTimeoutOfACheckThatIgnoresContext(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	h := New(Options{Timeout: 50 * time.Millisecond})
	h.Register("stuck", func(context.Context) error { <-release; return nil })
	h.Register("polite", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	h.Register("fast", func(context.Context) error { return nil })
	rep := h.Check(context.Background())
	if rep.Status != StatusUnavailable {
		t.Fatalf("status %q", rep.Status)
	}
	if c := rep.Checks["stuck"]; c.Status != StatusError || c.Error != "timed out after 50ms" {
		t.Errorf("stuck = %+v", c)
	}
	if c := rep.Checks["polite"]; c.Status != StatusError || !(strings.Contains(c.Error, "deadline exceeded") || strings.Contains(c.Error, "timed out")) {
		t.Errorf("polite = %+v", c)
	}
	if c := rep.Checks["fast"]; c.Status != StatusOK {
		t.Errorf("fast = %+v", c)
	}
}

func TestChecksRunConcurrently(t *testing.T) {
	// Each check waits for the other to start: only concurrent runs pass.
	var wg sync.WaitGroup
	wg.Add(2)
	both := func(ctx context.Context) error {
		wg.Done()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return errors.New("the other check never started")
		}
	}
	h := New(Options{Timeout: 5 * time.Second})
	h.Register("a", both)
	h.Register("b", both)
	if rep := h.Check(context.Background()); !rep.Ready() {
		t.Fatalf("checks did not run concurrently: %+v", rep)
	}
}

func TestPanickingCheck(t *testing.T) {
	h := New(Options{})
	h.Register("bad", func(context.Context) error { panic("boom") })
	rep := h.Check(context.Background())
	if c := rep.Checks["bad"]; c.Status != StatusError || c.Error != "check panicked: boom" {
		t.Fatalf("bad = %+v", c)
	}
}

func TestLongErrorIsTruncated(t *testing.T) {
	h := New(Options{})
	h.Register("chatty", func(context.Context) error { return errors.New(strings.Repeat("x", 1000)) })
	if c := h.Check(context.Background()).Checks["chatty"]; len(c.Error) > maxErrorLen+len("…") {
		t.Fatalf("error of %d bytes", len(c.Error))
	}
}

func TestProbeStormSharesOneRoundAndCaches(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	h := New(Options{Now: clock.Now})
	var calls atomic.Int32
	gate := make(chan struct{})
	h.Register("redis", func(context.Context) error {
		calls.Add(1)
		<-gate
		return nil
	})
	srv := serve(t, h)

	var wg sync.WaitGroup
	codes := make(chan int, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := srv.Client().Get(srv.URL + "/readyz")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	// Let the first round start, then release it once the probes are waiting.
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(gate)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusOK {
			t.Fatalf("probe got %d", c)
		}
	}
	// Probes that arrived while the round ran shared it; later ones within
	// the cache period reuse it.
	afterStorm := calls.Load()
	for i := 0; i < 10; i++ {
		get(t, srv, "/readyz")
	}
	if calls.Load() != afterStorm {
		t.Fatalf("cached probes ran checks: %d -> %d", afterStorm, calls.Load())
	}
	if afterStorm != 1 {
		t.Fatalf("a storm of 50 probes ran the check %d times, want 1", afterStorm)
	}
	clock.Advance(DefaultCacheTTL)
	get(t, srv, "/readyz")
	if calls.Load() != afterStorm+1 {
		t.Fatalf("expired cache not refreshed: %d calls", calls.Load())
	}
}

func TestRegisterInvalidatesCache(t *testing.T) {
	h := New(Options{CacheTTL: time.Hour})
	h.Register("a", func(context.Context) error { return nil })
	if !h.Check(context.Background()).Ready() {
		t.Fatal("not ready")
	}
	h.Register("b", func(context.Context) error { return errors.New("down") })
	rep := h.Check(context.Background())
	if rep.Ready() || rep.Checks["b"].Status != StatusError {
		t.Fatalf("new check not run: %+v", rep)
	}
	// Replacing a check by name takes effect too.
	h.Register("b", func(context.Context) error { return nil })
	if rep := h.Check(context.Background()); !rep.Ready() || len(rep.Checks) != 2 {
		t.Fatalf("replaced check not run: %+v", rep)
	}
}

func TestReportIsACopy(t *testing.T) {
	h := New(Options{CacheTTL: time.Hour})
	h.Register("a", func(context.Context) error { return nil })
	rep := h.Check(context.Background())
	rep.Checks["a"] = CheckResult{Status: StatusError}
	if !h.Check(context.Background()).Ready() {
		t.Fatal("mutating a report changed the cache")
	}
}

func TestImpatientProbe(t *testing.T) {
	release := make(chan struct{})
	h := New(Options{Timeout: 5 * time.Second})
	h.Register("slow", func(ctx context.Context) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep := h.Check(ctx)
	if rep.Ready() || !strings.Contains(rep.Checks["slow"].Error, "probe gave up") {
		t.Fatalf("impatient probe: %+v", rep)
	}
	// The round it started was not cancelled with it: a patient probe gets
	// its result.
	close(release)
	if rep := h.Check(context.Background()); !rep.Ready() {
		t.Fatalf("round was cancelled by the impatient probe: %+v", rep)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	h := New(Options{})
	for _, hd := range []http.Handler{h.LiveHandler(), h.ReadyHandler()} {
		rec := httptest.NewRecorder()
		hd.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("POST = %d %v", rec.Code, rec.Header())
		}
		rec = httptest.NewRecorder()
		hd.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/", nil))
		if rec.Code != http.StatusOK {
			t.Errorf("HEAD = %d", rec.Code)
		}
	}
}

func TestRegisterRejectsBadInput(t *testing.T) {
	h := New(Options{})
	for _, f := range []func(){
		func() { h.Register("", func(context.Context) error { return nil }) },
		func() { h.Register("x", nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		}()
	}
}

// TestRealRedis drives readiness with a check against a real redis-server:
// ready, then not ready when it dies, then ready again after a restart.
func TestRealRedis(t *testing.T) {
	srv := redistest.Start(t)
	h := New(Options{CacheTTL: -1, Timeout: 3 * time.Second})
	h.Register("redis", func(context.Context) error { return redistest.Ping(srv.Addr) })
	web := serve(t, h)

	if p := get(t, web, "/readyz"); p.code != http.StatusOK {
		t.Fatalf("with redis up: %d %s", p.code, p.raw)
	}
	srv.Kill()
	p := get(t, web, "/readyz")
	if p.code != http.StatusServiceUnavailable || p.rep.Checks["redis"].Error == "" {
		t.Fatalf("with redis down: %d %s", p.code, p.raw)
	}
	srv.Restart()
	if p := get(t, web, "/readyz"); p.code != http.StatusOK {
		t.Fatalf("after restart: %d %s", p.code, p.raw)
	}
}
