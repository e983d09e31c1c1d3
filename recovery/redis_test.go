package recovery

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/adapter"
	"github.com/tradewire/tradewire/internal/testutil/redistest"
	"github.com/tradewire/tradewire/parser"
)

// partition by the "u:<id>" room, as the gateway does by user.
func partition(opts *adapter.BroadcastOptions) string {
	for _, r := range opts.Rooms {
		if id, ok := strings.CutPrefix(r, "u:"); ok {
			return id
		}
	}
	return ""
}

func newStore(t *testing.T, window time.Duration) (*Store, *redistest.Server, *redis.Client) {
	t.Helper()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	s, err := New(rdb, Options{Window: window, Partition: partition, MaxLen: 100, MaxMissed: 50})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, srv, rdb
}

func event(n int) *parser.Packet {
	b, _ := json.Marshal([]any{"ev", n})
	return &parser.Packet{Type: parser.Event, Nsp: "/", Data: b}
}

func record(t *testing.T, s *Store, rooms []string, n int) string {
	t.Helper()
	off, err := s.Record("/", event(n), &adapter.BroadcastOptions{Rooms: rooms})
	if err != nil || off == "" {
		t.Fatalf("record %d: %q %v", n, off, err)
	}
	return off
}

func numbers(t *testing.T, pkts []*parser.Packet) []int {
	t.Helper()
	var out []int
	for _, p := range pkts {
		var arr []any
		if err := json.Unmarshal(p.Data, &arr); err != nil || len(arr) != 3 {
			t.Fatalf("packet %s: want [ev, n, offset]", p.Data)
		}
		out = append(out, int(arr[1].(float64)))
	}
	return out
}

func persist(t *testing.T, s *Store, st *adapter.SessionState) {
	t.Helper()
	s.PersistSession("/", st)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if n, _ := s.rdb.Exists(context.Background(), s.sessionKey("/", st.PID)).Result(); n == 1 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("session snapshot not written")
}

func TestRecordRestoreInOrderFilteredAndWhole(t *testing.T) {
	s, _, _ := newStore(t, time.Minute)
	if off, err := s.Record("/", event(0), &adapter.BroadcastOptions{Rooms: []string{"watchlist:AAPL"}}); off != "" || err != nil {
		t.Fatalf("unpartitioned broadcast recorded: %q %v", off, err)
	}
	first := record(t, s, []string{"u:1"}, 1)
	record(t, s, []string{"u:1"}, 2)
	record(t, s, []string{"u:1", "trades:1"}, 3)
	// excluded by except, and another user's event
	if _, err := s.Record("/", event(4), &adapter.BroadcastOptions{Rooms: []string{"u:1"}, Except: []string{"sock1"}}); err != nil {
		t.Fatal(err)
	}
	record(t, s, []string{"u:2"}, 5)
	bin := &parser.Packet{Type: parser.Event, Nsp: "/", Data: []byte(`["bin",{"_placeholder":true,"num":0}]`), Attachments: [][]byte{{1, 2, 3}}}
	if _, err := s.Record("/", bin, &adapter.BroadcastOptions{Rooms: []string{"u:1"}}); err != nil {
		t.Fatal(err)
	}
	persist(t, s, &adapter.SessionState{SID: "sock1", PID: "pid1", Rooms: []string{"sock1", "u:1"}, Data: json.RawMessage(`{"userId":"1"}`)})

	st, err := s.RestoreSession("/", "pid1", first)
	if err != nil {
		t.Fatal(err)
	}
	if st.SID != "sock1" || string(st.Data) != `{"userId":"1"}` {
		t.Fatalf("state %+v", st)
	}
	if len(st.Missed) != 3 {
		t.Fatalf("missed %d packets, want 2, 3 and the binary one", len(st.Missed))
	}
	if got := numbers(t, st.Missed[:2]); got[0] != 2 || got[1] != 3 {
		t.Fatalf("missed %v", got)
	}
	if b := st.Missed[2]; len(b.Attachments) != 1 || string(b.Attachments[0]) != "\x01\x02\x03" {
		t.Fatalf("binary attachment not restored: %+v", b)
	}
	// CatchUp gives the same after an offset, without the session.
	if got := s.CatchUp("/", []string{"sock1", "u:1"}, first); len(got) != 3 {
		t.Fatalf("catch-up %d packets", len(got))
	}
	if s.CatchUp("/", []string{"x"}, first) != nil || s.CatchUp("/", []string{"u:1"}, "bad") != nil {
		t.Fatal("catch-up without partition or with a bad offset returned packets")
	}
}

func TestNotRecoverableCases(t *testing.T) {
	s, _, rdb := newStore(t, time.Minute)
	off := record(t, s, []string{"u:1"}, 1)
	persist(t, s, &adapter.SessionState{SID: "s", PID: "p", Rooms: []string{"u:1"}})
	for name, c := range map[string]struct{ pid, offset string }{
		"unknown pid":          {"nope", off},
		"malformed offset":     {"p", "abc"},
		"offset not in stream": {"p", "1-0"},
	} {
		if _, err := s.RestoreSession("/", c.pid, c.offset); !errors.Is(err, adapter.ErrNotRecoverable) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Too many missed events.
	for i := 0; i < 60; i++ {
		record(t, s, []string{"u:1"}, i)
	}
	if _, err := s.RestoreSession("/", "p", off); !errors.Is(err, adapter.ErrNotRecoverable) {
		t.Errorf("more than MaxMissed: %v", err)
	}
	// A session with no recoverable room restores with nothing missed.
	persist(t, s, &adapter.SessionState{SID: "q", PID: "p2", Rooms: []string{"q"}})
	if st, err := s.RestoreSession("/", "p2", "whatever"); err != nil || len(st.Missed) != 0 {
		t.Fatalf("no-partition session: %+v %v", st, err)
	}
	// A corrupt snapshot.
	rdb.Set(context.Background(), s.sessionKey("/", "bad"), "{", time.Minute)
	if _, err := s.RestoreSession("/", "bad", off); !errors.Is(err, adapter.ErrNotRecoverable) {
		t.Errorf("corrupt snapshot: %v", err)
	}
}

// A record that fails while Redis is down leaves a hole marker: no restore
// ever replays across it.
func TestFailedRecordMarksAHole(t *testing.T) {
	s, srv, _ := newStore(t, time.Minute)
	off := record(t, s, []string{"u:1"}, 1)
	persist(t, s, &adapter.SessionState{SID: "s", PID: "p", Rooms: []string{"u:1"}})
	srv.Kill()
	if _, err := s.Record("/", event(2), &adapter.BroadcastOptions{Rooms: []string{"u:1"}}); err == nil {
		t.Fatal("record succeeded with Redis down")
	}
	if _, err := s.RestoreSession("/", "p", off); !errors.Is(err, adapter.ErrNotRecoverable) {
		t.Fatalf("restore with Redis down: %v", err)
	}
	srv.Restart()
	// Redis came back empty; a new stream starts with the hole marker.
	off3 := record(t, s, []string{"u:1"}, 3)
	record(t, s, []string{"u:1"}, 4)
	persist(t, s, &adapter.SessionState{SID: "s", PID: "p", Rooms: []string{"u:1"}})
	entries, _ := s.rdb.XRange(context.Background(), s.streamKey("/", "1"), "-", "+").Result()
	if len(entries) != 3 || entries[0].Values[fGap] == nil {
		t.Fatalf("stream after the failure: %+v", entries)
	}
	gapID := entries[0].ID
	if _, err := s.RestoreSession("/", "p", gapID); err != nil {
		t.Fatalf("restore after the hole: %v", err)
	}
	if st, err := s.RestoreSession("/", "p", off3); err != nil || len(st.Missed) != 1 {
		t.Fatalf("restore after the hole from offset 3: %+v %v", st, err)
	}
}

func TestVoidRemovesARecording(t *testing.T) {
	s, _, _ := newStore(t, time.Minute)
	first := record(t, s, []string{"u:1"}, 1)
	off := record(t, s, []string{"u:1"}, 2)
	s.Void("/", &adapter.BroadcastOptions{Rooms: []string{"u:1"}}, off)
	s.Void("/", &adapter.BroadcastOptions{Rooms: []string{"x"}}, off) // no partition: nothing
	if got := s.CatchUp("/", []string{"u:1"}, first); len(got) != 0 {
		t.Fatalf("voided entry still replayed: %d", len(got))
	}
}

func TestVoidRetriesUntilRedisIsBack(t *testing.T) {
	s, srv, _ := newStore(t, time.Minute)
	first := record(t, s, []string{"u:1"}, 1)
	off := record(t, s, []string{"u:1"}, 2)
	// Keep the data: stop answering by pausing the server process is not
	// portable; instead void an entry of a stream on a dead client and
	// check the background retry ends when the store closes.
	srv.Kill()
	s.Void("/", &adapter.BroadcastOptions{Rooms: []string{"u:1"}}, off)
	srv.Restart()
	// The data is gone with the restart; the retry must just finish.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if got := s.CatchUp("/", []string{"u:1"}, first); len(got) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("catch-up still returns the voided entry")
}

func TestOptionsValidation(t *testing.T) {
	if _, err := New(nil, Options{Partition: partition}); err == nil {
		t.Fatal("no window accepted")
	}
	if _, err := New(nil, Options{Window: time.Second}); err == nil {
		t.Fatal("no partition accepted")
	}
	if validID("1-x") || validID("x-1") || validID("1") || !validID("12-3") {
		t.Fatal("validID")
	}
}

func TestRecordAndPublishIsAtomicAndOrdered(t *testing.T) {
	s, srv, rdb := newStore(t, time.Minute)
	sub := rdb.Subscribe(context.Background(), "chan")
	defer sub.Close()
	if _, err := sub.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	opts := &adapter.BroadcastOptions{Rooms: []string{"u:1"}}
	if off, err := s.RecordAndPublish("/", event(0), &adapter.BroadcastOptions{Rooms: []string{"x"}}, "chan", nil, nil); off != "" || err != nil {
		t.Fatalf("unpartitioned: %q %v", off, err)
	}
	var offs []string
	for i := 1; i <= 3; i++ {
		off, err := s.RecordAndPublish("/", event(i), opts, "chan", []byte("pre|"), []byte("|post"))
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, off)
	}
	for i, want := range offs {
		m, err := sub.ReceiveMessage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if m.Payload != "pre|"+string(rune(0xa0 + len(want)))[0:0]+string([]byte{byte(0xa0 + len(want))})+want+"|post" {
			t.Fatalf("message %d = %q, want the offset %q spliced in", i, m.Payload, want)
		}
		if i > 0 && !after(want, offs[i-1]) {
			t.Fatalf("offsets not increasing: %v", offs)
		}
	}
	persist(t, s, &adapter.SessionState{SID: "s", PID: "p", Rooms: []string{"u:1"}})
	st, err := s.RestoreSession("/", "p", offs[0])
	if err != nil || len(numbers(t, st.Missed)) != 2 {
		t.Fatalf("restore after atomic records: %+v %v", st, err)
	}
	// After a void (XDEL of the newest), a new id is still above it.
	s.Void("/", opts, offs[2])
	off4, err := s.RecordAndPublish("/", event(4), opts, "chan", nil, nil)
	if err != nil || !after(off4, offs[2]) {
		t.Fatalf("id after a void: %q %v (last %q)", off4, err, offs[2])
	}
	// Redis down: an error, and a hole marker once it is back.
	srv.Kill()
	if _, err := s.RecordAndPublish("/", event(5), opts, "chan", nil, nil); err == nil {
		t.Fatal("no error with Redis down")
	}
	srv.Restart()
	if _, err := s.RecordAndPublish("/", event(6), opts, "chan", nil, nil); err != nil {
		t.Fatal(err)
	}
	entries, _ := rdb.XRange(context.Background(), s.streamKey("/", "1"), "-", "+").Result()
	if len(entries) != 2 || entries[0].Values[fGap] == nil {
		t.Fatalf("after the outage: %+v", entries)
	}
	if s.PartitionOf(opts) != "1" {
		t.Fatal("PartitionOf")
	}
}

// after compares two stream ids as positions.
func after(a, b string) bool {
	pa, ok1 := adapter.ParsePosition(a)
	pb, ok2 := adapter.ParsePosition(b)
	return ok1 && ok2 && pa.After(pb)
}
