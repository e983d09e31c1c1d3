// Package socketio implements a Socket.IO protocol 5 server on top of
// package engineio: namespaces, connection middleware, events, acks both
// ways, binary attachments, rooms and broadcasts through an adapter, and
// connection state recovery.
package socketio

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/tradewire/tradewire/adapter"
	"github.com/tradewire/tradewire/engineio"
)

// Options configure a Server.
type Options struct {
	Engine engineio.Options
	// Adapter builds each namespace's adapter (in-memory when nil).
	Adapter adapter.Factory
	// ConnectTimeout closes connections that join no namespace (default 45s).
	ConnectTimeout time.Duration
	// Recovery enables connection state recovery when MaxDisconnection > 0.
	Recovery RecoveryOptions
	// KeepHeaders, when not nil, trims the handshake to these request
	// headers (and drops the query) once a socket has connected: less memory
	// per connection, and no session cookie kept after authentication.
	KeepHeaders []string
	// MaxInbox bounds packets queued for handling per connection; a client
	// that floods beyond it is disconnected (default 1000).
	MaxInbox int
	Logger   *slog.Logger
	// Observer receives events for metrics (optional).
	Observer Observer
}

// RecoveryOptions configure connection state recovery.
type RecoveryOptions struct {
	// MaxDisconnection is how long a session can be restored (0: off).
	MaxDisconnection time.Duration
	// SkipMiddlewares skips middlewares for a recovered connection.
	SkipMiddlewares bool
}

// Observer is notified of socket-level events; implementations must be fast.
type Observer interface {
	EventIn(name string)
	EventOut(name string, recipients int)
	Broadcast(recipients int, took time.Duration)
	SlowConsumerDropped()
}

// Server is a Socket.IO server.
type Server struct {
	opts Options
	eio  *engineio.Server
	log  *slog.Logger

	mu   sync.RWMutex
	nsps map[string]*Namespace
}

// NewServer returns a Server with the main namespace "/" created.
func NewServer(opts Options) *Server {
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 45 * time.Second
	}
	if opts.MaxInbox <= 0 {
		opts.MaxInbox = 1000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Engine.Logger == nil {
		opts.Engine.Logger = opts.Logger
	}
	if opts.Adapter == nil {
		opts.Adapter = adapter.MemoryFactory(adapter.Options{RecoveryWindow: opts.Recovery.MaxDisconnection})
	}
	s := &Server{
		opts: opts,
		eio:  engineio.NewServer(opts.Engine),
		log:  opts.Logger,
		nsps: make(map[string]*Namespace),
	}
	s.eio.OnConnection = s.onEngineConnection
	s.Of("/")
	return s
}

// Engine returns the Engine.IO server underneath.
func (s *Server) Engine() *engineio.Server { return s.eio }

// ServeHTTP serves the Socket.IO transport path.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.eio.ServeHTTP(w, r) }

// Of returns the namespace with that name, creating it on first use.
func (s *Server) Of(name string) *Namespace {
	if name == "" || name[0] != '/' {
		name = "/" + name
	}
	s.mu.RLock()
	n := s.nsps[name]
	s.mu.RUnlock()
	if n != nil {
		return n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n = s.nsps[name]; n != nil {
		return n
	}
	n = newNamespace(s, name)
	s.nsps[name] = n
	// Bounded: an unreachable cluster must not stop the server from
	// starting (readiness reports the adapter until it is subscribed).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.adapter.Init(ctx); err != nil {
		s.log.Error("adapter init failed; continuing, readiness stays false until it recovers", "nsp", name, "err", err)
	}
	return n
}

func (s *Server) namespace(name string) *Namespace {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.nsps[name]
}

// Namespaces returns every namespace.
func (s *Server) Namespaces() []*Namespace {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Namespace, 0, len(s.nsps))
	for _, n := range s.nsps {
		out = append(out, n)
	}
	return out
}

// Close disconnects every client and closes the adapters.
func (s *Server) Close() error {
	s.eio.Close()
	for _, n := range s.Namespaces() {
		_ = n.adapter.Close()
	}
	return nil
}

func (s *Server) onEngineConnection(sess *engineio.Session) {
	c := newClient(s, sess)
	sess.SetHandler(c)
}
