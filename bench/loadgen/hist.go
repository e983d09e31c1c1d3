package loadgen

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram is a concurrent log-linear histogram of durations in
// microseconds: exact below 64 µs, then 32 sub-buckets per power of two
// (relative error under 1/32). Quantiles report the bucket's upper bound,
// capped at the largest recorded value, so they never understate.
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	count  atomic.Uint64
	sum    atomic.Uint64
	max    atomic.Uint64
	min    atomic.Uint64 // stored as value+1 so that 0 means "none"
}

const (
	histSubBits    = 5
	histSub        = 1 << histSubBits // 32
	histLinear     = 2 * histSub      // 64 exact buckets
	histMaxExp     = 35
	histBuckets    = histLinear + histMaxExp*histSub
	histMaxValueUS = uint64(1)<<(histMaxExp+histSubBits+1) - 1
)

// bucketOf returns the bucket index of v microseconds.
func bucketOf(v uint64) int {
	if v < histLinear {
		return int(v)
	}
	if v > histMaxValueUS {
		v = histMaxValueUS
	}
	e := bits.Len64(v) - (histSubBits + 1) // >= 1
	return histLinear + (e-1)*histSub + int(v>>uint(e)) - histSub
}

// bucketBounds returns the smallest and largest value of bucket i.
func bucketBounds(i int) (lo, hi uint64) {
	if i < histLinear {
		return uint64(i), uint64(i)
	}
	e := uint((i-histLinear)/histSub + 1)
	m := uint64((i-histLinear)%histSub + histSub)
	return m << e, (m+1)<<e - 1
}

// Record adds one duration; negative durations count as 0.
func (h *Histogram) Record(d time.Duration) {
	us := uint64(0)
	if d > 0 {
		us = uint64(d / time.Microsecond)
	}
	h.RecordMicros(us)
}

// RecordMicros adds one value in microseconds.
func (h *Histogram) RecordMicros(us uint64) {
	h.counts[bucketOf(us)].Add(1)
	h.count.Add(1)
	h.sum.Add(us)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			break
		}
	}
	for {
		m := h.min.Load()
		if (m != 0 && us+1 >= m) || h.min.CompareAndSwap(m, us+1) {
			break
		}
	}
}

// HistData is a serialisable snapshot of a Histogram.
type HistData struct {
	Buckets [][2]uint64 `json:"b,omitempty"` // [index, count], non-empty only
	Count   uint64      `json:"n"`
	SumUS   uint64      `json:"sum_us"`
	MaxUS   uint64      `json:"max_us"`
	MinUS   uint64      `json:"min_us"`
}

// Snapshot copies the histogram; with reset it also clears it (values
// recorded concurrently land in either the snapshot or the next one).
func (h *Histogram) Snapshot(reset bool) HistData {
	var d HistData
	load := func(a *atomic.Uint64) uint64 {
		if reset {
			return a.Swap(0)
		}
		return a.Load()
	}
	for i := range h.counts {
		if c := load(&h.counts[i]); c > 0 {
			d.Buckets = append(d.Buckets, [2]uint64{uint64(i), c})
			d.Count += c
		}
	}
	load(&h.count)
	d.SumUS = load(&h.sum)
	d.MaxUS = load(&h.max)
	if m := load(&h.min); m > 0 {
		d.MinUS = m - 1
	}
	return d
}

// Merge adds o into d.
func (d *HistData) Merge(o HistData) {
	if o.Count == 0 {
		return
	}
	if d.Count == 0 || o.MinUS < d.MinUS {
		d.MinUS = o.MinUS
	}
	d.MaxUS = max(d.MaxUS, o.MaxUS)
	d.SumUS += o.SumUS
	d.Count += o.Count
	m := make(map[uint64]uint64, len(d.Buckets)+len(o.Buckets))
	for _, b := range d.Buckets {
		m[b[0]] += b[1]
	}
	for _, b := range o.Buckets {
		m[b[0]] += b[1]
	}
	d.Buckets = d.Buckets[:0]
	for i := 0; i < histBuckets; i++ {
		if c := m[uint64(i)]; c > 0 {
			d.Buckets = append(d.Buckets, [2]uint64{uint64(i), c})
		}
	}
}

// QuantileUS returns the q-quantile (0 < q <= 1) in microseconds: the upper
// bound of the bucket holding the ceil(q*n)-th value, capped at the maximum.
func (d HistData) QuantileUS(q float64) uint64 {
	if d.Count == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(d.Count)))
	rank = max(rank, 1)
	var seen uint64
	for _, b := range d.Buckets {
		seen += b[1]
		if seen >= rank {
			_, hi := bucketBounds(int(b[0]))
			return min(hi, d.MaxUS)
		}
	}
	return d.MaxUS
}

// QuantileMS is QuantileUS in milliseconds.
func (d HistData) QuantileMS(q float64) float64 { return float64(d.QuantileUS(q)) / 1000 }

// MeanMS returns the mean in milliseconds.
func (d HistData) MeanMS() float64 {
	if d.Count == 0 {
		return 0
	}
	return float64(d.SumUS) / float64(d.Count) / 1000
}

// Summary is the compact form reported in results.
type Summary struct {
	Count  uint64  `json:"count"`
	P50MS  float64 `json:"p50_ms"`
	P90MS  float64 `json:"p90_ms"`
	P99MS  float64 `json:"p99_ms"`
	P999MS float64 `json:"p999_ms"`
	MaxMS  float64 `json:"max_ms"`
	MeanMS float64 `json:"mean_ms"`
}

// Summarize returns count, p50/p90/p99/p99.9, max and mean in milliseconds.
func (d HistData) Summarize() Summary {
	return Summary{
		Count: d.Count, P50MS: d.QuantileMS(0.5), P90MS: d.QuantileMS(0.9), P99MS: d.QuantileMS(0.99),
		P999MS: d.QuantileMS(0.999), MaxMS: float64(d.MaxUS) / 1000, MeanMS: round3(d.MeanMS()),
	}
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }
