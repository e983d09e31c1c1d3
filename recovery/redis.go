// Package recovery keeps connection state recovery in Redis Streams, so a
// client that reconnects to any node within the recovery window gets every
// recoverable event it missed, in order, once — or, when that cannot be
// guaranteed, nothing (recovered: false) and refetches its state.
//
// Recoverable broadcasts are partitioned (tradewire partitions by user): one
// stream per partition, bounded in length and expiring when idle. The
// stream entry id is the offset the client sees. Session snapshots (rooms,
// data) are written while sockets are connected, so even a node killed
// without warning leaves them behind.
package recovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/adapter"
	"github.com/tradewire/tradewire/parser"
)

// Options configure a Store.
type Options struct {
	// Prefix of every key (default "tradewire:rec").
	Prefix string
	// Window is how long a disconnected session can be restored and how
	// long an idle stream lives (required).
	Window time.Duration
	// MaxLen bounds each partition's stream (approximately; default 1000).
	MaxLen int64
	// MaxMissed bounds the events one restore may replay (default 5000);
	// more is treated as not recoverable.
	MaxMissed int64
	// Partition maps a broadcast to its stream; "" = not recoverable.
	Partition func(opts *adapter.BroadcastOptions) string
	// Timeout bounds each Redis call (default 1s).
	Timeout time.Duration
	// DedupPrefix namespaces event-id marks (default "tradewire:dedup:");
	// a mark is <DedupPrefix>{<partition>}:<id>, in the stream's slot.
	DedupPrefix string
	// DedupTTL is how long an event id is remembered (default 24h).
	DedupTTL time.Duration
	// ShardedPublish publishes with SPUBLISH instead of PUBLISH (sharded
	// pub/sub: the channel must hash to the partition's slot).
	ShardedPublish bool
	// Ack, when set, also appends ackable broadcasts to the partition's
	// acknowledged-events stream (package acklog), in the same script.
	Ack    AckLog
	Logger *slog.Logger
}

// AckLog says which broadcasts clients acknowledge and where they go.
type AckLog interface {
	// Ackable reports whether clients acknowledge this packet.
	Ackable(pkt *parser.Packet) bool
	// Key is the partition's stream (in the partition's slot).
	Key(partition string) string
	MaxLen() int64
	Window() time.Duration
}

// Store is a Redis Streams adapter.RecoveryStore.
type Store struct {
	rdb  redis.UniversalClient
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	gaps    map[string]bool // partitions whose last record failed
	pending map[string][]byte
	wake    chan struct{}
	done    chan struct{}
	closed  chan struct{}
}

// New returns a Store; Close stops its session writer.
func New(rdb redis.UniversalClient, opts Options) (*Store, error) {
	if opts.Window <= 0 {
		return nil, errors.New("recovery: Window must be positive")
	}
	if opts.Partition == nil {
		return nil, errors.New("recovery: Partition is required")
	}
	if opts.Prefix == "" {
		opts.Prefix = "tradewire:rec"
	}
	if opts.MaxLen <= 0 {
		opts.MaxLen = 1000
	}
	if opts.MaxMissed <= 0 {
		opts.MaxMissed = 5000
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if opts.DedupPrefix == "" {
		opts.DedupPrefix = "tradewire:dedup:"
	}
	if opts.DedupTTL <= 0 {
		opts.DedupTTL = 24 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Store{
		rdb: rdb, opts: opts, log: opts.Logger,
		gaps:    make(map[string]bool),
		pending: make(map[string][]byte),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		closed:  make(chan struct{}),
	}
	go s.writer()
	return s, nil
}

// Close flushes pending session snapshots and stops the writer.
func (s *Store) Close() error {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	<-s.closed
	return nil
}

func (s *Store) streamKey(nsp, partition string) string {
	return s.opts.Prefix + ":s:" + nsp + ":{" + partition + "}"
}

func (s *Store) sessionKey(nsp, pid string) string {
	return s.opts.Prefix + ":sess:" + nsp + ":" + pid
}

// recordPublish appends the entry (XADD with MAXLEN ~), refreshes the
// stream's expiry and publishes the broadcast with the new id spliced in as
// a msgpack fixstr, atomically: Redis runs the script alone, so every node
// receives the broadcasts of a partition in stream order. With a second
// key, the event id's dedup mark, a broadcast whose mark exists is refused
// (false) and the mark is set together with the publish, so two nodes
// racing with one event id deliver it once.
//
// With a third key, the user's acknowledged-events stream (see package
// acklog), an ackable event is appended to it too while it exists.
//
// KEYS: stream, dedup mark, ack stream (unused ones repeat the stream key).
// ARGV: maxlen, window ms, channel, pre, post, mark ttl ms, publish command
// (PUBLISH or SPUBLISH), use mark, ackable, ack maxlen, ack window ms,
// fields (the first is the data)... The id goes
// between pre and post as a msgpack fixstr, or bare when the payload is
// JSON (pre starts with '{'; the caller leaves the quotes in pre and post).
var recordPublish = redis.NewScript(`
local key = KEYS[1]
if ARGV[8] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then
  return false
end
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seq = 0
if redis.call('EXISTS', key) == 1 then
  local info = redis.call('XINFO', 'STREAM', key)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      local lms, lseq = string.match(info[i + 1], '(%d+)-(%d+)')
      lms = tonumber(lms)
      lseq = tonumber(lseq)
      if lms >= ms then
        ms = lms
        seq = lseq + 1
      end
    end
  end
end
local id = string.format('%.0f-%.0f', ms, seq)
-- Publish first: if it is refused, nothing is recorded or marked either (a
-- script is not rolled back on error).
local tag = string.char(160 + #id)
if string.sub(ARGV[4], 1, 1) == '{' then tag = '' end
redis.call(ARGV[7], ARGV[3], ARGV[4] .. tag .. id .. ARGV[5])
if ARGV[8] == '1' then
  redis.call('SET', KEYS[2], 'done', 'PX', ARGV[6])
end
local fields = {}
for i = 12, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('XADD', key, 'MAXLEN', '~', tonumber(ARGV[1]), id, unpack(fields))
redis.call('PEXPIRE', key, ARGV[2])
if ARGV[9] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', tonumber(ARGV[10]), '*', 'd', fields[2])
  redis.call('PEXPIRE', KEYS[3], ARGV[11])
end
return id
`)

// entry fields
const (
	fData   = "d"
	fRooms  = "r"
	fExcept = "x"
	fGap    = "gap"
	fBin    = "b" // b0, b1, ...
)

// Record appends a recoverable broadcast to its partition's stream (one
// round trip: XADD with MAXLEN, plus EXPIRE, pipelined).
func (s *Store) Record(nsp string, pkt *parser.Packet, opts *adapter.BroadcastOptions) (string, error) {
	part := s.opts.Partition(opts)
	if part == "" {
		return "", nil
	}
	key := s.streamKey(nsp, part)
	rooms, _ := json.Marshal(opts.Rooms)
	except, _ := json.Marshal(opts.Except)
	values := []any{fData, string(pkt.Data), fRooms, string(rooms), fExcept, string(except)}
	for i, a := range pkt.Attachments {
		values = append(values, fBin+strconv.Itoa(i), a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	s.mu.Lock()
	gap := s.gaps[key]
	s.mu.Unlock()
	pipe := s.rdb.Pipeline()
	if gap {
		// A record for this partition failed earlier: mark the hole so no
		// restore ever replays across it.
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, MaxLen: s.opts.MaxLen, Approx: true, Values: []any{fGap, "1"}})
	}
	add := pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, MaxLen: s.opts.MaxLen, Approx: true, Values: values})
	pipe.PExpire(ctx, key, s.opts.Window)
	if _, err := pipe.Exec(ctx); err != nil {
		s.mu.Lock()
		s.gaps[key] = true
		s.mu.Unlock()
		return "", fmt.Errorf("recovery: record: %w", err)
	}
	if gap {
		s.mu.Lock()
		delete(s.gaps, key)
		s.mu.Unlock()
	}
	return add.Val(), nil
}

type snapshot struct {
	SID   string          `json:"sid"`
	PID   string          `json:"pid"`
	Rooms []string        `json:"rooms"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// PersistSession queues a session snapshot; a writer sends queued
// snapshots in pipelined batches.
func (s *Store) PersistSession(nsp string, st *adapter.SessionState) {
	b, err := json.Marshal(snapshot{SID: st.SID, PID: st.PID, Rooms: st.Rooms, Data: st.Data})
	if err != nil {
		return
	}
	s.mu.Lock()
	s.pending[s.sessionKey(nsp, st.PID)] = b
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Store) writer() {
	defer close(s.closed)
	for {
		select {
		case <-s.wake:
		case <-s.done:
			s.flush()
			return
		}
		s.flush()
	}
}

func (s *Store) flush() {
	for {
		s.mu.Lock()
		if len(s.pending) == 0 {
			s.mu.Unlock()
			return
		}
		batch := make(map[string][]byte, min(len(s.pending), 500))
		for k, v := range s.pending {
			batch[k] = v
			delete(s.pending, k)
			if len(batch) == 500 {
				break
			}
		}
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
		pipe := s.rdb.Pipeline()
		for k, v := range batch {
			pipe.Set(ctx, k, v, s.opts.Window)
		}
		_, err := pipe.Exec(ctx)
		cancel()
		if err != nil {
			s.log.Warn("recovery: session snapshots not saved", "count", len(batch), "err", err)
			return
		}
	}
}

// RestoreSession returns the session of pid with the events it missed
// after offset, or adapter.ErrNotRecoverable when the gap cannot be filled
// whole: unknown or expired session, offset no longer in the stream, a
// recorded hole, or too many events.
func (s *Store) RestoreSession(nsp, pid, offset string) (*adapter.SessionState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*s.opts.Timeout)
	defer cancel()
	raw, err := s.rdb.Get(ctx, s.sessionKey(nsp, pid)).Bytes()
	if err != nil {
		if !errors.Is(err, redis.Nil) {
			s.log.Warn("recovery: session lookup failed", "err", err)
		}
		return nil, adapter.ErrNotRecoverable
	}
	var snap snapshot
	if json.Unmarshal(raw, &snap) != nil || snap.SID == "" {
		return nil, adapter.ErrNotRecoverable
	}
	st := &adapter.SessionState{SID: snap.SID, PID: snap.PID, Rooms: snap.Rooms, Data: snap.Data}
	part := s.opts.Partition(&adapter.BroadcastOptions{Rooms: snap.Rooms})
	if part == "" {
		return st, nil // nothing recoverable was ever sent to it
	}
	if !validID(offset) {
		return nil, adapter.ErrNotRecoverable
	}
	key := s.streamKey(nsp, part)
	pipe := s.rdb.Pipeline()
	at := pipe.XRange(ctx, key, offset, offset)
	after := pipe.XRangeN(ctx, key, "("+offset, "+", s.opts.MaxMissed+1)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		s.log.Warn("recovery: stream read failed", "err", err)
		return nil, adapter.ErrNotRecoverable
	}
	if len(at.Val()) != 1 {
		// The offset was trimmed (or never existed): a gap is possible.
		return nil, adapter.ErrNotRecoverable
	}
	entries := after.Val()
	if int64(len(entries)) > s.opts.MaxMissed {
		return nil, adapter.ErrNotRecoverable
	}
	rooms := make(map[string]struct{}, len(snap.Rooms))
	for _, r := range snap.Rooms {
		rooms[r] = struct{}{}
	}
	for _, e := range entries {
		if _, gap := e.Values[fGap]; gap {
			return nil, adapter.ErrNotRecoverable
		}
		pkt, opts, ok := decodeEntry(nsp, e)
		if !ok {
			return nil, adapter.ErrNotRecoverable
		}
		if adapter.ShouldInclude(rooms, opts) {
			pkt.Data = parser.AppendArg(pkt.Data, e.ID)
			st.Missed = append(st.Missed, pkt)
		}
	}
	return st, nil
}

// Void deletes a recorded entry whose broadcast failed, retrying in the
// background (for up to the recovery window) while Redis is unreachable.
func (s *Store) Void(nsp string, opts *adapter.BroadcastOptions, offset string) {
	part := s.opts.Partition(opts)
	if part == "" || !validID(offset) {
		return
	}
	key := s.streamKey(nsp, part)
	del := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
		defer cancel()
		return s.rdb.XDel(ctx, key, offset).Err() == nil
	}
	if del() {
		return
	}
	go func() {
		deadline := time.Now().Add(s.opts.Window)
		for time.Now().Before(deadline) {
			select {
			case <-s.done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if del() {
				return
			}
		}
	}()
}

// CatchUp lists the recorded packets after offset that rooms select.
func (s *Store) CatchUp(nsp string, rooms []string, offset string) []*parser.Packet {
	part := s.opts.Partition(&adapter.BroadcastOptions{Rooms: rooms})
	if part == "" || !validID(offset) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	entries, err := s.rdb.XRangeN(ctx, s.streamKey(nsp, part), "("+offset, "+", s.opts.MaxMissed).Result()
	if err != nil {
		return nil
	}
	set := make(map[string]struct{}, len(rooms))
	for _, r := range rooms {
		set[r] = struct{}{}
	}
	var out []*parser.Packet
	for _, e := range entries {
		pkt, opts, ok := decodeEntry(nsp, e)
		if !ok || !adapter.ShouldInclude(set, opts) {
			continue
		}
		pkt.Data = parser.AppendArg(pkt.Data, e.ID)
		out = append(out, pkt)
	}
	return out
}

// validID reports whether id is a stream id ("<ms>-<seq>").
func validID(id string) bool {
	p, ok := adapter.ParsePosition(id)
	return ok && p.IsStream()
}

func decodeEntry(nsp string, e redis.XMessage) (*parser.Packet, *adapter.BroadcastOptions, bool) {
	data, ok := e.Values[fData].(string)
	if !ok {
		return nil, nil, false
	}
	opts := &adapter.BroadcastOptions{}
	if r, ok := e.Values[fRooms].(string); ok {
		_ = json.Unmarshal([]byte(r), &opts.Rooms)
	}
	if x, ok := e.Values[fExcept].(string); ok {
		_ = json.Unmarshal([]byte(x), &opts.Except)
	}
	pkt := &parser.Packet{Type: parser.Event, Nsp: nsp, Data: []byte(data)}
	for i := 0; ; i++ {
		b, ok := e.Values[fBin+strconv.Itoa(i)].(string)
		if !ok {
			break
		}
		pkt.Attachments = append(pkt.Attachments, []byte(b))
	}
	return pkt, opts, true
}

// DedupKey is the mark of event id in partition (in the stream's slot).
func (s *Store) DedupKey(partition, id string) string {
	return s.opts.DedupPrefix + "{" + partition + "}:" + id
}

// RecordAndPublish records a broadcast and publishes it on channel in one
// atomic script (with sharded pub/sub the channel must be in the stream's
// slot, see PartitionChannel). "" and no error when pkt is not recoverable
// (nothing published then: the caller publishes itself). With
// opts.Flags.Once it returns adapter.ErrDuplicate, publishing nothing, when
// that event id was already published for the partition.
func (s *Store) RecordAndPublish(nsp string, pkt *parser.Packet, opts *adapter.BroadcastOptions, channel string, pre, post []byte) (string, error) {
	part := s.opts.Partition(opts)
	if part == "" {
		return "", nil
	}
	key := s.streamKey(nsp, part)
	keys := []string{key, key, key}
	useMark, ackable := "0", "0"
	if opts.Flags.Once != "" {
		keys[1], useMark = s.DedupKey(part, opts.Flags.Once), "1"
	}
	if s.opts.Ack != nil && s.opts.Ack.Ackable(pkt) {
		keys[2], ackable = s.opts.Ack.Key(part), "1"
	}
	var ackLen, ackWindow int64
	if s.opts.Ack != nil {
		ackLen, ackWindow = s.opts.Ack.MaxLen(), s.opts.Ack.Window().Milliseconds()
	}
	cmd := "PUBLISH"
	if s.opts.ShardedPublish {
		cmd = "SPUBLISH"
	}
	rooms, _ := json.Marshal(opts.Rooms)
	except, _ := json.Marshal(opts.Except)
	args := []any{s.opts.MaxLen, s.opts.Window.Milliseconds(), channel, pre, post, s.opts.DedupTTL.Milliseconds(), cmd,
		useMark, ackable, ackLen, ackWindow,
		fData, string(pkt.Data), fRooms, string(rooms), fExcept, string(except)}
	for i, a := range pkt.Attachments {
		args = append(args, fBin+strconv.Itoa(i), a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	s.mu.Lock()
	gap := s.gaps[key]
	s.mu.Unlock()
	if gap {
		if err := s.rdb.XAdd(ctx, &redis.XAddArgs{Stream: key, MaxLen: s.opts.MaxLen, Approx: true, Values: []any{fGap, "1"}}).Err(); err != nil {
			return "", fmt.Errorf("recovery: record: %w", err)
		}
		s.mu.Lock()
		delete(s.gaps, key)
		s.mu.Unlock()
	}
	id, err := recordPublish.Run(ctx, s.rdb, keys, args...).Text()
	if errors.Is(err, redis.Nil) {
		return "", adapter.ErrDuplicate
	}
	if err != nil {
		s.mu.Lock()
		s.gaps[key] = true
		s.mu.Unlock()
		return "", fmt.Errorf("recovery: record and publish: %w", err)
	}
	return id, nil
}

// PartitionOf returns the stream a broadcast is recorded in ("" for none).
func (s *Store) PartitionOf(opts *adapter.BroadcastOptions) string { return s.opts.Partition(opts) }

var _ adapter.RecoveryStore = (*Store)(nil)
var _ adapter.Partitioner = (*Store)(nil)
