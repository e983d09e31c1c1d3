package loadgen

import (
	"encoding/json"
	"math"
	"sync"
	"testing"
	"time"
)

func TestBucketMath(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 129, 1000, 4095, 4096, 50_000, 1 << 30, histMaxValueUS} {
		i := bucketOf(v)
		lo, hi := bucketBounds(i)
		if v < lo || v > hi {
			t.Fatalf("v=%d bucket %d [%d,%d]", v, i, lo, hi)
		}
		if v >= histLinear && float64(hi-lo+1)/float64(lo) > 1.0/32+1e-9 {
			t.Fatalf("bucket %d too wide: [%d,%d]", i, lo, hi)
		}
		if i < prev {
			t.Fatal("bucket index not monotonic")
		}
		prev = i
	}
	// every bucket's bounds map back to it, and buckets tile the range
	next := uint64(0)
	for i := 0; i < histBuckets; i++ {
		lo, hi := bucketBounds(i)
		if lo != next || bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d [%d,%d] next %d", i, lo, hi, next)
		}
		next = hi + 1
	}
	if bucketOf(math.MaxUint64) != histBuckets-1 {
		t.Fatal("values above the range must land in the last bucket")
	}
}

func TestQuantiles(t *testing.T) {
	var h Histogram
	for v := uint64(1); v <= 1000; v++ {
		h.RecordMicros(v * 100) // 0.1 ms .. 100 ms uniform
	}
	d := h.Snapshot(false)
	if d.Count != 1000 || d.MinUS != 100 || d.MaxUS != 100_000 || d.SumUS != 100*500500 {
		t.Fatalf("%+v", d)
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := math.Ceil(q*1000) * 100
		got := float64(d.QuantileUS(q))
		if got < exact || got > exact*(1+1.0/32) {
			t.Errorf("q%.3f = %.0f, exact %.0f", q, got, exact)
		}
	}
	if d.QuantileUS(1) != 100_000 || d.QuantileMS(0.001) < 0.1 || d.QuantileMS(0.001) > 0.1*(1+1.0/32) {
		t.Errorf("q1=%d qmin=%v", d.QuantileUS(1), d.QuantileMS(0.001))
	}
	s := d.Summarize()
	if s.Count != 1000 || s.MaxMS != 100 || s.MeanMS != 50.05 || s.P50MS < 50 || s.P50MS > 51.6 {
		t.Fatalf("%+v", s)
	}
	var empty HistData
	if empty.QuantileUS(0.5) != 0 || empty.MeanMS() != 0 {
		t.Fatal("empty histogram")
	}
}

func TestRecordDurationsAndReset(t *testing.T) {
	var h Histogram
	h.Record(-time.Second)
	h.Record(1500 * time.Microsecond)
	h.Record(time.Hour)
	d := h.Snapshot(true)
	if d.Count != 3 || d.MinUS != 0 || d.MaxUS != 3_600_000_000 {
		t.Fatalf("%+v", d)
	}
	if again := h.Snapshot(false); again.Count != 0 || again.MaxUS != 0 || len(again.Buckets) != 0 {
		t.Fatalf("not reset: %+v", again)
	}
}

func TestMergeAndJSON(t *testing.T) {
	var a, b Histogram
	for i := 0; i < 100; i++ {
		a.RecordMicros(10)
		b.RecordMicros(10_000)
	}
	b.RecordMicros(5)
	da, db := a.Snapshot(false), b.Snapshot(false)
	var m HistData
	m.Merge(da)
	m.Merge(HistData{})
	m.Merge(db)
	if m.Count != 201 || m.MinUS != 5 || m.MaxUS != 10_000 || m.QuantileUS(0.4) != 10 || m.QuantileUS(0.6) < 10_000 {
		t.Fatalf("%+v q40=%d", m, m.QuantileUS(0.4))
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back HistData
	if err := json.Unmarshal(raw, &back); err != nil || back.QuantileUS(0.99) != m.QuantileUS(0.99) || back.Count != 201 {
		t.Fatalf("%s %v", raw, err)
	}
}

func TestHistogramConcurrent(t *testing.T) {
	var h Histogram
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 10_000; i++ {
				h.RecordMicros(uint64(g*1000 + i%1000))
			}
		}(g)
	}
	wg.Wait()
	d := h.Snapshot(false)
	if d.Count != 80_000 || d.MinUS != 0 || d.MaxUS != 7999 {
		t.Fatalf("%+v", d)
	}
}
