// Package adapter defines the boundary between the socket layer and
// broadcast fan-out: room membership, local delivery and cluster operations.
//
// The in-memory adapter (New) serves one node. Cluster adapters (see
// adapter/redisadapter) embed it for the local part and add the wire to the
// other nodes, as socket.io-adapter's ClusterAdapter does.
package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
	"time"

	"github.com/tradewire/tradewire/parser"
)

// ErrTimeout is returned by cluster requests that did not get every answer in time.
var ErrTimeout = errors.New("adapter: request timed out")

// ErrDuplicate is returned by Broadcast when a broadcast with the same
// Flags.Once id was already delivered (nothing is delivered again).
var ErrDuplicate = errors.New("adapter: duplicate event id")

// Flags modify a broadcast.
type Flags struct {
	// Volatile packets may be dropped for sockets that are not ready to write.
	Volatile bool `json:"volatile,omitempty" msgpack:"volatile,omitempty"`
	// Local packets are not forwarded to other nodes.
	Local bool `json:"local,omitempty" msgpack:"local,omitempty"`
	// Compress is accepted for wire compatibility; tradewire does not compress.
	Compress *bool `json:"compress,omitempty" msgpack:"compress,omitempty"`
	// Timeout (ms) is set on broadcasts that expect acks.
	Timeout int64 `json:"timeout,omitempty" msgpack:"timeout,omitempty"`
	// Conflate, when set, lets a lagging socket keep only the latest packet
	// of that key (e.g. one quote per symbol). Local only, never on the wire.
	Conflate string `json:"-" msgpack:"-"`
	// Strict makes a cluster adapter deliver nothing, locally either, when
	// the publish to the other nodes fails: the caller gets the error and
	// retries, and no client sees the event twice. Local only.
	Strict bool `json:"-" msgpack:"-"`
	// Once, when set, is the broadcast's event id: a cluster adapter whose
	// recovery store marks ids atomically with the record-and-publish
	// delivers the broadcast only if no broadcast with that id was
	// delivered before, and returns ErrDuplicate otherwise. Local only.
	Once string `json:"-" msgpack:"-"`
}

// BroadcastOptions select recipients: sockets in any of Rooms (every socket
// when Rooms is empty) minus sockets in any of Except.
type BroadcastOptions struct {
	Rooms  []string `json:"rooms" msgpack:"rooms"`
	Except []string `json:"except" msgpack:"except"`
	Flags  Flags    `json:"flags" msgpack:"flags"`
}

// Handshake is the serialisable handshake of a socket, as fetchSockets returns it.
type Handshake struct {
	Headers map[string]any `json:"headers"`
	Time    string         `json:"time"`
	Address string         `json:"address"`
	XDomain bool           `json:"xdomain"`
	Secure  bool           `json:"secure"`
	Issued  int64          `json:"issued"`
	URL     string         `json:"url"`
	Query   map[string]any `json:"query"`
	Auth    map[string]any `json:"auth"`
}

// SocketInfo describes a socket anywhere in the cluster.
type SocketInfo struct {
	ID        string    `json:"id"`
	Handshake Handshake `json:"handshake"`
	Rooms     []string  `json:"rooms"`
	Data      any       `json:"data"`
}

// Socket is a local socket as the adapter sees it.
type Socket interface {
	ID() string
	// Join and Leave change membership through the socket, so the socket
	// layer keeps its own bookkeeping (events, quotas) right.
	Join(rooms ...string)
	Leave(room string)
	Disconnect(close bool)
	Info() SocketInfo
	// EmitWithAck sends pkt (an EVENT without id) expecting one ack; ack is
	// called with the ack's arguments, or err on timeout/disconnect.
	EmitWithAck(pkt *parser.Packet, timeout time.Duration, ack func(args []any, err error))
}

// Namespace is the socket layer as an adapter sees it.
type Namespace interface {
	Name() string
	// Deliver encodes pkt once and writes the same bytes to each local
	// socket id yields. Unknown ids are skipped.
	Deliver(pkt *parser.Packet, flags Flags, ids iter.Seq[string])
	// LocalSocket returns the connected local socket with that id.
	LocalSocket(id string) (Socket, bool)
	// HandleServerSideEmit handles a serverSideEmit from another node;
	// reply, when not nil, sends the first ack argument back.
	HandleServerSideEmit(args []any, reply func(arg any))
}

// SessionState is what connection state recovery keeps of a disconnected socket.
type SessionState struct {
	SID   string          `json:"sid"`
	PID   string          `json:"pid"`
	Rooms []string        `json:"rooms"`
	Data  json.RawMessage `json:"data,omitempty"`
	// Missed packets, filled by RestoreSession.
	Missed []*parser.Packet `json:"-"`
}

// Adapter is one namespace's room index and fan-out.
type Adapter interface {
	// Init is called once before use.
	Init(ctx context.Context) error
	Close() error

	AddAll(id string, rooms []string)
	Del(id, room string)
	DelAll(id string)
	// SocketRooms returns the rooms of a local socket (nil if unknown).
	SocketRooms(id string) []string
	// LocalRooms returns every room with at least one local member.
	LocalRooms() []string
	// LocalSockets yields the ids of local sockets opts select.
	LocalSockets(opts *BroadcastOptions) iter.Seq[string]

	// Broadcast delivers pkt to every selected socket in the cluster.
	Broadcast(pkt *parser.Packet, opts *BroadcastOptions) error
	// BroadcastWithAck delivers pkt and collects one ack per client:
	// onCount is called once per node with its number of recipients, onAck
	// once per received ack.
	BroadcastWithAck(pkt *parser.Packet, opts *BroadcastOptions, onCount func(n int), onAck func(args []any)) error

	// Cluster-wide views and operations.
	Sockets(ctx context.Context, rooms []string) ([]string, error)
	AllRooms(ctx context.Context) ([]string, error)
	FetchSockets(ctx context.Context, opts *BroadcastOptions) ([]SocketInfo, error)
	AddSockets(opts *BroadcastOptions, rooms []string)
	DelSockets(opts *BroadcastOptions, rooms []string)
	DisconnectSockets(opts *BroadcastOptions, close bool)
	// ServerSideEmit sends args to the other nodes' namespaces; with onReply,
	// it waits for one reply per node (ServerCount-1) or ctx's end.
	ServerSideEmit(ctx context.Context, args []any, onReply func(arg any)) error
	ServerCount(ctx context.Context) int

	// Connection state recovery.
	PersistSession(s *SessionState)
	RestoreSession(pid, offset string) (*SessionState, error)
}

// RecoveryStore keeps recoverable broadcasts and disconnected sessions
// outside the process (e.g. Redis Streams), so a client can recover on any
// node, even after the node it was connected to crashed.
type RecoveryStore interface {
	// Record stores a broadcast and returns its offset; "" (and no error)
	// when the broadcast is not recoverable.
	Record(nsp string, pkt *parser.Packet, opts *BroadcastOptions) (offset string, err error)
	// PersistSession saves (or refreshes) a socket's state; it must not block
	// on the network (implementations batch).
	PersistSession(nsp string, s *SessionState)
	// RestoreSession returns the session and every packet it missed after
	// offset, whole, or ErrNotRecoverable.
	RestoreSession(nsp, pid, offset string) (*SessionState, error)
	// CatchUp lists recorded packets after offset that rooms select.
	CatchUp(nsp string, rooms []string, offset string) []*parser.Packet
}

// Voider is implemented by recovery stores that can take back a recorded
// broadcast that was then not delivered (a strict publish that failed), so
// no later restore or catch-up replays it.
type Voider interface {
	Void(nsp string, opts *BroadcastOptions, offset string)
}

// CatchUpper is implemented by adapters that can list the recorded packets
// after an offset for a set of rooms (used to close the window between a
// restore and the restored socket joining its rooms again).
type CatchUpper interface {
	CatchUp(rooms []string, offset string) []*parser.Packet
}

// Factory creates the adapter of a namespace.
type Factory func(nsp Namespace) Adapter
