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
