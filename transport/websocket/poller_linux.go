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
	conns map[int]*Conn
	buf   []byte
	done  chan struct{}
}

func newPoller(s *Server) (*poller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("websocket: epoll_create: %w", err)
	}
	p := &poller{srv: s, epfd: fd, conns: make(map[int]*Conn), buf: make([]byte, 64<<10), done: make(chan struct{})}
	go p.run()
	return p, nil
}

func (p *poller) add(c *Conn) error {
	p.mu.Lock()
	p.conns[c.fd] = c
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(c.fd)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		p.mu.Lock()
		delete(p.conns, c.fd)
		p.mu.Unlock()
		return fmt.Errorf("websocket: epoll_ctl add: %w", err)
	}
	return nil
}

func (p *poller) remove(c *Conn) {
	p.mu.Lock()
	if p.conns[c.fd] == c {
		delete(p.conns, c.fd)
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	}
	p.mu.Unlock()
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
			c := p.conns[fd]
			p.mu.RUnlock()
			if c != nil {
				p.read(c)
			}
		}
	}
}

// read does one read (level-triggered: more data brings another event,
// which keeps a flooding client from starving the others).
func (p *poller) read(c *Conn) {
	var n int
	var err error
	// Through the RawConn, so the fd cannot be closed and reused meanwhile.
	if rerr := c.rc.Read(func(fd uintptr) bool {
		n, err = unix.Read(int(fd), p.buf)
		return true
	}); rerr != nil {
		c.teardown(fmt.Errorf("websocket: read: %w", rerr))
		return
	}
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
