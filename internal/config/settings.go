package config

import (
	"net/netip"
	"time"
)

// Config holds every gateway setting. Load fills it from flags, TRADEWIRE_*
// environment variables and defaults; see Settings for the list.
type Config struct {
	// HTTP server and Engine.IO / Socket.IO protocol.
	Addr           string
	Path           string
	LogFormat      string
	LogLevel       string
	NodeID         string
	PingInterval   time.Duration
	PingTimeout    time.Duration
	UpgradeTimeout time.Duration
	MaxPayload     ByteSize
	ConnectTimeout time.Duration
	CORSOrigins    []string
	SendQueueLimit ByteSize
	RecoveryWindow time.Duration
	// DebugAddr serves net/http/pprof when set (e.g. 127.0.0.1:6060).
	DebugAddr string
	// AdminAddr, when set, serves /metrics, the detailed /readyz and
	// /debug/pprof; the public port keeps /healthz and a bare /readyz.
	AdminAddr string
	// DebugAddrPublic allows DebugAddr on a non-loopback address.
	DebugAddrPublic bool
	// TLSCertFile and TLSKeyFile, when set, serve https/wss on Addr (TLS
	// 1.2+); the pair is read again on SIGHUP.
	TLSCertFile string
	TLSKeyFile  string
	// HTTPIdleTimeout closes idle keep-alive connections.
	HTTPIdleTimeout time.Duration
	// HTTPReadTimeout bounds the arrival of a request body.
	HTTPReadTimeout time.Duration
	// WSMode selects the websocket connection layer: epoll or goroutine.
	WSMode string
	// GCPercent is the Go collector's heap growth target (GOGC) the
	// binary sets unless the GOGC environment variable is given.
	GCPercent int
	// DevModeSetting is TRADEWIRE_DEV_MODE as given; DevMode() is the
	// resolved answer (also true when nothing deployment-like is set).
	DevModeSetting bool
	// ClusterSecret authenticates the node routes other nodes read from
	// Redis (HMAC); required with REDIS_URL outside dev mode.
	ClusterSecret string
	// KeyPrefix starts the gateway's own Redis keys (route, rec, rl, dedup).
	KeyPrefix string

	devMode bool
	// deployment lists the deployment-like settings that were given.
	deployment []string

	// Cluster adapter.
	RedisURL       string
	RedisKeyPrefix string
	RedisSharded   bool
	// AdvertiseURL is how other nodes reach this one (session forwarding).
	AdvertiseURL string
	// Redis is RedisURL parsed (zero when RedisURL is empty).
	Redis RedisTarget

	// Sessions and users.
	MongoURL               string
	SessionStore           string
	SessionSecrets         []string
	SessionCookie          string
	SessionCollection      string
	UsersCollection        string
	UserRoleField          string
	UserTierField          string
	SessionRedisURL        string
	SessionRedisPrefix     string
	AllowUnsignedSessionID bool
	AuthCacheTTL           time.Duration
	AuthCacheSize          int
	APIKeys                []string
	TrustedProxies         []netip.Prefix

	// Limits.
	RateConnectionsPerMinute int
	RateEventsPerMinute      int
	MaxSubscriptions         int
	RateRedisTimeout         time.Duration
	SubscriptionLeaseTTL     time.Duration

	// Lifecycle and features.
	DrainWindow     time.Duration
	ShutdownTimeout time.Duration
	IngestStream    string
	// Socket.IO Admin UI (package adminui).
	AdminUI         bool
	AdminUIUsername string
	AdminUIPassword string // bcrypt hash
	AdminUIReadOnly bool
	AdminUIServerID string
	AdminUIMode     string
	Metrics         bool
	DemoFeed        bool
	Dashboard       bool
}

// Session store names accepted by TRADEWIRE_SESSION_STORE.
const (
	StoreMongo  = "mongo"
	StoreRedis  = "redis"
	StoreMemory = "memory"
)

// settings is the table every other part of the package is driven by:
// parsing, -h, validation of single values, LogValue and Settings. Adding a
// setting is a Config field and one line here. Defaults are parsed like any
// other input; show replaces def in -h when the default is computed.
var settings = []setting{
	{name: "DEV_MODE", def: "false", show: "true when no deployment setting is given", help: "dev mode: memory sessions (or the redis store), POST /dev/login, demo feed, generated API key; never in a deployment", field: func(c *Config) any { return &c.DevModeSetting }},
	{name: "ADDR", def: ":8080", help: "HTTP listen address, host:port", field: func(c *Config) any { return &c.Addr }, check: checkAddr},
	{name: "PATH", def: "/socket.io/", help: "Engine.IO request path (a trailing / is added)", field: func(c *Config) any { return &c.Path }, check: checkPath},
	{name: "LOG_FORMAT", def: "json", help: "log output: json or text", field: func(c *Config) any { return &c.LogFormat }, check: oneOf("json", "text")},
	{name: "LOG_LEVEL", def: "info", help: "minimum log level: debug, info, warn or error", field: func(c *Config) any { return &c.LogLevel }, check: checkLevel},
	{name: "NODE_ID", def: "", show: "hostname-<random>", help: "this instance's id in the cluster (letters, digits, . _ : -)", field: func(c *Config) any { return &c.NodeID }, check: checkNodeID},
	{name: "PING_INTERVAL", def: "25s", help: "Engine.IO heartbeat: interval between server pings", field: func(c *Config) any { return &c.PingInterval }, check: positive},
	{name: "PING_TIMEOUT", def: "20s", help: "Engine.IO heartbeat: how long to wait for a pong before closing", field: func(c *Config) any { return &c.PingTimeout }, check: positive},
	{name: "UPGRADE_TIMEOUT", def: "10s", help: "how long a polling-to-websocket upgrade may take", field: func(c *Config) any { return &c.UpgradeTimeout }, check: positive},
	{name: "MAX_PAYLOAD", def: "1000000", help: "largest accepted message or polling body, bytes (units: kB MB KiB MiB)", field: func(c *Config) any { return &c.MaxPayload }, check: positive},
	{name: "CONNECT_TIMEOUT", def: "45s", help: "how long a client may take to join a namespace after the handshake", field: func(c *Config) any { return &c.ConnectTimeout }, check: positive},
	{name: "CORS_ORIGINS", def: "", help: "comma list of allowed browser origins (scheme://host[:port]); empty = same origin only; * = any", field: func(c *Config) any { return &c.CORSOrigins }, check: checkOrigins},
	{name: "SEND_QUEUE_LIMIT", def: "1MiB", help: "bytes queued for one connection before messages are dropped and the slow consumer disconnected (at most 1GiB)", field: func(c *Config) any { return &c.SendQueueLimit }, check: sendQueue},
	{name: "WS_MODE", def: "epoll", help: "websocket connection layer: epoll (Linux; no goroutine or buffer per idle connection) or goroutine (one reader goroutine per connection)", field: func(c *Config) any { return &c.WSMode }, check: oneOf("epoll", "goroutine")},
	{name: "GC_PERCENT", def: "100", help: "Go garbage collector target: heap growth between collections, percent; lower keeps idle memory closer to what the connections use (50: about 11% less at 10k idle clients) but collects more often, which halved the quote fan-out rate within the p99 line here; the GOGC environment variable, when set, wins", field: func(c *Config) any { return &c.GCPercent }, check: positive},
	{name: "DEBUG_ADDR", def: "", help: "listen address of a separate debug server with /debug/pprof (e.g. 127.0.0.1:6060); empty = off. Never expose it publicly", field: func(c *Config) any { return &c.DebugAddr }},
	{name: "ADMIN_ADDR", def: "", help: "listen address of an admin port with /metrics, the detailed /readyz and /debug/pprof (e.g. 10.0.0.7:9090); the public port then keeps only /healthz and a bare /readyz; empty = all on ADDR, no pprof", field: func(c *Config) any { return &c.AdminAddr }, check: optionalAddr},
	{name: "TLS_CERT_FILE", def: "", help: "PEM certificate (chain) to serve https/wss on ADDR, with TLS_KEY_FILE; read again on SIGHUP; empty = plain http (terminate TLS at the load balancer)", field: func(c *Config) any { return &c.TLSCertFile }},
	{name: "TLS_KEY_FILE", def: "", help: "PEM private key of TLS_CERT_FILE", field: func(c *Config) any { return &c.TLSKeyFile }},
	{name: "DEBUG_ADDR_PUBLIC", def: "false", help: "allow DEBUG_ADDR on an address other than loopback (pprof exposes memory contents and can slow the process)", field: func(c *Config) any { return &c.DebugAddrPublic }},
	{name: "HTTP_IDLE_TIMEOUT", def: "60s", help: "idle keep-alive HTTP connections are closed after this long", field: func(c *Config) any { return &c.HTTPIdleTimeout }, check: positive},
	{name: "HTTP_READ_TIMEOUT", def: "10s", help: "a request body (polling POST, API, /dev/login) must arrive within this, or the connection is closed; long-polling GETs and websockets are not cut", field: func(c *Config) any { return &c.HTTPReadTimeout }, check: positive},
	{name: "RECOVERY_WINDOW", def: "2m", help: "connection state recovery: longest disconnection that can be recovered; 0 disables", field: func(c *Config) any { return &c.RecoveryWindow }, check: nonNegative},
	{name: "REDIS_URL", def: "", help: "cluster adapter Redis: redis://, rediss://, unix:// or redis+cluster://[user:pass@]host:port,host:port; empty = single node, in-memory adapter", field: func(c *Config) any { return &c.RedisURL }, check: checkRedisURL, secret: secretURL},
	{name: "REDIS_KEY_PREFIX", def: "socket.io", help: "channel prefix shared with @socket.io/redis-adapter and redis-emitter", field: func(c *Config) any { return &c.RedisKeyPrefix }, check: nonEmpty},
	{name: "REDIS_SHARDED", def: "false", help: "use sharded pub/sub (SPUBLISH, Redis 7+) like @socket.io/redis-adapter's sharded mode", field: func(c *Config) any { return &c.RedisSharded }},
	{name: "CLUSTER_SECRET", def: "", help: "secret (32+ characters) that signs the node routes in Redis; required with REDIS_URL outside dev mode, the same on every node", field: func(c *Config) any { return &c.ClusterSecret }, check: checkClusterSecret, secret: secretValue},
	{name: "KEY_PREFIX", def: "tradewire", help: "prefix of the gateway's own Redis keys (<p>:route:, <p>:rec, <p>:rl:, <p>:dedup:), so deployments can share a Redis", field: func(c *Config) any { return &c.KeyPrefix }, check: checkKeyPrefix},
	{name: "ADVERTISE_URL", def: "", help: "this node's URL as the other nodes reach it (e.g. http://10.0.0.7:8080), for serving requests of sessions owned by another node without sticky sessions; empty = derived from ADDR and the hostname", field: func(c *Config) any { return &c.AdvertiseURL }},
	{name: "MONGO_URL", def: "", help: "MongoDB holding sessions (connect-mongo) and users: mongodb:// or mongodb+srv://", field: func(c *Config) any { return &c.MongoURL }, check: checkMongoURL, secret: secretURL},
	{name: "SESSION_STORE", def: "", show: "mongo if MONGO_URL is set, else memory", help: "session store: mongo, redis or memory (memory = dev mode)", field: func(c *Config) any { return &c.SessionStore }, check: oneOf("", StoreMongo, StoreRedis, StoreMemory)},
	{name: "SESSION_SECRETS", def: "", help: "comma list of express-session secrets; the first signs, all verify; required unless dev mode", field: func(c *Config) any { return &c.SessionSecrets }, secret: secretValue},
	{name: "SESSION_COOKIE", def: "connect.sid", help: "name of the express-session cookie", field: func(c *Config) any { return &c.SessionCookie }, check: checkCookieName},
	{name: "SESSION_COLLECTION", def: "sessions", help: "connect-mongo sessions collection", field: func(c *Config) any { return &c.SessionCollection }, check: nonEmpty},
	{name: "USERS_COLLECTION", def: "users", help: "MongoDB users collection", field: func(c *Config) any { return &c.UsersCollection }, check: nonEmpty},
	{name: "USER_ROLE_FIELD", def: "role", help: "field of a user document holding the role", field: func(c *Config) any { return &c.UserRoleField }, check: nonEmpty},
	{name: "USER_TIER_FIELD", def: "subscriptionTier", help: "field of a user document holding the subscription tier", field: func(c *Config) any { return &c.UserTierField }, check: nonEmpty},
	{name: "SESSION_REDIS_PREFIX", def: "sess:", help: "connect-redis key prefix", field: func(c *Config) any { return &c.SessionRedisPrefix }},
	{name: "SESSION_REDIS_URL", def: "", help: "Redis holding connect-redis sessions when it is not REDIS_URL (same URL forms); empty = REDIS_URL", field: func(c *Config) any { return &c.SessionRedisURL }, secret: secretURL},
	{name: "ALLOW_UNSIGNED_SESSION_ID", def: "false", help: "also accept a bare session id, not only the signed s:ID.SIGNATURE form", field: func(c *Config) any { return &c.AllowUnsignedSessionID }},
	{name: "AUTH_CACHE_TTL", def: "5s", help: "how long a session lookup is cached; 0 disables the cache", field: func(c *Config) any { return &c.AuthCacheTTL }, check: nonNegative},
	{name: "AUTH_CACHE_SIZE", def: "10000", help: "most session lookups cached; 0 disables the cache", field: func(c *Config) any { return &c.AuthCacheSize }, check: nonNegative},
	{name: "API_KEYS", def: "", help: "comma list of keys backend services present to the HTTP API (16+ characters unless dev mode); a :publish or :read suffix limits a key to publishing or to the read views; empty = no key accepted", field: func(c *Config) any { return &c.APIKeys }, secret: secretValue},
	{name: "TRUSTED_PROXIES", def: "", help: "comma list of CIDRs (or single IPs) whose X-Forwarded-For is believed; empty = none", field: func(c *Config) any { return &c.TrustedProxies }},
	{name: "RATE_CONNECTIONS_PER_MINUTE", def: "10", help: "new connections allowed per client IP per minute", field: func(c *Config) any { return &c.RateConnectionsPerMinute }, check: rate},
	{name: "RATE_EVENTS_PER_MINUTE", def: "100", help: "client events allowed per user per minute, across all the user's sockets and nodes", field: func(c *Config) any { return &c.RateEventsPerMinute }, check: rate},
	{name: "MAX_SUBSCRIPTIONS", def: "50", help: "rooms one user may subscribe to at once", field: func(c *Config) any { return &c.MaxSubscriptions }, check: positive},
	{name: "RATE_REDIS_TIMEOUT", def: "50ms", help: "deadline of a Redis rate-limit call before the in-memory fallback decides", field: func(c *Config) any { return &c.RateRedisTimeout }, check: positive},
	{name: "SUBSCRIPTION_LEASE_TTL", def: "30s", help: "lifetime of a subscription lease in Redis; renewed while the socket lives", field: func(c *Config) any { return &c.SubscriptionLeaseTTL }, check: positive},
	{name: "DRAIN_WINDOW", def: "10s", help: "on shutdown, client disconnects are spread over this window", field: func(c *Config) any { return &c.DrainWindow }, check: nonNegative},
	{name: "SHUTDOWN_TIMEOUT", def: "30s", help: "longest graceful shutdown before remaining connections are closed", field: func(c *Config) any { return &c.ShutdownTimeout }, check: positive},
	{name: "INGEST_STREAM", def: "", help: "Redis stream the gateway consumes domain events from; empty = off (needs REDIS_URL)", field: func(c *Config) any { return &c.IngestStream }},
	{name: "ADMIN_UI", def: "false", help: "serve the official Socket.IO Admin UI protocol (@socket.io/admin-ui 0.5) on the /admin namespace", field: func(c *Config) any { return &c.AdminUI }},
	{name: "ADMIN_UI_USERNAME", def: "", help: "Admin UI login name; required with ADMIN_UI unless dev mode", field: func(c *Config) any { return &c.AdminUIUsername }},
	{name: "ADMIN_UI_PASSWORD", def: "", help: "bcrypt hash of the Admin UI password (as instrument() takes it); required with ADMIN_UI unless dev mode", field: func(c *Config) any { return &c.AdminUIPassword }, secret: secretValue},
	{name: "ADMIN_UI_READONLY", def: "false", help: "Admin UI may watch but not join, leave, disconnect or emit", field: func(c *Config) any { return &c.AdminUIReadOnly }},
	{name: "ADMIN_UI_SERVER_ID", def: "", show: "NODE_ID", help: "this server's name in the Admin UI", field: func(c *Config) any { return &c.AdminUIServerID }},
	{name: "ADMIN_UI_MODE", def: "development", help: "Admin UI mode as instrument() takes it: development (sockets, rooms and clients pages; no event payloads are ever sent) or production (dashboard and servers only, cheaper on big nodes)", field: func(c *Config) any { return &c.AdminUIMode }, check: oneOf("development", "production")},
	{name: "METRICS", def: "true", help: "serve Prometheus metrics on /metrics", field: func(c *Config) any { return &c.Metrics }},
	{name: "DEMO_FEED", def: "false", show: "true in dev mode, else false", help: "publish a synthetic quote feed (dev mode only: ignored with a real session store)", field: func(c *Config) any { return &c.DemoFeed }},
	{name: "DASHBOARD", def: "false", show: "true in dev mode, else false", help: "serve the built-in web dashboard at /", field: func(c *Config) any { return &c.Dashboard }},
}
