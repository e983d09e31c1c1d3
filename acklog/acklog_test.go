package acklog

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/internal/testutil/redistest"
	"github.com/tradewire/tradewire/internal/testutil/sioclient"
	"github.com/tradewire/tradewire/parser"
	"github.com/tradewire/tradewire/socketio"
)

// fixture: a Socket.IO server whose sockets subscribe to the ack log of
// user "u" with the device given in their auth.
type fixture struct {
	t    *testing.T
	rdb  *redis.Client
	log  *Log
	url  string
	mu   sync.Mutex
	subs map[string]*socketio.Socket
	errs chan error
}

func newFixture(t *testing.T) *fixture {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	f := &fixture{t: t, rdb: rdb, subs: map[string]*socketio.Socket{}, errs: make(chan error, 10)}
	f.log = New(rdb, Options{Poll: 10 * time.Millisecond, MaxLen: 5})
	sio := socketio.NewServer(socketio.Options{})
	nsp := sio.Of("/")
	nsp.OnConnection(func(s *socketio.Socket) {
		dev, _ := s.Auth()["device"].(string)
		err := f.log.Subscribe(context.Background(), s, "u", dev)
		f.errs <- err
		s.OnDisconnect(func(string) { f.log.Unsubscribe(s) })
	})
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", sio)
	hs := httptest.NewServer(mux)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.log.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; hs.Close(); _ = sio.Close() })
	f.url = hs.URL
	return f
}

func (f *fixture) dial(device string) *sioclient.Client {
	f.t.Helper()
	c, err := sioclient.Dial(f.url, sioclient.Options{Auth: map[string]any{"device": device}, ManualAcks: true})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = c.Close() })
	if err := <-f.errs; err != nil {
		f.t.Fatalf("subscribe: %v", err)
	}
	return c
}

// add appends an event as the record-and-publish script does.
func (f *fixture) add(n int) {
	f.t.Helper()
	d, _ := json.Marshal([]any{"trade:executed", map[string]int{"n": n}})
	if err := f.rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: f.log.Key("u"), Values: []any{Field, string(d)}}).Err(); err != nil {
		f.t.Fatal(err)
	}
}

func got(c *sioclient.Client) (ns, ids []int) {
	for _, e := range c.EventsNamed("trade:executed") {
		var p struct{ N int }
		_ = json.Unmarshal(e.Args[0], &p)
		ns, ids = append(ns, p.N), append(ids, e.AckID)
	}
	return ns, ids
}

func waitGot(t *testing.T, c *sioclient.Client, want []int) []int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ns, ids := got(c)
		if len(ns) >= len(want) {
			time.Sleep(100 * time.Millisecond)
			if ns, ids = got(c); !slices.Equal(ns, want) {
				t.Fatalf("got %v, want %v", ns, want)
			}
			return ids
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %v, want %v", ns, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPendingEventsAreResentUntilAcknowledged(t *testing.T) {
	f := newFixture(t)
	c1 := f.dial("phone")
	f.add(1)
	f.add(2)
	f.add(3)
	ids := waitGot(t, c1, []int{1, 2, 3})
	if err := c1.Ack(ids[0]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	_ = c1.Close()
	f.add(4)
	// The same device: 2 and 3 again (unacknowledged), then 4, in order.
	c2 := f.dial("phone")
	ids = waitGot(t, c2, []int{2, 3, 4})
	for _, id := range ids {
		_ = c2.Ack(id)
	}
	// Another device subscribing now starts with new events only.
	c3 := f.dial("tablet")
	f.add(5)
	waitGot(t, c3, []int{5})
	waitGot(t, c2, []int{2, 3, 4, 5})
	time.Sleep(100 * time.Millisecond)
	_ = c2.Close()
	c4 := f.dial("phone")
	waitGot(t, c4, []int{5}) // 5 was not acknowledged by the phone
}

func TestTrimmedPendingEventsAreDropped(t *testing.T) {
	f := newFixture(t)
	c1 := f.dial("d")
	for n := 1; n <= 3; n++ {
		f.add(n)
	}
	waitGot(t, c1, []int{1, 2, 3})
	_ = c1.Close()
	// The stream is trimmed under the phone's pending events.
	if err := f.rdb.XTrimMaxLen(context.Background(), f.log.Key("u"), 1).Err(); err != nil {
		t.Fatal(err)
	}
	c2 := f.dial("d")
	waitGot(t, c2, []int{3})
	pending, err := f.rdb.XPending(context.Background(), f.log.Key("u"), "d").Result()
	if err != nil || pending.Count != 1 {
		t.Fatalf("pending %+v %v, want only 3 left", pending, err)
	}
}

func TestSubscribeRefusesBadDeviceAndUnreachableRedis(t *testing.T) {
	f := newFixture(t)
	sio := socketio.NewServer(socketio.Options{})
	defer sio.Close()
	var s *socketio.Socket
	nsp := sio.Of("/")
	ready := make(chan struct{})
	nsp.OnConnection(func(x *socketio.Socket) { s = x; close(ready) })
	hs := httptest.NewServer(sio)
	defer hs.Close()
	c, err := sioclient.Dial(hs.URL, sioclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-ready
	for _, d := range []string{"", "a\x01b", string(make([]byte, 65))} {
		if err := f.log.Subscribe(context.Background(), s, "u", d); err == nil {
			t.Errorf("device %q accepted", d)
		}
	}
	if !ValidDevice("phone-1") {
		t.Error("phone-1 refused")
	}
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer down.Close()
	l := New(down, Options{Timeout: 200 * time.Millisecond})
	if err := l.Subscribe(context.Background(), s, "u", "d"); err == nil {
		t.Error("subscribe without Redis succeeded")
	}
	l.Unsubscribe(s) // not subscribed: no-op
	l.poll(context.Background())
	if l.Window() != 24*time.Hour || l.MaxLen() != 1000 {
		t.Errorf("defaults %v %d", l.Window(), l.MaxLen())
	}
	if !l.Ackable(&parser.Packet{Data: []byte(`["trade:failed",{}]`)}) || l.Ackable(&parser.Packet{Data: []byte(`["quote:update",{}]`)}) {
		t.Error("Ackable by event name")
	}
	if !idLess("1-2", "1-10") || idLess("2-0", "1-9") {
		t.Error("idLess")
	}
}

func TestMalformedEntriesAreAcknowledgedWithoutSend(t *testing.T) {
	f := newFixture(t)
	c := f.dial("d")
	ctx := context.Background()
	for _, v := range []string{"not json", "[]", "[1]"} {
		if err := f.rdb.XAdd(ctx, &redis.XAddArgs{Stream: f.log.Key("u"), Values: []any{Field, v}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	f.add(1)
	waitGot(t, c, []int{1})
	deadline := time.Now().Add(2 * time.Second)
	for {
		p, err := f.rdb.XPending(ctx, f.log.Key("u"), "d").Result()
		if err == nil && p.Count == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending %+v %v, want only the valid event", p, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(c.Events()) != 1 {
		t.Errorf("events %v", c.Events())
	}
}
