// Package timewheel is a hashed timing wheel: one goroutine and one lock for
// every timer of a node, so a connection's heartbeat costs an embedded
// Timer (40 bytes) instead of a runtime timer and a closure.
//
// Concurrency: Schedule and Stop may be called from any goroutine. Expire
// runs on the wheel's goroutine, one timer at a time, without the wheel's
// lock held: it may Schedule or Stop timers (its own included), but must not
// block; hand slow work to a goroutine.
package timewheel

import (
	"sync"
	"time"
)

// Expirer is called when its timer is due.
type Expirer interface {
	Expire()
}

// Timer is one timer of a Wheel. Embed it by value in the object it times;
// its zero value is an unscheduled timer. A Timer belongs to one Wheel.
type Timer struct {
	prev, next *Timer // nil when not scheduled
	rounds     int32  // full turns of the wheel still to wait
	owner      Expirer
}

// Wheel fires timers with a resolution of one tick, never early.
type Wheel struct {
	tick time.Duration

	mu      sync.Mutex
	slots   []Timer // list heads (sentinels)
	pos     int32   // slot the next tick fires
	started time.Time
	ticks   int64         // ticks fired since started
	idle    bool          // no timer scheduled: the goroutine waits on wake
	wake    chan struct{} // idle -> running
	stop    chan struct{}
	done    chan struct{}
	due     []Expirer // reused by the wheel goroutine
	n       int       // scheduled timers
}

// New starts a wheel with the given tick and number of slots.
func New(tick time.Duration, slots int) *Wheel {
	if tick <= 0 {
		tick = 10 * time.Millisecond
	}
	if slots <= 0 {
		slots = 1024
	}
	w := &Wheel{tick: tick, slots: make([]Timer, slots), idle: true,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	for i := range w.slots {
		h := &w.slots[i]
		h.prev, h.next = h, h
	}
	go w.run()
	return w
}

// Tick returns the wheel's resolution.
func (w *Wheel) Tick() time.Duration { return w.tick }

// Len returns the number of scheduled timers.
func (w *Wheel) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// Schedule (re)arms t to call owner.Expire after d (rounded up to whole
// ticks, at least one).
func (w *Wheel) Schedule(t *Timer, d time.Duration, owner Expirer) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.unlinkLocked(t)
	if w.idle {
		// Restart the clock: the wheel is empty, any slot will do.
		w.idle, w.started, w.ticks = false, time.Now(), 0
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	// The first tick k with started+k*tick >= now+d fires it; tick
	// w.ticks+1 processes slot w.pos.
	k := int64((time.Since(w.started) + d + w.tick - 1) / w.tick)
	n := k - w.ticks
	if n < 1 {
		n = 1
	}
	size := int64(len(w.slots))
	slot := (int64(w.pos) + n - 1) % size
	t.rounds = int32((n - 1) / size)
	t.owner = owner
	h := &w.slots[slot]
	t.prev, t.next = h.prev, h
	h.prev.next = t
	h.prev = t
	w.n++
}

// Stop unschedules t; it reports whether t was scheduled.
func (w *Wheel) Stop(t *Timer) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.unlinkLocked(t)
}

// unlinkLocked removes t from its slot list. w.mu must be held.
func (w *Wheel) unlinkLocked(t *Timer) bool {
	if t.next == nil {
		return false
	}
	t.prev.next = t.next
	t.next.prev = t.prev
	t.prev, t.next, t.owner = nil, nil, nil
	w.n--
	return true
}

// Close stops the wheel; scheduled timers never fire.
func (w *Wheel) Close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

func (w *Wheel) run() {
	defer close(w.done)
	for {
		// Idle: no timer, no ticker.
		select {
		case <-w.stop:
			return
		case <-w.wake:
		}
		if w.turn() {
			return
		}
	}
}

// turn ticks until no timer is left (false) or the wheel is closed (true).
func (w *Wheel) turn() bool {
	tk := time.NewTicker(w.tick)
	defer tk.Stop()
	for {
		select {
		case <-w.stop:
			return true
		case now := <-tk.C:
			w.mu.Lock()
			// Catch up on ticks missed while busy.
			behind := int64(now.Sub(w.started) / w.tick)
			for w.ticks < behind {
				w.advanceLocked()
			}
			due := w.due
			w.due = nil
			w.mu.Unlock()
			for i, e := range due {
				e.Expire()
				due[i] = nil
			}
			w.mu.Lock()
			if w.due == nil {
				w.due = due[:0]
			}
			if w.n == 0 && len(w.due) == 0 {
				w.idle = true
				w.mu.Unlock()
				return false
			}
			w.mu.Unlock()
		}
	}
}

// advanceLocked fires the current slot into w.due and moves on. w.mu must be held.
func (w *Wheel) advanceLocked() {
	h := &w.slots[w.pos]
	for t := h.next; t != h; {
		next := t.next
		if t.rounds > 0 {
			t.rounds--
		} else {
			w.due = append(w.due, t.owner)
			w.unlinkLocked(t)
		}
		t = next
	}
	w.pos = (w.pos + 1) % int32(len(w.slots))
	w.ticks++
}
