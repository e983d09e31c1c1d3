package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sys/unix"
)

// Config sizes the server.
type Config struct {
	Addr         string
	RedisURL     string
	APIKey       string
	PingInterval time.Duration
	PingTimeout  time.Duration
	MaxQueue     int
}

// Connection states (loop-owned).
const (
	stHTTP   uint8 = iota // reading the request head
	stOpen                // websocket open, Socket.IO not connected
	stAuth                // session lookup running
	stReady               // Socket.IO connected
	stClosed              //
)

// Heartbeat states (loop-owned).
const (
	hbIdle   uint8 = iota // next wheel slot sends a ping
	hbAwait               // ping sent; next slot closes the connection
	hbPonged              // pong received; next slot schedules the next ping
)

// Queue flags (guarded by server.mu).
const (
	qDirty      uint8 = 1 << iota // in server.dirty
	qWriting                      // the flusher owns pend and the fd
	qBlocked                      // socket buffer full: waiting for EPOLLOUT
	qClosing                      // closed by the loop while the flusher was writing
	qCloseAfter                   // shut the socket down once the queue is written
)

// conn is one client connection: about 150 bytes.
type conn struct {
	fd   int32
	st   uint8    // loop
	hb   uint8    // loop
	qf   uint8    // mu
	mark uint32   // mu: last broadcast that reached it (multi-room dedup)
	id   uint64   // Engine.IO / Socket.IO ids are derived from it
	user string   // loop: the cookie's session id until connected, then the user id
	in   []byte   // loop: bytes of an incomplete frame or head
	room []*room  // mu
	out  [][]byte // mu: queued frames (shared bytes)
	pend [][]byte // flusher: frames being written
	off  int      // flusher: bytes of pend[0] already written
}

type room struct {
	name    string
	members []*conn
}

type authResult struct {
	c          *conn
	user, code string
}

// Server is the reference server. Serve runs it.
type Server struct {
	cfg  Config
	log  *slog.Logger
	rdb  *redis.Client
	epfd int
	lfd  int
	efd  int // eventfd: session lookups done, or stop
	addr string

	// loop-owned
	fds    []*conn
	rbuf   []byte
	wheel  wheel
	nextID uint64
	kick   bool

	mu     sync.Mutex
	rooms  map[string]*room
	dirty  []*conn
	epoch  uint32
	wake   chan struct{} // never closed: HTTP handlers may still broadcast during shutdown
	done   chan struct{} // ends the flusher
	authMu sync.Mutex
	authed []authResult

	conns   atomic.Int64
	stop    atomic.Bool
	life    context.Context // ends session lookups at shutdown
	endLife context.CancelFunc
	hl      *chanListener
	httpSrv *http.Server
	wg      sync.WaitGroup
}

// newServer opens the listening socket and the epoll instance.
func newServer(cfg Config, log *slog.Logger) (*Server, error) {
	if cfg.PingInterval <= 0 || cfg.PingTimeout <= 0 {
		return nil, errors.New("ping interval and timeout must be positive")
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = 4096
	}
	ta, err := net.ResolveTCPAddr("tcp4", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen address: %w", err)
	}
	s := &Server{cfg: cfg, log: log, rooms: map[string]*room{}, wake: make(chan struct{}, 1), done: make(chan struct{}), rbuf: make([]byte, 64<<10)}
	s.wheel.init(cfg.PingInterval, cfg.PingTimeout)
	s.life, s.endLife = context.WithCancel(context.Background())
	if cfg.RedisURL != "" {
		opt, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("redis url: %w", err)
		}
		// a small pool with small buffers: one GET per connect needs no more,
		// and go-redis's defaults (20 connections x 64 KB here) would show up
		// in the RSS per connection of a few thousand clients
		opt.PoolSize, opt.ReadBufferSize, opt.WriteBufferSize = 4, 4<<10, 4<<10
		s.rdb = redis.NewClient(opt)
	}
	if s.lfd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0); err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	sa := &unix.SockaddrInet4{Port: ta.Port}
	copy(sa.Addr[:], ta.IP.To4())
	_ = unix.SetsockoptInt(s.lfd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err = unix.Bind(s.lfd, sa); err == nil {
		err = unix.Listen(s.lfd, 4096)
	}
	if err == nil {
		s.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	}
	if err == nil {
		s.efd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	}
	if err == nil {
		err = s.ctl(unix.EPOLL_CTL_ADD, s.lfd, unix.EPOLLIN)
	}
	if err == nil {
		err = s.ctl(unix.EPOLL_CTL_ADD, s.efd, unix.EPOLLIN)
	}
	if err != nil {
		s.closeFDs()
		return nil, fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	bound, _ := unix.Getsockname(s.lfd)
	s.addr = fmt.Sprintf("%s:%d", ta.IP, bound.(*unix.SockaddrInet4).Port)
	s.hl = &chanListener{ch: make(chan net.Conn), done: make(chan struct{}), addr: ta}
	s.httpSrv = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	return s, nil
}

// Addr is the bound host:port.
func (s *Server) Addr() string { return s.addr }

func (s *Server) closeFDs() {
	for _, fd := range []int{s.lfd, s.epfd, s.efd} {
		if fd > 0 {
			unix.Close(fd)
		}
	}
}

func (s *Server) ctl(op, fd int, events uint32) error {
	return unix.EpollCtl(s.epfd, op, fd, &unix.EpollEvent{Events: events, Fd: int32(fd)})
}

// Serve runs the loop, the flusher and the HTTP API until ctx ends.
func (s *Server) Serve(ctx context.Context) error {
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.flusher() }()
	go func() { defer s.wg.Done(); _ = s.httpSrv.Serve(s.hl) }()
	stopWatch := context.AfterFunc(ctx, func() {
		s.stop.Store(true)
		s.notify()
	})
	defer stopWatch()
	err := s.loop()
	s.stop.Store(true)
	s.endLife()
	_ = s.httpSrv.Close()
	for _, c := range s.fds {
		if c != nil {
			s.closeConn(c)
		}
	}
	close(s.done)
	s.wg.Wait()
	s.closeFDs()
	if s.rdb != nil {
		_ = s.rdb.Close()
	}
	return err
}

// notify wakes the loop through the eventfd.
func (s *Server) notify() {
	var one = [8]byte{1}
	_, _ = unix.Write(s.efd, one[:])
}

func (s *Server) loop() error {
	events := make([]unix.EpollEvent, 512)
	for !s.stop.Load() {
		wait := max(time.Until(s.wheel.next), 0)
		n, err := unix.EpollWait(s.epfd, events, int((wait+time.Millisecond-1)/time.Millisecond))
		if err != nil && err != unix.EINTR {
			return fmt.Errorf("epoll_wait: %w", err)
		}
		for _, ev := range events[:max(n, 0)] {
			switch fd := int(ev.Fd); fd {
			case s.lfd:
				s.accept()
			case s.efd:
				s.drainAuth()
			default:
				if c := s.fds[fd]; c != nil {
					s.handle(c, ev.Events)
				}
			}
		}
		s.wheel.advance(time.Now(), s.heartbeat)
		if s.kick {
			s.kick = false
			s.wakeFlusher()
		}
	}
	return nil
}

func (s *Server) accept() {
	for {
		fd, _, err := unix.Accept4(s.lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			if err != unix.EAGAIN && err != unix.EINTR {
				s.log.Warn("accept", "err", err)
			}
			return
		}
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		if err := s.ctl(unix.EPOLL_CTL_ADD, fd, unix.EPOLLIN|unix.EPOLLRDHUP); err != nil {
			unix.Close(fd)
			continue
		}
		for fd >= len(s.fds) {
			s.fds = append(s.fds, make([]*conn, len(s.fds)+1024)...)
		}
		s.nextID++
		s.fds[fd] = &conn{fd: int32(fd), id: s.nextID}
	}
}

func (s *Server) handle(c *conn, ev uint32) {
	if ev&unix.EPOLLOUT != 0 {
		s.mu.Lock()
		c.qf &^= qBlocked
		_ = s.ctl(unix.EPOLL_CTL_MOD, int(c.fd), unix.EPOLLIN|unix.EPOLLRDHUP)
		s.markDirty(c)
		s.mu.Unlock()
		s.kick = true
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) == 0 {
		return
	}
	n, err := unix.Read(int(c.fd), s.rbuf)
	if err == unix.EAGAIN || err == unix.EINTR {
		return
	}
	if n <= 0 {
		s.closeConn(c)
		return
	}
	data := s.rbuf[:n]
	buffered := len(c.in) > 0
	if buffered {
		c.in = append(c.in, data...)
		data = c.in
	}
	used := s.consume(c, data)
	switch rest := data[max(used, 0):]; {
	case c.st == stClosed || used < 0:
	case len(rest) == 0:
		c.in = nil
	case buffered:
		c.in = append(c.in[:0], rest...) // memmove within the same array
	default:
		c.in = append([]byte(nil), rest...)
	}
}

// consume processes complete heads and frames in data and returns how many
// bytes it used (-1 when the connection was handed to net/http).
func (s *Server) consume(c *conn, data []byte) int {
	used := 0
	for used < len(data) && c.st != stClosed {
		if c.st == stHTTP {
			end := headEnd(data[used:])
			if end < 0 {
				if len(data)-used > maxHead {
					s.httpError(c, 431, "HEAD_TOO_LARGE", "request head too large")
				}
				return used
			}
			if !s.onHead(c, data[used:used+end], data[used+end:]) {
				return -1
			}
			used += end
			continue
		}
		op, p, n, err := parseFrame(data[used:])
		if err != nil {
			var fe *frameError
			errors.As(err, &fe)
			s.closeWith(c, fe.code, fe.msg)
			return used
		}
		if n == 0 {
			return used
		}
		used += n
		switch op {
		case opText:
			s.onPacket(c, p)
		case opBin:
			s.closeWith(c, 1003, "binary messages are not supported")
		case opClose:
			code := uint16(1000)
			if len(p) >= 2 {
				code = uint16(p[0])<<8 | uint16(p[1])
			}
			s.closeWith(c, code, "")
		case opPing:
			s.send(c, frame(opPong, string(p)))
		}
	}
	return used
}

// onHead handles a request head; false when the connection went to net/http.
func (s *Server) onHead(c *conn, head, rest []byte) bool {
	h, err := parseHead(head)
	if err != nil {
		s.httpError(c, 400, "BAD_REQUEST", err.Error())
		return true
	}
	if h.Upgrade == "" && h.Path != "/socket.io/" {
		s.handoff(c, append(append([]byte(nil), head...), rest...))
		return false
	}
	if code, msg := checkUpgrade(h); code != "" {
		s.httpError(c, 400, code, msg)
		return true
	}
	c.st = stOpen
	c.user = cookieSession(h.Cookie)
	s.conns.Add(1)
	open := fmt.Sprintf(`0{"sid":"e%x","upgrades":[],"pingInterval":%d,"pingTimeout":%d,"maxPayload":%d}`,
		c.id, s.cfg.PingInterval.Milliseconds(), s.cfg.PingTimeout.Milliseconds(), maxPayload)
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		acceptKey(h.Key) + "\r\n\r\n"
	s.send(c, append([]byte(resp), frame(opText, open)...))
	s.wheel.add(c, s.cfg.PingInterval)
	return true
}

// httpError answers a bad request head with a JSON error and closes.
func (s *Server) httpError(c *conn, status int, code, msg string) {
	body := fmt.Sprintf(`{"success":false,"code":%q,"message":%q}`, code, msg)
	resp := fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), len(body), body)
	s.sendAndClose(c, []byte(resp))
}

// closeWith sends a websocket close frame and closes once it is written.
func (s *Server) closeWith(c *conn, code uint16, reason string) {
	s.sendAndClose(c, closeFrame(code, reason))
}

func (s *Server) sendAndClose(c *conn, b []byte) {
	s.mu.Lock()
	s.enqueue(c, b)
	c.qf |= qCloseAfter
	s.mu.Unlock()
	s.kick = true
	s.leaveAll(c)
	if c.st == stOpen || c.st == stAuth || c.st == stReady {
		s.conns.Add(-1)
	}
	c.st = stClosed // no more input; the fd closes when the loop sees the shutdown
	c.in = nil
}

// send queues one frame from the loop.
func (s *Server) send(c *conn, b []byte) {
	s.mu.Lock()
	s.enqueue(c, b)
	s.mu.Unlock()
	s.kick = true
}

// closeConn removes c from the loop and closes its socket (at once, or when
// the flusher is done with it).
func (s *Server) closeConn(c *conn) {
	if s.fds[c.fd] != c {
		return
	}
	if c.st == stOpen || c.st == stAuth || c.st == stReady {
		s.conns.Add(-1)
	}
	c.st = stClosed
	c.in = nil
	s.fds[c.fd] = nil
	_ = s.ctl(unix.EPOLL_CTL_DEL, int(c.fd), 0)
	s.leaveAll(c)
	s.mu.Lock()
	c.out = nil
	if c.qf&qWriting != 0 {
		c.qf |= qClosing
	} else {
		c.qf |= qClosing
		unix.Close(int(c.fd))
	}
	s.mu.Unlock()
}

// handoff gives a plain HTTP connection (publish API, health) to net/http.
func (s *Server) handoff(c *conn, pre []byte) {
	s.fds[c.fd] = nil
	c.st = stClosed
	_ = s.ctl(unix.EPOLL_CTL_DEL, int(c.fd), 0)
	f := os.NewFile(uintptr(c.fd), "http")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		s.log.Warn("handoff", "err", err)
		return
	}
	go func() {
		select {
		case s.hl.ch <- &prefixConn{Conn: nc, pre: pre}:
		case <-s.hl.done:
			nc.Close()
		}
	}()
}

// ---- queues and the flusher --------------------------------------------------

// enqueue appends a frame to c's queue (mu held); a connection whose queue
// passes MaxQueue is shut down.
func (s *Server) enqueue(c *conn, b []byte) {
	if c.qf&(qClosing|qCloseAfter) != 0 {
		return
	}
	if len(c.out) >= s.cfg.MaxQueue {
		c.out = nil
		_ = unix.Shutdown(int(c.fd), unix.SHUT_RDWR)
		c.qf |= qCloseAfter
		return
	}
	c.out = append(c.out, b)
	s.markDirty(c)
}

func (s *Server) markDirty(c *conn) {
	if c.qf&(qDirty|qBlocked|qClosing) == 0 && (len(c.out) > 0 || len(c.pend) > 0) {
		c.qf |= qDirty
		s.dirty = append(s.dirty, c)
	}
}

func (s *Server) wakeFlusher() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// flusher writes every dirty connection's queue with one writev each.
func (s *Server) flusher() {
	iov := make([]unix.Iovec, 0, 1024)
	var batch []*conn
	for {
		select {
		case <-s.wake:
		case <-s.done:
			return
		}
		s.mu.Lock()
		batch, s.dirty = s.dirty, batch[:0]
		for i, c := range batch {
			c.qf &^= qDirty
			if c.qf&qClosing != 0 {
				batch[i] = nil // its fd is closed already
				continue
			}
			c.qf |= qWriting
			if len(c.pend) == 0 {
				c.pend, c.out = c.out, nil
			} else {
				c.pend = append(c.pend, c.out...)
				c.out = nil
			}
		}
		s.mu.Unlock()
		for i, c := range batch {
			if c != nil && s.writeConn(c, &iov) {
				batch[i] = nil // blocked, handled below
				s.mu.Lock()
				c.qf = c.qf&^qWriting | qBlocked
				if c.qf&qClosing != 0 {
					unix.Close(int(c.fd))
				} else {
					_ = s.ctl(unix.EPOLL_CTL_MOD, int(c.fd), unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLOUT)
				}
				s.mu.Unlock()
			}
		}
		s.mu.Lock()
		for i, c := range batch {
			if c == nil {
				continue
			}
			batch[i] = nil
			c.qf &^= qWriting
			switch {
			case c.qf&qClosing != 0:
				c.pend = nil
				unix.Close(int(c.fd))
			case c.qf&qCloseAfter != 0 && len(c.pend) == 0 && len(c.out) == 0:
				// Only once the frame queued with the close (a close
				// frame, queued by the loop while this batch was being
				// written) went out too: shutting down earlier lost it.
				_ = unix.Shutdown(int(c.fd), unix.SHUT_RDWR)
			default:
				s.markDirty(c)
			}
		}
		again := len(s.dirty) > 0
		s.mu.Unlock()
		if again {
			s.wakeFlusher()
		}
	}
}

// writeConn writes c.pend; true when the socket buffer is full.
func (s *Server) writeConn(c *conn, iov *[]unix.Iovec) (blocked bool) {
	bufs, off := c.pend, c.off
	for len(bufs) > 0 {
		v := (*iov)[:0]
		for i, b := range bufs {
			if i == cap(v) {
				break
			}
			if i == 0 {
				b = b[off:]
			}
			v = append(v, unix.Iovec{Base: unsafe.SliceData(b), Len: uint64(len(b))})
		}
		n, _, errno := unix.Syscall(unix.SYS_WRITEV, uintptr(c.fd), uintptr(unsafe.Pointer(&v[0])), uintptr(len(v)))
		if errno == unix.EINTR {
			continue
		}
		if errno == unix.EAGAIN {
			blocked = true
			break
		}
		if errno != 0 {
			_ = unix.Shutdown(int(c.fd), unix.SHUT_RDWR)
			bufs = nil
			break
		}
		for n > 0 {
			if left := uintptr(len(bufs[0]) - off); n >= left {
				n -= left
				bufs[0] = nil
				bufs, off = bufs[1:], 0
			} else {
				off += int(n)
				n = 0
			}
		}
	}
	if len(bufs) == 0 {
		c.pend, c.off = nil, 0
	} else {
		c.pend, c.off = bufs, off
	}
	return blocked
}

// ---- heartbeats ------------------------------------------------------------

// wheel is a timing wheel of connections (loop-owned).
type wheel struct {
	tick  time.Duration
	slots [][]*conn
	pos   int
	next  time.Time
}

func (w *wheel) init(interval, timeout time.Duration) {
	w.tick = min(max(min(interval, timeout)/8, 5*time.Millisecond), 250*time.Millisecond)
	w.slots = make([][]*conn, int(max(interval, timeout)/w.tick)+2)
	w.next = time.Now().Add(w.tick)
}

// add schedules c about d from now.
func (w *wheel) add(c *conn, d time.Duration) {
	k := min(max(int((d+w.tick-1)/w.tick), 1), len(w.slots)-1)
	i := (w.pos + k) % len(w.slots)
	w.slots[i] = append(w.slots[i], c)
}

// advance runs fn for the connections of every slot that is due.
func (w *wheel) advance(now time.Time, fn func(*conn)) {
	for !now.Before(w.next) {
		w.pos = (w.pos + 1) % len(w.slots)
		due := w.slots[w.pos]
		for i, c := range due {
			due[i] = nil
			fn(c)
		}
		w.slots[w.pos] = due[:0]
		w.next = w.next.Add(w.tick)
	}
}

var pingFrame = frame(opText, "2")

func (s *Server) heartbeat(c *conn) {
	if c.st == stClosed || c.st == stHTTP {
		return
	}
	switch c.hb {
	case hbAwait:
		s.closeConn(c)
		return
	case hbPonged:
		if d := s.cfg.PingInterval - s.cfg.PingTimeout; d > 0 {
			c.hb = hbIdle
			s.wheel.add(c, d)
			return
		}
	}
	c.hb = hbAwait
	s.send(c, pingFrame)
	s.wheel.add(c, s.cfg.PingTimeout)
}

// ---- net/http hand-off ---------------------------------------------------------

// chanListener is the net.Listener net/http serves: connections arrive from
// the loop after their request head was read.
type chanListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	addr net.Addr
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// prefixConn replays the bytes the loop already read.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}
