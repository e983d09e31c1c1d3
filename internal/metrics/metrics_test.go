package metrics

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches /metrics from a real HTTP server and parses the text
// exposition.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("content type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse exposition: %v", err)
	}
	return fams
}

// sample returns the value of the series of family name whose labels are
// exactly labels ("k=v" pairs), failing the test if there is none.
func sample(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	v, ok := lookup(fams, name, labels...)
	if !ok {
		t.Fatalf("no series %s%v", name, labels)
	}
	return v
}

func lookup(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	fam, ok := fams[name]
	if !ok {
		return 0, false
	}
	want := strings.Join(labels, ",")
	for _, m := range fam.GetMetric() {
		var got []string
		for _, lp := range m.GetLabel() {
			got = append(got, lp.GetName()+"="+lp.GetValue())
		}
		sort.Strings(got)
		if strings.Join(got, ",") != want {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func histogram(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) *dto.Histogram {
	t.Helper()
	want := strings.Join(labels, ",")
	for _, m := range fams[name].GetMetric() {
		var got []string
		for _, lp := range m.GetLabel() {
			got = append(got, lp.GetName()+"="+lp.GetValue())
		}
		if strings.Join(got, ",") == want {
			return m.GetHistogram()
		}
	}
	t.Fatalf("no histogram %s%v", name, labels)
	return nil
}

func TestSeriesStartAtZeroAndRuntimeCollectorsPresent(t *testing.T) {
	m := New(Options{EventNames: []string{"subscribe", "trade:update"}})
	fams := scrape(t, m)
	for _, s := range []struct {
		name   string
		labels []string
	}{
		{"tradewire_connections", []string{"transport=polling"}},
		{"tradewire_connections", []string{"transport=websocket"}},
		{"tradewire_handshakes_total", nil},
		{"tradewire_handshake_failures_total", []string{"code=unauthorized"}},
		{"tradewire_handshake_failures_total", []string{"code=other"}},
		{"tradewire_rooms", nil},
		{"tradewire_events_received_total", []string{"event=subscribe"}},
		{"tradewire_events_sent_total", []string{"event=trade:update"}},
		{"tradewire_events_sent_total", []string{"event=other"}},
		{"tradewire_broadcast_recipients", nil},
		{"tradewire_broadcast_duration_seconds", nil},
		{"tradewire_send_queue_drops_total", nil},
		{"tradewire_slow_consumer_disconnects_total", nil},
		{"tradewire_rate_limit_decisions_total", []string{"kind=subscription", "result=denied"}},
		{"tradewire_rate_limiter_redis", nil},
		{"tradewire_redis_adapter_publishes_total", nil},
		{"tradewire_redis_adapter_receives_total", nil},
		{"tradewire_redis_adapter_errors_total", []string{"op=publish"}},
		{"tradewire_session_lookup_duration_seconds", []string{"store=mongo"}},
		{"tradewire_session_lookup_errors_total", []string{"code=timeout", "store=redis"}},
		{"tradewire_recoveries_total", []string{"outcome=recovered"}},
	} {
		if v := sample(t, fams, s.name, s.labels...); v != 0 {
			t.Errorf("%s%v starts at %v", s.name, s.labels, v)
		}
	}
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total", "promhttp_metric_handler_errors_total"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("missing %s", name)
		}
	}
}

func TestDriveEveryMetric(t *testing.T) {
	m := New(Options{EventNames: []string{"subscribe", "order:place"}, HandshakeCodes: []string{"maintenance"}})

	m.ConnectionOpened("polling")
	m.ConnectionOpened("polling")
	m.ConnectionOpened("websocket")
	m.ConnectionUpgraded("polling", "websocket")
	m.ConnectionClosed("websocket")
	m.ConnectionOpened("webtransport") // not a known transport

	m.Handshake("ok")
	m.Handshake("")
	m.Handshake("OK")
	m.Handshake("UNAUTHORIZED")
	m.Handshake("session-expired")
	m.Handshake("maintenance")
	m.Handshake("user 42 not found") // free text must not become a label

	m.RoomCreated()
	m.RoomCreated()
	m.RoomDeleted()

	m.EventIn("subscribe")
	m.EventIn("subscribe")
	m.EventIn("Subscribe") // event names are case-sensitive
	m.EventIn("portfolio:user-12345")
	m.EventOut("order:place")
	m.EventsOut("order:place", 250)
	m.EventsOut("order:place", 0)
	m.EventsOut("room:abc", 3)

	m.Broadcast(0, 0)
	m.Broadcast(3, 200*time.Microsecond)
	m.Broadcast(20000, 30*time.Millisecond)

	m.SendQueueDrop()
	m.SendQueueDrop()
	m.SlowConsumerDisconnect()

	m.RateLimit("connection", true)
	m.RateLimit("event", false)
	m.RateLimit("event", false)
	m.RateLimit("subscription", true)
	m.RateLimit("login", false)

	m.SetLimiterRedis(true)

	m.RedisPublish()
	m.RedisPublish()
	m.RedisReceive()
	m.RedisError("publish")
	m.RedisError("XADD")

	m.SessionLookup("mongo", 3*time.Millisecond)
	m.SessionLookup("redis", 700*time.Microsecond)
	m.SessionLookup("postgres", time.Millisecond)
	m.SessionLookupError("mongo", "timeout")
	m.SessionLookupError("redis", "sess:abcdef")

	m.Recovery("recovered")
	m.Recovery("offset_lost")
	m.Recovery("because")

	fams := scrape(t, m)
	want := []struct {
		name   string
		labels []string
		value  float64
	}{
		{"tradewire_connections", []string{"transport=polling"}, 1},
		{"tradewire_connections", []string{"transport=websocket"}, 1},
		{"tradewire_connections", []string{"transport=other"}, 1},
		{"tradewire_handshakes_total", nil, 7},
		{"tradewire_handshake_failures_total", []string{"code=unauthorized"}, 1},
		{"tradewire_handshake_failures_total", []string{"code=session_expired"}, 1},
		{"tradewire_handshake_failures_total", []string{"code=maintenance"}, 1},
		{"tradewire_handshake_failures_total", []string{"code=other"}, 1},
		{"tradewire_rooms", nil, 1},
		{"tradewire_events_received_total", []string{"event=subscribe"}, 2},
		{"tradewire_events_received_total", []string{"event=other"}, 2},
		{"tradewire_events_sent_total", []string{"event=order:place"}, 251},
		{"tradewire_events_sent_total", []string{"event=other"}, 3},
		{"tradewire_broadcast_recipients", nil, 3},
		{"tradewire_broadcast_duration_seconds", nil, 3},
		{"tradewire_send_queue_drops_total", nil, 2},
		{"tradewire_slow_consumer_disconnects_total", nil, 1},
		{"tradewire_rate_limit_decisions_total", []string{"kind=connection", "result=allowed"}, 1},
		{"tradewire_rate_limit_decisions_total", []string{"kind=event", "result=denied"}, 2},
		{"tradewire_rate_limit_decisions_total", []string{"kind=subscription", "result=allowed"}, 1},
		{"tradewire_rate_limit_decisions_total", []string{"kind=other", "result=denied"}, 1},
		{"tradewire_rate_limiter_redis", nil, 1},
		{"tradewire_redis_adapter_publishes_total", nil, 2},
		{"tradewire_redis_adapter_receives_total", nil, 1},
		{"tradewire_redis_adapter_errors_total", []string{"op=publish"}, 1},
		{"tradewire_redis_adapter_errors_total", []string{"op=other"}, 1},
		{"tradewire_session_lookup_duration_seconds", []string{"store=mongo"}, 1},
		{"tradewire_session_lookup_duration_seconds", []string{"store=redis"}, 1},
		{"tradewire_session_lookup_duration_seconds", []string{"store=other"}, 1},
		{"tradewire_session_lookup_errors_total", []string{"code=timeout", "store=mongo"}, 1},
		{"tradewire_session_lookup_errors_total", []string{"code=other", "store=redis"}, 1},
		{"tradewire_recoveries_total", []string{"outcome=recovered"}, 1},
		{"tradewire_recoveries_total", []string{"outcome=offset_lost"}, 1},
		{"tradewire_recoveries_total", []string{"outcome=other"}, 1},
	}
	for _, w := range want {
		if got := sample(t, fams, w.name, w.labels...); got != w.value {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, got, w.value)
		}
	}

	// Free text never became a label value.
	for _, leaked := range []string{"Subscribe", "portfolio:user-12345", "room:abc", "user 42 not found", "sess:abcdef", "webtransport", "login", "XADD", "postgres", "because"} {
		for name, fam := range fams {
			for _, s := range fam.GetMetric() {
				for _, lp := range s.GetLabel() {
					if lp.GetValue() == leaked {
						t.Errorf("%q became a label value of %s", leaked, name)
					}
				}
			}
		}
	}

	// Histogram contents: fan-out buckets and latency sum.
	fan := histogram(t, fams, "tradewire_broadcast_recipients")
	if fan.GetSampleSum() != 20003 {
		t.Errorf("fan-out sum %v", fan.GetSampleSum())
	}
	for _, b := range fan.GetBucket() {
		if b.GetUpperBound() == 0 && b.GetCumulativeCount() != 1 || b.GetUpperBound() == 5 && b.GetCumulativeCount() != 2 || b.GetUpperBound() == 25000 && b.GetCumulativeCount() != 3 {
			t.Errorf("fan-out bucket le=%v count %d", b.GetUpperBound(), b.GetCumulativeCount())
		}
	}
	lat := histogram(t, fams, "tradewire_broadcast_duration_seconds")
	if s := lat.GetSampleSum(); math.Abs(s-0.0302) > 1e-9 {
		t.Errorf("latency sum %v", s)
	}
	look := histogram(t, fams, "tradewire_session_lookup_duration_seconds", "store=mongo")
	if look.GetSampleSum() != 0.003 {
		t.Errorf("lookup sum %v", look.GetSampleSum())
	}

	m.SetLimiterRedis(false)
	m.SetRooms(42)
	fams = scrape(t, m)
	if v := sample(t, fams, "tradewire_rate_limiter_redis"); v != 0 {
		t.Errorf("limiter mode %v after fallback", v)
	}
	if v := sample(t, fams, "tradewire_rooms"); v != 42 {
		t.Errorf("rooms %v", v)
	}
}

func TestUnknownEventNamesCollapseToOther(t *testing.T) {
	m := New(Options{EventNames: []string{"trade"}})
	for i := 0; i < 1000; i++ {
		m.EventIn(fmt.Sprintf("room:%d", i))
	}
	m.EventIn("trade")
	fams := scrape(t, m)
	if n := len(fams["tradewire_events_received_total"].GetMetric()); n != 2 {
		t.Fatalf("%d event series, want 2 (trade, other)", n)
	}
	if v := sample(t, fams, "tradewire_events_received_total", "event=other"); v != 1000 {
		t.Fatalf("other = %v", v)
	}
	if v := sample(t, fams, "tradewire_events_received_total", "event=trade"); v != 1 {
		t.Fatalf("trade = %v", v)
	}
	// "other" and "" in the allow-list do not create extra series.
	m = New(Options{EventNames: []string{"other", ""}})
	if n := len(scrape(t, m)["tradewire_events_received_total"].GetMetric()); n != 1 {
		t.Fatalf("%d series", n)
	}
}

func TestNilMetricsIsSafe(t *testing.T) {
	var m *Metrics
	m.ConnectionOpened("polling")
	m.ConnectionClosed("polling")
	m.ConnectionUpgraded("polling", "websocket")
	m.Handshake("ok")
	m.SetRooms(1)
	m.RoomCreated()
	m.RoomDeleted()
	m.EventIn("x")
	m.EventOut("x")
	m.EventsOut("x", 2)
	m.Broadcast(1, time.Millisecond)
	m.SendQueueDrop()
	m.SlowConsumerDisconnect()
	m.RateLimit("event", true)
	m.SetLimiterRedis(true)
	m.RedisPublish()
	m.RedisReceive()
	m.RedisError("publish")
	m.SessionLookup("mongo", time.Millisecond)
	m.SessionLookupError("mongo", "timeout")
	m.Recovery("recovered")
	if m.Registry() != nil {
		t.Fatal("nil Metrics has a registry")
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("nil handler status %d", rec.Code)
	}
}

func TestLint(t *testing.T) {
	m := New(Options{EventNames: []string{"subscribe"}})
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var ours []*dto.MetricFamily
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), namespace+"_") {
			ours = append(ours, mf)
		}
	}
	problems, err := promlint.NewWithMetricFamilies(ours).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestRegistryAcceptsMoreCollectors(t *testing.T) {
	m := New(Options{})
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "tradewire_test_extra_total", Help: "x"})
	m.Registry().MustRegister(c)
	c.Add(3)
	if v := sample(t, scrape(t, m), "tradewire_test_extra_total"); v != 3 {
		t.Fatalf("extra = %v", v)
	}
}

func TestConcurrentUse(t *testing.T) {
	m := New(Options{EventNames: []string{"tick"}})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				m.ConnectionOpened("websocket")
				m.EventIn("tick")
				m.EventsOut("tick", 2)
				m.Broadcast(2, time.Microsecond)
				m.ConnectionClosed("websocket")
			}
		}()
	}
	// Scrape while writers run.
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	for i := 0; i < 5; i++ {
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	wg.Wait()
	fams := scrape(t, m)
	if v := sample(t, fams, "tradewire_events_received_total", "event=tick"); v != 4000 {
		t.Errorf("tick in = %v", v)
	}
	if v := sample(t, fams, "tradewire_events_sent_total", "event=tick"); v != 8000 {
		t.Errorf("tick out = %v", v)
	}
	if v := sample(t, fams, "tradewire_connections", "transport=websocket"); v != 0 {
		t.Errorf("connections = %v", v)
	}
}

func BenchmarkEventOut(b *testing.B) {
	m := New(Options{EventNames: []string{"trade:update", "portfolio:update", "price"}})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.EventOut("price")
		}
	})
}
