package trading

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// broadcast is one call received by recorder.
type broadcast struct {
	rooms, except []string
	event         string
	data          any
}

// recorder is a Broadcaster that records its calls and returns err.
type recorder struct {
	mu    sync.Mutex
	calls []broadcast
	err   error
}

func (r *recorder) Broadcast(_ context.Context, rooms, except []string, event string, data any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, broadcast{slices.Clone(rooms), slices.Clone(except), event, data})
	return r.err
}

func (r *recorder) take() []broadcast {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.calls
	r.calls = nil
	return out
}

func fixedEmitter(b Broadcaster) *Emitter {
	e := NewEmitter(b)
	e.now = func() time.Time { return fixedNow }
	return e
}

// decodeEvent parses a domain event the way the publish API does.
func decodeEvent(t testing.TB, s string) *DomainEvent {
	t.Helper()
	var ev DomainEvent
	if err := json.Unmarshal([]byte(s), &ev); err != nil {
		t.Fatalf("bad test event %s: %v", s, err)
	}
	return &ev
}

func TestRouteEveryType(t *testing.T) {
	e := fixedEmitter(nil)
	ts := `"timestamp":"` + fixedISO + `"`
	for _, c := range []struct {
		name, in string
		rooms    []string
		event    string
		data     string
	}{
		{
			"trade executed",
			`{"type":"trade.executed","id":"ev-1","userId":"u1","trade":{"id":"t-1","symbol":"AAPL","side":"buy","quantity":10,"price":187.12,"venue":"XNAS"}}`,
			[]string{"trades:u1"}, "trade:executed",
			`{"userId":"u1","eventId":"ev-1",` + ts + `,"trade":{"id":"t-1","symbol":"AAPL","side":"buy","quantity":10,"price":187.12,"venue":"XNAS"},
			  "notification":{"title":"Trade Executed: AAPL","message":"BUY 10 AAPL @ $187.12","type":"success"}}`,
		},
		{
			"trade executed, lower-case sell",
			`{"type":"trade.executed","userId":"u1","trade":{"symbol":"msft","side":"sell","quantity":2.5,"price":400}}`,
			[]string{"trades:u1"}, "trade:executed",
			`{"userId":"u1",` + ts + `,"trade":{"symbol":"msft","side":"sell","quantity":2.5,"price":400},
			  "notification":{"title":"Trade Executed: MSFT","message":"SELL 2.5 MSFT @ $400","type":"success"}}`,
		},
		{
			"trade failed",
			`{"type":"trade.failed","id":"ev-2","userId":"u1","error":{"message":"Market closed","reason":"MARKET_CLOSED"}}`,
			[]string{"trades:u1"}, "trade:failed",
			`{"userId":"u1","eventId":"ev-2",` + ts + `,"error":{"message":"Market closed","reason":"MARKET_CLOSED"},
			  "notification":{"title":"Trade Failed","message":"Market closed","type":"error"}}`,
		},
		{
			"position closed",
			`{"type":"position.closed","userId":"u1","position":{"symbol":"tsla","pnl":12}}`,
			[]string{"portfolio:u1"}, "position:closed",
			`{"userId":"u1",` + ts + `,"position":{"symbol":"tsla","pnl":12},
			  "notification":{"title":"Position Closed: TSLA","message":"Your TSLA position was closed","type":"info"}}`,
		},
		{
			"portfolio updated",
			`{"type":"portfolio.updated","id":"ev-3","userId":"u1","portfolio":{"equity":1000,"cash":10}}`,
			[]string{"portfolio:u1"}, "portfolio:updated",
			`{"userId":"u1","eventId":"ev-3",` + ts + `,"portfolio":{"equity":1000,"cash":10}}`,
		},
		{
			"notification",
			`{"type":"notification","userId":"u1","notification":{"title":"Deposit","message":"$100 received","type":"success"}}`,
			[]string{"user:u1"}, "notification",
			`{"userId":"u1",` + ts + `,"notification":{"title":"Deposit","message":"$100 received","type":"success"}}`,
		},
		{
			"notification, default type",
			`{"type":"notification","userId":"u1","notification":{"title":"Hi","message":"there"}}`,
			[]string{"user:u1"}, "notification",
			`{"userId":"u1",` + ts + `,"notification":{"title":"Hi","message":"there","type":"info"}}`,
		},
		{
			"quote",
			`{"type":"quote.update","symbol":"aapl","quote":{"price":187.12,"volume":1000}}`,
			[]string{"watchlist:AAPL"}, "quote:update",
			`{"symbol":"AAPL","price":187.12,"volume":1000,` + ts + `}`,
		},
		{
			"market status",
			`{"type":"market.status","id":"ev-4","status":{"open":false,"reason":"holiday"}}`,
			nil, "market:status",
			`{"open":false,"reason":"holiday","eventId":"ev-4",` + ts + `}`,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := e.Route(decodeEvent(t, c.in))
			if err != nil {
				t.Fatalf("Route: %v", err)
			}
			if !slices.Equal(r.Rooms, c.rooms) || r.Event != c.event {
				t.Errorf("routed to %v %q, want %v %q", r.Rooms, r.Event, c.rooms, c.event)
			}
			assertJSON(t, r.Data, c.data)
		})
	}
}

func TestRouteValidationErrors(t *testing.T) {
	e := fixedEmitter(nil)
	long := strings.Repeat("u", 129)
	for _, c := range []struct{ in, want string }{
		{`{}`, "type is required"},
		{`{"type":"trade.Executed","userId":"u1"}`, `unknown type "trade.Executed"`},
		{`{"type":"trade:executed","userId":"u1"}`, "unknown type"},
		{`{"type":"delete.everything"}`, "unknown type"},

		{`{"type":"trade.executed","trade":{"symbol":"AAPL","side":"buy","quantity":1,"price":1}}`, "userId is required"},
		{`{"type":"trade.executed","userId":"` + long + `","trade":{"symbol":"AAPL","side":"buy","quantity":1,"price":1}}`, "userId is malformed"},
		{`{"type":"trade.executed","userId":"u 1","trade":{"symbol":"AAPL","side":"buy","quantity":1,"price":1}}`, "userId is malformed"},
		{`{"type":"trade.executed","userId":"u\t1","trade":{}}`, "userId is malformed"},
		{`{"type":"trade.executed","userId":"u\n1","trade":{}}`, "userId is malformed"},
		{`{"type":"trade.executed","userId":"u1"}`, "trade is required"},
		{`{"type":"trade.executed","userId":"u1","trade":null}`, "trade must be an object"},
		{`{"type":"trade.executed","userId":"u1","trade":[]}`, "trade must be an object"},
		{`{"type":"trade.executed","userId":"u1","trade":"AAPL"}`, "trade must be an object"},
		{`{"type":"trade.executed","userId":"u1","trade":12}`, "trade must be an object"},
		{`{"type":"trade.executed","userId":"u1","trade":{"side":"buy","quantity":1,"price":1}}`, "trade.symbol"},
		{`{"type":"trade.executed","userId":"u1","trade":{"symbol":"../x","side":"buy","quantity":1,"price":1}}`, "trade.symbol"},
		{`{"type":"trade.executed","userId":"u1","trade":{"symbol":"AAPL","side":"short","quantity":1,"price":1}}`, "trade.side"},
		{`{"type":"trade.executed","userId":"u1","trade":{"symbol":"AAPL","quantity":1,"price":1}}`, "trade.side"},
		{`{"type":"trade.executed","userId":"u1","trade":{"symbol":"AAPL","side":"buy","price":1}}`, "trade.quantity"},
		{`{"type":"trade.executed","userId":"u1","trade":{"symbol":"AAPL","side":"buy","quantity":-1,"price":1}}`, "trade.quantity"},
		{`{"type":"trade.executed","userId":"u1","trade":{"symbol":"AAPL","side":"buy","quantity":1,"price":-1}}`, "trade.price"},

		{`{"type":"trade.failed","error":{"message":"x"}}`, "userId is required"},
		{`{"type":"trade.failed","userId":"u1"}`, "error is required"},
		{`{"type":"trade.failed","userId":"u1","error":"boom"}`, "error must be an object"},
		{`{"type":"trade.failed","userId":"u1","error":null}`, "error must be an object"},

		{`{"type":"position.closed","position":{"symbol":"AAPL"}}`, "userId is required"},
		{`{"type":"position.closed","userId":"u1"}`, "position is required"},
		{`{"type":"position.closed","userId":"u1","position":[1]}`, "position must be an object"},
		{`{"type":"position.closed","userId":"u1","position":{}}`, "position.symbol"},
		{`{"type":"position.closed","userId":"u1","position":{"symbol":7}}`, "position.symbol"},
		{`{"type":"position.closed","userId":"u1","position":{"symbol":"portfolio:u2"}}`, "position.symbol"},

		{`{"type":"portfolio.updated","portfolio":{}}`, "userId is required"},
		{`{"type":"portfolio.updated","userId":"u1"}`, "portfolio is required"},
		{`{"type":"portfolio.updated","userId":"u1","portfolio":[]}`, "portfolio must be an object"},
		{`{"type":"portfolio.updated","userId":"u1","portfolio":true}`, "portfolio must be an object"},

		{`{"type":"notification","notification":{"title":"a","message":"b"}}`, "userId is required"},
		{`{"type":"notification","userId":"u1"}`, "notification.title and notification.message are required"},
		{`{"type":"notification","userId":"u1","notification":{"message":"b"}}`, "notification.title and notification.message are required"},
		{`{"type":"notification","userId":"u1","notification":{"title":"a"}}`, "notification.title and notification.message are required"},
		{`{"type":"notification","userId":"u1","notification":{"title":"a","message":"b","type":"fatal"}}`, "notification.type must be"},

		{`{"type":"quote.update","quote":{"price":1}}`, "symbol:"},
		{`{"type":"quote.update","symbol":"watchlist:AAPL","quote":{"price":1}}`, "symbol:"},
		{`{"type":"quote.update","symbol":"AAPL"}`, "quote is required"},
		{`{"type":"quote.update","symbol":"AAPL","quote":[1,2]}`, "quote must be an object"},

		{`{"type":"market.status"}`, "status is required"},
		{`{"type":"market.status","status":"open"}`, "status must be an object"},
	} {
		r, err := e.Route(decodeEvent(t, c.in))
		if err == nil {
			t.Errorf("Route(%s) = %+v, want error %q", c.in, r, c.want)
			continue
		}
		if !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("Route(%s) error %v does not wrap ErrInvalidEvent", c.in, err)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Route(%s) error %q, want it to contain %q", c.in, err, c.want)
		}
		if r != nil {
			t.Errorf("Route(%s) returned a route with its error", c.in)
		}
	}
}

func TestPublishBroadcastsRoutedEvent(t *testing.T) {
	rec := &recorder{}
	e := fixedEmitter(rec)
	ctx := context.Background()
	if err := e.Publish(ctx, decodeEvent(t, `{"type":"quote.update","symbol":"spy","quote":{"price":500}}`)); err != nil {
		t.Fatal(err)
	}
	calls := rec.take()
	if len(calls) != 1 || !slices.Equal(calls[0].rooms, []string{"watchlist:SPY"}) || calls[0].except != nil || calls[0].event != "quote:update" {
		t.Fatalf("calls = %+v", calls)
	}
	assertJSON(t, calls[0].data, `{"symbol":"SPY","price":500,"timestamp":"`+fixedISO+`"}`)

	// Invalid events are not broadcast.
	if err := e.Publish(ctx, decodeEvent(t, `{"type":"quote.update","symbol":"spy"}`)); !errors.Is(err, ErrInvalidEvent) {
		t.Errorf("Publish(invalid) = %v", err)
	}
	// Broadcaster failures are returned.
	rec.err = errors.New("adapter down")
	err := e.Publish(ctx, decodeEvent(t, `{"type":"market.status","status":{"open":true}}`))
	if err == nil || !strings.Contains(err.Error(), "adapter down") {
		t.Errorf("Publish with failing broadcaster = %v", err)
	}
	if n := len(rec.take()); n != 1 {
		t.Errorf("%d broadcasts, want 1 (the failed one)", n)
	}
}

func TestEmitterTypedMethods(t *testing.T) {
	rec := &recorder{}
	e := fixedEmitter(rec)
	ctx := context.Background()
	ts := `"timestamp":"` + fixedISO + `"`
	for _, c := range []struct {
		name  string
		call  func() error
		rooms []string
		event string
		data  string
	}{
		{
			"TradeExecuted",
			func() error {
				return e.TradeExecuted(ctx, "u1", Trade{ID: "t-9", Symbol: "AAPL", Side: "buy", Quantity: 10, Price: 187.12,
					Extra: map[string]any{"orderId": "o-1", "fees": 0.5}})
			},
			[]string{"trades:u1"}, "trade:executed",
			`{"userId":"u1",` + ts + `,"trade":{"id":"t-9","symbol":"AAPL","side":"buy","quantity":10,"price":187.12,"orderId":"o-1","fees":0.5},
			  "notification":{"title":"Trade Executed: AAPL","message":"BUY 10 AAPL @ $187.12","type":"success"}}`,
		},
		{
			"TradeFailed",
			func() error { return e.TradeFailed(ctx, "u1", "Insufficient funds", "NSF") },
			[]string{"trades:u1"}, "trade:failed",
			`{"userId":"u1",` + ts + `,"error":{"message":"Insufficient funds","reason":"NSF"},
			  "notification":{"title":"Trade Failed","message":"Insufficient funds","type":"error"}}`,
		},
		{
			"PositionClosed",
			func() error { return e.PositionClosed(ctx, "u1", map[string]any{"symbol": "NVDA", "qty": 3}) },
			[]string{"portfolio:u1"}, "position:closed",
			`{"userId":"u1",` + ts + `,"position":{"symbol":"NVDA","qty":3},
			  "notification":{"title":"Position Closed: NVDA","message":"Your NVDA position was closed","type":"info"}}`,
		},
		{
			"PortfolioUpdated",
			func() error { return e.PortfolioUpdated(ctx, "u1", map[string]any{"equity": 5}) },
			[]string{"portfolio:u1"}, "portfolio:updated",
			`{"userId":"u1",` + ts + `,"portfolio":{"equity":5}}`,
		},
		{
			"Notify",
			func() error {
				return e.Notify(ctx, "u1", Notification{Title: "Margin", Message: "Margin call", Type: "warning"})
			},
			[]string{"user:u1"}, "notification",
			`{"userId":"u1",` + ts + `,"notification":{"title":"Margin","message":"Margin call","type":"warning"}}`,
		},
		{
			"Quote",
			func() error { return e.Quote(ctx, "aapl", map[string]any{"price": 1.5}) },
			[]string{"watchlist:AAPL"}, "quote:update",
			`{"symbol":"AAPL","price":1.5,` + ts + `}`,
		},
		{
			"MarketStatus",
			func() error { return e.MarketStatus(ctx, map[string]any{"open": true}) },
			nil, "market:status",
			`{"open":true,` + ts + `}`,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); err != nil {
				t.Fatal(err)
			}
			calls := rec.take()
			if len(calls) != 1 {
				t.Fatalf("%d broadcasts, want 1", len(calls))
			}
			b := calls[0]
			if !slices.Equal(b.rooms, c.rooms) || b.except != nil || b.event != c.event {
				t.Errorf("broadcast to %v except %v event %q; want %v, none, %q", b.rooms, b.except, b.event, c.rooms, c.event)
			}
			assertJSON(t, b.data, c.data)
		})
	}
}

func TestEmitterTypedMethodsValidate(t *testing.T) {
	rec := &recorder{}
	e := fixedEmitter(rec)
	ctx := context.Background()
	for name, err := range map[string]error{
		"trade side":        e.TradeExecuted(ctx, "u1", Trade{Symbol: "AAPL", Side: "hold", Quantity: 1, Price: 1}),
		"trade user":        e.TradeExecuted(ctx, "", Trade{Symbol: "AAPL", Side: "buy", Quantity: 1, Price: 1}),
		"failed user":       e.TradeFailed(ctx, "a b", "m", "r"),
		"position symbol":   e.PositionClosed(ctx, "u1", map[string]any{}),
		"portfolio nil":     e.PortfolioUpdated(ctx, "u1", nil),
		"notify empty":      e.Notify(ctx, "u1", Notification{}),
		"notify type":       e.Notify(ctx, "u1", Notification{Title: "a", Message: "b", Type: "urgent"}),
		"quote symbol":      e.Quote(ctx, "user:u2", map[string]any{"price": 1}),
		"quote nil":         e.Quote(ctx, "AAPL", nil),
		"market status nil": e.MarketStatus(ctx, nil),
	} {
		if !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("%s: err = %v, want ErrInvalidEvent", name, err)
		}
	}
	if calls := rec.take(); len(calls) != 0 {
		t.Errorf("invalid events were broadcast: %+v", calls)
	}
}
