package redisadapter

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tradewire/tradewire/adapter"
	"github.com/tradewire/tradewire/internal/testutil/poll"
	"github.com/tradewire/tradewire/internal/testutil/redistest"
)

// streamUntil broadcasts numbered events from a to all sockets every 20ms
// until stop is closed, and returns how many it published successfully.
func stream(a *testNode, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
		_ = a.ad.Broadcast(event(`["tick"]`), &adapter.BroadcastOptions{Rooms: []string{"r"}})
	}
}

func countTicks(n *testNsp) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.delivered)
}

func TestRedisRestartResubscribes(t *testing.T) {
	srv := redistest.Start(t)
	a := startNode(t, newClient(t, srv.Addr), Options{}, "/")
	b := startNode(t, newClient(t, srv.Addr), Options{}, "/")
	b.nsp.connect("b1", "r")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go stream(a, stop, &wg)
	defer func() { close(stop); wg.Wait() }()

	poll.For(t, 5*time.Second, "ticks before the restart", func() bool { return countTicks(b.nsp) > 3 })
	srv.Kill()
	poll.For(t, 5*time.Second, "B not ready while Redis is away", func() bool { return b.node.Ready() != nil })
	poll.For(t, 5*time.Second, "A not ready while Redis is away", func() bool { return a.node.Ready() != nil })
	if err := b.node.Ready(); !errors.Is(err, errNotReady) {
		t.Fatalf("Ready() = %v", err)
	}
	// while Redis is away: local delivery goes on, the publish error is returned
	a.nsp.connect("a1", "r")
	sctx, scancel := context.WithTimeout(context.Background(), 3*time.Second)
	if n := a.ad.ServerCount(sctx); n != 1 {
		t.Fatalf("ServerCount without Redis = %d, want 1", n)
	}
	scancel()
	if err := a.ad.Broadcast(event(`["offline"]`), &adapter.BroadcastOptions{Rooms: []string{"a1"}}); err == nil {
		t.Fatal("Broadcast without Redis returned no error")
	}
	if !slices.Contains(a.nsp.deliveries(), `a1 2["offline"]`) {
		t.Fatalf("local delivery without Redis: %v", a.nsp.deliveries())
	}
	if _, err := a.ad.FetchSockets(context.Background(), &adapter.BroadcastOptions{}); err == nil {
		t.Fatal("FetchSockets without Redis returned no error")
	}
	srv.Restart()
	restartedAt := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	must(t, b.node.WaitReady(ctx))
	t.Logf("ready again %v after Redis came back", time.Since(restartedAt).Round(time.Millisecond))
	must(t, a.node.WaitReady(ctx))
	// ready means every subscription is back: the next broadcasts arrive
	before := countTicks(b.nsp)
	poll.For(t, 5*time.Second, "ticks after the restart", func() bool { return countTicks(b.nsp) > before+3 })
	if b.obs.get("resubscribe") == 0 {
		t.Fatal("resubscribe not observed")
	}
	// requests work again too
	if n := a.ad.ServerCount(ctx); n != 2 {
		t.Fatalf("ServerCount after restart = %d", n)
	}
	infos, err := a.ad.FetchSockets(ctx, &adapter.BroadcastOptions{})
	if err != nil || len(infos) != 2 {
		t.Fatalf("fetch after restart: %v %v", infos, err)
	}
}

func TestClientKillPubSub(t *testing.T) {
	srv, client := startRedis(t)
	a := startNode(t, client, Options{}, "/")
	b := startNode(t, newClient(t, srv.Addr), Options{}, "/")
	b.nsp.connect("b1", "r")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go stream(a, stop, &wg)
	defer func() { close(stop); wg.Wait() }()
	poll.For(t, 5*time.Second, "ticks", func() bool { return countTicks(b.nsp) > 2 })

	killed, err := client.ClientKillByFilter(context.Background(), "TYPE", "pubsub").Result()
	if err != nil || killed < 2 {
		t.Fatalf("CLIENT KILL TYPE pubsub: %d %v", killed, err)
	}
	poll.For(t, 5*time.Second, "resubscribe observed", func() bool { return b.obs.get("resubscribe") > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	must(t, b.node.WaitReady(ctx))
	before := countTicks(b.nsp)
	poll.For(t, 5*time.Second, "ticks after the kill", func() bool { return countTicks(b.nsp) > before+3 })
}

// proxy forwards TCP to Redis; freeze() makes every pub/sub connection that
// exists at that moment silently stop forwarding (no RST, no FIN), as a
// half-dead network path or a wedged Redis would.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []*proxyConn
}

type proxyConn struct {
	pubsub atomic.Bool
	frozen atomic.Bool
	c, s   net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	p := &proxy{ln: ln, target: target}
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.c.Close()
			_ = c.s.Close()
		}
		p.mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			pc := &proxyConn{c: c, s: s}
			p.mu.Lock()
			p.conns = append(p.conns, pc)
			p.mu.Unlock()
			go pc.pipe(c, s, true)
			go pc.pipe(s, c, false)
		}
	}()
	return p
}

func (pc *proxyConn) pipe(from, to net.Conn, fromClient bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if fromClient && bytes.Contains(bytes.ToLower(chunk), []byte("subscribe")) {
				pc.pubsub.Store(true)
			}
			if !pc.frozen.Load() {
				if _, err := to.Write(chunk); err != nil {
					return
				}
			}
		}
		if err != nil {
			if err != io.EOF || !pc.frozen.Load() {
				_ = to.Close()
			}
			return
		}
	}
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) freezePubSub() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.conns {
		if c.pubsub.Load() && !c.frozen.Load() {
			c.frozen.Store(true)
			n++
		}
	}
	return n
}

func TestSelfCheckDetectsSilentSubscriber(t *testing.T) {
	srv, direct := startRedis(t)
	px := startProxy(t, srv.Addr)
	b := startNode(t, newClient(t, px.addr()), Options{}, "/")
	a := startNode(t, direct, Options{}, "/")
	b.nsp.connect("b1", "r")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go stream(a, stop, &wg)
	defer func() { close(stop); wg.Wait() }()
	poll.For(t, 5*time.Second, "ticks", func() bool { return countTicks(b.nsp) > 2 })

	frozeAt := time.Now()
	if n := px.freezePubSub(); n != 1 {
		t.Fatalf("froze %d pub/sub connections, want 1", n)
	}
	// nothing is closed: only the self-check can notice
	poll.For(t, 5*time.Second, "self-check failure", func() bool { return b.obs.get("resubscribe") > 0 })
	t.Logf("silent subscriber detected after %v (interval 200ms, timeout 500ms)", time.Since(frozeAt).Round(time.Millisecond))
	if r := b.obs.lastReason(); !strings.Contains(r, "self-check") {
		t.Fatalf("resubscribe reason %q, want a self-check failure", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	must(t, b.node.WaitReady(ctx))
	before := countTicks(b.nsp)
	poll.For(t, 5*time.Second, "ticks after resubscribing", func() bool { return countTicks(b.nsp) > before+3 })
	if b.obs.get("error:subscriber") == 0 {
		t.Fatalf("observer: %v", b.obs.counts)
	}
}

func TestNodesRegistry(t *testing.T) {
	_, client := startRedis(t)
	a := startNode(t, client, Options{}, "/")
	b := startNode(t, client, Options{}, "/chat")
	ctx := context.Background()
	poll.For(t, 3*time.Second, "two ready nodes", func() bool {
		nodes, err := a.node.Nodes(ctx)
		return err == nil && len(nodes) == 2 && nodes[0].Ready && nodes[1].Ready
	})
	nodes, _ := a.node.Nodes(ctx)
	for _, n := range nodes {
		if n.UID == b.node.UID() && (len(n.Namespaces) != 1 || n.Namespaces[0] != "/chat" || n.PID == 0 || n.LastSeen.IsZero() || !n.Ready) {
			t.Fatalf("b's entry %+v", n)
		}
	}
	// a node that stops heartbeating (here: an entry last seen long ago) drops out
	keys := a.node.registryKeys()
	must(t, client.ZAdd(ctx, keys[0], redisZ(1, "ghost")).Err())
	must(t, client.HSet(ctx, keys[1], "ghost", `{"uid":"ghost"}`).Err())
	nodes, _ = a.node.Nodes(ctx)
	for _, n := range nodes {
		if n.UID == "ghost" {
			t.Fatal("stale node listed")
		}
	}
	poll.For(t, 3*time.Second, "ghost pruned by a heartbeat", func() bool {
		return client.HExists(ctx, keys[1], "ghost").Val() == false
	})
	// Close removes the entry at once
	must(t, b.node.Close())
	nodes, _ = a.node.Nodes(ctx)
	if len(nodes) != 1 || nodes[0].UID != a.node.UID() {
		t.Fatalf("after close: %+v", nodes)
	}
	if err := b.node.Ready(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ready after Close = %v", err)
	}
	must(t, b.node.Close()) // twice is fine
	if err := b.node.Factory()(newTestNsp("/x")).Init(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Init after Close = %v", err)
	}
	// garbage in the hash is skipped
	must(t, client.ZAdd(ctx, keys[0], redisZ(float64(time.Now().UnixMilli()+60000), "junk")).Err())
	must(t, client.HSet(ctx, keys[1], "junk", `not json`).Err())
	nodes, err := a.node.Nodes(ctx)
	if err != nil || len(nodes) != 1 {
		t.Fatalf("with junk: %+v %v", nodes, err)
	}
}

// Messages written by other producers: the emitter vectors of §3.2, legacy
// requests and garbage.
func TestForeignMessages(t *testing.T) {
	_, client := startRedis(t)
	b := startNode(t, client, Options{}, "/")
	chat := newTestNsp("/chat")
	chatAd := b.node.Factory()(chat).(*Adapter)
	chat.ad = chatAd
	ctx := context.Background()
	must(t, chatAd.Init(ctx))
	b.nsp.connect("b1", "room1", "a")
	b.nsp.connect("b2", "c")
	chat.connect("c1")
	pub := func(channel, hexMsg string) {
		raw, err := hex.DecodeString(hexMsg)
		must(t, err)
		must(t, client.Publish(ctx, channel, raw).Err())
	}
	pub("socket.io#/#", "93a7656d697474657283a47479706502a46461746192a2657601a36e7370a12f83a5726f6f6d7390a5666c61677380a665786365707490")
	waitDeliveries(t, b.nsp, []string{`b1 2["ev",1]`, `b2 2["ev",1]`})
	b.nsp.reset()
	pub("socket.io#/#room1#", "93a7656d697474657283a47479706502a46461746192a26576a172a36e7370a12f83a5726f6f6d7391a5726f6f6d31a5666c61677380a665786365707490")
	waitDeliveries(t, b.nsp, []string{`b1 2["ev","r"]`})
	b.nsp.reset()
	pub("socket.io#/#", "93a7656d697474657283a47479706502a46461746191a26576a36e7370a12f83a5726f6f6d7392a161a162a5666c61677382a8766f6c6174696c65c3a8636f6d7072657373c3a665786365707491a163")
	waitDeliveries(t, b.nsp, []string{`b1 2["ev"]`})
	b.nsp.reset()
	pub("socket.io#/chat#", "93a7656d697474657283a47479706502a46461746192a26576c0a36e7370a52f6368617483a5726f6f6d7390a5666c61677380a665786365707490")
	waitDeliveries(t, chat, []string{`c1 2/chat,["ev",null]`})
	waitDeliveries(t, b.nsp, nil)
	pub("socket.io#/#", "93a7656d697474657283a47479706502a46461746192a362696ec402deada36e7370a12f83a5726f6f6d7390a5666c61677380a665786365707490")
	waitDeliveries(t, b.nsp, []string{`b1 51-["bin",{"_placeholder":true,"num":0}]`, `b2 51-["bin",{"_placeholder":true,"num":0}]`})
	b.nsp.reset()
	// a room this node does not have, another namespace's packet, our own uid, garbage
	pub("socket.io#/#nobody#", "93a7656d697474657283a47479706502a46461746192a26576a172a36e7370a12f83a5726f6f6d7391a5726f6f6d31a5666c61677380a665786365707490")
	pub("socket.io#/#", "93a7656d697474657283a47479706502a46461746192a26576c0a36e7370a52f6368617483a5726f6f6d7390a5666c61677380a665786365707490")
	own, _ := hex.DecodeString("93a6" + hex.EncodeToString([]byte(b.node.UID())) + "83a47479706502a46461746192a2657601a36e7370a12f83a5726f6f6d7390a5666c61677380a665786365707490")
	must(t, client.Publish(ctx, "socket.io#/#", own).Err())
	must(t, client.Publish(ctx, "socket.io#/#", "\xc1garbage").Err())
	must(t, client.Publish(ctx, "socket.io-request#/#", "{not json").Err())
	must(t, client.Publish(ctx, "socket.io-response#/#", "\x91").Err())
	waitDeliveries(t, b.nsp, nil)
	poll.For(t, 2*time.Second, "decode errors counted", func() bool { return b.obs.get("error:decode") >= 3 })

	// emitter room requests and serverSideEmit
	must(t, client.Publish(ctx, "socket.io-request#/#", `{"type":2,"opts":{"rooms":["room1"],"except":[]},"rooms":["room5"]}`).Err())
	poll.For(t, 2*time.Second, "emitter join", func() bool { return b.ad.HasRoom("room5") && len(b.ad.SocketRooms("b1")) == 4 })
	must(t, client.Publish(ctx, "socket.io-request#/#", `{"type":3,"opts":{"rooms":[],"except":[]},"rooms":["room5"]}`).Err())
	poll.For(t, 2*time.Second, "emitter leave", func() bool { return !b.ad.HasRoom("room5") })
	must(t, client.Publish(ctx, "socket.io-request#/#", `{"uid":"emitter","type":6,"data":["hello",{"z":1}]}`).Err())
	poll.For(t, 2*time.Second, "emitter serverSideEmit", func() bool {
		b.nsp.mu.Lock()
		defer b.nsp.mu.Unlock()
		return len(b.nsp.sse) == 1 && b.nsp.sse[0][0] == "hello"
	})

	// legacy single-socket requests get {"requestId"} on the response channel
	resp := client.Subscribe(ctx, "socket.io-response#/#")
	defer resp.Close()
	_, err := resp.Receive(ctx)
	must(t, err)
	must(t, client.Publish(ctx, "socket.io-request#/#", `{"uid":"old","requestId":"L1","type":2,"sid":"b2","room":"legacy"}`).Err())
	msg, err := resp.ReceiveMessage(ctx)
	must(t, err)
	if msg.Payload != `{"requestId":"L1"}` || !b.ad.HasRoom("legacy") {
		t.Fatalf("legacy join: %q", msg.Payload)
	}
	must(t, client.Publish(ctx, "socket.io-request#/#", `{"uid":"old","requestId":"L2","type":3,"sid":"b2","room":"legacy"}`).Err())
	msg, err = resp.ReceiveMessage(ctx)
	must(t, err)
	if msg.Payload != `{"requestId":"L2"}` || b.ad.HasRoom("legacy") {
		t.Fatalf("legacy leave: %q", msg.Payload)
	}
	must(t, client.Publish(ctx, "socket.io-request#/#", `{"uid":"old","requestId":"L0","type":4,"sid":"nobody","close":true}`).Err())
	must(t, client.Publish(ctx, "socket.io-request#/#", `{"uid":"old","requestId":"L3","type":4,"sid":"b2","close":true}`).Err())
	msg, err = resp.ReceiveMessage(ctx)
	must(t, err)
	if msg.Payload != `{"requestId":"L3"}` {
		t.Fatalf("legacy disconnect: %q", msg.Payload)
	}
	// a type 0 request from a Node server
	must(t, client.Publish(ctx, "socket.io-request#/#", `{"uid":"old","requestId":"S0","type":0,"rooms":["a"]}`).Err())
	msg, err = resp.ReceiveMessage(ctx)
	must(t, err)
	if msg.Payload != `{"requestId":"S0","sockets":["b1"]}` {
		t.Fatalf("sockets response: %q", msg.Payload)
	}
	// a response nobody waits for is ignored
	must(t, client.Publish(ctx, "socket.io-response#/#", `{"requestId":"nope","sockets":[]}`).Err())
	must(t, chatAd.Close())
	must(t, chatAd.Close())
}
