package ratelimit

import (
	"context"
	"errors"
	"math"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"time"
)

// ErrEmptyUserID is returned by NewSocket for an empty user ID.
var ErrEmptyUserID = errors.New("ratelimit: empty user ID")

// userSubs is one user's subscription state on this node: the rooms the
// user holds, with which of its sockets hold each. It is the only copy of a
// socket's rooms (a socket is a bit in each room's holders), and it exists
// while the user has a socket or a room here. Its mutex serializes the
// user's acquires, releases and resyncs on this node, including their Redis
// round trip, so they reach Redis in the order they were decided.
type userSubs struct {
	mu    sync.Mutex
	user  string
	rooms roomCounts
	slots uint32 // holder bits taken by the user's sockets here
	socks int32  // the user's open sockets here, with or without a bit
	dead  bool   // removed from Limiter.subs; lookups must retry
}

// holderSlots is how many sockets of one user on one node hold rooms by a
// bit in the user's room list; more keep their own room set.
const holderSlots = 32

func (e *userSubs) roomList() []string { return e.rooms.names() }

func (l *Limiter) lockUser(user string) *userSubs {
	for {
		l.subsMu.Lock()
		e := l.subs[user]
		if e == nil {
			e = &userSubs{user: user}
			l.subs[user] = e
		}
		l.subsMu.Unlock()
		e.mu.Lock()
		if !e.dead {
			return e
		}
		e.mu.Unlock()
	}
}

// unlockUser unlocks e, dropping it from the table when it holds no room
// and has no socket.
func (l *Limiter) unlockUser(e *userSubs) {
	if len(e.rooms) == 0 && e.socks == 0 {
		l.subsMu.Lock()
		if l.subs[e.user] == e {
			delete(l.subs, e.user)
		}
		l.subsMu.Unlock()
		e.dead = true
	}
	e.mu.Unlock()
}

// Users returns the number of users with an open Socket on this node.
func (l *Limiter) Users() int {
	l.subsMu.Lock()
	defer l.subsMu.Unlock()
	// An entry exists while its user has a socket: rooms are held only by
	// open sockets, and an entry without either is dropped.
	return len(l.subs)
}

// UserSockets returns the number of open Sockets of userID on this node.
func (l *Limiter) UserSockets(userID string) int {
	l.subsMu.Lock()
	e := l.subs[userID]
	l.subsMu.Unlock()
	if e == nil {
		return 0
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return int(e.socks)
}

// Socket is the per-socket view of a Limiter: which of its user's rooms it
// holds (so that acquire and release are idempotent per socket and Close
// releases them all) and its flood state. Create one per connected socket
// after authentication; it is safe for concurrent use.
//
// Lock order: Socket.mu, then the user's userSubs.mu.
type Socket struct {
	l *Limiter
	e *userSubs // the user's entry: alive while the socket is open

	mu         sync.Mutex // guards the fields below
	own        *roomSet   // the rooms of a socket without a holder bit
	cap        *roomCap   // shared by the sockets of equal caps; nil: none
	denials    int32      // consecutive event denials
	slot       int8       // the socket's bit in its user's holders; -1: none (own)
	closed     bool
	floodStart int64 // time of the first of the denials
}

// holds reports whether the socket holds room r. s.mu and s.e.mu must be held.
func (s *Socket) holds(r string) bool {
	if s.slot < 0 {
		return s.own != nil && s.own.has(r)
	}
	i, ok := s.e.rooms.find(r)
	return ok && s.e.rooms[i].holders&(1<<s.slot) != 0
}

// take records that the socket holds room r (it did not). s.mu and s.e.mu
// must be held.
func (s *Socket) take(r string) {
	s.e.rooms.inc(r, s.slot)
	if s.slot < 0 {
		if s.own == nil {
			s.own = new(roomSet)
		}
		s.own.add(r)
	}
}

// drop gives back room r if the socket holds it, reporting whether it did
// and whether no socket of the user holds r anymore. s.mu and s.e.mu must
// be held.
func (s *Socket) drop(r string) (held, gone bool) {
	if !s.holds(r) {
		return false, false
	}
	if s.slot < 0 {
		s.own.remove(r)
	}
	return true, s.e.rooms.dec(r, s.slot)
}

// held returns the rooms the socket holds, sorted. s.mu and s.e.mu must be
// held.
func (s *Socket) held() []string {
	if s.slot < 0 {
		if s.own == nil {
			return nil
		}
		return slices.Clone(*s.own)
	}
	var out []string
	for _, c := range s.e.rooms {
		if c.holders&(1<<s.slot) != 0 {
			out = append(out, c.room)
		}
	}
	return out
}

// roomCap limits the user's distinct rooms whose name starts with prefix
// (n < 0 or an empty prefix: no cap).
type roomCap struct {
	prefix string
	n      int32
}

// internCap returns the limiter's one copy of c: a few values (one per
// tier) shared by every socket, instead of a prefix and limit in each.
func (l *Limiter) internCap(c roomCap) *roomCap {
	if v, ok := l.caps.Load(c); ok {
		return v.(*roomCap)
	}
	v, _ := l.caps.LoadOrStore(c, &c)
	return v.(*roomCap)
}

func (c roomCap) limit() int {
	if c.prefix == "" {
		return -1
	}
	return int(c.n)
}

func (c roomCap) applies(room string) bool {
	return c.limit() >= 0 && strings.HasPrefix(room, c.prefix)
}

// SetRoomCap limits the user's distinct rooms starting with prefix (e.g.
// "watchlist:") to n, across all sockets and, in Redis mode, all nodes,
// checked with the quota in the same round trip (in memory mode: this
// node's rooms). A room refused by the cap makes the Decision Capped.
func (s *Socket) SetRoomCap(prefix string, n int) {
	s.mu.Lock()
	s.cap = s.l.internCap(roomCap{prefix, int32(min(max(n, -1), math.MaxInt32))})
	s.mu.Unlock()
}

// NewSocket returns the limiter state of one socket of userID. Close it
// when the socket disconnects: the user's state lives until its last one is.
func (l *Limiter) NewSocket(userID string) (*Socket, error) {
	if userID == "" {
		return nil, ErrEmptyUserID
	}
	e := l.lockUser(userID)
	s := &Socket{l: l, e: e, slot: -1}
	if free := ^e.slots; free != 0 {
		s.slot = int8(bits.TrailingZeros32(free))
		e.slots |= 1 << s.slot
	}
	e.socks++
	e.mu.Unlock()
	return s, nil
}

// UserID returns the socket's user.
func (s *Socket) UserID() string { return s.e.user }

// Rooms returns the rooms this socket holds quota for, sorted.
func (s *Socket) Rooms() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	return s.held()
}

// AllowEvent checks the user's event limit for one client event and applies
// the flood policy (Decision.Disconnect). Cost: one Redis round trip in
// Redis mode, none while a previous denial is still in force.
func (s *Socket) AllowEvent(ctx context.Context) Decision {
	d := s.l.rate(ctx, KindEvent, s.l.eventKey(s.e.user), s.l.events)
	s.mu.Lock()
	s.flood(&d)
	s.mu.Unlock()
	s.l.observe(d)
	return d
}

// AllowSubscribe handles a subscribe event: it charges the event limit and
// acquires rooms, atomically and in one Redis round trip. If the event is
// refused nothing is acquired and the Decision has Kind KindEvent; otherwise
// the Decision is the subscription one (see AcquireSubscriptions).
func (s *Socket) AllowSubscribe(ctx context.Context, rooms []string) ([]string, Decision) {
	return s.acquire(ctx, rooms, true)
}

// AcquireSubscriptions grants rooms, in order, while the user's number of
// distinct rooms across all sockets and nodes stays within
// MaxSubscriptions. Rooms the socket already holds, and rooms another socket
// of the user holds (on any node), are granted without using quota.
// Decision.Allowed is false if some room was refused (code
// SUBSCRIPTION_LIMIT); granted lists the rooms the socket may join.
// At most MaxSubscriptions rooms new to this node are considered per call;
// the rest of an oversized request is refused. Cost: one Redis round trip in
// Redis mode if some room is new to this node, otherwise none. A closed
// socket is granted nothing.
func (s *Socket) AcquireSubscriptions(ctx context.Context, rooms []string) ([]string, Decision) {
	return s.acquire(ctx, rooms, false)
}

func (s *Socket) acquire(ctx context.Context, rooms []string, charge bool) ([]string, Decision) {
	l := s.l
	sub := Decision{Kind: KindSubscription, Allowed: true, Limit: max(l.cfg.MaxSubscriptions, 0)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		sub.Allowed = false
		l.observe(sub)
		return nil, sub
	}
	want := dedupe(rooms)
	e := s.e // open socket: its entry is alive
	e.mu.Lock()
	defer e.mu.Unlock()
	// need: rooms that use quota (new to this node). More than
	// MaxSubscriptions of them cannot all be granted; the excess is refused
	// without being sent to Redis, which bounds the script's work.
	var need []string
	refused := make(map[string]bool)
	if l.cfg.MaxSubscriptions >= 0 {
		for _, r := range want {
			if !s.holds(r) && e.rooms.count(r) == 0 {
				if len(need) < l.cfg.MaxSubscriptions {
					need = append(need, r)
				} else {
					refused[r] = true
				}
			}
		}
	}
	var rc roomCap
	if s.cap != nil {
		rc = *s.cap
	}
	flags, count, capped, ev := l.decideRooms(ctx, e, need, charge, rc)
	if ev != nil {
		s.flood(ev)
		l.observe(*ev)
		if !ev.Allowed {
			return nil, *ev
		}
	}
	for i, r := range need {
		if !flags[i] {
			refused[r] = true
		}
	}
	granted := make([]string, 0, len(want))
	for _, r := range want {
		if s.holds(r) {
			granted = append(granted, r)
			continue
		}
		if refused[r] {
			sub.Allowed = false
			sub.Capped = sub.Capped || capped
			continue
		}
		s.take(r)
		granted = append(granted, r)
	}
	if l.cfg.MaxSubscriptions >= 0 {
		if count < 0 { // no round trip: what this node knows
			count = len(e.rooms)
		}
		sub.Remaining = max(l.cfg.MaxSubscriptions-count, 0)
	}
	l.observe(sub)
	return granted, sub
}

// decideRooms decides the rooms in need (new to this node) and, if charge,
// the event; user e is locked. count is the user's distinct room count after
// the decision, or -1 if unknown. ev is nil when no event was charged.
func (l *Limiter) decideRooms(ctx context.Context, e *userSubs, need []string, charge bool, rc roomCap) (flags []bool, count int, capped bool, ev *Decision) {
	evKey := l.eventKey(e.user)
	now := l.now()
	chargeRedis := charge && l.events.enabled
	if len(need) > 0 && l.Mode() == ModeRedis {
		if chargeRedis {
			if w := l.denied.wait(evKey, now); w > 0 {
				return nil, 0, false, &Decision{Kind: KindEvent, Limit: l.events.perMin, RetryAfter: time.Duration(w)}
			}
		}
		r, err := l.redisAcquire(ctx, e.user, chargeRedis, need, rc)
		if err == nil {
			if charge {
				ev = &Decision{Kind: KindEvent, Allowed: true}
			}
			if chargeRedis {
				*ev = Decision{Kind: KindEvent, Limit: l.events.perMin, Allowed: r.event.allowed,
					Remaining: r.event.remaining, RetryAfter: r.event.wait}
				if !ev.Allowed {
					l.denied.block(evKey, now+int64(r.event.wait), now)
					return nil, 0, false, ev
				}
			}
			return r.granted, r.count, r.capped, ev
		}
		l.redisFailed(ctx, err)
	}
	if charge {
		d := l.rate(ctx, KindEvent, evKey, l.events)
		ev = &d
		if !d.Allowed {
			return nil, 0, false, ev
		}
	}
	if len(need) == 0 {
		return nil, -1, false, ev
	}
	// Memory mode: this node's distinct rooms.
	count = len(e.rooms)
	capCount := 0
	for _, r := range e.rooms.names() {
		if rc.applies(r) {
			capCount++
		}
	}
	flags = make([]bool, len(need))
	for i, r := range need {
		if count >= l.cfg.MaxSubscriptions {
			continue
		}
		if rc.applies(r) {
			if capCount >= int(rc.n) {
				capped = true
				continue
			}
			capCount++
		}
		flags[i] = true
		count++
	}
	return flags, count, capped, ev
}

// ReleaseSubscriptions gives back rooms the socket left. Rooms the socket
// does not hold are ignored, so calling it twice is harmless. Cost: one
// Redis round trip (ZREM) in Redis mode when a room is no longer held by any
// socket of the user on this node, otherwise none.
func (s *Socket) ReleaseSubscriptions(ctx context.Context, rooms []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	e := s.e
	e.mu.Lock()
	defer e.mu.Unlock()
	var gone []string
	for _, r := range dedupe(rooms) {
		if _, g := s.drop(r); g {
			gone = append(gone, r)
		}
	}
	s.l.release(ctx, e.user, gone)
}

// Close releases every room of the socket; call it when the socket
// disconnects. Further acquires grant nothing. Idempotent.
func (s *Socket) Close(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	e := s.e
	e.mu.Lock()
	defer s.l.unlockUser(e)
	var gone []string
	for _, r := range s.held() {
		if _, g := s.drop(r); g {
			gone = append(gone, r)
		}
	}
	if s.slot >= 0 {
		e.slots &^= 1 << s.slot
	}
	s.own = nil
	e.socks--
	s.l.release(ctx, e.user, gone)
}

// release tells Redis that rooms are no longer held by any socket of user
// on this node. The user's entry must be locked.
func (l *Limiter) release(ctx context.Context, user string, gone []string) {
	if len(gone) == 0 || l.rdb == nil || l.cfg.MaxSubscriptions < 0 {
		return
	}
	if l.Mode() == ModeRedis {
		err := l.zrem(ctx, user, gone)
		if err == nil {
			return
		}
		l.redisFailed(ctx, err)
	}
	l.markOrphan(user)
}

// flood applies the flood policy to an event decision. s.mu must be held.
func (s *Socket) flood(d *Decision) {
	maxDenials := s.l.cfg.FloodMaxDenials
	if maxDenials < 0 {
		return
	}
	if d.Allowed {
		s.denials = 0
		return
	}
	now := s.l.now()
	if s.denials == 0 || now-s.floodStart > int64(s.l.cfg.FloodWindow) {
		s.denials, s.floodStart = 0, now
	}
	s.denials++
	d.Disconnect = int(s.denials) >= maxDenials
}

// dedupe returns rooms without duplicates, first occurrence kept.
func dedupe(rooms []string) []string {
	out := make([]string, 0, len(rooms))
	seen := make(map[string]struct{}, len(rooms))
	for _, r := range rooms {
		if _, dup := seen[r]; !dup {
			seen[r] = struct{}{}
			out = append(out, r)
		}
	}
	return out
}
