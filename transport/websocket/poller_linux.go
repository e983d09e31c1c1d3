//go:build linux

package websocket

import (
	"fmt"
	"io"
	"sync"

	"golang.org/x/sys/unix"
)

// poller is one epoll loop reading many connections.
type poller struct {
	srv   *Server
	epfd  int
	mu    sync.RWMutex
	conns []*Conn // by descriptor number: descriptors are small and dense
	buf   []byte
	done  chan struct{}
}

func newPoller(s *Server) (*poller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("websocket: epoll_create: %w", err)
	}
	p := &poller{srv: s, epfd: fd, buf: make([]byte, 64<<10), done: make(chan struct{})}
	go p.run()
	return p, nil
}

// readEvents are what the loop always watches; writeEvents while a
// connection waits for its socket to drain.
const (
	readEvents  = unix.EPOLLIN | unix.EPOLLRDHUP
	writeEvents = readEvents | unix.EPOLLOUT
)

// add registers c, whose descriptor is open (c.mu held, c not closed).
func (p *poller) add(c *Conn) error {
	fd := int(c.fd.num)
	p.mu.Lock()
	if fd >= len(p.conns) {
		p.conns = append(p.conns, make([]*Conn, fd+1-len(p.conns)+len(p.conns)/4)...)
	}
	p.conns[fd] = c
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: readEvents, Fd: c.fd.num}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.mu.Lock()
		p.conns[fd] = nil
		p.mu.Unlock()
		return fmt.Errorf("websocket: epoll_ctl add: %w", err)
	}
	return nil
}

// remove unregisters c; its descriptor must still be open (teardown
// closes it after).
func (p *poller) remove(c *Conn) {
	fd := int(c.fd.num)
	p.mu.Lock()
	if fd < len(p.conns) && p.conns[fd] == c {
		p.conns[fd] = nil
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	}
	p.mu.Unlock()
}

// watch sets the events the loop waits for on c, under a hold on its
// descriptor, so a closed one (whose number may be another connection's
// by now) is never touched. It reports whether c is still open.
func (p *poller) watch(c *Conn, events uint32) bool {
	if !c.fd.acquire() {
		return false
	}
	ev := unix.EpollEvent{Events: events, Fd: c.fd.num}
	err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, int(c.fd.num), &ev)
	c.fd.release()
	return err == nil
}

// awaitWritable has the loop tell c once its socket can take more.
func (p *poller) awaitWritable(c *Conn) {
	if !p.watch(c, writeEvents) {
		c.writable() // closing: writable only clears the wait
	}
}

// stop ends the loop (within its wait timeout) and closes the epoll fd.
func (p *poller) stop() {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
}

func (p *poller) run() {
	events := make([]unix.EpollEvent, 256)
	defer unix.Close(p.epfd)
	for {
		select {
		case <-p.done:
			return
		default:
		}
		n, err := unix.EpollWait(p.epfd, events, 500)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return
		}
		for i := 0; i < n; i++ {
			fd := int(events[i].Fd)
			p.mu.RLock()
			var c *Conn
			if fd < len(p.conns) {
				c = p.conns[fd]
			}
			p.mu.RUnlock()
			if c == nil {
				continue
			}
			if ev := events[i].Events; ev&unix.EPOLLOUT != 0 {
				p.watch(c, readEvents)
				c.writable()
				if ev&^unix.EPOLLOUT == 0 {
					continue
				}
			}
			p.read(c)
		}
	}
}

// read does one read (level-triggered: more data brings another event,
// which keeps a flooding client from starving the others).
func (p *poller) read(c *Conn) {
	var n int
	var err error
	// Under a hold, so the fd cannot be closed and its number reused meanwhile.
	if !c.fd.acquire() {
		return // torn down since the event
	}
	n, err = unix.Read(int(c.fd.num), p.buf)
	c.fd.release()
	if n > 0 {
		if ferr := c.rd.feed(p.buf[:n], c.emit); ferr != nil {
			c.fail(ferr)
			return
		}
		return
	}
	switch {
	case err == unix.EAGAIN || err == unix.EINTR:
	case err != nil:
		c.teardown(fmt.Errorf("websocket: read: %w", err))
	default:
		c.teardown(io.EOF)
	}
}
