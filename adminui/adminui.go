// Package adminui makes a tradewire Socket.IO server visible to the official
// Socket.IO Admin UI (@socket.io/admin-ui 0.5), as that package's
// instrument(io, options) does for a Node server: the /admin namespace with
// basic authentication (a bcrypt hash, plus the session id the UI reuses),
// the config, all_sockets and server_stats events, the socket_connected,
// socket_updated, socket_disconnected, room_joined and room_left updates,
// and the UI's join, leave, _disconnect and emit commands unless read-only.
//
// Every event is emitted through the admin namespace's adapter, so with the
// Redis adapter an admin connected to any node sees every node, Node
// servers instrumented with @socket.io/admin-ui included, and its commands
// reach sockets on every node.
//
// Nothing sent to the admin namespace carries an Engine.IO session id, a
// cookie, an Authorization header or a Socket.IO auth payload: client ids
// are hashes, and handshake headers and query parameters are filtered.
//
// Room and transport changes are found by comparing each local socket's
// rooms and transport with the previous look (every Options.Poll), since
// the socketio package reports neither; a join and leave within one period
// are not reported.
package adminui

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tradewire/tradewire/adapter"
	"github.com/tradewire/tradewire/socketio"
)

// Feature names the UI understands (typed-events in the npm package).
const (
	FeatureEmit             = "EMIT"
	FeatureJoin             = "JOIN"
	FeatureLeave            = "LEAVE"
	FeatureDisconnect       = "DISCONNECT"
	FeatureMJoin            = "MJOIN"
	FeatureMLeave           = "MLEAVE"
	FeatureMDisconnect      = "MDISCONNECT"
	FeatureAggregatedEvents = "AGGREGATED_EVENTS"
	FeatureAllEvents        = "ALL_EVENTS"
)

// Options configure Instrument.
type Options struct {
	// Namespace is the admin namespace (default "/admin").
	Namespace string
	// Username and PasswordHash (bcrypt, as instrument takes it) enable
	// basic authentication. Both empty requires NoAuth.
	Username     string
	PasswordHash string
	// NoAuth disables authentication (dev mode only: the caller decides).
	NoAuth bool
	// ReadOnly leaves out the join, leave, _disconnect and emit commands.
	ReadOnly bool
	// Production is instrument's mode "production": only server_stats, no
	// per-socket events, and the UI shows only its dashboard and servers
	// pages. The default, "development", also sends all_sockets and the
	// socket and room updates and advertises ALL_EVENTS, which turns on the
	// UI's sockets, rooms, clients and events pages; event payloads
	// (event_received, event_sent) are never sent.
	Production bool
	// ServerID names this server in the UI (default: the hostname).
	ServerID string
	// Sessions keeps the ids of logged-in admins (default: in memory).
	// Use a Redis store to share them across nodes, and with Node servers.
	Sessions SessionStore
	// StatsInterval is the server_stats period (default 2 s, as the UI expects).
	StatsInterval time.Duration
	// Poll is how often local sockets are compared for room and transport
	// changes (default 500 ms).
	Poll   time.Duration
	Logger *slog.Logger
}

// Instrumentation is a running instrumentation; Close stops it.
type Instrumentation struct {
	srv      *socketio.Server
	admin    *socketio.Namespace
	opts     Options
	features []string
	hostname string
	started  time.Time
	log      *slog.Logger

	mu       sync.Mutex
	known    map[string]socketState // nsp + "\x00" + socket id -> last look
	sessions map[string]struct{}    // engine session ids seen at the last stats
	reasons  map[string]int         // socket disconnect reasons since the last stats

	stop chan struct{}
	done chan struct{}
}

type socketState struct {
	nsp, id, transport string
	rooms              []string
}

// ErrBadPasswordHash is returned by Instrument when PasswordHash is not a
// bcrypt hash.
var ErrBadPasswordHash = errors.New("adminui: the password must be a bcrypt hash (e.g. from htpasswd -nbBC 10 user pass, or bcryptjs)")

// Instrument registers the admin namespace on srv and starts emitting. Call
// it after the application's namespaces exist: sockets of namespaces
// created later are not reported.
func Instrument(srv *socketio.Server, opts Options) (*Instrumentation, error) {
	if opts.Namespace == "" {
		opts.Namespace = "/admin"
	}
	if !strings.HasPrefix(opts.Namespace, "/") {
		opts.Namespace = "/" + opts.Namespace
	}
	if !opts.NoAuth {
		if opts.Username == "" || opts.PasswordHash == "" {
			return nil, errors.New("adminui: a username and a bcrypt password hash are required unless authentication is off")
		}
		if _, err := bcrypt.Cost([]byte(opts.PasswordHash)); err != nil {
			return nil, ErrBadPasswordHash
		}
	}
	if opts.Sessions == nil {
		opts.Sessions = NewMemorySessions(24 * time.Hour)
	}
	if opts.StatsInterval <= 0 {
		opts.StatsInterval = 2 * time.Second
	}
	if opts.Poll <= 0 {
		opts.Poll = 500 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	host, _ := os.Hostname()
	if opts.ServerID == "" {
		opts.ServerID = host
	}
	in := &Instrumentation{
		srv: srv, opts: opts, hostname: host, started: time.Now(), log: opts.Logger,
		known: map[string]socketState{}, sessions: map[string]struct{}{}, reasons: map[string]int{},
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	if !opts.ReadOnly {
		in.features = []string{FeatureEmit, FeatureJoin, FeatureLeave, FeatureDisconnect, FeatureMJoin, FeatureMLeave, FeatureMDisconnect}
	}
	in.features = append(in.features, FeatureAggregatedEvents)
	if !opts.Production {
		in.features = append(in.features, FeatureAllEvents)
	}

	in.admin = srv.Of(opts.Namespace)
	in.admin.Use(in.authenticate)
	in.admin.OnConnection(in.onAdmin)
	if !opts.ReadOnly {
		in.admin.On("emit", in.onEmit)
		in.admin.On("join", func(_ *socketio.Socket, e *socketio.Event) { in.onRooms(e, true) })
		in.admin.On("leave", func(_ *socketio.Socket, e *socketio.Event) { in.onRooms(e, false) })
		in.admin.On("_disconnect", in.onDisconnectCmd)
	}
	if !opts.Production {
		for _, n := range srv.Namespaces() {
			in.watch(n)
		}
	}
	for _, s := range srv.Engine().Sessions() {
		in.sessions[s.ID()] = struct{}{}
	}
	go in.loop()
	return in, nil
}

// Close stops the periodic events. The namespace stays registered.
func (in *Instrumentation) Close() {
	select {
	case <-in.stop:
	default:
		close(in.stop)
	}
	<-in.done
}

// Features returns the supportedFeatures sent in config.
func (in *Instrumentation) Features() []string { return slices.Clone(in.features) }

func (in *Instrumentation) authenticate(ctx context.Context, s *socketio.Socket) error {
	if in.opts.NoAuth {
		return nil
	}
	auth := s.Auth()
	if sid, _ := auth["sessionId"].(string); sid != "" {
		ok, err := in.opts.Sessions.Exists(ctx, sid)
		if err != nil {
			in.log.Warn("adminui: session store", "err", err)
		}
		if ok {
			return nil
		}
	}
	user, _ := auth["username"].(string)
	pass, _ := auth["password"].(string)
	if user == in.opts.Username && pass != "" &&
		bcrypt.CompareHashAndPassword([]byte(in.opts.PasswordHash), []byte(pass)) == nil {
		sid := randomID()
		if err := in.opts.Sessions.Save(ctx, sid); err != nil {
			in.log.Warn("adminui: session store", "err", err)
		}
		// Sent before the CONNECT answer is processed by the UI, as the
		// Node package does: the UI stores it and reconnects with it.
		s.Set(sessionKey{}, sid)
		return nil
	}
	return &socketio.ConnectError{Message: "invalid credentials", Data: map[string]any{"code": "ADMIN_UNAUTHORIZED"}}
}

type sessionKey struct{}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (in *Instrumentation) onAdmin(s *socketio.Socket) {
	if sid, ok := s.Get(sessionKey{}).(string); ok {
		_ = s.Emit("session", sid)
	}
	_ = s.Emit("config", map[string]any{"supportedFeatures": stringsAny(in.features)})
	if in.opts.Production {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Emit("all_sockets", toAny(in.allSockets(ctx)))
	}()
}

// watch reports connections and disconnections of a namespace.
func (in *Instrumentation) watch(n *socketio.Namespace) {
	name := n.Name()
	n.OnConnection(func(s *socketio.Socket) {
		st := socketState{nsp: name, id: s.ID(), transport: s.Transport(), rooms: sortedRooms(s.Rooms())}
		in.mu.Lock()
		in.known[name+"\x00"+s.ID()] = st
		in.mu.Unlock()
		in.emit("socket_connected", serializeLocal(s, st), jsNow())
	})
	n.OnDisconnect(func(s *socketio.Socket, reason string) {
		in.mu.Lock()
		delete(in.known, name+"\x00"+s.ID())
		in.reasons[reason]++
		in.mu.Unlock()
		in.emit("socket_disconnected", name, s.ID(), reason, jsNow())
	})
}

// emit broadcasts to every admin of the cluster.
func (in *Instrumentation) emit(event string, args ...any) {
	if err := in.admin.Emit(event, args...); err != nil {
		in.log.Debug("adminui: emit", "event", event, "err", err)
	}
}

func (in *Instrumentation) loop() {
	defer close(in.done)
	stats := time.NewTicker(in.opts.StatsInterval)
	poll := time.NewTicker(in.opts.Poll)
	defer stats.Stop()
	defer poll.Stop()
	in.emitStats()
	for {
		select {
		case <-in.stop:
			return
		case <-poll.C:
			if !in.opts.Production {
				in.diff()
			}
		case <-stats.C:
			in.emitStats()
		}
	}
}

// diff reports room and transport changes of local sockets.
func (in *Instrumentation) diff() {
	now := jsNow()
	for _, n := range in.srv.Namespaces() {
		name := n.Name()
		for _, s := range n.Sockets() {
			key := name + "\x00" + s.ID()
			cur := socketState{nsp: name, id: s.ID(), transport: s.Transport(), rooms: sortedRooms(s.Rooms())}
			in.mu.Lock()
			prev, ok := in.known[key]
			if ok {
				in.known[key] = cur
			}
			in.mu.Unlock()
			if !ok || !s.Connected() {
				continue // not announced yet, or gone
			}
			if prev.transport != cur.transport {
				in.emit("socket_updated", map[string]any{"id": cur.id, "nsp": name, "transport": cur.transport})
			}
			for _, r := range cur.rooms {
				if _, found := slices.BinarySearch(prev.rooms, r); !found {
					in.emit("room_joined", name, r, cur.id, now)
				}
			}
			for _, r := range prev.rooms {
				if _, found := slices.BinarySearch(cur.rooms, r); !found {
					in.emit("room_left", name, r, cur.id, now)
				}
			}
		}
	}
}

func sortedRooms(r []string) []string {
	r = slices.Clone(r)
	sort.Strings(r)
	return r
}

func (in *Instrumentation) emitStats() {
	eng := in.srv.Engine()
	sessions := eng.Sessions()
	polling := 0
	cur := make(map[string]struct{}, len(sessions))
	for _, s := range sessions {
		cur[s.ID()] = struct{}{}
		if s.Transport() == "polling" {
			polling++
		}
	}
	ts := time.Now().Truncate(time.Second).UnixMilli()
	events := []any{}
	in.mu.Lock()
	opened, closed := 0, 0
	for id := range cur {
		if _, ok := in.sessions[id]; !ok {
			opened++
		}
	}
	for id := range in.sessions {
		if _, ok := cur[id]; !ok {
			closed++
		}
	}
	in.sessions = cur
	if opened > 0 {
		events = append(events, map[string]any{"timestamp": ts, "type": "rawConnection", "count": opened})
	}
	reasons := in.reasons
	in.reasons = map[string]int{}
	in.mu.Unlock()
	// Disconnections by reason, as the sockets reported them; engine
	// sessions that closed without a socket count without a reason.
	counted := 0
	for _, r := range sortedKeys(reasons) {
		events = append(events, map[string]any{"timestamp": ts, "type": "rawDisconnection", "subType": r, "count": reasons[r]})
		counted += reasons[r]
	}
	if closed > counted {
		events = append(events, map[string]any{"timestamp": ts, "type": "rawDisconnection", "subType": "transport close", "count": closed - counted})
	}
	var nsps []map[string]any
	for _, n := range in.srv.Namespaces() {
		nsps = append(nsps, map[string]any{"name": n.Name(), "socketsCount": n.Count()})
	}
	sort.Slice(nsps, func(i, j int) bool { return nsps[i]["name"].(string) < nsps[j]["name"].(string) })
	in.emit("server_stats", map[string]any{
		"serverId":            in.opts.ServerID,
		"hostname":            in.hostname,
		"pid":                 os.Getpid(),
		"uptime":              time.Since(in.started).Seconds(),
		"clientsCount":        len(sessions),
		"pollingClientsCount": polling,
		"aggregatedEvents":    events,
		"namespaces":          toAny(nsps),
	})
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ---- commands ----

// target returns the namespace a command names; it never creates one.
func (in *Instrumentation) target(name string) (*socketio.Namespace, bool) {
	for _, n := range in.srv.Namespaces() {
		if n.Name() == name {
			return n, true
		}
	}
	return nil, false
}

func (in *Instrumentation) operator(n *socketio.Namespace, filter string) *socketio.BroadcastOperator {
	if filter != "" {
		return n.In(filter)
	}
	return n.To()
}

// onEmit: emit(nsp, filter, event, ...args).
func (in *Instrumentation) onEmit(_ *socketio.Socket, e *socketio.Event) {
	var nsp, filter, ev string
	if len(e.Args) < 3 || e.Decode(0, &nsp) != nil || e.Decode(2, &ev) != nil || ev == "" {
		in.log.Info("adminui: malformed emit command")
		return
	}
	_ = e.Decode(1, &filter) // null or absent filter: the whole namespace
	n, ok := in.target(nsp)
	if !ok {
		in.log.Info("adminui: emit to unknown namespace", "nsp", nsp)
		return
	}
	args := make([]any, 0, len(e.Args)-3)
	for i := 3; i < len(e.Args); i++ {
		var v any
		if err := e.Decode(i, &v); err != nil {
			in.log.Info("adminui: malformed emit argument", "err", err)
			return
		}
		args = append(args, v)
	}
	if err := in.operator(n, filter).Emit(ev, args...); err != nil {
		in.log.Info("adminui: emit", "err", err)
	}
}

// onRooms: join(nsp, room, filter) and leave(nsp, room, filter).
func (in *Instrumentation) onRooms(e *socketio.Event, join bool) {
	var nsp, room, filter string
	if len(e.Args) < 2 || e.Decode(0, &nsp) != nil || e.Decode(1, &room) != nil || room == "" {
		in.log.Info("adminui: malformed join/leave command")
		return
	}
	if len(e.Args) > 2 {
		_ = e.Decode(2, &filter)
	}
	n, ok := in.target(nsp)
	if !ok {
		return
	}
	if join {
		in.operator(n, filter).SocketsJoin(room)
	} else {
		in.operator(n, filter).SocketsLeave(room)
	}
}

// onDisconnectCmd: _disconnect(nsp, close, filter).
func (in *Instrumentation) onDisconnectCmd(_ *socketio.Socket, e *socketio.Event) {
	var nsp, filter string
	var closeConn bool
	if len(e.Args) < 1 || e.Decode(0, &nsp) != nil {
		in.log.Info("adminui: malformed _disconnect command")
		return
	}
	if len(e.Args) > 1 {
		_ = e.Decode(1, &closeConn)
	}
	if len(e.Args) > 2 {
		_ = e.Decode(2, &filter)
	}
	n, ok := in.target(nsp)
	if !ok {
		return
	}
	in.operator(n, filter).DisconnectSockets(closeConn)
}

// ---- serialization ----

// allSockets lists the sockets of every namespace on every node.
func (in *Instrumentation) allSockets(ctx context.Context) []map[string]any {
	out := []map[string]any{}
	for _, n := range in.srv.Namespaces() {
		infos, err := n.FetchSockets(ctx)
		if err != nil {
			in.log.Warn("adminui: fetchSockets", "nsp", n.Name(), "err", err)
		}
		for _, info := range infos {
			transport := ""
			if s, ok := n.Socket(info.ID); ok {
				transport = s.Transport()
			}
			out = append(out, serialize(info, n.Name(), transport))
		}
	}
	return out
}

func serializeLocal(s *socketio.Socket, st socketState) map[string]any {
	info := s.Info()
	info.Rooms = st.rooms
	return serialize(info, st.nsp, st.transport)
}

// Headers never sent to the admin namespace.
var hiddenHeaders = map[string]bool{
	"cookie": true, "authorization": true, "proxy-authorization": true, "set-cookie": true,
	"x-api-key": true, "sec-websocket-key": true,
}

// Query parameters never sent: the Engine.IO session id, and anything that
// looks like a credential.
var hiddenQuery = map[string]bool{"sid": true, "token": true, "auth": true, "access_token": true, "key": true, "apikey": true, "password": true}

// ClientID derives the UI's client id from a socket id: a hash, so neither
// the Engine.IO session id nor the socket id can be recovered from it.
func ClientID(socketID string) string {
	h := sha256.Sum256([]byte("adminui:" + socketID))
	return hex.EncodeToString(h[:6])
}

// serialize renders a socket as the UI expects it (serialize() in the npm
// package), without credentials: no auth payload, no cookie or
// authorization header, no session id in the query, no socket data.
func serialize(info adapter.SocketInfo, nsp, transport string) map[string]any {
	headers := map[string]any{}
	for k, v := range info.Handshake.Headers {
		if !hiddenHeaders[strings.ToLower(k)] {
			headers[k] = v
		}
	}
	query := map[string]any{}
	for k, v := range info.Handshake.Query {
		if !hiddenQuery[strings.ToLower(k)] {
			query[k] = v
		}
	}
	address := info.Handshake.Address
	if v, ok := headers["x-forwarded-for"].(string); ok && v != "" {
		address = v
	}
	rooms := info.Rooms
	if rooms == nil {
		rooms = []string{}
	}
	return map[string]any{
		"id":        info.ID,
		"clientId":  ClientID(info.ID),
		"transport": transport,
		"nsp":       nsp,
		"data":      map[string]any{},
		"handshake": map[string]any{
			"address": address,
			"headers": headers,
			"query":   query,
			"issued":  info.Handshake.Issued,
			"secure":  info.Handshake.Secure,
			"time":    info.Handshake.Time,
			"url":     stripSID(info.Handshake.URL),
			"xdomain": info.Handshake.XDomain,
		},
		"rooms": stringsAny(rooms),
	}
}

// stripSID removes credentials from a request URL's query.
func stripSID(u string) string {
	path, q, ok := strings.Cut(u, "?")
	if !ok {
		return u
	}
	var keep []string
	for _, kv := range strings.Split(q, "&") {
		k, _, _ := strings.Cut(kv, "=")
		if !hiddenQuery[strings.ToLower(k)] {
			keep = append(keep, kv)
		}
	}
	if len(keep) == 0 {
		return path
	}
	return fmt.Sprintf("%s?%s", path, strings.Join(keep, "&"))
}

// jsNow is the current time as JavaScript's Date.toJSON writes it, the form
// the UI receives from Node servers.
func jsNow() string { return time.Now().UTC().Format("2006-01-02T15:04:05.000Z") }

func stringsAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func toAny(m []map[string]any) []any {
	out := make([]any, len(m))
	for i, v := range m {
		out[i] = v
	}
	return out
}
