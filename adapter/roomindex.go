package adapter

import "slices"

// member is one local socket in the room index: rooms hold pointers to it,
// so a room's members are 8-byte keys and a broadcast walks pointers, and
// its room list is kept once, here.
type member struct {
	id    string
	rooms []string // the socket's rooms, its own room (named by id) included
}

// roomMembers is a room's local members: one inline (a socket's own room, a
// user's rooms), a set beyond that.
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

func (r *roomMembers) add(p *member) {
	switch {
	case r.many != nil:
		r.many[p] = struct{}{}
	case r.one == nil || r.one == p:
		r.one = p
	default:
		r.many = map[*member]struct{}{r.one: {}, p: {}}
		r.one = nil
	}
}

// remove deletes p and reports whether the room is now empty.
func (r *roomMembers) remove(p *member) bool {
	if r.many == nil {
		if r.one == p {
			r.one = nil
		}
		return r.one == nil
	}
	delete(r.many, p)
	return len(r.many) == 0
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
// A socket's own room (named by its id) is implied by its room list and not
// stored in rooms, unless another socket joins a room of that name (lookup
// and add keep the two views one).
type roomIndex struct {
	rooms map[string]roomMembers
	sids  map[string]*member
}

func newRoomIndex() roomIndex {
	return roomIndex{rooms: make(map[string]roomMembers), sids: make(map[string]*member)}
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
		mem, stored := x.rooms[r]
		if r == id && !stored {
			continue // implied by the room list
		}
		if !stored {
			if owner := x.selfMember(r); owner != nil && owner != p {
				mem.add(owner) // another socket's own room: store it with its owner
			}
		}
		mem.add(p)
		x.rooms[r] = mem
	}
}

// selfMember returns the socket named id if it is in its own room.
func (x *roomIndex) selfMember(id string) *member {
	if p := x.sids[id]; p != nil && slices.Contains(p.rooms, id) {
		return p
	}
	return nil
}

// lookup returns the local members of room, the implied own room of a
// socket included.
func (x *roomIndex) lookup(room string) (roomMembers, bool) {
	if mem, ok := x.rooms[room]; ok {
		return mem, true
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
	if i := slices.Index(p.rooms, room); i >= 0 {
		p.rooms = slices.Delete(p.rooms, i, i+1)
	}
	x.delFromRoom(p, room)
}

func (x *roomIndex) delFromRoom(p *member, room string) {
	mem, ok := x.rooms[room]
	if !ok {
		return
	}
	if mem.remove(p) {
		delete(x.rooms, room)
	} else {
		x.rooms[room] = mem
	}
}

// delAll takes socket id out of every room.
func (x *roomIndex) delAll(id string) {
	p := x.sids[id]
	if p == nil {
		return
	}
	for _, r := range p.rooms {
		x.delFromRoom(p, r)
	}
	delete(x.sids, id)
}

// socketRooms returns a copy of the rooms of socket id (nil if unknown).
func (x *roomIndex) socketRooms(id string) []string {
	p := x.sids[id]
	if p == nil {
		return nil
	}
	return slices.Clone(p.rooms)
}

// localRooms returns every room with a local member.
func (x *roomIndex) localRooms() []string {
	out := make([]string, 0, len(x.rooms)+len(x.sids))
	for r := range x.rooms {
		out = append(out, r)
	}
	for id := range x.sids {
		if _, stored := x.rooms[id]; !stored && x.selfMember(id) != nil {
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
