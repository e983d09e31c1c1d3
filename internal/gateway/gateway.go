// Package gateway assembles tradewire from its parts: configuration, the
// Socket.IO server, session auth, rate limits, the trading handlers, the
// publish API, health, metrics and graceful shutdown. It is wiring only.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/tradewire/tradewire/acklog"
	"github.com/tradewire/tradewire/adapter"
	"github.com/tradewire/tradewire/adapter/redisadapter"
	"github.com/tradewire/tradewire/auth"
	"github.com/tradewire/tradewire/auth/memstore"
	"github.com/tradewire/tradewire/auth/mongostore"
	"github.com/tradewire/tradewire/auth/redisstore"
	"github.com/tradewire/tradewire/cluster"
	"github.com/tradewire/tradewire/engineio"
	"github.com/tradewire/tradewire/ingest"
	"github.com/tradewire/tradewire/internal/clientip"
	"github.com/tradewire/tradewire/internal/config"
	"github.com/tradewire/tradewire/internal/health"
	"github.com/tradewire/tradewire/internal/metrics"
	"github.com/tradewire/tradewire/publish"
	"github.com/tradewire/tradewire/ratelimit"
	recoverystore "github.com/tradewire/tradewire/recovery"
	"github.com/tradewire/tradewire/socketio"
	"github.com/tradewire/tradewire/trading"
	"github.com/tradewire/tradewire/transport/websocket"
)

// Gateway is one tradewire node.
type Gateway struct {
	cfg     *config.Config
	log     *slog.Logger
	metrics *metrics.Metrics
	health  *health.Health
	started time.Time

	sio   *socketio.Server
	nsp   *socketio.Namespace
	rdb   redis.UniversalClient
	mongo *mongo.Client
	authn *auth.Authenticator
	// users is the user store (nil: roles are the default), re-read at
	// revalidation so a role or tier change takes effect on live sockets.
	users        auth.UserStore
	recheckRound int // revalidation rounds, owned by revalidateLoop
	revalTick    int // revalidation ticks (one shard each), owned by revalidateLoop
	hsGuard      *handshakeGuard
	devStore     *memstore.Store
	dev          devSessions
	devKey       string
	secrets      []string
	limiter      *ratelimit.Limiter
	node         *redisadapter.Node
	router       *cluster.Router
	// sessionRDB is the sessions' own Redis (TRADEWIRE_SESSION_REDIS_URL).
	sessionRDB redis.UniversalClient
	recovery   *recoverystore.Store
	ingest     *ingest.Consumer
	ips        *clientip.Resolver
	handlers   *trading.Handlers
	emitter    *trading.Emitter
	api        *publish.Handler

	mux        *http.ServeMux
	adminMux   *http.ServeMux // TRADEWIRE_ADMIN_ADDR routes (nil without it)
	recent     *recentIDs
	inflight   sync.WaitGroup
	stop       chan struct{}
	stopIngest func()
	acks       *acklog.Log
	stopRouter func()
	stopOnce   sync.Once
	// demoDone is closed when the demo feed has stopped (nil without it):
	// shutdown waits for it before waiting for in-flight publishes.
	demoDone chan struct{}
}

// New builds a gateway from cfg: clients for Redis and MongoDB when
// configured (they connect lazily; readiness reports them), the Socket.IO
// server, auth, limits and routes. Invalid settings fail here.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Gateway, error) {
	g := &Gateway{cfg: cfg, log: log, started: time.Now(), stop: make(chan struct{}), recent: newRecentIDs(time.Hour, 200000)}
	if cfg.Metrics {
		g.metrics = metrics.New(metrics.Options{EventNames: trading.EventNames()})
	}
	g.health = health.New(health.Options{})
	g.ips = clientip.New(cfg.TrustedProxies, clientip.XForwardedFor)

	if cfg.RedisURL != "" {
		rdb, err := newRedis(cfg)
		if err != nil {
			return nil, err
		}
		g.rdb = rdb
		g.health.Register("redis", func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
	}
	if err := g.setupAuth(ctx); err != nil {
		g.closeClients()
		return nil, err
	}
	if err := g.setupLimiter(); err != nil {
		g.closeClients()
		return nil, err
	}
	g.hsGuard = newHandshakeGuard(cfg.RateConnectionsPerMinute)
	g.setupSocketIO()
	if err := g.setupAdminUI(); err != nil {
		g.closeClients()
		return nil, err
	}
	g.setupHTTP()
	if g.metrics != nil {
		g.registerOpsMetrics()
	}
	return g, nil
}

// keptHeaders are the request headers a socket keeps after CONNECT (for
// fetchSockets and the Admin UI): no credentials.
var keptHeaders = []string{"User-Agent", "Origin", "X-Forwarded-For", "Forwarded"}

func newRedis(cfg *config.Config) (redis.UniversalClient, error) {
	return redisClient("TRADEWIRE_REDIS_URL", cfg.Redis)
}

func redisClient(setting string, target config.RedisTarget) (redis.UniversalClient, error) {
	if target.Cluster {
		opts, err := redis.ParseClusterURL(target.ClientURL)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", setting, err)
		}
		opts.ContextTimeoutEnabled = true
		// Not the pipeline sizes: setting them would create a pipeline pool
		// a cluster client does not have by default.
		var none int
		smallBuffers(&opts.ReadBufferSize, &opts.WriteBufferSize, &none, &none)
		return redis.NewClusterClient(opts), nil
	}
	opts, err := redis.ParseURL(target.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	opts.ContextTimeoutEnabled = true
	smallBuffers(&opts.ReadBufferSize, &opts.WriteBufferSize, &opts.PipelineReadBufferSize, &opts.PipelineWriteBufferSize)
	return redis.NewClient(opts), nil
}

// Redis connection buffers: go-redis defaults to 32 KiB per direction and
// 128 KiB for its pipeline pool, about 1.5 KB per client connection at 10k
// clients with every pool warm (docs/decisions/008-redis-buffers.md). The
// gateway's commands and replies are small; big replies just take more reads.
const (
	redisBuffer         = 4 << 10
	redisPipelineBuffer = 16 << 10
)

// smallBuffers sets the buffer sizes the URL left at their defaults.
func smallBuffers(read, write, pipeRead, pipeWrite *int) {
	for _, p := range []struct {
		v   *int
		def int
	}{{read, redisBuffer}, {write, redisBuffer}, {pipeRead, redisPipelineBuffer}, {pipeWrite, redisPipelineBuffer}} {
		if *p.v == 0 {
			*p.v = p.def
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (g *Gateway) setupAuth(ctx context.Context) error {
	cfg := g.cfg
	var sessions auth.SessionStore
	var users auth.UserStore
	g.secrets = cfg.SessionSecrets
	switch {
	case cfg.SessionStore == config.StoreMemory:
		// Memory sessions exist only in dev mode (config refuses them otherwise).
		g.devStore = memstore.New(devSessionTTL)
		sessions, users = g.devStore, g.devStore
		g.dev = memDev{g.devStore}
	case cfg.SessionStore == config.StoreRedis:
		srdb := g.rdb
		if cfg.SessionRedisURL != "" {
			target, err := config.ParseRedisURL(cfg.SessionRedisURL)
			if err != nil {
				return fmt.Errorf("TRADEWIRE_SESSION_REDIS_URL: %w", err)
			}
			if srdb, err = redisClient("TRADEWIRE_SESSION_REDIS_URL", target); err != nil {
				return err
			}
			g.sessionRDB = srdb
			g.health.Register("session-redis", func(ctx context.Context) error { return srdb.Ping(ctx).Err() })
		}
		sessions = redisstore.New(srdb, cfg.SessionRedisPrefix)
		if cfg.DevMode() {
			rd := redisDev{rdb: srdb, sessionPrefix: cfg.SessionRedisPrefix, userPrefix: cfg.KeyPrefix + ":devuser:"}
			if rd.sessionPrefix == "" {
				rd.sessionPrefix = redisstore.DefaultPrefix
			}
			g.dev = rd
			if cfg.MongoURL == "" {
				users = rd
			}
		}
	case cfg.SessionStore == config.StoreMongo:
		client, db, err := mongostore.Connect(cfg.MongoURL)
		if err != nil {
			return fmt.Errorf("TRADEWIRE_MONGO_URL: %w", err)
		}
		g.mongo = client
		sessions = mongostore.NewSessions(db, cfg.SessionCollection)
		users = mongostore.NewUsers(db, mongostore.UsersConfig{
			Collection: cfg.UsersCollection, RoleField: cfg.UserRoleField, TierField: cfg.UserTierField,
		})
		g.health.Register("mongo", func(ctx context.Context) error { return client.Ping(ctx, nil) })
	}
	if cfg.SessionStore == config.StoreRedis && cfg.MongoURL != "" {
		client, db, err := mongostore.Connect(cfg.MongoURL)
		if err != nil {
			return fmt.Errorf("TRADEWIRE_MONGO_URL: %w", err)
		}
		g.mongo = client
		users = mongostore.NewUsers(db, mongostore.UsersConfig{
			Collection: cfg.UsersCollection, RoleField: cfg.UserRoleField, TierField: cfg.UserTierField,
		})
	}
	if cfg.DevMode() && len(g.secrets) == 0 {
		g.secrets = []string{"dev-" + randomHex(16)}
		if cfg.SessionStore != config.StoreMemory {
			g.log.Warn("dev mode without TRADEWIRE_SESSION_SECRETS: cookies are signed with a random secret, so dev logins do not survive a restart")
		}
	}
	var obs auth.Observer
	if g.metrics != nil {
		obs = authObserver{g.metrics}
	}
	ttl := cfg.AuthCacheTTL
	if ttl == 0 || cfg.AuthCacheSize == 0 {
		ttl = -1
	}
	a, err := auth.New(auth.Config{
		CookieName:             cfg.SessionCookie,
		Secrets:                g.secrets,
		AllowUnsignedSessionID: cfg.AllowUnsignedSessionID,
		CacheTTL:               ttl,
		CacheSize:              cfg.AuthCacheSize,
		Observer:               obs,
	}, sessions, users)
	if err != nil {
		return fmt.Errorf("session auth: %w", err)
	}
	g.authn = a
	g.users = users
	_ = ctx
	return nil
}

func (g *Gateway) setupLimiter() error {
	cfg := g.cfg
	rlcfg := ratelimit.Config{
		ConnPerMinute:    cfg.RateConnectionsPerMinute,
		EventsPerMinute:  cfg.RateEventsPerMinute,
		MaxSubscriptions: cfg.MaxSubscriptions,
		NodeID:           cfg.NodeID,
		RedisTimeout:     cfg.RateRedisTimeout,
		KeyPrefix:        cfg.KeyPrefix + ":rl:",
		LeaseTTL:         cfg.SubscriptionLeaseTTL,
		Logger:           g.log,
	}
	if m := g.metrics; m != nil {
		rlcfg.OnDecision = func(k ratelimit.Kind, allowed bool) { m.RateLimit(k.String(), allowed) }
		rlcfg.OnModeChange = func(mode ratelimit.Mode) { m.SetLimiterRedis(mode == ratelimit.ModeRedis) }
	}
	var rdb redis.UniversalClient
	if g.rdb != nil {
		rdb = g.rdb
	}
	l, err := ratelimit.New(rlcfg, rdb)
	if err != nil {
		return fmt.Errorf("rate limits: %w", err)
	}
	g.limiter = l
	if g.metrics != nil {
		g.metrics.SetLimiterRedis(l.Mode() == ratelimit.ModeRedis)
	}
	return nil
}

// The trading policy, applied to adapter broadcasts (the domain decides by rooms).
func recoverable(o *adapter.BroadcastOptions) bool      { return trading.RecoverableRooms(o.Rooms) }
func conflateQuotes(o *adapter.BroadcastOptions) string { return trading.ConflationKey(o.Rooms) }
func userPartition(o *adapter.BroadcastOptions) string  { return trading.UserPartition(o.Rooms) }

func (g *Gateway) setupSocketIO() {
	cfg := g.cfg
	eopts := engineio.Options{
		PingInterval:     cfg.PingInterval,
		PingTimeout:      cfg.PingTimeout,
		UpgradeTimeout:   cfg.UpgradeTimeout,
		MaxPayload:       int(cfg.MaxPayload),
		MaxBufferedBytes: int(cfg.SendQueueLimit),
		// At the handshake: what is kept after CONNECT, and the cookie the
		// auth middleware reads at CONNECT (then dropped).
		KeepHeaders:  append([]string{"Cookie"}, keptHeaders...),
		Origins:      engineio.OriginPolicy{Allowed: cfg.CORSOrigins},
		Logger:       g.log,
		Tag:          g.tagHandshake,
		AllowRequest: g.allowHandshake,
	}
	if cfg.WSMode == "goroutine" {
		eopts.WebSocket.Mode = websocket.ModeGoroutine
	}
	var sobs socketio.Observer
	if g.metrics != nil {
		eopts.Observer = engineObserver{g.metrics}
		sobs = socketObserver{g.metrics}
	}
	rec := adapter.Options{RecoveryWindow: cfg.RecoveryWindow, Recoverable: recoverable, Conflate: conflateQuotes}
	if g.rdb != nil && cfg.RecoveryWindow > 0 {
		g.acks = acklog.New(g.rdb, acklog.Options{Prefix: cfg.KeyPrefix + ":ack:", Logger: g.log})
		store, err := recoverystore.New(g.rdb, recoverystore.Options{
			Ack:            g.acks,
			Window:         cfg.RecoveryWindow,
			Prefix:         cfg.KeyPrefix + ":rec",
			Partition:      userPartition,
			DedupPrefix:    g.dedupPrefix(),
			ShardedPublish: cfg.RedisSharded,
			Logger:         g.log,
		})
		if err == nil {
			g.recovery = store
			rec.Store = store
		}
	}
	factory := adapter.MemoryFactory(rec)
	if g.rdb != nil {
		var obs redisadapter.Observer
		if g.metrics != nil {
			obs = adapterObserver{g.metrics}
		}
		g.node = redisadapter.NewNode(g.rdb, redisadapter.Options{
			KeyPrefix: cfg.RedisKeyPrefix,
			Sharded:   cfg.RedisSharded,
			Logger:    g.log,
			Observer:  obs,
			Recovery:  rec,
		})
		factory = g.node.Factory()
		g.health.Register("redis-adapter", func(context.Context) error { return g.node.Ready() })
		eopts.NewID = func() string {
			if r := g.router; r != nil {
				return r.NewID()
			}
			return engineio.NewID()
		}
		eopts.Forward = func(w http.ResponseWriter, r *http.Request, sid string) bool {
			return g.router != nil && g.router.Forward(w, r, sid)
		}
	}
	g.sio = socketio.NewServer(socketio.Options{
		Engine:         eopts,
		ConnectTimeout: cfg.ConnectTimeout,
		Recovery:       socketio.RecoveryOptions{MaxDisconnection: cfg.RecoveryWindow},
		Adapter:        factory,
		Logger:         g.log,
		Observer:       sobs,
		// After authentication only these headers are kept (the cookie
		// carries the session id: not kept in memory for nothing).
		KeepHeaders: keptHeaders,
	})
	g.nsp = g.sio.Of("/")
	g.emitter = trading.NewEmitter(g)
	g.handlers = trading.NewHandlers(func(userID string) (trading.Quota, error) {
		return g.limiter.NewSocket(userID)
	}, g.log)
	if g.acks != nil {
		g.handlers.Acks = g.acks
	}
	g.nsp.Use(g.authenticate)
	g.nsp.OnConnection(g.onConnection)
	g.nsp.OnDisconnect(g.onDisconnect)
}

// refusedCloseDelay is how long the session of a client refused by the
// connection limit stays open after its connect_error.
const refusedCloseDelay = 500 * time.Millisecond

// connDecision is the connection rate-limit decision made at the handshake.
type connDecision struct {
	d  ratelimit.Decision
	ip string
}

// tagHandshake charges the connection limit once per Engine.IO handshake,
// before any session lookup.
func (g *Gateway) tagHandshake(r *http.Request) any {
	ip, err := g.ips.FromRequest(r)
	if err != nil {
		return &connDecision{d: ratelimit.Decision{Allowed: true}}
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	d := g.limiter.AllowConnection(ctx, ip)
	if !d.Allowed {
		g.hsGuard.refuse(ip.String()) // past twice the limit: HTTP 429 at once
	}
	return &connDecision{d: d, ip: ip.String()}
}

func (g *Gateway) authenticate(ctx context.Context, s *socketio.Socket) error {
	cd, _ := s.Handshake().Tag.(*connDecision)
	s.Handshake().Tag = nil // read once: not kept for the connection's life
	if cd != nil && !cd.d.Allowed {
		g.metrics.Handshake(ratelimit.CodeRateLimit)
		// Nothing is held for a refused client: its session closes once the
		// connect_error had time to reach it.
		time.AfterFunc(refusedCloseDelay, func() { s.CloseTransport(engineio.ReasonForcedClose) })
		return &socketio.ConnectError{Message: "too many connections", Data: map[string]any{
			"code": ratelimit.CodeRateLimit, "retryAfterMs": cd.d.RetryAfterMs(),
		}}
	}
	creds := auth.Credentials{Cookie: strings.Join(s.Header().Values("Cookie"), "; ")}
	if a := s.Auth(); a != nil {
		creds.SessionID, _ = a["sessionID"].(string)
		if uid, ok := a["userId"]; ok {
			creds.UserID = fmt.Sprint(uid)
		}
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	id, err := g.authn.Authenticate(actx, creds)
	if err != nil {
		code := auth.CodeOf(err)
		if code == "" {
			code = auth.CodeUnauthorized
		}
		g.metrics.Handshake(code)
		msg := "authentication failed"
		var ae *auth.Error
		if errors.As(err, &ae) && ae.Message != "" {
			msg = ae.Message
		}
		g.log.Info("connection refused", "code", code, "transport", s.Transport())
		return &socketio.ConnectError{Message: msg, Data: map[string]any{"code": code}}
	}
	if s.Recovered() && !restoredFor(s, id.UserID) {
		// A pid is not a credential: a restored session must belong to
		// the user who just authenticated.
		g.metrics.Handshake(auth.CodeForbidden)
		g.log.Warn("recovery refused: session of another user", "socket_id", s.ID(), "user_id", id.UserID)
		return &socketio.ConnectError{Message: "session belongs to another user", Data: map[string]any{"code": auth.CodeForbidden}}
	}
	g.metrics.Handshake(metrics.HandshakeOK)
	trading.SetIdentity(s, id)
	// Before the CONNECT reply: an event for the user published right after
	// the client sees "connected" must reach it.
	s.Join(trading.UserRoom(id.UserID))
	return nil
}

// restoredFor reports whether a restored socket's saved data names userID.
func restoredFor(s *socketio.Socket, userID string) bool {
	d, ok := trading.DataOf(s)
	return ok && d.UserID == userID
}

func (g *Gateway) onConnection(s *socketio.Socket) {
	id := trading.IdentityOf(s)
	g.log.Info("client connected", "socket_id", s.ID(), "user_id", id.UserID, "transport", s.Transport(), "recovered", s.Recovered())
	g.handlers.Attach(s)
}

// onDisconnect logs a connected socket's end. It is the namespace's hook,
// not a closure per socket: an idle connection carries no handler of its own.
func (g *Gateway) onDisconnect(s *socketio.Socket, reason string) {
	if id := trading.IdentityOf(s); id != nil {
		g.log.Info("client disconnected", "socket_id", s.ID(), "user_id", id.UserID, "reason", reason)
	}
}

// Broadcast implements trading.Broadcaster on the main namespace.
func (g *Gateway) Broadcast(ctx context.Context, rooms, except []string, event string, data any) error {
	return g.broadcast(ctx, "", rooms, except, event, data)
}

// broadcast sends; with an id the adapter refuses a duplicate atomically
// (recoverable broadcasts with a Redis recovery store).
func (g *Gateway) broadcast(_ context.Context, id string, rooms, except []string, event string, data any) error {
	g.inflight.Add(1)
	defer g.inflight.Done()
	op := g.nsp.To(rooms...).Except(except...)
	if trading.AllOrNone(rooms) {
		op = op.Strict()
	}
	if id != "" {
		op = op.Once(id)
	}
	if data == nil {
		return op.Emit(event)
	}
	return op.Emit(event, data)
}

// Emitter returns the typed domain emitter.
func (g *Gateway) Emitter() *trading.Emitter { return g.emitter }

// SocketIO returns the Socket.IO server.
func (g *Gateway) SocketIO() *socketio.Server { return g.sio }

// DevAPIKey returns the API key generated in dev mode ("" otherwise).
func (g *Gateway) DevAPIKey() string { return g.devKey }

// Handler returns the HTTP handler of every route.
func (g *Gateway) Handler() http.Handler { return g.mux }

func (g *Gateway) closeClients() {
	if g.node != nil {
		_ = g.node.Close()
	}
	if g.recovery != nil {
		_ = g.recovery.Close()
	}
	if g.limiter != nil {
		_ = g.limiter.Close()
	}
	if g.rdb != nil {
		_ = g.rdb.Close()
	}
	if g.sessionRDB != nil {
		_ = g.sessionRDB.Close()
	}
	if g.mongo != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_ = g.mongo.Disconnect(ctx)
		cancel()
	}
}

// Serve serves on l until ctx ends, then shuts down gracefully.
func (g *Gateway) Serve(ctx context.Context, l net.Listener) error {
	if g.rdb != nil {
		u := g.cfg.AdvertiseURL
		if u == "" {
			u = advertiseURL(l.Addr())
			if g.cfg.TLSCertFile != "" {
				u = "https://" + strings.TrimPrefix(u, "http://") // node-to-node proxying in TLS too
			}
		}
		r, err := cluster.NewRouter(g.rdb, cluster.Options{URL: u, KeyPrefix: g.cfg.KeyPrefix, Secret: g.cfg.ClusterSecret, Logger: g.log})
		if err != nil {
			return err
		}
		g.router = r
		// Advertised until the drain ends (not the signal), so polling
		// clients reaching this node through another one keep working.
		rctx, rcancel := context.WithCancel(context.Background())
		rdone := make(chan struct{})
		go func() { defer close(rdone); r.Run(rctx) }()
		g.stopRouter = func() { rcancel(); <-rdone }
	}
	// Health, readiness and metrics answer at once; Socket.IO requests wait
	// (at most 10 s) until the Redis adapter is subscribed, so no client
	// joins a room this node cannot hear yet.
	started := make(chan struct{})
	if g.node != nil {
		go func() {
			defer close(started)
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := g.node.WaitReady(wctx); err != nil {
				g.log.Warn("redis adapter not ready yet; readiness stays false until it is", "err", err)
			}
		}()
	} else {
		close(started)
	}
	srv := &http.Server{
		Handler:           g.hardenHTTP(holdUntil(started, g.cfg.Path, g.mux)),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       g.cfg.HTTPIdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          acceptErrorLog(g.log),
	}
	if g.cfg.TLSCertFile != "" {
		certs, err := newCertReloader(g.cfg.TLSCertFile, g.cfg.TLSKeyFile, g.log)
		if err != nil {
			return err
		}
		wctx, wcancel := context.WithCancel(ctx)
		defer wcancel()
		go certs.watch(wctx)
		l = tlsListener(l, certs)
		g.log.Info("serving TLS (https, wss); SIGHUP reloads the certificate", "cert_file", g.cfg.TLSCertFile)
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(l) }()
	if g.adminMux != nil {
		al, err := net.Listen("tcp", g.cfg.AdminAddr)
		if err != nil {
			_ = srv.Close()
			g.closeClients()
			return fmt.Errorf("TRADEWIRE_ADMIN_ADDR: %w", err)
		}
		admin := &http.Server{Handler: g.adminMux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: g.cfg.HTTPIdleTimeout}
		g.log.Info("admin port (metrics, readiness details, pprof)", "addr", al.Addr().String())
		go func() {
			if err := admin.Serve(al); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
		defer admin.Close()
	}
	if g.rdb != nil && g.cfg.IngestStream != "" {
		c, err := ingest.New(g.rdb, ingestHandler{g}, ingest.Options{
			Stream: g.cfg.IngestStream, Consumer: g.cfg.NodeID, Logger: g.log,
			HandlerDedups: true,
			OnGroupSize:   g.metrics.SetIngestConsumers,
		})
		if err != nil {
			return err
		}
		g.ingest = c
		ictx, icancel := context.WithCancel(context.Background())
		idone := make(chan struct{})
		go func() { defer close(idone); c.Run(ictx) }()
		g.stopIngest = func() { icancel(); <-idone }
	}
	if g.node != nil && g.recovery != nil {
		go func() { <-started; g.linkWatch(ctx) }() // from the first ready link, as before
	}
	if g.acks != nil {
		go g.acks.Run(ctx)
	}
	go g.statsLoop(ctx)
	go g.revalidateLoop(ctx)
	if g.cfg.DevMode() && g.cfg.DemoFeed {
		g.demoDone = make(chan struct{})
		go g.demoFeed(ctx)
	}
	select {
	case err := <-errc:
		g.closeClients()
		return err
	case <-ctx.Done():
	}
	return g.shutdown(srv)
}

// advertiseURL derives this node's URL from its listener: the hostname
// replaces an unspecified host.
func advertiseURL(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return "http://" + a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}

// ingestHandler broadcasts events read from the ingest stream.
type ingestHandler struct{ g *Gateway }

func (h ingestHandler) Event(ctx context.Context, ev *trading.DomainEvent) error {
	return h.g.emitter.Publish(ctx, ev)
}

func (h ingestHandler) Emit(ctx context.Context, id string, rooms, except []string, event string, data json.RawMessage) error {
	if err := publish.ValidateEmit(&publish.EmitRequest{Rooms: rooms, Except: except, Event: event}); err != nil {
		return err // the same rules as the HTTP API; the entry is dropped as invalid
	}
	if len(data) == 0 {
		return h.g.BroadcastOnce(ctx, id, rooms, except, event, nil)
	}
	return h.g.BroadcastOnce(ctx, id, rooms, except, event, data)
}

// holdUntil makes requests under path wait until started is closed (or the
// request is cancelled); other paths are served at once.
func holdUntil(started <-chan struct{}, path string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, path) {
			select {
			case <-started:
			case <-r.Context().Done():
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
