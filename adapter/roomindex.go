package adapter

import "slices"

// member is one local socket in the room index: rooms hold pointers to it,
// so a room's members are 8-byte keys and a broadcast walks pointers, and
// its room list is kept once, here.
type member struct {
	id    string
	rooms []string // the socket's rooms but its own
	self  bool     // in its own room (named by id): the usual case
}

// roomMembers is a view of a room's local members: the one member of a
// room in roomIndex.single, or the set of one in roomIndex.multi.
type roomMembers struct {
	one  *member
	many map[*member]struct{}
}

func (r roomMembers) has(p *member) bool {
	if r.many == nil {
		return r.one == p
	}
	_, ok := r.many[p]
	return ok
}

// each calls yield for every member until it returns false; it reports
// whether it went through all of them.
func (r roomMembers) each(yield func(*member) bool) bool {
	if r.many == nil {
		return r.one == nil || yield(r.one)
	}
	for p := range r.many {
		if !yield(p) {
			return false
		}
	}
	return true
}

// roomIndex is the local room membership of one namespace. It is not safe
// for concurrent use: Memory guards it with its mu.
//
// A room is in single while it has one member (most rooms: a user's) and in
// multi from its second member on, never in both: a map of 8-byte values
// costs about half as much per room as one of member-or-set pairs (27–38
// against 66–82 bytes at 20,000–40,000 rooms).
//
// A socket's own room (named by its id) is implied by its self flag and not
// stored, unless another socket joins a room of that name (lookup and add
// keep the two views one).
type roomIndex struct {
	single map[string]*member
	multi  map[string]map[*member]struct{}
	sids   map[string]*member
}

func newRoomIndex() roomIndex {
	return roomIndex{
		single: make(map[string]*member),
		multi:  make(map[string]map[*member]struct{}),
		sids:   make(map[string]*member),
	}
}

// stored reports whether room r is in the index (not implied).
func (x *roomIndex) stored(r string) bool {
	if _, ok := x.single[r]; ok {
		return true
	}
	_, ok := x.multi[r]
	return ok
}

// join puts p in the stored room r (created when missing).
func (x *roomIndex) join(r string, p *member) {
	if set, ok := x.multi[r]; ok {
		set[p] = struct{}{}
		return
	}
	one, ok := x.single[r]
	switch {
	case !ok:
		x.single[r] = p
	case one != p:
		delete(x.single, r)
		x.multi[r] = map[*member]struct{}{one: {}, p: {}}
	}
}

// leave takes p out of the stored room r, dropping an emptied room.
func (x *roomIndex) leave(r string, p *member) {
	if set, ok := x.multi[r]; ok {
		delete(set, p)
		if len(set) == 0 {
			delete(x.multi, r)
		}
		return
	}
	if x.single[r] == p {
		delete(x.single, r)
	}
}

// add puts socket id in rooms.
func (x *roomIndex) add(id string, rooms []string) {
	p := x.sids[id]
	if p == nil {
		p = &member{id: id}
		x.sids[id] = p
	}
	grown := false
	for _, r := range rooms {
		if r == id {
			p.self = true
			if x.stored(r) {
				x.join(r, p) // another socket joined a room of this name first
			}
			continue // implied by self
		}
		if !slices.Contains(p.rooms, r) {
			if !grown && len(p.rooms) == cap(p.rooms) {
				// Room lists are long-lived and rarely grow: size them to
				// this call's need, not append's doubling.
				t := make([]string, len(p.rooms), len(p.rooms)+len(rooms)) // slices.Grow would double
				copy(t, p.rooms)
				p.rooms, grown = t, true
			}
			p.rooms = append(p.rooms, r)
		}
		if !x.stored(r) {
			if owner := x.selfMember(r); owner != nil && owner != p {
				x.join(r, owner) // another socket's own room: store it with its owner
			}
		}
		x.join(r, p)
	}
}

// selfMember returns the socket named id if it is in its own room.
func (x *roomIndex) selfMember(id string) *member {
	if p := x.sids[id]; p != nil && p.self {
		return p
	}
	return nil
}

// lookup returns the local members of room, the implied own room of a
// socket included.
func (x *roomIndex) lookup(room string) (roomMembers, bool) {
	if p, ok := x.single[room]; ok {
		return roomMembers{one: p}, true
	}
	if set, ok := x.multi[room]; ok {
		return roomMembers{many: set}, true
	}
	if p := x.selfMember(room); p != nil {
		return roomMembers{one: p}, true
	}
	return roomMembers{}, false
}

// del takes socket id out of room.
func (x *roomIndex) del(id, room string) {
	p := x.sids[id]
	if p == nil {
		return
	}
	if room == id {
		p.self = false
	} else if i := slices.Index(p.rooms, room); i >= 0 {
		p.rooms = slices.Delete(p.rooms, i, i+1)
	}
	x.leave(room, p)
}

// delAll takes socket id out of every room.
func (x *roomIndex) delAll(id string) {
	p := x.sids[id]
	if p == nil {
		return
	}
	for _, r := range p.rooms {
		x.leave(r, p)
	}
	if p.self {
		x.leave(id, p)
	}
	delete(x.sids, id)
}

// socketRooms returns a copy of the rooms of socket id (nil if unknown),
// its own room first.
func (x *roomIndex) socketRooms(id string) []string {
	p := x.sids[id]
	if p == nil {
		return nil
	}
	out := make([]string, 0, len(p.rooms)+1)
	if p.self {
		out = append(out, id)
	}
	return append(out, p.rooms...)
}

// localRooms returns every room with a local member.
func (x *roomIndex) localRooms() []string {
	out := make([]string, 0, len(x.single)+len(x.multi)+len(x.sids))
	for r := range x.single {
		out = append(out, r)
	}
	for r := range x.multi {
		out = append(out, r)
	}
	for id := range x.sids {
		if !x.stored(id) && x.selfMember(id) != nil {
			out = append(out, id)
		}
	}
	return out
}

// selected calls yield with every local socket opts select (Rooms: any of
// them, all when empty; never one in a room of Except), each once.
func (x *roomIndex) selected(opts *BroadcastOptions, yield func(*member) bool) {
	excluded := func(p *member) bool {
		for _, r := range opts.Except {
			if mem, ok := x.lookup(r); ok && mem.has(p) {
				return true
			}
		}
		return false
	}
	switch len(opts.Rooms) {
	case 0:
		for _, p := range x.sids {
			if !excluded(p) && !yield(p) {
				return
			}
		}
	case 1:
		if mem, ok := x.lookup(opts.Rooms[0]); ok {
			mem.each(func(p *member) bool { return excluded(p) || yield(p) })
		}
	default:
		seen := make(map[*member]struct{})
		for _, r := range opts.Rooms {
			mem, ok := x.lookup(r)
			if !ok {
				continue
			}
			if !mem.each(func(p *member) bool {
				if _, dup := seen[p]; dup {
					return true
				}
				seen[p] = struct{}{}
				return excluded(p) || yield(p)
			}) {
				return
			}
		}
	}
}
