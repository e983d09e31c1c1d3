package adapter

import (
	"slices"
	"testing"
)

// A room lives in single with one member and in multi from its second on;
// joining twice changes nothing, and the last leave drops it.
func TestRoomIndexSingleAndMulti(t *testing.T) {
	x := newRoomIndex()
	x.add("a", []string{"r"})
	x.add("a", []string{"r"})
	if x.single["r"] == nil || x.multi["r"] != nil {
		t.Fatalf("one member: single %v, multi %v", x.single["r"], x.multi["r"])
	}
	x.add("b", []string{"r"})
	if _, ok := x.single["r"]; ok || len(x.multi["r"]) != 2 {
		t.Fatalf("two members: single %v, multi %v", x.single["r"], x.multi["r"])
	}
	var got []string
	x.selected(&BroadcastOptions{Rooms: []string{"r"}}, func(p *member) bool { got = append(got, p.id); return true })
	slices.Sort(got)
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("members of r: %v", got)
	}
	x.del("a", "r")
	if mem, ok := x.lookup("r"); !ok || !mem.has(x.sids["b"]) || mem.has(x.sids["a"]) {
		t.Fatalf("after a left: %+v %v", mem, ok)
	}
	x.delAll("b")
	if x.stored("r") {
		t.Fatal("room r kept without members")
	}
	if rooms := x.localRooms(); len(rooms) != 0 {
		t.Fatalf("local rooms left: %v", rooms)
	}
}

// A socket's own room is a flag until another socket joins a room of that
// name; leaving, or going away, then takes it out of the stored room too.
func TestRoomIndexOwnRoom(t *testing.T) {
	x := newRoomIndex()
	x.add("a", []string{"a", "r"})
	if got := x.socketRooms("a"); !slices.Equal(got, []string{"a", "r"}) || x.stored("a") {
		t.Fatalf("rooms of a %v, own room stored %v", got, x.stored("a"))
	}
	x.add("b", []string{"a"})
	x.add("a", []string{"a"}) // again, now that the room is stored: no change
	if mem, ok := x.lookup("a"); !ok || !mem.has(x.sids["a"]) || !mem.has(x.sids["b"]) {
		t.Fatalf("room a: %+v", mem)
	}
	x.delAll("a")
	if mem, ok := x.lookup("a"); !ok || mem.has(x.sids["a"]) || !mem.has(x.sids["b"]) {
		t.Fatalf("room a after a went away: %+v %v", mem, ok)
	}
	x.del("b", "a")
	if x.stored("a") || len(x.socketRooms("b")) != 0 {
		t.Fatalf("room a kept: %v, rooms of b %v", x.stored("a"), x.socketRooms("b"))
	}
}
