package soak

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
)

// sample is one measurement of one node.
type sample struct {
	T          float64 // seconds since the load started
	Phase      string  // "load" or "drain" (after every client left)
	Node       string
	Goroutines float64
	HeapInuse  float64 // go_memstats_heap_inuse_bytes as scraped
	HeapLive   float64 // live heap at the last GC, from the heap goal (liveHeap)
	RSS        float64
	FDs        int
	ClientFDs  int
	RedisFDs   int
	Conns      float64 // tradewire_connections, all transports
	Clients    int     // test clients connected at that moment (both nodes)
	RedisMem   int64   // Redis used_memory
	// ProfBuckets is the runtime's heap-profiling bucket memory (off-heap,
	// part of RSS; grows with distinct allocation stacks).
	ProfBuckets float64
}

// Limits of the growth checks. The reasoning behind the numbers is in
// docs/SOAK.md ("Pass criteria").
type limits struct {
	// Goroutines and fds: mean of the second half of the samples after
	// warm-up may exceed the first half's mean by Rel plus Abs.
	CountRel float64
	CountAbs float64
	// Heap after GC and RSS: least-squares slope over the last half of the
	// samples, bytes per minute, that fails when it is also significant
	// (slope / standard error > MinT).
	HeapSlope float64
	RSSSlope  float64
	MinT      float64
	// The growth the slope implies over the last half must also exceed
	// these: RSS moves in steps of a few MiB at constant load (arenas,
	// scavenger), so a short window's slope alone is no trend.
	HeapMinGrowth float64
	RSSMinGrowth  float64
}

var defaultLimits = limits{
	CountRel:  0.10,
	CountAbs:  20,
	HeapSlope: 1 << 20, // 1 MiB/min
	RSSSlope:  2 << 20, // 2 MiB/min
	MinT:      3,
	// Sample-to-sample changes at constant load (10-minute run): live
	// heap p99 ~1 MiB, RSS max 2.1 MiB (docs/SOAK.md).
	HeapMinGrowth: 1 << 20,
	RSSMinGrowth:  4 << 20,
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// slope fits y = a + b·x by least squares and returns b and b's standard
// error (0 with fewer than three points).
func slope(xs, ys []float64) (b, se float64) {
	n := float64(len(xs))
	if len(xs) < 3 {
		return 0, 0
	}
	mx, my := mean(xs), mean(ys)
	var sxx, sxy float64
	for i := range xs {
		sxx += (xs[i] - mx) * (xs[i] - mx)
		sxy += (xs[i] - mx) * (ys[i] - my)
	}
	if sxx == 0 {
		return 0, 0
	}
	b = sxy / sxx
	a := my - b*mx
	var sse float64
	for i := range xs {
		r := ys[i] - a - b*xs[i]
		sse += r * r
	}
	se = math.Sqrt(sse/(n-2)) / math.Sqrt(sxx)
	return b, se
}

// trend is the verdict on one series.
type trend struct {
	Series        string
	First, Second float64 // means of the halves
	Slope, T      float64 // last half, per minute
	Fail          string  // empty when within limits
}

func (tr trend) String() string {
	s := fmt.Sprintf("%-10s first half %12.0f  second half %12.0f  last-half slope %+11.0f/min (t=%5.1f)",
		tr.Series, tr.First, tr.Second, tr.Slope, tr.T)
	if tr.Fail != "" {
		s += "  FAIL: " + tr.Fail
	}
	return s
}

// analyze judges one node's load-phase samples taken after warm-up.
func analyze(ss []sample, lim limits) []trend {
	if len(ss) < 6 {
		return []trend{{Series: "samples", Fail: fmt.Sprintf("only %d samples after warm-up (need 6)", len(ss))}}
	}
	half := len(ss) / 2
	series := func(f func(sample) float64) (all, xs []float64) {
		for _, s := range ss {
			all = append(all, f(s))
			xs = append(xs, s.T/60)
		}
		return all, xs
	}
	var out []trend
	count := func(name string, f func(sample) float64) {
		ys, xs := series(f)
		tr := trend{Series: name, First: mean(ys[:half]), Second: mean(ys[half:])}
		tr.Slope, tr.T = slopeT(xs[half:], ys[half:])
		if tr.Second > tr.First*(1+lim.CountRel)+lim.CountAbs {
			tr.Fail = fmt.Sprintf("second half mean > first half mean +%.0f%% +%.0f", lim.CountRel*100, lim.CountAbs)
		}
		out = append(out, tr)
	}
	bytes := func(name string, f func(sample) float64, max, minGrowth float64) {
		ys, xs := series(f)
		tr := trend{Series: name, First: mean(ys[:half]), Second: mean(ys[half:])}
		tr.Slope, tr.T = slopeT(xs[half:], ys[half:])
		growth := tr.Slope * (xs[len(xs)-1] - xs[half])
		if tr.Slope > max && tr.T > lim.MinT && growth > minGrowth {
			tr.Fail = fmt.Sprintf("slope above %.1f MiB/min, significant (t > %.0f), %.1f MiB over the last half (> %.0f)",
				max/(1<<20), lim.MinT, growth/(1<<20), minGrowth/(1<<20))
		}
		out = append(out, tr)
	}
	count("goroutines", func(s sample) float64 { return s.Goroutines })
	count("fds", func(s sample) float64 { return float64(s.FDs) })
	bytes("heap_live", func(s sample) float64 { return s.HeapLive }, lim.HeapSlope, lim.HeapMinGrowth)
	bytes("rss", func(s sample) float64 { return s.RSS }, lim.RSSSlope, lim.RSSMinGrowth)
	return out
}

func slopeT(xs, ys []float64) (b, t float64) {
	b, se := slope(xs, ys)
	switch {
	case se > 0:
		t = b / se
	case b > 0:
		t = math.Inf(1)
	case b < 0:
		t = math.Inf(-1)
	}
	return b, t
}

func failed(trs []trend) bool {
	for _, tr := range trs {
		if tr.Fail != "" {
			return true
		}
	}
	return false
}

// synthetic builds ten minutes of samples every 2s with noise.
func synthetic(seed int64, gor, heap, rss func(minute float64) float64) []sample {
	r := rand.New(rand.NewSource(seed))
	var ss []sample
	for t := 60.0; t <= 600; t += 2 {
		m := t / 60
		ss = append(ss, sample{
			T:          t,
			Goroutines: gor(m) + float64(r.Intn(11)-5),
			FDs:        320 + r.Intn(41) - 20,
			HeapLive:   heap(m) + r.NormFloat64()*300e3,
			RSS:        rss(m) + r.NormFloat64()*600e3,
		})
	}
	return ss
}

// TestTrendDetector checks the verdicts on synthetic series: noisy flat
// series pass, a goroutine leak and a slow heap leak fail, and a short
// noisy series (the CI duration) with no trend passes.
func TestTrendDetector(t *testing.T) {
	flat := func(v float64) func(float64) float64 { return func(float64) float64 { return v } }
	for seed := int64(1); seed <= 20; seed++ {
		if trs := analyze(synthetic(seed, flat(60), flat(12e6), flat(40e6)), defaultLimits); failed(trs) {
			t.Fatalf("seed %d: flat series flagged: %v", seed, trs)
		}
	}
	// One goroutine per second kept: +540 over the run.
	trs := analyze(synthetic(1, func(m float64) float64 { return 60 + 60*m }, flat(12e6), flat(40e6)), defaultLimits)
	if !trs[0].failedAs("goroutines") {
		t.Fatalf("goroutine leak not flagged: %v", trs)
	}
	// 2 MiB of heap per minute (about 2 KiB per closed connection at the
	// soak's churn), and RSS following it.
	trs = analyze(synthetic(2, flat(60), func(m float64) float64 { return 12e6 + m*(2<<20) },
		func(m float64) float64 { return 40e6 + m*(3<<20) }), defaultLimits)
	if !trs[2].failedAs("heap_live") || !trs[3].failedAs("rss") {
		t.Fatalf("heap leak not flagged: %v", trs)
	}
	// A short run (45s, warm-up 15s): noise only.
	short := synthetic(3, flat(60), flat(12e6), flat(40e6))[:15]
	if trs := analyze(short, defaultLimits); failed(trs) {
		t.Fatalf("short flat series flagged: %v", trs)
	}
	// A short run whose RSS steps up 2 MiB in its last half: no trend.
	for i := range short[8:] {
		short[8+i].RSS += 2 << 20
	}
	if trs := analyze(short, defaultLimits); failed(trs) {
		t.Fatalf("short series with one RSS step flagged: %v", trs)
	}
	if trs := analyze(short[:4], defaultLimits); !failed(trs) {
		t.Fatal("4 samples accepted")
	}
	if b, se := slope([]float64{1, 2}, []float64{1, 2}); b != 0 || se != 0 {
		t.Fatalf("slope of two points = %v ± %v, want 0", b, se)
	}
}

func (tr trend) failedAs(series string) bool { return tr.Series == series && tr.Fail != "" }

// TestLiveHeap checks the inversion of the GC pacer's heap goal.
func TestLiveHeap(t *testing.T) {
	for _, c := range []struct{ goal, stacks, gogc, want float64 }{
		{24e6, 1e6, 100, 11.5e6}, // goal = 11.5 + (11.5 + 1)·1
		{16e6, 0, 300, 4e6},      // goal = 4 + 4·3
		{8e6, 1e6, 0, 8e6},       // GC off: the goal itself
		{1e6, 4e6, 100, 0},       // never negative
	} {
		if got := liveHeap(c.goal, c.stacks, c.gogc); math.Abs(got-c.want) > 1 {
			t.Errorf("liveHeap(%v, %v, %v) = %v, want %v", c.goal, c.stacks, c.gogc, got, c.want)
		}
	}
}

// TestGoroutineStacks parses a debug=1 goroutine profile (the first group
// follows the header line) and ranks the growth.
func TestGoroutineStacks(t *testing.T) {
	const before = "goroutine profile: total 3\n" +
		"2 @ 0x1 0x2\n#\t0x1\truntime.gopark+0x1\t/x.go:1\n#\t0x2\tmain.wait+0x2\t/y.go:2\n\n" +
		"1 @ 0x3\n#\t0x3\tmain.loop+0x3\t/y.go:3\n"
	const after = "goroutine profile: total 1003\n" +
		"1000 @ 0x1 0x4\n#\t0x1\truntime.gopark+0x1\t/x.go:1\n#\t0x4\tmain.leak.func1+0x4\t/y.go:4\n\n" +
		"2 @ 0x1 0x2\n#\t0x1\truntime.gopark+0x1\t/x.go:1\n#\t0x2\tmain.wait+0x2\t/y.go:2\n\n" +
		"1 @ 0x3\n#\t0x3\tmain.loop+0x3\t/y.go:3\n"
	b, a := goroutineStacks([]byte(before)), goroutineStacks([]byte(after))
	if b["runtime.gopark <- main.wait"] != 2 || a["runtime.gopark <- main.leak.func1"] != 1000 {
		t.Fatalf("parsed %v and %v", b, a)
	}
	g := stackGrowth(b, a, 5)
	if len(g) != 1 || g[0] != "+1000 (0 -> 1000): runtime.gopark <- main.leak.func1" {
		t.Fatalf("growth %q", g)
	}
}
