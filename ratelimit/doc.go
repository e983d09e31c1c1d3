// Package ratelimit enforces the gateway's three limits, shared by all nodes
// through Redis and enforced per node from memory while Redis is unavailable.
//
// # Limits
//
// Connections (KindConnection): ConnPerMinute (default 10) new connections
// per client IP per minute, with bursts of up to ConnBurst (default: the same
// number). Checked with Limiter.AllowConnection at the handshake, before any
// session lookup. The IP comes from internal/clientip (the peer, or the
// forwarding header of a trusted proxy). IPv6 clients are counted per
// IPv6PrefixBits network (default /64), since one subscriber usually owns a
// whole /64. A refusal carries RetryAfter: the gateway answers connect_error
// {code:"RATE_LIMIT", retryAfterMs} (Decision.RetryAfterMs); an HTTP front
// may answer 429 with Retry-After (Decision.RetryAfterSeconds).
//
// Events (KindEvent): EventsPerMinute (default 100) client events per user
// per minute, bursts of up to EventBurst, counted across all the user's
// sockets on all nodes. Checked with Socket.AllowEvent (or
// Socket.AllowSubscribe for subscribe events). A refused event must not be
// processed; the gateway sends error {code:"RATE_LIMIT", retryAfterMs} and
// acks {success:false}.
//
// Flooding: a socket whose last FloodMaxDenials events (default 20) were all
// refused, the first of them no more than FloodWindow ago (default 10s), gets
// Decision.Disconnect = true and should be disconnected. An allowed event
// resets the count. The count is per socket, so a well-behaved socket of the
// same user is not disconnected because another one floods.
//
// Subscriptions (KindSubscription): MaxSubscriptions (default 50) distinct
// rooms per user, across all sockets and nodes. Two sockets of one user in
// the same room count once; joining a room another socket of the user holds
// is always granted. Socket.AcquireSubscriptions grants rooms in order until
// the quota is full and returns the granted ones; Decision.Allowed is false
// (code SUBSCRIPTION_LIMIT) if any was refused. ReleaseSubscriptions gives
// rooms back on unsubscribe and Socket.Close gives back all of them on
// disconnect; both are idempotent.
//
// Rate limits use GCRA (a token bucket without a timer): N per minute with
// burst N means N requests at once, then one every minute/N. Over any
// rolling minute a client can therefore get up to 2N-1 requests through
// (the burst plus the refill); in steady state it gets N. A negative limit
// (ConnPerMinute, EventsPerMinute, MaxSubscriptions, FloodMaxDenials)
// disables it.
//
// # Redis and fallback
//
// With a Redis client every check is one atomic Lua script (keys under
// KeyPrefix, default "tradewire:rl:", expiring by themselves): conn:<ip>,
// ev:{<user>} and sub:{<user>}; the braces keep a user's keys in one Redis
// Cluster slot. Calls are bounded by RedisTimeout (default 50ms). On any
// Redis error or timeout the Limiter switches to ModeMemory: the check that
// failed and all following ones are decided from per-node memory (so a user
// connected to k nodes can get k times the limits), one warning is logged
// and OnModeChange is called. While in memory mode a PING is sent every
// ProbeInterval (default 1s); when Redis answers, this node's subscriptions
// are written back and the Limiter returns to ModeRedis (one info log,
// OnModeChange again). Memory tables are bounded by MaxMemoryKeys each
// (default 100000); entries whose bucket has refilled are swept, and a full
// table evicts the entry closest to expiry.
//
// Subscription quota is held in leases: member "<NodeID>|<room>" of the
// user's sorted set, scored with its expiry. Every node extends its leases
// every LeaseTTL/3 (default LeaseTTL 30s) with one pipeline per 128 users. A
// node that dies stops extending and its quota is free again within
// LeaseTTL; a node that closes (Limiter.Close) frees it at once.
//
// OnDecision(kind, allowed) is called for every decision (e.g. to count
// them in metrics); it must be fast.
//
// # Cost
//
// Nothing here is on a fan-out path. Per client operation, in Redis mode:
//   - AllowConnection, Socket.AllowEvent: one round trip; none while an
//     earlier denial for the same key is still in force (cached locally until
//     its retry time, so floods do not reach Redis).
//   - Socket.AllowSubscribe: one round trip for the event and the new rooms
//     together; rooms already held on this node cost nothing.
//   - AcquireSubscriptions: one round trip if a room is new to this node,
//     else none. ReleaseSubscriptions, Close: one round trip (ZREM) if a room
//     is no longer held by any socket of the user on this node, else none.
//   - Background: one pipeline per 128 users with rooms every LeaseTTL/3;
//     one PING per ProbeInterval while Redis is down.
//
// In memory mode no operation touches Redis.
package ratelimit
