package trading

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tradewire/tradewire/internal/testutil/sioclient"
	"github.com/tradewire/tradewire/ratelimit"
	"github.com/tradewire/tradewire/socketio"
)

func recoveryOptions() socketio.Options {
	return socketio.Options{Recovery: socketio.RecoveryOptions{MaxDisconnection: time.Minute}}
}

// offsetOf returns the recovery offset the server appended to an event.
func offsetOf(t *testing.T, p sioclient.Packet) string {
	t.Helper()
	var off string
	if p.Kind != sioclient.KindEvent || len(p.Args) < 2 || json.Unmarshal(p.Args[len(p.Args)-1], &off) != nil || off == "" {
		t.Fatalf("event %q carries no offset", p.Raw)
	}
	return off
}

// dropAndRecover closes c's transport (a recoverable disconnect), waits for
// the server to see it, and reconnects with c's pid and offset.
func dropAndRecover(t *testing.T, f *fixture, c *sioclient.Stream, offset, tier string) *sioclient.Stream {
	t.Helper()
	c.Close()
	f.wait(c.SID(), "disconnected")
	if r := f.reason(c.SID()); r != "transport close" && r != "transport error" {
		t.Fatalf("disconnect reason %q is not recoverable", r)
	}
	return recoverDial(t, f, c, offset, tier)
}

func TestRecoveredSocketRetakesQuota(t *testing.T) {
	f := newFixtureWith(t, ratelimit.Config{}, recoveryOptions())
	f.h.WatchlistLimits = map[string]int{"free": 3}
	c := f.connect("u1", "user", "free")
	if c.PID() == "" {
		t.Fatal("no pid with recovery on")
	}
	evs, ack := c.Call("subscribe:portfolio")
	okReply(t, evs, ack, "subscribed:portfolio")
	evs, ack = c.Call("subscribe:watchlist", symbolsJSON("AAPL", "MSFT"))
	okReply(t, evs, ack, "subscribed:watchlist")
	offset := offsetOf(t, evs[0])

	c.Close()
	f.wait(c.SID(), "disconnected")
	assertQuota(t, f.quota("u1", 0)) // released on disconnect
	// An event the socket misses while away.
	if err := f.nsp.To(PortfolioRoom("u1")).Emit(EventPortfolioUpdated, map[string]any{"equity": 1}); err != nil {
		t.Fatal(err)
	}

	c2, p := sioclient.DialStream(t, f.url, map[string]any{"userId": "u1", "role": "user", "tier": "free", "pid": c.PID(), "offset": offset})
	if p.Kind != sioclient.KindConnect || c2.SID() != c.SID() {
		t.Fatalf("not recovered: %q", p.Raw)
	}
	if len(c2.Early()) != 1 || c2.Early()[0].Name != EventPortfolioUpdated {
		t.Errorf("missed events %v", raws(c2.Early()))
	}
	c2.Call("ping")
	if !f.socket(c2.SID()).Recovered() {
		t.Fatal("not recovered")
	}
	assertRooms(t, f, c2.SID(), "user:u1", "portfolio:u1", "watchlist:AAPL", "watchlist:MSFT")
	assertQuota(t, f.quota("u1", 1), "portfolio:u1", "watchlist:AAPL", "watchlist:MSFT")
	if f.lim.Users() != 1 || f.lim.UserSockets("u1") != 1 {
		t.Errorf("users %d connections %d", f.lim.Users(), f.lim.UserSockets("u1"))
	}
	// The restored symbols count against the tier limit (3): one more fits.
	evs, ack = c2.Call("subscribe:watchlist", symbolsJSON("NVDA"))
	okReply(t, evs, ack, "subscribed:watchlist")
	evs, ack = c2.Call("subscribe:watchlist", symbolsJSON("TSLA"))
	errReply(t, evs, ack, CodeSubscriptionLimit)
	// And they can be given back.
	evs, ack = c2.Call("unsubscribe:watchlist", symbolsJSON("AAPL"))
	okReply(t, evs, ack, "unsubscribed:watchlist")
	assertQuota(t, f.quota("u1", 1), "portfolio:u1", "watchlist:MSFT", "watchlist:NVDA")
}

func TestRecoveredSocketLeavesRoomsOverQuota(t *testing.T) {
	f := newFixtureWith(t, ratelimit.Config{MaxSubscriptions: 2}, recoveryOptions())
	c := f.connect("u1", "user", "premium")
	evs, ack := c.Call("subscribe:portfolio")
	okReply(t, evs, ack, "subscribed:portfolio")
	evs, ack = c.Call("subscribe:watchlist", symbolsJSON("AAPL"))
	okReply(t, evs, ack, "subscribed:watchlist")
	offset := offsetOf(t, evs[0])
	c.Close()
	f.wait(c.SID(), "disconnected")

	// Meanwhile another socket of u1 takes the whole quota.
	other := f.connect("u1", "user", "premium")
	evs, ack = other.Call("subscribe:watchlist", symbolsJSON("NVDA", "TSLA"))
	okReply(t, evs, ack, "subscribed:watchlist")

	c2 := recoverDial(t, f, c, offset, "premium")
	// Nothing could be re-taken: the recovered socket keeps only its user room.
	assertRooms(t, f, c2.SID(), "user:u1")
	assertQuota(t, f.quota("u1", 2))
	// The quota is still full: AAPL cannot be taken back by hand either.
	evs, ack = c2.Call("subscribe:watchlist", symbolsJSON("AAPL"))
	errReply(t, evs, ack, CodeSubscriptionLimit)
}

// recoverDial reconnects a closed client with its pid and offset and checks
// that the session was restored.
func recoverDial(t *testing.T, f *fixture, c *sioclient.Stream, offset, tier string) *sioclient.Stream {
	t.Helper()
	c2, p := sioclient.DialStream(t, f.url, map[string]any{"userId": "u1", "role": "user", "tier": tier, "pid": c.PID(), "offset": offset})
	if p.Kind != sioclient.KindConnect || c2.SID() != c.SID() || c2.PID() != c.PID() {
		t.Fatalf("not recovered: %q (old sid %s pid %s)", p.Raw, c.SID(), c.PID())
	}
	c2.Call("ping") // handlers run in order: Attach is done after this
	if !f.socket(c2.SID()).Recovered() {
		t.Fatal("server socket not marked recovered")
	}
	return c2
}

func TestRecoveredSocketWithoutSubscriptions(t *testing.T) {
	f := newFixtureWith(t, ratelimit.Config{}, recoveryOptions())
	c := f.connect("u1", "user", "free")
	evs, _ := c.Call("ping")
	offset := offsetOf(t, evs[0])
	c2 := dropAndRecover(t, f, c, offset, "free")
	assertRooms(t, f, c2.SID(), "user:u1")
	assertQuota(t, f.quota("u1", 1))
	evs, ack := c2.Call("subscribe:trades")
	okReply(t, evs, ack, "subscribed:trades")
}
