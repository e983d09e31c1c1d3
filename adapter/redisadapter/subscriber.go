package redisadapter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// subKind is how a name is subscribed.
type subKind byte

const (
	kindChannel subKind = 'c' // SUBSCRIBE
	kindPattern subKind = 'p' // PSUBSCRIBE
	kindShard   subKind = 's' // SSUBSCRIBE
)

var errNotReady = errors.New("redisadapter: subscriber not ready")

// subConn is one pub/sub connection with its set of subscriptions and its
// self-check. It owns reconnection: on any receive error, on a failed
// self-check, or when Redis drops a subscription it still wants, it throws
// the connection away and subscribes everything again on a new one.
type subConn struct {
	node  *Node
	shard bool
	check string // private self-check channel of this connection

	mu        sync.Mutex
	want      map[string]subKind
	confirmed map[string]bool
	ps        *redis.PubSub
	gen       uint64
	checkOK   bool // the last self-check on this connection passed
	nonce     string
	sentAt    time.Time
	lastCheck time.Time
	connected time.Time
	lastErr   error
	changed   chan struct{} // closed and replaced on every state change

	done chan struct{}
}

func newSubConn(n *Node, shard bool, check string) *subConn {
	kind := kindChannel
	if shard {
		kind = kindShard
	}
	return &subConn{
		node:      n,
		shard:     shard,
		check:     check,
		want:      map[string]subKind{check: kind},
		confirmed: map[string]bool{},
		changed:   make(chan struct{}),
		lastErr:   errors.New("not connected yet"),
		done:      make(chan struct{}),
	}
}

func (c *subConn) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// ready reports nil when connected, subscribed and the last self-check passed.
func (c *subConn) ready() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ps != nil && c.checkOK {
		return nil
	}
	if c.lastErr != nil {
		return fmt.Errorf("%w: %v", errNotReady, c.lastErr)
	}
	return fmt.Errorf("%w: self-check pending", errNotReady)
}

// add subscribes names (no-op for names already wanted). It does not wait.
func (c *subConn) add(ctx context.Context, kind subKind, names ...string) {
	c.mu.Lock()
	var fresh []string
	for _, n := range names {
		if _, ok := c.want[n]; !ok {
			c.want[n] = kind
			fresh = append(fresh, n)
		}
	}
	ps := c.ps
	c.mu.Unlock()
	if ps != nil && len(fresh) > 0 {
		if err := subscribe(ctx, ps, kind, fresh); err != nil {
			c.node.observeError("subscribe", err)
		}
	}
}

// remove unsubscribes names.
func (c *subConn) remove(ctx context.Context, kind subKind, names ...string) {
	c.mu.Lock()
	var gone []string
	for _, n := range names {
		if _, ok := c.want[n]; ok {
			delete(c.want, n)
			delete(c.confirmed, n)
			gone = append(gone, n)
		}
	}
	ps := c.ps
	c.mu.Unlock()
	if ps != nil && len(gone) > 0 {
		var err error
		switch kind {
		case kindChannel:
			err = ps.Unsubscribe(ctx, gone...)
		case kindPattern:
			err = ps.PUnsubscribe(ctx, gone...)
		case kindShard:
			err = ps.SUnsubscribe(ctx, gone...)
		}
		if err != nil {
			c.node.observeError("unsubscribe", err)
		}
	}
}

// waitConfirmed blocks until every name is confirmed by Redis or ctx ends.
func (c *subConn) waitConfirmed(ctx context.Context, names ...string) error {
	for {
		c.mu.Lock()
		ok := true
		for _, n := range names {
			if !c.confirmed[n] {
				ok = false
				break
			}
		}
		ch, lastErr := c.changed, c.lastErr
		c.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("redisadapter: subscribe: %w (last error: %v)", ctx.Err(), lastErr)
			}
			return fmt.Errorf("redisadapter: subscribe: %w", ctx.Err())
		}
	}
}

func subscribe(ctx context.Context, ps *redis.PubSub, kind subKind, names []string) error {
	switch kind {
	case kindPattern:
		return ps.PSubscribe(ctx, names...)
	case kindShard:
		return ps.SSubscribe(ctx, names...)
	}
	return ps.Subscribe(ctx, names...)
}

func (c *subConn) newPubSub(ctx context.Context) *redis.PubSub {
	if c.shard {
		return c.node.client.SSubscribe(ctx)
	}
	return c.node.client.Subscribe(ctx)
}

// run keeps the connection up until ctx ends.
func (c *subConn) run(ctx context.Context) {
	defer close(c.done)
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		ps, err := c.connect(ctx)
		if err != nil {
			c.fail(nil, fmt.Errorf("connect: %w", err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		c.receive(ctx, ps)
	}
	c.mu.Lock()
	if c.ps != nil {
		_ = c.ps.Close()
		c.ps = nil
	}
	c.checkOK = false
	c.lastErr = errors.New("closed")
	c.notifyLocked()
	c.mu.Unlock()
}

// connect opens a new connection and subscribes every wanted name on it,
// grouped by kind. For a sharded cluster connection all names share a slot.
func (c *subConn) connect(ctx context.Context) (*redis.PubSub, error) {
	c.mu.Lock()
	snapshot := make(map[string]subKind, len(c.want))
	for n, k := range c.want {
		snapshot[n] = k
	}
	c.mu.Unlock()

	ps := c.newPubSub(ctx)
	if err := subscribeAll(ctx, ps, snapshot); err != nil {
		_ = ps.Close()
		return nil, err
	}
	c.mu.Lock()
	c.ps = ps
	c.connected = time.Now()
	c.gen++
	c.confirmed = map[string]bool{}
	c.checkOK, c.nonce = false, ""
	// names added or removed while connecting
	added := map[string]subKind{}
	for n, k := range c.want {
		if _, ok := snapshot[n]; !ok {
			added[n] = k
		}
	}
	var removed []string
	for n := range snapshot {
		if _, ok := c.want[n]; !ok {
			removed = append(removed, n)
		}
	}
	c.notifyLocked()
	c.mu.Unlock()
	if err := subscribeAll(ctx, ps, added); err != nil {
		return ps, nil // the receive loop sees the broken connection
	}
	for _, n := range removed {
		switch snapshot[n] {
		case kindChannel:
			_ = ps.Unsubscribe(ctx, n)
		case kindPattern:
			_ = ps.PUnsubscribe(ctx, n)
		case kindShard:
			_ = ps.SUnsubscribe(ctx, n)
		}
	}
	return ps, nil
}

func subscribeAll(ctx context.Context, ps *redis.PubSub, names map[string]subKind) error {
	byKind := map[subKind][]string{}
	for n, k := range names {
		byKind[k] = append(byKind[k], n)
	}
	// channels first: the self-check channel is in that group, and a later
	// group's confirmations are awaited before the first check is sent
	for _, k := range []subKind{kindChannel, kindShard, kindPattern} {
		if len(byKind[k]) == 0 {
			continue
		}
		list := byKind[k]
		slices.Sort(list)
		if err := subscribe(ctx, ps, k, list); err != nil {
			return err
		}
	}
	return nil
}

// receive reads from ps until it fails, then drops it.
func (c *subConn) receive(ctx context.Context, ps *redis.PubSub) {
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.fail(ps, fmt.Errorf("receive: %w", err))
			return
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if !c.onSubscription(ps, m) {
				return
			}
		case *redis.Message:
			if m.Channel == c.check {
				c.onCheck(ps, m.Payload)
				continue
			}
			c.node.dispatch(m)
		}
	}
}

// onSubscription records a confirmation; it returns false (after dropping
// the connection) when Redis removed a subscription that is still wanted,
// as it does for sharded channels whose slot moved.
func (c *subConn) onSubscription(ps *redis.PubSub, m *redis.Subscription) bool {
	name := m.Channel
	c.mu.Lock()
	if c.ps != ps {
		c.mu.Unlock()
		return false
	}
	switch m.Kind {
	case "subscribe", "psubscribe", "ssubscribe":
		if _, ok := c.want[name]; ok {
			c.confirmed[name] = true
		}
	default:
		if _, ok := c.want[name]; ok {
			c.mu.Unlock()
			c.fail(ps, fmt.Errorf("redis dropped subscription %q (%s)", name, m.Kind))
			return false
		}
		delete(c.confirmed, name)
	}
	all := !c.checkOK && c.nonce == "" && len(c.confirmed) == len(c.want)
	c.notifyLocked()
	c.mu.Unlock()
	if all {
		// everything is subscribed: prove it end to end before reporting ready
		go c.sendCheck(ps)
	}
	return true
}

// fail records err and drops ps (when it is still the current connection).
func (c *subConn) fail(ps *redis.PubSub, err error) {
	c.mu.Lock()
	if ps != nil && c.ps != ps {
		c.mu.Unlock()
		return
	}
	wasReady := c.ps != nil && c.checkOK
	c.lastErr = err
	c.checkOK, c.nonce = false, ""
	if c.ps != nil {
		_ = c.ps.Close()
		c.ps = nil
	}
	c.confirmed = map[string]bool{}
	c.notifyLocked()
	c.mu.Unlock()
	c.node.observeError("subscriber", err)
	if wasReady {
		c.node.log.Warn("redisadapter: pub/sub connection lost, resubscribing", "error", err.Error())
		c.node.observer().OnResubscribe(err.Error())
	}
}

// sendCheck publishes a self-check nonce on this connection's private channel.
func (c *subConn) sendCheck(ps *redis.PubSub) {
	c.mu.Lock()
	if c.ps != ps || c.nonce != "" {
		c.mu.Unlock()
		return
	}
	nonce := uid2(12)
	c.nonce, c.sentAt = nonce, time.Now()
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), c.node.opts.SelfCheckTimeout)
	defer cancel()
	var n int64
	var err error
	if c.shard {
		n, err = c.node.client.SPublish(ctx, c.check, nonce).Result()
	} else {
		n, err = c.node.client.Publish(ctx, c.check, nonce).Result()
	}
	c.node.observer().OnPublish("selfcheck", len(nonce))
	switch {
	case err != nil:
		// Redis unreachable for publishing; the deadline decides
		c.node.observeError("selfcheck", err)
	case n == 0:
		// nobody (not even this connection) is subscribed: Redis lost our state
		c.fail(ps, errors.New("self-check: private channel has no subscriber"))
	}
}

func (c *subConn) onCheck(ps *redis.PubSub, payload string) {
	c.node.observer().OnReceive("selfcheck", len(payload))
	c.mu.Lock()
	if c.ps != ps || payload != c.nonce {
		c.mu.Unlock()
		return
	}
	recovered := !c.checkOK
	c.nonce, c.checkOK, c.lastErr, c.lastCheck = "", true, nil, time.Now()
	c.notifyLocked()
	c.mu.Unlock()
	if recovered {
		c.node.log.Info("redisadapter: pub/sub ready", "check", c.check)
	}
}

// tick runs the periodic self-check: it fails the connection when the
// outstanding check is overdue and sends a new one when one is due.
func (c *subConn) tick(now time.Time) {
	c.mu.Lock()
	ps := c.ps
	if ps == nil {
		c.mu.Unlock()
		return
	}
	if c.nonce != "" {
		overdue := now.Sub(c.sentAt) > c.node.opts.SelfCheckTimeout
		c.mu.Unlock()
		if overdue {
			c.fail(ps, fmt.Errorf("self-check: no echo within %v", c.node.opts.SelfCheckTimeout))
		}
		return
	}
	allConfirmed := len(c.confirmed) == len(c.want)
	// the first check of a connection waits for every confirmation; later
	// ones run on schedule even while a new subscription is pending
	due := (c.checkOK && now.Sub(c.lastCheck) >= c.node.opts.SelfCheckInterval) || (!c.checkOK && allConfirmed)
	stuck := !c.checkOK && !allConfirmed && now.Sub(c.connected) > c.node.opts.SelfCheckTimeout
	c.mu.Unlock()
	if stuck {
		c.fail(ps, fmt.Errorf("self-check: subscriptions not confirmed within %v", c.node.opts.SelfCheckTimeout))
		return
	}
	if due {
		c.sendCheck(ps)
	}
}
