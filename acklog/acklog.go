// Package acklog delivers a user's trade events to clients that
// acknowledge them (opt-in): every event is kept in a per-user Redis
// Stream, each client device is a consumer group of it, and an event stays
// pending for a device until that device's client acknowledges it. A
// client that reconnects, even after connection state recovery expired,
// gets its device's unacknowledged events again, then the new ones, in
// stream order. The stream is bounded (about MaxLen entries, expiring
// Window after its last write): older unacknowledged events are lost.
//
// The events are appended by the recovery store's record-and-publish script
// (recovery.Options.AckKey), atomically with their publish, and only while
// the user's stream exists, i.e. while some device subscribed within the
// window.
package acklog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/parser"
	"github.com/tradewire/tradewire/socketio"
)

// Field is the stream entry field holding the Socket.IO event data
// (a JSON array: name, then arguments).
const Field = "d"

// consumer is the only consumer of each device's group: the group's
// pending list is the device's unacknowledged events.
const consumer = "c"

// Options configure a Log.
type Options struct {
	// Prefix of the per-user stream keys (default "tradewire:ack:"); a key
	// is <Prefix>{<user>}, in the slot of the user's recovery stream.
	Prefix string
	// Window is how long an idle user's stream is kept (default 24h).
	Window time.Duration
	// MaxLen bounds each user's stream (approximately; default 1000).
	MaxLen int64
	// Poll is how often new events are fetched (default 50ms).
	Poll time.Duration
	// Timeout bounds each Redis call (default 2s).
	Timeout time.Duration
	// Events are the event names clients acknowledge (default
	// trade:executed and trade:failed).
	Events []string
	Logger *slog.Logger
}

// Log is one node's part: the local sockets that opted in, and the loop
// that sends them their events.
type Log struct {
	rdb  redis.UniversalClient
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	devices map[string]*device // user + "\x00" + device
	sockets map[*socketio.Socket]*device
	wake    chan struct{}
}

// device is one (user, device) pair with local sockets.
type device struct {
	key, group string
	// mu serialises sends, so the replay of pending events on subscribe
	// and new events keep stream order.
	mu      sync.Mutex
	sockets map[*socketio.Socket]string // socket -> last id replayed to it on subscribe
}

// New returns a Log; Run sends the events.
func New(rdb redis.UniversalClient, opts Options) *Log {
	if opts.Prefix == "" {
		opts.Prefix = "tradewire:ack:"
	}
	if opts.Window <= 0 {
		opts.Window = 24 * time.Hour
	}
	if opts.MaxLen <= 0 {
		opts.MaxLen = 1000
	}
	if opts.Poll <= 0 {
		opts.Poll = 50 * time.Millisecond
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Events == nil {
		opts.Events = []string{"trade:executed", "trade:failed"}
	}
	return &Log{rdb: rdb, opts: opts, log: opts.Logger,
		devices: map[string]*device{}, sockets: map[*socketio.Socket]*device{}, wake: make(chan struct{}, 1)}
}

// Key is the stream of a user's acknowledged events.
func (l *Log) Key(user string) string { return l.opts.Prefix + "{" + user + "}" }

// Ackable reports whether clients acknowledge pkt (by its event name).
func (l *Log) Ackable(pkt *parser.Packet) bool {
	return slices.Contains(l.opts.Events, parser.EventName(pkt.Data))
}

// Window is how long an idle stream is kept.
func (l *Log) Window() time.Duration { return l.opts.Window }

// MaxLen bounds each stream.
func (l *Log) MaxLen() int64 { return l.opts.MaxLen }

// ValidDevice reports whether a device id is acceptable (1-64 characters,
// no control characters).
func ValidDevice(d string) bool {
	if d == "" || len(d) > 64 {
		return false
	}
	return !strings.ContainsFunc(d, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// Subscribe makes s receive the user's events with acknowledgements, for
// device: first every event the device has not acknowledged (sent to an
// earlier connection), then each new one.
func (l *Log) Subscribe(ctx context.Context, s *socketio.Socket, user, dev string) error {
	if !ValidDevice(dev) {
		return fmt.Errorf("acklog: invalid device id")
	}
	key := l.Key(user)
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	err := l.rdb.XGroupCreateMkStream(ctx, key, dev, "$").Err()
	if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("acklog: create group: %w", err)
	}
	if err := l.rdb.PExpire(ctx, key, l.opts.Window).Err(); err != nil {
		return fmt.Errorf("acklog: expire: %w", err)
	}
	l.mu.Lock()
	if old := l.sockets[s]; old != nil {
		l.removeLocked(s, old)
	}
	id := user + "\x00" + dev
	d := l.devices[id]
	if d == nil {
		d = &device{key: key, group: dev, sockets: map[*socketio.Socket]string{}}
		l.devices[id] = d
	}
	d.sockets[s] = ""
	l.sockets[s] = d
	l.mu.Unlock()

	// Replay the device's pending events to this socket, in order, before
	// any new one reaches it.
	d.mu.Lock()
	defer d.mu.Unlock()
	start := "0"
	for {
		res, err := l.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: dev, Consumer: consumer,
			Streams: []string{key, start}, Count: 500, Block: -1}).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			l.Unsubscribe(s)
			return fmt.Errorf("acklog: read pending: %w", err)
		}
		if len(res) == 0 || len(res[0].Messages) == 0 {
			break
		}
		for _, m := range res[0].Messages {
			l.send(d, s, m)
			start = m.ID
		}
	}
	// A poll that read new entries before this replay made them pending:
	// they were just replayed, so it must not send them to s again.
	l.mu.Lock()
	if _, ok := d.sockets[s]; ok && start != "0" {
		d.sockets[s] = start
	}
	l.mu.Unlock()
	l.kick()
	return nil
}

// Unsubscribe stops sending to s (its unacknowledged events stay pending
// for its device).
func (l *Log) Unsubscribe(s *socketio.Socket) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d := l.sockets[s]; d != nil {
		l.removeLocked(s, d)
	}
}

func (l *Log) removeLocked(s *socketio.Socket, d *device) {
	delete(l.sockets, s)
	delete(d.sockets, s)
	if len(d.sockets) == 0 {
		for id, x := range l.devices {
			if x == d {
				delete(l.devices, id)
			}
		}
	}
}

func (l *Log) kick() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Run fetches and sends new events until ctx ends.
func (l *Log) Run(ctx context.Context) {
	t := time.NewTicker(l.opts.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-l.wake:
		}
		l.poll(ctx)
	}
}

// poll reads each local device's new events in one pipeline and sends them.
func (l *Log) poll(ctx context.Context) {
	l.mu.Lock()
	devs := make([]*device, 0, len(l.devices))
	for _, d := range l.devices {
		devs = append(devs, d)
	}
	l.mu.Unlock()
	if len(devs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.XStreamSliceCmd, len(devs))
	for i, d := range devs {
		cmds[i] = pipe.XReadGroup(ctx, &redis.XReadGroupArgs{Group: d.group, Consumer: consumer,
			Streams: []string{d.key, ">"}, Count: 100, Block: -1})
	}
	_, _ = pipe.Exec(ctx)
	for i, d := range devs {
		res, err := cmds[i].Result()
		if err != nil {
			if !errors.Is(err, redis.Nil) && ctx.Err() == nil {
				l.log.Warn("acklog: read failed", "err", err)
			}
			continue
		}
		d.mu.Lock()
		for _, st := range res {
			for _, m := range st.Messages {
				l.mu.Lock()
				targets := make([]*socketio.Socket, 0, len(d.sockets))
				for s, floor := range d.sockets {
					if floor == "" || idLess(floor, m.ID) {
						targets = append(targets, s)
					}
				}
				l.mu.Unlock()
				for _, s := range targets {
					l.send(d, s, m)
				}
			}
		}
		d.mu.Unlock()
	}
}

// send emits one entry to s with an ack; the ack acknowledges the entry
// for the device. An entry trimmed from the stream (beyond the window) is
// acknowledged without a send.
func (l *Log) send(d *device, s *socketio.Socket, m redis.XMessage) {
	raw, _ := m.Values[Field].(string)
	var arr []json.RawMessage
	var name string
	if raw == "" || json.Unmarshal([]byte(raw), &arr) != nil || len(arr) == 0 || json.Unmarshal(arr[0], &name) != nil {
		l.ack(d, m.ID)
		return
	}
	args := make([]any, len(arr)-1)
	for i, a := range arr[1:] {
		args[i] = a
	}
	_ = s.EmitWithAck(name, args, 0, func(_ []any, err error) {
		if err == nil {
			l.ack(d, m.ID)
		}
	})
}

func (l *Log) ack(d *device, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.Timeout)
	defer cancel()
	if err := l.rdb.XAck(ctx, d.key, d.group, id).Err(); err != nil {
		l.log.Warn("acklog: ack not recorded; the event will be sent again", "err", err)
	}
}

// idLess compares two stream ids ms-seq.
func idLess(a, b string) bool {
	am, as := splitID(a)
	bm, bs := splitID(b)
	return am < bm || am == bm && as < bs
}

func splitID(id string) (uint64, uint64) {
	ms, seq, _ := strings.Cut(id, "-")
	m, _ := strconv.ParseUint(ms, 10, 64)
	q, _ := strconv.ParseUint(seq, 10, 64)
	return m, q
}
