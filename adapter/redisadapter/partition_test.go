package redisadapter

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/adapter"
	"github.com/tradewire/tradewire/adapter/redisadapter/internal/wire"
	"github.com/tradewire/tradewire/internal/testutil/poll"
	"github.com/tradewire/tradewire/recovery"
)

// userPart partitions broadcasts to rooms "u:<id>" by user.
func userPart(opts *adapter.BroadcastOptions) string {
	if len(opts.Rooms) == 1 && strings.HasPrefix(opts.Rooms[0], "u:") {
		return opts.Rooms[0][2:]
	}
	return ""
}

func recoveryOpts(t *testing.T, client redis.UniversalClient, sharded bool) Options {
	store, err := recovery.New(client, recovery.Options{Window: time.Minute, Partition: userPart, ShardedPublish: sharded})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return Options{Sharded: sharded, Recovery: adapter.Options{RecoveryWindow: time.Minute, Store: store,
		Recoverable: func(o *adapter.BroadcastOptions) bool { return userPart(o) != "" }}}
}

// Recoverable broadcasts in sharded mode travel on the user's partition
// channel, which a node subscribes while it has a room of the user; a
// second broadcast with the same event id is refused by Redis.
func TestShardedPartitionChannelAndOnce(t *testing.T) {
	for _, sharded := range []bool{true, false} {
		name := "classic"
		if sharded {
			name = "sharded"
		}
		t.Run(name, func(t *testing.T) {
			_, ca := startRedis(t)
			a := startNode(t, ca, recoveryOpts(t, ca, sharded), "/")
			b := startNode(t, ca, recoveryOpts(t, ca, sharded), "/")
			a.nsp.connect("a1", "u:1")
			b.nsp.connect("b1", "u:1")
			b.nsp.connect("b2", "u:2")
			if sharded {
				if _, ok := a.ad.partRooms["1"]; !ok {
					t.Fatalf("node a does not subscribe user 1's partition: %v", a.ad.partRooms)
				}
				poll.For(t, 5*time.Second, "partition channels subscribed", func() bool {
					n, err := ca.PubSubShardNumSub(context.Background(), a.ad.partitionChannel("1")).Result()
					return err == nil && n[a.ad.partitionChannel("1")] == 2
				})
			}
			once := func(id, data string) error {
				return a.ad.Broadcast(event(data), &adapter.BroadcastOptions{Rooms: []string{"u:1"}, Flags: adapter.Flags{Strict: true, Once: id}})
			}
			must(t, once("e1", `["t",1]`))
			if err := once("e1", `["t",1]`); !errors.Is(err, adapter.ErrDuplicate) {
				t.Fatalf("second broadcast of e1: %v, want ErrDuplicate", err)
			}
			must(t, once("e2", `["t",2]`))
			must(t, b.ad.Broadcast(event(`["t",3]`), &adapter.BroadcastOptions{Rooms: []string{"u:2"}}))
			poll.For(t, 5*time.Second, "deliveries", func() bool {
				return len(a.nsp.deliveries()) == 2 && len(b.nsp.deliveries()) == 3
			})
			time.Sleep(100 * time.Millisecond)
			got := strings.Join(b.nsp.deliveries(), "|")
			for _, want := range []string{`b1 2["t",1,"`, `b1 2["t",2,"`, `b2 2["t",3,"`} {
				if !strings.Contains(got, want) {
					t.Errorf("node b deliveries %s lack %s", got, want)
				}
			}
			if n := len(a.nsp.deliveries()); n != 2 {
				t.Errorf("node a got %d deliveries, want 2: %v", n, a.nsp.deliveries())
			}
			// Leaving the user's last room drops the partition subscription.
			a.ad.DelAll("a1")
			if sharded {
				if _, ok := a.ad.partRooms["1"]; ok {
					t.Error("partition still subscribed after the last room left")
				}
			}
			must(t, a.ad.Close())
		})
	}
}

// TestEmitterBroadcastsAreNotRecorded: a broadcast published by
// @socket.io/redis-emitter (another uid, plain PUBLISH) to a user's room is
// delivered but not recorded for recovery, as docs/API.md section 9 says:
// no node records it, so a restore never replays it (and never replays it
// twice).
func TestEmitterBroadcastsAreNotRecorded(t *testing.T) {
	_, ca := startRedis(t)
	a := startNode(t, ca, recoveryOpts(t, ca, false), "/")
	a.nsp.connect("a1", "u:1")
	b, err := wire.EncodeBroadcast("emitter", event(`["trade:executed",{"n":1}]`), &adapter.BroadcastOptions{Rooms: []string{"u:1"}})
	must(t, err)
	must(t, ca.Publish(context.Background(), a.ad.channel+"u:1#", b).Err())
	waitDeliveries(t, a.nsp, []string{`a1 2["trade:executed",{"n":1}]`})
	keys, err := ca.Keys(context.Background(), "tradewire:rec:s:*").Result()
	must(t, err)
	if len(keys) != 0 {
		t.Fatalf("the emitter's broadcast was recorded: %v", keys)
	}
}
