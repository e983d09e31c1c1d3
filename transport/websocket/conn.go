package websocket

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Errors returned by Conn writes.
var (
	ErrClosed    = errors.New("websocket: connection closed")
	ErrQueueFull = errors.New("websocket: send queue full")
)

// Handler receives a connection's messages and its end. Calls for one
// connection are sequential. OnMessage owns data.
type Handler interface {
	OnMessage(c *Conn, binary bool, data []byte)
	OnClose(c *Conn, err error)
}

// Mode selects how connections are read.
type Mode int

const (
	// ModeEpoll reads every connection from a few epoll loops (Linux).
	ModeEpoll Mode = iota
	// ModeGoroutine reads each connection from its own goroutine.
	ModeGoroutine
)

// Options configure a Server.
type Options struct {
	Mode Mode
	// MaxMessage bounds one reassembled message (default 1 MB).
	MaxMessage int
	// MaxQueue bounds the bytes queued for one connection (default 4 MB,
	// at most 1 GiB); writes beyond it fail with ErrQueueFull.
	MaxQueue int
	// Pollers is the number of epoll loops (default 1).
	Pollers int
	// CloseTimeout bounds how long a closing connection may take to flush.
	CloseTimeout time.Duration
	// CheckOrigin, when set, must approve the request's Origin.
	CheckOrigin func(r *http.Request) bool
}

// Server upgrades HTTP requests and owns the read loops and the flusher.
type Server struct {
	opts    Options
	pollers []*poller
	flusher *flusher
	once    sync.Once
	initErr error
	next    uint32
	mu      sync.Mutex
	open    atomic.Int64
	// conflated counts queued frames replaced by a newer one of their key.
	conflated atomic.Int64
}

// Conflated returns the number of queued frames replaced by a newer frame
// of the same key since the server started.
func (s *Server) Conflated() int64 { return s.conflated.Load() }

// Open returns the number of connections not yet torn down.
func (s *Server) Open() int { return int(s.open.Load()) }

// NewServer returns a Server; its loops start on first use.
func NewServer(opts Options) *Server {
	if opts.MaxMessage <= 0 {
		opts.MaxMessage = 1 << 20
	}
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = 4 << 20
	}
	opts.MaxQueue = min(opts.MaxQueue, 1<<30) // Conn.queued is an int32
	if opts.Pollers <= 0 {
		opts.Pollers = 1
	}
	if opts.CloseTimeout <= 0 {
		opts.CloseTimeout = 5 * time.Second
	}
	return &Server{opts: opts}
}

func (s *Server) init() error {
	s.once.Do(func() {
		s.flusher = newFlusher()
		if s.opts.Mode == ModeEpoll {
			for i := 0; i < s.opts.Pollers; i++ {
				p, err := newPoller(s)
				if err != nil {
					s.initErr = err
					return
				}
				s.pollers = append(s.pollers, p)
			}
		}
	})
	return s.initErr
}

// Conn is one server-side websocket connection.
//
// In epoll mode it owns its socket descriptor (fd) and has no net; in
// goroutine mode net holds the net.Conn. State only some connections need
// (a partial frame, a close under way) hangs off nil pointers.
//
// Concurrency: the fields from mu on are guarded by mu; rd is used by the
// one reader of the connection (its epoll loop or its goroutine); srv, h,
// net and poller are set before the first read and not changed after,
// except net, cleared by own before the connection is published.
type Conn struct {
	srv    *Server
	net    *netConn // goroutine mode; nil in epoll mode
	fd     ownedFD  // epoll mode
	h      Handler
	poller *poller // epoll mode
	rd     reader

	mu        sync.Mutex
	queue     *[][]byte      // pending frames; nil while idle (arrays are pooled)
	schedNext *Conn          // next on the flusher's stack while scheduled
	keyed     map[string]int // conflation key -> index in queue, while lagging
	end       *closeState    // set by the first close
	queued    int32          // bytes queued, at most Options.MaxQueue
	scheduled bool
	waiting   bool // waiting for the socket to become writable
	closing   bool // no more writes; close once flushed
	closed    bool
}

// netConn is a goroutine-mode connection's net.Conn and, unless it is a
// stream connection such as TLS, its RawConn for writev.
type netConn struct {
	nc net.Conn
	rc syscall.RawConn
}

// closeState is a closing connection's deadline and the error its handler
// will be told.
type closeState struct {
	timer *time.Timer
	err   error
}

// closeErr returns the error the close was asked with. c.mu must be held.
func (c *Conn) closeErr() error {
	if c.end == nil {
		return nil
	}
	return c.end.err
}

// stream reports a connection without a descriptor (TLS): written by a
// goroutine per flush, not by writev.
func (c *Conn) stream() bool { return c.poller == nil && c.net.rc == nil }

// RemoteAddr returns the peer address; nil once an epoll-mode connection
// is closed (it is asked of the kernel, not kept).
func (c *Conn) RemoteAddr() net.Addr {
	if c.net != nil {
		return c.net.nc.RemoteAddr()
	}
	if !c.fd.acquire() {
		return nil
	}
	sa, err := unix.Getpeername(int(c.fd.num))
	c.fd.release()
	if err != nil {
		return nil
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]).To16(), Port: sa.Port}
	case *unix.SockaddrInet6:
		a := &net.TCPAddr{IP: append(net.IP(nil), sa.Addr[:]...), Port: sa.Port}
		if sa.ZoneId != 0 {
			a.Zone = strconv.Itoa(int(sa.ZoneId))
		}
		return a
	}
	return nil
}

const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// AcceptKey computes Sec-WebSocket-Accept for a Sec-WebSocket-Key.
func AcceptKey(key string) string {
	h := sha1.New()
	h.Write([]byte(key))
	h.Write([]byte(acceptGUID))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// HandshakeError describes a refused upgrade.
type HandshakeError struct{ Reason string }

func (e *HandshakeError) Error() string { return "websocket: " + e.Reason }

// CheckRequest validates an upgrade request without answering it.
func CheckRequest(r *http.Request) error {
	switch {
	case r.Method != http.MethodGet:
		return &HandshakeError{"method must be GET"}
	case !headerHasToken(r.Header, "Connection", "upgrade"):
		return &HandshakeError{"missing Connection: upgrade"}
	case !headerHasToken(r.Header, "Upgrade", "websocket"):
		return &HandshakeError{"missing Upgrade: websocket"}
	case r.Header.Get("Sec-Websocket-Version") != "13":
		return &HandshakeError{"unsupported Sec-WebSocket-Version"}
	case r.Header.Get("Sec-Websocket-Key") == "":
		return &HandshakeError{"missing Sec-WebSocket-Key"}
	}
	return nil
}

// Upgrade completes the opening handshake, takes the connection over from
// net/http and starts reading it. initial frames, when given, are written
// right after the 101 response in the same write. On a request error it
// answers 400 and returns the error.
func (s *Server) Upgrade(w http.ResponseWriter, r *http.Request, h Handler, initial ...[]byte) (*Conn, error) {
	return s.UpgradeWith(w, r, h, UpgradeOptions{Initial: initial})
}

// UpgradeOptions tune UpgradeWith.
type UpgradeOptions struct {
	// Initial frames are written right after the 101 response, in the same write.
	Initial [][]byte
	// Before, when set, runs after the handshake and before the first read,
	// so the owner can record the connection before any message or close.
	Before func(*Conn)
}

// UpgradeWith is Upgrade with options.
func (s *Server) UpgradeWith(w http.ResponseWriter, r *http.Request, h Handler, opts UpgradeOptions) (*Conn, error) {
	initial := opts.Initial
	if err := CheckRequest(r); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, err
	}
	if s.opts.CheckOrigin != nil && !s.opts.CheckOrigin(r) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return nil, &HandshakeError{"origin not allowed"}
	}
	if err := s.init(); err != nil || s.flusher == nil {
		http.Error(w, "websocket unavailable", http.StatusServiceUnavailable)
		if err == nil {
			err = ErrClosed
		}
		return nil, err
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "websocket: hijacking not supported", http.StatusInternalServerError)
		return nil, &HandshakeError{"response does not support hijacking"}
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		return nil, fmt.Errorf("websocket: hijack: %w", err)
	}
	// A connection without a file descriptor (TLS) is a stream connection:
	// read by its own goroutine and written by a goroutine per flush, in
	// either mode; the others use the raw fd.
	var rc syscall.RawConn
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err = sc.SyscallConn(); err != nil {
			nc.Close()
			return nil, fmt.Errorf("websocket: raw conn: %w", err)
		}
	}
	c := &Conn{srv: s, net: &netConn{nc: nc, rc: rc}, h: h}
	c.fd.num = -1
	s.open.Add(1)
	c.rd.max = int32(min(s.opts.MaxMessage, math.MaxInt32))
	_ = nc.SetDeadline(time.Time{})
	epoll := s.opts.Mode == ModeEpoll && rc != nil

	resp := make([]byte, 0, 160)
	resp = append(resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	resp = append(resp, AcceptKey(r.Header.Get("Sec-Websocket-Key"))...)
	resp = append(resp, "\r\n\r\n"...)
	for _, f := range initial {
		resp = append(resp, f...)
	}
	if _, err := nc.Write(resp); err != nil {
		nc.Close()
		s.open.Add(-1)
		return nil, fmt.Errorf("websocket: write handshake: %w", err)
	}
	// Bytes the client sent right after its request are in the bufio reader.
	var early []byte
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ = brw.Reader.Peek(n)
		early = append([]byte(nil), early...)
	}
	var p *poller
	if epoll {
		// Chosen before Before: once the owner has the connection, writes
		// (and a teardown reading c.poller) may start.
		p = s.pollers[int(s.nextIndex())%len(s.pollers)]
		if err := c.own(); err != nil {
			s.open.Add(-1)
			return nil, err
		}
		c.poller = p
	}
	if opts.Before != nil {
		opts.Before(c)
	}
	if epoll {
		if len(early) > 0 {
			if err := c.rd.feed(early, c.emit); err != nil {
				c.fail(err)
				return c, nil
			}
		}
		// Registered under c.mu, so a teardown (a failed write can come
		// first) either precedes it, and the fd, maybe reused already, is
		// not registered, or follows it and removes it.
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return c, nil
		}
		err := p.add(c)
		c.mu.Unlock()
		if err != nil {
			c.teardown(err)
			return nil, err
		}
	} else {
		go c.readLoop(early)
	}
	return c, nil
}

// own takes the socket over from the net.Conn: a duplicate of its
// descriptor (sharing the nonblocking file) becomes the connection's own,
// and the net.Conn is closed, which takes the original descriptor out of the
// runtime's poller. The write side's readiness is then the poller's too.
func (c *Conn) own() error {
	var dup int
	var err error
	if cerr := c.net.rc.Control(func(fd uintptr) {
		dup, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		c.net.nc.Close()
		return fmt.Errorf("websocket: take over the descriptor: %w", err)
	}
	c.fd.num = int32(dup)
	_ = c.net.nc.Close()
	c.net = nil
	return nil
}

// Close stops the read loops and the flusher, after the connections still
// closing have flushed their last frames (at most CloseTimeout).
// Connections must be closed first (Engine.IO's Close does it).
func (s *Server) Close() {
	deadline := time.Now().Add(s.opts.CloseTimeout)
	for s.open.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// The loops are stopped, not unset: connections still read s.flusher
	// (its add is a no-op once stopped).
	s.once.Do(func() {}) // no init after Close
	for _, p := range s.pollers {
		p.stop()
	}
	if s.flusher != nil {
		s.flusher.stop()
	}
}

func (s *Server) nextIndex() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	return s.next
}

// emit dispatches one complete message or control frame.
func (c *Conn) emit(op byte, payload []byte) error {
	switch op {
	case OpText, OpBinary:
		c.h.OnMessage(c, op == OpBinary, payload)
	case OpPing:
		_ = c.WriteFrames(AppendFrame(nil, OpPong, payload))
	case OpClose:
		// Echo the code and close.
		var echo []byte
		if len(payload) >= 2 {
			echo = payload[:2]
		}
		c.closeWith(AppendFrame(nil, OpClose, echo), io.EOF)
		return errClosedByPeer
	}
	return nil
}

var errClosedByPeer = errors.New("websocket: closed by peer")

// readLoop is the goroutine-per-connection reader (ModeGoroutine).
func (c *Conn) readLoop(early []byte) {
	if len(early) > 0 {
		if err := c.rd.feed(early, c.emit); err != nil {
			c.fail(err)
			return
		}
	}
	buf := make([]byte, 4096)
	for {
		n, err := c.net.nc.Read(buf)
		if n > 0 {
			if ferr := c.rd.feed(buf[:n], c.emit); ferr != nil {
				c.fail(ferr)
				return
			}
		}
		if err != nil {
			c.teardown(err)
			return
		}
	}
}

// fail handles a read-side error: protocol errors get a close frame.
func (c *Conn) fail(err error) {
	if errors.Is(err, errClosedByPeer) {
		return
	}
	var ce *CloseError
	if errors.As(err, &ce) {
		c.closeWith(AppendFrame(nil, OpClose, closePayload(ce.Code, ce.Reason)), err)
		return
	}
	c.teardown(err)
}

func closePayload(code int, reason string) []byte {
	if len(reason) > 123 {
		reason = strings.ToValidUTF8(reason[:123], "") // never cut a character in two
	}
	return append([]byte{byte(code >> 8), byte(code)}, reason...)
}

// WriteFrames queues pre-encoded frames. The frames must not be modified
// afterwards: a broadcast shares them among recipients.
func (c *Conn) WriteFrames(frames ...[]byte) error {
	size := 0
	for _, f := range frames {
		size += len(f)
	}
	c.mu.Lock()
	if c.closing || c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if int(c.queued)+size > c.srv.opts.MaxQueue {
		c.mu.Unlock()
		return ErrQueueFull
	}
	c.push(frames...)
	c.queued += int32(size)
	sched := !c.scheduled && !c.waiting
	if sched {
		c.scheduled = true
	}
	c.mu.Unlock()
	if sched {
		c.srv.flusher.add(c)
	}
	return nil
}

// WriteKeyed queues a frame that supersedes any frame of the same key still
// waiting in the queue: a connection that lags keeps only the newest frame
// per key (e.g. the latest quote of a symbol) instead of every one.
func (c *Conn) WriteKeyed(key string, frame []byte) error {
	c.mu.Lock()
	if c.closing || c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if i, ok := c.keyed[key]; ok {
		c.queued += int32(len(frame) - len((*c.queue)[i]))
		(*c.queue)[i] = frame
		c.mu.Unlock()
		c.srv.conflated.Add(1)
		return nil
	}
	if int(c.queued)+len(frame) > c.srv.opts.MaxQueue {
		c.mu.Unlock()
		return ErrQueueFull
	}
	if n := c.pending(); n > 0 {
		// Lagging: remember where this key's frame is.
		if c.keyed == nil {
			c.keyed = make(map[string]int)
		}
		c.keyed[key] = n
	}
	c.push(frame)
	c.queued += int32(len(frame))
	sched := !c.scheduled && !c.waiting
	if sched {
		c.scheduled = true
	}
	c.mu.Unlock()
	if sched {
		c.srv.flusher.add(c)
	}
	return nil
}

// WriteMessage encodes and queues one text or binary message.
func (c *Conn) WriteMessage(binary bool, data []byte) error {
	op := byte(OpText)
	if binary {
		op = OpBinary
	}
	return c.WriteFrames(AppendFrame(make([]byte, 0, FrameSize(len(data))), op, data))
}

// Buffered returns the bytes queued but not yet written.
func (c *Conn) Buffered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int(c.queued)
}

// Close sends a close frame (no status, as engine.io does) after the queued
// frames and closes the connection once they are written.
func (c *Conn) Close() { c.closeWith(AppendFrame(nil, OpClose, nil), nil) }

// CloseWithCode is Close with a status code and reason.
func (c *Conn) CloseWithCode(code int, reason string) {
	c.closeWith(AppendFrame(nil, OpClose, closePayload(code, reason)), nil)
}

// Abort closes the connection at once, dropping queued frames.
func (c *Conn) Abort() { c.teardown(ErrClosed) }

func (c *Conn) closeWith(frame []byte, cause error) {
	c.mu.Lock()
	if c.closing || c.closed {
		c.mu.Unlock()
		return
	}
	c.closing = true
	c.end = &closeState{err: cause}
	c.push(frame)
	c.queued += int32(len(frame))
	sched := !c.scheduled && !c.waiting
	if sched {
		c.scheduled = true
	}
	c.end.timer = time.AfterFunc(c.srv.opts.CloseTimeout, func() { c.teardown(ErrClosed) })
	c.mu.Unlock()
	if sched {
		c.srv.flusher.add(c)
	}
}

// framePool recycles queue arrays, so an idle connection holds none and a
// busy one does not allocate one per flush.
var framePool = sync.Pool{New: func() any { return new([][]byte) }}

// maxPooledFrames bounds the arrays kept in framePool.
const maxPooledFrames = 1024

// push appends frames to the queue, taking a pooled array when the queue is
// empty. c.mu must be held.
func (c *Conn) push(frames ...[]byte) {
	if c.queue == nil {
		c.queue = framePool.Get().(*[][]byte)
	}
	*c.queue = append(*c.queue, frames...)
}

// pending returns the number of queued frames. c.mu must be held.
func (c *Conn) pending() int {
	if c.queue == nil {
		return 0
	}
	return len(*c.queue)
}

// streamWriteTimeout bounds one write to a stream (TLS) connection.
const streamWriteTimeout = time.Minute

// streamWrite writes a stream connection's frames, then does what flush
// does after a write.
func (c *Conn) streamWrite(q *[][]byte) {
	_ = c.net.nc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	bufs := net.Buffers(*q)
	written, err := bufs.WriteTo(c.net.nc)
	c.mu.Lock()
	c.queued -= int32(written)
	recycle(q)
	c.waiting = false
	more := err == nil && c.pending() > 0 && !c.closed
	if !more {
		c.scheduled = false
	}
	done := c.closing && c.queued == 0
	cause := c.closeErr()
	c.mu.Unlock()
	switch {
	case err != nil:
		c.teardown(fmt.Errorf("websocket: write: %w", err))
	case done:
		c.teardown(cause)
	case more:
		c.srv.flusher.add(c)
	}
}

// recycle returns a written queue's array to the pool.
func recycle(q *[][]byte) {
	if cap(*q) > maxPooledFrames {
		return
	}
	clear((*q)[:cap(*q)])
	*q = (*q)[:0]
	framePool.Put(q)
}

// flush writes the queue with writev until it is empty or the socket is full.
// w is the calling goroutine's writer.
func (c *Conn) flush(w *writer) {
	c.mu.Lock()
	if c.closed {
		c.scheduled = false
		c.mu.Unlock()
		return
	}
	q := c.queue
	c.queue = nil
	c.keyed = nil
	if c.stream() {
		// A stream connection blocks in Write: its own goroutine writes,
		// so a slow TLS peer never stalls the flusher.
		if q == nil {
			c.scheduled = false
			c.mu.Unlock()
			return
		}
		c.waiting = true
		c.mu.Unlock()
		go c.streamWrite(q)
		return
	} // frames taken for writing can no longer be replaced
	c.mu.Unlock()
	var bufs [][]byte
	if q != nil {
		bufs = *q
	}

	// Under a hold on the fd (the RawConn's or our own), so it cannot be
	// closed, and its number reused by another connection, mid-write.
	var written int
	var err error
	if c.poller != nil {
		if c.fd.acquire() {
			written, err = writev(int(c.fd.num), bufs)
			c.fd.release()
		} else {
			err = ErrClosed
		}
	} else {
		w.bufs, w.n, w.err = bufs, 0, nil
		rerr := c.net.rc.Write(w.fn)
		written, err = w.n, w.err
		w.bufs = nil
		if rerr != nil && err == nil {
			err = fmt.Errorf("websocket: write: %w", rerr)
		}
	}

	c.mu.Lock()
	c.queued -= int32(written)
	// Put back what was not written, in front of anything queued meanwhile.
	left := trimWritten(bufs, written) // a copy, or nil
	if q != nil {
		recycle(q)
	}
	if len(left) > 0 {
		if c.queue == nil {
			c.queue = framePool.Get().(*[][]byte)
		}
		*c.queue = append(left, *c.queue...)
		for k, i := range c.keyed {
			c.keyed[k] = i + len(left)
		}
	}
	if err == nil && len(left) > 0 {
		c.waiting = true
	}
	more := err == nil && !c.waiting && c.pending() > 0
	if !more {
		c.scheduled = false
	}
	done := c.closing && c.queued == 0
	cause := c.closeErr()
	waiting := c.waiting
	c.mu.Unlock()

	switch {
	case err != nil:
		c.teardown(err)
	case done:
		c.teardown(cause)
	case more:
		c.srv.flusher.add(c)
	case waiting && c.poller != nil:
		c.poller.awaitWritable(c)
	case waiting:
		go c.awaitWritable()
	}
}

// awaitWritable parks on the runtime poller until the socket can take more
// (goroutine mode; the epoll loop watches its own connections).
func (c *Conn) awaitWritable() {
	first := true
	_ = c.net.rc.Write(func(uintptr) bool {
		if first {
			first = false
			return false
		}
		return true
	})
	c.writable()
}

// writable reschedules a connection that waited for its socket to drain.
func (c *Conn) writable() {
	c.mu.Lock()
	c.waiting = false
	sched := !c.scheduled && c.pending() > 0 && !c.closed
	if sched {
		c.scheduled = true
	}
	c.mu.Unlock()
	if sched {
		c.srv.flusher.add(c)
	}
}

func trimWritten(bufs [][]byte, n int) [][]byte {
	for len(bufs) > 0 && n >= len(bufs[0]) {
		n -= len(bufs[0])
		bufs = bufs[1:]
	}
	if n > 0 && len(bufs) > 0 {
		bufs[0] = bufs[0][n:]
	}
	if len(bufs) == 0 {
		return nil
	}
	return append([][]byte(nil), bufs...)
}

// writev writes bufs to the nonblocking fd; it returns the bytes written and
// a fatal error (EAGAIN is not one).
func writev(fd int, bufs [][]byte) (int, error) {
	total := 0
	for len(bufs) > 0 {
		batch := bufs
		if len(batch) > 1024 {
			batch = batch[:1024]
		}
		n, err := unix.Writev(fd, batch)
		if n > 0 {
			total += n
		}
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			if err == unix.EAGAIN {
				return total, nil
			}
			return total, fmt.Errorf("websocket: write: %w", err)
		}
		// advance
		for n > 0 && len(bufs) > 0 {
			if n >= len(bufs[0]) {
				n -= len(bufs[0])
				bufs = bufs[1:]
			} else {
				// partial write of this buffer: the socket is full
				return total, nil
			}
		}
	}
	return total, nil
}

// teardown closes the connection once and reports it to the handler.
func (c *Conn) teardown(err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.queue = nil
	c.queued = 0
	if c.end != nil && c.end.timer != nil {
		c.end.timer.Stop()
	}
	c.mu.Unlock()
	if c.poller != nil {
		c.poller.remove(c)
		c.fd.close()
	} else {
		_ = c.net.nc.Close()
	}
	c.srv.open.Add(-1)
	c.h.OnClose(c, err)
}
