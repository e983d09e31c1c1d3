package cluster

import (
	"encoding/hex"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tradewire/tradewire/internal/testutil/redistest"
)

// clientSpec is one socket.io-client of the pool.
type clientSpec struct {
	name       string
	server     string   // "node", "go1" or "go2"
	transports []string // nil: polling then upgrade (the client default)
	member     bool     // joins room1
}

// client is a connected clientSpec.
type client struct {
	clientSpec
	id string
}

// mixed is a running mixed cluster: the Node process (server, emitter and
// clients) and the URLs of every node.
type mixed struct {
	t       *testing.T
	np      *nodeProc
	urls    map[string]string
	clients []*client
	trigger map[string]string // server -> the client that asks it to broadcast
	settle  time.Duration     // extra wait after a barrier before counting
	tags    atomic.Int64
}

var (
	websocketOnly = []string{"websocket"}
	pollingOnly   = []string{"polling"}
)

func newMixed(t *testing.T, np *nodeProc, urls map[string]string, settle time.Duration, specs []clientSpec) *mixed {
	t.Helper()
	m := &mixed{t: t, np: np, urls: urls, trigger: map[string]string{}, settle: settle}
	for _, sp := range specs {
		cmd := map[string]any{"cmd": "connect", "name": sp.name, "url": urls[sp.server]}
		if sp.transports != nil {
			cmd["transports"] = sp.transports
		}
		res, ok := np.call(cmd).(map[string]any)
		if !ok {
			t.Fatalf("connect %s: no result", sp.name)
		}
		c := &client{clientSpec: sp, id: res["id"].(string)}
		m.clients = append(m.clients, c)
		if _, ok := m.trigger[sp.server]; !ok {
			m.trigger[sp.server] = sp.name
		}
	}
	for _, c := range m.clients {
		if !c.member {
			continue
		}
		rooms := np.emit(c.name, "join", "room1")
		if want := sorted(c.id, "room1"); !reflect.DeepEqual(rooms, want) {
			t.Fatalf("%s (%s) join room1: ack %v, want %v", c.name, c.server, rooms, want)
		}
	}
	return m
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

func (m *mixed) client(name string) *client {
	for _, c := range m.clients {
		if c.name == name {
			return c
		}
	}
	m.t.Fatalf("no client %s", name)
	return nil
}

func (m *mixed) members() []string { return m.names(func(c *client) bool { return c.member }) }

// broadcast asks origin ("node", "go1", "go2" or "emitter") to broadcast
// specs, in order.
func (m *mixed) broadcast(t *testing.T, origin string, specs ...map[string]any) {
	t.Helper()
	if origin == "emitter" {
		m.np.call(map[string]any{"cmd": "emitterBroadcast", "specs": specs})
		return
	}
	args := make([]any, len(specs))
	for i, s := range specs {
		args[i] = s
	}
	if ack := m.np.emit(m.trigger[origin], "broadcast", args...); ack != true {
		t.Fatalf("%s: broadcast ack %v", origin, ack)
	}
}

// target selects the sockets of a broadcast.
type target struct {
	rooms, except []string
}

// checkBroadcast has origin emit ev({tag}, extra...) to a target, then a
// "barrier" event to every socket, and checks once every client got the
// barrier (and settle has passed) that each client in want received the
// event exactly once, with the arguments unchanged, and every other client
// never.
func (m *mixed) checkBroadcast(t *testing.T, origin string, to target, ev string, extra []any, want []string) {
	t.Helper()
	tag := fmt.Sprintf("%s-%s-%d", origin, ev, m.tags.Add(1))
	args := append([]any{map[string]any{"tag": tag}}, extra...)
	m.broadcast(t, origin,
		map[string]any{"rooms": to.rooms, "except": to.except, "event": ev, "args": args},
		map[string]any{"rooms": []string{}, "event": "barrier", "args": []any{tag}})
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
		n := 0
		for _, e := range m.np.eventsOf(c.name) {
			if e.Event != ev || len(e.Args) == 0 {
				continue
			}
			if first, _ := e.Args[0].(map[string]any); first["tag"] != tag {
				continue
			}
			n++
			if !reflect.DeepEqual(e.Args, wantArgs) {
				problems = append(problems, fmt.Sprintf("%s (%s) got %s%v, want %v", c.name, c.server, ev, e.Args, wantArgs))
			}
		}
		expect := 0
		if slices.Contains(want, c.name) {
			expect = 1
		}
		if n != expect {
			problems = append(problems, fmt.Sprintf("%s (%s, %s) received %q %d times, want %d", c.name, c.server, m.transportOf(c), ev, n, expect))
		}
	}
	if len(problems) > 0 {
		t.Errorf("broadcast from %s to %+v (%s):\n  %s", origin, to, tag, strings.Join(problems, "\n  "))
	}
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
	eventually(t, 15*time.Second, fmt.Sprintf("Node serverCount %v", n), func() bool {
		last = m.np.call(map[string]any{"cmd": "serverCount"})
		return last == n
	})
}

func sorted(s ...string) []any {
	slices.Sort(s)
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

// binaryArgs are the extra arguments of the binary broadcasts: top-level
// and nested binary next to JSON values.
var binaryArgs = []any{bin([]byte{1, 2, 3}), map[string]any{"nested": bin([]byte("hi")), "n": 7}, bin([]byte{})}

func TestMixedClusterClassic(t *testing.T) {
	setup(t)
	rs := redistest.Start(t)
	urls := map[string]string{
		"go1": startGoNode(t, "go1", "-redis", rs.URL()),
		"go2": startGoNode(t, "go2", "-redis", rs.URL()),
	}
	np := startNodeProc(t, "REDIS_URL="+rs.URL(), "MODE=classic")
	urls["node"] = np.URL
	m := &mixed{t: t, np: np}
	m.waitServerCount(t, 3)
	m = newMixed(t, np, urls, 150*time.Millisecond, []clientSpec{
		{name: "n1", server: "node", transports: websocketOnly, member: true},
		{name: "n2", server: "node", member: true},
		{name: "n3", server: "node", transports: pollingOnly},
		{name: "a1", server: "go1", transports: websocketOnly, member: true},
		{name: "a2", server: "go1", member: true},
		{name: "a3", server: "go1", transports: pollingOnly},
		{name: "b1", server: "go2", member: true},
		{name: "b2", server: "go2", transports: websocketOnly},
		{name: "b3", server: "go2", transports: pollingOnly, member: true},
	})
	origins := []string{"node", "go1", "go2", "emitter"}

	t.Run("room broadcast from every node reaches each member once", func(t *testing.T) {
		for _, o := range origins {
			m.checkBroadcast(t, o, target{rooms: []string{"room1"}}, "msg", []any{"text", 1.5, nil, map[string]any{"k": []any{true}}}, m.members())
		}
		// Two rooms: the main channel instead of a room channel.
		for _, o := range origins {
			m.checkBroadcast(t, o, target{rooms: []string{"room1", "nosuchroom"}}, "multi", nil, m.members())
		}
		// Except sockets of other nodes, through their id rooms.
		except := []string{m.client("n2").id, m.client("a1").id, m.client("b3").id}
		want := m.names(func(c *client) bool { return c.member && !slices.Contains(except, c.id) })
		for _, o := range origins {
			m.checkBroadcast(t, o, target{rooms: []string{"room1"}, except: except}, "except", nil, want)
		}
	})

	t.Run("Node fetchSockets sees the Go sockets with rooms and data", func(t *testing.T) {
		checkFetch := func(who string, res any) {
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
			if len(got) != len(m.clients) || len(list) != len(m.clients) {
				t.Errorf("%s fetchSockets: %d sockets (%d distinct), want %d: %v", who, len(list), len(got), len(m.clients), list)
			}
			for _, c := range m.clients {
				s, ok := got[c.id]
				if !ok {
					t.Errorf("%s fetchSockets: %s (%s, id %s) missing", who, c.name, c.server, c.id)
					continue
				}
				rooms := sorted(c.id)
				if c.member {
					rooms = sorted(c.id, "room1")
				}
				if !reflect.DeepEqual(s["rooms"], rooms) {
					t.Errorf("%s fetchSockets: %s (%s) rooms %v, want %v", who, c.name, c.server, s["rooms"], rooms)
				}
				if data := map[string]any{"server": c.server, "name": c.name}; !reflect.DeepEqual(s["data"], data) {
					t.Errorf("%s fetchSockets: %s (%s) data %v, want %v", who, c.name, c.server, s["data"], data)
				}
			}
		}
		checkFetch("Node", np.call(map[string]any{"cmd": "fetchSockets"}))
		// the other way round, asked by a client of each Go node
		checkFetch("go1", np.emit("a1", "fetchSockets", map[string]any{}))
		checkFetch("go2", np.emit("b1", "fetchSockets", map[string]any{}))
		// restricted to a room
		res, _ := np.call(map[string]any{"cmd": "fetchSockets", "in": []string{"room1"}}).([]any)
		var ids []string
		for _, s := range res {
			ids = append(ids, s.(map[string]any)["id"].(string))
		}
		var want []string
		for _, c := range m.clients {
			if c.member {
				want = append(want, c.id)
			}
		}
		slices.Sort(ids)
		slices.Sort(want)
		if !reflect.DeepEqual(ids, want) {
			t.Errorf("Node fetchSockets in room1: %v, want %v", ids, want)
		}
	})

	t.Run("serverSideEmit from Node reaches both Go nodes, with acks", func(t *testing.T) {
		res, ok := np.call(map[string]any{"cmd": "serverSideEmitWithAck", "args": []any{"who", 42, "x"}}).([]any)
		if !ok {
			t.Fatalf("serverSideEmitWithAck: no replies")
		}
		slices.SortFunc(res, func(a, b any) int {
			return strings.Compare(fmt.Sprint(a.(map[string]any)["server"]), fmt.Sprint(b.(map[string]any)["server"]))
		})
		want := []any{
			map[string]any{"server": "go1", "args": []any{42.0, "x"}},
			map[string]any{"server": "go2", "args": []any{42.0, "x"}},
		}
		if !reflect.DeepEqual(res, want) {
			t.Errorf("Node serverSideEmitWithAck replies %v, want %v", res, want)
		}

		// Without an ack: each Go node relays the message to its own
		// clients once (a second relay is the barrier).
		goClients := m.names(func(c *client) bool { return c.server != "node" })
		np.call(map[string]any{"cmd": "serverSideEmit", "args": []any{"relay", "first"}})
		np.call(map[string]any{"cmd": "serverSideEmit", "args": []any{"relay", "second"}})
		relayed := func(arg string) func(event) bool {
			return func(e event) bool {
				p, _ := e.Args[0].(map[string]any)
				return e.Event == "relayed" && reflect.DeepEqual(p["args"], []any{arg})
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
			case c.server == "node" && len(got) != 0:
				t.Errorf("%s (node) got a relay: the Node server must not handle its own serverSideEmit: %v", c.name, got)
			case c.server != "node" && (len(got) != 1 || got[0].Args[0].(map[string]any)["server"] != c.server):
				t.Errorf("%s (%s) got relays %v, want one from %s", c.name, c.server, got, c.server)
			}
		}

		// And from a Go node: the Node node and the other Go node answer.
		ack, ok := np.emit("a1", "serverSideEmit", "who", "q").(map[string]any)
		if !ok || ack["error"] != nil {
			t.Fatalf("go1 serverSideEmit: %v", ack)
		}
		replies, _ := ack["replies"].([]any)
		slices.SortFunc(replies, func(a, b any) int {
			return strings.Compare(fmt.Sprint(a.(map[string]any)["server"]), fmt.Sprint(b.(map[string]any)["server"]))
		})
		wantGo := []any{
			map[string]any{"server": "go2", "args": []any{"q"}},
			map[string]any{"server": "node", "args": []any{"q"}},
		}
		if !reflect.DeepEqual(replies, wantGo) {
			t.Errorf("go1 serverSideEmit replies %v, want %v", replies, wantGo)
		}
	})

	t.Run("Go SocketsJoin moves Node-side sockets", func(t *testing.T) {
		n3 := m.client("n3")
		if ack := np.emit("a1", "socketsJoin", map[string]any{"in": []string{n3.id}, "rooms": []string{"newroom"}}); ack != true {
			t.Fatalf("go1 socketsJoin ack %v", ack)
		}
		eventually(t, 5*time.Second, "n3 in newroom on the Node server", func() bool {
			rooms, _ := np.call(map[string]any{"cmd": "localRooms", "sid": n3.id}).([]any)
			return slices.Contains(rooms, any("newroom"))
		})
		for _, o := range origins {
			m.checkBroadcast(t, o, target{rooms: []string{"newroom"}}, "moved", nil, []string{"n3"})
		}

		// Every member of room1, on all three nodes, into room2.
		if ack := np.emit("b1", "socketsJoin", map[string]any{"in": []string{"room1"}, "rooms": []string{"room2"}}); ack != true {
			t.Fatalf("go2 socketsJoin ack %v", ack)
		}
		eventually(t, 5*time.Second, "room1 members in room2 everywhere", func() bool {
			res, _ := np.call(map[string]any{"cmd": "fetchSockets", "in": []string{"room2"}}).([]any)
			return len(res) == len(m.members())
		})
		for _, o := range origins {
			m.checkBroadcast(t, o, target{rooms: []string{"room2"}}, "moved2", nil, m.members())
		}
	})

	t.Run("binary broadcasts cross node types", func(t *testing.T) {
		for _, o := range origins {
			m.checkBroadcast(t, o, target{rooms: []string{"room1"}}, "bin", binaryArgs, m.members())
		}
	})
}

func TestMixedClusterSharded(t *testing.T) {
	setup(t)
	rc := startRedisCluster(t)
	addrs := strings.Join(rc.addrs(), ",")
	urls := map[string]string{
		"go1": startGoNode(t, "go1", "-cluster", addrs),
		"go2": startGoNode(t, "go2", "-cluster", addrs),
	}
	np := startNodeProc(t, "REDIS_CLUSTER="+addrs, "MODE=sharded")
	urls["node"] = np.URL
	m := &mixed{t: t, np: np}
	m.waitServerCount(t, 3)
	// Messages on the room channel and the main channel may come through
	// different shards, so the barrier alone does not order them: wait a
	// little longer before counting.
	m = newMixed(t, np, urls, 400*time.Millisecond, []clientSpec{
		{name: "n1", server: "node", transports: websocketOnly, member: true},
		{name: "n2", server: "node"},
		{name: "a1", server: "go1", member: true},
		{name: "a2", server: "go1", transports: websocketOnly},
		{name: "b1", server: "go2", transports: pollingOnly, member: true},
		{name: "b2", server: "go2"},
	})
	// In the dynamic subscription mode (the default on both sides) a node
	// subscribes to socket.io#/#room1# once it has a member: the join acks
	// come before that, so wait for the three subscriptions.
	const roomChannel = "socket.io#/#room1#"
	deadline := time.Now().Add(10 * time.Second)
	for rc.shardNumSub(t, roomChannel) != 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := rc.shardNumSub(t, roomChannel); n != 3 {
		t.Errorf("PUBSUB SHARDNUMSUB %s = %d, want 3 (one per node with a member of room1)", roomChannel, n)
	}

	for _, o := range []string{"node", "go1", "go2"} {
		m.checkBroadcast(t, o, target{rooms: []string{"room1"}}, "msg", []any{"sharded", 2.0}, m.members())
	}
	for _, o := range []string{"node", "go1", "go2"} {
		m.checkBroadcast(t, o, target{rooms: []string{"room1"}}, "bin", binaryArgs, m.members())
	}
}
