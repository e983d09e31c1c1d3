package socketio

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"iter"
	"strings"
	"sync"
	"time"

	"github.com/tradewire/tradewire/adapter"
	"github.com/tradewire/tradewire/engineio"
	"github.com/tradewire/tradewire/parser"
)

// Middleware runs before a socket connects; a non-nil error refuses it
// (use *ConnectError to send data along).
type Middleware func(ctx context.Context, s *Socket) error

// Namespace is a Socket.IO namespace.
type Namespace struct {
	srv     *Server
	name    string
	adapter adapter.Adapter

	mu          sync.RWMutex
	sockets     map[string]*Socket
	middlewares []Middleware
	onConnect   []func(*Socket)
	onSSE       []func(args []any, reply func(any))
	// Handlers shared by every socket (a socket's own On/OnAny win).
	handlers     map[string]EventHandler
	anyHandler   EventHandler
	onDisconnect []func(*Socket, string)

	// sharedRecovery: recovery state lives outside the process; live
	// sockets are snapshotted and refreshed.
	sharedRecovery bool
	refreshOnce    sync.Once
}

func newNamespace(srv *Server, name string) *Namespace {
	n := &Namespace{srv: srv, name: name, sockets: make(map[string]*Socket)}
	n.adapter = srv.opts.Adapter(n)
	if sr, ok := n.adapter.(interface{ SharedRecovery() bool }); ok && srv.opts.Recovery.MaxDisconnection > 0 {
		n.sharedRecovery = sr.SharedRecovery()
	}
	return n
}

// Name returns the namespace name, e.g. "/".
func (n *Namespace) Name() string { return n.name }

// Adapter returns the namespace's adapter.
func (n *Namespace) Adapter() adapter.Adapter { return n.adapter }

// Use adds a connection middleware.
func (n *Namespace) Use(m Middleware) {
	n.mu.Lock()
	n.middlewares = append(n.middlewares, m)
	n.mu.Unlock()
}

// OnConnection adds a handler called for each connected socket.
func (n *Namespace) OnConnection(f func(*Socket)) {
	n.mu.Lock()
	n.onConnect = append(n.onConnect, f)
	n.mu.Unlock()
}

// OnServerSideEmit adds a handler for serverSideEmit messages from other
// nodes; reply is nil when the sender expects no answer.
func (n *Namespace) OnServerSideEmit(f func(args []any, reply func(any))) {
	n.mu.Lock()
	n.onSSE = append(n.onSSE, f)
	n.mu.Unlock()
}

// On registers a handler of an event for every socket of the namespace
// (one closure for all, instead of one per socket).
func (n *Namespace) On(event string, h EventHandler) {
	n.mu.Lock()
	if n.handlers == nil {
		n.handlers = make(map[string]EventHandler)
	}
	n.handlers[event] = h
	n.mu.Unlock()
}

// OnAny registers a namespace-wide handler for events without a handler.
func (n *Namespace) OnAny(h EventHandler) {
	n.mu.Lock()
	n.anyHandler = h
	n.mu.Unlock()
}

// OnDisconnect adds a handler called when any socket of the namespace
// disconnects (before the socket's own handlers).
func (n *Namespace) OnDisconnect(f func(s *Socket, reason string)) {
	n.mu.Lock()
	n.onDisconnect = append(n.onDisconnect, f)
	n.mu.Unlock()
}

// handler returns the namespace handler of an event, and the any-handler to
// fall back on (the socket's own when set).
func (n *Namespace) handler(name string, socketAny EventHandler) (EventHandler, EventHandler) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if socketAny == nil {
		socketAny = n.anyHandler
	}
	return n.handlers[name], socketAny
}

// Count returns the number of local sockets.
func (n *Namespace) Count() int {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return len(n.sockets)
}

// Sockets returns the local sockets.
func (n *Namespace) Sockets() []*Socket {
	n.mu.RLock()
	defer n.mu.RUnlock()
	out := make([]*Socket, 0, len(n.sockets))
	for _, s := range n.sockets {
		out = append(out, s)
	}
	return out
}

// Socket returns the local socket with that id.
func (n *Namespace) Socket(id string) (*Socket, bool) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	s, ok := n.sockets[id]
	return s, ok
}

// ---- adapter.Namespace ----

// Deliver implements adapter.Namespace: encode once, write to each socket.
func (n *Namespace) Deliver(pkt *parser.Packet, flags adapter.Flags, ids iter.Seq[string]) {
	start := time.Now()
	msgs := encodeForEngine(pkt)
	// A recorded packet's offset is read once here, not per recipient.
	var offset *string
	var pos adapter.Position
	hasPos := false
	if n.srv.opts.Recovery.MaxDisconnection > 0 && flags.Conflate == "" && !pkt.HasID {
		if off := lastStringArg(pkt.Data); off != "" {
			offset = &off
			pos, hasPos = adapter.ParsePosition(off)
		}
	}
	if flags.Conflate != "" && len(msgs) == 1 {
		msgs[0].Key = flags.Conflate
	}
	count := 0
	n.mu.RLock()
	for id := range ids {
		s := n.sockets[id]
		if s == nil {
			continue
		}
		if flags.Volatile && !s.client.sess.Writable() {
			continue
		}
		// Held: while a restored socket catches up, and, for recorded
		// packets, while the link is down (the catch-up sends them in
		// stream order when it is back).
		if s.rec.Load() != nil && s.hold(pkt, msgs, offset != nil) {
			continue
		}
		if offset != nil {
			if hasPos && s.belowFloorPos(pos) {
				continue // replayed already during a restore or catch-up
			}
			s.lastOffset.Store(offset)
		}
		if err := s.client.sess.Send(msgs...); err == nil {
			count++
		} else if obs := n.srv.opts.Observer; obs != nil && errors.Is(err, engineio.ErrClosed) == false {
			obs.SlowConsumerDropped()
		}
	}
	n.mu.RUnlock()
	if obs := n.srv.opts.Observer; obs != nil {
		obs.Broadcast(count, time.Since(start))
		obs.EventOut(parser.EventName(pkt.Data), count)
	}
}

// LocalSocket implements adapter.Namespace.
func (n *Namespace) LocalSocket(id string) (adapter.Socket, bool) {
	s, ok := n.Socket(id)
	if !ok {
		return nil, false
	}
	return &adapterSocket{s}, true
}

// HandleServerSideEmit implements adapter.Namespace.
func (n *Namespace) HandleServerSideEmit(args []any, reply func(any)) {
	n.mu.RLock()
	hs := append([]func([]any, func(any)){}, n.onSSE...)
	n.mu.RUnlock()
	for _, h := range hs {
		h(args, reply)
	}
}

// ---- connecting ----

func (n *Namespace) connect(c *client, auth json.RawMessage) {
	var authMap map[string]any
	if len(auth) > 0 {
		_ = json.Unmarshal(auth, &authMap)
	}
	var restored *adapter.SessionState
	pid, _ := authMap["pid"].(string)
	offset, _ := authMap["offset"].(string)
	if pid != "" && offset != "" {
		if n.srv.opts.Recovery.MaxDisconnection <= 0 {
			n.observeRecovery(RecoveryDisabled)
		} else {
			n.endLiveConnection(pid)
			if st, err := n.adapter.RestoreSession(pid, offset); err == nil && len(st.SID)+len(st.PID) < maxIDLen {
				restored = st // counted once the socket is accepted
			} else {
				n.observeRecovery(RecoveryNotFound)
			}
		}
	}
	s := newSocket(n, c, auth, restored)
	if restored != nil {
		s.rec.Store(&recoveryState{holding: true})
	}
	if restored == nil || !n.srv.opts.Recovery.SkipMiddlewares {
		n.mu.RLock()
		mws := append([]Middleware(nil), n.middlewares...)
		n.mu.RUnlock()
		// The middlewares' context lives as long as the chain runs.
		ctx, cancel := context.WithCancel(context.Background())
		for _, mw := range mws {
			if err := mw(ctx, s); err != nil {
				cancel()
				s.markDisconnected()
				if restored != nil {
					// Refused (e.g. another user's pid): the saved state
					// stays for its owner, as if never restored.
					n.putBack(restored)
				}
				_ = c.writePacket(&parser.Packet{Type: parser.ConnectError, Nsp: n.name, Data: encodeConnectError(err)})
				return
			}
		}
		cancel()
	}
	if !c.addSocket(s) {
		s.markDisconnected()
		n.adapter.DelAll(s.ID()) // rooms a middleware joined
		if restored != nil {
			// The connection closed while the CONNECT was handled: the
			// state stays for the client's next attempt.
			n.putBack(restored)
		}
		return
	}
	if restored != nil {
		n.observeRecovery(RecoveryRecovered)
	}
	n.mu.Lock()
	stale := n.sockets[s.ID()]
	n.sockets[s.ID()] = s
	n.mu.Unlock()
	if stale != nil && stale != s {
		// The client came back before its old connection was seen dead.
		stale.client.sess.Close(engineio.ReasonTransportClose)
	}
	rooms := []string{s.ID()}
	if restored != nil {
		rooms = append(rooms, restored.Rooms...)
	}
	n.adapter.AddAll(s.ID(), rooms)
	if restored != nil {
		// Replay what was missed, then what was recorded between the
		// restore and the join (catch-up), then the live packets held
		// meanwhile, each offset once.
		sent := make(map[string]bool, len(restored.Missed))
		last, _ := authMap["offset"].(string)
		replay := func(p *parser.Packet) {
			off := lastStringArg(p.Data)
			if off != "" {
				if sent[off] {
					return
				}
				sent[off] = true
				last = off
				s.lastOffset.Store(&off)
			}
			_ = c.writePacket(p)
		}
		for _, p := range restored.Missed {
			replay(p)
		}
		if cu, ok := n.adapter.(adapter.CatchUpper); ok {
			for _, p := range cu.CatchUp(rooms, last) {
				replay(p)
			}
		}
		_ = c.writePacket(&parser.Packet{Type: parser.Connect, Nsp: n.name, Data: s.connectPayload()})
		if last != "" {
			s.setFloor(last)
		}
		s.release(sent)
	} else {
		_ = c.writePacket(&parser.Packet{Type: parser.Connect, Nsp: n.name, Data: s.connectPayload()})
	}
	if n.sharedRecovery {
		s.snapshot()
		n.refreshOnce.Do(func() { go n.refreshSnapshots() })
	}
	n.mu.RLock()
	handlers := append([]func(*Socket){}, n.onConnect...)
	n.mu.RUnlock()
	for _, h := range handlers {
		h(s)
	}
}

// putBack saves a restored session again, as it was before the restore
// took it, when the socket it was restored into never came to be.
func (n *Namespace) putBack(st *adapter.SessionState) {
	n.adapter.PersistSession(&adapter.SessionState{SID: st.SID, PID: st.PID, Rooms: st.Rooms, Data: st.Data})
}

// endLiveConnection closes the connection that still holds pid's socket on
// this node, as a transport close, so its state is saved and the restore
// that follows finds it. A client reconnects as soon as it sees its network
// drop, often long before the server sees the old connection die (that may
// take a ping interval and timeout): without this the restore would fail
// and the client would get a fresh session, missing what was sent
// meanwhile. Holding the pid (the recovery credential) is what it takes,
// as for the restore itself.
func (n *Namespace) endLiveConnection(pid string) {
	sid, _, ok := strings.Cut(pid, ".")
	if !ok {
		return
	}
	n.mu.RLock()
	old := n.sockets[sid]
	n.mu.RUnlock()
	if old == nil || subtle.ConstantTimeCompare([]byte(old.pid()), []byte(pid)) != 1 {
		return
	}
	old.client.sess.Close(engineio.ReasonTransportClose)
	// The old connection may have been closing already on another goroutine
	// (its transport saw the end a moment ago): its state is saved before
	// it leaves the namespace, so wait for that, briefly.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		n.mu.RLock()
		gone := n.sockets[sid] != old
		n.mu.RUnlock()
		if gone {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func (n *Namespace) removeSocket(s *Socket) {
	n.mu.Lock()
	mine := n.sockets[s.ID()] == s
	if mine {
		delete(n.sockets, s.ID())
	}
	n.mu.Unlock()
	if mine {
		n.adapter.DelAll(s.ID())
	}
}

// LinkLost tells the namespace that this node may miss broadcasts from the
// other nodes (its pub/sub link is down); CatchUp fills the gap later.
func (n *Namespace) LinkLost() {
	if !n.sharedRecovery {
		return
	}
	for _, s := range n.Sockets() {
		s.linkLost()
	}
}

// CatchUp sends every local socket the recorded packets it missed while
// the link was down (see LinkLost), once each. It returns how many.
func (n *Namespace) CatchUp() int {
	cu, ok := n.adapter.(adapter.CatchUpper)
	if !ok || !n.sharedRecovery {
		return 0
	}
	total := 0
	for _, s := range n.Sockets() {
		total += s.catchUp(cu)
	}
	return total
}

// refreshSnapshots re-saves live sockets' state within each third of the
// recovery window, so their snapshots outlive a crash of this node.
func (n *Namespace) refreshSnapshots() {
	t := time.NewTicker(n.srv.opts.Recovery.MaxDisconnection / 3)
	defer t.Stop()
	for range t.C {
		for _, s := range n.Sockets() {
			s.snapshot()
		}
	}
}

// ---- broadcasting ----

// To returns an operator selecting sockets in rooms.
func (n *Namespace) To(rooms ...string) *BroadcastOperator {
	return (&BroadcastOperator{nsp: n}).To(rooms...)
}

// In is an alias of To.
func (n *Namespace) In(rooms ...string) *BroadcastOperator { return n.To(rooms...) }

// Except returns an operator excluding sockets in rooms.
func (n *Namespace) Except(rooms ...string) *BroadcastOperator {
	return (&BroadcastOperator{nsp: n}).Except(rooms...)
}

// Local returns an operator that does not reach other nodes.
func (n *Namespace) Local() *BroadcastOperator { return (&BroadcastOperator{nsp: n}).Local() }

// Volatile returns an operator whose packets may be dropped for busy sockets.
func (n *Namespace) Volatile() *BroadcastOperator { return (&BroadcastOperator{nsp: n}).Volatile() }

// Emit broadcasts an event to every socket of the namespace.
func (n *Namespace) Emit(event string, args ...any) error {
	return (&BroadcastOperator{nsp: n}).Emit(event, args...)
}

// ServerSideEmit sends an event to the other nodes' namespace.
func (n *Namespace) ServerSideEmit(ctx context.Context, args []any, onReply func(any)) error {
	return n.adapter.ServerSideEmit(ctx, args, onReply)
}

// FetchSockets returns every socket of the namespace in the cluster.
func (n *Namespace) FetchSockets(ctx context.Context) ([]adapter.SocketInfo, error) {
	return (&BroadcastOperator{nsp: n}).FetchSockets(ctx)
}

// Recovery outcomes reported to a RecoveryObserver.
const (
	RecoveryRecovered = "recovered" // the session and its missed packets came back
	RecoveryNotFound  = "not_found" // unknown or expired pid, or its offset no longer buffered
	RecoveryDisabled  = "disabled"  // the client asked, recovery is off
)

// RecoveryObserver is an Observer that also counts connection state
// recovery attempts.
type RecoveryObserver interface {
	Recovery(outcome string)
}

func (n *Namespace) observeRecovery(outcome string) {
	if o, ok := n.srv.opts.Observer.(RecoveryObserver); ok {
		o.Recovery(outcome)
	}
}
