// Package engineio implements an Engine.IO v4 server: the handshake, HTTP
// long-polling, the websocket transport, the polling→websocket upgrade,
// server-side heartbeats and the HTTP error table. It carries opaque
// messages and knows nothing about Socket.IO.
package engineio

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tradewire/tradewire/internal/timewheel"
	"github.com/tradewire/tradewire/transport/websocket"
)

// Options configure a Server.
type Options struct {
	PingInterval   time.Duration // default 25s
	PingTimeout    time.Duration // default 20s
	UpgradeTimeout time.Duration // default 10s
	// MaxPayload bounds a polling POST body and a websocket message (default 1e6).
	MaxPayload int
	// MaxBufferedBytes bounds what a session may have queued before it is
	// closed as a slow consumer (default 4 MiB).
	MaxBufferedBytes int
	// KeepHeaders, when not nil, are the only request headers a session
	// keeps from its handshake (the rest are dropped at once, so a client
	// that never authenticates holds none of them); nil keeps them all.
	KeepHeaders []string
	// Origins is the CORS / Origin policy, applied to polling, preflights and
	// websocket upgrades.
	Origins OriginPolicy
	// AllowRequest may refuse a handshake (e.g. rate limits) with a *RequestError.
	AllowRequest func(r *http.Request) error
	// NewID, when set, generates session ids (20 URL-safe characters); a
	// cluster embeds the owner node in them so any node can route a request.
	NewID func() string
	// Forward, when set, is offered every request whose sid is not a local
	// session; it returns true when it served the request (e.g. proxied it
	// to the node that owns the session). This removes the need for sticky
	// sessions behind a round-robin load balancer.
	Forward func(w http.ResponseWriter, r *http.Request, sid string) bool
	// Tag, when set, is called once per accepted handshake; its result is
	// kept in Handshake.Tag for the layers above (e.g. a rate-limit decision).
	Tag func(r *http.Request) any
	// Transports allowed; both when empty.
	Transports []string
	// WebSocket configures the websocket connection layer.
	WebSocket websocket.Options
	// Logger for transport-level events (defaults to slog.Default()).
	Logger *slog.Logger
	// Observer receives connection-level events for metrics (optional).
	Observer Observer
}

// Observer is notified of transport events; implementations must be fast.
type Observer interface {
	SessionOpened(transport string)
	SessionClosed(transport string, reason string)
	SessionUpgraded()
	HandshakeRejected(code int)
}

// Server is an Engine.IO server. Mount it at the transport path
// (e.g. /engine.io/ or /socket.io/).
type Server struct {
	opts  Options
	ws    *websocket.Server
	log   *slog.Logger
	wheel *timewheel.Wheel // every session's heartbeat timer
	start time.Time        // monotonic origin of the sessions' heartbeat times
	// conflated counts polling packets replaced by a newer one of their key.
	conflated atomic.Int64

	// OnConnection is called for each new session before any message of it
	// is delivered. It must set the session's handlers.
	OnConnection func(s *Session)

	mu       sync.RWMutex
	sessions map[string]*Session
	closing  bool
}

// NewServer returns a Server with opts.
func NewServer(opts Options) *Server {
	if opts.PingInterval <= 0 {
		opts.PingInterval = 25 * time.Second
	}
	if opts.PingTimeout <= 0 {
		opts.PingTimeout = 20 * time.Second
	}
	if opts.UpgradeTimeout <= 0 {
		opts.UpgradeTimeout = 10 * time.Second
	}
	if opts.MaxPayload <= 0 {
		opts.MaxPayload = 1_000_000
	}
	if opts.MaxBufferedBytes <= 0 {
		opts.MaxBufferedBytes = 4 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	wsOpts := opts.WebSocket
	wsOpts.MaxMessage = opts.MaxPayload
	wsOpts.MaxQueue = opts.MaxBufferedBytes
	return &Server{
		opts:     opts,
		start:    time.Now(),
		wheel:    timewheel.New(heartbeatTick(opts.PingInterval, opts.PingTimeout), 1024),
		ws:       websocket.NewServer(wsOpts),
		log:      opts.Logger,
		sessions: make(map[string]*Session),
	}
}

// heartbeatTick is the wheel resolution: a twentieth of the shorter
// heartbeat period, between 1 ms and 50 ms.
func heartbeatTick(interval, timeout time.Duration) time.Duration {
	return min(max(min(interval, timeout)/20, time.Millisecond), 50*time.Millisecond)
}

// Conflated returns the number of queued packets replaced by a newer one of
// the same conflation key (quotes of a symbol for a lagging client), on
// both transports, since the server started.
func (srv *Server) Conflated() int64 { return srv.conflated.Load() + srv.ws.Conflated() }

// QueuedBytes returns the bytes waiting to be written to all clients.
func (srv *Server) QueuedBytes() int64 {
	var n int64
	for _, s := range srv.Sessions() {
		n += int64(s.Buffered())
	}
	return n
}

// Options returns the effective options.
func (srv *Server) Options() Options { return srv.opts }

// Count returns the number of open sessions.
func (srv *Server) Count() int {
	srv.mu.RLock()
	defer srv.mu.RUnlock()
	return len(srv.sessions)
}

// Session returns the open session with id sid.
func (srv *Server) Session(sid string) (*Session, bool) {
	srv.mu.RLock()
	defer srv.mu.RUnlock()
	s, ok := srv.sessions[sid]
	return s, ok
}

// Sessions returns a snapshot of the open sessions.
func (srv *Server) Sessions() []*Session {
	srv.mu.RLock()
	defer srv.mu.RUnlock()
	out := make([]*Session, 0, len(srv.sessions))
	for _, s := range srv.sessions {
		out = append(out, s)
	}
	return out
}

// StopAccepting makes the server refuse new handshakes (HTTP 503), for a
// graceful shutdown.
func (srv *Server) StopAccepting() {
	srv.mu.Lock()
	srv.closing = true
	srv.mu.Unlock()
}

// Close closes every session with reason "forced close", then stops the
// websocket layer's loops once the sessions are gone (at most a second).
func (srv *Server) Close() {
	srv.StopAccepting()
	for _, s := range srv.Sessions() {
		s.Close(ReasonForcedClose)
	}
	deadline := time.Now().Add(time.Second)
	for srv.Count() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	srv.ws.Close()
	srv.wheel.Close()
}

// NewID returns a 20-character id: 15 random bytes, base64url.
func NewID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (srv *Server) transportAllowed(t string) bool {
	if len(srv.opts.Transports) == 0 {
		return true
	}
	for _, a := range srv.opts.Transports {
		if a == t {
			return true
		}
	}
	return false
}

func (srv *Server) reject(w http.ResponseWriter, code int) {
	if srv.opts.Observer != nil {
		srv.opts.Observer.HandshakeRejected(code)
	}
	writeCodeError(w, code)
}

// clock returns the monotonic time since the server started: 8 bytes per
// session instead of a time.Time's 24.
func (srv *Server) clock() time.Duration { return time.Since(srv.start) }

// ServeHTTP handles every Engine.IO request.
func (srv *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if r.Method == http.MethodOptions {
		if !srv.opts.Origins.Allow(r) {
			srv.reject(w, CodeForbidden)
			return
		}
		srv.opts.Origins.preflight(w, r)
		return
	}
	if !srv.opts.Origins.Allow(r) {
		// Refuse foreign origins on every transport: a cookie-authenticated
		// websocket from another site is cross-site websocket hijacking.
		srv.reject(w, CodeForbidden)
		return
	}
	srv.opts.Origins.setHeaders(w, r)
	if q.Get("EIO") != "4" {
		srv.reject(w, CodeUnsupportedVersion)
		return
	}
	// The constant, not the query's value: that is a slice of the request
	// line, and a session keeping it would keep the whole line.
	var transport string
	switch q.Get("transport") {
	case transportPolling:
		transport = transportPolling
	case transportWebSocket:
		transport = transportWebSocket
	}
	if transport == "" || !srv.transportAllowed(transport) {
		srv.reject(w, CodeUnknownTransport)
		return
	}
	sid := q.Get("sid")
	if sid == "" {
		srv.handshake(w, r, transport)
		return
	}
	s, ok := srv.Session(sid)
	if !ok && srv.opts.Forward != nil && srv.opts.Forward(w, r, sid) {
		return
	}
	if transport == transportWebSocket {
		if !ok {
			srv.reject(w, CodeUnknownSID)
			return
		}
		s.serveUpgrade(w, r)
		return
	}
	if !ok {
		srv.reject(w, CodeUnknownSID)
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.servePoll(w, r)
	case http.MethodPost:
		s.servePost(w, r)
	default:
		writeError(w, http.StatusInternalServerError, CodeBadRequest, "")
	}
}

func (srv *Server) handshake(w http.ResponseWriter, r *http.Request, transport string) {
	if r.Method != http.MethodGet {
		srv.reject(w, CodeBadHandshakeMethod)
		return
	}
	if transport == transportWebSocket {
		if err := websocket.CheckRequest(r); err != nil {
			srv.reject(w, CodeBadRequest)
			return
		}
	}
	srv.mu.RLock()
	closing := srv.closing
	srv.mu.RUnlock()
	if closing {
		writeError(w, http.StatusServiceUnavailable, CodeForbidden, "Server is shutting down")
		return
	}
	if srv.opts.AllowRequest != nil {
		if err := srv.opts.AllowRequest(r); err != nil {
			var re *RequestError
			if !errors.As(err, &re) {
				re = &RequestError{Message: err.Error()}
			}
			for k, v := range re.Header {
				w.Header()[k] = v
			}
			status, code := re.Status, re.Code
			if status == 0 {
				status, code = http.StatusForbidden, CodeForbidden
			}
			if srv.opts.Observer != nil {
				srv.opts.Observer.HandshakeRejected(code)
			}
			writeError(w, status, code, re.Message)
			return
		}
	}
	id := NewID()
	if srv.opts.NewID != nil {
		id = srv.opts.NewID()
	}
	s := newSession(srv, id, r, transport)
	if srv.opts.Tag != nil {
		s.hs.Tag = srv.opts.Tag(r)
	}
	srv.mu.Lock()
	srv.sessions[s.id] = s
	srv.mu.Unlock()
	if srv.OnConnection != nil {
		srv.OnConnection(s)
	}
	if srv.opts.Observer != nil {
		srv.opts.Observer.SessionOpened(transport)
	}
	open := s.openPacket(transport == transportPolling)
	if transport == transportWebSocket {
		_, err := srv.ws.UpgradeWith(w, r, (*wsHandler)(s), websocket.UpgradeOptions{
			Initial: [][]byte{open.WebSocketFrame()},
			Before:  s.attachWebSocket, // before the first read: no message or close is missed
		})
		if err != nil {
			s.onTransportClose(ReasonTransportError, err)
			return
		}
		s.startHeartbeat()
		return
	}
	s.startHeartbeat()
	s.writePolling(w, r, []*Packet{open})
}

func (srv *Server) remove(s *Session) {
	srv.mu.Lock()
	if srv.sessions[s.id] == s {
		delete(srv.sessions, s.id)
	}
	srv.mu.Unlock()
}

func msInt(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// Shutdown closes every session and waits (until ctx ends) for them to go.
func (srv *Server) Shutdown(ctx context.Context) error {
	srv.Close()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for srv.Count() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	srv.ws.Close()
	return nil
}
