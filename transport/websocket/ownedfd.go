package websocket

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// ownedFD is a socket descriptor a Conn owns outright, without a net.Conn
// around it (epoll mode): the net package's file, its two addresses and its
// runtime poll descriptor cost ~550 bytes per connection, for state the
// poller and flusher never use.
//
// Its reference count replaces the runtime's: a descriptor is closed only
// once no goroutine holds it, so its number can never be reused by a new
// connection while a read or a writev is still using it (that would write
// one client's frames to another). The state word is the number of holders,
// with fdClosed set once close was asked for.
type ownedFD struct {
	num   int32
	state atomic.Uint32
}

const fdClosed = 1 << 31

// acquire takes a hold on the descriptor; false once it is closing.
func (f *ownedFD) acquire() bool {
	for {
		s := f.state.Load()
		if s&fdClosed != 0 {
			return false
		}
		if f.state.CompareAndSwap(s, s+1) {
			return true
		}
	}
}

// release drops a hold; the last holder of a closing descriptor closes it.
func (f *ownedFD) release() {
	if f.state.Add(^uint32(0)) == fdClosed {
		_ = unix.Close(int(f.num))
	}
}

// close asks for the descriptor to be closed: now when nobody holds it,
// else by the last release. Later acquires fail. Only the first call counts.
func (f *ownedFD) close() {
	for {
		s := f.state.Load()
		if s&fdClosed != 0 {
			return
		}
		if f.state.CompareAndSwap(s, s|fdClosed) {
			if s == 0 {
				_ = unix.Close(int(f.num))
			}
			return
		}
	}
}
