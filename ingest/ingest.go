// Package ingest reads domain events that backends append to a Redis
// Stream, through a consumer group shared by every gateway node: each event
// is broadcast by one node and acknowledged only after the broadcast; the
// pending events of a node that died are claimed by another node. Events
// carrying an id are de-duplicated before clients see them.
//
// Stream entry fields: "event" holds a domain event as JSON (the body of
// POST /api/v1/events), or "emit" a raw emit (the body of POST /api/v1/emit).
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/trading"
)

// Handler broadcasts one decoded entry. A returned error leaves the entry
// pending (it is retried or claimed later); ErrInvalid drops it; an error
// wrapping trading.ErrDuplicate (the event id was delivered before)
// acknowledges it.
type Handler interface {
	Event(ctx context.Context, ev *trading.DomainEvent) error
	// Emit broadcasts a raw emit; id is its event id ("" for none).
	Emit(ctx context.Context, id string, rooms, except []string, event string, data json.RawMessage) error
}

// ErrInvalid marks an entry that can never be processed; it is acknowledged
// and logged, not retried.
var ErrInvalid = errors.New("ingest: invalid entry")

// Options configure a Consumer.
type Options struct {
	Stream   string // required
	Group    string // default "tradewire"
	Consumer string // this node's name, required
	// ClaimIdle is how long an entry may stay pending with a consumer before
	// another node claims it (default 15s).
	ClaimIdle time.Duration
	// Block is the XREADGROUP wait (default 2s); Count the batch (default 100).
	Block time.Duration
	Count int64
	// DedupTTL is how long event ids are remembered (default 24h).
	DedupTTL time.Duration
	// DedupPrefix namespaces the dedup keys (default "tradewire:dedup:").
	DedupPrefix string
	// HandlerDedups says the Handler de-duplicates event ids itself,
	// atomically with its broadcast (trading.OnceBroadcaster): the consumer
	// then sets no marks of its own. Without it the consumer claims an id
	// before the broadcast and marks it done after, which can deliver twice
	// if a node dies between the broadcast and the mark.
	HandlerDedups bool
	// OnGroupSize, when set, is called with the number of consumers in the
	// group after each claim round.
	OnGroupSize func(n int)
	Logger      *slog.Logger
}

// Consumer is one node's member of the consumer group.
type Consumer struct {
	rdb  redis.UniversalClient
	h    Handler
	opts Options
	log  *slog.Logger
}

// New returns a Consumer.
func New(rdb redis.UniversalClient, h Handler, opts Options) (*Consumer, error) {
	if opts.Stream == "" || opts.Consumer == "" {
		return nil, errors.New("ingest: Stream and Consumer are required")
	}
	if opts.Group == "" {
		opts.Group = "tradewire"
	}
	if opts.ClaimIdle <= 0 {
		opts.ClaimIdle = 15 * time.Second
	}
	if opts.Block <= 0 {
		opts.Block = 2 * time.Second
	}
	if opts.Count <= 0 {
		opts.Count = 100
	}
	if opts.DedupTTL <= 0 {
		opts.DedupTTL = 24 * time.Hour
	}
	if opts.DedupPrefix == "" {
		opts.DedupPrefix = "tradewire:dedup:"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Consumer{rdb: rdb, h: h, opts: opts, log: opts.Logger}, nil
}

func (c *Consumer) ensureGroup(ctx context.Context) error {
	err := c.rdb.XGroupCreateMkStream(ctx, c.opts.Stream, c.opts.Group, "0").Err()
	if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("ingest: create group: %w", err)
	}
	return nil
}

// Run consumes until ctx ends. Redis errors are logged and retried.
func (c *Consumer) Run(ctx context.Context) {
	lastClaim := time.Time{}
	for ctx.Err() == nil {
		if err := c.ensureGroup(ctx); err != nil {
			c.pause(ctx, err)
			continue
		}
		if time.Since(lastClaim) >= c.opts.ClaimIdle/3 {
			lastClaim = time.Now()
			// Our own pending entries (after a restart or a failed
			// broadcast), then those of consumers gone idle.
			if err := c.read(ctx, "0"); err != nil {
				c.pause(ctx, err)
				continue
			}
			if err := c.claim(ctx); err != nil {
				c.pause(ctx, err)
				continue
			}
			c.cleanup(ctx)
		}
		if err := c.read(ctx, ">"); err != nil {
			c.pause(ctx, err)
		}
	}
}

func (c *Consumer) pause(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	if strings.Contains(err.Error(), "NOGROUP") {
		return // stream deleted: recreate at once
	}
	c.log.Warn("ingest: redis error, retrying", "err", err)
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
	}
}

func (c *Consumer) read(ctx context.Context, id string) error {
	block := c.opts.Block
	if id != ">" {
		block = -1 // pending entries: no wait
	}
	res, err := c.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: c.opts.Group, Consumer: c.opts.Consumer,
		Streams: []string{c.opts.Stream, id}, Count: c.opts.Count, Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ingest: read: %w", err)
	}
	for _, s := range res {
		for _, m := range s.Messages {
			if ctx.Err() != nil {
				return nil
			}
			c.process(ctx, m)
		}
	}
	return nil
}

// claim takes over entries idle longer than ClaimIdle (their consumer died).
func (c *Consumer) claim(ctx context.Context) error {
	start := "0-0"
	for {
		msgs, next, err := c.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: c.opts.Stream, Group: c.opts.Group, Consumer: c.opts.Consumer,
			MinIdle: c.opts.ClaimIdle, Start: start, Count: c.opts.Count,
		}).Result()
		if err != nil {
			return fmt.Errorf("ingest: claim: %w", err)
		}
		for _, m := range msgs {
			c.log.Info("ingest: claimed an event left pending by another node", "entry", m.ID)
			c.process(ctx, m)
		}
		if next == "0-0" || next == "" || len(msgs) == 0 {
			return nil
		}
		start = next
	}
}

// cleanup deletes the consumers of departed nodes: others with no pending
// entry left (claim took them) and idle for longer than ClaimIdle. A live
// node deleted by mistake is recreated by its next read. It reports the
// group size to OnGroupSize.
func (c *Consumer) cleanup(ctx context.Context) {
	consumers, err := c.rdb.XInfoConsumers(ctx, c.opts.Stream, c.opts.Group).Result()
	if err != nil {
		return
	}
	n := len(consumers)
	for _, x := range consumers {
		if x.Name == c.opts.Consumer || x.Pending > 0 || x.Idle < c.opts.ClaimIdle {
			continue
		}
		if err := c.rdb.XGroupDelConsumer(ctx, c.opts.Stream, c.opts.Group, x.Name).Err(); err == nil {
			c.log.Info("ingest: removed the consumer of a departed node", "consumer", x.Name)
			n--
		}
	}
	if c.opts.OnGroupSize != nil {
		c.opts.OnGroupSize(n)
	}
}

type envelope struct {
	ev   *trading.DomainEvent
	emit *struct {
		Rooms  []string        `json:"rooms"`
		Except []string        `json:"except"`
		Event  string          `json:"event"`
		Data   json.RawMessage `json:"data"`
		ID     string          `json:"id"`
	}
}

func decode(m redis.XMessage) (envelope, string, error) {
	var env envelope
	if raw, ok := m.Values["event"].(string); ok {
		env.ev = &trading.DomainEvent{}
		if err := json.Unmarshal([]byte(raw), env.ev); err != nil {
			return env, "", fmt.Errorf("%w: event: %v", ErrInvalid, err)
		}
		return env, env.ev.ID, nil
	}
	if raw, ok := m.Values["emit"].(string); ok {
		env.emit = &struct {
			Rooms  []string        `json:"rooms"`
			Except []string        `json:"except"`
			Event  string          `json:"event"`
			Data   json.RawMessage `json:"data"`
			ID     string          `json:"id"`
		}{}
		if err := json.Unmarshal([]byte(raw), env.emit); err != nil || env.emit.Event == "" {
			return env, "", fmt.Errorf("%w: emit: bad JSON or no event", ErrInvalid)
		}
		return env, env.emit.ID, nil
	}
	return env, "", fmt.Errorf("%w: no event or emit field", ErrInvalid)
}

const done = "done"

// process broadcasts one entry at least once and acknowledges it. With an
// event id: a "claimed by entry X" mark is set before the broadcast and
// "done" after it; an id already done (a backend retry, or an entry claimed
// after its broadcast finished) is acknowledged without a broadcast.
func (c *Consumer) process(parent context.Context, m redis.XMessage) {
	// Once started, an entry is finished even if the consumer is stopping,
	// so a broadcast is never left without its done mark and ack.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), 10*time.Second)
	defer cancel()
	env, id, err := decode(m)
	if err != nil {
		c.log.Warn("ingest: dropping invalid entry", "entry", m.ID, "err", err)
		c.ack(ctx, m.ID)
		return
	}
	key := c.opts.DedupPrefix + id
	marks := id != "" && !c.opts.HandlerDedups
	if marks {
		ok, err := c.rdb.SetNX(ctx, key, m.ID, c.opts.DedupTTL).Result()
		if err != nil {
			return // stays pending; retried
		}
		if !ok {
			owner, err := c.rdb.Get(ctx, key).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return
			}
			if owner == done || owner != m.ID {
				// Already broadcast, or the same event id in another entry.
				c.ack(ctx, m.ID)
				return
			}
			// Our own mark from an attempt that did not finish: broadcast again.
		}
	}
	switch {
	case env.ev != nil:
		err = c.h.Event(ctx, env.ev)
	default:
		err = c.h.Emit(ctx, id, env.emit.Rooms, env.emit.Except, env.emit.Event, env.emit.Data)
	}
	if errors.Is(err, trading.ErrDuplicate) {
		c.ack(ctx, m.ID) // delivered before (a backend retry, or our own attempt whose ack was lost)
		return
	}
	if errors.Is(err, ErrInvalid) || errors.Is(err, trading.ErrInvalidEvent) {
		c.log.Warn("ingest: dropping invalid event", "entry", m.ID, "err", err)
		if marks {
			c.rdb.Del(ctx, key)
		}
		c.ack(ctx, m.ID)
		return
	}
	if err != nil {
		c.log.Warn("ingest: broadcast failed; the entry stays pending", "entry", m.ID, "err", err)
		return
	}
	pipe := c.rdb.Pipeline()
	if marks {
		pipe.Set(ctx, key, done, c.opts.DedupTTL)
	}
	pipe.XAck(ctx, c.opts.Stream, c.opts.Group, m.ID)
	if _, err := pipe.Exec(ctx); err != nil {
		c.log.Warn("ingest: ack failed; the entry may be delivered again", "entry", m.ID, "err", err)
	}
}

func (c *Consumer) ack(ctx context.Context, id string) {
	if err := c.rdb.XAck(ctx, c.opts.Stream, c.opts.Group, id).Err(); err != nil {
		c.log.Warn("ingest: ack failed", "entry", id, "err", err)
	}
}
