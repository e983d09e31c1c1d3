package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tradewire/tradewire/parser"
)

// recordingNS is a Namespace that records what the adapter asks of it. Its
// sockets act on the adapter the way the socket layer does.
type recordingNS struct {
	mu         sync.Mutex
	adapter    *Memory
	deliveries []delivery
	sockets    map[string]*recordingSocket
	sse        [][]any
}

type delivery struct {
	data  string
	flags Flags
	ids   []string
}

func (n *recordingNS) Name() string { return "/test" }

func (n *recordingNS) Deliver(pkt *parser.Packet, flags Flags, ids iter.Seq[string]) {
	got := slices.Collect(ids)
	sort.Strings(got)
	n.mu.Lock()
	n.deliveries = append(n.deliveries, delivery{data: string(pkt.Data), flags: flags, ids: got})
	n.mu.Unlock()
}

func (n *recordingNS) LocalSocket(id string) (Socket, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s, ok := n.sockets[id]
	if !ok {
		return nil, false
	}
	return s, true
}

func (n *recordingNS) HandleServerSideEmit(args []any, _ func(any)) {
	n.mu.Lock()
	n.sse = append(n.sse, args)
	n.mu.Unlock()
}

func (n *recordingNS) last(t *testing.T) delivery {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.deliveries) == 0 {
		t.Fatal("nothing delivered")
	}
	return n.deliveries[len(n.deliveries)-1]
}

type recordingSocket struct {
	id           string
	ns           *recordingNS
	disconnected []bool
	ackArgs      []any
	ackErr       error
	acked        []string
}

func (s *recordingSocket) ID() string           { return s.id }
func (s *recordingSocket) Join(rooms ...string) { s.ns.adapter.AddAll(s.id, rooms) }
func (s *recordingSocket) Leave(room string)    { s.ns.adapter.Del(s.id, room) }
func (s *recordingSocket) Disconnect(close bool) {
	s.disconnected = append(s.disconnected, close)
	s.ns.adapter.DelAll(s.id)
}
func (s *recordingSocket) Info() SocketInfo {
	return SocketInfo{ID: s.id, Rooms: s.ns.adapter.SocketRooms(s.id)}
}
func (s *recordingSocket) EmitWithAck(pkt *parser.Packet, timeout time.Duration, ack func([]any, error)) {
	s.acked = append(s.acked, string(pkt.Data)+"/"+timeout.String())
	ack(s.ackArgs, s.ackErr)
}

// newTestAdapter returns an adapter with sockets a, b, c, d in rooms:
//
//	a: r1          b: r1, r2          c: r2          d: (own room only)
func newTestAdapter(t *testing.T, opts Options) (*Memory, *recordingNS) {
	t.Helper()
	ns := &recordingNS{sockets: map[string]*recordingSocket{}}
	m := MemoryFactory(opts)(ns).(*Memory)
	ns.adapter = m
	if m.Namespace() != Namespace(ns) {
		t.Fatal("Namespace() does not return the namespace")
	}
	if err := m.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	for id, rooms := range map[string][]string{"a": {"r1"}, "b": {"r1", "r2"}, "c": {"r2"}, "d": nil} {
		ns.sockets[id] = &recordingSocket{id: id, ns: ns}
		m.AddAll(id, append([]string{id}, rooms...))
	}
	return m, ns
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

func collect(m *Memory, opts *BroadcastOptions) []string {
	return sorted(slices.Collect(m.LocalSockets(opts)))
}

func eq(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s = %q, want %q", what, got, want)
	}
}

func TestRooms(t *testing.T) {
	m, _ := newTestAdapter(t, Options{})
	eq(t, "rooms of b", sorted(m.SocketRooms("b")), []string{"b", "r1", "r2"})
	eq(t, "local rooms", sorted(m.LocalRooms()), []string{"a", "b", "c", "d", "r1", "r2"})
	if m.SocketRooms("nobody") != nil {
		t.Fatal("rooms of an unknown socket")
	}
	if !m.HasRoom("r1") || m.HasRoom("r9") {
		t.Fatal("HasRoom")
	}

	// Adding twice is idempotent.
	m.AddAll("a", []string{"r1", "r3"})
	eq(t, "rooms of a", sorted(m.SocketRooms("a")), []string{"a", "r1", "r3"})
	eq(t, "r3", collect(m, &BroadcastOptions{Rooms: []string{"r3"}}), []string{"a"})

	// Del removes one membership; an emptied room disappears.
	m.Del("a", "r3")
	if m.HasRoom("r3") {
		t.Fatal("empty room r3 kept")
	}
	m.Del("a", "r1")
	eq(t, "r1 after a left", collect(m, &BroadcastOptions{Rooms: []string{"r1"}}), []string{"b"})
	eq(t, "rooms of a", sorted(m.SocketRooms("a")), []string{"a"})
	// Deleting what is not there is harmless.
	m.Del("a", "nope")
	m.Del("ghost", "r1")
	eq(t, "r1", collect(m, &BroadcastOptions{Rooms: []string{"r1"}}), []string{"b"})

	// DelAll removes the socket everywhere, including its own room.
	m.DelAll("b")
	if m.SocketRooms("b") != nil || m.HasRoom("b") || m.HasRoom("r1") {
		t.Fatalf("DelAll left rooms: %q", m.LocalRooms())
	}
	eq(t, "r2", collect(m, &BroadcastOptions{Rooms: []string{"r2"}}), []string{"c"})
	m.DelAll("ghost")

	rooms, err := m.AllRooms(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "all rooms", sorted(rooms), []string{"a", "c", "d", "r2"})
}

// A socket's own room is implied, not stored, until another socket joins a
// room of that name; every view sees the same members either way.
func TestOwnRoomSharedWithAnotherSocket(t *testing.T) {
	m, _ := newTestAdapter(t, Options{})
	if m.idx.stored("a") {
		t.Fatal("a's own room is stored in the index")
	}
	eq(t, "a", collect(m, &BroadcastOptions{Rooms: []string{"a"}}), []string{"a"})
	eq(t, "all but a", collect(m, &BroadcastOptions{Except: []string{"a"}}), []string{"b", "c", "d"})

	m.AddAll("b", []string{"a"}) // b joins a room named like socket a
	eq(t, "room a", collect(m, &BroadcastOptions{Rooms: []string{"a"}}), []string{"a", "b"})
	eq(t, "rooms a+r2", collect(m, &BroadcastOptions{Rooms: []string{"a", "r2"}}), []string{"a", "b", "c"})
	eq(t, "except a", collect(m, &BroadcastOptions{Except: []string{"a"}}), []string{"c", "d"})

	m.Del("a", "a") // a leaves its own room: b stays
	eq(t, "room a after a left", collect(m, &BroadcastOptions{Rooms: []string{"a"}}), []string{"b"})
	eq(t, "rooms of a", sorted(m.SocketRooms("a")), []string{"r1"})
	m.Del("b", "a")
	if m.HasRoom("a") {
		t.Fatal("room a kept with no member")
	}
	eq(t, "local rooms", sorted(m.LocalRooms()), []string{"b", "c", "d", "r1", "r2"})

	m.AddAll("a", []string{"a"}) // and joins it again
	eq(t, "room a rejoined", collect(m, &BroadcastOptions{Rooms: []string{"a"}}), []string{"a"})
	m.AddAll("c", []string{"a"})
	m.DelAll("a")
	eq(t, "room a after a's end", collect(m, &BroadcastOptions{Rooms: []string{"a"}}), []string{"c"})
}

func TestLocalSocketsSelection(t *testing.T) {
	m, _ := newTestAdapter(t, Options{})
	tests := []struct {
		name         string
		rooms, excep []string
		want         []string
	}{
		{"everyone", nil, nil, []string{"a", "b", "c", "d"}},
		{"one room", []string{"r1"}, nil, []string{"a", "b"}},
		{"two rooms deduplicated", []string{"r1", "r2"}, nil, []string{"a", "b", "c"}},
		{"same room twice", []string{"r2", "r2"}, nil, []string{"b", "c"}},
		{"unknown room", []string{"nope"}, nil, nil},
		{"unknown and known", []string{"nope", "r2"}, nil, []string{"b", "c"}},
		{"everyone except a room", nil, []string{"r1"}, []string{"c", "d"}},
		{"everyone except a socket", nil, []string{"d"}, []string{"a", "b", "c"}},
		{"room except a socket", []string{"r1"}, []string{"a"}, []string{"b"}},
		{"rooms except a room", []string{"r1", "r2"}, []string{"r2"}, []string{"a"}},
		{"except unknown room", []string{"r2"}, []string{"nope"}, []string{"b", "c"}},
		{"socket room", []string{"c"}, nil, []string{"c"}},
	}
	for _, tt := range tests {
		got := collect(m, &BroadcastOptions{Rooms: tt.rooms, Except: tt.excep})
		eq(t, tt.name, got, tt.want)
	}
	ids, err := m.Sockets(context.Background(), []string{"r1", "r2"})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "Sockets", sorted(ids), []string{"a", "b", "c"})
}

// The sequence stops when the consumer stops, in each selection mode.
func TestLocalSocketsEarlyStop(t *testing.T) {
	m, _ := newTestAdapter(t, Options{})
	for _, opts := range []*BroadcastOptions{{}, {Rooms: []string{"r1"}}, {Rooms: []string{"r1", "r2"}}} {
		n := 0
		for range m.LocalSockets(opts) {
			n++
			break
		}
		if n != 1 {
			t.Fatalf("%+v: %d iterations", opts, n)
		}
	}
	// The room index is usable again after an early stop (the lock was released).
	m.AddAll("e", []string{"e"})
	if !m.HasRoom("e") {
		t.Fatal("AddAll after early stop")
	}
}

func TestBroadcastDelivers(t *testing.T) {
	m, ns := newTestAdapter(t, Options{})
	pkt := &parser.Packet{Type: parser.Event, Nsp: "/test", Data: json.RawMessage(`["ev",1]`)}
	if err := m.Broadcast(pkt, &BroadcastOptions{Rooms: []string{"r1", "r2"}, Except: []string{"b"}, Flags: Flags{Volatile: true}}); err != nil {
		t.Fatal(err)
	}
	d := ns.last(t)
	if d.data != `["ev",1]` || !d.flags.Volatile {
		t.Fatalf("delivery %+v", d)
	}
	eq(t, "recipients", d.ids, []string{"a", "c"})

	// Without recovery, packets get no offset.
	m.BroadcastLocal(pkt, &BroadcastOptions{Flags: Flags{Local: true}})
	d = ns.last(t)
	if d.data != `["ev",1]` || !d.flags.Local {
		t.Fatalf("local delivery %+v", d)
	}
	eq(t, "local recipients", d.ids, []string{"a", "b", "c", "d"})
}

func TestBroadcastWithAck(t *testing.T) {
	m, ns := newTestAdapter(t, Options{})
	ns.sockets["a"].ackArgs = []any{"from-a"}
	ns.sockets["b"].ackErr = errors.New("timeout")
	ns.sockets["c"].ackArgs = []any{"from-c"}
	// "ghost" is in a room but not a local socket of the namespace: skipped.
	m.AddAll("ghost", []string{"r1"})

	var counts []int
	var acks [][]any
	pkt := &parser.Packet{Type: parser.Event, Data: json.RawMessage(`["q"]`)}
	err := m.BroadcastWithAck(pkt, &BroadcastOptions{Rooms: []string{"r1", "r2"}, Flags: Flags{Timeout: 250}},
		func(n int) { counts = append(counts, n) },
		func(a []any) { acks = append(acks, a) })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(counts, []int{3}) {
		t.Fatalf("counts %v", counts)
	}
	if len(acks) != 2 {
		t.Fatalf("acks %v (an ack error must not be reported as an ack)", acks)
	}
	got := []string{acks[0][0].(string), acks[1][0].(string)}
	eq(t, "acks", sorted(got), []string{"from-a", "from-c"})
	if ns.sockets["a"].acked[0] != `["q"]/250ms` {
		t.Fatalf("EmitWithAck got %q", ns.sockets["a"].acked)
	}
	if len(ns.sockets["d"].acked) != 0 {
		t.Fatal("d was not selected")
	}

	// No recipient: one count of 0, no ack.
	counts, acks = nil, nil
	_ = m.BroadcastWithAck(pkt, &BroadcastOptions{Rooms: []string{"nope"}}, func(n int) { counts = append(counts, n) }, func(a []any) { acks = append(acks, a) })
	if !slices.Equal(counts, []int{0}) || len(acks) != 0 {
		t.Fatalf("empty selection: counts %v acks %v", counts, acks)
	}
}

func TestSocketOperations(t *testing.T) {
	m, ns := newTestAdapter(t, Options{})
	ctx := context.Background()

	infos, err := m.FetchSockets(ctx, &BroadcastOptions{Rooms: []string{"r2"}})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, in := range infos {
		ids = append(ids, in.ID)
		if !slices.Contains(in.Rooms, "r2") {
			t.Fatalf("info rooms %q", in.Rooms)
		}
	}
	eq(t, "fetched", sorted(ids), []string{"b", "c"})

	m.AddSockets(&BroadcastOptions{Rooms: []string{"r1"}}, []string{"x", "y"})
	eq(t, "x", collect(m, &BroadcastOptions{Rooms: []string{"x"}}), []string{"a", "b"})
	eq(t, "y", collect(m, &BroadcastOptions{Rooms: []string{"y"}}), []string{"a", "b"})

	m.DelSockets(&BroadcastOptions{Except: []string{"a"}}, []string{"x", "y"})
	eq(t, "x after leave", collect(m, &BroadcastOptions{Rooms: []string{"x"}}), []string{"a"})
	eq(t, "y after leave", collect(m, &BroadcastOptions{Rooms: []string{"y"}}), []string{"a"})

	// Disconnecting sockets changes membership from inside: no deadlock.
	done := make(chan struct{})
	go func() {
		m.DisconnectSockets(&BroadcastOptions{Rooms: []string{"r2"}}, true)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("DisconnectSockets deadlocked")
	}
	if !slices.Equal(ns.sockets["b"].disconnected, []bool{true}) || !slices.Equal(ns.sockets["c"].disconnected, []bool{true}) {
		t.Fatalf("disconnected b=%v c=%v", ns.sockets["b"].disconnected, ns.sockets["c"].disconnected)
	}
	if len(ns.sockets["a"].disconnected) != 0 {
		t.Fatal("a disconnected")
	}
	eq(t, "everyone left", collect(m, &BroadcastOptions{}), []string{"a", "d"})

	// Single node: nothing to reach, one server.
	if err := m.ServerSideEmit(ctx, []any{"x"}, func(any) { t.Error("reply from nowhere") }); err != nil {
		t.Fatal(err)
	}
	if n := m.ServerCount(ctx); n != 1 {
		t.Fatalf("ServerCount = %d", n)
	}
}

// ---- connection state recovery ----

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }
func event(data string) *parser.Packet {
	return &parser.Packet{Type: parser.Event, Nsp: "/test", Data: json.RawMessage(data)}
}
func offsetOf(t *testing.T, data string) string {
	t.Helper()
	els, err := parser.SplitArray(json.RawMessage(data))
	if err != nil || len(els) == 0 {
		t.Fatalf("no offset in %s", data)
	}
	var s string
	if err := json.Unmarshal(els[len(els)-1], &s); err != nil {
		t.Fatalf("last argument of %s is not a string", data)
	}
	return s
}

func TestRecoveryDisabled(t *testing.T) {
	m, ns := newTestAdapter(t, Options{})
	_ = m.Broadcast(event(`["x"]`), &BroadcastOptions{})
	if d := ns.last(t); d.data != `["x"]` {
		t.Fatalf("offset added without recovery: %s", d.data)
	}
	m.PersistSession(&SessionState{SID: "a", PID: "p"})
	if _, err := m.RestoreSession("p", "o"); !errors.Is(err, ErrRecoveryDisabled) {
		t.Fatalf("RestoreSession: %v", err)
	}
}

func TestRecoveryOffsets(t *testing.T) {
	m, ns := newTestAdapter(t, Options{RecoveryWindow: time.Minute})
	_ = m.Broadcast(event(`["a",1]`), &BroadcastOptions{})
	o1 := offsetOf(t, ns.last(t).data)
	_ = m.Broadcast(event(`[]`), &BroadcastOptions{Rooms: []string{"r1"}})
	o2 := offsetOf(t, ns.last(t).data)
	if o1 == o2 || o1 == "" {
		t.Fatalf("offsets %q %q", o1, o2)
	}
	if got := ns.last(t).data; got != `["`+o2+`"]` {
		t.Fatalf("offset appended to empty array: %s", got)
	}
	// Not recorded: acks, volatile packets, non-events.
	for _, c := range []struct {
		pkt  *parser.Packet
		opts *BroadcastOptions
	}{
		{&parser.Packet{Type: parser.Event, Data: json.RawMessage(`["a"]`), ID: 1, HasID: true}, &BroadcastOptions{}},
		{event(`["a"]`), &BroadcastOptions{Flags: Flags{Volatile: true}}},
		{&parser.Packet{Type: parser.Disconnect}, &BroadcastOptions{}},
	} {
		_ = m.Broadcast(c.pkt, c.opts)
		if d := ns.last(t); d.data != string(c.pkt.Data) {
			t.Fatalf("unrecordable packet got an offset: %s", d.data)
		}
	}
	// Binary events are recorded too, attachments kept.
	bin := &parser.Packet{Type: parser.BinaryEvent, Data: json.RawMessage(`["b",{"_placeholder":true,"num":0}]`), Attachments: [][]byte{{1}}}
	_ = m.Broadcast(bin, &BroadcastOptions{})
	if d := ns.last(t); !strings.HasPrefix(d.data, `["b",{"_placeholder":true,"num":0},"`) {
		t.Fatalf("binary event: %s", d.data)
	}
	if string(bin.Data) != `["b",{"_placeholder":true,"num":0}]` {
		t.Fatal("the caller's packet was modified")
	}
}

func TestRecoveryRestore(t *testing.T) {
	m, ns := newTestAdapter(t, Options{RecoveryWindow: time.Minute})
	clk := newClock()
	m.now = clk.now

	_ = m.Broadcast(event(`["tick",1]`), &BroadcastOptions{})
	offset := offsetOf(t, ns.last(t).data)

	// Socket a (rooms a, r1) disconnects.
	m.PersistSession(&SessionState{SID: "a", PID: "pid-a", Rooms: []string{"a", "r1"}, Data: json.RawMessage(`{"user":"u1"}`)})
	m.DelAll("a")

	// What happens while it is away: only the packets for its rooms are missed.
	broadcasts := []struct {
		data string
		opts BroadcastOptions
		miss bool
	}{
		{`["tick",2]`, BroadcastOptions{}, true},
		{`["r1",3]`, BroadcastOptions{Rooms: []string{"r1"}}, true},
		{`["r2",4]`, BroadcastOptions{Rooms: []string{"r2"}}, false},
		{`["not-r1",5]`, BroadcastOptions{Except: []string{"r1"}}, false},
		{`["own",6]`, BroadcastOptions{Rooms: []string{"a"}, Flags: Flags{Local: true}}, true},
		{`["vol",7]`, BroadcastOptions{Flags: Flags{Volatile: true}}, false},
		{`["both",8]`, BroadcastOptions{Rooms: []string{"r2", "r1"}, Except: []string{"c"}}, true},
	}
	var want []string
	for _, b := range broadcasts {
		clk.advance(10 * time.Millisecond)
		opts := b.opts
		_ = m.Broadcast(event(b.data), &opts)
		if b.miss {
			want = append(want, ns.last(t).data)
		}
	}

	st, err := m.RestoreSession("pid-a", offset)
	if err != nil {
		t.Fatalf("RestoreSession: %v", err)
	}
	if st.SID != "a" || st.PID != "pid-a" || string(st.Data) != `{"user":"u1"}` {
		t.Fatalf("state %+v", st)
	}
	eq(t, "rooms", sorted(st.Rooms), []string{"a", "r1"})
	var got []string
	for _, p := range st.Missed {
		got = append(got, string(p.Data))
	}
	eq(t, "missed", got, want)

	// A session restores once.
	if _, err := m.RestoreSession("pid-a", offset); !errors.Is(err, ErrNotRecoverable) {
		t.Fatalf("second restore: %v", err)
	}
}

func TestRecoveryRestoreAtLatestOffset(t *testing.T) {
	m, ns := newTestAdapter(t, Options{RecoveryWindow: time.Minute})
	_ = m.Broadcast(event(`["x"]`), &BroadcastOptions{})
	offset := offsetOf(t, ns.last(t).data)
	m.PersistSession(&SessionState{SID: "b", PID: "pid-b", Rooms: []string{"b"}})
	st, err := m.RestoreSession("pid-b", offset)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Missed) != 0 {
		t.Fatalf("missed %d packets", len(st.Missed))
	}
}

func TestRecoveryNotRecoverable(t *testing.T) {
	m, ns := newTestAdapter(t, Options{RecoveryWindow: time.Minute})
	clk := newClock()
	m.now = clk.now
	_ = m.Broadcast(event(`["x"]`), &BroadcastOptions{})
	offset := offsetOf(t, ns.last(t).data)
	persist := func(pid string) { m.PersistSession(&SessionState{SID: "s-" + pid, PID: pid, Rooms: []string{"r1"}}) }

	epoch, seq, _ := strings.Cut(offset, ".")
	for _, c := range []struct{ name, pid, offset string }{
		{"unknown pid", "nobody", offset},
		{"offset without dot", "p1", "abc"},
		{"offset from another server", "p2", "otherEpoch." + seq},
		{"offset seq not base36", "p3", epoch + ".!!"},
		{"offset from the future", "p4", epoch + ".zz"},
	} {
		if c.pid != "nobody" {
			persist(c.pid)
		}
		st, err := m.RestoreSession(c.pid, c.offset)
		if !errors.Is(err, ErrNotRecoverable) || st != nil {
			t.Errorf("%s: %+v, %v", c.name, st, err)
		}
	}

	// An expired session is refused even before GC drops it, and is dropped.
	persist("old")
	clk.advance(time.Minute + time.Millisecond)
	if _, err := m.RestoreSession("old", offset); !errors.Is(err, ErrNotRecoverable) {
		t.Fatalf("expired session: %v", err)
	}
}

func TestRecoveryGC(t *testing.T) {
	m, ns := newTestAdapter(t, Options{RecoveryWindow: time.Minute})
	clk := newClock()
	m.now = clk.now

	_ = m.Broadcast(event(`["old"]`), &BroadcastOptions{})
	oldOffset := offsetOf(t, ns.last(t).data)
	m.PersistSession(&SessionState{SID: "a", PID: "stale", Rooms: []string{"a"}})

	clk.advance(30 * time.Second)
	_ = m.Broadcast(event(`["mid"]`), &BroadcastOptions{})
	midOffset := offsetOf(t, ns.last(t).data)
	m.PersistSession(&SessionState{SID: "b", PID: "fresh", Rooms: []string{"b"}})

	// 61 s after the first packet: GC (run by the next record) drops the old
	// packet and the stale session, keeps the rest.
	clk.advance(31 * time.Second)
	_ = m.Broadcast(event(`["new"]`), &BroadcastOptions{})
	m.recMu.Lock()
	npk, nsess := len(m.packets), len(m.sessions)
	_, staleKept := m.sessions["stale"]
	m.recMu.Unlock()
	if npk != 2 || nsess != 1 || staleKept {
		t.Fatalf("after GC: %d packets, %d sessions (stale kept: %v)", npk, nsess, staleKept)
	}
	m.PersistSession(&SessionState{SID: "c", PID: "c-pid", Rooms: []string{"c"}})
	if _, err := m.RestoreSession("c-pid", oldOffset); !errors.Is(err, ErrNotRecoverable) {
		t.Fatalf("restore from a collected offset: %v", err)
	}
	st, err := m.RestoreSession("fresh", midOffset)
	if err != nil {
		t.Fatalf("restore from a kept offset: %v", err)
	}
	if len(st.Missed) != 1 || !strings.HasPrefix(string(st.Missed[0].Data), `["new",`) {
		t.Fatalf("missed %d", len(st.Missed))
	}

	// GC runs at most once a second.
	m.recMu.Lock()
	last := m.lastGC
	m.recMu.Unlock()
	clk.advance(500 * time.Millisecond)
	m.PersistSession(&SessionState{SID: "d", PID: "d-pid"})
	m.recMu.Lock()
	same := m.lastGC.Equal(last)
	m.recMu.Unlock()
	if !same {
		t.Fatal("GC ran twice within a second")
	}
}

func TestRecoveryOverflow(t *testing.T) {
	m, ns := newTestAdapter(t, Options{RecoveryWindow: time.Hour, RecoveryMaxPackets: 3})
	var offsets []string
	for i := 0; i < 5; i++ {
		_ = m.Broadcast(event(`["n"]`), &BroadcastOptions{})
		offsets = append(offsets, offsetOf(t, ns.last(t).data))
	}
	m.recMu.Lock()
	n := len(m.packets)
	m.recMu.Unlock()
	if n != 3 {
		t.Fatalf("buffer holds %d packets, want 3", n)
	}
	// offsets[0] and [1] were trimmed: a restore from there would have a gap.
	m.PersistSession(&SessionState{SID: "a", PID: "p", Rooms: []string{"a"}})
	if st, err := m.RestoreSession("p", offsets[1]); !errors.Is(err, ErrNotRecoverable) || st != nil {
		t.Fatalf("restore from a trimmed offset: %+v %v", st, err)
	}
	// The failed restore consumed nothing: a restore from a kept offset works.
	st, err := m.RestoreSession("p", offsets[2])
	if err != nil {
		t.Fatalf("restore from a kept offset: %v", err)
	}
	if len(st.Missed) != 2 {
		t.Fatalf("missed %d, want 2", len(st.Missed))
	}
	if offsetOf(t, string(st.Missed[1].Data)) != offsets[4] {
		t.Fatal("missed packets out of order")
	}
}

func TestShouldInclude(t *testing.T) {
	rooms := map[string]struct{}{"id": {}, "r1": {}, "r2": {}}
	tests := []struct {
		opts BroadcastOptions
		want bool
	}{
		{BroadcastOptions{}, true},
		{BroadcastOptions{Rooms: []string{"r1"}}, true},
		{BroadcastOptions{Rooms: []string{"x", "r2"}}, true},
		{BroadcastOptions{Rooms: []string{"x"}}, false},
		{BroadcastOptions{Except: []string{"r2"}}, false},
		{BroadcastOptions{Except: []string{"x"}}, true},
		{BroadcastOptions{Rooms: []string{"r1"}, Except: []string{"id"}}, false},
		{BroadcastOptions{Rooms: []string{"x"}, Except: []string{"y"}}, false},
	}
	for _, tt := range tests {
		if got := ShouldInclude(rooms, &tt.opts); got != tt.want {
			t.Errorf("ShouldInclude(%+v) = %v", tt.opts, got)
		}
	}
	if ShouldInclude(nil, &BroadcastOptions{Rooms: []string{"r"}}) || !ShouldInclude(nil, &BroadcastOptions{}) {
		t.Error("nil room set")
	}
}

// Concurrent membership changes, broadcasts and recovery bookkeeping are
// race-free (run with -race).
func TestConcurrentUse(t *testing.T) {
	m, _ := newTestAdapter(t, Options{RecoveryWindow: time.Minute, RecoveryMaxPackets: 50})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			id := string(rune('p' + g))
			for i := 0; i < 200; i++ {
				m.AddAll(id, []string{id, "room"})
				_ = m.Broadcast(event(`["e"]`), &BroadcastOptions{Rooms: []string{"room"}})
				_ = slices.Collect(m.LocalSockets(&BroadcastOptions{Rooms: []string{"room", "r1"}}))
				m.PersistSession(&SessionState{SID: id, PID: id})
				_, _ = m.RestoreSession(id, "x.1")
				m.Del(id, "room")
				m.DelAll(id)
			}
		}(g)
	}
	wg.Wait()
}

func BenchmarkLocalSocketsRoom(b *testing.B) {
	ns := &recordingNS{sockets: map[string]*recordingSocket{}}
	m := NewMemory(ns, Options{})
	for i := 0; i < 1000; i++ {
		id := "s" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + time.Duration(i).String()
		m.AddAll(id, []string{id, "room"})
	}
	opts := &BroadcastOptions{Rooms: []string{"room"}}
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for range m.LocalSockets(opts) {
			n++
		}
		if n != 1000 {
			b.Fatal(n)
		}
	}
}

// storeRecorder is a RecoveryStore that keeps what it is given.
type storeRecorder struct {
	mu       sync.Mutex
	records  []string
	sessions map[string]*SessionState
	offset   string
	err      error
	restored []string
	caughtUp []string
}

func (s *storeRecorder) Record(nsp string, pkt *parser.Packet, opts *BroadcastOptions) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = append(s.records, nsp+" "+string(pkt.Data)+" "+strings.Join(opts.Rooms, ","))
	return s.offset, s.err
}

func (s *storeRecorder) PersistSession(nsp string, st *SessionState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions == nil {
		s.sessions = map[string]*SessionState{}
	}
	s.sessions[nsp+" "+st.PID] = st
}

func (s *storeRecorder) CatchUp(nsp string, rooms []string, offset string) []*parser.Packet {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.caughtUp = append(s.caughtUp, nsp+" "+strings.Join(rooms, ",")+" "+offset)
	return []*parser.Packet{event(`["from-store"]`)}
}

func (s *storeRecorder) RestoreSession(nsp, pid, offset string) (*SessionState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.restored = append(s.restored, nsp+" "+pid+" "+offset)
	st, ok := s.sessions[nsp+" "+pid]
	if !ok {
		return nil, ErrNotRecoverable
	}
	return st, nil
}

// With a shared Store, offsets come from the store and sessions live there;
// the in-process buffer stays empty.
func TestRecoveryWithStore(t *testing.T) {
	store := &storeRecorder{offset: "1700000000000-0"}
	m, ns := newTestAdapter(t, Options{RecoveryWindow: time.Minute, Store: store})
	if !m.SharedRecovery() {
		t.Fatal("SharedRecovery false with a Store")
	}
	if err := m.Broadcast(event(`["trade",1]`), &BroadcastOptions{Rooms: []string{"r1"}}); err != nil {
		t.Fatal(err)
	}
	if d := ns.last(t); d.data != `["trade",1,"1700000000000-0"]` {
		t.Fatalf("delivered %s", d.data)
	}
	if len(store.records) != 1 || store.records[0] != `/test ["trade",1] r1` {
		t.Fatalf("store records %q", store.records)
	}
	m.recMu.Lock()
	buffered := len(m.packets)
	m.recMu.Unlock()
	if buffered != 0 {
		t.Fatal("packet buffered in process as well")
	}
	// Record gives the same treatment without delivering.
	if p := m.Record(event(`["x"]`), &BroadcastOptions{}); string(p.Data) != `["x","1700000000000-0"]` {
		t.Fatalf("Record = %s", p.Data)
	}
	// A store failure or an empty offset leaves the packet as it was: delivered live, not recoverable.
	store.err = errors.New("redis down")
	if p := m.Record(event(`["y"]`), &BroadcastOptions{}); string(p.Data) != `["y"]` {
		t.Fatalf("after a store error: %s", p.Data)
	}
	store.err, store.offset = nil, ""
	if p := m.Record(event(`["z"]`), &BroadcastOptions{}); string(p.Data) != `["z"]` {
		t.Fatalf("with an empty offset: %s", p.Data)
	}
	// Non-recoverable packets never reach the store.
	n := len(store.records)
	_ = m.Record(event(`["v"]`), &BroadcastOptions{Flags: Flags{Volatile: true}})
	_ = m.Record(&parser.Packet{Type: parser.Event, Data: json.RawMessage(`["a"]`), ID: 1, HasID: true}, &BroadcastOptions{})
	if len(store.records) != n {
		t.Fatal("unrecoverable packet sent to the store")
	}

	// Sessions go to the store, restores come from it.
	m.PersistSession(&SessionState{SID: "a", PID: "pid-a", Rooms: []string{"a", "r1"}})
	st, err := m.RestoreSession("pid-a", "1700000000000-0")
	if err != nil || st.SID != "a" {
		t.Fatalf("restore: %+v %v", st, err)
	}
	if _, err := m.RestoreSession("unknown", "o"); !errors.Is(err, ErrNotRecoverable) {
		t.Fatalf("unknown pid: %v", err)
	}
	if len(store.restored) != 2 || store.restored[0] != "/test pid-a 1700000000000-0" {
		t.Fatalf("restores %q", store.restored)
	}
	m.recMu.Lock()
	local := len(m.sessions)
	m.recMu.Unlock()
	if local != 0 {
		t.Fatal("session kept in process as well")
	}

	// Without recovery the store is not used.
	off, _ := newTestAdapter(t, Options{Store: store})
	if off.SharedRecovery() {
		t.Fatal("SharedRecovery with recovery off")
	}
	if mem, _ := newTestAdapter(t, Options{RecoveryWindow: time.Minute}); mem.SharedRecovery() {
		t.Fatal("SharedRecovery without a Store")
	}
}

// Recoverable filters which broadcasts are recorded.
func TestRecoverableFilter(t *testing.T) {
	m, ns := newTestAdapter(t, Options{RecoveryWindow: time.Minute, Recoverable: func(o *BroadcastOptions) bool {
		return len(o.Rooms) == 0 || !strings.HasPrefix(o.Rooms[0], "quotes:")
	}})
	_ = m.Broadcast(event(`["quote"]`), &BroadcastOptions{Rooms: []string{"quotes:AAPL"}})
	if d := ns.last(t); d.data != `["quote"]` {
		t.Fatalf("filtered broadcast got an offset: %s", d.data)
	}
	_ = m.Broadcast(event(`["trade"]`), &BroadcastOptions{Rooms: []string{"user:1"}})
	if d := ns.last(t); !strings.HasPrefix(d.data, `["trade","`) {
		t.Fatalf("recoverable broadcast without offset: %s", d.data)
	}
	m.recMu.Lock()
	n := len(m.packets)
	m.recMu.Unlock()
	if n != 1 {
		t.Fatalf("%d packets buffered, want 1", n)
	}
}

// Options.Conflate names the conflation key of a broadcast; an explicit
// Flags.Conflate wins; the caller's options are not modified.
func TestConflateOption(t *testing.T) {
	m, ns := newTestAdapter(t, Options{Conflate: func(o *BroadcastOptions) string {
		if len(o.Rooms) == 1 && strings.HasPrefix(o.Rooms[0], "quotes:") {
			return strings.TrimPrefix(o.Rooms[0], "quotes:")
		}
		return ""
	}})
	m.AddAll("a", []string{"quotes:AAPL"})
	opts := &BroadcastOptions{Rooms: []string{"quotes:AAPL"}}
	_ = m.Broadcast(event(`["quote"]`), opts)
	if d := ns.last(t); d.flags.Conflate != "AAPL" || !slices.Equal(d.ids, []string{"a"}) {
		t.Fatalf("delivery %+v", d)
	}
	if opts.Flags.Conflate != "" {
		t.Fatal("caller's options modified")
	}
	m.BroadcastLocal(event(`["quote"]`), &BroadcastOptions{Rooms: []string{"quotes:AAPL"}, Flags: Flags{Conflate: "explicit"}})
	if d := ns.last(t); d.flags.Conflate != "explicit" {
		t.Fatalf("explicit key replaced: %q", d.flags.Conflate)
	}
	_ = m.Broadcast(event(`["trade"]`), &BroadcastOptions{Rooms: []string{"r1"}})
	if d := ns.last(t); d.flags.Conflate != "" {
		t.Fatalf("unkeyed broadcast got key %q", d.flags.Conflate)
	}
	// Without the option, no key.
	plain, pns := newTestAdapter(t, Options{})
	_ = plain.Broadcast(event(`["quote"]`), &BroadcastOptions{Rooms: []string{"quotes:AAPL"}})
	if d := pns.last(t); d.flags.Conflate != "" {
		t.Fatal("key without the option")
	}
}

// CatchUp lists the recorded packets after an offset that a set of rooms
// selects (the window between a restore and the join).
func TestCatchUp(t *testing.T) {
	m, ns := newTestAdapter(t, Options{RecoveryWindow: time.Minute})
	_ = m.Broadcast(event(`["one"]`), &BroadcastOptions{})
	start := offsetOf(t, ns.last(t).data)
	_ = m.Broadcast(event(`["r1"]`), &BroadcastOptions{Rooms: []string{"r1"}})
	_ = m.Broadcast(event(`["r2"]`), &BroadcastOptions{Rooms: []string{"r2"}})
	_ = m.Broadcast(event(`["all-but-r1"]`), &BroadcastOptions{Except: []string{"r1"}})
	_ = m.Broadcast(event(`["vol"]`), &BroadcastOptions{Flags: Flags{Volatile: true}})
	var names []string
	for _, p := range m.CatchUp([]string{"a", "r1"}, start) {
		names = append(names, parser.EventName(p.Data))
	}
	if !slices.Equal(names, []string{"r1"}) {
		t.Fatalf("catch-up for {a,r1}: %v", names)
	}
	names = nil
	for _, p := range m.CatchUp([]string{"c", "r2"}, start) {
		names = append(names, parser.EventName(p.Data))
	}
	if !slices.Equal(names, []string{"r2", "all-but-r1"}) {
		t.Fatalf("catch-up for {c,r2}: %v", names)
	}
	epoch, _, _ := strings.Cut(start, ".")
	for _, bad := range []string{"", "nodot", "other." + "1", epoch + ".!"} {
		if got := m.CatchUp([]string{"r1"}, bad); got != nil {
			t.Fatalf("CatchUp(%q) = %d packets", bad, len(got))
		}
	}
	// Recovery off: nothing.
	off, _ := newTestAdapter(t, Options{})
	if off.CatchUp([]string{"r1"}, start) != nil {
		t.Fatal("CatchUp with recovery off")
	}
	// With a Store, the store answers.
	store := &storeRecorder{offset: "o"}
	withStore, _ := newTestAdapter(t, Options{RecoveryWindow: time.Minute, Store: store})
	got := withStore.CatchUp([]string{"a", "r1"}, "o")
	if len(got) != 1 || string(got[0].Data) != `["from-store"]` || !slices.Equal(store.caughtUp, []string{"/test a,r1 o"}) {
		t.Fatalf("store catch-up %v, calls %q", got, store.caughtUp)
	}
	var _ CatchUpper = m
}
