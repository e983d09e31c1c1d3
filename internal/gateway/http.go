package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/tradewire/tradewire/adapter/redisadapter"
	"github.com/tradewire/tradewire/auth"
	"github.com/tradewire/tradewire/publish"
	"github.com/tradewire/tradewire/trading"
	"github.com/tradewire/tradewire/web"
)

func (g *Gateway) setupHTTP() {
	mux := http.NewServeMux()
	path := g.cfg.Path
	mux.Handle(path, g.sio)
	if g.cfg.AdminAddr != "" {
		mux.Handle("GET /healthz", g.health.LiveHandler())
		mux.Handle("GET /readyz", http.HandlerFunc(g.bareReady))
		g.setupAdmin()
	} else {
		g.health.Mount(mux)
		if g.metrics != nil {
			mux.Handle("GET /metrics", g.metrics.Handler())
		}
	}
	keys := g.cfg.APIKeys
	if g.cfg.DevMode() {
		// Always a key the dev banner can print, without logging a real one.
		g.devKey = "dev-" + randomHex(16)
		keys = append(append([]string(nil), keys...), g.devKey)
	}
	g.api = publish.NewHandler(g, keys, g.log)
	g.api.Mount(mux)
	mux.Handle("GET /api/v1/stats", http.HandlerFunc(g.serveStats))
	mux.Handle("GET /api/v1/users/{id}/connections", http.HandlerFunc(g.serveUserConnections))
	mux.Handle("GET /api/v1/rooms/{room}/sockets", http.HandlerFunc(g.serveRoomSockets))
	if g.dev != nil {
		mux.Handle("POST /dev/login", http.HandlerFunc(g.devLogin))
		mux.Handle("POST /dev/logout", http.HandlerFunc(g.devLogout))
	}
	if g.cfg.Dashboard {
		// The dashboard takes / (web/dist); the text summary moves to /info.
		dash := web.Handler()
		mux.Handle("GET /{$}", dash)
		mux.Handle("GET /assets/", dash)
		mux.Handle("GET /info", http.HandlerFunc(g.serveIndex))
	} else {
		mux.Handle("GET /{$}", http.HandlerFunc(g.serveIndex))
	}
	g.mux = mux
}

// Stats is the body of GET /api/v1/stats.
type Stats struct {
	NodeID        string         `json:"nodeId"`
	UptimeSeconds float64        `json:"uptimeSeconds"`
	Connections   int            `json:"connections"`
	Users         int            `json:"users"`
	Rooms         int            `json:"rooms"`
	Namespaces    map[string]int `json:"namespaces"`
	Goroutines    int            `json:"goroutines"`
	Draining      bool           `json:"draining"`
	LimiterMode   string         `json:"limiterMode"`
	// Cluster is set when the Redis adapter is on.
	Cluster *ClusterStats `json:"cluster,omitempty"`
}

// ClusterStats are cluster-wide figures (each costs a request to every node).
type ClusterStats struct {
	Nodes       []redisadapter.NodeInfo `json:"nodes"`
	Connections int                     `json:"connections"`
	Users       int                     `json:"users"`
	Rooms       int                     `json:"rooms"`
	Error       string                  `json:"error,omitempty"`
}

// clusterStats asks every node (through the adapter) for the cluster view.
func (g *Gateway) clusterStats(ctx context.Context) *ClusterStats {
	cs := &ClusterStats{}
	var err error
	if cs.Nodes, err = g.node.Nodes(ctx); err != nil {
		cs.Error = err.Error()
		return cs
	}
	ids, err := g.nsp.Adapter().Sockets(ctx, nil)
	if err != nil {
		cs.Error = err.Error()
	}
	cs.Connections = len(ids)
	rooms, err := g.nsp.Adapter().AllRooms(ctx)
	if err != nil {
		cs.Error = err.Error()
	}
	for _, r := range rooms {
		if strings.HasPrefix(r, trading.UserRoomPrefix) {
			cs.Users++
		}
	}
	cs.Rooms = len(rooms)
	return cs
}

// Stats returns this node's statistics.
func (g *Gateway) Stats() Stats {
	st := Stats{
		NodeID:        g.cfg.NodeID,
		UptimeSeconds: time.Since(g.started).Seconds(),
		Connections:   g.sio.Engine().Count(),
		Users:         g.limiter.Users(),
		Namespaces:    map[string]int{},
		Goroutines:    runtime.NumGoroutine(),
		Draining:      g.health.Draining(),
		LimiterMode:   g.limiter.Mode().String(),
	}
	for _, n := range g.sio.Namespaces() {
		st.Namespaces[n.Name()] = n.Count()
		st.Rooms += len(n.Adapter().LocalRooms())
	}
	return st
}

func (g *Gateway) serveStats(w http.ResponseWriter, r *http.Request) {
	if !g.canRead(w, r) {
		return
	}
	st := g.Stats()
	if g.node != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 6*time.Second)
		st.Cluster = g.clusterStats(ctx)
		cancel()
	}
	writeJSON(w, http.StatusOK, st)
}

// serveUserConnections answers how many sockets a user has, cluster-wide.
func (g *Gateway) serveUserConnections(w http.ResponseWriter, r *http.Request) {
	if !g.canRead(w, r) {
		return
	}
	id := r.PathValue("id")
	ctx, cancel := context.WithTimeout(r.Context(), 6*time.Second)
	defer cancel()
	ids, err := g.nsp.Adapter().Sockets(ctx, []string{trading.UserRoom(id)})
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": map[string]string{"code": "CLUSTER_UNAVAILABLE", "message": err.Error()}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"userId": id, "connections": len(ids)})
}

// serveRoomSockets lists the socket ids in a room, cluster-wide.
func (g *Gateway) serveRoomSockets(w http.ResponseWriter, r *http.Request) {
	if !g.canRead(w, r) {
		return
	}
	room := r.PathValue("room")
	ctx, cancel := context.WithTimeout(r.Context(), 6*time.Second)
	defer cancel()
	ids, err := g.nsp.Adapter().Sockets(ctx, []string{room})
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": map[string]string{"code": "CLUSTER_UNAVAILABLE", "message": err.Error()}})
		return
	}
	if ids == nil {
		ids = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"room": room, "sockets": ids})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type devLoginRequest struct {
	UserID string `json:"userId"`
	Role   string `json:"role"`
	Tier   string `json:"tier"`
}

// devLogin creates a memory session (dev mode only) and sets the signed
// cookie, as the Express app would after a Passport login.
func (g *Gateway) devLogin(w http.ResponseWriter, r *http.Request) {
	var req devLoginRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil || req.UserID == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"code": "INVALID_PAYLOAD", "message": `expected {"userId": "...", "role": "user|admin", "tier": "free|premium|enterprise"}`}})
		return
	}
	if req.Role == "" {
		req.Role = "user"
	}
	if req.Tier == "" {
		req.Tier = "premium"
	}
	sid, err := g.dev.Create(r.Context(), req.UserID, req.Role, req.Tier)
	if err != nil {
		g.log.Warn("dev login failed", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": map[string]string{"code": "STORE_UNAVAILABLE", "message": "session store unavailable"}})
		return
	}
	signed := auth.Sign(sid, g.secrets[0])
	http.SetCookie(w, &http.Cookie{Name: g.cfg.SessionCookie, Value: url.QueryEscape(signed), Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	writeJSON(w, http.StatusOK, map[string]any{
		"userId": req.UserID, "role": req.Role, "tier": req.Tier,
		"sessionID": signed,
		"cookie":    g.cfg.SessionCookie + "=" + url.QueryEscape(signed),
	})
}

// devLogout destroys a dev session ({"sessionID": "s:..."}).
func (g *Gateway) devLogout(w http.ResponseWriter, r *http.Request) {
	var req struct {
		SessionID string `json:"sessionID"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"code": "INVALID_PAYLOAD", "message": `expected {"sessionID": "s:..."}`}})
		return
	}
	sid, ok := auth.Unsign(req.SessionID, g.secrets)
	if !ok {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"code": "UNAUTHORIZED", "message": "bad session id"}})
		return
	}
	if err := g.dev.Destroy(r.Context(), sid); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": map[string]string{"code": "STORE_UNAVAILABLE", "message": "session store unavailable"}})
		return
	}
	g.authn.Invalidate(sid)
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
}

func (g *Gateway) serveIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	mode := "production"
	if g.cfg.DevMode() {
		mode = "dev mode (memory sessions, POST /dev/login, demo quote feed)"
	}
	_, _ = w.Write([]byte("tradewire gateway — " + mode + "\n" +
		"Socket.IO endpoint: " + g.cfg.Path + "\n" +
		"Health: /healthz /readyz   Metrics: /metrics   Publish: POST /api/v1/events, /api/v1/emit\n" +
		"Docs: docs/API.md\n"))
}

// canRead checks that r carries an API key allowed to read the cluster
// views, answering 401 or 403 otherwise.
func (g *Gateway) canRead(w http.ResponseWriter, r *http.Request) bool {
	known, ok := g.api.Allowed(r, publish.ScopeRead)
	switch {
	case !known:
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]string{"code": "UNAUTHORIZED", "message": "missing or invalid API key"}})
	case !ok:
		writeJSON(w, http.StatusForbidden, map[string]any{"error": map[string]string{"code": "FORBIDDEN", "message": "this API key may not read the cluster views"}})
	}
	return ok
}

// setupAdmin builds the admin port's routes: metrics, the detailed
// readiness report and pprof.
func (g *Gateway) setupAdmin() {
	am := http.NewServeMux()
	g.health.Mount(am)
	if g.metrics != nil {
		am.Handle("GET /metrics", g.metrics.Handler())
	}
	am.HandleFunc("/debug/pprof/", pprof.Index)
	am.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	am.HandleFunc("/debug/pprof/profile", pprof.Profile)
	am.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	am.HandleFunc("/debug/pprof/trace", pprof.Trace)
	g.adminMux = am
}

// bareReady is the public /readyz when an admin port exists: the status
// only, without the names and errors of the dependencies.
func (g *Gateway) bareReady(w http.ResponseWriter, r *http.Request) {
	rep := g.health.Check(r.Context())
	if rep.Ready() {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
		return
	}
	writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
}
