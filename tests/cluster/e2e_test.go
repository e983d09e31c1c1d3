package cluster

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tradewire/tradewire/internal/testutil/poll"
	"github.com/tradewire/tradewire/internal/testutil/redistest"
)

// clientSpec is one socket.io-client of the pool.
type clientSpec struct {
	name       string
	server     string   // "node", "go1" or "go2"
	nsp        string   // "/" when empty
	transports []string // nil: polling then upgrade (the client default)
	member     bool     // joins room1 (of its namespace)
}

func (c clientSpec) namespace() string {
	if c.nsp == "" {
		return "/"
	}
	return c.nsp
}

// client is a connected clientSpec.
type client struct {
	clientSpec
	id string
}

// mixed is a running mixed cluster: the Node processes (np: the clients; ns:
// the Node server and the emitter) and the URLs of every node.
type mixed struct {
	np      *nodeProc
	ns      *nodeProc
	urls    map[string]string
	clients []*client
	trigger map[string]string // server -> the "/" client that asks it to act
	nsps    []string          // namespaces with clients
	settle  time.Duration     // extra wait after a barrier before counting
	tags    atomic.Int64
}

var (
	websocketOnly = []string{"websocket"}
	pollingOnly   = []string{"polling"}
)

func newMixed(t *testing.T, np, ns *nodeProc, urls map[string]string, settle time.Duration, specs []clientSpec) *mixed {
	t.Helper()
	m := &mixed{np: np, ns: ns, urls: urls, trigger: map[string]string{}, settle: settle}
	for _, sp := range specs {
		cmd := map[string]any{"cmd": "connect", "name": sp.name, "url": urls[sp.server], "nsp": sp.namespace()}
		if sp.transports != nil {
			cmd["transports"] = sp.transports
		}
		res, ok := np.call(t, cmd).(map[string]any)
		if !ok {
			t.Fatalf("connect %s: no result", sp.name)
		}
		c := &client{clientSpec: sp, id: res["id"].(string)}
		m.clients = append(m.clients, c)
		if _, ok := m.trigger[sp.server]; !ok && sp.namespace() == "/" {
			m.trigger[sp.server] = sp.name
		}
		if !slices.Contains(m.nsps, sp.namespace()) {
			m.nsps = append(m.nsps, sp.namespace())
		}
	}
	for _, c := range m.clients {
		if c.member {
			m.join(t, c, "room1")
		}
	}
	return m
}

// join makes c join room through its server and checks the ack.
func (m *mixed) join(t *testing.T, c *client, room string) {
	t.Helper()
	rooms := m.np.emit(t, c.name, "join", room)
	if want := sorted(c.id, room); !isSuperset(rooms, want) {
		t.Fatalf("%s (%s) join %s: ack %v, want it to hold %v", c.name, c.server, room, rooms, want)
	}
}

func isSuperset(got any, want []any) bool {
	list, _ := got.([]any)
	for _, w := range want {
		if !slices.Contains(list, w) {
			return false
		}
	}
	return true
}

// names returns the names of the clients for which f is true.
func (m *mixed) names(f func(*client) bool) []string {
	var out []string
	for _, c := range m.clients {
		if f(c) {
			out = append(out, c.name)
		}
	}
	return out
}

func (m *mixed) client(t *testing.T, name string) *client {
	t.Helper()
	for _, c := range m.clients {
		if c.name == name {
			return c
		}
	}
	t.Fatalf("no client %s", name)
	return nil
}

// members returns the members of room1 in namespace nsp.
func (m *mixed) members(nsp string) []string {
	return m.names(func(c *client) bool { return c.member && c.namespace() == nsp })
}

// broadcast asks origin ("node", "go1", "go2" or "emitter") to broadcast
// specs, in order.
func (m *mixed) broadcast(t *testing.T, origin string, specs ...map[string]any) {
	t.Helper()
	if origin == "emitter" {
		m.ns.call(t, map[string]any{"cmd": "emitterBroadcast", "specs": specs})
		return
	}
	args := make([]any, len(specs))
	for i, s := range specs {
		args[i] = s
	}
	if ack := m.np.emit(t, m.trigger[origin], "broadcast", args...); ack != true {
		t.Fatalf("%s: broadcast ack %v", origin, ack)
	}
}

// target selects the sockets of a broadcast.
type target struct {
	nsp           string // "/" when empty
	rooms, except []string
}

// checkBroadcast has origin emit ev({tag}, extra...) to a target, then a
// "barrier" event to every socket of every namespace, and checks once every
// client got its barrier (and settle has passed) that each client in want
// received the event exactly once, with the arguments unchanged, every other
// client never, and every client the barrier exactly once.
func (m *mixed) checkBroadcast(t *testing.T, origin string, to target, ev string, extra []any, want []string) {
	t.Helper()
	tag := fmt.Sprintf("%s-%s-%d", origin, ev, m.tags.Add(1))
	args := append([]any{map[string]any{"tag": tag}}, extra...)
	nsp := to.nsp
	if nsp == "" {
		nsp = "/"
	}
	specs := []map[string]any{{"nsp": nsp, "rooms": to.rooms, "except": to.except, "event": ev, "args": args}}
	for _, n := range m.nsps {
		specs = append(specs, map[string]any{"nsp": n, "rooms": []string{}, "event": "barrier", "args": []any{tag}})
	}
	m.broadcast(t, origin, specs...)
	all := m.names(func(*client) bool { return true })
	if missing := m.np.waitEvents(10*time.Second, all, func(e event) bool {
		return e.Event == "barrier" && len(e.Args) == 1 && e.Args[0] == tag
	}); len(missing) > 0 {
		t.Fatalf("%s: barrier %s never reached %v", origin, tag, missing)
	}
	time.Sleep(m.settle)
	wantArgs := jsonRoundTrip(args)
	var problems []string
	for _, c := range m.clients {
		n, barriers := 0, 0
		for _, e := range m.np.eventsOf(c.name) {
			if e.Event == "barrier" && len(e.Args) == 1 && e.Args[0] == tag {
				barriers++
			}
			if e.Event != ev || len(e.Args) == 0 {
				continue
			}
			if first, _ := e.Args[0].(map[string]any); first["tag"] != tag {
				continue
			}
			n++
			if !reflect.DeepEqual(e.Args, wantArgs) {
				problems = append(problems, fmt.Sprintf("%s (%s) got %s%s, want %s", c.name, c.server, ev, abbrev(e.Args), abbrev(wantArgs)))
			}
		}
		expect := 0
		if slices.Contains(want, c.name) {
			expect = 1
		}
		if n != expect {
			problems = append(problems, fmt.Sprintf("%s (%s%s, %s) received %q %d times, want %d", c.name, c.server, c.namespace(), m.transportOf(c), ev, n, expect))
		}
		if barriers != 1 {
			problems = append(problems, fmt.Sprintf("%s (%s%s, %s) received the barrier (to every socket) %d times, want 1", c.name, c.server, c.namespace(), m.transportOf(c), barriers))
		}
	}
	if len(problems) == 0 {
		t.Logf("%s -> %s %v except %v: %q once at %v, never at the %d others; barrier once everywhere", origin, nsp, to.rooms, to.except, ev, want, len(m.clients)-len(want))
	} else {
		t.Errorf("broadcast from %s to %s %v except %v (%s):\n  %s", origin, nsp, to.rooms, to.except, tag, strings.Join(problems, "\n  "))
	}
}

// checkBurst has origin emit n events "seq" {tag, seq: 0..n-1} back to
// back to a target, then the barriers, and checks that each client in want
// received every one exactly once and in order, and every other client none.
func (m *mixed) checkBurst(t *testing.T, origin string, to target, n int, want []string) {
	t.Helper()
	tag := fmt.Sprintf("%s-burst-%d", origin, m.tags.Add(1))
	specs := make([]map[string]any, 0, n+len(m.nsps))
	for i := range n {
		specs = append(specs, map[string]any{"rooms": to.rooms, "except": to.except, "event": "seq", "args": []any{map[string]any{"tag": tag, "seq": i}}})
	}
	for _, nsp := range m.nsps {
		specs = append(specs, map[string]any{"nsp": nsp, "rooms": []string{}, "event": "barrier", "args": []any{tag}})
	}
	m.broadcast(t, origin, specs...)
	all := m.names(func(*client) bool { return true })
	if missing := m.np.waitEvents(15*time.Second, all, func(e event) bool {
		return e.Event == "barrier" && len(e.Args) == 1 && e.Args[0] == tag
	}); len(missing) > 0 {
		t.Fatalf("%s: barrier %s never reached %v", origin, tag, missing)
	}
	time.Sleep(m.settle)
	inOrder := make([]float64, n)
	for i := range inOrder {
		inOrder[i] = float64(i)
	}
	var problems []string
	for _, c := range m.clients {
		var seqs []float64
		for _, e := range m.np.eventsOf(c.name) {
			if e.Event != "seq" || len(e.Args) != 1 {
				continue
			}
			if a, _ := e.Args[0].(map[string]any); a["tag"] == tag {
				seq, _ := a["seq"].(float64)
				seqs = append(seqs, seq)
			}
		}
		switch {
		case slices.Contains(want, c.name) && !slices.Equal(seqs, inOrder):
			problems = append(problems, fmt.Sprintf("%s (%s, %s) got %d events, not 0..%d once each in order: %s", c.name, c.server, m.transportOf(c), len(seqs), n-1, describeSeqs(seqs, n)))
		case !slices.Contains(want, c.name) && len(seqs) > 0:
			problems = append(problems, fmt.Sprintf("%s (%s) got %d events, want none", c.name, c.server, len(seqs)))
		}
	}
	if len(problems) == 0 {
		t.Logf("%s -> %v: %d events once each and in order at %v, none elsewhere", origin, to.rooms, n, want)
	} else {
		t.Errorf("burst from %s to %v (%s):\n  %s", origin, to.rooms, tag, strings.Join(problems, "\n  "))
	}
}

// describeSeqs summarises what is wrong with a received sequence.
func describeSeqs(seqs []float64, n int) string {
	count := map[float64]int{}
	var dup, missing []float64
	reordered := 0
	for i, s := range seqs {
		count[s]++
		if count[s] == 2 {
			dup = append(dup, s)
		}
		if i > 0 && s < seqs[i-1] {
			reordered++
		}
	}
	for i := range n {
		if count[float64(i)] == 0 {
			missing = append(missing, float64(i))
		}
	}
	return fmt.Sprintf("missing %v, duplicated %v, %d out of order", abbrev(missing), abbrev(dup), reordered)
}

// abbrev prints v, shortened when long.
func abbrev(v any) string {
	s := fmt.Sprint(v)
	if len(s) > 300 {
		return s[:150] + fmt.Sprintf("...(%d bytes)...", len(s)) + s[len(s)-100:]
	}
	return s
}

func (m *mixed) transportOf(c *client) string {
	res, err := m.np.try(map[string]any{"cmd": "transport", "client": c.name})
	if err != nil {
		return "transport unknown: " + err.Error()
	}
	return fmt.Sprint(res)
}

func (m *mixed) waitServerCount(t *testing.T, n float64) {
	t.Helper()
	var last any
	poll.For(t, 15*time.Second, fmt.Sprintf("Node serverCount %v", n), func() bool {
		last = m.ns.call(t, map[string]any{"cmd": "serverCount"})
		return last == n
	})
}

// checkFetch checks a fetchSockets result of nsp against the pool: every
// client of nsp once, with its rooms and data, and nobody else.
func (m *mixed) checkFetch(t *testing.T, who, nsp string, res any, extraRooms map[string][]string) {
	t.Helper()
	list, ok := res.([]any)
	if !ok {
		t.Fatalf("%s fetchSockets: %v", who, res)
	}
	got := map[string]map[string]any{}
	for _, s := range list {
		sm := s.(map[string]any)
		got[sm["id"].(string)] = sm
	}
	want := 0
	for _, c := range m.clients {
		if c.namespace() != nsp {
			if _, ok := got[c.id]; ok {
				t.Errorf("%s fetchSockets of %s: %s (%s) is a socket of %s", who, nsp, c.name, c.server, c.namespace())
			}
			continue
		}
		want++
		s, ok := got[c.id]
		if !ok {
			t.Errorf("%s fetchSockets of %s: %s (%s, id %s) missing", who, nsp, c.name, c.server, c.id)
			continue
		}
		rooms := append([]string{c.id}, extraRooms[c.name]...)
		if c.member {
			rooms = append(rooms, "room1")
		}
		if w := sorted(rooms...); !reflect.DeepEqual(s["rooms"], w) {
			t.Errorf("%s fetchSockets of %s: %s (%s) rooms %v, want %v", who, nsp, c.name, c.server, s["rooms"], w)
		}
		if data := map[string]any{"server": c.server, "name": c.name}; !reflect.DeepEqual(s["data"], data) {
			t.Errorf("%s fetchSockets of %s: %s (%s) data %v, want %v", who, nsp, c.name, c.server, s["data"], data)
		}
	}
	if len(list) != want || len(got) != want {
		t.Errorf("%s fetchSockets of %s: %d sockets (%d distinct), want %d: %v", who, nsp, len(list), len(got), want, list)
	}
}

// checkAsk has origin broadcast "question" with acks to room1 of "/" and
// checks that every member answered once (their answers come back through
// the other nodes) and no one else.
func (m *mixed) checkAsk(t *testing.T, origin string, rooms []string, want []string) {
	t.Helper()
	q := fmt.Sprintf("question-%d", m.tags.Add(1))
	res, ok := m.np.emit(t, m.trigger[origin], "ask", map[string]any{"rooms": rooms, "timeoutMs": 5000, "question": q}).(map[string]any)
	if !ok {
		t.Fatalf("%s ask: %v", origin, res)
	}
	if res["error"] != nil {
		t.Errorf("%s ask %v: error %v (answers %v)", origin, rooms, res["error"], res["answers"])
	}
	var got []string
	answers, _ := res["answers"].([]any)
	for _, a := range answers {
		am, _ := a.(map[string]any)
		name, _ := am["client"].(string)
		if !reflect.DeepEqual(am["args"], []any{q}) {
			t.Errorf("%s ask: answer %v, want args [%s]", origin, a, q)
		}
		got = append(got, name)
	}
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Errorf("%s ask %v: answers from %v, want exactly %v (returned error: %v)", origin, rooms, got, want, res["error"])
	} else {
		t.Logf("%s ask %v: one answer from each of %v", origin, rooms, want)
	}
}

// checkAskWhilePaused has origin broadcast with acks to rooms while the
// paused node stays stopped for a moment (well within the 5s ack timeout),
// and checks that the answers of the paused node's members are still
// collected: a broadcast with acks is complete only once every node has
// reported its client count, which the paused node can only do once resumed.
func (m *mixed) checkAskWhilePaused(t *testing.T, origin string, paused interface {
	Pause()
	Resume()
}, pausedName string, rooms, want []string) {
	t.Helper()
	paused.Pause()
	resumed := make(chan struct{})
	go func() {
		defer close(resumed)
		time.Sleep(700 * time.Millisecond)
		paused.Resume()
	}()
	t.Logf("%s paused for 700ms while %s asks %v", pausedName, origin, rooms)
	m.checkAsk(t, origin, rooms, want)
	<-resumed
}

// checkServerSideEmit has asker ("node" or a Go node) emit ["who", args...]
// to the other nodes and checks that exactly the nodes in want replied.
func (m *mixed) checkServerSideEmit(t *testing.T, asker string, want []string, args ...any) {
	t.Helper()
	var replies []any
	if asker == "node" {
		res, ok := m.ns.call(t, map[string]any{"cmd": "serverSideEmitWithAck", "args": append([]any{"who"}, args...)}).([]any)
		if !ok {
			t.Fatalf("Node serverSideEmitWithAck: no replies")
		}
		replies = res
	} else {
		ack, ok := m.np.emit(t, m.trigger[asker], "serverSideEmit", append([]any{"who"}, args...)...).(map[string]any)
		if !ok || ack["error"] != nil {
			t.Fatalf("%s serverSideEmit: %v", asker, ack)
		}
		replies, _ = ack["replies"].([]any)
	}
	slices.SortFunc(replies, func(a, b any) int {
		return strings.Compare(fmt.Sprint(a.(map[string]any)["server"]), fmt.Sprint(b.(map[string]any)["server"]))
	})
	var wantReplies []any
	for _, w := range want {
		wantReplies = append(wantReplies, map[string]any{"server": w, "args": jsonRoundTrip(args)})
	}
	if !reflect.DeepEqual(replies, wantReplies) {
		t.Errorf("%s serverSideEmit with ack: replies %v, want %v", asker, replies, wantReplies)
	} else {
		t.Logf("%s serverSideEmit with ack: replies from %v", asker, want)
	}
}

func sorted(s ...string) []any {
	s = slices.Clone(s)
	slices.Sort(s)
	s = slices.Compact(s)
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// jsonRoundTrip returns v as it comes back from e2e.js (numbers as float64,
// []string as []any).
func jsonRoundTrip(v []any) []any {
	var conv func(any) any
	conv = func(x any) any {
		switch x := x.(type) {
		case []any:
			out := make([]any, len(x))
			for i, e := range x {
				out[i] = conv(e)
			}
			return out
		case map[string]any:
			out := make(map[string]any, len(x))
			for k, e := range x {
				out[k] = conv(e)
			}
			return out
		case int:
			return float64(x)
		default:
			return x
		}
	}
	return conv(v).([]any)
}

func bin(b []byte) map[string]any { return map[string]any{"$bin": hex.EncodeToString(b)} }

var (
	// binaryArgs are the extra arguments of the binary broadcasts: top-level,
	// nested and empty binary next to JSON values.
	binaryArgs = []any{bin([]byte{1, 2, 3}), map[string]any{"nested": bin([]byte("hi")), "n": 7}, bin([]byte{})}
	// jsonArgs have every JSON type and non-ASCII text.
	jsonArgs = []any{"text", 1.5, -3, nil, true, map[string]any{"k": []any{true, "x"}, "empty": map[string]any{}}, []any{}, "héllo wörld 🚀 日本語 \u2028"}
	// largeArgs need the 32-bit msgpack lengths (bin 32, str 32, array 32 is
	// not needed) and many polling/websocket frames.
	largeArgs = []any{bin(bytes.Repeat([]byte{0xa5, 0x00, 0xff}, 40_000)), strings.Repeat("é", 40_000)}
)

func TestMixedClusterClassic(t *testing.T) {
	setup(t)
	rs := redistest.Start(t)
	go1, go2 := startGoNode(t, "go1", "-redis", rs.URL()), startGoNode(t, "go2", "-redis", rs.URL())
	urls := map[string]string{"go1": go1.URL, "go2": go2.URL}
	ns := startNodeProc(t, "ROLE=server", "REDIS_URL="+rs.URL(), "MODE=classic")
	np := startNodeProc(t, "ROLE=clients")
	urls["node"] = ns.URL
	(&mixed{ns: ns}).waitServerCount(t, 3)
	m := newMixed(t, np, ns, urls, 150*time.Millisecond, []clientSpec{
		{name: "n1", server: "node", transports: websocketOnly, member: true},
		{name: "n2", server: "node", member: true},
		{name: "n3", server: "node", transports: pollingOnly},
		{name: "a1", server: "go1", transports: websocketOnly, member: true},
		{name: "a2", server: "go1", member: true},
		{name: "a3", server: "go1", transports: pollingOnly},
		{name: "b1", server: "go2", member: true},
		{name: "b2", server: "go2", transports: websocketOnly},
		{name: "b3", server: "go2", transports: pollingOnly, member: true},
		// the same room name in another namespace
		{name: "c1", server: "node", nsp: "/chat", member: true},
		{name: "c2", server: "go1", nsp: "/chat", transports: pollingOnly, member: true},
		{name: "c3", server: "go2", nsp: "/chat", transports: websocketOnly},
	})
	origins := []string{"node", "go1", "go2", "emitter"}
	root := m.members("/")

	t.Run("room broadcast from every node reaches each member once", func(t *testing.T) {
		for _, o := range origins {
			m.checkBroadcast(t, o, target{rooms: []string{"room1"}}, "msg", jsonArgs, root)
		}
		// two rooms: the main channel instead of a room channel
		for _, o := range origins {
			m.checkBroadcast(t, o, target{rooms: []string{"room1", "nosuchroom"}}, "multi", nil, root)
		}
		// except sockets of every node, through their id rooms
		except := []string{m.client(t, "n2").id, m.client(t, "a1").id, m.client(t, "b3").id}
		want := m.names(func(c *client) bool { return c.member && c.namespace() == "/" && !slices.Contains(except, c.id) })
		for _, o := range origins {
			m.checkBroadcast(t, o, target{rooms: []string{"room1"}, except: except}, "except", nil, want)
		}
		// to everybody
		all := m.names(func(c *client) bool { return c.namespace() == "/" })
		for _, o := range origins {
			m.checkBroadcast(t, o, target{}, "everyone", nil, all)
		}
	})

	t.Run("bursts arrive once each and in order", func(t *testing.T) {
		for _, o := range origins {
			m.checkBurst(t, o, target{rooms: []string{"room1"}}, 200, root)
		}
	})

	t.Run("broadcast to one socket id on another node", func(t *testing.T) {
		for o, targets := range map[string][]string{
			"node": {"a1", "b3"}, "go1": {"n2", "b3"}, "go2": {"n3", "a1"}, "emitter": {"n1", "a2", "b2"},
		} {
			for _, name := range targets {
				m.checkBroadcast(t, o, target{rooms: []string{m.client(t, name).id}}, "direct", nil, []string{name})
			}
		}
	})

	t.Run("namespaces stay apart", func(t *testing.T) {
		chat := m.members("/chat")
		for _, o := range origins {
			m.checkBroadcast(t, o, target{nsp: "/chat", rooms: []string{"room1"}}, "chat", []any{"in /chat"}, chat)
		}
		m.checkFetch(t, "Node", "/chat", ns.call(t, map[string]any{"cmd": "fetchSockets", "nsp": "/chat"}), nil)
	})

	t.Run("Node fetchSockets sees the Go sockets with rooms and data", func(t *testing.T) {
		m.checkFetch(t, "Node", "/", ns.call(t, map[string]any{"cmd": "fetchSockets"}), nil)
		// the other way round, asked by a client of each Go node
		m.checkFetch(t, "go1", "/", np.emit(t, "a1", "fetchSockets", map[string]any{}), nil)
		m.checkFetch(t, "go2", "/", np.emit(t, "b1", "fetchSockets", map[string]any{}), nil)
		// restricted to a room
		res, _ := ns.call(t, map[string]any{"cmd": "fetchSockets", "in": []string{"room1"}}).([]any)
		var ids, want []string
		for _, s := range res {
			ids = append(ids, s.(map[string]any)["id"].(string))
		}
		for _, name := range root {
			want = append(want, m.client(t, name).id)
		}
		slices.Sort(ids)
		slices.Sort(want)
		if !reflect.DeepEqual(ids, want) {
			t.Errorf("Node fetchSockets in room1: %v, want %v", ids, want)
		}
	})

	t.Run("serverSideEmit from Node reaches both Go nodes, with acks", func(t *testing.T) {
		m.checkServerSideEmit(t, "node", []string{"go1", "go2"}, 42, "x", map[string]any{"k": nil})
		// and from each Go node: the Node node and the other Go node answer
		m.checkServerSideEmit(t, "go1", []string{"go2", "node"}, "q")
		m.checkServerSideEmit(t, "go2", []string{"go1", "node"}, []any{1, 2})

		// Without an ack: each Go node relays the message to its own
		// clients of "/" once (a second relay is the barrier).
		goClients := m.names(func(c *client) bool { return c.server != "node" && c.namespace() == "/" })
		ns.call(t, map[string]any{"cmd": "serverSideEmit", "args": []any{"relay", "first"}})
		ns.call(t, map[string]any{"cmd": "serverSideEmit", "args": []any{"relay", "second"}})
		relayed := func(arg string) func(event) bool {
			return func(e event) bool {
				if e.Event != "relayed" || len(e.Args) == 0 {
					return false
				}
				p, _ := e.Args[0].(map[string]any)
				return reflect.DeepEqual(p["args"], []any{arg})
			}
		}
		if missing := np.waitEvents(10*time.Second, goClients, relayed("second")); len(missing) > 0 {
			t.Fatalf("serverSideEmit relay never reached the Go nodes of %v", missing)
		}
		time.Sleep(m.settle)
		for _, c := range m.clients {
			var got []event
			for _, e := range np.eventsOf(c.name) {
				if relayed("first")(e) {
					got = append(got, e)
				}
			}
			switch {
			case !slices.Contains(goClients, c.name) && len(got) != 0:
				t.Errorf("%s (%s%s) got a relay of the Node server's serverSideEmit: %v", c.name, c.server, c.namespace(), got)
			case slices.Contains(goClients, c.name) && (len(got) != 1 || got[0].Args[0].(map[string]any)["server"] != c.server):
				t.Errorf("%s (%s) got relays %v, want one from %s", c.name, c.server, got, c.server)
			}
		}
	})

	t.Run("broadcast with acks from every node collects each member's answer", func(t *testing.T) {
		for _, o := range []string{"node", "go1", "go2"} {
			m.checkAsk(t, o, []string{"room1"}, root)
			m.checkAsk(t, o, []string{"nosuchroom"}, nil) // every node answers with a count of 0
		}
	})

	t.Run("broadcast with acks waits for the count of a slow node", func(t *testing.T) {
		// Node's own emitWithAck waits for serverCount() client counts: the
		// control case.
		m.checkAskWhilePaused(t, "node", go1, "go1", []string{"room1"}, root)
		// A Go node must do the same, whether the slow node is Node or Go.
		m.checkAskWhilePaused(t, "go2", ns, "the Node server", []string{"room1"}, root)
		m.checkAskWhilePaused(t, "go2", go1, "go1", []string{"room1"}, root)
	})

	t.Run("non-ASCII room names", func(t *testing.T) {
		const room = "salle-é-🚀-日本"
		var want []string
		for _, name := range []string{"n3", "a1", "b2"} {
			m.join(t, m.client(t, name), room)
			want = append(want, name)
		}
		for _, o := range origins {
			m.checkBroadcast(t, o, target{rooms: []string{room}}, "unicode", []any{room}, want)
		}
		m.checkFetch(t, "Node", "/", ns.call(t, map[string]any{"cmd": "fetchSockets"}), map[string][]string{"n3": {room}, "a1": {room}, "b2": {room}})
	})

	t.Run("binary broadcasts cross node types", func(t *testing.T) {
		for _, o := range origins {
			m.checkBroadcast(t, o, target{rooms: []string{"room1"}}, "bin", binaryArgs, root)
		}
	})

	t.Run("large payloads", func(t *testing.T) {
		for _, o := range origins {
			m.checkBroadcast(t, o, target{rooms: []string{"room1"}}, "large", largeArgs, root)
		}
	})

	t.Run("Go SocketsJoin moves Node-side sockets", func(t *testing.T) {
		n3 := m.client(t, "n3")
		if ack := np.emit(t, "a1", "socketsJoin", map[string]any{"in": []string{n3.id}, "rooms": []string{"newroom"}}); ack != true {
			t.Fatalf("go1 socketsJoin ack %v", ack)
		}
		poll.For(t, 5*time.Second, "n3 in newroom on the Node server", func() bool {
			rooms, _ := ns.call(t, map[string]any{"cmd": "localRooms", "sid": n3.id}).([]any)
			return slices.Contains(rooms, any("newroom"))
		})
		for _, o := range origins {
			m.checkBroadcast(t, o, target{rooms: []string{"newroom"}}, "moved", nil, []string{"n3"})
		}

		// Every member of room1, on all three nodes, into room2.
		if ack := np.emit(t, "b1", "socketsJoin", map[string]any{"in": []string{"room1"}, "rooms": []string{"room2"}}); ack != true {
			t.Fatalf("go2 socketsJoin ack %v", ack)
		}
		poll.For(t, 5*time.Second, "room1 members in room2 everywhere", func() bool {
			res, _ := ns.call(t, map[string]any{"cmd": "fetchSockets", "in": []string{"room2"}}).([]any)
			return len(res) == len(root)
		})
		for _, o := range origins {
			m.checkBroadcast(t, o, target{rooms: []string{"room2"}}, "moved2", nil, root)
		}
	})

	t.Run("a crashed Go node leaves the cluster", func(t *testing.T) {
		go2.Kill()
		gone := m.names(func(c *client) bool { return c.server == "go2" })
		if missing := np.waitEvents(10*time.Second, gone, func(e event) bool { return e.Event == "$disconnect" }); len(missing) > 0 {
			t.Errorf("clients of the crashed node still connected: %v", missing)
		}
		m.waitServerCount(t, 2)
		var left []*client
		for _, c := range m.clients {
			if c.server != "go2" {
				left = append(left, c)
			}
		}
		m.clients = left
		// Requests count the nodes still subscribed: no timeout waiting
		// for the crashed one.
		m.checkServerSideEmit(t, "node", []string{"go1"}, "after")
		m.checkServerSideEmit(t, "go1", []string{"node"}, "after")
		res, err := ns.try(map[string]any{"cmd": "fetchSockets", "in": []string{"room1"}})
		if err != nil {
			t.Fatalf("Node fetchSockets after the crash: %v", err)
		}
		if list, _ := res.([]any); len(list) != len(m.members("/")) {
			t.Errorf("Node fetchSockets in room1 after the crash: %v, want %v", list, m.members("/"))
		}
		for _, o := range []string{"node", "go1", "emitter"} {
			m.checkBroadcast(t, o, target{rooms: []string{"room1"}}, "after", nil, m.members("/"))
		}
		m.checkAsk(t, "go1", []string{"room1"}, m.members("/"))
		m.checkAsk(t, "node", []string{"room1"}, m.members("/"))
	})
}

func TestMixedClusterSharded(t *testing.T) {
	setup(t)
	rc := startRedisCluster(t)
	addrs := strings.Join(rc.addrs(), ",")
	go1, go2 := startGoNode(t, "go1", "-cluster", addrs), startGoNode(t, "go2", "-cluster", addrs)
	urls := map[string]string{"go1": go1.URL, "go2": go2.URL}
	ns := startNodeProc(t, "ROLE=server", "REDIS_CLUSTER="+addrs, "MODE=sharded")
	np := startNodeProc(t, "ROLE=clients")
	urls["node"] = ns.URL
	(&mixed{ns: ns}).waitServerCount(t, 3)
	// Messages on a room channel and on the main channel may come through
	// different shards, so the barrier alone does not order them: wait a
	// little longer before counting.
	m := newMixed(t, np, ns, urls, 400*time.Millisecond, []clientSpec{
		{name: "n1", server: "node", transports: websocketOnly, member: true},
		{name: "n2", server: "node"},
		{name: "a1", server: "go1", member: true},
		{name: "a2", server: "go1", transports: websocketOnly},
		{name: "b1", server: "go2", transports: pollingOnly, member: true},
		{name: "b2", server: "go2"},
	})
	root := m.members("/")
	nodes := []string{"node", "go1", "go2"}
	// In the dynamic subscription mode (the default on both sides) a node
	// subscribes to socket.io#/#<room># once it has a member of that room;
	// the join acks come before that, so wait for the subscriptions.
	waitShardSubs := func(t *testing.T, room string, want int64) {
		t.Helper()
		channel := "socket.io#/#" + room + "#"
		deadline := time.Now().Add(10 * time.Second)
		for rc.shardNumSub(t, channel) != want && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if n := rc.shardNumSub(t, channel); n != want {
			t.Errorf("PUBSUB SHARDNUMSUB %s = %d, want %d (one per node with a member)", channel, n, want)
		}
	}
	waitShardSubs(t, "room1", 3)

	t.Run("room broadcast from every node reaches each member once", func(t *testing.T) {
		for _, o := range nodes {
			m.checkBroadcast(t, o, target{rooms: []string{"room1"}}, "msg", jsonArgs, root)
		}
		// a socket id is a private room: the main channel in dynamic mode
		for o, name := range map[string]string{"node": "a1", "go1": "b2", "go2": "n2"} {
			m.checkBroadcast(t, o, target{rooms: []string{m.client(t, name).id}}, "direct", nil, []string{name})
		}
	})

	t.Run("bursts arrive once each and in order", func(t *testing.T) {
		for _, o := range nodes {
			m.checkBurst(t, o, target{rooms: []string{"room1"}}, 200, root)
		}
	})

	t.Run("binary broadcasts cross node types", func(t *testing.T) {
		for _, o := range nodes {
			m.checkBroadcast(t, o, target{rooms: []string{"room1"}}, "bin", binaryArgs, root)
		}
	})

	t.Run("fetchSockets, serverSideEmit and acks across node types", func(t *testing.T) {
		m.checkFetch(t, "Node", "/", ns.call(t, map[string]any{"cmd": "fetchSockets"}), nil)
		m.checkFetch(t, "go1", "/", np.emit(t, "a1", "fetchSockets", map[string]any{}), nil)
		m.checkServerSideEmit(t, "node", []string{"go1", "go2"}, 7)
		m.checkServerSideEmit(t, "go2", []string{"go1", "node"}, "s")
		for _, o := range nodes {
			m.checkAsk(t, o, []string{"room1"}, root)
		}
	})

	t.Run("broadcast with acks waits for the count of a slow node", func(t *testing.T) {
		m.checkAskWhilePaused(t, "node", go2, "go2", []string{"room1"}, root)
		m.checkAskWhilePaused(t, "go1", ns, "the Node server", []string{"room1"}, root)
	})

	t.Run("Go SocketsJoin moves a Node-side socket", func(t *testing.T) {
		n2 := m.client(t, "n2")
		if ack := np.emit(t, "a1", "socketsJoin", map[string]any{"in": []string{n2.id}, "rooms": []string{"newroom"}}); ack != true {
			t.Fatalf("go1 socketsJoin ack %v", ack)
		}
		waitShardSubs(t, "newroom", 1)
		for _, o := range nodes {
			m.checkBroadcast(t, o, target{rooms: []string{"newroom"}}, "moved", nil, []string{"n2"})
		}
	})
}
