package fault

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/internal/testutil/redistest"
	"github.com/tradewire/tradewire/internal/testutil/sioclient"
)

// TestAckedTradesSurviveAnExpiredRecovery: a phone subscribes to trades
// with {ack: true}, acknowledges only some of them, drops off and stays
// away longer than the recovery window (1 s here) while more trades are
// published. When it comes back (to the other node, recovery expired) and
// subscribes again, it gets every trade it did not acknowledge, each once,
// in order; once everything is acknowledged a further reconnect gets none.
func TestAckedTradesSurviveAnExpiredRecovery(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	extra := "TRADEWIRE_RECOVERY_WINDOW=1s"
	a, b := startNode(t, srv.URL(), extra), startNode(t, srv.URL(), extra)
	cookie := seedSessions(t, rdb, 1)[0]
	phone := func(base string) *sioclient.Client {
		t.Helper()
		h := http.Header{}
		h.Set("Cookie", cookie)
		c, err := sioclient.Dial(base, sioclient.Options{Header: h, ManualAcks: true, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		reply, err := c.EmitWithAck(10*time.Second, "subscribe:trades", map[string]any{"ack": true, "device": "phone-1"})
		if err != nil || len(reply) == 0 || !json.Valid(reply[0]) {
			t.Fatalf("subscribe: %v %s", err, reply)
		}
		var r struct{ Success, Ack bool }
		_ = json.Unmarshal(reply[0], &r)
		if !r.Success || !r.Ack {
			t.Fatalf("subscribe:trades {ack:true} answered %s", reply[0])
		}
		return c
	}
	// numbers returns the trades received (n) and their ack ids.
	numbers := func(c *sioclient.Client) (ns, ids []int) {
		for _, e := range c.EventsNamed("trade:executed") {
			var p struct {
				Trade struct{ N int } `json:"trade"`
			}
			_ = json.Unmarshal(e.Args[0], &p)
			ns, ids = append(ns, p.Trade.N), append(ids, e.AckID)
		}
		return ns, ids
	}
	waitN := func(c *sioclient.Client, n int) []int {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			ns, _ := numbers(c)
			if len(ns) >= n || time.Now().After(deadline) {
				time.Sleep(200 * time.Millisecond) // anything extra
				ns, _ = numbers(c)
				return ns
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	publish := func(from, to int) {
		for n := from; n <= to; n++ {
			if ans := postEvents(t, b.url, trade(0, n)); ans.status != http.StatusAccepted {
				t.Fatalf("publish %d: %d %s", n, ans.status, ans.raw)
			}
		}
	}

	c1 := phone(a.url)
	publish(1, 5)
	got := waitN(c1, 5)
	if !slices.Equal(got, []int{1, 2, 3, 4, 5}) {
		t.Fatalf("first connection got %v, want 1..5", got)
	}
	_, ids := numbers(c1)
	for i, id := range ids {
		if id < 0 {
			t.Fatalf("trade %d came without an ack id", i+1)
		}
	}
	for _, id := range ids[:3] { // the phone handles 1..3, then drops
		if err := c1.Ack(id); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond) // let the acks land
	pid := c1.PID()
	_ = c1.Close()
	publish(6, 8) // while the phone is away
	time.Sleep(1500 * time.Millisecond)

	// Back after longer than the recovery window, on the other node.
	h := http.Header{}
	h.Set("Cookie", cookie)
	probe, err := sioclient.Dial(b.url, sioclient.Options{Header: h, Auth: map[string]any{"pid": pid, "offset": "0-0"}})
	if err == nil {
		if probe.PID() == pid {
			t.Fatalf("the session was recovered: the window did not expire")
		}
		_ = probe.Close()
	}
	c2 := phone(b.url)
	got = waitN(c2, 5)
	if !slices.Equal(got, []int{4, 5, 6, 7, 8}) {
		t.Fatalf("after the expired recovery the phone got %v, want the unacknowledged 4 5 6 7 8 once each", got)
	}
	_, ids = numbers(c2)
	for _, id := range ids {
		_ = c2.Ack(id)
	}
	time.Sleep(300 * time.Millisecond)
	_ = c2.Close()
	c3 := phone(a.url)
	publish(9, 9)
	got = waitN(c3, 1)
	if !slices.Equal(got, []int{9}) {
		t.Fatalf("after acknowledging everything a reconnect got %v, want only the new 9", got)
	}
	t.Logf("acked 1-3, offline for 8 trades' time > recovery window: resent %v; then only new", []int{4, 5, 6, 7, 8})
}
