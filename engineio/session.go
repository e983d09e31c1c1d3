package engineio

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tradewire/tradewire/internal/timewheel"
	"github.com/tradewire/tradewire/transport/websocket"
)

// Close reasons reported to OnClose.
const (
	ReasonTransportClose = "transport close"
	ReasonTransportError = "transport error"
	ReasonPingTimeout    = "ping timeout"
	ReasonParseError     = "parse error"
	ReasonForcedClose    = "forced close"
	// ReasonSlowConsumer closes a session whose send queue overflowed.
	ReasonSlowConsumer = "slow consumer"
)

// ErrClosed is returned by Send on a closed session.
var ErrClosed = errors.New("engine.io: session closed")

var (
	pingPacket  = &Packet{Type: TypePing}
	noopPacket  = &Packet{Type: TypeNoop}
	closePacket = &Packet{Type: TypeClose}
)

// Handshake describes the HTTP request that opened a session.
type Handshake struct {
	// Header is the request's headers until Compact; use Headers to read
	// them whenever it may have run.
	Header     http.Header
	Query      url.Values
	URL        string
	RemoteAddr string
	Host       string
	Secure     bool
	XDomain    bool
	Time       time.Time
	// Tag is the result of Options.Tag for this handshake.
	Tag any

	packed string // the headers kept by Compact, "Name: value\n" each
}

// Compact keeps only the named headers and drops the query (once the layers
// above have used them, e.g. after authentication). The kept headers are
// packed into one string (one allocation instead of a map, slices and
// strings per connection): read them with Headers.
func (h *Handshake) Compact(keep []string) {
	var b strings.Builder
	for _, k := range keep {
		ck := http.CanonicalHeaderKey(k)
		for _, v := range h.Header.Values(k) {
			b.WriteString(ck)
			b.WriteString(": ")
			b.WriteString(v)
			b.WriteByte('\n')
		}
	}
	// Copies: the originals share memory with the whole request.
	h.packed = b.String()
	h.Header, h.Query, h.URL = nil, nil, strings.Clone(h.URL)
}

// Headers returns the request headers; after Compact, the kept ones in a
// new map.
func (h *Handshake) Headers() http.Header {
	if h.Header != nil || h.packed == "" {
		return h.Header
	}
	out := make(http.Header, 4)
	for line := range strings.SplitSeq(strings.TrimSuffix(h.packed, "\n"), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		out[k] = append(out[k], v)
	}
	return out
}

// keepHeaders copies the named headers of h (all of them when keep is nil),
// so a session shares no memory with its request.
func keepHeaders(h http.Header, keep []string) http.Header {
	if keep == nil {
		return h.Clone()
	}
	out := make(http.Header, len(keep))
	for _, k := range keep {
		if v := h.Values(k); len(v) > 0 {
			cp := make([]string, len(v))
			for i := range v {
				cp[i] = strings.Clone(v[i])
			}
			out[http.CanonicalHeaderKey(k)] = cp
		}
	}
	return out
}

// IP returns the remote address without its port.
func (h *Handshake) IP() string {
	host, _, err := net.SplitHostPort(h.RemoteAddr)
	if err != nil {
		return h.RemoteAddr
	}
	return host
}

// Session is one Engine.IO connection, on polling or websocket.
type Session struct {
	srv *Server
	id  string
	hs  Handshake

	handler Handler // nil until the layer above sets it

	mu        sync.Mutex
	transport string
	// The flags, together in one word (lock: mu).
	closed       bool
	pollActive   bool // polling: a GET is waiting
	posting      bool // polling: a POST is being read
	lingering    bool // closed, holding queued packets for one last GET
	upgrading    bool // a websocket probe is under way
	probeSeen    bool // the probe answered 2probe
	hbStarted    bool
	awaitingPong bool
	// polling
	buf      []*Packet
	keyed    map[string]int // conflation key -> index in buf
	bufBytes int
	pollCh   chan struct{}
	// websocket
	// active mirrors ws once the session writes to it (set and cleared
	// under mu): Send reads it without the session lock, so a broadcast
	// takes one lock per recipient (the connection's), not two.
	active  atomic.Pointer[websocket.Conn]
	ws      *websocket.Conn
	probe   *websocket.Conn
	upTimer *time.Timer
	// heartbeat: one timer on the server's wheel, armed for the next ping
	// or the pong deadline (hbAt, on the server's clock)
	hb   timewheel.Timer
	hbAt time.Duration

	// Value is free for the layer above (e.g. the Socket.IO client).
	Value any
}

func newSession(srv *Server, id string, r *http.Request, transport string) *Session {
	h := keepHeaders(r.Header, srv.opts.KeepHeaders)
	s := &Session{
		srv:       srv,
		id:        id,
		transport: transport,
		hs: Handshake{
			Header:     h,
			Query:      r.URL.Query(),
			URL:        r.URL.RequestURI(),
			RemoteAddr: r.RemoteAddr,
			Host:       r.Host,
			Secure:     r.TLS != nil,
			XDomain:    r.Header.Get("Origin") != "",
			Time:       time.Now(),
		},
	}
	if transport == "polling" {
		s.pollCh = make(chan struct{}, 1)
	}
	return s
}

// ID returns the 20-character session id.
func (s *Session) ID() string { return s.id }

// Handshake returns the opening request's details.
func (s *Session) Handshake() *Handshake { return &s.hs }

// Transport returns "polling" or "websocket".
func (s *Session) Transport() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.transport
}

// Handler receives a session's messages and its end. OnMessage calls are
// sequential per session and own data; OnClose is called once.
type Handler interface {
	OnMessage(data []byte, binary bool)
	OnClose(reason string)
}

// SetHandler sets the session's handler; call it from Server.OnConnection,
// before any message is delivered.
func (s *Session) SetHandler(h Handler) { s.handler = h }

// funcHandler adapts OnMessage and OnClose functions to a Handler.
type funcHandler struct {
	onMessage func(data []byte, binary bool)
	onClose   func(reason string)
}

func (f *funcHandler) OnMessage(data []byte, binary bool) {
	if f.onMessage != nil {
		f.onMessage(data, binary)
	}
}

func (f *funcHandler) OnClose(reason string) {
	if f.onClose != nil {
		f.onClose(reason)
	}
}

func (s *Session) funcs() *funcHandler {
	f, ok := s.handler.(*funcHandler)
	if !ok {
		f = &funcHandler{}
		s.handler = f
	}
	return f
}

// OnMessage sets a message function (a Handler set with SetHandler is replaced).
func (s *Session) OnMessage(f func(data []byte, binary bool)) { s.funcs().onMessage = f }

// OnClose sets the function called once when the session ends (a Handler
// set with SetHandler is replaced).
func (s *Session) OnClose(f func(reason string)) { s.funcs().onClose = f }

func (s *Session) openPacket(polling bool) *Packet {
	upgrades := `[]`
	if polling && s.srv.transportAllowed("websocket") {
		upgrades = `["websocket"]`
	}
	o := s.srv.opts
	data := `{"sid":"` + s.id + `","upgrades":` + upgrades + `,"pingInterval":` + msInt(o.PingInterval) +
		`,"pingTimeout":` + msInt(o.PingTimeout) + `,"maxPayload":` + strconv.Itoa(o.MaxPayload) + `}`
	return &Packet{Type: TypeOpen, Data: []byte(data)}
}

// Send queues packets for the client. Packets of one call stay together.
// A session whose queue overflows is closed as a slow consumer.
func (s *Session) Send(pkts ...*Packet) error {
	if ws := s.active.Load(); ws != nil {
		if len(pkts) == 1 {
			if p := pkts[0]; p.Key != "" {
				return s.afterWrite(ws.WriteKeyed(p.Key, p.WebSocketFrame()))
			}
			return s.afterWrite(ws.WriteFrames(pkts[0].WebSocketFrame()))
		}
		var arr [4][]byte
		frames := arr[:0]
		for _, p := range pkts {
			frames = append(frames, p.WebSocketFrame())
		}
		return s.afterWrite(ws.WriteFrames(frames...))
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if len(pkts) == 1 && pkts[0].Key != "" {
		return s.sendKeyed(pkts[0])
	}
	if s.ws != nil && !s.upgrading {
		ws := s.ws
		s.mu.Unlock()
		var arr [4][]byte
		frames := arr[:0]
		for _, p := range pkts {
			frames = append(frames, p.WebSocketFrame())
		}
		return s.afterWrite(ws.WriteFrames(frames...))
	}
	for _, p := range pkts {
		s.buf = append(s.buf, p)
		s.bufBytes += p.pollingSize() + 1
	}
	return s.afterQueue()
}

// afterWrite handles a websocket queueing error: an overflow closes the
// session as a slow consumer, asynchronously, because Send is called from
// broadcast loops that hold the socket layer's locks.
func (s *Session) afterWrite(err error) error {
	if errors.Is(err, websocket.ErrQueueFull) {
		go s.close(ReasonSlowConsumer, true)
	}
	return err
}

// afterQueue finishes a polling enqueue (s.mu held on entry, released):
// bound check, then wake a pending GET.
func (s *Session) afterQueue() error {
	over := s.bufBytes > s.srv.opts.MaxBufferedBytes
	s.mu.Unlock()
	if over {
		return s.afterWrite(websocket.ErrQueueFull)
	}
	s.wakePoll()
	return nil
}

// sendKeyed queues a conflatable packet (s.mu held on entry).
func (s *Session) sendKeyed(p *Packet) error {
	if s.ws != nil && !s.upgrading {
		ws := s.ws
		s.mu.Unlock()
		return s.afterWrite(ws.WriteKeyed(p.Key, p.WebSocketFrame()))
	}
	if i, ok := s.keyed[p.Key]; ok && i < len(s.buf) && s.buf[i].Key == p.Key {
		s.bufBytes += p.pollingSize() - s.buf[i].pollingSize()
		s.buf[i] = p
		s.mu.Unlock()
		s.srv.conflated.Add(1)
		return nil
	}
	if len(s.buf) > 0 {
		if s.keyed == nil {
			s.keyed = make(map[string]int)
		}
		s.keyed[p.Key] = len(s.buf)
	}
	s.buf = append(s.buf, p)
	s.bufBytes += p.pollingSize() + 1
	return s.afterQueue()
}

// Writable reports whether the client keeps up: nothing is waiting to be
// written. Volatile packets are skipped for sessions that are not writable.
func (s *Session) Writable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.ws != nil && !s.upgrading {
		return s.ws.Buffered() == 0
	}
	return s.pollActive && len(s.buf) == 0
}

// Buffered returns the bytes waiting to be written to the client.
func (s *Session) Buffered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ws != nil && !s.upgrading {
		return s.ws.Buffered()
	}
	return s.bufBytes
}

// wakePoll wakes a pending GET. s.pollCh exists on polling sessions only
// (created with the session, never changed).
func (s *Session) wakePoll() {
	if s.pollCh == nil {
		return
	}
	select {
	case s.pollCh <- struct{}{}:
	default:
	}
}

// Close ends the session from the server side with reason.
func (s *Session) Close(reason string) { s.close(reason, true) }

// close ends the session. notify sends the close to the client where the
// transport allows (polling: a close packet; websocket: a close frame).
func (s *Session) close(reason string, notify bool) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	if s.hbStarted {
		s.srv.wheel.Stop(&s.hb)
	}
	if s.upTimer != nil {
		s.upTimer.Stop()
	}
	ws, probe, transport := s.ws, s.probe, s.transport
	s.ws, s.probe = nil, nil
	s.active.Store(nil)
	// Messages still queued for a polling client (e.g. a Socket.IO
	// DISCONNECT) go out first, and the close packet with the GET after
	// them, as engine.io does: the client handles the close at once but
	// the messages a tick later, so a shared response would lose them.
	linger := false
	if transport == "polling" && notify {
		switch {
		case reason == ReasonForcedClose && hasMessages(s.buf):
			s.lingering = true
			linger = true
		case s.pollActive:
			s.buf = append(s.buf, closePacket) // the pending GET carries it
		}
	}
	s.mu.Unlock()

	if ws != nil {
		if notify {
			ws.Close()
		} else {
			ws.Abort()
		}
	}
	if probe != nil {
		probe.Abort()
	}
	s.wakePoll()
	if linger {
		time.AfterFunc(s.srv.opts.PingTimeout, func() { s.srv.remove(s) })
	} else {
		s.srv.remove(s)
	}
	if s.srv.opts.Observer != nil {
		s.srv.opts.Observer.SessionClosed(transport, reason)
	}
	if s.handler != nil {
		s.handler.OnClose(reason)
	}
}

func (s *Session) onTransportClose(reason string, _ error) { s.close(reason, false) }

func hasMessages(pkts []*Packet) bool {
	for _, p := range pkts {
		if p.Type == TypeMessage {
			return true
		}
	}
	return false
}

// ---- heartbeat ----

func (s *Session) startHeartbeat() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.hbStarted {
		return
	}
	s.hbStarted = true
	s.hbAt = s.srv.clock() + s.srv.opts.PingInterval
	s.srv.wheel.Schedule(&s.hb, s.srv.opts.PingInterval, (*heartbeat)(s))
}

// heartbeat is a Session seen as the owner of its wheel timer (keeps
// Expire off the Session's API).
type heartbeat Session

// Expire runs on the wheel's goroutine: send the ping, or close the session
// whose pong deadline passed (in its own goroutine: closing may be slow).
func (h *heartbeat) Expire() { (*Session)(h).onHeartbeat() }

func (s *Session) onHeartbeat() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if d := s.hbAt - s.srv.clock(); d > time.Millisecond {
		s.srv.wheel.Schedule(&s.hb, d, (*heartbeat)(s)) // moved by a pong meanwhile
		s.mu.Unlock()
		return
	}
	if s.awaitingPong {
		s.mu.Unlock()
		go s.close(ReasonPingTimeout, true)
		return
	}
	s.awaitingPong = true
	// The pong deadline counts from when the ping was due, not from when
	// the wheel got to it (up to a tick later), so requests see it exactly
	// (handshake + pingInterval + pingTimeout); a wheel running far behind
	// (an overloaded node) counts from now instead, not to punish clients.
	now, base := s.srv.clock(), s.hbAt
	if now-base > 2*s.srv.wheel.Tick() {
		base = now
	}
	s.hbAt = base + s.srv.opts.PingTimeout
	s.srv.wheel.Schedule(&s.hb, s.hbAt-now, (*heartbeat)(s))
	s.mu.Unlock()
	_ = s.Send(pingPacket)
}

func (s *Session) onPong() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.awaitingPong || s.closed {
		return
	}
	s.awaitingPong = false
	// The next ping is due an interval after the pong: re-arm (the timer
	// was set for the pong deadline, which may be later).
	s.hbAt = s.srv.clock() + s.srv.opts.PingInterval
	s.srv.wheel.Schedule(&s.hb, s.srv.opts.PingInterval, (*heartbeat)(s))
}

// onPacket handles one packet from the client on the active transport.
func (s *Session) onPacket(p *Packet) {
	switch p.Type {
	case TypePong:
		s.onPong()
	case TypeMessage:
		if s.handler != nil {
			s.handler.OnMessage(p.Data, p.Binary)
		}
	case TypeClose:
		s.close(ReasonTransportClose, false)
	case TypePing:
		// v4 heartbeats go from server to client only.
		s.close(ReasonTransportError, true)
	}
}

// ---- polling ----

// expired reports (under s.mu) a pong deadline that passed while its timer
// has not fired yet, so requests see the deadline exactly.
func (s *Session) expiredLocked() bool {
	return s.awaitingPong && s.srv.clock() >= s.hbAt
}

func (s *Session) servePoll(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.expiredLocked() {
		s.mu.Unlock()
		s.close(ReasonPingTimeout, false)
		writeCodeError(w, CodeUnknownSID)
		return
	}
	if s.transport != "polling" || (s.ws != nil && !s.upgrading) {
		s.mu.Unlock()
		writeCodeError(w, CodeBadRequest)
		return
	}
	if s.pollActive {
		s.mu.Unlock()
		writeCodeError(w, CodeBadRequest)
		s.close(ReasonTransportError, true)
		return
	}
	if s.closed && !s.lingering {
		s.mu.Unlock()
		writeCodeError(w, CodeUnknownSID)
		return
	}
	if s.lingering {
		pkts := s.buf
		s.buf, s.bufBytes, s.keyed = nil, 0, nil
		if len(pkts) == 0 {
			// The queued messages went out: now the close.
			pkts = []*Packet{closePacket}
			s.lingering = false
			s.mu.Unlock()
			s.srv.remove(s)
		} else {
			s.mu.Unlock()
		}
		s.writePolling(w, r, pkts)
		return
	}
	s.pollActive = true
	// drain a stale wake-up
	select {
	case <-s.pollCh:
	default:
	}
	for len(s.buf) == 0 && !s.closed && !s.probeSeen && s.ws == nil {
		s.mu.Unlock()
		select {
		case <-s.pollCh:
		case <-r.Context().Done():
			s.mu.Lock()
			s.pollActive = false
			s.mu.Unlock()
			s.close(ReasonTransportError, false)
			return
		}
		s.mu.Lock()
	}
	pkts := s.buf
	s.buf, s.bufBytes, s.keyed = nil, 0, nil
	if len(pkts) == 0 {
		pkts = []*Packet{noopPacket}
	}
	s.pollActive = false
	s.mu.Unlock()
	s.writePolling(w, r, pkts)
}

func (s *Session) writePolling(w http.ResponseWriter, _ *http.Request, pkts []*Packet) {
	body := EncodePayload(pkts)
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=UTF-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func (s *Session) servePost(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.expiredLocked() {
		s.mu.Unlock()
		s.close(ReasonPingTimeout, false)
		writeCodeError(w, CodeUnknownSID)
		return
	}
	if s.transport != "polling" || s.closed || (s.ws != nil && !s.upgrading) {
		s.mu.Unlock()
		writeCodeError(w, CodeBadRequest)
		return
	}
	if s.posting {
		s.mu.Unlock()
		writeCodeError(w, CodeBadRequest)
		s.close(ReasonTransportError, true)
		return
	}
	s.posting = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.posting = false
		s.mu.Unlock()
	}()
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/octet-stream") {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "")
		s.close(ReasonTransportError, true)
		return
	}
	max := s.srv.opts.MaxPayload
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(max)+1))
	if err != nil {
		writeCodeError(w, CodeBadRequest)
		s.close(ReasonTransportError, true)
		return
	}
	if len(body) > max {
		writeError(w, http.StatusRequestEntityTooLarge, CodeBadRequest, "Payload too large")
		s.close(ReasonTransportError, true)
		return
	}
	pkts, perr := DecodePayload(body)
	if perr != nil {
		writeCodeError(w, CodeBadRequest)
		s.close(ReasonParseError, true)
		return
	}
	for _, p := range pkts {
		s.onPacket(p)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html")
	h.Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("ok"))
}

// ---- websocket ----

func (s *Session) attachWebSocket(c *websocket.Conn) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Abort()
		return
	}
	s.ws = c
	// Packets sent between the handshake and this attach were buffered.
	if len(s.buf) > 0 {
		frames := make([][]byte, len(s.buf))
		for i, p := range s.buf {
			frames[i] = p.WebSocketFrame()
		}
		_ = c.WriteFrames(frames...)
		s.buf, s.bufBytes, s.keyed = nil, 0, nil
	}
	s.active.Store(c) // after the buffered packets: nothing overtakes them
	s.mu.Unlock()
}

// wsHandler routes websocket events to the session: the active websocket
// or an upgrade probe.
type wsHandler Session

func (h *wsHandler) OnMessage(c *websocket.Conn, binary bool, data []byte) {
	s := (*Session)(h)
	s.mu.Lock()
	active := s.ws == c && !s.upgrading
	probing := s.probe == c
	s.mu.Unlock()
	switch {
	case active:
		if binary {
			s.onPacket(&Packet{Type: TypeMessage, Binary: true, Data: data})
			return
		}
		p, err := DecodePacket(data)
		if err != nil {
			s.close(ReasonParseError, true)
			return
		}
		s.onPacket(p)
	case probing:
		s.onProbeMessage(c, binary, data)
	default:
		// a websocket for a session that could not take it (e.g. ws-only
		// session before attach): ignore until attached.
		s.mu.Lock()
		attachedLater := s.ws == nil && s.transport == "websocket" && !s.closed
		s.mu.Unlock()
		if attachedLater {
			s.attachWebSocket(c)
			h.OnMessage(c, binary, data)
		}
	}
}

func (h *wsHandler) OnClose(c *websocket.Conn, err error) {
	s := (*Session)(h)
	s.mu.Lock()
	active := s.ws == c && !s.upgrading
	if s.probe == c {
		s.probe = nil
		s.upgrading = false
		s.probeSeen = false
		if s.upTimer != nil {
			s.upTimer.Stop()
		}
	}
	s.mu.Unlock()
	if active {
		reason := ReasonTransportClose
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, websocket.ErrClosed) {
			reason = ReasonTransportError
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			reason = ReasonTransportError
		}
		s.close(reason, false)
	}
}

// closingHandler serves a websocket that completed its handshake only to be
// closed (a second upgrade attempt).
type closingHandler struct{}

func (closingHandler) OnMessage(*websocket.Conn, bool, []byte) {}
func (closingHandler) OnClose(*websocket.Conn, error)          {}

func (s *Session) serveUpgrade(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ok := !s.closed && s.transport == "polling" && !s.upgrading && s.ws == nil
	if ok {
		s.upgrading = true
	}
	s.mu.Unlock()
	if !ok {
		if c, err := s.srv.ws.Upgrade(w, r, closingHandler{}); err == nil {
			c.Close()
		}
		return
	}
	_, err := s.srv.ws.UpgradeWith(w, r, (*wsHandler)(s), websocket.UpgradeOptions{
		// Record the probe before the first read, so an immediate 2probe
		// (or close) is never missed.
		Before: func(c *websocket.Conn) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.closed {
				return
			}
			s.probe = c
			s.upTimer = time.AfterFunc(s.srv.opts.UpgradeTimeout, func() {
				s.mu.Lock()
				timedOut := s.probe == c
				s.mu.Unlock()
				if timedOut {
					c.Close()
				}
			})
		},
	})
	if err != nil {
		s.mu.Lock()
		s.upgrading = false
		s.mu.Unlock()
		return
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		s.mu.Lock()
		c := s.probe
		s.mu.Unlock()
		if c != nil {
			c.Abort()
		}
	}
}

func (s *Session) onProbeMessage(c *websocket.Conn, binary bool, data []byte) {
	if binary {
		c.Close()
		return
	}
	switch string(data) {
	case "2probe":
		_ = c.WriteFrames((&Packet{Type: TypePong, Data: []byte("probe")}).WebSocketFrame())
		s.mu.Lock()
		s.probeSeen = true
		s.mu.Unlock()
		// Release a pending GET with a noop so the client can pause polling.
		s.wakePoll()
	case "5":
		s.completeUpgrade(c)
	default:
		c.Close()
	}
}

func (s *Session) completeUpgrade(c *websocket.Conn) {
	s.mu.Lock()
	if s.closed || s.probe != c {
		s.mu.Unlock()
		return
	}
	if s.upTimer != nil {
		s.upTimer.Stop()
	}
	// Queue what polling still had on the websocket before any Send can
	// use it: nothing overtakes the buffered packets.
	var err error
	if len(s.buf) > 0 {
		frames := make([][]byte, len(s.buf))
		for i, p := range s.buf {
			frames[i] = p.WebSocketFrame()
		}
		err = c.WriteFrames(frames...)
	}
	s.probe = nil
	s.ws = c
	s.upgrading = false
	s.transport = "websocket"
	s.buf, s.bufBytes, s.keyed = nil, 0, nil
	s.active.Store(c)
	s.mu.Unlock()
	s.wakePoll() // a pending GET returns a noop
	if s.srv.opts.Observer != nil {
		s.srv.opts.Observer.SessionUpgraded()
	}
	if err != nil {
		s.close(ReasonSlowConsumer, true)
	}
}
