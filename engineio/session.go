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
	Secure     bool
	XDomain    bool
	// Issued is when the handshake arrived, in Unix milliseconds (8 bytes
	// instead of a time.Time's 24 on every connection).
	Issued int64
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

	mu sync.Mutex
	// The flags, together in one word (lock: mu).
	onWS         bool // the transport is websocket (polling until an upgrade)
	closed       bool
	pollActive   bool // polling: a GET is waiting
	posting      bool // polling: a POST is being read
	lingering    bool // closed, holding queued packets for one last GET
	upgrading    bool // a websocket probe is under way
	probeSeen    bool // the probe answered 2probe
	awaitingPong bool
	// poll is the polling state: the queue a GET drains and the upgrade
	// probe. It exists while the session polls (and, briefly, between a
	// websocket handshake and its attach); an upgrade or attach frees it.
	poll *pollState
	// websocket
	// active mirrors ws once the session writes to it (set and cleared
	// under mu): Send reads it without the session lock, so a broadcast
	// takes one lock per recipient (the connection's), not two.
	active atomic.Pointer[websocket.Conn]
	ws     *websocket.Conn
	// heartbeat: one timer on the server's wheel, armed for the next ping
	// or the pong deadline (hbAt, on the server's clock)
	hb   timewheel.Timer
	hbAt time.Duration
}

func newSession(srv *Server, id string, r *http.Request, transport string) *Session {
	h := keepHeaders(r.Header, srv.opts.KeepHeaders)
	s := &Session{
		srv:  srv,
		id:   id,
		onWS: transport == transportWebSocket,
		hs: Handshake{
			Header:     h,
			Query:      r.URL.Query(),
			URL:        r.URL.RequestURI(),
			RemoteAddr: r.RemoteAddr,
			Secure:     r.TLS != nil,
			XDomain:    r.Header.Get("Origin") != "",
			Issued:     time.Now().UnixMilli(),
		},
	}
	if !s.onWS {
		s.poll = &pollState{wake: make(chan struct{}, 1)}
	}
	return s
}

// pollState is a polling session's queue and upgrade probe (lock: the
// session's mu, except wake).
type pollState struct {
	buf      []*Packet
	keyed    map[string]int // conflation key -> index in buf
	bufBytes int
	// wake signals a pending GET; nil while buffering for a websocket that
	// is not attached yet. Set at creation, never changed.
	wake    chan struct{}
	probe   *websocket.Conn
	upTimer *time.Timer
}

// pollLocked returns the polling state, creating it (for packets sent
// before a websocket is attached). s.mu must be held.
func (s *Session) pollLocked() *pollState {
	if s.poll == nil {
		s.poll = &pollState{}
	}
	return s.poll
}

// probeLocked returns the upgrade probe, if any. s.mu must be held.
func (s *Session) probeLocked() *websocket.Conn {
	if s.poll == nil {
		return nil
	}
	return s.poll.probe
}

// stopUpgradeTimer stops the upgrade's timer, if any. s.mu must be held.
func (s *Session) stopUpgradeTimer() {
	if s.poll != nil && s.poll.upTimer != nil {
		s.poll.upTimer.Stop()
		s.poll.upTimer = nil
	}
}

// take empties the queue and returns what it held.
func (p *pollState) take() []*Packet {
	pkts := p.buf
	p.buf, p.bufBytes, p.keyed = nil, 0, nil
	return pkts
}

// signal wakes a pending GET; p may be nil.
func (p *pollState) signal() {
	if p == nil || p.wake == nil {
		return
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// ID returns the 20-character session id.
func (s *Session) ID() string { return s.id }

// Handshake returns the opening request's details.
func (s *Session) Handshake() *Handshake { return &s.hs }

// Transport returns "polling" or "websocket".
func (s *Session) Transport() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.transportName()
}

// The transports' names.
const (
	transportPolling   = "polling"
	transportWebSocket = "websocket"
)

// transportName names the session's transport. s.mu must be held.
func (s *Session) transportName() string {
	if s.onWS {
		return transportWebSocket
	}
	return transportPolling
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
	if polling && s.srv.transportAllowed(transportWebSocket) {
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
	q := s.pollLocked()
	for _, p := range pkts {
		q.buf = append(q.buf, p)
		q.bufBytes += p.pollingSize() + 1
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
	q := s.poll
	over := q.bufBytes > s.srv.opts.MaxBufferedBytes
	s.mu.Unlock()
	if over {
		return s.afterWrite(websocket.ErrQueueFull)
	}
	q.signal()
	return nil
}

// sendKeyed queues a conflatable packet (s.mu held on entry).
func (s *Session) sendKeyed(p *Packet) error {
	if s.ws != nil && !s.upgrading {
		ws := s.ws
		s.mu.Unlock()
		return s.afterWrite(ws.WriteKeyed(p.Key, p.WebSocketFrame()))
	}
	q := s.pollLocked()
	if i, ok := q.keyed[p.Key]; ok && i < len(q.buf) && q.buf[i].Key == p.Key {
		q.bufBytes += p.pollingSize() - q.buf[i].pollingSize()
		q.buf[i] = p
		s.mu.Unlock()
		s.srv.conflated.Add(1)
		return nil
	}
	if len(q.buf) > 0 {
		if q.keyed == nil {
			q.keyed = make(map[string]int)
		}
		q.keyed[p.Key] = len(q.buf)
	}
	q.buf = append(q.buf, p)
	q.bufBytes += p.pollingSize() + 1
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
	return s.pollActive && (s.poll == nil || len(s.poll.buf) == 0)
}

// Buffered returns the bytes waiting to be written to the client.
func (s *Session) Buffered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ws != nil && !s.upgrading {
		return s.ws.Buffered()
	}
	if s.poll == nil {
		return 0
	}
	return s.poll.bufBytes
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
	if s.hbAt != 0 { // the heartbeat started
		s.srv.wheel.Stop(&s.hb)
	}
	s.stopUpgradeTimer()
	ws, probe, transport := s.ws, s.probeLocked(), s.transportName()
	s.ws = nil
	if s.poll != nil {
		s.poll.probe = nil
	}
	s.active.Store(nil)
	// Messages still queued for a polling client (e.g. a Socket.IO
	// DISCONNECT) go out first, and the close packet with the GET after
	// them, as engine.io does: the client handles the close at once but
	// the messages a tick later, so a shared response would lose them.
	linger := false
	if transport == transportPolling && notify {
		switch {
		case reason == ReasonForcedClose && hasMessages(s.poll.buf):
			s.lingering = true
			linger = true
		case s.pollActive:
			s.poll.buf = append(s.poll.buf, closePacket) // the pending GET carries it
		}
	}
	q := s.poll
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
	q.signal()
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
	if s.closed || s.hbAt != 0 { // hbAt is set once the heartbeat starts
		return
	}
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
	if s.onWS || (s.ws != nil && !s.upgrading) {
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
	// A polling session's state outlives this request even if an upgrade
	// frees it meanwhile: the request keeps its own reference.
	q := s.poll
	if s.lingering {
		pkts := q.take()
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
	case <-q.wake:
	default:
	}
	for len(q.buf) == 0 && !s.closed && !s.probeSeen && s.ws == nil {
		s.mu.Unlock()
		select {
		case <-q.wake:
		case <-r.Context().Done():
			s.mu.Lock()
			s.pollActive = false
			s.mu.Unlock()
			s.close(ReasonTransportError, false)
			return
		}
		s.mu.Lock()
	}
	pkts := q.take()
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
	if s.onWS || s.closed || (s.ws != nil && !s.upgrading) {
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
	if s.poll != nil {
		if pkts := s.poll.take(); len(pkts) > 0 {
			frames := make([][]byte, len(pkts))
			for i, p := range pkts {
				frames[i] = p.WebSocketFrame()
			}
			_ = c.WriteFrames(frames...)
		}
		s.poll = nil
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
	probing := c != nil && s.probeLocked() == c
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
		attachedLater := s.ws == nil && s.onWS && !s.closed
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
	if c != nil && s.probeLocked() == c {
		s.poll.probe = nil
		s.upgrading = false
		s.probeSeen = false
		s.stopUpgradeTimer()
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
	ok := !s.closed && !s.onWS && !s.upgrading && s.ws == nil
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
			if s.closed || s.poll == nil {
				return
			}
			s.poll.probe = c
			s.poll.upTimer = time.AfterFunc(s.srv.opts.UpgradeTimeout, func() {
				s.mu.Lock()
				timedOut := s.probeLocked() == c
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
		c := s.probeLocked()
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
		q := s.poll
		s.mu.Unlock()
		// Release a pending GET with a noop so the client can pause polling.
		q.signal()
	case "5":
		s.completeUpgrade(c)
	default:
		c.Close()
	}
}

func (s *Session) completeUpgrade(c *websocket.Conn) {
	s.mu.Lock()
	if s.closed || s.probeLocked() != c {
		s.mu.Unlock()
		return
	}
	s.stopUpgradeTimer()
	// Queue what polling still had on the websocket before any Send can
	// use it: nothing overtakes the buffered packets.
	var err error
	q := s.poll
	if pkts := q.take(); len(pkts) > 0 {
		frames := make([][]byte, len(pkts))
		for i, p := range pkts {
			frames[i] = p.WebSocketFrame()
		}
		err = c.WriteFrames(frames...)
	}
	q.probe = nil
	s.poll = nil // a pending GET keeps its own reference
	s.ws = c
	s.upgrading = false
	s.onWS = true
	s.active.Store(c)
	s.mu.Unlock()
	q.signal() // a pending GET returns a noop
	if s.srv.opts.Observer != nil {
		s.srv.opts.Observer.SessionUpgraded()
	}
	if err != nil {
		s.close(ReasonSlowConsumer, true)
	}
}
