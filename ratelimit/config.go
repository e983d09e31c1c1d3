package ratelimit

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
)

// Defaults applied by New to zero-valued Config fields.
const (
	DefaultConnPerMinute    = 10
	DefaultEventsPerMinute  = 100
	DefaultMaxSubscriptions = 50
	DefaultFloodMaxDenials  = 20
	DefaultFloodWindow      = 10 * time.Second
	DefaultIPv6PrefixBits   = 64
	DefaultKeyPrefix        = "tradewire:rl:"
	DefaultRedisTimeout     = 50 * time.Millisecond
	DefaultProbeInterval    = time.Second
	DefaultLeaseTTL         = 30 * time.Second
	DefaultMaxMemoryKeys    = 100_000
)

// maxPerMinute keeps the emission interval at 1µs or more.
const maxPerMinute = 60_000_000

// ErrInvalidConfig is wrapped by every configuration error from New.
var ErrInvalidConfig = errors.New("ratelimit: invalid config")

// Config holds the limits and settings. Zero values mean "default"; for the
// three limits and FloodMaxDenials a negative value disables the limit.
type Config struct {
	// ConnPerMinute is the connection rate per client IP (default 10).
	ConnPerMinute int
	// ConnBurst is how many connections may arrive at once (default
	// ConnPerMinute).
	ConnBurst int
	// EventsPerMinute is the client event rate per user, across all the
	// user's sockets on all nodes (default 100).
	EventsPerMinute int
	// EventBurst is how many events may arrive at once (default
	// EventsPerMinute).
	EventBurst int
	// MaxSubscriptions is the number of distinct rooms a user may hold across
	// all sockets and nodes (default 50).
	MaxSubscriptions int
	// FloodMaxDenials and FloodWindow: a socket whose last FloodMaxDenials
	// events were all refused by the event limit, the first of them at most
	// FloodWindow ago, gets Decision.Disconnect (defaults 20 and 10s).
	FloodMaxDenials int
	FloodWindow     time.Duration
	// IPv6PrefixBits groups IPv6 clients by network for the connection limit,
	// since one subscriber usually owns a whole /64 (default 64; 128 = per
	// address).
	IPv6PrefixBits int
	// KeyPrefix namespaces every Redis key (default "tradewire:rl:"). It must
	// not contain '{' or '}' (Redis Cluster hash tags).
	KeyPrefix string
	// NodeID identifies this process in subscription leases (default
	// hostname plus a random suffix). It must be unique among live nodes and
	// must not contain '|'.
	NodeID string
	// RedisTimeout bounds every Redis call on a client path (default 50ms);
	// on timeout or error the Limiter switches to memory mode.
	RedisTimeout time.Duration
	// ProbeInterval is how often a PING is sent to a failed Redis (default 1s).
	ProbeInterval time.Duration
	// LeaseTTL is how long a node's subscription entries outlive its last
	// heartbeat; heartbeats run every LeaseTTL/3 (default 30s, minimum 30ms).
	LeaseTTL time.Duration
	// MaxMemoryKeys bounds each in-memory table (connection buckets, event
	// buckets, cached Redis denials), rounded up to a multiple of 64
	// (default 100000).
	MaxMemoryKeys int
	// Logger receives mode switches (default slog.Default()).
	Logger *slog.Logger
	// OnModeChange, if set, is called once per switch with the new mode.
	OnModeChange func(Mode)
	// OnDecision, if set, is called for every decision. It runs on the
	// caller's goroutine and must be fast (e.g. a metrics counter).
	OnDecision func(kind Kind, allowed bool)
}

func (c Config) withDefaults() (Config, error) {
	bad := func(format string, a ...any) (Config, error) {
		return c, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, a...)...)
	}
	rate := func(name string, v *int, def int) error {
		if *v == 0 {
			*v = def
		}
		if *v > maxPerMinute {
			return fmt.Errorf("%w: %s %d is above %d", ErrInvalidConfig, name, *v, maxPerMinute)
		}
		return nil
	}
	burst := func(name string, v *int, perMinute int) error {
		switch {
		case *v < 0 || *v > 1_000_000:
			return fmt.Errorf("%w: %s %d is outside 0..1000000", ErrInvalidConfig, name, *v)
		case *v == 0:
			*v = max(perMinute, 1)
		}
		return nil
	}
	for _, err := range []error{
		rate("ConnPerMinute", &c.ConnPerMinute, DefaultConnPerMinute),
		rate("EventsPerMinute", &c.EventsPerMinute, DefaultEventsPerMinute),
		burst("ConnBurst", &c.ConnBurst, c.ConnPerMinute),
		burst("EventBurst", &c.EventBurst, c.EventsPerMinute),
	} {
		if err != nil {
			return c, err
		}
	}
	if c.MaxSubscriptions == 0 {
		c.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if c.FloodMaxDenials == 0 {
		c.FloodMaxDenials = DefaultFloodMaxDenials
	}
	if c.FloodWindow == 0 {
		c.FloodWindow = DefaultFloodWindow
	}
	if c.IPv6PrefixBits == 0 {
		c.IPv6PrefixBits = DefaultIPv6PrefixBits
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultKeyPrefix
	}
	if c.NodeID == "" {
		c.NodeID = defaultNodeID()
	}
	if c.RedisTimeout == 0 {
		c.RedisTimeout = DefaultRedisTimeout
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.MaxMemoryKeys == 0 {
		c.MaxMemoryKeys = DefaultMaxMemoryKeys
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	switch {
	case c.FloodWindow < 0:
		return bad("FloodWindow %v is negative", c.FloodWindow)
	case c.IPv6PrefixBits < 1 || c.IPv6PrefixBits > 128:
		return bad("IPv6PrefixBits %d is outside 1..128", c.IPv6PrefixBits)
	case strings.ContainsAny(c.KeyPrefix, "{}"):
		return bad("KeyPrefix %q contains a brace", c.KeyPrefix)
	case strings.Contains(c.NodeID, "|") || len(c.NodeID) > 200:
		return bad("NodeID %q contains '|' or is longer than 200 bytes", c.NodeID)
	case c.RedisTimeout < 0:
		return bad("RedisTimeout %v is negative", c.RedisTimeout)
	case c.ProbeInterval < 0:
		return bad("ProbeInterval %v is negative", c.ProbeInterval)
	case c.LeaseTTL < 30*time.Millisecond:
		return bad("LeaseTTL %v is below 30ms", c.LeaseTTL)
	case c.MaxMemoryKeys < 0:
		return bad("MaxMemoryKeys %d is negative", c.MaxMemoryKeys)
	}
	return c, nil
}

// defaultNodeID is the hostname plus 6 random bytes, so a restarted process
// never inherits the leases of its predecessor.
func defaultNodeID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	host = strings.ReplaceAll(host, "|", "_")
	var b [6]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}
