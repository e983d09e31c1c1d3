package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tradewire/tradewire/adapter"
	"github.com/tradewire/tradewire/engineio"
	"github.com/tradewire/tradewire/parser"
)

// Disconnect reasons reported to OnDisconnect (besides the Engine.IO ones).
const (
	ReasonServerNamespaceDisconnect = "server namespace disconnect"
	ReasonClientNamespaceDisconnect = "client namespace disconnect"
	ReasonServerShuttingDown        = "server shutting down"
)

// ErrAckTimeout is passed to an ack callback when the client did not answer in time.
var ErrAckTimeout = errors.New("socket.io: ack timeout")

// ErrDisconnected is passed to pending ack callbacks when the socket goes away.
var ErrDisconnected = errors.New("socket.io: socket disconnected")

// EventHandler handles one client event.
type EventHandler func(s *Socket, e *Event)

type keyValue struct{ k, v any }

type heldPacket struct {
	pkt  *parser.Packet
	msgs []*engineio.Packet
}

// recoveryState is what a socket needs only while it replays (a restore,
// or a catch-up after the node's cluster link was down). Most sockets never
// have one: Socket.rec is nil. The pointer is read without a lock on the
// broadcast path; the fields are read and written under Socket.mu.
type recoveryState struct {
	holding   bool         // live packets are held while the replay runs
	tracking  bool         // link down: recorded packets are held until the catch-up
	held      []heldPacket // what was held, in arrival order
	catchFrom string       // link down: the offset to catch up from
}

// hold keeps a live packet for later while the socket replays; false when
// it does not hold it (send normally). recorded: the packet has an offset.
func (s *Socket) hold(pkt *parser.Packet, msgs []*engineio.Packet, recorded bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rec.Load()
	if r == nil || !(r.holding || (recorded && r.tracking)) {
		return false
	}
	r.held = append(r.held, heldPacket{pkt, msgs})
	return true
}

// release sends the held packets, skipping those already replayed (by
// offset), and resumes live delivery.
func (s *Socket) release(sent map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rec.Load()
	if r == nil {
		return
	}
	for _, h := range r.held {
		off := lastStringArg(h.pkt.Data)
		if off != "" && (sent[off] || s.belowFloor(off)) {
			continue
		}
		if off != "" {
			s.lastOffset.Store(&off)
		}
		_ = s.client.sess.Send(h.msgs...)
	}
	r.held, r.holding = nil, false
	if !r.tracking {
		s.rec.Store(nil) // back to the common case
	}
}

// belowFloor reports whether the packet at offset off was already covered
// by a replay.
func (s *Socket) belowFloor(off string) bool {
	if s.floor.Load() == nil {
		return false
	}
	pos, ok := adapter.ParsePosition(off)
	return ok && s.belowFloorPos(pos)
}

// belowFloorPos is belowFloor for a parsed position.
func (s *Socket) belowFloorPos(pos adapter.Position) bool {
	f := s.floor.Load()
	return f != nil && !pos.After(*f)
}

// setFloor records the last offset a replay covered (unparsable: none).
func (s *Socket) setFloor(off string) {
	if pos, ok := adapter.ParsePosition(off); ok {
		s.floor.Store(&pos)
	}
}

// LastOffset returns the recovery offset of the last recorded packet this
// socket was sent ("" when none).
func (s *Socket) LastOffset() string {
	if p := s.lastOffset.Load(); p != nil {
		return *p
	}
	return ""
}

// linkLost starts tracking deliveries: packets recorded after the current
// offset may be missed until the link is back.
func (s *Socket) linkLost() {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rec.Load()
	if r != nil && r.tracking {
		return
	}
	if r == nil {
		r = &recoveryState{}
	}
	r.catchFrom = s.LastOffset()
	if r.catchFrom == "" {
		// Nothing recorded reached it yet: anything since its handshake.
		r.catchFrom = adapter.Position{Ms: uint64(s.client.sess.Handshake().Issued)}.String()
	}
	r.tracking = true
	s.rec.Store(r)
}

// catchUp sends the recorded packets after catchFrom that were not
// delivered meanwhile, once each, without reordering live ones.
func (s *Socket) catchUp(cu adapter.CatchUpper) int {
	s.mu.Lock()
	r := s.rec.Load()
	if r == nil || !r.tracking || !s.connected {
		s.mu.Unlock()
		return 0
	}
	// Recorded packets that arrived meanwhile are held (not sent), so the
	// catch-up starts from an empty set and release drops their copies.
	from, sent := r.catchFrom, map[string]bool{}
	r.holding = true
	s.mu.Unlock()
	n := 0
	for _, p := range cu.CatchUp(s.Rooms(), from) {
		off := lastStringArg(p.Data)
		if off == "" || sent[off] {
			continue
		}
		sent[off] = true
		s.lastOffset.Store(&off)
		_ = s.client.writePacket(p)
		n++
	}
	if last := s.LastOffset(); last != "" {
		s.setFloor(last)
	}
	s.mu.Lock()
	r.tracking, r.catchFrom = false, "" // still holding: nothing slips past the release
	s.mu.Unlock()
	s.release(sent)
	return n
}

// lastStringArg returns the last element of a JSON array when it is a string.
func lastStringArg(data []byte) string {
	els, err := parser.SplitArray(data)
	if err != nil || len(els) == 0 {
		return ""
	}
	var v string
	if json.Unmarshal(els[len(els)-1], &v) != nil {
		return ""
	}
	return v
}

type pendingAck struct {
	cb    func(args []any, err error)
	timer *time.Timer
}

// Socket is one client's connection to a namespace.
type Socket struct {
	// ids holds the socket id and its pid in one string: see ID and pid.
	ids    string
	nsp    *Namespace
	client *client
	auth   json.RawMessage

	idLen     uint16 // the id is ids[:idLen]
	pidAt     uint16 // the pid is ids[pidAt:]; pidAt == len(ids): none
	recovered bool
	connected bool // (lock: mu) in the same word as the three above

	// rec is the replay state, nil unless a restore or catch-up runs.
	rec atomic.Pointer[recoveryState]
	// lastOffset is the recovery offset of the last recorded packet sent.
	lastOffset atomic.Pointer[string]
	// floor is the last offset replayed by a restore or catch-up: a live
	// copy of a replayed packet that arrives late (its broadcast was under
	// way during the replay) is dropped, not sent twice.
	floor atomic.Pointer[adapter.Position]

	mu     sync.Mutex
	ext    *socketExt // rare state, created on first use (under mu)
	data   any
	values []keyValue
}

// socketExt is the state most sockets never use: their own handlers (the
// namespace's are shared), disconnect callbacks, server-to-client acks and a
// context. It hangs off a nil pointer until needed.
type socketExt struct {
	handlers     map[string]EventHandler
	anyHandler   EventHandler
	onDisconnect []func(reason string)
	acks         map[uint64]pendingAck
	nextAck      uint64
	ctx          context.Context
	cancel       context.CancelFunc
}

// extLocked returns the socket's rare state, creating it. s.mu must be held.
func (s *Socket) extLocked() *socketExt {
	if s.ext == nil {
		s.ext = &socketExt{}
	}
	return s.ext
}

func newSocket(n *Namespace, c *client, auth json.RawMessage, restored *adapter.SessionState) *Socket {
	s := &Socket{nsp: n, client: c, auth: auth, connected: true}
	if restored != nil {
		s.setIDs(restored.SID, restored.PID)
		s.recovered = true
		if len(restored.Data) > 0 {
			var v any
			if json.Unmarshal(restored.Data, &v) == nil {
				s.data = v
			}
		}
	} else {
		id := engineio.NewID()
		if n.srv.opts.Recovery.MaxDisconnection > 0 {
			s.setNewPID(id)
		} else {
			s.setIDs(id, "")
		}
	}
	return s
}

// setIDs stores a socket id and pid (possibly empty) in one string. The
// ids are short (20 bytes from this server and socket.io); a restore
// refuses longer ones (see maxIDLen).
func (s *Socket) setIDs(id, pid string) {
	s.ids = id + pid
	s.idLen, s.pidAt = uint16(len(id)), uint16(len(id))
}

// setNewPID gives a new socket its id and a new pid, which starts with the
// id: the one string is the pid.
func (s *Socket) setNewPID(id string) {
	s.ids, s.idLen, s.pidAt = newPID(id), uint16(len(id)), 0
}

// maxIDLen bounds a socket id plus pid, as the lengths are kept in 16 bits.
const maxIDLen = 1 << 15

// pid returns the socket's recovery id ("" when recovery is off).
func (s *Socket) pid() string { return s.ids[s.pidAt:] }

// newPID returns a recovery id for the socket sid: the socket id, a dot and
// a random part. The random part is the secret (only the client is sent the
// pid); the socket id in it lets a restore find the socket's own connection
// when that one is not seen dead yet (see Namespace.endLiveConnection).
func newPID(sid string) string { return sid + "." + engineio.NewID() }

// ID returns the socket id (not the Engine.IO session id).
func (s *Socket) ID() string { return s.ids[:s.idLen] }

// Namespace returns the socket's namespace.
func (s *Socket) Namespace() *Namespace { return s.nsp }

// Recovered reports whether the connection state was restored.
func (s *Socket) Recovered() bool { return s.recovered }

// Context is cancelled when the socket disconnects. It is created on first
// use; a socket that is already disconnected gets a cancelled one.
func (s *Socket) Context() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.extLocked()
	if x.ctx == nil {
		x.ctx, x.cancel = context.WithCancel(context.Background())
		if !s.connected {
			x.cancel()
		}
	}
	return x.ctx
}

// markDisconnected ends a socket that never joined its client (refused by a
// middleware, or its client closed meanwhile): not connected, context cancelled.
func (s *Socket) markDisconnected() {
	s.mu.Lock()
	s.connected = false
	s.mu.Unlock()
	s.cancelContext()
}

// cancelContext cancels the socket's context if one was created.
func (s *Socket) cancelContext() {
	var cancel context.CancelFunc
	s.mu.Lock()
	if s.ext != nil {
		cancel = s.ext.cancel
	}
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// Auth returns the CONNECT auth payload (nil when absent or not an object),
// decoded afresh on each call: the socket keeps only the raw JSON.
func (s *Socket) Auth() map[string]any {
	var m map[string]any
	if len(s.auth) > 0 {
		_ = json.Unmarshal(s.auth, &m)
	}
	return m
}

// AuthRaw returns the CONNECT auth payload as raw JSON.
func (s *Socket) AuthRaw() json.RawMessage { return s.auth }

// Handshake returns the opening HTTP request's details.
func (s *Socket) Handshake() *engineio.Handshake { return s.client.sess.Handshake() }

// Header returns a handshake request header.
func (s *Socket) Header() http.Header { return s.client.sess.Handshake().Headers() }

// Transport returns the current transport name.
func (s *Socket) Transport() string { return s.client.sess.Transport() }

// Data returns the per-socket data (kept across recovery; must be JSON-serialisable).
func (s *Socket) Data() any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data
}

// SetData replaces the per-socket data.
func (s *Socket) SetData(v any) {
	s.mu.Lock()
	s.data = v
	s.mu.Unlock()
	s.snapshot()
}

// Set stores a process-local value on the socket (not serialised).
func (s *Socket) Set(key, value any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.values {
		if s.values[i].k == key {
			s.values[i].v = value
			return
		}
	}
	s.values = append(s.values, keyValue{key, value})
}

// Get returns a value stored with Set.
func (s *Socket) Get(key any) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, kv := range s.values {
		if kv.k == key {
			return kv.v
		}
	}
	return nil
}

// Connected reports whether the socket is still connected.
func (s *Socket) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connected
}

// On registers the handler of an event (replacing any previous one).
func (s *Socket) On(event string, h EventHandler) {
	s.mu.Lock()
	x := s.extLocked()
	if x.handlers == nil {
		x.handlers = make(map[string]EventHandler)
	}
	x.handlers[event] = h
	s.mu.Unlock()
}

// OnAny registers a handler for events without their own handler.
func (s *Socket) OnAny(h EventHandler) {
	s.mu.Lock()
	s.extLocked().anyHandler = h
	s.mu.Unlock()
}

// OnDisconnect adds a handler called once with the disconnect reason.
func (s *Socket) OnDisconnect(f func(reason string)) {
	s.mu.Lock()
	x := s.extLocked()
	x.onDisconnect = append(x.onDisconnect, f)
	s.mu.Unlock()
}

func (s *Socket) connectPayload() json.RawMessage {
	b := []byte(`{"sid":`)
	b = parser.AppendString(b, s.ID())
	if s.pid() != "" {
		b = append(b, `,"pid":`...)
		b = parser.AppendString(b, s.pid())
	}
	return append(b, '}')
}

// ---- rooms ----

// Join adds the socket to rooms.
func (s *Socket) Join(rooms ...string) {
	s.nsp.adapter.AddAll(s.ID(), rooms)
	s.snapshot()
}

// Leave removes the socket from room.
func (s *Socket) Leave(room string) {
	s.nsp.adapter.Del(s.ID(), room)
	s.snapshot()
}

// state is the socket's recoverable state.
func (s *Socket) state() *adapter.SessionState {
	st := &adapter.SessionState{SID: s.ID(), PID: s.pid(), Rooms: s.Rooms()}
	if d := s.Data(); d != nil {
		st.Data, _ = json.Marshal(d)
	}
	return st
}

// snapshot saves the live state when recovery is shared between nodes, so
// it survives a crash of this node.
func (s *Socket) snapshot() {
	if s.pid() != "" && s.nsp.sharedRecovery && s.Connected() {
		s.nsp.adapter.PersistSession(s.state())
	}
}

// Rooms returns the socket's rooms (its own id included).
func (s *Socket) Rooms() []string { return s.nsp.adapter.SocketRooms(s.ID()) }

// InRoom reports whether the socket is in room.
func (s *Socket) InRoom(room string) bool {
	for _, r := range s.Rooms() {
		if r == room {
			return true
		}
	}
	return false
}

// To returns an operator broadcasting to rooms, excluding this socket.
func (s *Socket) To(rooms ...string) *BroadcastOperator {
	return (&BroadcastOperator{nsp: s.nsp, except: []string{s.ID()}}).To(rooms...)
}

// Broadcast returns an operator reaching every other socket.
func (s *Socket) Broadcast() *BroadcastOperator {
	return &BroadcastOperator{nsp: s.nsp, except: []string{s.ID()}}
}

// ---- emitting ----

// Emit sends an event to this socket. []byte arguments (top level or
// inside []any / map[string]any) travel as binary attachments.
func (s *Socket) Emit(event string, args ...any) error {
	pkt, err := buildEvent(s.nsp.name, event, args)
	if err != nil {
		return err
	}
	return s.send(pkt)
}

// EmitRaw sends an event with raw JSON arguments and attachments, as
// returned by Event.RawArgs.
func (s *Socket) EmitRaw(event string, args []json.RawMessage, attachments [][]byte) error {
	return s.send(buildRawEvent(s.nsp.name, event, args, attachments))
}

// send writes an EVENT to this socket; with recovery on it goes through the
// adapter (room = own id, local) so it gets an offset and is buffered.
func (s *Socket) send(pkt *parser.Packet) error {
	if !s.Connected() {
		return ErrDisconnected
	}
	if s.nsp.srv.opts.Recovery.MaxDisconnection > 0 {
		return s.nsp.adapter.Broadcast(pkt, &adapter.BroadcastOptions{Rooms: []string{s.ID()}, Flags: adapter.Flags{Local: true}})
	}
	return s.client.writePacket(pkt)
}

// EmitWithAck sends an event and calls cb with the client's ack arguments,
// or with ErrAckTimeout after timeout (no timeout when 0).
func (s *Socket) EmitWithAck(event string, args []any, timeout time.Duration, cb func(args []any, err error)) error {
	pkt, err := buildEvent(s.nsp.name, event, args)
	if err != nil {
		return err
	}
	s.emitPacketWithAck(pkt, timeout, cb)
	return nil
}

// EmitWithAck implements adapter.Socket: pkt is an EVENT without id.
func (s *Socket) emitPacketWithAck(pkt *parser.Packet, timeout time.Duration, cb func([]any, error)) {
	s.mu.Lock()
	if !s.connected {
		s.mu.Unlock()
		cb(nil, ErrDisconnected)
		return
	}
	x := s.extLocked()
	id := x.nextAck
	x.nextAck++
	pa := pendingAck{cb: cb}
	if timeout > 0 {
		pa.timer = time.AfterFunc(timeout, func() {
			if p, ok := s.takeAck(id); ok {
				p.cb(nil, ErrAckTimeout)
			}
		})
	}
	if x.acks == nil {
		x.acks = make(map[uint64]pendingAck)
	}
	x.acks[id] = pa
	s.mu.Unlock()
	out := *pkt
	out.Nsp, out.ID, out.HasID = s.nsp.name, id, true
	if err := s.client.writePacket(&out); err != nil {
		if p, ok := s.takeAck(id); ok {
			p.cb(nil, err)
		}
	}
}

func (s *Socket) takeAck(id uint64) (pendingAck, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ext == nil {
		return pendingAck{}, false
	}
	p, ok := s.ext.acks[id]
	if ok {
		delete(s.ext.acks, id)
		if p.timer != nil {
			p.timer.Stop()
		}
	}
	return p, ok
}

// ---- incoming ----

func (s *Socket) onPacket(p *parser.Packet) {
	switch p.Type {
	case parser.Event, parser.BinaryEvent:
		s.onEvent(p)
	case parser.Ack, parser.BinaryAck:
		if pa, ok := s.takeAck(p.ID); ok {
			args, err := unpackArgs(p)
			pa.cb(args, err)
		}
	case parser.Disconnect:
		s.onClose(ReasonClientNamespaceDisconnect)
	case parser.ConnectError:
		s.client.sess.Close(engineio.ReasonParseError)
	}
}

func (s *Socket) onEvent(p *parser.Packet) {
	args, err := parser.SplitArray(p.Data)
	if err != nil || len(args) == 0 {
		return
	}
	var name string
	if err := json.Unmarshal(args[0], &name); err != nil {
		name = string(args[0]) // numeric event names
	}
	e := &Event{Name: name, Args: args[1:], Attachments: p.Attachments}
	if p.HasID {
		id := p.ID
		e.ack = func(data []byte, attachments [][]byte) error {
			return s.client.writePacket(&parser.Packet{Type: parser.Ack, Nsp: s.nsp.name, ID: id, HasID: true, Data: data, Attachments: attachments})
		}
	}
	if obs := s.nsp.srv.opts.Observer; obs != nil {
		obs.EventIn(name)
	}
	var h, any EventHandler
	s.mu.Lock()
	if s.ext != nil {
		h, any = s.ext.handlers[name], s.ext.anyHandler
	}
	s.mu.Unlock()
	if h == nil {
		h, any = s.nsp.handler(name, any)
	}
	if h == nil {
		h = any
	}
	if h != nil {
		h(s, e)
	}
}

// Disconnect disconnects the socket from its namespace; with close, the
// whole underlying connection is closed too.
func (s *Socket) Disconnect(close bool) {
	if !s.Connected() {
		return
	}
	_ = s.client.writePacket(&parser.Packet{Type: parser.Disconnect, Nsp: s.nsp.name})
	s.onClose(ReasonServerNamespaceDisconnect)
	if close {
		s.client.sess.Close(engineio.ReasonForcedClose)
	}
}

// CloseTransport closes the underlying connection with reason, without a
// namespace DISCONNECT: the client sees a transport close and reconnects on
// its own (used for graceful shutdown).
func (s *Socket) CloseTransport(reason string) { s.client.sess.Close(reason) }

// recoverable disconnect reasons keep the session for state recovery.
func recoverable(reason string) bool {
	switch reason {
	case engineio.ReasonTransportError, engineio.ReasonTransportClose, engineio.ReasonForcedClose,
		engineio.ReasonPingTimeout, engineio.ReasonSlowConsumer, ReasonServerShuttingDown, "forced server close":
		return true
	}
	return false
}

func (s *Socket) onClose(reason string) {
	s.mu.Lock()
	if !s.connected {
		s.mu.Unlock()
		return
	}
	s.connected = false
	var acks map[uint64]pendingAck
	var handlers []func(string)
	if s.ext != nil {
		acks, handlers = s.ext.acks, s.ext.onDisconnect
		s.ext.acks = nil
	}
	s.mu.Unlock()

	if s.pid() != "" && recoverable(reason) {
		s.nsp.adapter.PersistSession(s.state())
	}
	s.nsp.removeSocket(s)
	s.client.removeSocket(s)
	s.cancelContext()
	for _, pa := range acks {
		if pa.timer != nil {
			pa.timer.Stop()
		}
		pa.cb(nil, ErrDisconnected)
	}
	// Namespace-wide handlers (shared clean-up such as quota release)
	// first, then the socket's own.
	s.nsp.mu.RLock()
	nsHandlers := s.nsp.onDisconnect
	s.nsp.mu.RUnlock()
	for _, h := range nsHandlers {
		h(s, reason)
	}
	for _, h := range handlers {
		h(reason)
	}
}

// ---- adapter.Socket ----

// Info describes the socket for fetchSockets. What it returns may travel
// to other nodes over Redis, so credentials stay out: the Cookie and
// Authorization headers, and the sessionID, pid and offset of the CONNECT
// auth and the query (see infoWithheld).
func (s *Socket) Info() adapter.SocketInfo {
	hs := s.Handshake()
	hdr := hs.Headers()
	headers := make(map[string]any, len(hdr))
	for k, v := range hdr {
		if k := lower(k); !infoWithheld[k] {
			headers[k] = joinHeader(v)
		}
	}
	query := make(map[string]any, len(hs.Query))
	for k, v := range hs.Query {
		if !infoWithheld[lower(k)] {
			query[k] = joinHeader(v)
		}
	}
	var auth map[string]any
	if authM := s.Auth(); authM != nil {
		auth = make(map[string]any, len(authM))
		for k, v := range authM {
			if !infoWithheld[lower(k)] {
				auth[k] = v
			}
		}
	}
	return adapter.SocketInfo{
		ID: s.ID(),
		Handshake: adapter.Handshake{
			Headers: headers, Time: time.UnixMilli(hs.Issued).UTC().Format(time.RFC1123), Address: hs.IP(),
			XDomain: hs.XDomain, Secure: hs.Secure, Issued: hs.Issued, URL: hs.URL,
			Query: query, Auth: auth,
		},
		Rooms: s.Rooms(),
		Data:  s.Data(),
	}
}

// infoWithheld are the header, query and auth keys (lower case) Info leaves out.
var infoWithheld = map[string]bool{
	"cookie": true, "authorization": true, "proxy-authorization": true,
	"sessionid": true, "pid": true, "offset": true, "token": true,
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

func joinHeader(v []string) string {
	if len(v) == 1 {
		return v[0]
	}
	out := ""
	for i, x := range v {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}

var _ adapter.Socket = (*adapterSocket)(nil)

// adapterSocket wraps Socket to satisfy adapter.Socket's EmitWithAck.
type adapterSocket struct{ *Socket }

// EmitWithAck implements adapter.Socket.
func (a *adapterSocket) EmitWithAck(pkt *parser.Packet, timeout time.Duration, ack func([]any, error)) {
	a.emitPacketWithAck(pkt, timeout, ack)
}
