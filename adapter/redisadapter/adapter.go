package redisadapter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tradewire/tradewire/adapter"
	"github.com/tradewire/tradewire/adapter/redisadapter/internal/wire"
	"github.com/tradewire/tradewire/parser"
)

// Adapter is the adapter of one namespace: the embedded in-memory adapter
// holds the local rooms, Redis carries everything else.
type Adapter struct {
	*adapter.Memory
	node *Node
	nsp  adapter.Namespace
	name string

	// classic: <prefix>#<nsp># (+ room#), request, response, own response
	// sharded: <prefix>#<nsp># (main) and <prefix>#<nsp>#<uid># (responses)
	channel, requestChannel, responseChannel, specificResponseChannel string

	mu       sync.Mutex
	requests map[string]*request
	acks     map[string]*ackRequest
	inited   bool

	dynamic  bool
	roomMu   sync.Mutex
	roomSubs map[string]bool
	// partRooms: the local rooms of each recovery partition whose channel
	// this node subscribes (sharded mode with a shared recovery store).
	partRooms map[string]map[string]struct{}
}

type request struct {
	typ      int
	expected int
	got      int
	ids      map[string]struct{}
	rooms    map[string]struct{}
	sockets  []adapter.SocketInfo
	onReply  func(any)
	done     chan struct{}
}

type ackRequest struct {
	onCount func(int)
	onAck   func([]any)
}

func newAdapter(n *Node, nsp adapter.Namespace) *Adapter {
	name := nsp.Name()
	p := n.opts.KeyPrefix
	a := &Adapter{
		Memory:   adapter.NewMemory(nsp, n.opts.Recovery),
		node:     n,
		nsp:      nsp,
		name:     name,
		channel:  p + "#" + name + "#",
		requests: map[string]*request{},
		acks:     map[string]*ackRequest{},
		roomSubs: map[string]bool{},

		partRooms: map[string]map[string]struct{}{},
	}
	if n.opts.Sharded {
		a.responseChannel = a.channel + n.uid + "#"
		a.dynamic = n.opts.SubscriptionMode != SubscriptionStatic
	} else {
		a.requestChannel = p + "-request#" + name + "#"
		a.responseChannel = p + "-response#" + name + "#"
		a.specificResponseChannel = a.responseChannel + n.uid + "#"
	}
	return a
}

// Node returns the node this adapter belongs to.
func (a *Adapter) Node() *Node { return a.node }

// Ready is the node's readiness (see Node.Ready).
func (a *Adapter) Ready() error { return a.node.Ready() }

// Init subscribes the namespace's channels and waits until Redis confirmed
// them (or ctx ends).
func (a *Adapter) Init(ctx context.Context) error {
	if err := a.node.register(a); err != nil {
		return err
	}
	a.mu.Lock()
	a.inited = true
	a.mu.Unlock()
	if a.node.opts.Sharded {
		if err := a.node.subscribe(ctx, true, a, kindShard, 's', a.responseChannel); err != nil {
			return err
		}
		return a.node.subscribe(ctx, true, a, kindShard, 'm', a.channel)
	}
	if err := a.node.subscribe(ctx, true, a, kindChannel, 'r', a.responseChannel, a.specificResponseChannel); err != nil {
		return err
	}
	if err := a.node.subscribe(ctx, true, a, kindPattern, 0, escapeGlob(a.channel)+"*"); err != nil {
		return err
	}
	return a.node.subscribe(ctx, true, a, kindChannel, 'q', a.requestChannel)
}

// Close unsubscribes the namespace's channels.
func (a *Adapter) Close() error {
	a.mu.Lock()
	inited := a.inited
	a.inited = false
	a.mu.Unlock()
	if !inited {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.node.opts.RequestsTimeout)
	defer cancel()
	if a.node.opts.Sharded {
		chans := []string{a.channel, a.responseChannel}
		a.roomMu.Lock()
		for r := range a.roomSubs {
			chans = append(chans, a.roomChannel(r))
		}
		for part := range a.partRooms {
			chans = append(chans, a.partitionChannel(part))
		}
		a.roomSubs = map[string]bool{}
		a.partRooms = map[string]map[string]struct{}{}
		a.roomMu.Unlock()
		a.node.unsubscribe(ctx, kindShard, chans...)
	} else {
		a.node.unsubscribe(ctx, kindPattern, escapeGlob(a.channel)+"*")
		a.node.unsubscribe(ctx, kindChannel, a.requestChannel, a.responseChannel, a.specificResponseChannel)
	}
	a.node.unregisterAdapter(a)
	return nil
}

func (a *Adapter) publish(kind, channel string, payload []byte) error {
	ctx, cancel := context.WithTimeout(a.node.ctx, a.node.opts.RequestsTimeout)
	defer cancel()
	if err := a.node.publish(ctx, kind, channel, payload); err != nil {
		return fmt.Errorf("redisadapter: publish %s on %s: %w", kind, a.name, err)
	}
	return nil
}

func (a *Adapter) pkt(p *parser.Packet) *parser.Packet {
	if p.Nsp == a.name {
		return p
	}
	cp := *p
	cp.Nsp = a.name
	return &cp
}

// Broadcast publishes pkt to the other nodes, then delivers it to the
// selected local sockets (local delivery happens even when publishing
// failed; the error is returned).
func (a *Adapter) Broadcast(pkt *parser.Packet, opts *adapter.BroadcastOptions) error {
	pkt = a.pkt(pkt)
	if a.Memory.SharedRecovery() {
		// Record once, here, then send the packet with its offset; record,
		// publish and local delivery in offset order per partition.
		defer a.Memory.OrderLock(pkt, opts)()
		if done, err := a.recordAndPublish(pkt, opts); done {
			return err
		}
		pkt = a.Memory.Record(pkt, opts)
	}
	var err error
	if !opts.Flags.Local {
		err = a.publishBroadcast(pkt, opts)
		if err != nil && opts.Flags.Strict {
			if a.Memory.SharedRecovery() {
				a.Memory.Void(pkt, opts) // recorded but delivered nowhere
			}
			return err
		}
	}
	a.deliverLocal(pkt, opts)
	return err
}

// deliverLocal hands a broadcast to local sockets; it records it in the
// per-node buffer unless a shared store already did at the sender.
func (a *Adapter) deliverLocal(pkt *parser.Packet, opts *adapter.BroadcastOptions) {
	if a.Memory.SharedRecovery() {
		a.Memory.BroadcastLocal(pkt, opts)
		return
	}
	_ = a.Memory.Broadcast(pkt, opts)
}

// offsetMarker stands in for the recovery offset while a broadcast is
// encoded for the atomic record-and-publish script.
const offsetMarker = "\x01tradewire-offset\x01"

// recordAndPublish records a recoverable broadcast and publishes it in one
// atomic step when the store can, then delivers it locally. In classic mode
// it goes to the room's channel; in sharded mode to the partition's channel
// (see partitionChannel), which hashes to the stream's slot. done is false
// when the caller must take the usual path.
func (a *Adapter) recordAndPublish(pkt *parser.Packet, opts *adapter.BroadcastOptions) (done bool, err error) {
	ap, ok := a.Memory.Store().(adapter.AtomicPublisher)
	if !ok || opts.Flags.Local {
		return false, nil
	}
	part := ""
	if p, ok := a.Memory.Store().(adapter.Partitioner); ok {
		part = p.PartitionOf(opts)
	}
	if part == "" {
		return false, nil
	}
	marked := *pkt
	marked.Data = parser.AppendArg(pkt.Data, offsetMarker)
	// Sent under a sibling uid so this node's own subscriber delivers it
	// too: local sockets then get the partition's broadcasts in the one
	// order Redis publishes them, whichever node sent them.
	var b []byte
	channel := a.channel
	if a.node.opts.Sharded {
		b, err = wire.EncodeCluster(&wire.ClusterMessage{Type: wire.MsgBroadcast, UID: a.node.uid + "~", Nsp: a.name, Packet: &marked, Opts: *opts})
		channel = a.partitionChannel(part)
	} else {
		b, err = wire.EncodeBroadcast(a.node.uid+"~", &marked, opts)
		if len(opts.Rooms) == 1 {
			channel += opts.Rooms[0] + "#"
		}
	}
	if err != nil {
		return true, fmt.Errorf("redisadapter: encode broadcast: %w", err)
	}
	m := append([]byte{byte(0xa0 + len(offsetMarker))}, offsetMarker...)
	if len(b) > 0 && b[0] == '{' {
		// a sharded message without binary is JSON: the script puts the
		// id between the quotes left in pre and post
		q, err := wire.AppendJSON(nil, offsetMarker, nil)
		if err != nil || len(q) < 2 {
			return false, nil
		}
		m = q[1 : len(q)-1]
	}
	i := bytes.Index(b, m)
	if i < 0 {
		return false, nil
	}
	offset, err := ap.RecordAndPublish(a.name, pkt, opts, channel, b[:i], b[i+len(m):])
	if errors.Is(err, adapter.ErrDuplicate) {
		return true, err // delivered before: nothing published, nothing delivered
	}
	if err != nil {
		a.node.observeError("publish", err)
		if opts.Flags.Strict {
			return true, err // nothing recorded, nothing published, nothing delivered
		}
		a.deliverLocal(pkt, opts)
		return true, err
	}
	a.node.observer().OnPublish("broadcast", len(b))
	_ = offset // delivered here by this node's own subscription
	return true, nil
}

func (a *Adapter) publishBroadcast(pkt *parser.Packet, opts *adapter.BroadcastOptions) error {
	if a.node.opts.Sharded {
		msg := &wire.ClusterMessage{Type: wire.MsgBroadcast, UID: a.node.uid, Nsp: a.name, Packet: pkt, Opts: *opts}
		b, err := wire.EncodeCluster(msg)
		if err != nil {
			return fmt.Errorf("redisadapter: encode broadcast: %w", err)
		}
		channel := a.channel
		if len(opts.Rooms) == 1 && a.useRoomChannel(opts.Rooms[0]) {
			channel = a.roomChannel(opts.Rooms[0])
		}
		return a.publish("broadcast", channel, b)
	}
	b, err := wire.EncodeBroadcast(a.node.uid, pkt, opts)
	if err != nil {
		return fmt.Errorf("redisadapter: encode broadcast: %w", err)
	}
	channel := a.channel
	if len(opts.Rooms) == 1 {
		channel += opts.Rooms[0] + "#"
	}
	return a.publish("broadcast", channel, b)
}

// BroadcastWithAck publishes an ack broadcast, then runs it locally. Every
// node, this one included, calls onCount once (possibly with 0); the
// socket layer should expect ServerCount calls.
func (a *Adapter) BroadcastWithAck(pkt *parser.Packet, opts *adapter.BroadcastOptions, onCount func(int), onAck func([]any)) error {
	pkt = a.pkt(pkt)
	var err error
	if !opts.Flags.Local {
		var id string
		var b []byte
		if a.node.opts.Sharded {
			id = randomHex(8)
			b, err = wire.EncodeCluster(&wire.ClusterMessage{Type: wire.MsgBroadcast, UID: a.node.uid, Nsp: a.name,
				RequestID: id, HasRequestID: true, Packet: pkt, Opts: *opts})
		} else {
			id = uid2(6)
			b, err = wire.EncodeRequest(&wire.Request{Type: wire.TypeBroadcast, UID: a.node.uid, RequestID: id,
				HasRequestID: true, Packet: pkt, Opts: opts})
		}
		if err != nil {
			return fmt.Errorf("redisadapter: encode ack broadcast: %w", err)
		}
		a.mu.Lock()
		a.acks[id] = &ackRequest{onCount: onCount, onAck: onAck}
		a.mu.Unlock()
		// acks cannot be known to be complete here: forget the request
		// after the broadcast's own timeout, as Node does
		keep := time.Duration(opts.Flags.Timeout) * time.Millisecond
		if keep <= 0 {
			keep = a.node.opts.RequestsTimeout
		}
		time.AfterFunc(keep, func() {
			a.mu.Lock()
			delete(a.acks, id)
			a.mu.Unlock()
		})
		channel := a.requestChannel
		if a.node.opts.Sharded {
			channel = a.channel
		}
		if err = a.publish("request", channel, b); err != nil {
			a.mu.Lock()
			delete(a.acks, id)
			a.mu.Unlock()
		}
	}
	_ = a.Memory.BroadcastWithAck(pkt, opts, onCount, onAck)
	return err
}

// ServerCount is the number of nodes subscribed to this namespace (PUBSUB
// NUMSUB of the request channel, SHARDNUMSUB of the main channel when
// sharded), this one included. It is 1 when Redis cannot be asked.
func (a *Adapter) ServerCount(ctx context.Context) int {
	n, err := a.serverCount(ctx)
	if err != nil {
		a.node.log.Warn("redisadapter: server count", "nsp", a.name, "error", err.Error())
		return 1
	}
	return n
}

func (a *Adapter) serverCount(ctx context.Context) (int, error) {
	channel := a.requestChannel
	if a.node.opts.Sharded {
		channel = a.channel
	}
	n, err := a.node.numSub(ctx, channel)
	if err != nil {
		return 0, fmt.Errorf("redisadapter: server count: %w", err)
	}
	return max(n, 1), nil
}

// startRequest registers a request expecting one answer per other node.
// It returns nil when there is no other node.
func (a *Adapter) startRequest(ctx context.Context, typ int) (*request, string, error) {
	n, err := a.serverCount(ctx)
	if err != nil {
		return nil, "", err
	}
	if n <= 1 {
		return nil, "", nil
	}
	id := uid2(6)
	if a.node.opts.Sharded {
		id = randomHex(8)
	}
	req := &request{typ: typ, expected: n - 1, done: make(chan struct{}),
		ids: map[string]struct{}{}, rooms: map[string]struct{}{}}
	a.mu.Lock()
	a.requests[id] = req
	a.mu.Unlock()
	return req, id, nil
}

func (a *Adapter) dropRequest(id string) {
	a.mu.Lock()
	delete(a.requests, id)
	a.mu.Unlock()
}

// await waits for every answer of a request, up to RequestsTimeout or ctx.
func (a *Adapter) await(ctx context.Context, id string, req *request) error {
	t := time.NewTimer(a.node.opts.RequestsTimeout)
	defer t.Stop()
	select {
	case <-req.done:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	a.mu.Lock()
	delete(a.requests, id)
	got := req.got
	a.mu.Unlock()
	select {
	case <-req.done:
		return nil
	default:
	}
	return fmt.Errorf("%w: %d of %d nodes answered (namespace %s)", adapter.ErrTimeout, got, req.expected, a.name)
}

// answered records one answer; it must be called with a.mu held.
func (a *Adapter) answeredLocked(id string, req *request) {
	req.got++
	if req.got >= req.expected {
		delete(a.requests, id)
		close(req.done)
	}
}

func (a *Adapter) sendRequest(ctx context.Context, id string, r *wire.Request, m *wire.ClusterMessage) error {
	var b []byte
	var err error
	channel := a.requestChannel
	if a.node.opts.Sharded {
		channel = a.channel
		m.UID, m.Nsp = a.node.uid, a.name
		b, err = wire.EncodeCluster(m)
	} else {
		r.UID = a.node.uid
		b, err = wire.EncodeRequest(r)
	}
	if err == nil {
		err = a.node.publish(ctx, "request", channel, b)
	}
	if err != nil {
		if id != "" {
			a.dropRequest(id)
		}
		return fmt.Errorf("redisadapter: request on %s: %w", a.name, err)
	}
	return nil
}

// Sockets returns the ids of the sockets in any of rooms (all when empty)
// across the cluster. Classic mode asks with a type 0 request (answered by
// Node 8.x servers too); sharded mode has no such message and uses
// FETCH_SOCKETS, which ships each socket's handshake: O(sockets) bytes.
func (a *Adapter) Sockets(ctx context.Context, rooms []string) ([]string, error) {
	local, _ := a.Memory.Sockets(ctx, rooms)
	if a.node.opts.Sharded {
		infos, err := a.FetchSockets(ctx, &adapter.BroadcastOptions{Rooms: rooms})
		if err != nil {
			return nil, err
		}
		return uniqueIDs(local, infos), nil
	}
	req, id, err := a.startRequest(ctx, wire.TypeSockets)
	if err != nil || req == nil {
		return local, err
	}
	err = a.sendRequest(ctx, id, &wire.Request{Type: wire.TypeSockets, RequestID: id, HasRequestID: true, Rooms: rooms}, nil)
	if err != nil {
		return nil, err
	}
	if err := a.await(ctx, id, req); err != nil {
		return nil, err
	}
	for _, s := range local {
		req.ids[s] = struct{}{}
	}
	return setToList(req.ids), nil
}

func uniqueIDs(local []string, infos []adapter.SocketInfo) []string {
	set := map[string]struct{}{}
	for _, s := range local {
		set[s] = struct{}{}
	}
	for _, s := range infos {
		set[s.ID] = struct{}{}
	}
	return setToList(set)
}

func setToList(set map[string]struct{}) []string {
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	return out
}

// AllRooms returns every room of the cluster. Classic mode asks with a type
// 1 request; sharded mode derives them from FETCH_SOCKETS (O(sockets)).
func (a *Adapter) AllRooms(ctx context.Context) ([]string, error) {
	local := a.LocalRooms()
	if a.node.opts.Sharded {
		infos, err := a.FetchSockets(ctx, &adapter.BroadcastOptions{})
		if err != nil {
			return nil, err
		}
		set := map[string]struct{}{}
		for _, r := range local {
			set[r] = struct{}{}
		}
		for _, s := range infos {
			for _, r := range s.Rooms {
				set[r] = struct{}{}
			}
		}
		return setToList(set), nil
	}
	req, id, err := a.startRequest(ctx, wire.TypeAllRooms)
	if err != nil || req == nil {
		return local, err
	}
	if err := a.sendRequest(ctx, id, &wire.Request{Type: wire.TypeAllRooms, RequestID: id, HasRequestID: true}, nil); err != nil {
		return nil, err
	}
	if err := a.await(ctx, id, req); err != nil {
		return nil, err
	}
	for _, r := range local {
		req.rooms[r] = struct{}{}
	}
	return setToList(req.rooms), nil
}

// FetchSockets returns the sockets opts select across the cluster; it waits
// for one answer per other node (ServerCount-1) up to RequestsTimeout.
func (a *Adapter) FetchSockets(ctx context.Context, opts *adapter.BroadcastOptions) ([]adapter.SocketInfo, error) {
	local, _ := a.Memory.FetchSockets(ctx, opts)
	if opts.Flags.Local {
		return local, nil
	}
	req, id, err := a.startRequest(ctx, wire.TypeRemoteFetch)
	if err != nil || req == nil {
		return local, err
	}
	err = a.sendRequest(ctx, id,
		&wire.Request{Type: wire.TypeRemoteFetch, RequestID: id, HasRequestID: true, Opts: opts},
		&wire.ClusterMessage{Type: wire.MsgFetchSockets, RequestID: id, HasRequestID: true, Opts: *opts})
	if err != nil {
		return nil, err
	}
	if err := a.await(ctx, id, req); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return append(local, req.sockets...), nil
}

// AddSockets makes the selected sockets of every node join rooms.
func (a *Adapter) AddSockets(opts *adapter.BroadcastOptions, rooms []string) {
	a.remoteOp(wire.TypeRemoteJoin, wire.MsgSocketsJoin, opts, rooms, false)
	a.Memory.AddSockets(opts, rooms)
}

// DelSockets makes the selected sockets of every node leave rooms.
func (a *Adapter) DelSockets(opts *adapter.BroadcastOptions, rooms []string) {
	a.remoteOp(wire.TypeRemoteLeave, wire.MsgSocketsLeave, opts, rooms, false)
	a.Memory.DelSockets(opts, rooms)
}

// DisconnectSockets disconnects the selected sockets of every node.
func (a *Adapter) DisconnectSockets(opts *adapter.BroadcastOptions, close bool) {
	a.remoteOp(wire.TypeRemoteDisconnect, wire.MsgDisconnectSockets, opts, nil, close)
	a.Memory.DisconnectSockets(opts, close)
}

func (a *Adapter) remoteOp(typ, msgType int, opts *adapter.BroadcastOptions, rooms []string, close bool) {
	if opts.Flags.Local {
		return
	}
	ctx, cancel := context.WithTimeout(a.node.ctx, a.node.opts.RequestsTimeout)
	defer cancel()
	err := a.sendRequest(ctx, "",
		&wire.Request{Type: typ, Opts: opts, Rooms: rooms, Close: close},
		&wire.ClusterMessage{Type: msgType, Opts: *opts, Rooms: rooms, Close: close})
	if err != nil {
		a.node.log.Warn("redisadapter: remote operation not published", "type", typ, "error", err.Error())
	}
}

// ServerSideEmit sends args to the namespace on every other node. With
// onReply it waits for one reply per other node, calling onReply for each,
// and returns adapter.ErrTimeout when some did not answer in time.
func (a *Adapter) ServerSideEmit(ctx context.Context, args []any, onReply func(arg any)) error {
	if onReply == nil {
		return a.sendRequest(ctx, "",
			&wire.Request{Type: wire.TypeServerSideEmit, Args: args},
			&wire.ClusterMessage{Type: wire.MsgServerSideEmit, Args: args})
	}
	req, id, err := a.startRequest(ctx, wire.TypeServerSideEmit)
	if err != nil || req == nil {
		return err
	}
	req.onReply = onReply
	err = a.sendRequest(ctx, id,
		&wire.Request{Type: wire.TypeServerSideEmit, RequestID: id, HasRequestID: true, Args: args},
		&wire.ClusterMessage{Type: wire.MsgServerSideEmit, RequestID: id, HasRequestID: true, Args: args})
	if err != nil {
		return err
	}
	return a.await(ctx, id, req)
}

// --- receiving ---

// onBroadcast handles a classic broadcast received on channel.
func (a *Adapter) onBroadcast(channel string, payload []byte) {
	if !strings.HasPrefix(channel, a.channel) || !strings.HasSuffix(channel, "#") || len(channel) < len(a.channel) {
		return
	}
	room := ""
	if len(channel) > len(a.channel) {
		room = channel[len(a.channel) : len(channel)-1]
	}
	if room != "" && !a.HasRoom(room) {
		return
	}
	b, err := wire.DecodeBroadcast(payload)
	if err != nil {
		a.node.observeError("decode", err)
		return
	}
	if b.UID == a.node.uid || b.Packet.Nsp != a.name {
		return
	}
	a.deliverLocal(b.Packet, &b.Opts)
}

func (a *Adapter) respond(requesterUID string, payload []byte) {
	channel := a.responseChannel
	if a.node.opts.PublishOnSpecificResponseChannel && requesterUID != "" {
		channel += requesterUID + "#"
	}
	a.node.publishAsync("response", channel, payload)
}

// onRequest handles a classic request (types 0-7).
func (a *Adapter) onRequest(payload []byte) {
	r, err := wire.DecodeRequest(payload)
	if err != nil {
		a.node.observeError("decode", err)
		return
	}
	own := r.UID == a.node.uid
	switch r.Type {
	case wire.TypeSockets:
		if own {
			return
		}
		ids, _ := a.Memory.Sockets(context.Background(), r.Rooms)
		a.respond(r.UID, wire.EncodeSocketsResponse(r.RequestID, ids))
	case wire.TypeAllRooms:
		if own {
			return
		}
		a.respond(r.UID, wire.EncodeRoomsResponse(r.RequestID, a.LocalRooms()))
	case wire.TypeRemoteJoin, wire.TypeRemoteLeave, wire.TypeRemoteDisconnect:
		if own {
			return // applied locally when sent
		}
		if r.Opts != nil {
			switch r.Type {
			case wire.TypeRemoteJoin:
				a.Memory.AddSockets(r.Opts, r.Rooms)
			case wire.TypeRemoteLeave:
				a.Memory.DelSockets(r.Opts, r.Rooms)
			default:
				a.Memory.DisconnectSockets(r.Opts, r.Close)
			}
			return
		}
		s, ok := a.nsp.LocalSocket(r.SID)
		if !ok {
			return
		}
		switch r.Type {
		case wire.TypeRemoteJoin:
			s.Join(r.Room)
		case wire.TypeRemoteLeave:
			s.Leave(r.Room)
		default:
			s.Disconnect(r.Close)
		}
		a.respond(r.UID, wire.EncodeAckResponse(r.RequestID))
	case wire.TypeRemoteFetch:
		if own {
			return
		}
		infos, _ := a.Memory.FetchSockets(context.Background(), r.Opts)
		b, err := wire.EncodeFetchResponse(r.RequestID, infos)
		if err != nil {
			a.node.observeError("encode", err)
			return
		}
		a.respond(r.UID, b)
	case wire.TypeServerSideEmit:
		if own {
			return
		}
		var reply func(any)
		if r.HasRequestID {
			reply = a.onceReply(func(arg any) {
				b, err := wire.EncodeServerSideEmitResponse(r.RequestID, arg)
				if err != nil {
					a.node.observeError("encode", err)
					return
				}
				// Node answers serverSideEmit on the shared channel
				a.node.publishAsync("response", a.responseChannel, b)
			})
		}
		a.nsp.HandleServerSideEmit(r.Args, reply)
	case wire.TypeBroadcast:
		a.mu.Lock()
		_, mine := a.acks[r.RequestID]
		a.mu.Unlock()
		if own || mine {
			return
		}
		pkt := a.pkt(r.Packet)
		_ = a.Memory.BroadcastWithAck(pkt, r.Opts, func(n int) {
			a.respond(r.UID, wire.EncodeClientCountResponse(r.RequestID, n))
		}, func(args []any) {
			var arg any
			if len(args) > 0 {
				arg = args[0]
			}
			b, err := wire.EncodeBroadcastAckResponse(r.RequestID, arg)
			if err != nil {
				a.node.observeError("encode", err)
				return
			}
			a.respond(r.UID, b)
		})
	}
}

func (a *Adapter) onceReply(f func(any)) func(any) {
	var once sync.Once
	return func(arg any) { once.Do(func() { f(arg) }) }
}

// onResponse handles a classic response.
func (a *Adapter) onResponse(payload []byte) {
	r, err := wire.DecodeResponse(payload)
	if err != nil {
		a.node.observeError("decode", err)
		return
	}
	a.mu.Lock()
	if ack := a.acks[r.RequestID]; ack != nil {
		a.mu.Unlock()
		switch r.Type {
		case wire.TypeBroadcastClientCount:
			ack.onCount(r.ClientCount)
		case wire.TypeBroadcastAck:
			ack.onAck([]any{r.Packet})
		}
		return
	}
	req := a.requests[r.RequestID]
	if req == nil {
		a.mu.Unlock()
		return
	}
	var reply func(any)
	switch req.typ {
	case wire.TypeSockets:
		ids, err := r.SocketIDs()
		if err != nil {
			a.mu.Unlock()
			a.node.observeError("decode", err)
			return
		}
		for _, id := range ids {
			req.ids[id] = struct{}{}
		}
	case wire.TypeAllRooms:
		for _, room := range r.Rooms {
			req.rooms[room] = struct{}{}
		}
	case wire.TypeRemoteFetch:
		infos, err := r.SocketInfos()
		if err != nil {
			a.mu.Unlock()
			a.node.observeError("decode", err)
			return
		}
		req.sockets = append(req.sockets, infos...)
	case wire.TypeServerSideEmit:
		reply = req.onReply
	}
	if reply != nil {
		// the reply is handed over before the request may complete
		a.mu.Unlock()
		reply(r.Data)
		a.mu.Lock()
		if a.requests[r.RequestID] != req {
			a.mu.Unlock()
			return
		}
	}
	a.answeredLocked(r.RequestID, req)
	a.mu.Unlock()
}
