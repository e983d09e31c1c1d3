package redisadapter

import (
	"context"
	"reflect"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/adapter"
	"github.com/tradewire/tradewire/internal/testutil/poll"
	"github.com/tradewire/tradewire/parser"
)

func TestShardedCluster(t *testing.T) {
	cluster := startCluster(t)
	for _, mode := range []SubscriptionMode{SubscriptionStatic, SubscriptionDynamic, SubscriptionDynamicPrivate} {
		t.Run(string(mode), func(t *testing.T) {
			opts := Options{Sharded: true, SubscriptionMode: mode, KeyPrefix: "p-" + string(mode)}
			shardedSuite(t, cluster.client(t), cluster.client(t), opts)
		})
	}
	// the classic adapter on a cluster: PUBLISH reaches every node, and
	// the server count sums PUBSUB NUMSUB over the nodes
	t.Run("classic", func(t *testing.T) {
		ctx := context.Background()
		a := startNode(t, cluster.client(t), Options{KeyPrefix: "classic"}, "/")
		b := startNode(t, cluster.client(t), Options{KeyPrefix: "classic"}, "/")
		b.nsp.connect("b1", "r")
		poll.For(t, 5*time.Second, "two servers", func() bool { return a.ad.ServerCount(ctx) == 2 })
		must(t, a.ad.Broadcast(event(`["c"]`), &adapter.BroadcastOptions{Rooms: []string{"r"}}))
		waitDeliveries(t, b.nsp, []string{`b1 2["c"]`})
		// The server count behind a request sums PUBSUB NUMSUB over the
		// masters: while a pub/sub connection is being re-established (a
		// loaded machine) it can read one server for a moment, and the
		// request then asks nobody. Ask again until b answers.
		var infos []adapter.SocketInfo
		var err error
		if !poll.Check(5*time.Second, func() bool {
			infos, err = a.ad.FetchSockets(ctx, &adapter.BroadcastOptions{})
			return err == nil && len(infos) == 1
		}) {
			t.Fatalf("fetch %v %v", infos, err)
		}
		nodes, err := a.node.Nodes(ctx)
		if err != nil || len(nodes) < 2 {
			t.Fatalf("nodes on a cluster: %v %v", nodes, err)
		}
	})
}

// Sharded pub/sub also works on a standalone Redis 7 (one connection).
func TestShardedStandalone(t *testing.T) {
	srv, client := startRedis(t)
	shardedSuite(t, client, newClient(t, srv.Addr), Options{Sharded: true})
}

func shardedSuite(t *testing.T, ca, cb redis.UniversalClient, opts Options) {
	ctx := context.Background()
	a := startNode(t, ca, opts, "/")
	b := startNode(t, cb, opts, "/")
	a.nsp.connect("a1", "r1")
	a.nsp.connect("a2", "r2")
	b.nsp.connect("b1", "r1")
	b.nsp.connect("b2", "r1", "r2")
	sid := "AAAAAAAAAAAAAAAAAAAA" // looks like a socket id: 20 characters
	b.nsp.connect(sid)
	if n := a.ad.ServerCount(ctx); n != 2 {
		t.Fatalf("ServerCount = %d", n)
	}
	if opts.SubscriptionMode != SubscriptionStatic {
		// room channel subscriptions of both nodes are in place once Redis
		// counts them (subscribing is asynchronous)
		poll.For(t, 5*time.Second, "room channels subscribed", func() bool {
			n, err := a.node.numSub(ctx, a.ad.roomChannel("r1"))
			return err == nil && n == 2
		})
		n, _ := a.node.numSub(ctx, a.ad.roomChannel(sid))
		want := 0
		if opts.SubscriptionMode == SubscriptionDynamicPrivate {
			want = 1
		}
		poll.For(t, 5*time.Second, "socket-id room channel", func() bool {
			n, _ = a.node.numSub(ctx, a.ad.roomChannel(sid))
			return n == want
		})
	}
	must(t, a.node.WaitReady(ctx))
	if _, ok := ca.(*redis.ClusterClient); ok {
		// one pub/sub connection per slot in use, each with its own self-check
		a.node.mu.Lock()
		conns := len(a.node.conns)
		a.node.mu.Unlock()
		if conns < 2 {
			t.Fatalf("%d pub/sub connections on a cluster", conns)
		}
	}

	const ev = `2["ev",1]`
	cases := []struct {
		name         string
		opts         adapter.BroadcastOptions
		wantA, wantB []string
	}{
		{"all", adapter.BroadcastOptions{}, []string{"a1", "a2"}, []string{"b1", "b2", sid}},
		{"one room", adapter.BroadcastOptions{Rooms: []string{"r1"}}, []string{"a1"}, []string{"b1", "b2"}},
		{"socket id room", adapter.BroadcastOptions{Rooms: []string{sid}}, nil, []string{sid}},
		{"two rooms except", adapter.BroadcastOptions{Rooms: []string{"r1", "r2"}, Except: []string{"r2"}}, []string{"a1"}, []string{"b1"}},
	}
	for _, c := range cases {
		a.nsp.reset()
		b.nsp.reset()
		must(t, a.ad.Broadcast(event(`["ev",1]`), &c.opts))
		var wa, wb []string
		for _, s := range c.wantA {
			wa = append(wa, s+" "+ev)
		}
		for _, s := range c.wantB {
			wb = append(wb, s+" "+ev)
		}
		waitDeliveries(t, a.nsp, wa)
		waitDeliveries(t, b.nsp, wb)
	}
	// binary goes as msgpack
	b.nsp.reset()
	p := &parser.Packet{Type: parser.BinaryEvent, Nsp: "/", Data: []byte(`["bin",{"_placeholder":true,"num":0}]`), Attachments: [][]byte{{1, 2}}}
	must(t, a.ad.Broadcast(p, &adapter.BroadcastOptions{Rooms: []string{"r2"}}))
	waitDeliveries(t, b.nsp, []string{`b2 51-["bin",{"_placeholder":true,"num":0}]`})

	infos, err := a.ad.FetchSockets(ctx, &adapter.BroadcastOptions{Rooms: []string{"r2"}})
	must(t, err)
	var ids []string
	for _, s := range infos {
		ids = append(ids, s.ID)
	}
	sort.Strings(ids)
	if !reflect.DeepEqual(ids, []string{"a2", "b2"}) {
		t.Fatalf("fetch %v", ids)
	}
	ids, err = b.ad.Sockets(ctx, []string{"r1"})
	must(t, err)
	sort.Strings(ids)
	if !reflect.DeepEqual(ids, []string{"a1", "b1", "b2"}) {
		t.Fatalf("sockets %v", ids)
	}
	rooms, err := b.ad.AllRooms(ctx)
	must(t, err)
	if !slices.Contains(rooms, "a2") || !slices.Contains(rooms, "r2") {
		t.Fatalf("rooms %v", rooms)
	}

	b.nsp.mu.Lock()
	b.nsp.sseReply = "pong"
	b.nsp.mu.Unlock()
	var replies []any
	must(t, a.ad.ServerSideEmit(ctx, []any{"ping", []byte{7}}, func(arg any) { replies = append(replies, arg) }))
	if !reflect.DeepEqual(replies, []any{"pong"}) {
		t.Fatalf("replies %v", replies)
	}
	b.nsp.mu.Lock()
	if len(b.nsp.sse) != 1 || !reflect.DeepEqual(b.nsp.sse[0], []any{"ping", []byte{7}}) {
		t.Fatalf("sse %v", b.nsp.sse)
	}
	b.nsp.mu.Unlock()
	must(t, a.ad.ServerSideEmit(ctx, []any{"no-ack"}, nil))
	poll.For(t, 3*time.Second, "emit without ack", func() bool {
		b.nsp.mu.Lock()
		defer b.nsp.mu.Unlock()
		return len(b.nsp.sse) == 2
	})

	var mu sync.Mutex
	var counts []int
	var acks []string
	must(t, a.ad.BroadcastWithAck(event(`["ask"]`), &adapter.BroadcastOptions{Rooms: []string{"r1"}, Flags: adapter.Flags{Timeout: 2000}},
		func(n int) { mu.Lock(); counts = append(counts, n); mu.Unlock() },
		func(args []any) { mu.Lock(); acks = append(acks, args[0].(string)); mu.Unlock() }))
	poll.For(t, 3*time.Second, "counts and acks", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(counts) == 2 && len(acks) == 3
	})

	a.ad.AddSockets(&adapter.BroadcastOptions{Rooms: []string{"r2"}}, []string{"late"})
	poll.For(t, 3*time.Second, "remote join", func() bool { return slices.Contains(b.ad.SocketRooms("b2"), "late") })
	if opts.SubscriptionMode != SubscriptionStatic {
		poll.For(t, 5*time.Second, "joined room channel", func() bool {
			n, err := a.node.numSub(ctx, a.ad.roomChannel("late"))
			return err == nil && n == 2
		})
	}
	b.nsp.reset()
	must(t, a.ad.Broadcast(event(`["ev",1]`), &adapter.BroadcastOptions{Rooms: []string{"late"}}))
	waitDeliveries(t, b.nsp, []string{"b2 " + ev})
	a.ad.DelSockets(&adapter.BroadcastOptions{}, []string{"late"})
	poll.For(t, 3*time.Second, "remote leave", func() bool { return !b.ad.HasRoom("late") })
	if opts.SubscriptionMode != SubscriptionStatic {
		poll.For(t, 5*time.Second, "room channel dropped", func() bool {
			n, err := a.node.numSub(ctx, a.ad.roomChannel("late"))
			return err == nil && n == 0
		})
	}
	s, _ := b.nsp.LocalSocket("b1")
	a.ad.DisconnectSockets(&adapter.BroadcastOptions{Rooms: []string{"b1"}}, false)
	poll.For(t, 3*time.Second, "remote disconnect", func() bool { return s.(*testSocket).disconnected.Load() })
	must(t, b.ad.Close())
	if err := a.node.Ready(); err != nil {
		t.Fatalf("Ready: %v", err)
	}
}
