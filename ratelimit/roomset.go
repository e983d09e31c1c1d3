package ratelimit

import "slices"

// roomSet is a small sorted set of room names. A socket holds a handful of
// rooms (at most MaxSubscriptions), where a map would cost several hundred
// bytes per socket.
type roomSet []string

func (s roomSet) has(r string) bool {
	_, ok := slices.BinarySearch(s, r)
	return ok
}

func (s *roomSet) add(r string) {
	if i, ok := slices.BinarySearch(*s, r); !ok {
		*s = slices.Insert(growOne(*s), i, r)
	}
}

// growOne makes room for one more element without append's doubling: the
// sets live as long as their socket or user and rarely grow, so slack would
// be paid by every idle connection.
func growOne[E any](s []E) []E {
	if len(s) < cap(s) {
		return s
	}
	t := make([]E, len(s), len(s)+1) // slices.Grow would double
	copy(t, s)
	return t
}

func (s *roomSet) remove(r string) bool {
	i, ok := slices.BinarySearch(*s, r)
	if ok {
		*s = slices.Delete(*s, i, i+1)
	}
	return ok
}

// roomCount is a room with the local sockets of a user holding it: their
// number, and the holder bits of those that have one (Socket.slot).
type roomCount struct {
	room    string
	n       int32
	holders uint32
}

// roomCounts is a user's rooms on this node, sorted by name.
type roomCounts []roomCount

func (c roomCounts) find(r string) (int, bool) {
	return slices.BinarySearchFunc(c, r, func(e roomCount, r string) int {
		switch {
		case e.room < r:
			return -1
		case e.room > r:
			return 1
		}
		return 0
	})
}

// count returns the number of local sockets holding r.
func (c roomCounts) count(r string) int {
	if i, ok := c.find(r); ok {
		return int(c[i].n)
	}
	return 0
}

// inc counts one more socket holding r: the socket with holder bit slot,
// or, for slot < 0, one without a bit.
func (c *roomCounts) inc(r string, slot int8) {
	i, ok := c.find(r)
	if !ok {
		*c = slices.Insert(growOne(*c), i, roomCount{room: r})
	}
	(*c)[i].n++
	if slot >= 0 {
		(*c)[i].holders |= 1 << slot
	}
}

// dec counts one socket (as for inc) out of r and reports whether r is no
// longer held.
func (c *roomCounts) dec(r string, slot int8) bool {
	i, ok := c.find(r)
	if !ok {
		return true
	}
	if slot >= 0 {
		(*c)[i].holders &^= 1 << slot
	}
	if (*c)[i].n--; (*c)[i].n > 0 {
		return false
	}
	*c = slices.Delete(*c, i, i+1)
	return true
}

func (c roomCounts) names() []string {
	out := make([]string, len(c))
	for i, e := range c {
		out[i] = e.room
	}
	return out
}
