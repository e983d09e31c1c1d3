package publish

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/tradewire/tradewire/internal/testutil/sioclient"
	"github.com/tradewire/tradewire/trading"
)

func (g *gateway) requestCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.requests
}

func payload(t *testing.T, p sioclient.Packet) map[string]any {
	t.Helper()
	if len(p.Args) != 1 {
		t.Fatalf("%s: %d arguments", p.Raw, len(p.Args))
	}
	var m map[string]any
	if err := json.Unmarshal(p.Args[0], &m); err != nil {
		t.Fatalf("%s: %v", p.Raw, err)
	}
	return m
}

func TestClientEveryMethodDelivers(t *testing.T) {
	g := newGateway(t)
	u1 := g.connect("u1", subTrades, subPortfolio, subWatch("AAPL"))
	u2 := g.connect("u2", subTrades, subPortfolio)
	c := NewClient(g.url+"/", testKey) // the trailing slash is trimmed
	ctx := context.Background()
	before := g.requestCount()

	steps := []struct {
		name string
		call func() error
	}{
		{"TradeExecuted", func() error {
			return c.TradeExecuted(ctx, "u1", trading.Trade{ID: "t-1", Symbol: "AAPL", Side: "buy", Quantity: 10, Price: 187.12,
				Extra: map[string]any{"venue": "XNAS"}})
		}},
		{"TradeFailed", func() error { return c.TradeFailed(ctx, "u1", "Insufficient buying power", "NSF") }},
		{"PortfolioUpdated", func() error { return c.PortfolioUpdated(ctx, "u1", map[string]any{"equity": 1000.5}) }},
		{"PositionClosed", func() error { return c.PositionClosed(ctx, "u1", map[string]any{"symbol": "aapl", "pnl": 3}) }},
		{"Notify", func() error {
			return c.Notify(ctx, "u1", trading.Notification{Title: "Deposit", Message: "$100 received", Type: "success"})
		}},
		{"Quote", func() error { return c.Quote(ctx, "aapl", map[string]any{"price": 187.5}) }},
		{"MarketStatus", func() error { return c.MarketStatus(ctx, map[string]any{"open": false}) }},
		{"Publish batch", func() error {
			return c.Publish(ctx,
				trading.DomainEvent{Type: trading.TypeNotification, UserID: "u1", Notification: &trading.Notification{Title: "a", Message: "batch-1"}},
				trading.DomainEvent{Type: trading.TypeNotification, UserID: "u2", Notification: &trading.Notification{Title: "b", Message: "batch-2"}})
		}},
		{"Emit", func() error {
			return c.Emit(ctx, EmitRequest{Rooms: []string{"user:u1"}, Event: "raw-one", Data: json.RawMessage(`{"k":"v"}`)})
		}},
		{"Emit batch", func() error {
			return c.Emit(ctx,
				EmitRequest{Rooms: []string{"user:u1", "user:u2"}, Except: []string{"user:u2"}, Event: "raw-two"},
				EmitRequest{Event: "raw-all", Data: json.RawMessage(`[1,"x"]`)})
		}},
	}
	for _, s := range steps {
		if err := s.call(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	// One HTTP request per call, batches included.
	if n := g.requestCount() - before; n != len(steps) {
		t.Errorf("%d requests for %d calls", n, len(steps))
	}
	g.mu.Lock()
	for _, h := range g.headers {
		if h.Get("Authorization") != "Bearer "+testKey || h.Get("Content-Type") != "application/json" {
			t.Errorf("request headers %v", h)
		}
	}
	g.mu.Unlock()

	got := g.barrier(u1, u2)
	assertNames(t, "u1", got[0], "trade:executed", "trade:failed", "portfolio:updated", "position:closed", "notification",
		"quote:update", "market:status", "notification", "raw-one", "raw-two", "raw-all")
	assertNames(t, "u2", got[1], "market:status", "notification", "raw-all")
	if len(got[0]) != 11 {
		t.FailNow()
	}
	ev := got[0]

	te := payload(t, ev[0])
	n, _ := te["notification"].(map[string]any)
	if te["userId"] != "u1" || te["eventId"] != "t-1" || n["message"] != "BUY 10 AAPL @ $187.12" ||
		!reflect.DeepEqual(te["trade"], map[string]any{"id": "t-1", "symbol": "AAPL", "side": "buy", "quantity": 10.0, "price": 187.12, "venue": "XNAS"}) {
		t.Errorf("trade:executed %s", ev[0].Args[0])
	}
	tf := payload(t, ev[1])
	if !reflect.DeepEqual(tf["error"], map[string]any{"message": "Insufficient buying power", "reason": "NSF"}) ||
		tf["notification"].(map[string]any)["message"] != "Insufficient buying power" {
		t.Errorf("trade:failed %s", ev[1].Args[0])
	}
	if pu := payload(t, ev[2]); !reflect.DeepEqual(pu["portfolio"], map[string]any{"equity": 1000.5}) {
		t.Errorf("portfolio:updated %s", ev[2].Args[0])
	}
	if pc := payload(t, ev[3]); pc["notification"].(map[string]any)["title"] != "Position Closed: AAPL" {
		t.Errorf("position:closed %s", ev[3].Args[0])
	}
	if no := payload(t, ev[4]); !reflect.DeepEqual(no["notification"], map[string]any{"title": "Deposit", "message": "$100 received", "type": "success"}) {
		t.Errorf("notification %s", ev[4].Args[0])
	}
	if q := payload(t, ev[5]); q["symbol"] != "AAPL" || q["price"] != 187.5 {
		t.Errorf("quote:update %s", ev[5].Args[0])
	}
	if ms := payload(t, ev[6]); ms["open"] != false {
		t.Errorf("market:status %s", ev[6].Args[0])
	}
	if b := payload(t, ev[7]); b["notification"].(map[string]any)["message"] != "batch-1" {
		t.Errorf("batch notification %s", ev[7].Args[0])
	}
	if b := payload(t, got[1][1]); b["notification"].(map[string]any)["message"] != "batch-2" {
		t.Errorf("u2 batch notification %s", got[1][1].Args[0])
	}
	if string(ev[8].Args[0]) != `{"k":"v"}` || len(ev[9].Args) != 0 || string(ev[10].Args[0]) != `[1,"x"]` {
		t.Errorf("raw emits %v", raws(ev[8:]))
	}
}

// asError checks that err is a *Error with status and code.
func asError(t *testing.T, err error, status int, code string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *publish.Error", err, err)
	}
	if e.Status != status || e.Code != code || e.Message == "" {
		t.Errorf("error %+v, want status %d code %q with a message", e, status, code)
	}
	if want := "tradewire: "; !strings.HasPrefix(e.Error(), want) || !strings.Contains(e.Error(), e.Message) {
		t.Errorf("Error() = %q", e.Error())
	}
	return e
}

func TestClientErrors(t *testing.T) {
	g := newGateway(t)
	ctx := context.Background()
	good := NewClient(g.url, testKey)

	// Wrong key.
	e := asError(t, NewClient(g.url, "wrong").MarketStatus(ctx, map[string]any{"open": true}), 401, "UNAUTHORIZED")
	if e.Index != nil {
		t.Errorf("401 with index %v", *e.Index)
	}
	if e.Error() != "tradewire: 401 UNAUTHORIZED: "+e.Message {
		t.Errorf("Error() = %q", e.Error())
	}
	asError(t, NewClient(g.url, "").Emit(ctx, EmitRequest{Event: "x"}), 401, "UNAUTHORIZED")

	// Invalid events: 400 with the index of the bad item.
	e = asError(t, good.TradeExecuted(ctx, "u1", trading.Trade{Symbol: "AAPL", Side: "hold", Quantity: 1, Price: 1}), 400, "INVALID_EVENT")
	if e.Index == nil || *e.Index != 0 || !strings.Contains(e.Message, "trade.side") {
		t.Errorf("invalid trade: %+v", e)
	}
	e = asError(t, good.Publish(ctx,
		trading.DomainEvent{Type: trading.TypeMarketStatus, Status: json.RawMessage(`{}`)},
		trading.DomainEvent{Type: trading.TypeQuoteUpdate, Symbol: "user:u2", Quote: json.RawMessage(`{}`)}), 400, "INVALID_EVENT")
	if e.Index == nil || *e.Index != 1 {
		t.Errorf("batch error index %v, want 1", e.Index)
	}
	for name, err := range map[string]error{
		"TradeFailed":      good.TradeFailed(ctx, "", "m", "r"),
		"PortfolioUpdated": good.PortfolioUpdated(ctx, "u1", nil),
		"PositionClosed":   good.PositionClosed(ctx, "u1", map[string]any{"symbol": "../x"}),
		"Notify":           good.Notify(ctx, "u1", trading.Notification{Title: "t"}),
		"Quote":            good.Quote(ctx, "", map[string]any{"p": 1}),
		"MarketStatus":     good.MarketStatus(ctx, nil),
		"Emit":             good.Emit(ctx, EmitRequest{Event: "disconnect"}),
		"Emit batch":       good.Emit(ctx, EmitRequest{Event: "ok"}, EmitRequest{Event: "ok", Rooms: []string{""}}),
	} {
		asError(t, err, 400, "INVALID_EVENT")
		_ = name
	}
	// No events at all is refused, not silently accepted.
	if err := good.Publish(ctx); err == nil {
		t.Error("Publish() with no events succeeded")
	}

	// 413.
	big := map[string]any{"blob": strings.Repeat("x", MaxBodyBytes)}
	if e := asError(t, good.Quote(ctx, "AAPL", big), 413, "PAYLOAD_TOO_LARGE"); e.Index != nil {
		t.Errorf("413 with index")
	}

	// A refusal without a JSON body keeps the text as message.
	e = asError(t, NewClient(g.url+"/nope", testKey).MarketStatus(ctx, map[string]any{}), 404, "")
	if e.Message != "404 page not found" {
		t.Errorf("404 message %q", e.Message)
	}
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "upstream unavailable", http.StatusBadGateway)
	}))
	defer proxy.Close()
	e = asError(t, NewClient(proxy.URL, testKey).Emit(ctx, EmitRequest{Event: "x"}), 502, "")
	if e.Message != "upstream unavailable" {
		t.Errorf("502 message %q", e.Message)
	}

	// Encoding errors are reported before any request is made.
	before := g.requestCount()
	err := good.Publish(ctx, trading.DomainEvent{Type: trading.TypeTradeExecuted, UserID: "u1", Trade: json.RawMessage(`{"broken"`)})
	var pe *Error
	if err == nil || errors.As(err, &pe) || !strings.Contains(err.Error(), "encode") {
		t.Errorf("encode error = %v", err)
	}
	if err := good.Emit(ctx, EmitRequest{Event: "x", Data: json.RawMessage(`nope`)}); err == nil || errors.As(err, &pe) {
		t.Errorf("emit encode error = %v", err)
	}
	if g.requestCount() != before {
		t.Error("a request was sent for an event that cannot be encoded")
	}
}

func TestClientTransportErrors(t *testing.T) {
	ctx := context.Background()
	// A bad base URL.
	if err := NewClient("http://[::1", testKey).MarketStatus(ctx, map[string]any{}); err == nil || !strings.HasPrefix(err.Error(), "tradewire: ") {
		t.Errorf("bad URL: %v", err)
	}
	// Nobody listening.
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	err := NewClient(url, testKey).MarketStatus(ctx, map[string]any{})
	var pe *Error
	if err == nil || errors.As(err, &pe) || !strings.HasPrefix(err.Error(), "tradewire: ") {
		t.Errorf("closed server: %v", err)
	}
	// A cancelled context.
	g := newGateway(t)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := NewClient(g.url, testKey).MarketStatus(cctx, map[string]any{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestClientBroadcastFailure(t *testing.T) {
	rec, _, url := recorderServer(t, testKey)
	rec.failAt = 1
	e := asError(t, NewClient(url, testKey).MarketStatus(context.Background(), map[string]any{"open": true}), 503, "PUBLISH_FAILED")
	if e.Index == nil || *e.Index != 0 {
		t.Errorf("index %v", e.Index)
	}
}
