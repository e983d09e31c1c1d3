package redisadapter

import (
	"context"
	"errors"
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

// twoNodes starts nodes A and B on one Redis with sockets:
// A: a1 {r1}, a2 {r2};  B: b1 {r1}, b2 {r1, r2}, b3 {}.
func twoNodes(t *testing.T, optsA, optsB Options) (*testNode, *testNode, *redis.Client) {
	_, client := startRedis(t)
	a := startNode(t, client, optsA, "/")
	b := startNode(t, client, optsB, "/")
	a.nsp.connect("a1", "r1")
	a.nsp.connect("a2", "r2")
	b.nsp.connect("b1", "r1")
	b.nsp.connect("b2", "r1", "r2")
	b.nsp.connect("b3")
	return a, b, client
}

func TestBroadcastTwoNodes(t *testing.T) {
	a, b, _ := twoNodes(t, Options{}, Options{})
	if got := a.ad.ServerCount(context.Background()); got != 2 {
		t.Fatalf("ServerCount = %d, want 2", got)
	}
	const ev = `2["ev",1]`
	cases := []struct {
		name       string
		opts       adapter.BroadcastOptions
		wantA      []string
		wantB      []string
		fromB      bool
		packetData string
	}{
		{"all", adapter.BroadcastOptions{}, []string{"a1", "a2"}, []string{"b1", "b2", "b3"}, false, `["ev",1]`},
		{"one room", adapter.BroadcastOptions{Rooms: []string{"r1"}}, []string{"a1"}, []string{"b1", "b2"}, false, `["ev",1]`},
		{"two rooms except", adapter.BroadcastOptions{Rooms: []string{"r1", "r2"}, Except: []string{"r2"}}, []string{"a1"}, []string{"b1"}, false, `["ev",1]`},
		{"except socket", adapter.BroadcastOptions{Except: []string{"b2", "a1"}}, []string{"a2"}, []string{"b1", "b3"}, false, `["ev",1]`},
		{"socket room", adapter.BroadcastOptions{Rooms: []string{"b3"}}, nil, []string{"b3"}, false, `["ev",1]`},
		{"unknown room", adapter.BroadcastOptions{Rooms: []string{"nobody"}}, nil, nil, false, `["ev",1]`},
		{"local", adapter.BroadcastOptions{Flags: adapter.Flags{Local: true}}, []string{"a1", "a2"}, nil, false, `["ev",1]`},
		{"from B to room", adapter.BroadcastOptions{Rooms: []string{"r2"}}, []string{"a2"}, []string{"b2"}, true, `["ev",1]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a.nsp.reset()
			b.nsp.reset()
			from := a
			if c.fromB {
				from = b
			}
			if err := from.ad.Broadcast(event(c.packetData), &c.opts); err != nil {
				t.Fatal(err)
			}
			var wa, wb []string
			for _, s := range c.wantA {
				wa = append(wa, s+" "+ev)
			}
			for _, s := range c.wantB {
				wb = append(wb, s+" "+ev)
			}
			waitDeliveries(t, a.nsp, wa)
			waitDeliveries(t, b.nsp, wb)
		})
	}

	t.Run("binary and volatile", func(t *testing.T) {
		a.nsp.reset()
		b.nsp.reset()
		p := &parser.Packet{Type: parser.BinaryEvent, Nsp: "/", Data: []byte(`["bin",{"_placeholder":true,"num":0},{"x":{"_placeholder":true,"num":1}}]`),
			Attachments: [][]byte{{1, 2, 3}, {0xff}}}
		opts := adapter.BroadcastOptions{Rooms: []string{"r2"}, Flags: adapter.Flags{Volatile: true}}
		must(t, a.ad.Broadcast(p, &opts))
		text := `52-["bin",{"_placeholder":true,"num":0},{"x":{"_placeholder":true,"num":1}}]`
		waitDeliveries(t, b.nsp, []string{"b2 " + text})
		b.nsp.mu.Lock()
		d := b.nsp.delivered[0]
		b.nsp.mu.Unlock()
		if !reflect.DeepEqual(d.att, [][]byte{{1, 2, 3}, {0xff}}) || !d.flags.Volatile {
			t.Fatalf("attachments %x flags %+v", d.att, d.flags)
		}
	})
	if a.obs.get("publish:broadcast") == 0 || b.obs.get("receive:broadcast") == 0 {
		t.Fatalf("observer counts: %v %v", a.obs.counts, b.obs.counts)
	}
}

func TestRequestsTwoNodes(t *testing.T) {
	a, b, _ := twoNodes(t, Options{}, Options{PublishOnSpecificResponseChannel: true})
	ctx := context.Background()

	t.Run("fetch sockets", func(t *testing.T) {
		infos, err := a.ad.FetchSockets(ctx, &adapter.BroadcastOptions{Rooms: []string{"r1"}})
		must(t, err)
		var ids []string
		for _, s := range infos {
			ids = append(ids, s.ID)
			if s.ID == "b2" && (!reflect.DeepEqual(s.Rooms, []string{"b2", "r1", "r2"}) || s.Data.(map[string]any)["user"] != "u-b2" || s.Handshake.Headers["host"] != "test") {
				t.Fatalf("b2 = %+v", s)
			}
		}
		sort.Strings(ids)
		if !reflect.DeepEqual(ids, []string{"a1", "b1", "b2"}) {
			t.Fatalf("ids %v", ids)
		}
		local, err := a.ad.FetchSockets(ctx, &adapter.BroadcastOptions{Flags: adapter.Flags{Local: true}})
		if err != nil || len(local) != 2 {
			t.Fatalf("local fetch %v %v", local, err)
		}
	})
	t.Run("sockets and rooms", func(t *testing.T) {
		ids, err := b.ad.Sockets(ctx, []string{"r2"})
		must(t, err)
		sort.Strings(ids)
		if !reflect.DeepEqual(ids, []string{"a2", "b2"}) {
			t.Fatalf("sockets %v", ids)
		}
		if n, err := a.ad.RoomSize(ctx, "r1"); err != nil || n != 3 {
			t.Fatalf("RoomSize(r1) = %d, %v", n, err)
		}
		rooms, err := a.ad.AllRooms(ctx)
		must(t, err)
		sort.Strings(rooms)
		if !reflect.DeepEqual(rooms, []string{"a1", "a2", "b1", "b2", "b3", "r1", "r2"}) {
			t.Fatalf("rooms %v", rooms)
		}
	})
	t.Run("remote join leave disconnect", func(t *testing.T) {
		a.ad.AddSockets(&adapter.BroadcastOptions{Rooms: []string{"r1"}}, []string{"joined"})
		poll.For(t, 3*time.Second, "b1 and b2 join", func() bool {
			return slices.Contains(b.ad.SocketRooms("b1"), "joined") && slices.Contains(b.ad.SocketRooms("b2"), "joined")
		})
		if !slices.Contains(a.ad.SocketRooms("a1"), "joined") || slices.Contains(b.ad.SocketRooms("b3"), "joined") {
			t.Fatal("local join wrong")
		}
		a.ad.DelSockets(&adapter.BroadcastOptions{Except: []string{"b1"}}, []string{"joined"})
		poll.For(t, 3*time.Second, "b2 leaves", func() bool { return !slices.Contains(b.ad.SocketRooms("b2"), "joined") })
		if !slices.Contains(b.ad.SocketRooms("b1"), "joined") || slices.Contains(a.ad.SocketRooms("a1"), "joined") {
			t.Fatal("leave selected the wrong sockets")
		}
		s3, _ := b.nsp.LocalSocket("b3")
		a.ad.DisconnectSockets(&adapter.BroadcastOptions{Rooms: []string{"b3"}}, true)
		poll.For(t, 3*time.Second, "b3 disconnects", func() bool { return s3.(*testSocket).disconnected.Load() })
		if !s3.(*testSocket).closed.Load() {
			t.Fatal("close flag lost")
		}
		// local flag stays local
		b.ad.AddSockets(&adapter.BroadcastOptions{Flags: adapter.Flags{Local: true}}, []string{"onlyb"})
		time.Sleep(200 * time.Millisecond)
		if slices.Contains(a.ad.SocketRooms("a1"), "onlyb") || !slices.Contains(b.ad.SocketRooms("b1"), "onlyb") {
			t.Fatal("local AddSockets crossed nodes")
		}
		b.ad.DelSockets(&adapter.BroadcastOptions{Flags: adapter.Flags{Local: true}}, []string{"onlyb"})
		b.ad.DisconnectSockets(&adapter.BroadcastOptions{Rooms: []string{"nobody"}, Flags: adapter.Flags{Local: true}}, false)
	})
	t.Run("server side emit", func(t *testing.T) {
		must(t, a.ad.ServerSideEmit(ctx, []any{"hello", 1}, nil))
		poll.For(t, 3*time.Second, "B gets the emit", func() bool {
			b.nsp.mu.Lock()
			defer b.nsp.mu.Unlock()
			return len(b.nsp.sse) == 1 && reflect.DeepEqual(b.nsp.sse[0], []any{"hello", 1.0})
		})
		a.nsp.mu.Lock()
		if len(a.nsp.sse) != 0 {
			t.Fatal("sender got its own serverSideEmit")
		}
		a.nsp.mu.Unlock()
		b.nsp.mu.Lock()
		b.nsp.sseReply = map[string]any{"ok": true}
		b.nsp.mu.Unlock()
		var replies []any
		var mu sync.Mutex
		err := a.ad.ServerSideEmit(ctx, []any{"ping"}, func(arg any) {
			mu.Lock()
			replies = append(replies, arg)
			mu.Unlock()
		})
		must(t, err)
		if !reflect.DeepEqual(replies, []any{map[string]any{"ok": true}}) {
			t.Fatalf("replies %v", replies)
		}
	})
	t.Run("broadcast with ack", func(t *testing.T) {
		var mu sync.Mutex
		var counts []int
		var acks []string
		opts := adapter.BroadcastOptions{Rooms: []string{"r1"}, Flags: adapter.Flags{Timeout: 2000}}
		err := a.ad.BroadcastWithAck(event(`["ask"]`), &opts, func(n int) {
			mu.Lock()
			counts = append(counts, n)
			mu.Unlock()
		}, func(args []any) {
			mu.Lock()
			acks = append(acks, args[0].(string))
			mu.Unlock()
		})
		must(t, err)
		poll.For(t, 3*time.Second, "counts and acks", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(counts) == 2 && len(acks) == 3
		})
		mu.Lock()
		sort.Ints(counts)
		sort.Strings(acks)
		mu.Unlock()
		if !reflect.DeepEqual(counts, []int{1, 2}) || !reflect.DeepEqual(acks, []string{"ack-a1", "ack-b1", "ack-b2"}) {
			t.Fatalf("counts %v acks %v", counts, acks)
		}
		// zero recipients still report a count
		counts = nil
		err = a.ad.BroadcastWithAck(event(`["ask"]`), &adapter.BroadcastOptions{Rooms: []string{"nobody"}, Flags: adapter.Flags{Timeout: 500}},
			func(n int) { mu.Lock(); counts = append(counts, n); mu.Unlock() }, func([]any) {})
		must(t, err)
		poll.For(t, 3*time.Second, "zero counts", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return reflect.DeepEqual(counts, []int{0, 0})
		})
	})
}

// A subscriber that never answers makes requests time out with ErrTimeout.
func TestRequestTimeout(t *testing.T) {
	_, client := startRedis(t)
	a := startNode(t, client, Options{RequestsTimeout: 300 * time.Millisecond}, "/")
	ctx := context.Background()
	mute := client.Subscribe(ctx, "socket.io-request#/#")
	defer mute.Close()
	if _, err := mute.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	if n := a.ad.ServerCount(ctx); n != 2 {
		t.Fatalf("ServerCount %d", n)
	}
	start := time.Now()
	_, err := a.ad.FetchSockets(ctx, &adapter.BroadcastOptions{})
	if !errors.Is(err, adapter.ErrTimeout) {
		t.Fatalf("FetchSockets err = %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("timeout not applied")
	}
	if _, err := a.ad.AllRooms(ctx); !errors.Is(err, adapter.ErrTimeout) {
		t.Fatalf("AllRooms err = %v", err)
	}
	if _, err := a.ad.Sockets(ctx, nil); !errors.Is(err, adapter.ErrTimeout) {
		t.Fatalf("Sockets err = %v", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := a.ad.ServerSideEmit(cctx, []any{"x"}, func(any) {}); !errors.Is(err, adapter.ErrTimeout) {
		t.Fatalf("ServerSideEmit err = %v", err)
	}
}

// A single node answers cluster views locally, without waiting.
func TestSingleNode(t *testing.T) {
	_, client := startRedis(t)
	a := startNode(t, client, Options{}, "/")
	a.nsp.connect("s1", "room")
	ctx := context.Background()
	ids, err := a.ad.Sockets(ctx, nil)
	if err != nil || !reflect.DeepEqual(ids, []string{"s1"}) {
		t.Fatal(ids, err)
	}
	rooms, err := a.ad.AllRooms(ctx)
	sort.Strings(rooms)
	if err != nil || !reflect.DeepEqual(rooms, []string{"room", "s1"}) {
		t.Fatal(rooms, err)
	}
	infos, err := a.ad.FetchSockets(ctx, &adapter.BroadcastOptions{})
	if err != nil || len(infos) != 1 {
		t.Fatal(infos, err)
	}
	must(t, a.ad.ServerSideEmit(ctx, []any{"x"}, func(any) { t.Error("reply without other nodes") }))
	if a.ad.Node() != a.node || a.ad.Ready() != nil {
		t.Fatal("node accessors")
	}
}
