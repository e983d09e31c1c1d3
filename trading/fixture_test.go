package trading

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tradewire/tradewire/auth"
	"github.com/tradewire/tradewire/internal/testutil/sioclient"
	"github.com/tradewire/tradewire/ratelimit"
	"github.com/tradewire/tradewire/socketio"
)

// fixture is a real Socket.IO server on a free port with the trading
// handlers attached, an in-memory rate limiter, and bookkeeping of the
// server-side sockets and quotas.
type fixture struct {
	t   *testing.T
	url string
	sio *socketio.Server
	nsp *socketio.Namespace
	h   *Handlers
	lim *ratelimit.Limiter

	mu      sync.Mutex
	sockets map[string]*socketio.Socket
	quotas  map[string][]*ratelimit.Socket // by user, in creation order
	signals map[string]chan struct{}
	reasons map[string]string // disconnect reason by socket id
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newFixture starts the server. The connection middleware reads the identity
// from the CONNECT auth payload {userId, role, tier}; {"anonymous":true}
// connects without identity.
func newFixture(t *testing.T, cfg ratelimit.Config) *fixture {
	t.Helper()
	return newFixtureWith(t, cfg, socketio.Options{})
}

// newFixtureWith is newFixture with Socket.IO server options.
func newFixtureWith(t *testing.T, cfg ratelimit.Config, opts socketio.Options) *fixture {
	t.Helper()
	cfg.Logger = quietLogger()
	lim, err := ratelimit.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{
		t:       t,
		lim:     lim,
		sockets: make(map[string]*socketio.Socket),
		quotas:  make(map[string][]*ratelimit.Socket),
		signals: make(map[string]chan struct{}),
		reasons: make(map[string]string),
	}
	f.h = NewHandlers(func(userID string) (Quota, error) {
		q, err := lim.NewSocket(userID)
		if err != nil {
			return nil, err
		}
		f.mu.Lock()
		f.quotas[userID] = append(f.quotas[userID], q)
		f.mu.Unlock()
		return q, nil
	}, quietLogger())
	opts.Logger = quietLogger()
	f.sio = socketio.NewServer(opts)
	f.nsp = f.sio.Of("/")
	f.nsp.Use(func(_ context.Context, s *socketio.Socket) error {
		a := s.Auth()
		if a["anonymous"] == true {
			return nil
		}
		uid, ok := a["userId"].(string)
		if !ok {
			return &socketio.ConnectError{Message: "userId required"}
		}
		role, _ := a["role"].(string)
		tier, _ := a["tier"].(string)
		SetIdentity(s, &auth.Identity{UserID: uid, Role: role, Tier: tier})
		return nil
	})
	f.nsp.OnConnection(func(s *socketio.Socket) {
		f.h.Attach(s)
		f.mu.Lock()
		f.sockets[s.ID()] = s
		f.mu.Unlock()
		// Registered after Attach's own disconnect handler, so it runs
		// after the handlers' bookkeeping.
		s.OnDisconnect(func(reason string) {
			f.mu.Lock()
			f.reasons[s.ID()] = reason
			f.mu.Unlock()
			f.signal(s.ID(), "disconnected")
		})
		if !s.Connected() {
			f.signal(s.ID(), "disconnected")
		}
		f.signal(s.ID(), "attached")
	})
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", f.sio)
	srv := httptest.NewServer(mux)
	f.url = srv.URL
	t.Cleanup(func() {
		_ = f.sio.Close()
		srv.Close()
		_ = lim.Close()
	})
	return f
}

func (f *fixture) ch(sid, what string) chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := sid + "|" + what
	c := f.signals[k]
	if c == nil {
		c = make(chan struct{})
		f.signals[k] = c
	}
	return c
}

func (f *fixture) signal(sid, what string) {
	c := f.ch(sid, what)
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-c:
	default:
		close(c)
	}
}

func (f *fixture) wait(sid, what string) {
	f.t.Helper()
	select {
	case <-f.ch(sid, what):
	case <-time.After(sioclient.StreamWait):
		f.t.Fatalf("socket %s: not %s within %v", sid, what, sioclient.StreamWait)
	}
}

// connect dials a user and waits until the handlers are attached.
func (f *fixture) connect(userID, role, tier string) *sioclient.Stream {
	f.t.Helper()
	c, p := sioclient.DialStream(f.t, f.url, map[string]any{"userId": userID, "role": role, "tier": tier})
	if p.Kind != sioclient.KindConnect {
		f.t.Fatalf("connect %s: got %q", userID, p.Raw)
	}
	f.wait(c.SID(), "attached")
	return c
}

// rooms returns the socket's rooms as the adapter knows them, sorted,
// without the socket's own id.
func (f *fixture) rooms(sid string) []string {
	var out []string
	for _, r := range f.nsp.Adapter().SocketRooms(sid) {
		if r != sid {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

func (f *fixture) quota(userID string, i int) *ratelimit.Socket {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if i >= len(f.quotas[userID]) {
		f.t.Fatalf("user %s has no quota %d", userID, i)
	}
	return f.quotas[userID][i]
}

func (f *fixture) socket(sid string) *socketio.Socket {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.sockets[sid]
	if s == nil {
		f.t.Fatalf("no server socket %s", sid)
	}
	return s
}

func (f *fixture) reason(sid string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reasons[sid]
}
