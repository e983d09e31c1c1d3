package websocket

import "sync/atomic"

// flusher writes queued frames for many connections from one goroutine:
// every connection with pending frames gets one writev per round.
//
// Scheduling a connection is one compare-and-swap on a lock-free stack
// (connections link through Conn.schedNext; a connection is on it at most
// once, guarded by Conn.scheduled), so a broadcast to N connections takes
// no shared lock per recipient. The flusher takes the whole stack at once
// and flushes it oldest first.
type flusher struct {
	head    atomic.Pointer[Conn]
	wake    chan struct{} // never closed: add may signal after stop
	quit    chan struct{}
	stopped atomic.Bool
	w       *writer // the flusher goroutine's writev state
	batch   []*Conn // flusher goroutine only
}

func newFlusher() *flusher {
	f := &flusher{wake: make(chan struct{}, 1), quit: make(chan struct{}), w: newWriter()}
	go f.run()
	return f
}

func (f *flusher) add(c *Conn) {
	if f.stopped.Load() {
		return
	}
	for {
		old := f.head.Load()
		c.schedNext = old
		if f.head.CompareAndSwap(old, c) {
			if old == nil { // the flusher may be waiting
				select {
				case f.wake <- struct{}{}:
				default:
				}
			}
			return
		}
	}
}

func (f *flusher) stop() {
	if f.stopped.CompareAndSwap(false, true) {
		close(f.quit)
	}
}

func (f *flusher) run() {
	for {
		select {
		case <-f.quit:
			return
		case <-f.wake:
		}
		for {
			c := f.head.Swap(nil)
			if c == nil {
				break
			}
			// The stack is newest first: flush in scheduling order.
			batch := f.batch[:0]
			for ; c != nil; c = c.schedNext {
				batch = append(batch, c)
			}
			for i := len(batch) - 1; i >= 0; i-- {
				c := batch[i]
				c.schedNext = nil
				c.flush(f.w)
				batch[i] = nil
			}
			f.batch = batch
		}
	}
}

// writer is the state of one writev through a connection's RawConn. Its
// write method value is made once, so a flush allocates nothing. One
// goroutine uses a writer at a time.
type writer struct {
	bufs [][]byte
	n    int
	err  error
	fn   func(fd uintptr) bool
}

func newWriter() *writer {
	w := &writer{}
	w.fn = w.write
	return w
}

func (w *writer) write(fd uintptr) bool {
	w.n, w.err = writev(int(fd), w.bufs)
	return true
}
