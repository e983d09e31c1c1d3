package trading

import (
	"strings"
	"testing"
)

func TestNormalizeSymbolValid(t *testing.T) {
	for in, want := range map[string]string{
		"AAPL":                  "AAPL",
		"aapl":                  "AAPL",
		"  msft\t":              "MSFT",
		"brk.b":                 "BRK.B",
		"BF-B":                  "BF-B",
		"7203":                  "7203",
		"X":                     "X",
		"abcdefghijklmno":       "ABCDEFGHIJKLMNO", // 15 characters
		"eurusd":                "EURUSD",
		"0":                     "0",
		"A.B-C":                 "A.B-C",
		"\n spy \r":             "SPY",
		"Rds.a":                 "RDS.A",
		"9988.hk":               "9988.HK",
		strings.Repeat("z", 15): strings.Repeat("Z", 15),
	} {
		got, err := NormalizeSymbol(in)
		if err != nil || got != want {
			t.Errorf("NormalizeSymbol(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestNormalizeSymbolInvalid(t *testing.T) {
	for _, in := range []string{
		"",
		"   ",
		".AAPL",            // must start with a letter or digit
		"-AAPL",            //
		"portfolio:u2",     // a room name
		"trades:u1",        //
		"../x",             // path-like
		"AAPL/USD",         //
		"AA PL",            // inner space
		"AAPL\x00",         // NUL
		"abcdefghijklmnop", // 16 characters
		"ÄPFEL",            // non-ASCII
		"ＡＡＰＬ",             // full-width letters
		"AAPL;DROP",        //
		"a_b",              //
		"$AAPL",            //
		"*",                //
		strings.Repeat("A", 100000),
	} {
		got, err := NormalizeSymbol(in)
		if err == nil {
			t.Errorf("NormalizeSymbol(%.40q) = %q, want an error", in, got)
			continue
		}
		if got != "" {
			t.Errorf("NormalizeSymbol(%.40q) returned %q with its error", in, got)
		}
		if !strings.Contains(err.Error(), "invalid symbol") {
			t.Errorf("NormalizeSymbol(%.40q) error %q does not say invalid symbol", in, err)
		}
	}
}

func TestRoomNames(t *testing.T) {
	for got, want := range map[string]string{
		UserRoom("u1"):        "user:u1",
		PortfolioRoom("u1"):   "portfolio:u1",
		TradesRoom("u1"):      "trades:u1",
		WatchlistRoom("AAPL"): "watchlist:AAPL",
		AdminRoom:             "admin:stats",
	} {
		if got != want {
			t.Errorf("room %q, want %q", got, want)
		}
	}
}

func TestRecoverable(t *testing.T) {
	for room, want := range map[string]bool{
		UserRoom("u1"):         true,
		PortfolioRoom("u1"):    true,
		TradesRoom("u1"):       true,
		WatchlistRoom("AAPL"):  false,
		AdminRoom:              false,
		"":                     false,
		"user":                 false, // no prefix match without the colon
		"portfolios:u1":        false,
		"0123456789abcdefghij": false, // a socket id
	} {
		if got := Recoverable(room); got != want {
			t.Errorf("Recoverable(%q) = %v, want %v", room, got, want)
		}
	}
}
