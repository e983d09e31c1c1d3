package publish

import (
	"bytes"
	"context"
	"encoding/json"
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
	"github.com/tradewire/tradewire/trading"
)

const testKey = "test-key-0123456789"

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// nspBroadcaster is trading.Broadcaster on a real Socket.IO namespace, the
// way the gateway wires it.
type nspBroadcaster struct{ nsp *socketio.Namespace }

func (b nspBroadcaster) Broadcast(_ context.Context, rooms, except []string, event string, data any) error {
	op := b.nsp.To(rooms...).Except(except...)
	if data == nil {
		return op.Emit(event)
	}
	return op.Emit(event, data)
}

// gateway is a real Socket.IO server with the trading handlers and the
// publish API on one httptest server.
type gateway struct {
	t   *testing.T
	url string
	nsp *socketio.Namespace
	api *Handler

	mu       sync.Mutex
	attached map[string]chan struct{}
	requests int // publish API requests served
	headers  []http.Header
}

func newGateway(t *testing.T) *gateway {
	t.Helper()
	lim, err := ratelimit.New(ratelimit.Config{EventsPerMinute: -1, Logger: quietLogger()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{t: t, attached: make(map[string]chan struct{})}
	h := trading.NewHandlers(func(userID string) (trading.Quota, error) {
		q, err := lim.NewSocket(userID)
		if err != nil {
			return nil, err
		}
		return q, nil
	}, quietLogger())
	sio := socketio.NewServer(socketio.Options{Logger: quietLogger()})
	g.nsp = sio.Of("/")
	g.nsp.Use(func(_ context.Context, s *socketio.Socket) error {
		uid, _ := s.Auth()["userId"].(string)
		trading.SetIdentity(s, &auth.Identity{UserID: uid, Tier: "premium"})
		return nil
	})
	g.nsp.OnConnection(func(s *socketio.Socket) {
		h.Attach(s)
		close(g.attachedCh(s.ID()))
	})
	g.api = NewHandler(nspBroadcaster{g.nsp}, []string{testKey, "second-key"}, quietLogger())
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", sio)
	g.api.Mount(mux)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/socket.io/" {
			g.mu.Lock()
			g.requests++
			g.headers = append(g.headers, r.Header.Clone())
			g.mu.Unlock()
		}
		mux.ServeHTTP(w, r)
	}))
	g.url = srv.URL
	t.Cleanup(func() {
		_ = sio.Close()
		srv.Close()
		_ = lim.Close()
	})
	return g
}

func (g *gateway) attachedCh(sid string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.attached[sid]
	if c == nil {
		c = make(chan struct{})
		g.attached[sid] = c
	}
	return c
}

// connect dials userID and subscribes it: each sub is an event and its
// argument, e.g. {"subscribe:watchlist", `["AAPL"]`}.
func (g *gateway) connect(userID string, subs ...[2]string) *sioclient.Stream {
	g.t.Helper()
	c, p := sioclient.DialStream(g.t, g.url, map[string]any{"userId": userID})
	if p.Kind != sioclient.KindConnect {
		g.t.Fatalf("connect %s: %q", userID, p.Raw)
	}
	select {
	case <-g.attachedCh(c.SID()):
	case <-time.After(sioclient.StreamWait):
		g.t.Fatalf("socket of %s not attached", userID)
	}
	for _, s := range subs {
		args := []string{}
		if s[1] != "" {
			args = append(args, s[1])
		}
		_, ack := c.Call(s[0], args...)
		var a map[string]any
		if len(ack.Args) != 1 || json.Unmarshal(ack.Args[0], &a) != nil || a["success"] != true {
			g.t.Fatalf("%s %s: ack %q", userID, s[0], ack.Raw)
		}
	}
	return c
}

var (
	subTrades    = [2]string{"subscribe:trades", ""}
	subPortfolio = [2]string{"subscribe:portfolio", ""}
)

func subWatch(syms ...string) [2]string {
	b, _ := json.Marshal(map[string]any{"symbols": syms})
	return [2]string{"subscribe:watchlist", string(b)}
}

// post sends body to the publish API with headers (key, value pairs).
func (g *gateway) post(path, body string, headers ...string) (int, http.Header, Response, string) {
	g.t.Helper()
	return postTo(g.t, g.url+path, body, headers...)
}

func postTo(t testing.TB, url, body string, headers ...string) (int, http.Header, Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out Response
	if ct := resp.Header.Get("Content-Type"); ct == "application/json" {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("response %q is not JSON: %v", raw, err)
		}
	}
	return resp.StatusCode, resp.Header, out, string(raw)
}

func bearer(key string) []string { return []string{"Authorization", "Bearer " + key} }

var authz = bearer(testKey)

// barrier broadcasts a "barrier" event to every socket and returns, for
// each client, the events received before it. Broadcasts reach a socket in
// the order they were made, so this shows exactly what each client got.
func (g *gateway) barrier(clients ...*sioclient.Stream) [][]sioclient.Packet {
	g.t.Helper()
	if st, _, r, raw := g.post("/api/v1/emit", `{"event":"barrier"}`, authz...); st != http.StatusAccepted || r.Accepted != 1 {
		g.t.Fatalf("barrier emit: %d %s", st, raw)
	}
	out := make([][]sioclient.Packet, len(clients))
	for i, c := range clients {
		for {
			p := c.Next()
			if p.Kind == sioclient.KindEvent && p.Name == "barrier" {
				break
			}
			if p.Kind == sioclient.KindClosed {
				g.t.Fatalf("client %d closed before the barrier", i)
			}
			out[i] = append(out[i], p)
		}
	}
	return out
}

func names(ps []sioclient.Packet) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func assertNames(t *testing.T, who string, got []sioclient.Packet, want ...string) {
	t.Helper()
	if n := names(got); !slices.Equal(n, want) && !(len(n) == 0 && len(want) == 0) {
		t.Errorf("%s received %v, want %v", who, raws(got), want)
	}
}

func raws(ps []sioclient.Packet) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Raw
	}
	return out
}

// broadcast is one call received by recorder.
type broadcast struct {
	rooms, except []string
	event         string
	data          any
}

// recorder is a Broadcaster recording its calls; it fails call number
// failAt (1-based) when set.
type recorder struct {
	mu     sync.Mutex
	calls  []broadcast
	failAt int
}

func (r *recorder) Broadcast(_ context.Context, rooms, except []string, event string, data any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, broadcast{slices.Clone(rooms), slices.Clone(except), event, data})
	if len(r.calls) == r.failAt {
		return errBroadcast
	}
	return nil
}

func (r *recorder) take() []broadcast {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.calls
	r.calls = nil
	return out
}
