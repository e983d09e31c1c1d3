package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tradewire/tradewire/internal/logging"
)

// env returns a getenv backed by a map of TRADEWIRE_* variables.
func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

// prodEnv is a valid production environment: Mongo sessions, Redis adapter.
func prodEnv() map[string]string {
	return map[string]string{
		"TRADEWIRE_MONGO_URL":       "mongodb://app:mongopw@mongo:27017/trading",
		"TRADEWIRE_REDIS_URL":       "redis://:redispw@redis:6379/0",
		"TRADEWIRE_SESSION_SECRETS": "first-secret,old-secret",
		"TRADEWIRE_API_KEYS":        "0123456789abcdef0123",
		"TRADEWIRE_CLUSTER_SECRET":  "cluster-secret-0123456789abcdef0123",
	}
}

func load(t *testing.T, args []string, kv map[string]string) *Config {
	t.Helper()
	c, err := LoadWithUsage(args, env(kv), &bytes.Buffer{})
	if err != nil {
		t.Fatalf("Load(%v): %v", args, err)
	}
	return c
}

func loadErr(t *testing.T, args []string, kv map[string]string) string {
	t.Helper()
	c, err := LoadWithUsage(args, env(kv), &bytes.Buffer{})
	if err == nil {
		t.Fatalf("Load(%v, %v) = %+v; want an error", args, kv, c)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
	return err.Error()
}

func TestDefaults(t *testing.T) {
	c := load(t, nil, nil)
	want := Config{
		Addr: ":8080", Path: "/socket.io/", LogFormat: "json", LogLevel: "info",
		PingInterval: 25 * time.Second, PingTimeout: 20 * time.Second, UpgradeTimeout: 10 * time.Second,
		MaxPayload: 1000000, ConnectTimeout: 45 * time.Second, SendQueueLimit: MiB, RecoveryWindow: 2 * time.Minute, WSMode: "epoll", GCPercent: 100,
		RedisKeyPrefix: "socket.io", SessionStore: StoreMemory, SessionCookie: "connect.sid",
		SessionCollection: "sessions", UsersCollection: "users", UserRoleField: "role", UserTierField: "subscriptionTier",
		SessionRedisPrefix: "sess:", AuthCacheTTL: 5 * time.Second, AuthCacheSize: 10000,
		RateConnectionsPerMinute: 10, RateEventsPerMinute: 100, MaxSubscriptions: 50,
		RateRedisTimeout: 50 * time.Millisecond, SubscriptionLeaseTTL: 30 * time.Second,
		DrainWindow: 10 * time.Second, ShutdownTimeout: 30 * time.Second, Metrics: true, DemoFeed: true, Dashboard: true,
		KeyPrefix: "tradewire", devMode: true, HTTPIdleTimeout: time.Minute, HTTPReadTimeout: 10 * time.Second,
	}
	want.AdminUIMode = "development" // the Admin UI settings' only non-zero default
	nodeID := c.NodeID
	c.NodeID = ""
	if fmt.Sprintf("%+v", *c) != fmt.Sprintf("%+v", want) {
		t.Errorf("defaults\n got %+v\nwant %+v", *c, want)
	}
	host, _ := os.Hostname()
	if !regexp.MustCompile(`^[A-Za-z0-9._:-]+:8080$`).MatchString(nodeID) || (host != "" && !strings.HasPrefix(nodeID, host[:min(len(host), 10)])) {
		t.Errorf("default node id %q (hostname %q), want <hostname>:8080", nodeID, host)
	}
	if !c.DevMode() {
		t.Error("no session store configured should be dev mode")
	}
	// Stable: a restart gets the same id (its ingest consumer and leases).
	if other := load(t, nil, nil); other.NodeID != nodeID {
		t.Errorf("two starts got node ids %q and %q", nodeID, other.NodeID)
	}
}

func TestStableNodeID(t *testing.T) {
	host, _ := os.Hostname()
	for _, c := range []struct{ advertise, addr, want string }{
		{"http://10.0.0.7:8080", ":9000", "10.0.0.7:8080"},
		{"https://gw-1.example.com", ":9000", "gw-1.example.com"},
		{"", "127.0.0.1:9001", ""},
	} {
		got := stableNodeID(c.advertise, c.addr)
		want := c.want
		if want == "" {
			want = strings.Map(func(r rune) rune {
				if nodeIDChar(byte(r)) && r < 128 {
					return r
				}
				return '-'
			}, host) + ":9001"
		}
		if got != want {
			t.Errorf("stableNodeID(%q, %q) = %q, want %q", c.advertise, c.addr, got, want)
		}
	}
	// No fixed port: random, so two in-process gateways on ":0" differ.
	a, b := stableNodeID("", "127.0.0.1:0"), stableNodeID("", "127.0.0.1:0")
	if a == b || !regexp.MustCompile(`-[0-9a-f]{6}$`).MatchString(a) {
		t.Errorf("port 0: %q and %q", a, b)
	}
	long := stableNodeID("http://"+strings.Repeat("h", 80)+":8080", "")
	if len(long) != 64 || !strings.HasSuffix(long, ":8080") {
		t.Errorf("long id %q", long)
	}
}

func TestProductionDefaultsFollowMongo(t *testing.T) {
	c := load(t, nil, prodEnv())
	if c.SessionStore != StoreMongo || c.DevMode() || c.DemoFeed || c.Dashboard {
		t.Fatalf("store=%q dev=%v demo=%v dashboard=%v", c.SessionStore, c.DevMode(), c.DemoFeed, c.Dashboard)
	}
	kv := prodEnv()
	kv["TRADEWIRE_DASHBOARD"] = "true"
	if c := load(t, nil, kv); !c.Dashboard {
		t.Fatal("explicit DASHBOARD=true ignored")
	}
	if !equalStrings(c.SessionSecrets, []string{"first-secret", "old-secret"}) {
		t.Fatalf("secrets %q", c.SessionSecrets)
	}
	if c.Redis.Cluster || !equalStrings(c.Redis.Addrs, []string{"redis:6379"}) || c.Redis.ClientURL != "redis://:redispw@redis:6379/0" {
		t.Fatalf("redis target %+v", c.Redis)
	}
}

// sample gives, for every setting, two valid values different from the
// default and the field's rendering after parsing each.
var sample = map[string][4]string{
	"ADDR":                        {"127.0.0.1:9000", "127.0.0.1:9000", ":0", ":0"},
	"PATH":                        {"/rt", "/rt/", "/ws/", "/ws/"},
	"LOG_FORMAT":                  {"TEXT", "text", "json", "json"},
	"LOG_LEVEL":                   {"DEBUG", "debug", "warn", "warn"},
	"NODE_ID":                     {"gw-1", "gw-1", "gw.eu:2", "gw.eu:2"},
	"PING_INTERVAL":               {"5s", "5s", "1m30s", "1m30s"},
	"PING_TIMEOUT":                {"3s", "3s", "500ms", "500ms"},
	"UPGRADE_TIMEOUT":             {"1s", "1s", "2s", "2s"},
	"MAX_PAYLOAD":                 {"64KiB", "64KiB", "2000000", "2000000B"},
	"CONNECT_TIMEOUT":             {"5s", "5s", "6s", "6s"},
	"CORS_ORIGINS":                {"HTTPS://App.Example.com/, http://localhost:3000", "[https://app.example.com http://localhost:3000]", "https://b.example", "[https://b.example]"},
	"DEV_MODE":                    {"false", "false", "0", "false"},
	"CLUSTER_SECRET":              {"c0123456789abcdef0123456789abcdef", "c0123456789abcdef0123456789abcdef", "d0123456789abcdef0123456789abcdef", "d0123456789abcdef0123456789abcdef"},
	"KEY_PREFIX":                  {"tw1", "tw1", "app:tw", "app:tw"},
	"DEBUG_ADDR_PUBLIC":           {"true", "true", "1", "true"},
	"TLS_CERT_FILE":               {"/etc/tw/cert.pem", "/etc/tw/cert.pem", "c.pem", "c.pem"},
	"TLS_KEY_FILE":                {"/etc/tw/key.pem", "/etc/tw/key.pem", "k.pem", "k.pem"},
	"ADMIN_ADDR":                  {"127.0.0.1:9090", "127.0.0.1:9090", ":9091", ":9091"},
	"HTTP_IDLE_TIMEOUT":           {"30s", "30s", "2m", "2m0s"},
	"HTTP_READ_TIMEOUT":           {"5s", "5s", "1m", "1m0s"},
	"SEND_QUEUE_LIMIT":            {"2MB", "2000000B", "4 MiB", "4MiB"},
	"GC_PERCENT":                  {"25", "25", "200", "200"},
	"RECOVERY_WINDOW":             {"0", "0s", "5m", "5m0s"},
	"REDIS_URL":                   {"rediss://h:6380", "rediss://h:6380", "redis+cluster://a:1,b:2", "redis+cluster://a:1,b:2"},
	"REDIS_KEY_PREFIX":            {"tw", "tw", "x.y", "x.y"},
	"REDIS_SHARDED":               {"true", "true", "1", "true"},
	"MONGO_URL":                   {"mongodb+srv://c0.example.net/db", "mongodb+srv://c0.example.net/db", "mongodb://h2/db", "mongodb://h2/db"},
	"SESSION_STORE":               {"Redis", "redis", "mongo", "mongo"},
	"SESSION_SECRETS":             {"a", "[a]", "b, c", "[b c]"},
	"SESSION_COOKIE":              {"sid", "sid", "app.sid", "app.sid"},
	"SESSION_COLLECTION":          {"s2", "s2", "s3", "s3"},
	"USERS_COLLECTION":            {"accounts", "accounts", "people", "people"},
	"USER_ROLE_FIELD":             {"roles.primary", "roles.primary", "kind", "kind"},
	"USER_TIER_FIELD":             {"plan", "plan", "tier", "tier"},
	"SESSION_REDIS_PREFIX":        {"s:", "s:", "app:sess:", "app:sess:"},
	"SESSION_REDIS_URL":           {"redis://s1:6379", "redis://s1:6379", "redis://s2:6379", "redis://s2:6379"},
	"ALLOW_UNSIGNED_SESSION_ID":   {"true", "true", "TRUE", "true"},
	"AUTH_CACHE_TTL":              {"0", "0s", "1s", "1s"},
	"AUTH_CACHE_SIZE":             {"0", "0", "5", "5"},
	"API_KEYS":                    {"key-aaaaaaaaaaaaaaaa", "[key-aaaaaaaaaaaaaaaa]", "key-bbbbbbbbbbbbbbbb,key-cccccccccccccccc", "[key-bbbbbbbbbbbbbbbb key-cccccccccccccccc]"},
	"TRUSTED_PROXIES":             {"10.0.0.0/8, 192.168.1.7", "[10.0.0.0/8 192.168.1.7/32]", "fd00::/8,::1", "[fd00::/8 ::1/128]"},
	"RATE_CONNECTIONS_PER_MINUTE": {"1", "1", "600", "600"},
	"RATE_EVENTS_PER_MINUTE":      {"2", "2", "6000", "6000"},
	"MAX_SUBSCRIPTIONS":           {"3", "3", "500", "500"},
	"RATE_REDIS_TIMEOUT":          {"10ms", "10ms", "1s", "1s"},
	"SUBSCRIPTION_LEASE_TTL":      {"1m", "1m0s", "45s", "45s"},
	"DRAIN_WINDOW":                {"0", "0s", "20s", "20s"},
	"SHUTDOWN_TIMEOUT":            {"1m", "1m0s", "2m", "2m0s"},
	"INGEST_STREAM":               {"trades", "trades", "events:in", "events:in"},
	"METRICS":                     {"false", "false", "0", "false"},
	"DEMO_FEED":                   {"false", "false", "f", "false"},
	"DASHBOARD":                   {"false", "false", "f", "false"},
	"WS_MODE":                     {"goroutine", "goroutine", "epoll", "epoll"},
	"DEBUG_ADDR":                  {"127.0.0.1:6060", "127.0.0.1:6060", "[::1]:6061", "[::1]:6061"},
	"ADVERTISE_URL":               {"http://10.0.0.7:8080", "http://10.0.0.7:8080", "http://b:1", "http://b:1"},
}

func render(ptr any) string {
	switch p := ptr.(type) {
	case *ByteSize:
		return p.String()
	case *time.Duration:
		return p.String()
	}
	return fmt.Sprint(reflectDeref(ptr))
}

func reflectDeref(ptr any) any {
	switch p := ptr.(type) {
	case *string:
		return *p
	case *bool:
		return *p
	case *int:
		return *p
	case *[]string:
		return *p
	case *[]netip.Prefix:
		return *p
	}
	panic(fmt.Sprintf("%T", ptr))
}

// TestEverySettingFromEnvAndFlag drives each setting through the
// environment, then overrides it with its flag.
func TestEverySettingFromEnvAndFlag(t *testing.T) {
	if len(sample) != len(settings) {
		t.Fatalf("sample covers %d settings, the table has %d", len(sample), len(settings))
	}
	for _, s := range settings {
		t.Run(s.name, func(t *testing.T) {
			v, ok := sample[s.name]
			if !ok {
				t.Fatalf("no sample for %s", s.name)
			}
			kv := prodEnv()
			kv["TRADEWIRE_REDIS_URL"] = "redis://redis:6379" // needed by SESSION_STORE=redis
			if strings.HasPrefix(s.name, "TLS_") {           // the pair goes together
				kv["TRADEWIRE_TLS_CERT_FILE"], kv["TRADEWIRE_TLS_KEY_FILE"] = "x.pem", "x.key"
			}
			kv[s.env()] = v[0]
			c := load(t, nil, kv)
			if got := render(s.field(c)); got != v[1] {
				t.Errorf("env %s=%q: got %s, want %s", s.env(), v[0], got, v[1])
			}
			c = load(t, []string{"-" + s.flag() + "=" + v[2]}, kv)
			if got := render(s.field(c)); got != v[3] {
				t.Errorf("flag -%s=%q over env: got %s, want %s", s.flag(), v[2], got, v[3])
			}
		})
	}
}

func TestFlagNames(t *testing.T) {
	names := map[string]string{}
	for _, s := range Settings() {
		names[s.Env] = s.Flag
	}
	if names["TRADEWIRE_PING_INTERVAL"] != "ping-interval" || names["TRADEWIRE_RATE_CONNECTIONS_PER_MINUTE"] != "rate-connections-per-minute" {
		t.Fatalf("flag names: %v", names)
	}
}

func TestBoolFlagWithoutValue(t *testing.T) {
	kv := prodEnv()
	c := load(t, []string{"-redis-sharded", "--allow-unsigned-session-id"}, kv)
	if !c.RedisSharded || !c.AllowUnsignedSessionID {
		t.Fatal("bare bool flags did not set true")
	}
	kv["TRADEWIRE_METRICS"] = "true"
	if c := load(t, []string{"-metrics=false"}, kv); c.Metrics {
		t.Fatal("-metrics=false did not override the environment")
	}
}

func TestEmptyEnvIsUnsetButEmptyFlagIsExplicit(t *testing.T) {
	c := load(t, nil, map[string]string{"TRADEWIRE_ADDR": "", "TRADEWIRE_CORS_ORIGINS": "https://a.example"})
	if c.Addr != ":8080" {
		t.Fatalf("empty env replaced the default: %q", c.Addr)
	}
	c = load(t, []string{"-cors-origins="}, map[string]string{"TRADEWIRE_CORS_ORIGINS": "https://a.example"})
	if len(c.CORSOrigins) != 0 {
		t.Fatalf("explicit empty flag did not clear the list: %q", c.CORSOrigins)
	}
	c = load(t, nil, map[string]string{"TRADEWIRE_PING_INTERVAL": "  7s "})
	if c.PingInterval != 7*time.Second {
		t.Fatalf("surrounding spaces not trimmed: %v", c.PingInterval)
	}
}

func TestInvalidValues(t *testing.T) {
	cases := []struct {
		env, value, want string
	}{
		{"PING_INTERVAL", "abc", `invalid TRADEWIRE_PING_INTERVAL "abc": not a duration`},
		{"PING_INTERVAL", "25", `invalid TRADEWIRE_PING_INTERVAL "25": not a duration`},
		{"PING_TIMEOUT", "0s", `invalid TRADEWIRE_PING_TIMEOUT "0s": must be greater than 0`},
		{"RECOVERY_WINDOW", "-1s", `invalid TRADEWIRE_RECOVERY_WINDOW "-1s": must not be negative`},
		{"AUTH_CACHE_SIZE", "-1", `invalid TRADEWIRE_AUTH_CACHE_SIZE "-1": must not be negative`},
		{"MAX_SUBSCRIPTIONS", "many", `invalid TRADEWIRE_MAX_SUBSCRIPTIONS "many": not an integer`},
		{"RATE_EVENTS_PER_MINUTE", "0", `invalid TRADEWIRE_RATE_EVENTS_PER_MINUTE "0": must be greater than 0`},
		{"METRICS", "yes", `invalid TRADEWIRE_METRICS "yes": not a boolean`},
		{"MAX_PAYLOAD", "1 TB", `invalid TRADEWIRE_MAX_PAYLOAD "1 TB": not a byte size`},
		{"SEND_QUEUE_LIMIT", "0", `invalid TRADEWIRE_SEND_QUEUE_LIMIT "0": must be greater than 0`},
		{"SEND_QUEUE_LIMIT", "2GiB", `invalid TRADEWIRE_SEND_QUEUE_LIMIT "2GiB": must be at most 1GiB`},
		{"LOG_FORMAT", "xml", `invalid TRADEWIRE_LOG_FORMAT "xml": want one of json, text`},
		{"LOG_LEVEL", "loud", `invalid TRADEWIRE_LOG_LEVEL "loud": want debug, info, warn or error`},
		{"SESSION_STORE", "postgres", `invalid TRADEWIRE_SESSION_STORE "postgres": want one of mongo, redis, memory`},
		{"ADDR", "8080", `invalid TRADEWIRE_ADDR "8080": want host:port`},
		{"ADDR", ":http", `invalid TRADEWIRE_ADDR ":http": port must be a number`},
		{"ADDR", ":70000", `invalid TRADEWIRE_ADDR ":70000": port must be a number`},
		{"PATH", "socket.io", `invalid TRADEWIRE_PATH "socket.io": want an absolute path`},
		{"NODE_ID", "gw 1", `invalid TRADEWIRE_NODE_ID "gw 1": character ' ' not allowed`},
		{"NODE_ID", strings.Repeat("n", 65), `longer than 64 characters`},
		{"SESSION_COOKIE", "a;b", `invalid TRADEWIRE_SESSION_COOKIE "a;b": character ';' not allowed`},
		{"USERS_COLLECTION", " ", `invalid TRADEWIRE_USERS_COLLECTION "": must not be empty`},
		{"CORS_ORIGINS", "*", `TRADEWIRE_CORS_ORIGINS=* is refused outside dev mode`},
		{"ADMIN_ADDR", "9090", `invalid TRADEWIRE_ADMIN_ADDR "9090": want host:port`},
		{"DEBUG_ADDR", ":6060", `TRADEWIRE_DEBUG_ADDR ":6060" is not a loopback address`},
		{"CLUSTER_SECRET", "short", `invalid TRADEWIRE_CLUSTER_SECRET: shorter than 32 characters`},
		{"CORS_ORIGINS", "https://a.example/path", `"https://a.example/path" is not an origin`},
		{"CORS_ORIGINS", "*,https://a.example", `* allows every origin and cannot be combined`},
		{"CORS_ORIGINS", "null", `"null" is not an origin`},
		{"TRUSTED_PROXIES", "10.0.0.1/8", `"10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?`},
		{"TRUSTED_PROXIES", "10.0.0.0/33", `"10.0.0.0/33" is not a CIDR`},
		{"TRUSTED_PROXIES", "proxy.local", `"proxy.local" is neither a CIDR nor an IP address`},
		{"MONGO_URL", "postgres://u:pw@h/db", `invalid TRADEWIRE_MONGO_URL "postgres://u:[REDACTED]@h/db": want a mongodb://`},
		{"MONGO_URL", "mongodb://u:pw@/db", `no host in the URL`},
		{"REDIS_URL", "http://u:pw@h", `invalid TRADEWIRE_REDIS_URL "http://u:[REDACTED]@h": unsupported scheme "http"`},
		{"REDIS_URL", "redis://:pw@h:port", `invalid TRADEWIRE_REDIS_URL "redis://:[REDACTED]@h:port": malformed URL`},
	}
	for _, tc := range cases {
		t.Run(tc.env+"="+tc.value, func(t *testing.T) {
			kv := prodEnv()
			kv["TRADEWIRE_"+tc.env] = tc.value
			msg := loadErr(t, nil, kv)
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not contain %q", msg, tc.want)
			}
			if strings.Contains(msg, "pw@") {
				t.Errorf("error leaks a password: %q", msg)
			}
		})
	}
}

func TestInvalidFlagNamesTheFlag(t *testing.T) {
	msg := loadErr(t, []string{"-ping-interval", "soon"}, map[string]string{"TRADEWIRE_PING_INTERVAL": "5s"})
	if !strings.HasPrefix(msg, `invalid -ping-interval "soon": not a duration`) {
		t.Fatalf("got %q", msg)
	}
}

func TestSecretValuesNeverInErrors(t *testing.T) {
	kv := prodEnv()
	kv["TRADEWIRE_API_KEYS"] = "0123456789abcdef0123,short-key"
	msg := loadErr(t, nil, kv)
	if msg != "invalid TRADEWIRE_API_KEYS: key 2 is shorter than 16 characters (allowed only in dev mode)" || strings.Contains(msg, "short-key") {
		t.Fatalf("got %q", msg)
	}
	// Short keys are fine in dev mode.
	c := load(t, nil, map[string]string{"TRADEWIRE_API_KEYS": "dev", "TRADEWIRE_DEV_MODE": "true"})
	if !equalStrings(c.APIKeys, []string{"dev"}) {
		t.Fatalf("dev api keys %q", c.APIKeys)
	}
}

func TestCrossFieldValidation(t *testing.T) {
	cases := []struct {
		name string
		kv   map[string]string
		want string
	}{
		{"mongo store without url", map[string]string{"TRADEWIRE_SESSION_STORE": "mongo", "TRADEWIRE_SESSION_SECRETS": "s"},
			"TRADEWIRE_SESSION_STORE=mongo requires TRADEWIRE_MONGO_URL"},
		{"redis store without url", map[string]string{"TRADEWIRE_SESSION_STORE": "redis", "TRADEWIRE_SESSION_SECRETS": "s"},
			"TRADEWIRE_SESSION_STORE=redis requires TRADEWIRE_REDIS_URL"},
		{"memory store with mongo", map[string]string{"TRADEWIRE_SESSION_STORE": "memory", "TRADEWIRE_MONGO_URL": "mongodb://m/db"},
			"TRADEWIRE_SESSION_STORE=memory is for dev mode only"},
		{"memory store with mongo in dev mode", map[string]string{"TRADEWIRE_DEV_MODE": "true", "TRADEWIRE_SESSION_STORE": "memory", "TRADEWIRE_MONGO_URL": "mongodb://m/db"},
			"TRADEWIRE_SESSION_STORE=memory cannot be combined with TRADEWIRE_MONGO_URL"},
		{"mongo without secrets", map[string]string{"TRADEWIRE_MONGO_URL": "mongodb://m/db"},
			"TRADEWIRE_SESSION_SECRETS is required with TRADEWIRE_SESSION_STORE=mongo"},
		{"redis store without secrets", map[string]string{"TRADEWIRE_SESSION_STORE": "redis", "TRADEWIRE_REDIS_URL": "redis://r", "TRADEWIRE_CLUSTER_SECRET": strings.Repeat("c", 32)},
			"TRADEWIRE_SESSION_SECRETS is required with TRADEWIRE_SESSION_STORE=redis"},
		{"sharded without redis", map[string]string{"TRADEWIRE_REDIS_SHARDED": "true"},
			"TRADEWIRE_REDIS_SHARDED=true requires TRADEWIRE_REDIS_URL"},
		{"ingest without redis", map[string]string{"TRADEWIRE_INGEST_STREAM": "events", "TRADEWIRE_DEV_MODE": "true"},
			"TRADEWIRE_INGEST_STREAM requires TRADEWIRE_REDIS_URL"},
		{"drain longer than shutdown", map[string]string{"TRADEWIRE_DRAIN_WINDOW": "30s"},
			"TRADEWIRE_DRAIN_WINDOW (30s) must be shorter than TRADEWIRE_SHUTDOWN_TIMEOUT (30s)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if msg := loadErr(t, nil, tc.kv); !strings.HasPrefix(msg, tc.want) {
				t.Errorf("got %q, want prefix %q", msg, tc.want)
			}
		})
	}
	// The redis store with its URL and secrets is valid and not dev mode.
	c := load(t, nil, map[string]string{"TRADEWIRE_SESSION_STORE": "redis", "TRADEWIRE_REDIS_URL": "redis://r", "TRADEWIRE_SESSION_SECRETS": "s", "TRADEWIRE_CLUSTER_SECRET": strings.Repeat("c", 32)})
	if c.DevMode() || c.DemoFeed {
		t.Fatal("redis store must not be dev mode")
	}
	// An explicit demo feed outside dev mode is honoured.
	kv := prodEnv()
	kv["TRADEWIRE_DEMO_FEED"] = "true"
	if c := load(t, nil, kv); !c.DemoFeed {
		t.Fatal("explicit DEMO_FEED=true ignored")
	}
	// An explicit memory store without Mongo is dev mode.
	if c := load(t, []string{"-session-store=memory"}, nil); !c.DevMode() {
		t.Fatal("explicit memory store should be dev mode")
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := LoadWithUsage([]string{"-h"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	text := out.String()
	for _, s := range Settings() {
		for _, want := range []string{"-" + s.Flag + " ", s.Env, s.Description} {
			if !strings.Contains(text, want) {
				t.Errorf("-h output lacks %q", want)
			}
		}
	}
	if !strings.Contains(text, "env TRADEWIRE_PING_INTERVAL, default 25s") || !strings.Contains(text, "-ping-interval duration") {
		t.Errorf("-h output:\n%s", text)
	}
	if _, err := LoadWithUsage([]string{"--help"}, env(nil), failWriter{}); err == nil || errors.Is(err, flag.ErrHelp) {
		t.Errorf("a failing usage writer should surface its error, got %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("closed") }

func TestBadArguments(t *testing.T) {
	if msg := loadErr(t, []string{"-no-such-flag=1"}, nil); !strings.Contains(msg, "flag provided but not defined: -no-such-flag") || !strings.Contains(msg, "-h") {
		t.Errorf("got %q", msg)
	}
	if msg := loadErr(t, []string{"-addr=:1", "extra"}, nil); !strings.HasPrefix(msg, `unexpected argument "extra"`) {
		t.Errorf("got %q", msg)
	}
}

func TestLoadUsesArgsAndGetenv(t *testing.T) {
	c, err := Load([]string{"-addr=:9999"}, env(map[string]string{"TRADEWIRE_LOG_FORMAT": "text"}))
	if err != nil || c.Addr != ":9999" || c.LogFormat != "text" {
		t.Fatalf("Load = %+v, %v", c, err)
	}
}

func TestLogValueRedacts(t *testing.T) {
	kv := prodEnv()
	kv["TRADEWIRE_TRUSTED_PROXIES"] = "10.0.0.0/8"
	kv["TRADEWIRE_CORS_ORIGINS"] = "https://a.example,https://b.example"
	c := load(t, nil, kv)
	var buf bytes.Buffer
	// A plain JSON handler, without logging.ReplaceAttr: the config must
	// redact by itself.
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c)
	out := buf.String()
	for _, leak := range []string{"mongopw", "redispw", "first-secret", "old-secret", "0123456789abcdef0123", "cluster-secret-"} {
		if strings.Contains(out, leak) {
			t.Errorf("startup log leaks %q: %s", leak, out)
		}
	}
	var rec struct {
		Config map[string]any `json:"config"`
	}
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	m := rec.Config
	checks := map[string]any{
		"mongo_url":        "mongodb://app:" + logging.Redacted + "@mongo:27017/trading",
		"redis_url":        "redis://:" + logging.Redacted + "@redis:6379/0",
		"session_secrets":  logging.Redacted + " x2",
		"api_keys":         logging.Redacted + " x1",
		"ping_interval":    "25s",
		"max_payload":      float64(1000000),
		"metrics":          true,
		"auth_cache_size":  float64(10000),
		"trusted_proxies":  "10.0.0.0/8",
		"cors_origins":     "https://a.example,https://b.example",
		"session_store":    "mongo",
		"dev_mode":         false,
		"send_queue_limit": float64(MiB),
		"cluster_secret":   logging.Redacted,
	}
	for k, want := range checks {
		if m[k] != want {
			t.Errorf("%s = %#v, want %#v", k, m[k], want)
		}
	}
	if len(m) != len(settings) {
		t.Errorf("LogValue has %d keys, want %d (every setting, dev_mode resolved)", len(m), len(settings))
	}
	// In dev mode, empty secrets are shown as empty.
	buf.Reset()
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", load(t, nil, nil))
	if !strings.Contains(buf.String(), `"session_secrets":""`) || !strings.Contains(buf.String(), `"dev_mode":true`) {
		t.Errorf("dev config log: %s", buf.String())
	}
}

func TestWriteMarkdown(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteMarkdown(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != len(settings)+2 {
		t.Fatalf("%d lines", len(lines))
	}
	md := buf.String()
	for _, want := range []string{
		"| `TRADEWIRE_PING_INTERVAL` | `-ping-interval` | `25s` | ",
		"| `TRADEWIRE_CORS_ORIGINS` | `-cors-origins` | (empty) | ",
		"| mongo if MONGO_URL is set, else memory |",
		"(secret: never logged) |",
		"(logged without its password) |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	if err := WriteMarkdown(failWriter{}); err == nil {
		t.Error("write error not returned")
	}
}

func TestDefaultNodeIDSanitisesHostname(t *testing.T) {
	id := defaultNodeID()
	if err := checkNodeID(&id); err != nil {
		t.Fatalf("generated node id %q is invalid: %v", id, err)
	}
}

func equalStrings(a, b []string) bool {
	return fmt.Sprint(a) == fmt.Sprint(b) && len(a) == len(b)
}
