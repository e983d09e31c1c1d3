package ratelimit

import (
	"strconv"
	"time"
)

// Kind names one of the three limits.
type Kind uint8

const (
	// KindConnection is the per-client-IP handshake limit.
	KindConnection Kind = iota + 1
	// KindEvent is the per-user client event limit.
	KindEvent
	// KindSubscription is the per-user room quota.
	KindSubscription
)

// String returns "connection", "event" or "subscription".
func (k Kind) String() string {
	switch k {
	case KindConnection:
		return "connection"
	case KindEvent:
		return "event"
	case KindSubscription:
		return "subscription"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Mode tells where limits are currently enforced.
type Mode int32

const (
	// ModeRedis: limits are shared by all nodes through Redis.
	ModeRedis Mode = iota + 1
	// ModeMemory: limits are enforced per node from memory (no Redis client,
	// or Redis is failing and the Limiter probes it until it answers again).
	ModeMemory
)

// String returns "redis" or "memory".
func (m Mode) String() string {
	switch m {
	case ModeRedis:
		return "redis"
	case ModeMemory:
		return "memory"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// Error codes for denied decisions, as sent to clients in connect_error /
// error payloads.
const (
	CodeRateLimit         = "RATE_LIMIT"
	CodeSubscriptionLimit = "SUBSCRIPTION_LIMIT"
)

// Decision is the outcome of one check.
type Decision struct {
	// Kind is the limit that decided. For AllowSubscribe it is KindEvent when
	// the event itself was refused, KindSubscription otherwise.
	Kind Kind
	// Allowed is false when the request must be refused. For subscriptions it
	// is false when at least one requested room was not granted.
	Allowed bool
	// Limit is the configured limit (events or connections per minute, or
	// rooms); 0 when the limit is disabled.
	Limit int
	// Remaining is how many more requests (or rooms) would be allowed now.
	Remaining int
	// RetryAfter is how long to wait before the next request can succeed; zero
	// when allowed and for subscription denials (they need an unsubscribe, not
	// time).
	RetryAfter time.Duration
	// Disconnect is set by Socket.AllowEvent / Socket.AllowSubscribe when the
	// socket keeps sending events after being rate limited (see
	// Config.FloodMaxDenials); the gateway should disconnect it.
	Disconnect bool
	// Capped is set on a denied subscription when a room was refused by the
	// socket's room cap (Socket.SetRoomCap) rather than by the quota.
	Capped bool
}

// Code returns "" for allowed decisions, CodeSubscriptionLimit for denied
// subscriptions and CodeRateLimit otherwise.
func (d Decision) Code() string {
	switch {
	case d.Allowed:
		return ""
	case d.Kind == KindSubscription:
		return CodeSubscriptionLimit
	}
	return CodeRateLimit
}

// RetryAfterMs is RetryAfter in whole milliseconds, rounded up (the
// retryAfterMs field of error payloads).
func (d Decision) RetryAfterMs() int64 {
	return int64((d.RetryAfter + time.Millisecond - 1) / time.Millisecond)
}

// RetryAfterSeconds is RetryAfter in whole seconds, rounded up, and at least
// 1 for a denied decision with a positive RetryAfter: the value of an HTTP
// Retry-After header.
func (d Decision) RetryAfterSeconds() int64 {
	return int64((d.RetryAfter + time.Second - 1) / time.Second)
}
