package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestPayloadBuilders(t *testing.T) {
	q := AppendQuote(nil, "SYM001", 101.5, 1795000000123456789)
	if string(q) != `{"symbol":"SYM001","price":101.50,"ts":1795000000123456789}` {
		t.Fatal(string(q))
	}
	emit := AppendEmit(nil, "watchlist:SYM001", "quote:update", q)
	var m struct {
		Rooms []string
		Event string
		Data  struct {
			Symbol string
			Price  float64
			TS     int64
		}
	}
	if err := json.Unmarshal(emit, &m); err != nil || m.Rooms[0] != "watchlist:SYM001" || m.Event != "quote:update" || m.Data.TS != 1795000000123456789 || m.Data.Price != 101.5 {
		t.Fatalf("%s %v %+v", emit, err, m)
	}
	tr := AppendTrade(nil, 7, "SYM002", 99, 42)
	ev := AppendTradeEvent(nil, "u3", tr)
	var e struct {
		Type   string
		UserID string `json:"userId"`
		Trade  map[string]any
	}
	if err := json.Unmarshal(ev, &e); err != nil || e.Type != "trade.executed" || e.UserID != "u3" || e.Trade["id"] != "t7" || e.Trade["side"] != "buy" || e.Trade["ts"] != float64(42) {
		t.Fatalf("%s %v %+v", ev, err, e)
	}
	// what a client sees: the ts is found by the fast path
	msg := AppendEventMessage(nil, -1, "quote:update", q)
	name, rest, ok := EventName(msg[2:])
	ts, tok := ExtractTS(rest)
	if !ok || string(name) != "quote:update" || !tok || ts != 1795000000123456789 {
		t.Fatal(string(msg))
	}
}

func TestPaceRateAndBackpressure(t *testing.T) {
	var got atomic.Int64
	res := Pace(context.Background(), 1000, 500*time.Millisecond, 10*time.Millisecond, 2, 1000, func(ctx context.Context, n int) error {
		got.Add(int64(n))
		return nil
	})
	if res.Sent < 450 || res.Sent > 510 || int64(res.Sent) != got.Load() || res.Failed != 0 {
		t.Fatalf("sent %d (%d)", res.Sent, got.Load())
	}
	// a slow receiver with one slot gets bigger batches, capped at maxBatch
	var calls, biggest atomic.Int64
	res = Pace(context.Background(), 2000, 300*time.Millisecond, 5*time.Millisecond, 1, 50, func(ctx context.Context, n int) error {
		calls.Add(1)
		if int64(n) > biggest.Load() {
			biggest.Store(int64(n))
		}
		time.Sleep(30 * time.Millisecond)
		return nil
	})
	if biggest.Load() != 50 || res.Sent == 0 || res.Sent > 600 {
		t.Fatalf("biggest %d sent %d calls %d", biggest.Load(), res.Sent, calls.Load())
	}
	// failures are counted, not sent
	res = Pace(context.Background(), 500, 100*time.Millisecond, 10*time.Millisecond, 4, 10, func(ctx context.Context, n int) error {
		return errors.New("HTTP 500")
	})
	if res.Sent != 0 || res.Failed == 0 || res.Errors["HTTP 500"] == 0 {
		t.Fatalf("%+v", res)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if res := Pace(ctx, 100, time.Minute, time.Millisecond, 1, 1, func(context.Context, int) error { return nil }); res.Seconds > 1 {
		t.Fatal("cancelled pace kept running")
	}
}

func TestRoundRobin(t *testing.T) {
	r := NewRoundRobin(3)
	if got := r.Take(4); got[0] != 0 || got[3] != 0 || got[2] != 2 {
		t.Fatal(got)
	}
	if got := r.Take(2); got[0] != 1 || got[1] != 2 {
		t.Fatal(got)
	}
	if NewRoundRobin(0).Take(2)[1] != 0 {
		t.Fatal("n=0 should behave as 1")
	}
}

func TestClientSymbolsBalanced(t *testing.T) {
	count := map[string]int{}
	for g := 0; g < 1000; g++ {
		syms := ClientSymbols(g, 3, 100)
		if len(syms) != 3 || syms[0] == syms[1] {
			t.Fatal(syms)
		}
		for _, s := range syms {
			count[s]++
		}
	}
	if len(count) != 100 || count["SYM000"] != 30 || count["SYM099"] != 30 {
		t.Fatalf("unbalanced: %d symbols, %d", len(count), count["SYM000"])
	}
}

func TestAppendBroadcast(t *testing.T) {
	got := string(AppendBroadcast(nil, "market:status", 42))
	want := `[{"rooms":[],"event":"market:status","data":{"status":"bench","ts":42}}]`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if ts, ok := ExtractTS([]byte(got)); !ok || ts != 42 {
		t.Fatalf("ts %d %v", ts, ok)
	}
}
