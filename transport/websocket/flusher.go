package websocket

import "sync"

// flusher writes queued frames for many connections from one goroutine:
// every connection with pending frames gets one writev per round.
type flusher struct {
	mu      sync.Mutex
	pending []*Conn
	spare   []*Conn // the last batch, reused (flusher goroutine only)
	wake    chan struct{}
	stopped bool
	w       *writer // the flusher goroutine's writev state
}

func newFlusher() *flusher {
	f := &flusher{wake: make(chan struct{}, 1), w: newWriter()}
	go f.run()
	return f
}

func (f *flusher) add(c *Conn) {
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return
	}
	f.pending = append(f.pending, c)
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *flusher) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.stopped {
		f.stopped = true
		close(f.wake)
	}
}

func (f *flusher) run() {
	for range f.wake {
		for {
			f.mu.Lock()
			batch := f.pending
			f.pending = f.spare[:0]
			f.mu.Unlock()
			if len(batch) == 0 {
				f.spare = batch
				break
			}
			for _, c := range batch {
				c.flush(f.w)
			}
			clear(batch)
			f.spare = batch
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
