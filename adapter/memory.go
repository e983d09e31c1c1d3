package adapter

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"iter"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tradewire/tradewire/parser"
)

// ErrRecoveryDisabled is returned by RestoreSession when recovery is off.
var ErrRecoveryDisabled = errors.New("adapter: connection state recovery is disabled")

// ErrNotRecoverable is returned when a session cannot be restored whole:
// unknown or expired pid, or an offset no longer buffered.
var ErrNotRecoverable = errors.New("adapter: session not recoverable")

// Options configure the in-memory adapter.
type Options struct {
	// RecoveryWindow is how long disconnected sessions and broadcast packets
	// are kept for connection state recovery; 0 disables recovery.
	RecoveryWindow time.Duration
	// RecoveryMaxPackets bounds the packet buffer (default 100000). When it
	// overflows, the oldest packets go and restores that need them fail.
	RecoveryMaxPackets int
	// Recoverable, when set, decides which broadcasts are kept for recovery
	// (e.g. user events yes, market quotes no). Nil keeps every EVENT.
	Recoverable func(opts *BroadcastOptions) bool
	// Conflate, when set, names the conflation key of a broadcast ("" for
	// none): lagging sockets then keep only the newest packet per key.
	Conflate func(opts *BroadcastOptions) string
	// Store, when set, replaces the in-process buffer: broadcasts are
	// recorded there by the node that sends them, and sessions are saved
	// there while connected, so recovery works on any node.
	Store RecoveryStore
}

type bufferedPacket struct {
	seq  uint64
	at   time.Time
	pkt  *parser.Packet
	opts BroadcastOptions
}

type storedSession struct {
	state *SessionState
	at    time.Time
}

// Memory is the in-memory adapter: one node, no network.
type Memory struct {
	nsp  Namespace
	opts Options

	mu  sync.RWMutex
	idx roomIndex // local membership (lock: mu)

	recMu      sync.Mutex
	orderLocks [64]sync.Mutex
	epoch      uint64 // this adapter's lifetime in its offsets (Position.Epoch)
	seq        uint64
	packets    []bufferedPacket
	sessions   map[string]storedSession
	lastGC     time.Time
	now        func() time.Time
}

// NewMemory returns an in-memory adapter for nsp.
func NewMemory(nsp Namespace, opts Options) *Memory {
	if opts.RecoveryMaxPackets <= 0 {
		opts.RecoveryMaxPackets = 100000
	}
	return &Memory{
		nsp:      nsp,
		opts:     opts,
		idx:      newRoomIndex(),
		sessions: make(map[string]storedSession),
		epoch:    newEpoch(),
		now:      time.Now,
	}
}

// MemoryFactory returns a Factory building in-memory adapters.
func MemoryFactory(opts Options) Factory {
	return func(nsp Namespace) Adapter { return NewMemory(nsp, opts) }
}

// Namespace returns the namespace this adapter serves.
func (m *Memory) Namespace() Namespace { return m.nsp }

// Init implements Adapter.
func (m *Memory) Init(context.Context) error { return nil }

// Close implements Adapter.
func (m *Memory) Close() error { return nil }

// AddAll adds socket id to rooms.
func (m *Memory) AddAll(id string, rooms []string) {
	m.mu.Lock()
	m.idx.add(id, rooms)
	m.mu.Unlock()
}

// Del removes socket id from room.
func (m *Memory) Del(id, room string) {
	m.mu.Lock()
	m.idx.del(id, room)
	m.mu.Unlock()
}

// DelAll removes socket id from every room.
func (m *Memory) DelAll(id string) {
	m.mu.Lock()
	m.idx.delAll(id)
	m.mu.Unlock()
}

// SocketRooms returns the rooms of a local socket.
func (m *Memory) SocketRooms(id string) []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.idx.socketRooms(id)
}

// LocalRooms returns every room with a local member.
func (m *Memory) LocalRooms() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.idx.localRooms()
}

// HasRoom reports whether room has a local member.
func (m *Memory) HasRoom(room string) bool {
	m.mu.RLock()
	_, ok := m.idx.lookup(room)
	m.mu.RUnlock()
	return ok
}

// LocalSockets yields the ids of local sockets that opts select. The room
// index is read-locked while the sequence runs: callers must not change
// membership from inside the loop.
func (m *Memory) LocalSockets(opts *BroadcastOptions) iter.Seq[string] {
	return func(yield func(string) bool) {
		m.mu.RLock()
		defer m.mu.RUnlock()
		m.idx.selected(opts, func(p *member) bool { return yield(p.id) })
	}
}

// Broadcast delivers pkt to the local sockets opts select, recording it for
// recovery when enabled.
func (m *Memory) Broadcast(pkt *parser.Packet, opts *BroadcastOptions) error {
	defer m.OrderLock(pkt, opts)()
	pkt = m.record(pkt, opts)
	m.nsp.Deliver(pkt, m.flags(opts), m.LocalSockets(opts))
	return nil
}

// AtomicPublisher is implemented by recovery stores that can record a
// broadcast and publish it to the other nodes in one atomic step, so the
// stream order is the order every node delivers in, whichever node sent it.
// The published payload is pre + <offset as a msgpack fixstr> + post.
type AtomicPublisher interface {
	RecordAndPublish(nsp string, pkt *parser.Packet, opts *BroadcastOptions, channel string, pre, post []byte) (offset string, err error)
}

// Store returns the shared recovery store (nil when none).
func (m *Memory) Store() RecoveryStore { return m.opts.Store }

// Partitioner is implemented by recovery stores whose offsets are ordered
// per partition (e.g. per user).
type Partitioner interface {
	PartitionOf(opts *BroadcastOptions) string
}

// OrderLock serialises, per recovery partition (per room set without a
// partitioned store), the recording and the delivery of recoverable
// broadcasts, so clients receive them in offset order: a client that
// reconnects with its last offset then neither gets an event twice nor
// misses one still in flight. Other broadcasts are not serialised. Call
// the returned func to unlock.
func (m *Memory) OrderLock(pkt *parser.Packet, opts *BroadcastOptions) func() {
	if !m.recordable(pkt, opts) {
		return func() {}
	}
	key := ""
	if p, ok := m.opts.Store.(Partitioner); ok {
		key = p.PartitionOf(opts)
	} else {
		key = strings.Join(opts.Rooms, "\x00")
	}
	var h uint32 = 2166136261
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * 16777619
	}
	mu := &m.orderLocks[h%uint32(len(m.orderLocks))]
	mu.Lock()
	return mu.Unlock
}

func (m *Memory) recordable(pkt *parser.Packet, opts *BroadcastOptions) bool {
	return m.opts.RecoveryWindow > 0 && !pkt.HasID && !opts.Flags.Volatile &&
		(pkt.Type == parser.Event || pkt.Type == parser.BinaryEvent) &&
		(m.opts.Recoverable == nil || m.opts.Recoverable(opts))
}

func (m *Memory) flags(opts *BroadcastOptions) Flags {
	f := opts.Flags
	if m.opts.Conflate != nil && f.Conflate == "" {
		f.Conflate = m.opts.Conflate(opts)
	}
	return f
}

// BroadcastLocal delivers pkt to local sockets only, without recording it
// (cluster adapters call it for packets that came from another node, which
// recorded them already when recovery is shared).
func (m *Memory) BroadcastLocal(pkt *parser.Packet, opts *BroadcastOptions) {
	m.nsp.Deliver(pkt, m.flags(opts), m.LocalSockets(opts))
}

// BroadcastWithAck implements Adapter for one node.
func (m *Memory) BroadcastWithAck(pkt *parser.Packet, opts *BroadcastOptions, onCount func(int), onAck func([]any)) error {
	timeout := time.Duration(opts.Flags.Timeout) * time.Millisecond
	var targets []Socket
	for id := range m.LocalSockets(opts) {
		if s, ok := m.nsp.LocalSocket(id); ok {
			targets = append(targets, s)
		}
	}
	onCount(len(targets))
	for _, s := range targets {
		s.EmitWithAck(pkt, timeout, func(args []any, err error) {
			if err == nil {
				onAck(args)
			}
		})
	}
	return nil
}

// Sockets returns the ids of local sockets in any of rooms (all when empty).
func (m *Memory) Sockets(_ context.Context, rooms []string) ([]string, error) {
	return slices.Collect(m.LocalSockets(&BroadcastOptions{Rooms: rooms})), nil
}

// AllRooms returns the local rooms.
func (m *Memory) AllRooms(context.Context) ([]string, error) { return m.LocalRooms(), nil }

func (m *Memory) localTargets(opts *BroadcastOptions) []Socket {
	var out []Socket
	for id := range m.LocalSockets(opts) {
		if s, ok := m.nsp.LocalSocket(id); ok {
			out = append(out, s)
		}
	}
	return out
}

// FetchSockets returns the local sockets opts select.
func (m *Memory) FetchSockets(_ context.Context, opts *BroadcastOptions) ([]SocketInfo, error) {
	targets := m.localTargets(opts)
	out := make([]SocketInfo, 0, len(targets))
	for _, s := range targets {
		out = append(out, s.Info())
	}
	return out, nil
}

// AddSockets makes the selected local sockets join rooms.
func (m *Memory) AddSockets(opts *BroadcastOptions, rooms []string) {
	for _, s := range m.localTargets(opts) {
		s.Join(rooms...)
	}
}

// DelSockets makes the selected local sockets leave rooms.
func (m *Memory) DelSockets(opts *BroadcastOptions, rooms []string) {
	for _, s := range m.localTargets(opts) {
		for _, r := range rooms {
			s.Leave(r)
		}
	}
}

// DisconnectSockets disconnects the selected local sockets.
func (m *Memory) DisconnectSockets(opts *BroadcastOptions, close bool) {
	for _, s := range m.localTargets(opts) {
		s.Disconnect(close)
	}
}

// ServerSideEmit has no other node to reach.
func (m *Memory) ServerSideEmit(context.Context, []any, func(any)) error { return nil }

// ServerCount is 1 for a single node.
func (m *Memory) ServerCount(context.Context) int { return 1 }

// SharedRecovery reports whether recovery state lives in a shared Store:
// then only the sending node records a broadcast (Record), and the others
// deliver it as received (BroadcastLocal).
func (m *Memory) SharedRecovery() bool { return m.opts.RecoveryWindow > 0 && m.opts.Store != nil }

// Record gives pkt its recovery offset (when recovery is on and pkt is
// recoverable) and returns the packet to deliver. With a shared Store a
// failed write leaves the packet without offset: clients get it live, and
// the store is responsible for making a later restore across it fail.
func (m *Memory) Record(pkt *parser.Packet, opts *BroadcastOptions) *parser.Packet {
	return m.record(pkt, opts)
}

// record assigns an offset and buffers pkt when recovery is on and pkt is
// recoverable (an EVENT without ack id, not volatile).
func (m *Memory) record(pkt *parser.Packet, opts *BroadcastOptions) *parser.Packet {
	if !m.recordable(pkt, opts) {
		return pkt
	}
	if m.opts.Store != nil {
		offset, err := m.opts.Store.Record(m.nsp.Name(), pkt, opts)
		if err != nil || offset == "" {
			return pkt
		}
		out := *pkt
		out.Data = parser.AppendArg(pkt.Data, offset)
		return &out
	}
	m.recMu.Lock()
	defer m.recMu.Unlock()
	m.seq++
	offset := Position{Epoch: m.epoch, Seq: m.seq}.String()
	out := *pkt
	out.Data = parser.AppendArg(pkt.Data, offset)
	now := m.now()
	m.gcLocked(now)
	if len(m.packets) >= m.opts.RecoveryMaxPackets {
		m.dropOldest(len(m.packets) - m.opts.RecoveryMaxPackets + 1)
	}
	m.packets = append(m.packets, bufferedPacket{seq: m.seq, at: now, pkt: &out, opts: cloneOpts(opts)})
	return &out
}

func cloneOpts(o *BroadcastOptions) BroadcastOptions {
	return BroadcastOptions{Rooms: slices.Clone(o.Rooms), Except: slices.Clone(o.Except), Flags: o.Flags}
}

// gcLocked drops packets and sessions older than the recovery window, at
// most once a second.
func (m *Memory) gcLocked(now time.Time) {
	if now.Sub(m.lastGC) < time.Second {
		return
	}
	m.lastGC = now
	cutoff := now.Add(-m.opts.RecoveryWindow)
	i := 0
	for i < len(m.packets) && m.packets[i].at.Before(cutoff) {
		i++
	}
	if i > 0 {
		m.dropOldest(i)
	}
	for pid, s := range m.sessions {
		if s.at.Before(cutoff) {
			delete(m.sessions, pid)
		}
	}
}

// dropOldest forgets the n oldest packets in O(n): the slice is resliced
// (append reallocates and compacts it later), not shifted.
func (m *Memory) dropOldest(n int) {
	clear(m.packets[:n])
	m.packets = m.packets[n:]
}

// PersistSession keeps a disconnected socket's state for the recovery window.
func (m *Memory) PersistSession(s *SessionState) {
	if m.opts.RecoveryWindow <= 0 {
		return
	}
	if m.opts.Store != nil {
		m.opts.Store.PersistSession(m.nsp.Name(), s)
		return
	}
	m.recMu.Lock()
	defer m.recMu.Unlock()
	now := m.now()
	m.gcLocked(now)
	m.sessions[s.PID] = storedSession{state: s, at: now}
}

// RestoreSession returns the session and every packet it missed after
// offset, or ErrNotRecoverable when that cannot be done whole.
func (m *Memory) RestoreSession(pid, offset string) (*SessionState, error) {
	if m.opts.RecoveryWindow <= 0 {
		return nil, ErrRecoveryDisabled
	}
	if m.opts.Store != nil {
		return m.opts.Store.RestoreSession(m.nsp.Name(), pid, offset)
	}
	m.recMu.Lock()
	defer m.recMu.Unlock()
	now := m.now()
	stored, ok := m.sessions[pid]
	if !ok || now.Sub(stored.at) > m.opts.RecoveryWindow {
		delete(m.sessions, pid)
		return nil, ErrNotRecoverable
	}
	pos, ok := ParsePosition(offset)
	if !ok || pos.Epoch != m.epoch || pos.Seq > m.seq {
		return nil, ErrNotRecoverable
	}
	seq := pos.Seq
	// The packet at offset must still be buffered, otherwise a gap is possible.
	start := -1
	for i := range m.packets {
		if m.packets[i].seq == seq {
			start = i + 1
			break
		}
	}
	if start < 0 {
		return nil, ErrNotRecoverable
	}
	delete(m.sessions, pid)
	st := *stored.state
	st.Missed = nil
	rooms := make(map[string]struct{}, len(st.Rooms))
	for _, r := range st.Rooms {
		rooms[r] = struct{}{}
	}
	for _, bp := range m.packets[start:] {
		if ShouldInclude(rooms, &bp.opts) {
			st.Missed = append(st.Missed, bp.pkt)
		}
	}
	return &st, nil
}

// Void takes back the recording of pkt (returned by Record) after its
// strict broadcast failed.
func (m *Memory) Void(pkt *parser.Packet, opts *BroadcastOptions) {
	v, ok := m.opts.Store.(Voider)
	if !ok || m.opts.RecoveryWindow <= 0 {
		return
	}
	els, err := parser.SplitArray(pkt.Data)
	if err != nil || len(els) == 0 {
		return
	}
	var offset string
	if json.Unmarshal(els[len(els)-1], &offset) == nil && offset != "" {
		v.Void(m.nsp.Name(), opts, offset)
	}
}

// CatchUp lists the recorded packets after offset that rooms select.
func (m *Memory) CatchUp(rooms []string, offset string) []*parser.Packet {
	if m.opts.RecoveryWindow <= 0 {
		return nil
	}
	if m.opts.Store != nil {
		return m.opts.Store.CatchUp(m.nsp.Name(), rooms, offset)
	}
	pos, ok := ParsePosition(offset)
	if !ok || pos.Epoch != m.epoch {
		return nil
	}
	seq := pos.Seq
	set := make(map[string]struct{}, len(rooms))
	for _, r := range rooms {
		set[r] = struct{}{}
	}
	m.recMu.Lock()
	defer m.recMu.Unlock()
	var out []*parser.Packet
	for _, bp := range m.packets {
		if bp.seq > seq && ShouldInclude(set, &bp.opts) {
			out = append(out, bp.pkt)
		}
	}
	return out
}

// ShouldInclude reports whether a socket in rooms is selected by opts.
func ShouldInclude(rooms map[string]struct{}, opts *BroadcastOptions) bool {
	included := len(opts.Rooms) == 0
	for _, r := range opts.Rooms {
		if _, ok := rooms[r]; ok {
			included = true
			break
		}
	}
	if !included {
		return false
	}
	for _, r := range opts.Except {
		if _, ok := rooms[r]; ok {
			return false
		}
	}
	return true
}

var _ Adapter = (*Memory)(nil)

// newEpoch draws a random nonzero epoch: offsets of an earlier lifetime of
// the process never match this one's.
func newEpoch() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:])
		if e := binary.LittleEndian.Uint64(b[:]) >> 16; e != 0 { // 48 bits: at most 10 base-36 digits
			return e
		}
	}
}
