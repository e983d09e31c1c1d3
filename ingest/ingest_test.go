package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/internal/testutil/poll"
	"github.com/tradewire/tradewire/internal/testutil/redistest"
	"github.com/tradewire/tradewire/trading"
)

type recorder struct {
	mu     sync.Mutex
	events []string
	block  chan struct{} // when set, Event blocks until closed
	fail   error
}

func (r *recorder) Event(ctx context.Context, ev *trading.DomainEvent) error {
	if r.block != nil {
		<-r.block
		return errors.New("crashed")
	}
	if ev.Type == "" {
		return fmt.Errorf("%w: no type", trading.ErrInvalidEvent)
	}
	if r.fail != nil {
		return r.fail
	}
	r.mu.Lock()
	r.events = append(r.events, ev.ID+"/"+ev.UserID)
	r.mu.Unlock()
	return nil
}

func (r *recorder) Emit(ctx context.Context, id string, rooms, except []string, event string, data json.RawMessage) error {
	r.mu.Lock()
	r.events = append(r.events, "emit:"+event+":"+string(data))
	r.mu.Unlock()
	return nil
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

func add(t *testing.T, rdb *redis.Client, field, value string) {
	t.Helper()
	if err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: "in", Values: []any{field, value}}).Err(); err != nil {
		t.Fatal(err)
	}
}

func start(t *testing.T, rdb *redis.Client, h Handler, name string) context.CancelFunc {
	t.Helper()
	c, err := New(rdb, h, Options{Stream: "in", Consumer: name, ClaimIdle: 500 * time.Millisecond, Block: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

func pending(t *testing.T, rdb *redis.Client) int64 {
	p, err := rdb.XPending(context.Background(), "in", "tradewire").Result()
	if err != nil {
		return -1
	}
	return p.Count
}

func TestEachEventOnceAcrossNodesWithDedup(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	a, b := &recorder{}, &recorder{}
	start(t, rdb, a, "node-a")
	start(t, rdb, b, "node-b")
	for i := 0; i < 50; i++ {
		add(t, rdb, "event", fmt.Sprintf(`{"type":"notification","id":"e%d","userId":"u%d"}`, i, i))
	}
	add(t, rdb, "event", `{"type":"notification","id":"e7","userId":"u7"}`) // a backend retry
	add(t, rdb, "emit", `{"rooms":["r"],"event":"hello","data":{"x":1}}`)
	add(t, rdb, "event", `not json`)
	add(t, rdb, "other", `x`)
	poll.Until(t, "all processed", func() bool { return len(a.got())+len(b.got()) == 51 && pending(t, rdb) == 0 })
	seen := map[string]int{}
	for _, e := range append(a.got(), b.got()...) {
		seen[e]++
	}
	for e, n := range seen {
		if n != 1 {
			t.Fatalf("%s broadcast %d times", e, n)
		}
	}
	if seen[`emit:hello:{"x":1}`] != 1 || seen["e7/u7"] != 1 {
		t.Fatalf("missing entries: %v", seen)
	}
}

func TestPendingEventsOfADeadNodeAreClaimed(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	dead := &recorder{block: make(chan struct{})}
	stopDead := start(t, rdb, dead, "node-dead")
	add(t, rdb, "event", `{"type":"notification","id":"x1","userId":"u1"}`)
	poll.Until(t, "the dead node to take the entry", func() bool { return pending(t, rdb) == 1 })
	// The node "dies" holding the entry: it never acks.
	close(dead.block)
	stopDead()
	alive := &recorder{}
	start(t, rdb, alive, "node-alive")
	poll.Until(t, "the entry to be claimed and broadcast", func() bool { return len(alive.got()) == 1 && pending(t, rdb) == 0 })
	if alive.got()[0] != "x1/u1" {
		t.Fatalf("got %v", alive.got())
	}
}

func TestFailedBroadcastStaysPendingAndInvalidIsDropped(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	r := &recorder{fail: errors.New("redis adapter down")}
	stop := start(t, rdb, r, "n1")
	add(t, rdb, "event", `{"type":"notification","id":"f1","userId":"u1"}`)
	add(t, rdb, "event", `{"id":"bad"}`) // invalid: no type
	poll.Until(t, "one pending, one dropped", func() bool { return pending(t, rdb) == 1 })
	stop()
	r2 := &recorder{}
	start(t, rdb, r2, "n1") // same node restarted: re-reads its own pending entries
	poll.Until(t, "retry", func() bool { return len(r2.got()) == 1 && pending(t, rdb) == 0 })
}

func TestOptionsValidationAndRedisDown(t *testing.T) {
	if _, err := New(nil, &recorder{}, Options{}); err == nil {
		t.Fatal("no error without stream and consumer")
	}
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1})
	defer rdb.Close()
	r := &recorder{}
	start(t, rdb, r, "n1")
	srv.Kill()
	time.Sleep(300 * time.Millisecond)
	srv.Restart()
	add(t, rdb, "event", `{"type":"notification","id":"after","userId":"u1"}`)
	poll.Until(t, "consumption after a Redis restart", func() bool { return len(r.got()) == 1 })
}

// TestDepartedConsumersAreRemoved: a node that left (its consumer idle, its
// pending entries claimed) is removed from the group; the group size is
// reported; the live consumer stays.
func TestDepartedConsumersAreRemoved(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	dead := &recorder{block: make(chan struct{})}
	stopDead := start(t, rdb, dead, "node-gone")
	add(t, rdb, "event", `{"type":"notification","id":"g1","userId":"u1"}`)
	poll.Until(t, "the departing node to take the entry", func() bool { return pending(t, rdb) == 1 })
	close(dead.block)
	stopDead()
	var mu sync.Mutex
	sizes := []int{}
	alive := &recorder{}
	c, err := New(rdb, alive, Options{Stream: "in", Consumer: "node-alive", ClaimIdle: 500 * time.Millisecond, Block: 100 * time.Millisecond,
		OnGroupSize: func(n int) { mu.Lock(); sizes = append(sizes, n); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	poll.Until(t, "the departed consumer to be removed", func() bool {
		cs, err := rdb.XInfoConsumers(context.Background(), "in", "tradewire").Result()
		return err == nil && len(cs) == 1 && cs[0].Name == "node-alive"
	})
	if got := alive.got(); len(got) != 1 || got[0] != "g1/u1" {
		t.Errorf("claimed %v, want the departed node's entry", got)
	}
	poll.Until(t, "a group size of 1", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(sizes) > 0 && sizes[len(sizes)-1] == 1
	})
}

// TestHandlerDedups: with HandlerDedups the consumer sets no marks of its
// own, and an entry the handler reports as a duplicate is acknowledged.
func TestHandlerDedups(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	r := &recorder{fail: fmt.Errorf("seen: %w", trading.ErrDuplicate)}
	c, err := New(rdb, r, Options{Stream: "in", Consumer: "n1", HandlerDedups: true, Block: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	add(t, rdb, "event", `{"type":"notification","id":"d1","userId":"u1"}`)
	poll.Until(t, "the duplicate acknowledged", func() bool {
		n, _ := rdb.XLen(context.Background(), "in").Result()
		return n == 1 && pending(t, rdb) == 0
	})
	if n, _ := rdb.Exists(context.Background(), "tradewire:dedup:d1").Result(); n != 0 {
		t.Error("the consumer set a mark of its own")
	}
}
