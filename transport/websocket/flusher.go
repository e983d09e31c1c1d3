package websocket

import "sync"

// flusher writes queued frames for many connections from one goroutine:
// every connection with pending frames gets one writev per round.
type flusher struct {
	mu      sync.Mutex
	pending []*Conn
	wake    chan struct{}
	stopped bool
}

func newFlusher() *flusher {
	f := &flusher{wake: make(chan struct{}, 1)}
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
			f.pending = nil
			f.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for _, c := range batch {
				c.flush()
			}
		}
	}
}
