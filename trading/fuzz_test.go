package trading

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/tradewire/tradewire/socketio"
)

// FuzzNormalizeSymbol: a normalised symbol is valid, upper-case and a fixed
// point; anything else is refused without a result.
func FuzzNormalizeSymbol(f *testing.F) {
	for _, s := range []string{"aapl", " BRK.B ", "portfolio:u2", "../x", "", "ÄPFEL", strings.Repeat("a", 16)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := NormalizeSymbol(s)
		if err != nil {
			if got != "" {
				t.Fatalf("NormalizeSymbol(%q) = %q with error", s, got)
			}
			return
		}
		if !symbolRE.MatchString(got) || strings.ToUpper(got) != got || strings.ContainsAny(got, ": /") {
			t.Fatalf("NormalizeSymbol(%q) = %q, not a valid symbol", s, got)
		}
		if again, err := NormalizeSymbol(got); err != nil || again != got {
			t.Fatalf("NormalizeSymbol not idempotent on %q: %q, %v", got, again, err)
		}
	})
}

// FuzzRoute: any JSON domain event is either refused with ErrInvalidEvent,
// or routed to the rooms of its own user/symbol with a JSON payload.
func FuzzRoute(f *testing.F) {
	for _, s := range []string{
		`{"type":"trade.executed","userId":"u1","trade":{"symbol":"AAPL","side":"buy","quantity":10,"price":187.12}}`,
		`{"type":"trade.failed","userId":"u1","error":{"message":"x"}}`,
		`{"type":"position.closed","userId":"u1","position":{"symbol":"tsla"}}`,
		`{"type":"portfolio.updated","userId":"u1","portfolio":{}}`,
		`{"type":"notification","userId":"u1","notification":{"title":"a","message":"b"}}`,
		`{"type":"quote.update","symbol":"aapl","quote":{"price":1}}`,
		`{"type":"market.status","id":"e1","status":{"open":true}}`,
		`{"type":"trade.executed","userId":"u 1","trade":[]}`,
	} {
		f.Add([]byte(s))
	}
	e := NewEmitter(nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		var ev DomainEvent
		if json.Unmarshal(data, &ev) != nil {
			return
		}
		user, typ := ev.UserID, ev.Type
		r, err := e.Route(&ev)
		if err != nil {
			if !errors.Is(err, ErrInvalidEvent) || r != nil {
				t.Fatalf("Route error %v (route %v) for %s", err, r, data)
			}
			return
		}
		if r.Event == "" || r.Data == nil {
			t.Fatalf("empty route %+v for %s", r, data)
		}
		if _, err := json.Marshal(r.Data); err != nil {
			t.Fatalf("payload not JSON: %v", err)
		}
		ts, _ := r.Data["timestamp"].(string)
		if typ != TypeQuoteUpdate && typ != TypeMarketStatus && !isoRE.MatchString(ts) {
			t.Fatalf("timestamp %q not ISO", ts)
		}
		switch typ {
		case TypeQuoteUpdate:
			sym, err := NormalizeSymbol(ev.Symbol)
			if err != nil || len(r.Rooms) != 1 || r.Rooms[0] != WatchlistRoom(sym) {
				t.Fatalf("quote routed to %v", r.Rooms)
			}
		case TypeMarketStatus:
			if r.Rooms != nil {
				t.Fatalf("market status routed to %v", r.Rooms)
			}
		default:
			if len(r.Rooms) != 1 || !strings.HasSuffix(r.Rooms[0], ":"+user) || r.Data["userId"] != user {
				t.Fatalf("%s of %q routed to %v", typ, user, r.Rooms)
			}
		}
	})
}

// FuzzSymbolsPayload: the watchlist payload parser accepts 1..50 distinct
// valid symbols or refuses with INVALID_PAYLOAD.
func FuzzSymbolsPayload(f *testing.F) {
	for _, s := range []string{`{"symbols":["aapl","AAPL","msft"]}`, `["tsla"]`, `{"symbols":[]}`, `null`, `123`, `{"symbols":["../x"]}`, `[[1]]`} {
		f.Add([]byte(s))
	}
	h := NewHandlers(nil, quietLogger())
	f.Fuzz(func(t *testing.T, data []byte) {
		syms, cerr := h.symbols(&socketio.Event{Name: "subscribe:watchlist", Args: []json.RawMessage{data}}, nil)
		if cerr != nil {
			if cerr.Code != CodeInvalidPayload || cerr.Message == "" || syms != nil {
				t.Fatalf("refusal %+v (symbols %v) for %s", cerr, syms, data)
			}
			return
		}
		if len(syms) == 0 || len(syms) > MaxSymbolsPerRequest {
			t.Fatalf("%d symbols accepted", len(syms))
		}
		seen := map[string]bool{}
		for _, s := range syms {
			if !symbolRE.MatchString(s) || seen[s] {
				t.Fatalf("symbol %q accepted (dup %v)", s, seen[s])
			}
			seen[s] = true
		}
	})
}

func TestClientErrorString(t *testing.T) {
	e := &ClientError{Code: CodeRateLimit, Message: "too many events", RetryAfterMs: 5}
	if e.Error() != "RATE_LIMIT: too many events" {
		t.Errorf("Error() = %q", e.Error())
	}
	b, _ := json.Marshal(&ClientError{Code: CodeForbidden, Message: "no"})
	if string(b) != `{"code":"FORBIDDEN","message":"no"}` {
		t.Errorf("JSON = %s", b)
	}
}

func TestNewHandlersDefaults(t *testing.T) {
	h := NewHandlers(nil, nil)
	if h.log == nil {
		t.Error("no default logger")
	}
	for tier, want := range map[string]int{"free": 10, "basic": 25, "premium": 50, "enterprise": 50, "other": MaxSymbolsPerRequest} {
		if got := h.watchlistLimit(tier); got != want {
			t.Errorf("watchlist limit of %q = %d, want %d", tier, got, want)
		}
	}
}
