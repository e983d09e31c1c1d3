package loadgen

import (
	"context"
	"expvar"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// FetchDebug against a real client_golang exposition with the Go and
// process collectors (what tradewire serves on /metrics).
func TestFetchDebugPrometheus(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	conns := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tradewire_connections", Help: "h"}, []string{"transport"})
	conns.WithLabelValues("websocket").Set(7)
	reg.MustRegister(conns)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	m, err := FetchDebug(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if m["go_goroutines"] < 1 || m["go_memstats_heap_inuse_bytes"] == 0 || m["process_resident_memory_bytes"] == 0 ||
		m[`tradewire_connections{transport="websocket"}`] != 7 {
		t.Fatalf("%v", m)
	}
	if _, ok := m["go_gc_duration_seconds_count"]; ok {
		t.Fatal("uninteresting series kept")
	}
	out := map[string]float64{}
	if err := parsePrometheusText([]byte("# only comments\n"), out); err == nil {
		t.Fatal("empty exposition accepted")
	}
	if err := parsePrometheusText([]byte("go_goroutines abc\n"), out); err == nil {
		t.Fatal("bad value accepted")
	}
	if err := parsePrometheusText([]byte("garbage\n"), out); err == nil {
		t.Fatal("bad line accepted")
	}
	if err := parsePrometheusText([]byte("go_goroutines 12 1700000000000\n"), out); err != nil || out["go_goroutines"] != 12 {
		t.Fatal(err, out)
	}
}

func TestParseStatCPU(t *testing.T) {
	// a real /proc/<pid>/stat line; the comm field may hold spaces and ')'
	line := []byte("13609 (node (x) y) S 1 13609 1 0 -1 4194560 13911 0 0 0 371 118 0 0 20 0 11 0 94385 1156874240 16454 18446744073709551615 1 1 0 0 0 0 0 16781312 134235650 0 0 0 17 1 0 0 0 0 0")
	n, err := ParseStatCPU(line)
	if err != nil || n != 489 {
		t.Fatal(n, err)
	}
	for _, bad := range []string{"1 noparen S", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 a b"} {
		if _, err := ParseStatCPU([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseStatus(t *testing.T) {
	var s ProcStats
	ParseStatus([]byte("Name:\tnode\nVmHWM:\t   70000 kB\nVmRSS:\t   65940 kB\nThreads:\t11\nSigQ:\t0/1\nBad:\n"), &s)
	if s.RSSKB != 65940 || s.HWMKB != 70000 || s.Threads != 11 {
		t.Fatalf("%+v", s)
	}
}

func TestReadProcStatsSelf(t *testing.T) {
	s, err := ReadProcStats(os.Getpid())
	if err != nil || s.RSSKB == 0 || s.Threads == 0 || s.HWMKB < s.RSSKB {
		t.Fatalf("%+v %v", s, err)
	}
	sum, err := SumProcStats([]int{os.Getpid(), os.Getpid()})
	if err != nil || sum.Threads < 2*s.Threads-4 {
		t.Fatalf("%+v %v", sum, err)
	}
	if _, err := ReadProcStats(1 << 30); err == nil {
		t.Fatal("missing pid")
	}
	if _, err := SumProcStats([]int{1 << 30}); err == nil {
		t.Fatal("missing pid")
	}
}

func TestMachineCPU(t *testing.T) {
	busy, total, err := ParseMachineCPU([]byte("cpu  61088 0 16142 78514 997 0 151 134 5 5\ncpu0 1 2 3 4\n"))
	if err != nil || busy != 61088+16142+151+134 || total != 61088+16142+78514+997+151+134 {
		t.Fatal(busy, total, err)
	}
	if _, _, err := ParseMachineCPU([]byte("intr 1 2 3 4 5")); err == nil {
		t.Fatal("bad line accepted")
	}
	if _, _, err := ParseMachineCPU([]byte("cpu 1 2 x 4 5")); err == nil {
		t.Fatal("bad number accepted")
	}
	if b, tot, err := ReadMachineCPU(); err != nil || tot == 0 || b > tot {
		t.Fatal(b, tot, err)
	}
	if LoadAvg() == "" {
		t.Fatal("loadavg")
	}
}

// FetchDebug against the standard library's real expvar handler.
func TestFetchDebugExpvar(t *testing.T) {
	expvar.NewInt("goroutines").Set(42)
	srv := httptest.NewServer(expvar.Handler())
	defer srv.Close()
	m, err := FetchDebug(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if m["goroutines"] != 42 || m["memstats.HeapAlloc"] == 0 || m["memstats.Sys"] == 0 {
		t.Fatalf("%v", m)
	}
	if _, ok := m["cmdline"]; ok {
		t.Fatal("non-numeric kept")
	}
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/404" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("{not json"))
	}))
	defer bad.Close()
	for _, u := range []string{bad.URL + "/404", bad.URL, "http://127.0.0.1:1/", "::bad"} {
		if _, err := FetchDebug(context.Background(), u); err == nil {
			t.Errorf("%s: no error", u)
		}
	}
}
