package redisadapter

import (
	"context"
	"testing"
	"time"

	"github.com/tradewire/tradewire/adapter"
)

func TestSlots(t *testing.T) {
	// values from CLUSTER KEYSLOT
	for key, want := range map[string]int{"foo": 12182, "bar": 5061, "{foo}.x": 12182, "a{bar}b": 5061, "{}x": slotOf("{}x"), "a{": slotOf("a{")} {
		if got := slotOf(key); got != want {
			t.Errorf("slotOf(%q) = %d, want %d", key, got, want)
		}
	}
	if slotOf("{}x") != int(crc16("{}x"))%numSlots {
		t.Error("empty hash tag must hash the whole key")
	}
	for _, s := range []int{0, 1, 5061, 12182, numSlots - 1} {
		if got := slotOf("chan{" + slotTag(s) + "}"); got != s {
			t.Errorf("slot tag for %d lands in %d", s, got)
		}
	}
}

func TestHelpers(t *testing.T) {
	if got := escapeGlob(`a*b?c[d]e\f`); got != `a\*b\?c\[d\]e\\f` {
		t.Fatalf("escapeGlob = %q", got)
	}
	if escapeGlob("/chat") != "/chat" {
		t.Fatal("escapeGlob changed a plain name")
	}
	if len(uid2(6)) != 6 || len(randomHex(8)) != 16 {
		t.Fatal("id lengths")
	}
	var o Options
	o.defaults()
	if o.KeyPrefix != "socket.io" || o.RequestsTimeout != 5*time.Second || o.SubscriptionMode != SubscriptionDynamic ||
		o.SelfCheckInterval != 2*time.Second || o.SelfCheckTimeout != 3*time.Second || o.NodeTimeout != 5*time.Second || o.Logger == nil {
		t.Fatalf("defaults %+v", o)
	}
	var nop Observer = nopObserver{}
	nop.OnPublish("x", 1)
	nop.OnReceive("x", 1)
	nop.OnError("x", nil)
	nop.OnResubscribe("x")
}

// New (the one-call form) works, with a glob character in the namespace.
func TestNewFactory(t *testing.T) {
	srv, client := startRedis(t)
	f := New(client, Options{Logger: testLogger(t)})
	n1 := newTestNsp("/a*b")
	a1 := f(n1).(*Adapter)
	n1.ad = a1
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	must(t, a1.Init(ctx))
	t.Cleanup(func() { _ = a1.Node().Close() })
	n1.connect("s")
	// a second node in "/a*b" and one in "/axb": the pattern must not match the latter
	b := startNode(t, newClient(t, srv.Addr), Options{}, "/a*b")
	c := startNode(t, newClient(t, srv.Addr), Options{}, "/axb")
	b.nsp.connect("sb")
	c.nsp.connect("sc")
	must(t, a1.Broadcast(event(`["g"]`), &adapter.BroadcastOptions{}))
	waitDeliveries(t, b.nsp, []string{`sb 2/a*b,["g"]`})
	waitDeliveries(t, c.nsp, nil)
	must(t, a1.Close())
}
