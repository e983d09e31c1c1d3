package ratelimit

import (
	"slices"
	"testing"
)

// A user's sockets beyond the holder bits keep their own room set; counting
// and release stay exact across both kinds.
func TestSocketsBeyondTheHolderBits(t *testing.T) {
	l := newLim(t, Config{MaxSubscriptions: 10}, nil)
	socks := make([]*Socket, holderSlots+2)
	for i := range socks {
		socks[i] = newSocket(t, l, "u")
	}
	last, first := socks[len(socks)-1], socks[0]
	if first.slot != 0 || last.slot != -1 {
		t.Fatalf("slots: first %d, last %d", first.slot, last.slot)
	}
	if g, d := last.AcquireSubscriptions(ctx, []string{"a", "b"}); !slices.Equal(g, []string{"a", "b"}) || !d.Allowed || d.Remaining != 8 {
		t.Fatalf("socket without a bit: %v %+v", g, d)
	}
	if g, d := first.AcquireSubscriptions(ctx, []string{"b", "c"}); !slices.Equal(g, []string{"b", "c"}) || d.Remaining != 7 {
		t.Fatalf("socket with a bit: %v %+v", g, d)
	}
	if got := last.Rooms(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("last.Rooms() = %v", got)
	}
	if got := first.Rooms(); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("first.Rooms() = %v", got)
	}
	if got := socks[1].Rooms(); len(got) != 0 {
		t.Fatalf("a socket that acquired nothing holds %v", got)
	}
	// b stays held by first after last leaves.
	last.Close(ctx)
	if got := l.subs["u"].rooms.names(); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("user rooms after the bitless socket closed: %v", got)
	}
	// Releasing a room the socket does not hold changes nothing.
	socks[1].ReleaseSubscriptions(ctx, []string{"b"})
	if n := l.subs["u"].rooms.count("b"); n != 1 {
		t.Fatalf("b held by %d sockets, want 1", n)
	}
	first.ReleaseSubscriptions(ctx, []string{"b"})
	if got := first.Rooms(); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("after release: %v", got)
	}
	// A freed bit is taken by the next socket.
	first.Close(ctx)
	if again := newSocket(t, l, "u"); again.slot != 0 {
		t.Fatalf("freed slot not reused: %d", again.slot)
	}
}

// The user's entry lives while it has a socket or a room, and not longer.
func TestUserEntryLifetime(t *testing.T) {
	l := newLim(t, Config{}, nil)
	a := newSocket(t, l, "u")
	if len(l.snapshotUsers()) != 1 {
		t.Fatal("no entry for a user with an open socket")
	}
	if got := holdingRooms(l.snapshotUsers()); len(got) != 0 {
		t.Fatalf("a user without rooms is synced: %v", got)
	}
	a.AcquireSubscriptions(ctx, []string{"r"})
	if got := holdingRooms(l.snapshotUsers()); len(got) != 1 {
		t.Fatalf("holding users: %d", len(got))
	}
	a.Close(ctx)
	a.Close(ctx) // idempotent
	if n := len(l.snapshotUsers()); n != 0 {
		t.Fatalf("%d entries after the last socket closed", n)
	}
	if g, d := a.AcquireSubscriptions(ctx, []string{"r"}); len(g) != 0 || d.Allowed {
		t.Fatalf("closed socket granted %v", g)
	}
	if a.Rooms() != nil || a.UserID() != "u" {
		t.Fatalf("closed socket: rooms %v, user %q", a.Rooms(), a.UserID())
	}
	a.ReleaseSubscriptions(ctx, []string{"r"}) // no-op, no panic
}

func TestUserAndSocketCounts(t *testing.T) {
	l := newLim(t, Config{}, nil)
	a1, a2, b := newSocket(t, l, "a"), newSocket(t, l, "a"), newSocket(t, l, "b")
	if l.Users() != 2 || l.UserSockets("a") != 2 || l.UserSockets("b") != 1 || l.UserSockets("nobody") != 0 {
		t.Fatalf("users %d, a %d, b %d", l.Users(), l.UserSockets("a"), l.UserSockets("b"))
	}
	a1.Close(ctx)
	b.Close(ctx)
	if l.Users() != 1 || l.UserSockets("a") != 1 || l.UserSockets("b") != 0 {
		t.Fatalf("after two closes: users %d, a %d, b %d", l.Users(), l.UserSockets("a"), l.UserSockets("b"))
	}
	a2.Close(ctx)
	if l.Users() != 0 {
		t.Fatalf("users %d after every socket closed", l.Users())
	}
}
