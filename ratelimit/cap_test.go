package ratelimit

import (
	"slices"
	"testing"
)

// TestRoomCapPerUserAcrossNodes: the tier's watchlist cap counts the user's
// distinct capped rooms over every socket and node, not per socket; other
// rooms and rooms the user already holds are not affected.
func TestRoomCapPerUserAcrossNodes(t *testing.T) {
	_, rdb, _ := startRedis(t)
	_, rdb2, _ := newClientFor(t, rdb.Options().Addr)
	a := newLim(t, Config{NodeID: "a"}, rdb)
	b := newLim(t, Config{NodeID: "b"}, rdb2)
	sa, sb := newSocket(t, a, "u"), newSocket(t, b, "u")
	sa.SetRoomCap("watchlist:", 3)
	sb.SetRoomCap("watchlist:", 3)
	if g, d := sa.AllowSubscribe(ctx, []string{"watchlist:A", "watchlist:B", "trades:u"}); len(g) != 3 || !d.Allowed {
		t.Fatalf("node a: %v %+v", g, d)
	}
	// Node b, another socket: one more symbol fits, the second does not.
	g, d := sb.AllowSubscribe(ctx, []string{"watchlist:A", "watchlist:C", "watchlist:D", "portfolio:u"})
	if !slices.Equal(g, []string{"watchlist:A", "watchlist:C", "portfolio:u"}) || d.Allowed || !d.Capped || d.Code() != CodeSubscriptionLimit {
		t.Fatalf("node b: granted %v, %+v", g, d)
	}
	// Releasing a symbol frees a place.
	sa.ReleaseSubscriptions(ctx, []string{"watchlist:B"})
	if g, d := sb.AcquireSubscriptions(ctx, []string{"watchlist:D"}); len(g) != 1 || !d.Allowed {
		t.Fatalf("after a release: %v %+v", g, d)
	}
	// The plain quota refusal is not Capped.
	l := newLim(t, Config{NodeID: "c", MaxSubscriptions: 1}, rdb)
	sc := newSocket(t, l, "v")
	sc.SetRoomCap("watchlist:", 5)
	if _, d := sc.AcquireSubscriptions(ctx, []string{"trades:v", "watchlist:X"}); d.Allowed || d.Capped {
		t.Fatalf("quota refusal: %+v", d)
	}
}

func TestRoomCapMemoryMode(t *testing.T) {
	l := newLim(t, Config{MaxSubscriptions: 10}, nil)
	s1, s2 := newSocket(t, l, "u"), newSocket(t, l, "u")
	s1.SetRoomCap("watchlist:", 2)
	s2.SetRoomCap("watchlist:", 2)
	if g, d := s1.AcquireSubscriptions(ctx, []string{"watchlist:A", "watchlist:B"}); len(g) != 2 || !d.Allowed {
		t.Fatalf("%v %+v", g, d)
	}
	if g, d := s2.AcquireSubscriptions(ctx, []string{"watchlist:C", "trades:u"}); !slices.Equal(g, []string{"trades:u"}) || !d.Capped {
		t.Fatalf("%v %+v", g, d)
	}
	s1.SetRoomCap("", 0) // no cap
	if g, d := s1.AcquireSubscriptions(ctx, []string{"watchlist:C"}); len(g) != 1 || !d.Allowed {
		t.Fatalf("uncapped: %v %+v", g, d)
	}
}
