package redisadapter

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tradewire/tradewire/adapter"
	"github.com/tradewire/tradewire/internal/testutil/poll"
	"github.com/tradewire/tradewire/parser"
)

// nodeDir is the Node side of the interop tests.
var nodeDir = filepath.Join("..", "..", "tests", "cluster")

var npmOnce sync.Once

// ensureNodeModules runs npm ci in tests/cluster when node_modules is missing.
func ensureNodeModules(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is required for the interop tests (apt-get install -y nodejs npm): %v", err)
	}
	var failure string
	npmOnce.Do(func() {
		if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "@socket.io", "redis-emitter")); err == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = nodeDir
		if out, err := cmd.CombinedOutput(); err != nil {
			failure = "npm ci in tests/cluster: " + err.Error() + "\n" + string(out)
		}
	})
	if failure != "" {
		t.Fatal(failure)
	}
}

// nodeServer is a running interop.js.
type nodeServer struct {
	t      *testing.T
	stdin  *json.Encoder
	mu     sync.Mutex
	events []map[string]any
	wake   chan struct{}
	nextID int
	ready  map[string]any
}

func startNodeServer(t *testing.T, redisURL string, env ...string) *nodeServer {
	ensureNodeModules(t)
	cmd := exec.Command("node", "interop.js")
	cmd.Dir = nodeDir
	cmd.Env = append(os.Environ(), append([]string{"REDIS_URL=" + redisURL}, env...)...)
	in, err := cmd.StdinPipe()
	must(t, err)
	out, err := cmd.StdoutPipe()
	must(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	ns := &nodeServer{t: t, stdin: json.NewEncoder(in), wake: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				continue
			}
			ns.mu.Lock()
			ns.events = append(ns.events, m)
			ns.mu.Unlock()
			select {
			case ns.wake <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = in.Close()
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("node stderr:\n%s", stderr.String())
		}
	})
	ns.ready = ns.waitFor(20*time.Second, func(m map[string]any) bool { return m["type"] == "ready" })
	return ns
}

// waitFor returns the first event (old or new) matching f.
func (ns *nodeServer) waitFor(d time.Duration, f func(map[string]any) bool) map[string]any {
	ns.t.Helper()
	deadline := time.After(d)
	for {
		ns.mu.Lock()
		for _, m := range ns.events {
			if f(m) {
				ns.mu.Unlock()
				return m
			}
		}
		ns.mu.Unlock()
		select {
		case <-ns.wake:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			ns.mu.Lock()
			defer ns.mu.Unlock()
			ns.t.Fatalf("node: no matching event after %v; got %v", d, ns.events)
		}
	}
}

// call runs a command and returns its result.
func (ns *nodeServer) call(cmd map[string]any) any {
	ns.t.Helper()
	ns.mu.Lock()
	ns.nextID++
	id := float64(ns.nextID)
	ns.mu.Unlock()
	cmd["id"] = id
	must(ns.t, ns.stdin.Encode(cmd))
	m := ns.waitFor(10*time.Second, func(m map[string]any) bool { return m["type"] == "result" && m["id"] == id })
	if e, ok := m["error"]; ok {
		ns.t.Fatalf("node %v: %v", cmd["cmd"], e)
	}
	return m["result"]
}

func (ns *nodeServer) clientEvents(name string) []map[string]any {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	var out []map[string]any
	for _, m := range ns.events {
		if m["type"] == "clientEvent" && m["event"] == name {
			out = append(out, m)
		}
	}
	return out
}

func binArg(b []byte) map[string]any { return map[string]any{"$bin": hex.EncodeToString(b)} }

func TestNodeInteropClassic(t *testing.T) {
	srv, client := startRedis(t)
	g := startNode(t, client, Options{RequestsTimeout: 3 * time.Second}, "/")
	g.nsp.connect("g1", "room1")
	g.nsp.connect("g2", "room2")
	ns := startNodeServer(t, srv.URL())
	nodeClient := ns.ready["clientId"].(string)
	ctx := context.Background()
	poll.For(t, 5*time.Second, "two servers", func() bool { return g.ad.ServerCount(ctx) == 2 })
	if n := ns.call(map[string]any{"cmd": "serverCount"}); n != 2.0 {
		t.Fatalf("node serverCount %v", n)
	}

	t.Run("node broadcast with binary reaches Go", func(t *testing.T) {
		g.nsp.reset()
		ns.call(map[string]any{"cmd": "emit", "args": []any{"bin", binArg([]byte{1, 2, 3}), map[string]any{"nested": binArg([]byte("hi"))}}})
		text := `52-["bin",{"_placeholder":true,"num":0},{"nested":{"_placeholder":true,"num":1}}]`
		waitDeliveries(t, g.nsp, []string{"g1 " + text, "g2 " + text})
		g.nsp.mu.Lock()
		att := g.nsp.delivered[0].att
		g.nsp.mu.Unlock()
		if !reflect.DeepEqual(att, [][]byte{{1, 2, 3}, []byte("hi")}) {
			t.Fatalf("attachments %q", att)
		}
		g.nsp.reset()
		ns.call(map[string]any{"cmd": "emit", "room": "room1", "args": []any{"r", "x", 1.5, nil, map[string]any{"k": []any{true}}}})
		waitDeliveries(t, g.nsp, []string{`g1 2["r","x",1.5,null,{"k":[true]}]`})
		g.nsp.reset()
		ns.call(map[string]any{"cmd": "exceptEmit", "room": "room1", "args": []any{"e"}})
		waitDeliveries(t, g.nsp, []string{`g2 2["e"]`})
	})

	t.Run("emitter reaches Go", func(t *testing.T) {
		g.nsp.reset()
		ns.call(map[string]any{"cmd": "emitterEmit", "args": []any{"ev", 1}})
		ns.call(map[string]any{"cmd": "emitterEmit", "room": "room1", "args": []any{"ev", "r"}})
		ns.call(map[string]any{"cmd": "emitterEmit", "room": "room2", "args": []any{"bin", binArg([]byte{0xde, 0xad})}})
		waitDeliveries(t, g.nsp, []string{`g1 2["ev",1]`, `g2 2["ev",1]`, `g1 2["ev","r"]`, `g2 51-["bin",{"_placeholder":true,"num":0}]`})
		ns.call(map[string]any{"cmd": "emitterJoin", "room": "room1", "args": []any{"room5"}})
		poll.For(t, 3*time.Second, "emitter socketsJoin", func() bool { return slices.Contains(g.ad.SocketRooms("g1"), "room5") })
		ns.call(map[string]any{"cmd": "emitterLeave", "room": "room1", "args": []any{"room5"}})
		poll.For(t, 3*time.Second, "emitter socketsLeave", func() bool { return !g.ad.HasRoom("room5") })
		ns.call(map[string]any{"cmd": "emitterServerSideEmit", "args": []any{"hello", map[string]any{"z": 1}}})
		poll.For(t, 3*time.Second, "emitter serverSideEmit", func() bool {
			g.nsp.mu.Lock()
			defer g.nsp.mu.Unlock()
			return len(g.nsp.sse) == 1 && reflect.DeepEqual(g.nsp.sse[0], []any{"hello", map[string]any{"z": 1.0}})
		})
	})

	t.Run("node requests answered by Go", func(t *testing.T) {
		res := ns.call(map[string]any{"cmd": "fetchSockets"}).([]any)
		var ids []string
		for _, s := range res {
			m := s.(map[string]any)
			ids = append(ids, m["id"].(string))
			if m["id"] == "g1" && (!reflect.DeepEqual(m["rooms"], []any{"g1", "room1"}) || m["data"].(map[string]any)["user"] != "u-g1") {
				t.Fatalf("g1 as node sees it: %v", m)
			}
		}
		sort.Strings(ids)
		want := []string{"g1", "g2", nodeClient}
		sort.Strings(want)
		if !reflect.DeepEqual(ids, want) {
			t.Fatalf("node fetchSockets ids %v, want %v", ids, want)
		}
		rooms := ns.call(map[string]any{"cmd": "allRooms"}).([]any)
		if !slices.Contains(rooms, any("room1")) || !slices.Contains(rooms, any("noderoom")) {
			t.Fatalf("node allRooms %v", rooms)
		}
		g.nsp.mu.Lock()
		g.nsp.sse = nil
		g.nsp.sseReply = "go-pong"
		g.nsp.mu.Unlock()
		got := ns.call(map[string]any{"cmd": "serverSideEmitWithAck", "args": []any{"ping", 1}})
		if !reflect.DeepEqual(got, []any{"go-pong"}) {
			t.Fatalf("node serverSideEmitWithAck got %v", got)
		}
		ns.call(map[string]any{"cmd": "socketsJoin", "room": "room2", "args": []any{"fromnode"}})
		poll.For(t, 3*time.Second, "node socketsJoin", func() bool { return slices.Contains(g.ad.SocketRooms("g2"), "fromnode") })
		// an ack broadcast from Node: Go reports its count and acks
		res2 := ns.call(map[string]any{"cmd": "emitWithAck", "room": "room1", "args": []any{"ask"}})
		if !reflect.DeepEqual(res2, []any{"ack-g1"}) {
			t.Fatalf("node emitWithAck got %v", res2)
		}
	})

	t.Run("Go broadcasts and requests reach Node", func(t *testing.T) {
		p := &parser.Packet{Type: parser.BinaryEvent, Nsp: "/", Data: []byte(`["fromgo",{"_placeholder":true,"num":0},{"n":1}]`), Attachments: [][]byte{{9, 8}}}
		must(t, g.ad.Broadcast(p, &adapter.BroadcastOptions{Rooms: []string{"noderoom"}}))
		ev := ns.waitFor(5*time.Second, func(m map[string]any) bool { return m["type"] == "clientEvent" && m["event"] == "fromgo" })
		if !reflect.DeepEqual(ev["args"], []any{map[string]any{"$bin": "0908"}, map[string]any{"n": 1.0}}) {
			t.Fatalf("node client got %v", ev["args"])
		}
		infos, err := g.ad.FetchSockets(ctx, &adapter.BroadcastOptions{Rooms: []string{"noderoom"}})
		must(t, err)
		if len(infos) != 1 || infos[0].ID != nodeClient || !slices.Contains(infos[0].Rooms, "noderoom") ||
			infos[0].Data.(map[string]any)["user"] != "node-user" || infos[0].Handshake.Address == "" {
			t.Fatalf("Go fetchSockets from node: %+v", infos)
		}
		ids, err := g.ad.Sockets(ctx, []string{"noderoom"})
		if err != nil || !reflect.DeepEqual(ids, []string{nodeClient}) {
			t.Fatalf("Go Sockets %v %v", ids, err)
		}
		rooms, err := g.ad.AllRooms(ctx)
		if err != nil || !slices.Contains(rooms, "noderoom") {
			t.Fatalf("Go AllRooms %v %v", rooms, err)
		}
		var replies []any
		must(t, g.ad.ServerSideEmit(ctx, []any{"ping", "x"}, func(a any) { replies = append(replies, a) }))
		if !reflect.DeepEqual(replies, []any{"node-pong"}) {
			t.Fatalf("Go serverSideEmit replies %v", replies)
		}
		var mu sync.Mutex
		var counts []int
		var acks []any
		must(t, g.ad.BroadcastWithAck(event(`["askall"]`), &adapter.BroadcastOptions{Flags: adapter.Flags{Timeout: 3000}},
			func(n int) { mu.Lock(); counts = append(counts, n); mu.Unlock() },
			func(a []any) { mu.Lock(); acks = append(acks, a[0]); mu.Unlock() }))
		poll.For(t, 5*time.Second, "acks from both servers", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(counts) == 2 && len(acks) == 3
		})
		sort.Ints(counts)
		if !reflect.DeepEqual(counts, []int{1, 2}) || !slices.Contains(acks, any("node-ack")) {
			t.Fatalf("counts %v acks %v", counts, acks)
		}
		g.ad.AddSockets(&adapter.BroadcastOptions{Rooms: []string{"noderoom"}}, []string{"gojoined"})
		poll.For(t, 3*time.Second, "Go socketsJoin on node", func() bool {
			res := ns.call(map[string]any{"cmd": "fetchSockets", "room": "gojoined"}).([]any)
			return len(res) == 1
		})
	})
}

func TestNodeInteropSharded(t *testing.T) {
	srv, client := startRedis(t)
	g := startNode(t, client, Options{Sharded: true, RequestsTimeout: 3 * time.Second}, "/")
	g.nsp.connect("g1", "room1")
	ns := startNodeServer(t, srv.URL(), "MODE=sharded")
	nodeClient := ns.ready["clientId"].(string)
	ctx := context.Background()
	poll.For(t, 5*time.Second, "two servers", func() bool { return g.ad.ServerCount(ctx) == 2 })

	ns.call(map[string]any{"cmd": "emit", "args": []any{"bin", binArg([]byte{1, 2})}})
	ns.call(map[string]any{"cmd": "emit", "room": "room1", "args": []any{"ev", 1}})
	waitDeliveries(t, g.nsp, []string{`g1 51-["bin",{"_placeholder":true,"num":0}]`, `g1 2["ev",1]`})

	res := ns.call(map[string]any{"cmd": "fetchSockets"}).([]any)
	if len(res) != 2 {
		t.Fatalf("node fetchSockets %v", res)
	}
	g.nsp.mu.Lock()
	g.nsp.sseReply = "go-pong"
	g.nsp.mu.Unlock()
	if got := ns.call(map[string]any{"cmd": "serverSideEmitWithAck", "args": []any{"ping"}}); !reflect.DeepEqual(got, []any{"go-pong"}) {
		t.Fatalf("node serverSideEmitWithAck %v", got)
	}
	if got := ns.call(map[string]any{"cmd": "emitWithAck", "room": "room1", "args": []any{"ask"}}); !reflect.DeepEqual(got, []any{"ack-g1"}) {
		t.Fatalf("node emitWithAck %v", got)
	}

	must(t, g.ad.Broadcast(event(`["fromgo",2]`), &adapter.BroadcastOptions{Rooms: []string{"noderoom"}}))
	ev := ns.waitFor(5*time.Second, func(m map[string]any) bool { return m["type"] == "clientEvent" && m["event"] == "fromgo" })
	if !reflect.DeepEqual(ev["args"], []any{2.0}) {
		t.Fatalf("node client got %v", ev["args"])
	}
	infos, err := g.ad.FetchSockets(ctx, &adapter.BroadcastOptions{})
	must(t, err)
	if len(infos) != 2 || !slices.ContainsFunc(infos, func(s adapter.SocketInfo) bool { return s.ID == nodeClient }) {
		t.Fatalf("Go fetchSockets %+v", infos)
	}
	var replies []any
	must(t, g.ad.ServerSideEmit(ctx, []any{"ping"}, func(a any) { replies = append(replies, a) }))
	if !reflect.DeepEqual(replies, []any{"node-pong"}) {
		t.Fatalf("Go serverSideEmit replies %v", replies)
	}
}
