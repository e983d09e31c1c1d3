package trading

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unique"

	"github.com/tradewire/tradewire/auth"
	"github.com/tradewire/tradewire/ratelimit"
	"github.com/tradewire/tradewire/socketio"
)

// Error codes sent to clients in error events and failed acks.
const (
	CodeUnauthorized      = "UNAUTHORIZED"
	CodeInvalidPayload    = "INVALID_PAYLOAD"
	CodeRateLimit         = ratelimit.CodeRateLimit
	CodeSubscriptionLimit = ratelimit.CodeSubscriptionLimit
	CodeForbidden         = "FORBIDDEN"
	// CodeAckUnavailable: subscribe:trades with {ack: true} cannot be
	// served (no Redis, or Redis failed); subscribe again later.
	CodeAckUnavailable = "ACK_UNAVAILABLE"
)

// Quota is the per-socket limiter view (ratelimit.Socket implements it).
type Quota interface {
	AllowEvent(ctx context.Context) ratelimit.Decision
	AllowSubscribe(ctx context.Context, rooms []string) ([]string, ratelimit.Decision)
	AcquireSubscriptions(ctx context.Context, rooms []string) ([]string, ratelimit.Decision)
	ReleaseSubscriptions(ctx context.Context, rooms []string)
	Close(ctx context.Context)
}

// RoomCapper is implemented by quotas that can cap the user's distinct
// rooms of one prefix across all sockets and nodes (ratelimit.Socket); the
// tier's watchlist limit then applies per user, not only per socket.
type RoomCapper interface {
	SetRoomCap(prefix string, n int)
}

// QuotaFactory creates the quota of a newly connected user socket.
type QuotaFactory func(userID string) (Quota, error)

// ClientError is a failure reported to the client.
type ClientError struct {
	Code         string `json:"code"`
	Message      string `json:"message"`
	RetryAfterMs int64  `json:"retryAfterMs,omitempty"`
}

func (e *ClientError) Error() string { return e.Code + ": " + e.Message }

// Handlers registers the client events of a trading socket.
type Handlers struct {
	quotas QuotaFactory
	log    *slog.Logger
	// WatchlistLimits caps watchlist symbols per subscription tier
	// (tiers not listed get MaxSymbolsPerRequest).
	WatchlistLimits map[string]int
	now             func() time.Time

	// Acks, when set, serves subscribe:trades with {ack: true}: trade
	// events sent with a Socket.IO ack and resent until acknowledged.
	Acks AckSubscriber

	mu         sync.Mutex
	registered map[*socketio.Namespace]bool
}

// AckSubscriber sends a user's trade events to a socket with Socket.IO
// acks, resending those its device did not acknowledge (see acklog).
type AckSubscriber interface {
	Subscribe(ctx context.Context, s *socketio.Socket, userID, device string) error
	Unsubscribe(s *socketio.Socket)
}

// TradesAckRoom is the room of a user's sockets that receive trade events
// with acks; nothing is broadcast to it (the quota counts it like
// TradesRoom).
func TradesAckRoom(userID string) string { return "trades-ack:" + userID }

// DefaultDevice is the device of an ack subscription without one.
const DefaultDevice = "default"

// NewHandlers returns Handlers drawing quotas from quotas.
func NewHandlers(quotas QuotaFactory, log *slog.Logger) *Handlers {
	if log == nil {
		log = slog.Default()
	}
	return &Handlers{
		quotas:          quotas,
		log:             log,
		WatchlistLimits: map[string]int{"free": 10, "basic": 25, "premium": 50, "enterprise": 50},
		now:             time.Now,
	}
}

// SocketData is the per-socket data other nodes see in fetchSockets.
type SocketData struct {
	UserID string `json:"userId"`
	Role   string `json:"role"`
	Tier   string `json:"tier"`
}

// identityData is a socket's data as set by SetIdentity: its identity seen
// as SocketData. Stored as a pointer to the identity the socket keeps
// anyway, it costs the socket nothing (a SocketData value would be a copy
// in an interface: an allocation per connection).
type identityData auth.Identity

// MarshalJSON encodes the identity's public part, as SocketData.
func (d *identityData) MarshalJSON() ([]byte, error) {
	return json.Marshal(SocketData{UserID: d.UserID, Role: d.Role, Tier: d.Tier})
}

// DataOf returns the socket data SetIdentity set, or what a restored
// socket's saved data says (decoded JSON); ok is false for anything else.
func DataOf(s *socketio.Socket) (d SocketData, ok bool) {
	switch v := s.Data().(type) {
	case *identityData:
		return SocketData{UserID: v.UserID, Role: v.Role, Tier: v.Tier}, true
	case map[string]any:
		d.UserID, _ = v["userId"].(string)
		d.Role, _ = v["role"].(string)
		d.Tier, _ = v["tier"].(string)
		return d, true
	}
	return SocketData{}, false
}

// stateKey keys a socket's one trading value, its *socketState.
type stateKey struct{}

// SetIdentity attaches the authenticated identity to a socket (called by
// the auth middleware).
func SetIdentity(s *socketio.Socket, id *auth.Identity) {
	s.Set(stateKey{}, &socketState{id: id})
	s.SetData((*identityData)(id))
}

// IdentityOf returns the socket's identity, or nil.
func IdentityOf(s *socketio.Socket) *auth.Identity {
	if st, _ := s.Get(stateKey{}).(*socketState); st != nil {
		return st.id
	}
	return nil
}

// socketState is a socket's trading state: its identity from
// authentication, and its quota once Attach ran (nil before). It is
// replaced, never changed, so readers need no lock of their own.
type socketState struct {
	id     *auth.Identity
	quota  Quota
	closed atomic.Bool // onDisconnect ran for it
}

// Attach sets up a newly connected socket: its state and quota, its user
// room, connection counting. The client event handlers are registered once
// per namespace (shared by every socket, no closure per connection).
func (h *Handlers) Attach(s *socketio.Socket) {
	h.register(s.Namespace())
	id := IdentityOf(s)
	if id == nil {
		h.fail(s, nil, &ClientError{Code: CodeUnauthorized, Message: "not authenticated"})
		s.Disconnect(true)
		return
	}
	quota, err := h.quotas(id.UserID)
	if err != nil {
		h.log.Error("quota unavailable", "user", id.UserID, "err", err)
		s.Disconnect(true)
		return
	}
	st := &socketState{id: id, quota: quota}
	if c, ok := quota.(RoomCapper); ok {
		// The tier's watchlist limit per user, across sockets and nodes.
		c.SetRoomCap(WatchlistRoomPrefix, h.watchlistLimit(id.Tier))
	}
	s.Set(stateKey{}, st)
	if !s.Connected() {
		// The transport closed while this ran, and the disconnect hook may
		// have found no state to release: release it here (once).
		h.onDisconnect(s, "")
		return
	}
	if s.Recovered() {
		h.adoptRecoveredRooms(s, st)
	}
	s.Join(UserRoom(id.UserID))
}

// stateOf returns the state of an attached socket, or nil.
func stateOf(s *socketio.Socket) *socketState {
	if st, _ := s.Get(stateKey{}).(*socketState); st != nil && st.quota != nil {
		return st
	}
	return nil
}

// onDisconnect releases the socket's quota (which counts it out) once.
func (h *Handlers) onDisconnect(s *socketio.Socket, _ string) {
	st := stateOf(s)
	if st == nil || !st.closed.CompareAndSwap(false, true) {
		return
	}
	if h.Acks != nil {
		h.Acks.Unsubscribe(s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st.quota.Close(ctx)
}

// subscribeTrades joins the trades room, or, with {ack: true[, device]},
// subscribes the socket to acknowledged trade events instead (never both,
// so no trade reaches it twice).
func (h *Handlers) subscribeTrades(ctx context.Context, s *socketio.Socket, st *socketState, e *socketio.Event) (map[string]any, *ClientError) {
	// Anything but {ack: true, ...} is a plain subscription: the payload
	// of subscribe:trades was always ignored, and old clients send junk.
	var opts struct {
		Ack    bool
		Device string
	}
	if e != nil && len(e.Args) > 0 {
		var m map[string]any
		if json.Unmarshal(e.Args[0], &m) == nil {
			opts.Ack = m["ack"] == true
			opts.Device, _ = m["device"].(string)
		}
	}
	user := st.id.UserID
	if !opts.Ack {
		if h.Acks != nil && s.InRoom(TradesAckRoom(user)) {
			h.Acks.Unsubscribe(s)
			h.unsubscribeRooms(ctx, s, st, []string{TradesAckRoom(user)})
		}
		return h.subscribeRooms(ctx, s, st, []string{TradesRoom(user)}, nil)
	}
	if opts.Device == "" {
		opts.Device = DefaultDevice
	}
	if h.Acks == nil {
		return nil, &ClientError{Code: CodeAckUnavailable, Message: "acknowledged trade events need Redis"}
	}
	if !acklogValidDevice(opts.Device) {
		return nil, &ClientError{Code: CodeInvalidPayload, Message: "device must be 1-64 printable characters"}
	}
	reply, cerr := h.subscribeRooms(ctx, s, st, []string{TradesAckRoom(user)}, nil)
	if cerr != nil {
		return nil, cerr
	}
	if s.InRoom(TradesRoom(user)) {
		h.unsubscribeRooms(ctx, s, st, []string{TradesRoom(user)})
	}
	if err := h.Acks.Subscribe(ctx, s, user, opts.Device); err != nil {
		h.log.Warn("ack subscription failed", "user_id", user, "err", err)
		h.unsubscribeRooms(ctx, s, st, []string{TradesAckRoom(user)})
		return nil, &ClientError{Code: CodeAckUnavailable, Message: "acknowledged trade events are unavailable, retry"}
	}
	reply["ack"] = true
	reply["device"] = opts.Device
	return reply, nil
}

// acklogValidDevice: 1-64 characters, no control characters.
func acklogValidDevice(d string) bool {
	if d == "" || len(d) > 64 {
		return false
	}
	return !strings.ContainsFunc(d, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// register installs the client event handlers on nsp once.
func (h *Handlers) register(nsp *socketio.Namespace) {
	h.mu.Lock()
	if h.registered == nil {
		h.registered = make(map[*socketio.Namespace]bool)
	}
	done := h.registered[nsp]
	h.registered[nsp] = true
	h.mu.Unlock()
	if done {
		return
	}
	nsp.OnDisconnect(h.onDisconnect)
	nsp.On(EventSubscribePortfolio, h.handleEvent(EventSubscribedPortfolio, true, func(ctx context.Context, s *socketio.Socket, st *socketState, _ *socketio.Event) (map[string]any, *ClientError) {
		return h.subscribeRooms(ctx, s, st, []string{PortfolioRoom(st.id.UserID)}, nil)
	}))
	nsp.On(EventSubscribeTrades, h.handleEvent(EventSubscribedTrades, true, h.subscribeTrades))
	nsp.On(EventUnsubscribePortfolio, h.handleEvent(EventUnsubscribedPortfolio, false, func(ctx context.Context, s *socketio.Socket, st *socketState, _ *socketio.Event) (map[string]any, *ClientError) {
		return h.unsubscribeRooms(ctx, s, st, []string{PortfolioRoom(st.id.UserID)}), nil
	}))
	nsp.On(EventUnsubscribeTrades, h.handleEvent(EventUnsubscribedTrades, false, func(ctx context.Context, s *socketio.Socket, st *socketState, _ *socketio.Event) (map[string]any, *ClientError) {
		if h.Acks != nil {
			h.Acks.Unsubscribe(s)
		}
		return h.unsubscribeRooms(ctx, s, st, []string{TradesRoom(st.id.UserID), TradesAckRoom(st.id.UserID)}), nil
	}))
	nsp.On(EventSubscribeWatchlist, h.handleEvent(EventSubscribedWatchlist, true, h.subscribeWatchlist))
	nsp.On(EventUnsubscribeWatchlist, h.handleEvent(EventUnsubscribedWatchlist, false, func(ctx context.Context, s *socketio.Socket, st *socketState, e *socketio.Event) (map[string]any, *ClientError) {
		syms, cerr := h.symbols(e, nil)
		if cerr != nil {
			return nil, cerr
		}
		rooms := make([]string, len(syms))
		for i, sym := range syms {
			rooms[i] = WatchlistRoom(sym)
		}
		reply := h.unsubscribeRooms(ctx, s, st, rooms)
		reply["symbols"] = syms
		return reply, nil
	}))
	nsp.On(EventSubscribeAdmin, h.handleEvent(EventSubscribedAdmin, false, func(_ context.Context, s *socketio.Socket, st *socketState, _ *socketio.Event) (map[string]any, *ClientError) {
		if err := auth.RequireAdmin(st.id); err != nil {
			return nil, &ClientError{Code: CodeForbidden, Message: "admin role required"}
		}
		s.Join(AdminRoom)
		return map[string]any{"success": true}, nil
	}))
	nsp.On(EventPing, h.handleEvent(EventPong, false, func(context.Context, *socketio.Socket, *socketState, *socketio.Event) (map[string]any, *ClientError) {
		return map[string]any{"timestamp": h.now().UnixMilli()}, nil
	}))
	nsp.OnAny(h.handleEvent("", false, func(_ context.Context, _ *socketio.Socket, _ *socketState, e *socketio.Event) (map[string]any, *ClientError) {
		return nil, &ClientError{Code: CodeInvalidPayload, Message: "unknown event " + e.Name}
	}))
}

func (h *Handlers) subscribeWatchlist(ctx context.Context, s *socketio.Socket, st *socketState, e *socketio.Event) (map[string]any, *ClientError) {
	syms, cerr := h.symbols(e, st)
	if cerr != nil {
		if !h.charge(ctx, s, st, e) {
			return nil, &ClientError{Code: CodeRateLimit}
		}
		return nil, cerr
	}
	rooms := make([]string, len(syms))
	for i, sym := range syms {
		// One copy of the name however many sockets hold the room: the
		// adapter's index and the quota keep the string they are given.
		rooms[i] = unique.Make(WatchlistRoom(sym)).Value()
	}
	reply, cerr := h.subscribeRooms(ctx, s, st, rooms, func() *ClientError {
		// The socket's rooms are its watchlist (stored once, in the
		// adapter); one socket's handlers run one at a time.
		mine := s.Rooms()
		n := 0
		for _, r := range mine {
			if strings.HasPrefix(r, WatchlistRoomPrefix) {
				n++
			}
		}
		for _, r := range rooms {
			if !slices.Contains(mine, r) {
				n++
			}
		}
		if n > h.watchlistLimit(st.id.Tier) {
			return &ClientError{Code: CodeSubscriptionLimit, Message: "watchlist limit of your subscription tier reached"}
		}
		return nil
	})
	if cerr != nil {
		return nil, cerr
	}
	reply["symbols"] = syms
	return reply, nil
}

// adoptRecoveredRooms takes quota for the rooms a recovered socket got
// back (without charging an event) and drops those no longer granted.
func (h *Handlers) adoptRecoveredRooms(s *socketio.Socket, st *socketState) {
	if s.InRoom(AdminRoom) && auth.RequireAdmin(st.id) != nil {
		s.Leave(AdminRoom) // the role may have changed since
	}
	var rooms []string
	for _, r := range s.Rooms() {
		switch {
		case strings.HasPrefix(r, PortfolioRoomPrefix), strings.HasPrefix(r, TradesRoomPrefix), strings.HasPrefix(r, WatchlistRoomPrefix):
			rooms = append(rooms, r)
		}
	}
	if len(rooms) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // not s.Context(): no per-socket child registry
	defer cancel()
	granted, _ := st.quota.AcquireSubscriptions(ctx, rooms)
	ok := make(map[string]bool, len(granted))
	for _, r := range granted {
		ok[r] = true
	}
	for _, r := range rooms {
		if !ok[r] {
			s.Leave(r)
		}
	}
}

func (h *Handlers) watchlistLimit(tier string) int {
	if n, ok := h.WatchlistLimits[tier]; ok {
		return n
	}
	return MaxSymbolsPerRequest
}

type handlerFunc func(ctx context.Context, s *socketio.Socket, st *socketState, e *socketio.Event) (map[string]any, *ClientError)

// handle wraps a handler with the event rate limit and the reply protocol:
// a confirmation event plus the ack on success, an error event plus a
// failed ack otherwise.
//
// Every client event costs one rate-limit check: here, or, for subscribe
// events (subscribe true), in AllowSubscribe together with the room quota,
// so no event costs more than one Redis round trip.
func (h *Handlers) handleEvent(confirm string, subscribe bool, fn handlerFunc) socketio.EventHandler {
	return func(s *socketio.Socket, e *socketio.Event) {
		st := stateOf(s)
		if st == nil {
			h.fail(s, e, &ClientError{Code: CodeUnauthorized, Message: "not authenticated"})
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // not s.Context(): no per-socket child registry
		defer cancel()
		ctx = context.WithValue(ctx, eventKey{}, e)
		if !subscribe && !h.charge(ctx, s, st, e) {
			return
		}
		reply, cerr := fn(ctx, s, st, e)
		if cerr != nil {
			if cerr.Code != CodeRateLimit {
				h.fail(s, e, cerr)
			}
			return
		}
		if confirm != "" {
			_ = s.Emit(confirm, reply)
		}
		if e.HasAck() {
			_ = e.Ack(reply)
		}
	}
}

type eventKey struct{}

// charge applies the event rate limit; false means the event was refused
// (and the client told).
func (h *Handlers) charge(ctx context.Context, s *socketio.Socket, st *socketState, e *socketio.Event) bool {
	return h.decide(s, st, e, st.quota.AllowEvent(ctx))
}

func (h *Handlers) decide(s *socketio.Socket, st *socketState, e *socketio.Event, d ratelimit.Decision) bool {
	if d.Allowed || d.Kind != ratelimit.KindEvent {
		return true
	}
	h.fail(s, e, &ClientError{Code: CodeRateLimit, Message: "too many events, slow down", RetryAfterMs: d.RetryAfterMs()})
	if d.Disconnect {
		h.log.Warn("disconnecting flooding client", "user_id", st.id.UserID, "socket_id", s.ID())
		s.Disconnect(true)
	}
	return false
}

func (h *Handlers) fail(s *socketio.Socket, e *socketio.Event, cerr *ClientError) {
	_ = s.Emit(EventError, cerr)
	if e != nil && e.HasAck() {
		ack := map[string]any{"success": false, "code": cerr.Code, "message": cerr.Message}
		if cerr.RetryAfterMs > 0 {
			ack["retryAfterMs"] = cerr.RetryAfterMs
		}
		_ = e.Ack(ack)
	}
}

// symbols parses {symbols:[...]} (also a bare array) and validates them.
func (h *Handlers) symbols(e *socketio.Event, st *socketState) ([]string, *ClientError) {
	if len(e.Args) == 0 {
		return nil, &ClientError{Code: CodeInvalidPayload, Message: "expected {symbols: [..]}"}
	}
	var raw []any
	var obj struct {
		Symbols []any `json:"symbols"`
	}
	if err := json.Unmarshal(e.Args[0], &obj); err == nil && obj.Symbols != nil {
		raw = obj.Symbols
	} else if err := json.Unmarshal(e.Args[0], &raw); err != nil || raw == nil {
		return nil, &ClientError{Code: CodeInvalidPayload, Message: "expected {symbols: [..]}"}
	}
	if len(raw) == 0 {
		return nil, &ClientError{Code: CodeInvalidPayload, Message: "symbols must not be empty"}
	}
	if len(raw) > MaxSymbolsPerRequest {
		return nil, &ClientError{Code: CodeInvalidPayload, Message: "at most 50 symbols per request"}
	}
	seen := make(map[string]struct{}, len(raw))
	out := make([]string, 0, len(raw))
	for _, r := range raw {
		str, ok := r.(string)
		if !ok {
			return nil, &ClientError{Code: CodeInvalidPayload, Message: "symbols must be strings"}
		}
		sym, err := NormalizeSymbol(str)
		if err != nil {
			return nil, &ClientError{Code: CodeInvalidPayload, Message: err.Error()}
		}
		if _, dup := seen[sym]; !dup {
			seen[sym] = struct{}{}
			out = append(out, sym)
		}
	}
	return out, nil
}

// subscribeRooms acquires quota for rooms (all or nothing) and joins them.
func (h *Handlers) subscribeRooms(ctx context.Context, s *socketio.Socket, st *socketState, rooms []string, precheck func() *ClientError) (map[string]any, *ClientError) {
	e, _ := ctx.Value(eventKey{}).(*socketio.Event)
	if precheck != nil {
		if cerr := precheck(); cerr != nil {
			if !h.charge(ctx, s, st, e) {
				return nil, &ClientError{Code: CodeRateLimit}
			}
			return nil, cerr
		}
	}
	granted, d := st.quota.AllowSubscribe(ctx, rooms)
	if !h.decide(s, st, e, d) {
		return nil, &ClientError{Code: CodeRateLimit}
	}
	if !d.Allowed || len(granted) < len(rooms) {
		if len(granted) > 0 && !allJoined(s, granted) {
			st.quota.ReleaseSubscriptions(ctx, notJoined(s, granted))
		}
		if d.Capped {
			return nil, &ClientError{Code: CodeSubscriptionLimit, Message: "watchlist limit of your subscription tier reached"}
		}
		return nil, &ClientError{Code: CodeSubscriptionLimit, Message: "subscription limit reached"}
	}
	s.Join(rooms...)
	return map[string]any{"success": true}, nil
}

func allJoined(s *socketio.Socket, rooms []string) bool { return len(notJoined(s, rooms)) == 0 }

func notJoined(s *socketio.Socket, rooms []string) []string {
	var out []string
	for _, r := range rooms {
		if !s.InRoom(r) {
			out = append(out, r)
		}
	}
	return out
}

func (h *Handlers) unsubscribeRooms(ctx context.Context, s *socketio.Socket, st *socketState, rooms []string) map[string]any {
	for _, r := range rooms {
		s.Leave(r)
	}
	st.quota.ReleaseSubscriptions(ctx, rooms)
	return map[string]any{"success": true}
}
