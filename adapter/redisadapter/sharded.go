package redisadapter

import (
	"context"

	"github.com/tradewire/tradewire/adapter"
	"github.com/tradewire/tradewire/adapter/redisadapter/internal/wire"
)

// partitionChannel is the sharded channel of a recovery partition (a user),
// <prefix>#<nsp>#{<partition>}#: its hash tag puts it in the slot of the
// partition's stream, so one script records and publishes. Every node with
// a local room of the partition subscribes it; only recoverable broadcasts,
// published by that script, travel on it, so each node receives a user's
// events in stream order whichever node sent them.
func (a *Adapter) partitionChannel(part string) string { return a.channel + "{" + part + "}#" }

// roomPartition is the recovery partition of broadcasts to room alone ("" for none).
func (a *Adapter) roomPartition(room string) string {
	if !a.node.opts.Sharded {
		return ""
	}
	if _, ok := a.Memory.Store().(adapter.AtomicPublisher); !ok {
		return ""
	}
	p, ok := a.Memory.Store().(adapter.Partitioner)
	if !ok {
		return ""
	}
	return p.PartitionOf(&adapter.BroadcastOptions{Rooms: []string{room}})
}

// partitioned reports whether this adapter subscribes partition channels.
func (a *Adapter) partitioned() bool {
	if !a.node.opts.Sharded || !a.Memory.SharedRecovery() {
		return false
	}
	_, ok := a.Memory.Store().(adapter.AtomicPublisher)
	return ok
}

// roomChannel is the sharded per-room channel <prefix>#<nsp>#<room>#.
func (a *Adapter) roomChannel(room string) string { return a.channel + room + "#" }

// useRoomChannel reports whether a broadcast to exactly this room goes to
// its own channel: always in dynamic-private mode, in dynamic mode unless
// the name looks like a socket id (20 characters), as the Node adapter does.
func (a *Adapter) useRoomChannel(room string) bool {
	switch a.node.opts.SubscriptionMode {
	case SubscriptionDynamicPrivate:
		return true
	case SubscriptionDynamic:
		return len(room) != 20
	}
	return false
}

// separateChannel reports whether this node subscribes room's channel while
// the room exists locally: public rooms (not a socket id) in dynamic mode,
// every room in dynamic-private mode.
func (a *Adapter) separateChannel(room string) bool {
	switch a.node.opts.SubscriptionMode {
	case SubscriptionDynamicPrivate:
		return true
	case SubscriptionDynamic:
		return a.Memory.SocketRooms(room) == nil
	}
	return false
}

// AddAll adds a socket to rooms (and, in the dynamic sharded modes,
// subscribes the channels of rooms that now exist locally).
func (a *Adapter) AddAll(id string, rooms []string) {
	if !a.dynamic && !a.partitioned() {
		a.Memory.AddAll(id, rooms)
		return
	}
	a.roomMu.Lock()
	defer a.roomMu.Unlock()
	a.Memory.AddAll(id, rooms)
	a.syncRoomsLocked(rooms)
}

// Del removes a socket from a room.
func (a *Adapter) Del(id, room string) {
	if !a.dynamic && !a.partitioned() {
		a.Memory.Del(id, room)
		return
	}
	a.roomMu.Lock()
	defer a.roomMu.Unlock()
	a.Memory.Del(id, room)
	a.syncRoomsLocked([]string{room})
}

// DelAll removes a socket from every room.
func (a *Adapter) DelAll(id string) {
	if !a.dynamic && !a.partitioned() {
		a.Memory.DelAll(id)
		return
	}
	a.roomMu.Lock()
	defer a.roomMu.Unlock()
	rooms := a.Memory.SocketRooms(id)
	a.Memory.DelAll(id)
	a.syncRoomsLocked(rooms)
}

// syncRoomsLocked makes the room channel subscriptions match the local
// rooms. Subscribing does not wait for Redis' confirmation.
func (a *Adapter) syncRoomsLocked(rooms []string) {
	a.mu.Lock()
	inited := a.inited
	a.mu.Unlock()
	if !inited {
		return
	}
	var add, del []string
	for _, r := range rooms {
		if part := a.roomPartition(r); part != "" {
			set := a.partRooms[part]
			had := len(set) > 0
			if a.HasRoom(r) {
				if set == nil {
					set = map[string]struct{}{}
					a.partRooms[part] = set
				}
				set[r] = struct{}{}
			} else {
				delete(set, r)
			}
			switch has := len(set) > 0; {
			case has && !had:
				add = append(add, a.partitionChannel(part))
			case !has && had:
				delete(a.partRooms, part)
				del = append(del, a.partitionChannel(part))
			}
		}
		if !a.dynamic {
			continue
		}
		want := a.HasRoom(r) && a.separateChannel(r)
		if want == a.roomSubs[r] {
			continue
		}
		if want {
			a.roomSubs[r] = true
			add = append(add, a.roomChannel(r))
		} else {
			delete(a.roomSubs, r)
			del = append(del, a.roomChannel(r))
		}
	}
	ctx := a.node.ctx
	if len(add) > 0 {
		_ = a.node.subscribe(ctx, false, a, kindShard, 'm', add...)
	}
	if len(del) > 0 {
		a.node.unsubscribe(ctx, kindShard, del...)
	}
}

func (a *Adapter) respondCluster(requesterUID string, m *wire.ClusterMessage) {
	m.UID, m.Nsp, m.HasRequestID = a.node.uid, a.name, true
	b, err := wire.EncodeCluster(m)
	if err != nil {
		a.node.observeError("encode", err)
		return
	}
	a.node.publishAsync("response", a.channel+requesterUID+"#", b)
}

// onClusterMessage handles a sharded message from the main, a room or this
// node's response channel.
func (a *Adapter) onClusterMessage(payload []byte, responseChannel bool) {
	m, err := wire.DecodeCluster(payload)
	if err != nil {
		a.node.observeError("decode", err)
		return
	}
	if responseChannel {
		a.onClusterResponse(m)
		return
	}
	if m.UID == a.node.uid || m.Nsp != a.name {
		return
	}
	switch m.Type {
	case wire.MsgBroadcast:
		if !m.HasRequestID {
			a.deliverLocal(m.Packet, &m.Opts)
			return
		}
		_ = a.Memory.BroadcastWithAck(m.Packet, &m.Opts, func(n int) {
			a.respondCluster(m.UID, &wire.ClusterMessage{Type: wire.MsgBroadcastClientCount, RequestID: m.RequestID, ClientCount: n})
		}, func(args []any) {
			var arg any
			if len(args) > 0 {
				arg = args[0]
			}
			a.respondCluster(m.UID, &wire.ClusterMessage{Type: wire.MsgBroadcastAck, RequestID: m.RequestID, Arg: arg})
		})
	case wire.MsgSocketsJoin:
		a.Memory.AddSockets(&m.Opts, m.Rooms)
	case wire.MsgSocketsLeave:
		a.Memory.DelSockets(&m.Opts, m.Rooms)
	case wire.MsgDisconnectSockets:
		a.Memory.DisconnectSockets(&m.Opts, m.Close)
	case wire.MsgFetchSockets:
		infos, _ := a.Memory.FetchSockets(context.Background(), &m.Opts)
		a.respondCluster(m.UID, &wire.ClusterMessage{Type: wire.MsgFetchSocketsResponse, RequestID: m.RequestID, Sockets: infos})
	case wire.MsgServerSideEmit:
		var reply func(any)
		if m.HasRequestID {
			reply = a.onceReply(func(arg any) {
				a.respondCluster(m.UID, &wire.ClusterMessage{Type: wire.MsgServerSideEmitResponse, RequestID: m.RequestID, Arg: arg})
			})
		}
		a.nsp.HandleServerSideEmit(m.Args, reply)
	default:
		// responses published on a shared channel by older nodes
		a.onClusterResponse(m)
	}
}

func (a *Adapter) onClusterResponse(m *wire.ClusterMessage) {
	a.mu.Lock()
	if ack := a.acks[m.RequestID]; ack != nil {
		a.mu.Unlock()
		switch m.Type {
		case wire.MsgBroadcastClientCount:
			ack.onCount(m.ClientCount)
		case wire.MsgBroadcastAck:
			ack.onAck([]any{m.Arg})
		}
		return
	}
	req := a.requests[m.RequestID]
	if req == nil {
		a.mu.Unlock()
		return
	}
	switch {
	case m.Type == wire.MsgFetchSocketsResponse && req.typ == wire.TypeRemoteFetch:
		req.sockets = append(req.sockets, m.Sockets...)
	case m.Type == wire.MsgServerSideEmitResponse && req.typ == wire.TypeServerSideEmit:
		reply := req.onReply
		a.mu.Unlock()
		reply(m.Arg)
		a.mu.Lock()
		if a.requests[m.RequestID] != req {
			a.mu.Unlock()
			return
		}
	default:
		a.mu.Unlock()
		return
	}
	a.answeredLocked(m.RequestID, req)
	a.mu.Unlock()
}

var _ adapter.Adapter = (*Adapter)(nil)
