package timewheel

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type probe struct {
	t     Timer
	at    time.Time
	fired chan time.Time
}

func (p *probe) Expire() { p.fired <- time.Now() }

func newProbe() *probe { return &probe{fired: make(chan time.Time, 4)} }

func TestFiresNeverEarlyAndSoonAfter(t *testing.T) {
	w := New(5*time.Millisecond, 16)
	defer w.Close()
	for _, d := range []time.Duration{0, time.Millisecond, 12 * time.Millisecond, 50 * time.Millisecond, 130 * time.Millisecond} {
		p := newProbe()
		start := time.Now()
		w.Schedule(&p.t, d, p)
		select {
		case at := <-p.fired:
			if got := at.Sub(start); got < d {
				t.Errorf("d=%v fired after %v: early", d, got)
			}
		case <-time.After(d + 2*time.Second):
			t.Fatalf("d=%v never fired", d)
		}
		if w.Len() != 0 {
			t.Fatalf("Len = %d after firing", w.Len())
		}
	}
}

func TestStopAndReschedule(t *testing.T) {
	w := New(2*time.Millisecond, 8)
	defer w.Close()
	p := newProbe()
	w.Schedule(&p.t, 20*time.Millisecond, p)
	if !w.Stop(&p.t) {
		t.Fatal("Stop of a scheduled timer reported false")
	}
	if w.Stop(&p.t) {
		t.Fatal("second Stop reported true")
	}
	select {
	case <-p.fired:
		t.Fatal("stopped timer fired")
	case <-time.After(60 * time.Millisecond):
	}
	// Rescheduling replaces the earlier deadline: one firing, at the later one.
	start := time.Now()
	w.Schedule(&p.t, 5*time.Millisecond, p)
	w.Schedule(&p.t, 40*time.Millisecond, p)
	if w.Len() != 1 {
		t.Fatalf("Len = %d, want 1", w.Len())
	}
	at := <-p.fired
	if at.Sub(start) < 40*time.Millisecond {
		t.Fatalf("fired after %v, before the rescheduled deadline", at.Sub(start))
	}
	select {
	case <-p.fired:
		t.Fatal("fired twice")
	case <-time.After(30 * time.Millisecond):
	}
}

type rearm struct {
	t     Timer
	w     *Wheel
	count atomic.Int32
	done  chan struct{}
}

func (r *rearm) Expire() {
	if r.count.Add(1) < 3 {
		r.w.Schedule(&r.t, time.Millisecond, r) // from inside Expire
		return
	}
	close(r.done)
}

func TestScheduleFromExpire(t *testing.T) {
	w := New(time.Millisecond, 4)
	defer w.Close()
	r := &rearm{w: w, done: make(chan struct{})}
	w.Schedule(&r.t, 0, r)
	select {
	case <-r.done:
	case <-time.After(2 * time.Second):
		t.Fatalf("fired %d times, want 3", r.count.Load())
	}
}

type counter struct {
	t Timer
	n *atomic.Int64
}

func (c *counter) Expire() { c.n.Add(1) }

func TestManyTimersAcrossRounds(t *testing.T) {
	w := New(time.Millisecond, 8) // 8 slots: most timers need several rounds
	defer w.Close()
	var n atomic.Int64
	cs := make([]counter, 2000)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < len(cs); i += 4 {
				cs[i].n = &n
				w.Schedule(&cs[i].t, time.Duration(i%50)*time.Millisecond, &cs[i])
			}
		}(g)
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for n.Load() < int64(len(cs)) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n.Load() != int64(len(cs)) || w.Len() != 0 {
		t.Fatalf("fired %d of %d, %d still scheduled", n.Load(), len(cs), w.Len())
	}
}

func TestDefaultsAndClose(t *testing.T) {
	w := New(0, 0)
	if w.Tick() != 10*time.Millisecond || len(w.slots) != 1024 {
		t.Fatalf("defaults: tick %v, %d slots", w.Tick(), len(w.slots))
	}
	p := newProbe()
	w.Schedule(&p.t, time.Millisecond, p)
	w.Close()
	w.Close() // idempotent
	select {
	case <-p.fired:
		// It may have fired before Close; nothing after.
	case <-time.After(30 * time.Millisecond):
	}
}
