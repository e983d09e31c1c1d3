package redisadapter

import (
	"context"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/adapter"
	"github.com/tradewire/tradewire/internal/testutil/redistest"
	"github.com/tradewire/tradewire/parser"
)

// delivery is one packet written to one local socket.
type delivery struct {
	socket string
	text   string
	att    [][]byte
	flags  adapter.Flags
}

// testNsp is a minimal socket layer: it records deliveries and server-side
// emits and keeps sockets whose membership goes through the adapter.
type testNsp struct {
	name string
	ad   adapter.Adapter

	mu        sync.Mutex
	sockets   map[string]*testSocket
	delivered []delivery
	sse       [][]any
	sseReply  any // when non-nil, server-side emits with ack get this reply
	changed   chan struct{}
}

func newTestNsp(name string) *testNsp {
	return &testNsp{name: name, sockets: map[string]*testSocket{}, changed: make(chan struct{}, 1)}
}

func (n *testNsp) Name() string { return n.name }

func (n *testNsp) Deliver(pkt *parser.Packet, flags adapter.Flags, ids iter.Seq[string]) {
	text := string(pkt.AppendText(nil))
	n.mu.Lock()
	for id := range ids {
		if _, ok := n.sockets[id]; ok {
			n.delivered = append(n.delivered, delivery{id, text, pkt.Attachments, flags})
		}
	}
	n.mu.Unlock()
	n.poke()
}

func (n *testNsp) poke() {
	select {
	case n.changed <- struct{}{}:
	default:
	}
}

func (n *testNsp) LocalSocket(id string) (adapter.Socket, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s, ok := n.sockets[id]
	return s, ok
}

func (n *testNsp) HandleServerSideEmit(args []any, reply func(arg any)) {
	n.mu.Lock()
	n.sse = append(n.sse, args)
	r := n.sseReply
	n.mu.Unlock()
	n.poke()
	if reply != nil && r != nil {
		reply(r)
	}
}

// connect adds a socket in rooms (plus its own room).
func (n *testNsp) connect(id string, rooms ...string) *testSocket {
	s := &testSocket{id: id, nsp: n, ackReply: "ack-" + id}
	n.mu.Lock()
	n.sockets[id] = s
	n.mu.Unlock()
	n.ad.AddAll(id, append([]string{id}, rooms...))
	return s
}

// deliveries returns "socket text" lines, sorted.
func (n *testNsp) deliveries() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.delivered))
	for _, d := range n.delivered {
		out = append(out, d.socket+" "+d.text)
	}
	sort.Strings(out)
	return out
}

func (n *testNsp) reset() {
	n.mu.Lock()
	n.delivered = nil
	n.sse = nil
	n.mu.Unlock()
}

type testSocket struct {
	id           string
	nsp          *testNsp
	ackReply     any
	disconnected atomic.Bool
	closed       atomic.Bool
	acked        atomic.Int32
}

func (s *testSocket) ID() string           { return s.id }
func (s *testSocket) Join(rooms ...string) { s.nsp.ad.AddAll(s.id, rooms) }
func (s *testSocket) Leave(room string)    { s.nsp.ad.Del(s.id, room) }
func (s *testSocket) Disconnect(close bool) {
	s.disconnected.Store(true)
	s.closed.Store(close)
	s.nsp.ad.DelAll(s.id)
	s.nsp.mu.Lock()
	delete(s.nsp.sockets, s.id)
	s.nsp.mu.Unlock()
	s.nsp.poke()
}

func (s *testSocket) Info() adapter.SocketInfo {
	rooms := s.nsp.ad.SocketRooms(s.id)
	slices.Sort(rooms)
	return adapter.SocketInfo{ID: s.id, Rooms: rooms, Data: map[string]any{"user": "u-" + s.id},
		Handshake: adapter.Handshake{Address: "127.0.0.1", Headers: map[string]any{"host": "test"}, Query: map[string]any{}, Auth: map[string]any{}, Issued: 1}}
}

func (s *testSocket) EmitWithAck(pkt *parser.Packet, timeout time.Duration, ack func(args []any, err error)) {
	s.nsp.Deliver(pkt, adapter.Flags{}, slices.Values([]string{s.id}))
	go func() {
		s.acked.Add(1)
		ack([]any{s.ackReply}, nil)
	}()
}

// counter is an Observer counting events.
type counter struct {
	mu     sync.Mutex
	counts map[string]int
	reason string
}

func (c *counter) add(k string) {
	c.mu.Lock()
	if c.counts == nil {
		c.counts = map[string]int{}
	}
	c.counts[k]++
	c.mu.Unlock()
}
func (c *counter) get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[k]
}
func (c *counter) OnPublish(kind string, _ int) { c.add("publish:" + kind) }
func (c *counter) OnReceive(kind string, _ int) { c.add("receive:" + kind) }
func (c *counter) OnError(op string, _ error)   { c.add("error:" + op) }
func (c *counter) OnResubscribe(reason string) {
	c.mu.Lock()
	c.reason = reason
	c.mu.Unlock()
	c.add("resubscribe")
}

func (c *counter) lastReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// quietRedis drops go-redis' own log lines (dial failures while a test
// has Redis down on purpose).
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	if os.Getenv("REDISADAPTER_TEST_LOG") == "" {
		redis.SetLogger(quietRedis{})
	}
	os.Exit(m.Run())
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("REDISADAPTER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(discard{}, nil))
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func fastOpts(t testing.TB, o Options) Options {
	o.Logger = testLogger(t)
	if o.SelfCheckInterval == 0 {
		o.SelfCheckInterval = 200 * time.Millisecond
	}
	if o.SelfCheckTimeout == 0 {
		o.SelfCheckTimeout = 500 * time.Millisecond
	}
	if o.RequestsTimeout == 0 {
		o.RequestsTimeout = 2 * time.Second
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = 200 * time.Millisecond
	}
	if o.NodeTimeout == 0 {
		o.NodeTimeout = time.Second
	}
	return o
}

// testNode is one node with one namespace.
type testNode struct {
	node *Node
	nsp  *testNsp
	ad   *Adapter
	obs  *counter
}

func startNode(t testing.TB, client redis.UniversalClient, opts Options, nspName string) *testNode {
	t.Helper()
	obs := &counter{}
	opts = fastOpts(t, opts)
	opts.Observer = obs
	node := NewNode(client, opts)
	t.Cleanup(func() { _ = node.Close() })
	nsp := newTestNsp(nspName)
	ad := node.Factory()(nsp).(*Adapter)
	nsp.ad = ad
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ad.Init(ctx); err != nil {
		t.Fatalf("init: %v", err)
	}
	if err := node.WaitReady(ctx); err != nil {
		t.Fatalf("ready: %v", err)
	}
	return &testNode{node: node, nsp: nsp, ad: ad, obs: obs}
}

func newClient(t testing.TB, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 2 * time.Second})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitDeliveries waits until nsp has exactly want (sorted "socket text"
// lines), then checks that nothing else arrives for a short while.
func waitDeliveries(t testing.TB, n *testNsp, want []string) {
	t.Helper()
	sort.Strings(want)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && len(n.deliveries()) < len(want) {
		select {
		case <-n.changed:
		case <-time.After(20 * time.Millisecond):
		}
	}
	time.Sleep(150 * time.Millisecond) // anything extra (duplicates) shows up here
	got := n.deliveries()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("deliveries on %s:\n got %q\nwant %q", n.name, got, want)
	}
}

func event(data string) *parser.Packet {
	return &parser.Packet{Type: parser.Event, Nsp: "/", Data: []byte(data)}
}

func startRedis(t testing.TB) (*redistest.Server, *redis.Client) {
	s := redistest.Start(t)
	return s, newClient(t, s.Addr)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var _ = fmt.Sprintf

func redisZ(score float64, member string) redis.Z { return redis.Z{Score: score, Member: member} }
