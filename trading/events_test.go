package trading

import (
	"encoding/json"
	"reflect"
	"regexp"
	"testing"
	"time"
)

// fixedNow is 2024-03-05T19:30:00.123Z, given in another zone.
var fixedNow = time.Date(2024, 3, 5, 14, 30, 0, 123456789, time.FixedZone("EST", -5*3600))

const fixedISO = "2024-03-05T19:30:00.123Z"

// isoRE is the format of JavaScript's Date.prototype.toISOString.
var isoRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

// asJSON round-trips v through encoding/json, as it reaches clients.
func asJSON(t testing.TB, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %v: %v", v, err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// jsonOf parses a JSON literal of a test's expectation.
func jsonOf(t testing.TB, s string) any {
	t.Helper()
	var out any
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Fatalf("bad expectation %s: %v", s, err)
	}
	return out
}

func assertJSON(t testing.TB, got any, want string) {
	t.Helper()
	g, w := asJSON(t, got), jsonOf(t, want)
	if !reflect.DeepEqual(g, w) {
		gb, _ := json.Marshal(g)
		t.Errorf("payload\n got %s\nwant %s", gb, want)
	}
}

func TestTimestampIsISO(t *testing.T) {
	if got := timestamp(fixedNow); got != fixedISO {
		t.Errorf("timestamp = %q, want %q", got, fixedISO)
	}
	// Whole seconds keep three fraction digits, like toISOString.
	if got := timestamp(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)); got != "2025-01-02T03:04:05.000Z" {
		t.Errorf("timestamp = %q", got)
	}
	if got := timestamp(time.Now()); !isoRE.MatchString(got) {
		t.Errorf("timestamp(now) = %q, not ISO", got)
	}
}

func TestFormatNumberLikeJavaScript(t *testing.T) {
	// Expected values are what `${n}` gives in Node for the same doubles.
	tenth, fifth := 0.1, 0.2 // variables: constant arithmetic would be exact
	for _, c := range []struct {
		in   float64
		want string
	}{
		{10, "10"},
		{187.12, "187.12"},
		{0.5, "0.5"},
		{100, "100"},
		{1000000, "1000000"},
		{1234.5, "1234.5"},
		{0.001, "0.001"},
		{187.123456789, "187.123456789"},
		{tenth + fifth, "0.30000000000000004"},
		{0, "0"},
		{-2.5, "-2.5"},
		{123456789012, "123456789012"},
	} {
		if got := formatNumber(c.in); got != c.want {
			t.Errorf("formatNumber(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestTradeExecutedPayloadLikeSeed(t *testing.T) {
	trade := map[string]any{"id": "t-1", "symbol": "AAPL", "side": "buy", "quantity": 10.0, "price": 187.12, "broker": "alpaca"}
	p := TradeExecutedPayload("u1", trade, Trade{Symbol: "AAPL", Side: "buy", Quantity: 10, Price: 187.12}, fixedNow)
	assertJSON(t, p, `{
		"userId": "u1",
		"trade": {"id":"t-1","symbol":"AAPL","side":"buy","quantity":10,"price":187.12,"broker":"alpaca"},
		"timestamp": "`+fixedISO+`",
		"notification": {"title":"Trade Executed: AAPL","message":"BUY 10 AAPL @ $187.12","type":"success"}
	}`)
	// A sell with fractional quantity.
	p = TradeExecutedPayload("u2", map[string]any{}, Trade{Symbol: "brk.b", Side: "Sell", Quantity: 0.5, Price: 412}, fixedNow)
	n := p["notification"].(Notification)
	if n.Title != "Trade Executed: BRK.B" || n.Message != "SELL 0.5 BRK.B @ $412" || n.Type != "success" {
		t.Errorf("notification = %+v", n)
	}
}

func TestTradeFailedPayload(t *testing.T) {
	p := TradeFailedPayload("u1", map[string]any{"message": "Insufficient buying power", "code": "E42"}, fixedNow)
	assertJSON(t, p, `{
		"userId": "u1",
		"error": {"message":"Insufficient buying power","code":"E42"},
		"timestamp": "`+fixedISO+`",
		"notification": {"title":"Trade Failed","message":"Insufficient buying power","type":"error"}
	}`)
	// Without a message (or a non-string one) the notification has a default text.
	for _, e := range []map[string]any{{}, {"message": ""}, {"message": 42.0}} {
		p := TradeFailedPayload("u1", e, fixedNow)
		if n := p["notification"].(Notification); n.Message != "The trade could not be executed" || n.Title != "Trade Failed" {
			t.Errorf("error %v: notification %+v", e, n)
		}
	}
}

func TestPositionClosedPayload(t *testing.T) {
	p := PositionClosedPayload("u1", map[string]any{"symbol": "tsla", "pnl": -12.5}, fixedNow)
	assertJSON(t, p, `{
		"userId": "u1",
		"position": {"symbol":"tsla","pnl":-12.5},
		"timestamp": "`+fixedISO+`",
		"notification": {"title":"Position Closed: TSLA","message":"Your TSLA position was closed","type":"info"}
	}`)
}

func TestPortfolioAndNotificationPayloads(t *testing.T) {
	assertJSON(t, PortfolioUpdatedPayload("u1", map[string]any{"equity": 1000.5, "positions": []any{}}, fixedNow),
		`{"userId":"u1","portfolio":{"equity":1000.5,"positions":[]},"timestamp":"`+fixedISO+`"}`)
	assertJSON(t, NotificationPayload("u1", Notification{Title: "Hi", Message: "Deposit received", Type: "info"}, fixedNow),
		`{"userId":"u1","notification":{"title":"Hi","message":"Deposit received","type":"info"},"timestamp":"`+fixedISO+`"}`)
}

func TestQuotePayload(t *testing.T) {
	in := map[string]any{"price": 187.12, "symbol": "ignored", "bid": 187.1}
	p := QuotePayload("AAPL", in, fixedNow)
	assertJSON(t, p, `{"symbol":"AAPL","price":187.12,"bid":187.1,"timestamp":"`+fixedISO+`"}`)
	if in["symbol"] != "ignored" || len(in) != 3 {
		t.Errorf("QuotePayload modified its input: %v", in)
	}
	// A timestamp from the feed is kept.
	p = QuotePayload("AAPL", map[string]any{"price": 1.0, "timestamp": "2024-01-01T00:00:00.000Z"}, fixedNow)
	if p["timestamp"] != "2024-01-01T00:00:00.000Z" {
		t.Errorf("feed timestamp replaced: %v", p["timestamp"])
	}
}

func TestMarketStatusPayload(t *testing.T) {
	in := map[string]any{"open": true, "session": "regular"}
	assertJSON(t, MarketStatusPayload(in, fixedNow), `{"open":true,"session":"regular","timestamp":"`+fixedISO+`"}`)
	if len(in) != 2 {
		t.Errorf("MarketStatusPayload modified its input: %v", in)
	}
	p := MarketStatusPayload(map[string]any{"timestamp": 5.0}, fixedNow)
	if p["timestamp"] != 5.0 {
		t.Errorf("given timestamp replaced: %v", p["timestamp"])
	}
}

func TestTradeValidate(t *testing.T) {
	ok := Trade{Symbol: "AAPL", Side: "buy", Quantity: 1, Price: 0}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid trade: %v", err)
	}
	for _, c := range []struct {
		tr   Trade
		want string
	}{
		{Trade{Symbol: "", Side: "buy", Quantity: 1, Price: 1}, "trade.symbol"},
		{Trade{Symbol: "portfolio:u2", Side: "buy", Quantity: 1, Price: 1}, "trade.symbol"},
		{Trade{Symbol: "AAPL", Side: "hold", Quantity: 1, Price: 1}, "trade.side"},
		{Trade{Symbol: "AAPL", Side: "", Quantity: 1, Price: 1}, "trade.side"},
		{Trade{Symbol: "AAPL", Side: "SELL", Quantity: 0, Price: 1}, "trade.quantity"},
		{Trade{Symbol: "AAPL", Side: "sell", Quantity: -3, Price: 1}, "trade.quantity"},
		{Trade{Symbol: "AAPL", Side: "sell", Quantity: 3, Price: -0.01}, "trade.price"},
	} {
		err := c.tr.Validate()
		if err == nil || !regexp.MustCompile(regexp.QuoteMeta(c.want)).MatchString(err.Error()) {
			t.Errorf("Validate(%+v) = %v, want an error about %s", c.tr, err, c.want)
		}
	}
}
