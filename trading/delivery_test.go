package trading

import (
	"slices"
	"testing"
)

func TestDeliveryPolicy(t *testing.T) {
	cases := []struct {
		rooms       []string
		recoverable bool
		conflate    string
		partition   string
	}{
		{[]string{"portfolio:u1"}, true, "", "u1"},
		{[]string{"trades:u1", "user:u1"}, true, "", "u1"},
		{[]string{"trades:u1", "portfolio:u2"}, true, "", ""}, // two users: no single stream
		{[]string{"watchlist:AAPL"}, false, "watchlist:AAPL", ""},
		{[]string{"watchlist:AAPL", "watchlist:MSFT"}, false, "", ""}, // one key per symbol only
		{[]string{AdminRoom}, false, "", ""},
		{nil, false, "", ""}, // everyone: market status
		{[]string{"socketid123"}, false, "", ""},
		{[]string{"watchlist:AAPL", "user:u9"}, true, "", "u9"},
	}
	for _, c := range cases {
		if got := RecoverableRooms(c.rooms); got != c.recoverable {
			t.Errorf("RecoverableRooms(%v) = %v", c.rooms, got)
		}
		if got := ConflationKey(c.rooms); got != c.conflate {
			t.Errorf("ConflationKey(%v) = %q", c.rooms, got)
		}
		if got := AllOrNone(c.rooms); got != (c.conflate == "") {
			t.Errorf("AllOrNone(%v) = %v", c.rooms, got)
		}
		if got := UserPartition(c.rooms); got != c.partition {
			t.Errorf("UserPartition(%v) = %q", c.rooms, got)
		}
	}
}

func TestEventNamesAreUniqueAndComplete(t *testing.T) {
	names := EventNames()
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	if len(slices.Compact(sorted)) != len(names) {
		t.Fatalf("duplicate event names in %v", names)
	}
	for _, n := range []string{EventTradeExecuted, EventQuoteUpdate, EventSubscribeWatchlist, EventPong, EventError} {
		if !slices.Contains(names, n) {
			t.Errorf("EventNames lacks %q", n)
		}
	}
}
