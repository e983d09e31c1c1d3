// Package redisadapter is a cluster adapter compatible with
// @socket.io/redis-adapter 8.x (classic and sharded) and
// @socket.io/redis-emitter 5.x: Go and Node servers can share one Redis and
// broadcast, answer fetchSockets/serverSideEmit and apply remote
// join/leave/disconnect requests to each other.
//
// A Node is this process in the cluster: one pub/sub subscriber (per shard
// slot in sharded cluster mode) shared by the adapters of every namespace,
// a self-check that proves the subscription works end to end, and a
// heartbeat in a node registry. Its Factory builds the per-namespace
// adapters.
package redisadapter

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/adapter"
)

// ErrClosed is returned after Close.
var ErrClosed = errors.New("redisadapter: closed")

// SubscriptionMode selects the channels of the sharded adapter.
type SubscriptionMode string

// Subscription modes of the sharded adapter.
const (
	// SubscriptionStatic: two channels per namespace, every broadcast on the main one.
	SubscriptionStatic SubscriptionMode = "static"
	// SubscriptionDynamic (the default): also one channel per public room
	// (a room that is not a socket id) while it exists locally.
	SubscriptionDynamic SubscriptionMode = "dynamic"
	// SubscriptionDynamicPrivate: one channel per room, private rooms included.
	SubscriptionDynamicPrivate SubscriptionMode = "dynamic-private"
)

// Observer receives counts for metrics. Kinds are "broadcast", "request",
// "response", "selfcheck" and "heartbeat". Implementations must be fast and
// safe for concurrent use.
type Observer interface {
	OnPublish(kind string, bytes int)
	OnReceive(kind string, bytes int)
	OnError(op string, err error)
	// OnResubscribe is called when a working subscription was lost and is being restored.
	OnResubscribe(reason string)
}

type nopObserver struct{}

func (nopObserver) OnPublish(string, int) {}
func (nopObserver) OnReceive(string, int) {}
func (nopObserver) OnError(string, error) {}
func (nopObserver) OnResubscribe(string)  {}

// Options configure a Node. Zero values take the defaults.
type Options struct {
	// KeyPrefix of channels and keys (default "socket.io"; the sharded
	// adapter calls it channelPrefix).
	KeyPrefix string
	// RequestsTimeout bounds cluster requests (default 5s).
	RequestsTimeout time.Duration
	// PublishOnSpecificResponseChannel makes this node answer requests on
	// <prefix>-response#<nsp>#<requester uid>#.
	PublishOnSpecificResponseChannel bool
	// Sharded selects the sharded adapter (Redis >= 7, SSUBSCRIBE/SPUBLISH).
	Sharded bool
	// SubscriptionMode of the sharded adapter (default dynamic).
	SubscriptionMode SubscriptionMode
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Observer gets metrics events (optional).
	Observer Observer
	// Recovery configures the embedded in-memory adapters.
	Recovery adapter.Options
	// SelfCheckInterval is how often each pub/sub connection checks itself
	// (default 2s); SelfCheckTimeout how long the echo may take (default 3s).
	SelfCheckInterval time.Duration
	SelfCheckTimeout  time.Duration
	// HeartbeatInterval is how often the node refreshes its registry entry
	// (default 1.5s); NodeTimeout how long an entry lives without refresh
	// (default 5s).
	HeartbeatInterval time.Duration
	NodeTimeout       time.Duration
}

func (o *Options) defaults() {
	if o.KeyPrefix == "" {
		o.KeyPrefix = "socket.io"
	}
	if o.RequestsTimeout <= 0 {
		o.RequestsTimeout = 5 * time.Second
	}
	if o.SubscriptionMode == "" {
		o.SubscriptionMode = SubscriptionDynamic
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.SelfCheckInterval <= 0 {
		o.SelfCheckInterval = 2 * time.Second
	}
	if o.SelfCheckTimeout <= 0 {
		o.SelfCheckTimeout = 3 * time.Second
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = 1500 * time.Millisecond
	}
	if o.NodeTimeout <= 0 {
		o.NodeTimeout = 5 * time.Second
	}
}

// Node is this process's membership in the adapter cluster.
type Node struct {
	client  redis.UniversalClient
	opts    Options
	uid     string
	log     *slog.Logger
	cluster bool // client is a *redis.ClusterClient
	started time.Time
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	outq    chan outMsg

	mu       sync.Mutex
	closed   bool
	conns    map[int]*subConn // by slot in sharded cluster mode, else key 0
	channels map[string]route // channel -> handler
	patterns map[string]*Adapter
	adapters map[string]*Adapter // by namespace
}

type route struct {
	a    *Adapter
	role byte // 'q' request, 'r' response, 'm' sharded main or room, 's' sharded response
}

// New returns a Factory of adapters that share one Node; use NewNode to
// reach Ready, Nodes and Close.
func New(client redis.UniversalClient, opts Options) adapter.Factory {
	return NewNode(client, opts).Factory()
}

// NewNode starts a node: its subscriber, self-check and heartbeat run until Close.
func NewNode(client redis.UniversalClient, opts Options) *Node {
	opts.defaults()
	n := &Node{
		client:   client,
		opts:     opts,
		log:      opts.Logger,
		started:  time.Now(),
		conns:    map[int]*subConn{},
		channels: map[string]route{},
		patterns: map[string]*Adapter{},
		adapters: map[string]*Adapter{},
	}
	_, n.cluster = client.(*redis.ClusterClient)
	if opts.Sharded {
		n.uid = randomHex(8)
	} else {
		n.uid = uid2(6)
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	// the base connection: carries the node's own self-check from the start
	n.mu.Lock()
	n.connFor(n.opts.KeyPrefix + "-selfcheck#" + n.uid + "#")
	n.mu.Unlock()
	n.outq = make(chan outMsg, 1024)
	n.wg.Add(3)
	go n.publishLoop()
	go n.checkLoop()
	go n.heartbeatLoop()
	return n
}

// UID is this node's id on the wire.
func (n *Node) UID() string { return n.uid }

// Factory returns the adapter factory of this node.
func (n *Node) Factory() adapter.Factory {
	return func(nsp adapter.Namespace) adapter.Adapter { return newAdapter(n, nsp) }
}

func (n *Node) observer() Observer {
	if n.opts.Observer == nil {
		return nopObserver{}
	}
	return n.opts.Observer
}

func (n *Node) observeError(op string, err error) {
	n.observer().OnError(op, err)
	n.log.Debug("redisadapter: error", "op", op, "error", err.Error())
}

// connFor returns (creating and starting if needed) the connection that
// subscribes channel. n.mu must be held.
func (n *Node) connFor(channel string) *subConn {
	key := 0
	if n.opts.Sharded && n.cluster {
		key = slotOf(channel)
	}
	if c := n.conns[key]; c != nil {
		return c
	}
	check := n.opts.KeyPrefix + "-selfcheck#" + n.uid + "#"
	if n.opts.Sharded && n.cluster {
		check += "{" + slotTag(key) + "}"
	}
	c := newSubConn(n, n.opts.Sharded, check)
	n.conns[key] = c
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		c.run(n.ctx)
	}()
	return c
}

// Ready reports nil when every pub/sub connection is subscribed and passed
// its last self-check, for a readiness endpoint.
func (n *Node) Ready() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	conns := make([]*subConn, 0, len(n.conns))
	for _, c := range n.conns {
		conns = append(conns, c)
	}
	n.mu.Unlock()
	for _, c := range conns {
		if err := c.ready(); err != nil {
			return err
		}
	}
	return nil
}

// WaitReady blocks until Ready reports nil or ctx ends.
func (n *Node) WaitReady(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		err := n.Ready()
		if err == nil || errors.Is(err, ErrClosed) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-t.C:
		}
	}
}

// Close stops the node: subscriptions, self-check and heartbeat end and the
// registry entry is removed. It does not close the Redis client.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	n.cancel()
	// Receive blocks on the network: closing the connections unblocks it
	n.mu.Lock()
	for _, c := range n.conns {
		c.mu.Lock()
		if c.ps != nil {
			_ = c.ps.Close()
		}
		c.mu.Unlock()
	}
	n.mu.Unlock()
	n.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	n.unregister(ctx)
	return nil
}

func (n *Node) checkLoop() {
	defer n.wg.Done()
	// tick often enough to catch an overdue echo promptly
	t := time.NewTicker(min(n.opts.SelfCheckInterval, n.opts.SelfCheckTimeout) / 4)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case now := <-t.C:
			n.mu.Lock()
			conns := make([]*subConn, 0, len(n.conns))
			for _, c := range n.conns {
				conns = append(conns, c)
			}
			n.mu.Unlock()
			for _, c := range conns {
				c.tick(now)
			}
		}
	}
}

// dispatch routes a received message to its namespace adapter.
func (n *Node) dispatch(m *redis.Message) {
	n.mu.Lock()
	var a *Adapter
	var r route
	if m.Pattern != "" {
		a = n.patterns[m.Pattern]
	} else {
		r = n.channels[m.Channel]
		a = r.a
	}
	n.mu.Unlock()
	if a == nil {
		return
	}
	payload := []byte(m.Payload)
	switch {
	case m.Pattern != "":
		n.observer().OnReceive("broadcast", len(payload))
		a.onBroadcast(m.Channel, payload)
	case r.role == 'q':
		n.observer().OnReceive("request", len(payload))
		a.onRequest(payload)
	case r.role == 'r':
		n.observer().OnReceive("response", len(payload))
		a.onResponse(payload)
	case r.role == 'm' || r.role == 's':
		n.observer().OnReceive("broadcast", len(payload))
		a.onClusterMessage(payload, r.role == 's')
	}
}

// subscribe registers and subscribes channels/patterns of an adapter and
// waits for Redis to confirm them.
func (n *Node) subscribe(ctx context.Context, wait bool, a *Adapter, kind subKind, role byte, names ...string) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	byConn := map[*subConn][]string{}
	for _, name := range names {
		if kind == kindPattern {
			n.patterns[name] = a
		} else {
			n.channels[name] = route{a: a, role: role}
		}
		c := n.connFor(name)
		byConn[c] = append(byConn[c], name)
	}
	n.mu.Unlock()
	for c, list := range byConn {
		c.add(ctx, kind, list...)
	}
	if !wait {
		return nil
	}
	for c, list := range byConn {
		if err := c.waitConfirmed(ctx, list...); err != nil {
			return err
		}
	}
	return nil
}

// unsubscribe drops channels/patterns.
func (n *Node) unsubscribe(ctx context.Context, kind subKind, names ...string) {
	n.mu.Lock()
	byConn := map[*subConn][]string{}
	for _, name := range names {
		if kind == kindPattern {
			delete(n.patterns, name)
		} else {
			delete(n.channels, name)
		}
		c := n.connFor(name)
		byConn[c] = append(byConn[c], name)
	}
	n.mu.Unlock()
	for c, list := range byConn {
		c.remove(ctx, kind, list...)
	}
}

// publish sends payload on channel (SPUBLISH in sharded mode).
func (n *Node) publish(ctx context.Context, kind, channel string, payload []byte) error {
	var err error
	if n.opts.Sharded {
		err = n.client.SPublish(ctx, channel, payload).Err()
	} else {
		err = n.client.Publish(ctx, channel, payload).Err()
	}
	if err != nil {
		n.observeError("publish", err)
		return err
	}
	n.observer().OnPublish(kind, len(payload))
	return nil
}

type outMsg struct {
	kind, channel string
	payload       []byte
}

// publishAsync queues a publish without making the caller wait (responses
// sent from the receive loop). The queue is published in order, so a
// client count (type 8) always precedes that node's acks (type 9).
func (n *Node) publishAsync(kind, channel string, payload []byte) {
	select {
	case n.outq <- outMsg{kind, channel, payload}:
	case <-n.ctx.Done():
	}
}

func (n *Node) publishLoop() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case m := <-n.outq:
			ctx, cancel := context.WithTimeout(n.ctx, n.opts.RequestsTimeout)
			if err := n.publish(ctx, m.kind, m.channel, m.payload); err != nil {
				n.log.Warn("redisadapter: publish failed", "kind", m.kind, "error", err.Error())
			}
			cancel()
		}
	}
}

// numSub counts the subscribers of channel across the cluster.
func (n *Node) numSub(ctx context.Context, channel string) (int, error) {
	count := func(ctx context.Context, c redis.UniversalClient) (int64, error) {
		if n.opts.Sharded {
			m, err := c.PubSubShardNumSub(ctx, channel).Result()
			return m[channel], err
		}
		m, err := c.PubSubNumSub(ctx, channel).Result()
		return m[channel], err
	}
	cc, ok := n.client.(*redis.ClusterClient)
	if !ok {
		v, err := count(ctx, n.client)
		return int(v), err
	}
	if n.opts.Sharded {
		master, err := cc.MasterForKey(ctx, channel)
		if err != nil {
			return 0, err
		}
		v, err := count(ctx, master)
		return int(v), err
	}
	// classic pub/sub in a cluster: each node counts its own subscribers
	var mu sync.Mutex
	var total int64
	err := cc.ForEachShard(ctx, func(ctx context.Context, c *redis.Client) error {
		v, err := count(ctx, c)
		mu.Lock()
		total += v
		mu.Unlock()
		return err
	})
	return int(total), err
}

func (n *Node) register(a *Adapter) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	n.adapters[a.name] = a
	return nil
}

func (n *Node) unregisterAdapter(a *Adapter) {
	n.mu.Lock()
	if n.adapters[a.name] == a {
		delete(n.adapters, a.name)
	}
	n.mu.Unlock()
}

func (n *Node) namespaces() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.adapters))
	for name := range n.adapters {
		out = append(out, name)
	}
	return out
}

// escapeGlob escapes the glob characters of a PSUBSCRIBE pattern.
func escapeGlob(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}
