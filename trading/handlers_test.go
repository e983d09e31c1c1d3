package trading

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tradewire/tradewire/ratelimit"
)

// okReply checks a successful reply: exactly the confirmation event, then
// an ack {success:true,...} carrying the same object. It returns that object.
func okReply(t *testing.T, evs []packet, ack packet, confirm string) map[string]any {
	t.Helper()
	if len(evs) != 1 || evs[0].kind != pkEvent || evs[0].name != confirm {
		t.Fatalf("events before ack = %v, want one %q event", raws(evs), confirm)
	}
	ev := evs[0].obj(t, 0)
	if len(ack.args) != 1 {
		t.Fatalf("ack %q: want one argument", ack.raw)
	}
	a := ack.obj(t, 0)
	if !reflect.DeepEqual(ev, a) {
		t.Errorf("confirmation %v and ack %v differ", ev, a)
	}
	if confirm != "pong" && a["success"] != true {
		t.Errorf("ack %v: success is not true", a)
	}
	return a
}

// errReply checks a refusal: exactly one error event {code,message}, then
// an ack {success:false, code, message}. It returns the error event.
func errReply(t *testing.T, evs []packet, ack packet, code string) map[string]any {
	t.Helper()
	if len(evs) != 1 || evs[0].kind != pkEvent || evs[0].name != "error" {
		t.Fatalf("events before ack = %v, want one error event", raws(evs))
	}
	ev := evs[0].obj(t, 0)
	if ev["code"] != code {
		t.Errorf("error event %v: code is not %s", ev, code)
	}
	if msg, _ := ev["message"].(string); msg == "" {
		t.Errorf("error event %v has no message", ev)
	}
	a := ack.obj(t, 0)
	if a["success"] != false || a["code"] != code || a["message"] != ev["message"] {
		t.Errorf("ack %v does not match error event %v", a, ev)
	}
	if len(ack.args) != 1 {
		t.Errorf("ack %q: want one argument", ack.raw)
	}
	if code != CodeRateLimit {
		if _, ok := ev["retryAfterMs"]; ok {
			t.Errorf("%s error carries retryAfterMs: %v", code, ev)
		}
		if _, ok := a["retryAfterMs"]; ok {
			t.Errorf("%s ack carries retryAfterMs: %v", code, a)
		}
	}
	return ev
}

func raws(ps []packet) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.raw
	}
	return out
}

func assertRooms(t *testing.T, f *fixture, sid string, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := f.rooms(sid); !slices.Equal(got, want) {
		t.Errorf("socket rooms = %v, want %v", got, want)
	}
}

func assertQuota(t *testing.T, q *ratelimit.Socket, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := q.Rooms(); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Errorf("quota rooms = %v, want %v", got, want)
	}
}

func symbolsJSON(syms ...string) string {
	b, _ := json.Marshal(map[string]any{"symbols": syms})
	return string(b)
}

func TestConnectJoinsOnlyUserRoom(t *testing.T) {
	f := newFixture(t, ratelimit.Config{})
	c := f.connect("u1", "user", "free")
	assertRooms(t, f, c.sid, "user:u1")
	assertQuota(t, f.quota("u1", 0))
	s := f.socket(c.sid)
	id := IdentityOf(s)
	if id == nil || id.UserID != "u1" || id.Tier != "free" {
		t.Errorf("IdentityOf = %+v", id)
	}
	if d, _ := s.Data().(SocketData); d.UserID != "u1" || d.Role != "user" || d.Tier != "free" {
		t.Errorf("socket data = %v", s.Data())
	}
}

func TestSubscribeEveryEventWithAck(t *testing.T) {
	f := newFixture(t, ratelimit.Config{})
	c := f.connect("u1", "user", "premium")
	q := f.quota("u1", 0)

	evs, ack := c.call("subscribe:portfolio")
	okReply(t, evs, ack, "subscribed:portfolio")
	assertRooms(t, f, c.sid, "user:u1", "portfolio:u1")

	evs, ack = c.call("subscribe:trades", `{}`)
	okReply(t, evs, ack, "subscribed:trades")
	assertRooms(t, f, c.sid, "user:u1", "portfolio:u1", "trades:u1")

	evs, ack = c.call("subscribe:watchlist", `{"symbols":["aapl"," msft ","AAPL","brk.b"]}`)
	r := okReply(t, evs, ack, "subscribed:watchlist")
	if !reflect.DeepEqual(r["symbols"], []any{"AAPL", "MSFT", "BRK.B"}) {
		t.Errorf("symbols = %v, want normalised and de-duplicated", r["symbols"])
	}
	assertRooms(t, f, c.sid, "user:u1", "portfolio:u1", "trades:u1", "watchlist:AAPL", "watchlist:MSFT", "watchlist:BRK.B")
	assertQuota(t, q, "portfolio:u1", "trades:u1", "watchlist:AAPL", "watchlist:MSFT", "watchlist:BRK.B")

	// The bare-array form.
	evs, ack = c.call("subscribe:watchlist", `["tsla"]`)
	r = okReply(t, evs, ack, "subscribed:watchlist")
	if !reflect.DeepEqual(r["symbols"], []any{"TSLA"}) {
		t.Errorf("symbols = %v", r["symbols"])
	}

	evs, ack = c.call("unsubscribe:watchlist", `{"symbols":["msft","tsla","NVDA"]}`)
	r = okReply(t, evs, ack, "unsubscribed:watchlist")
	if !reflect.DeepEqual(r["symbols"], []any{"MSFT", "TSLA", "NVDA"}) {
		t.Errorf("symbols = %v", r["symbols"])
	}
	assertRooms(t, f, c.sid, "user:u1", "portfolio:u1", "trades:u1", "watchlist:AAPL", "watchlist:BRK.B")
	assertQuota(t, q, "portfolio:u1", "trades:u1", "watchlist:AAPL", "watchlist:BRK.B")

	evs, ack = c.call("unsubscribe:portfolio")
	okReply(t, evs, ack, "unsubscribed:portfolio")
	evs, ack = c.call("unsubscribe:trades")
	okReply(t, evs, ack, "unsubscribed:trades")
	assertRooms(t, f, c.sid, "user:u1", "watchlist:AAPL", "watchlist:BRK.B")
	assertQuota(t, q, "watchlist:AAPL", "watchlist:BRK.B")

	// Unsubscribing twice is harmless.
	evs, ack = c.call("unsubscribe:trades")
	okReply(t, evs, ack, "unsubscribed:trades")
	assertQuota(t, q, "watchlist:AAPL", "watchlist:BRK.B")

	// Subscribing twice keeps one room and one quota entry.
	for range 2 {
		evs, ack = c.call("subscribe:portfolio")
		okReply(t, evs, ack, "subscribed:portfolio")
	}
	assertQuota(t, q, "portfolio:u1", "watchlist:AAPL", "watchlist:BRK.B")
}

func TestSubscribeWithoutAckSendsConfirmation(t *testing.T) {
	f := newFixture(t, ratelimit.Config{})
	c := f.connect("u1", "user", "free")
	c.emit("subscribe:trades")
	c.emit("subscribe:watchlist", symbolsJSON("AMD"))
	c.emit("unsubscribe:watchlist", symbolsJSON("AMD"))
	c.emit("subscribe:portfolio")
	c.emit("unsubscribe:portfolio")
	c.emit("ping")
	got := c.drain()
	var names []string
	for _, p := range got {
		names = append(names, p.name)
	}
	want := []string{"subscribed:trades", "subscribed:watchlist", "unsubscribed:watchlist", "subscribed:portfolio", "unsubscribed:portfolio", "pong"}
	if !slices.Equal(names, want) {
		t.Fatalf("events = %v, want %v", raws(got), want)
	}
	if r := got[1].obj(t, 0); r["success"] != true || !reflect.DeepEqual(r["symbols"], []any{"AMD"}) {
		t.Errorf("subscribed:watchlist = %v", r)
	}
	assertRooms(t, f, c.sid, "user:u1", "trades:u1")
}

func TestPingPong(t *testing.T) {
	f := newFixture(t, ratelimit.Config{})
	c := f.connect("u1", "user", "free")
	before := time.Now().UnixMilli()
	evs, ack := c.call("ping", `{"anything":1}`)
	after := time.Now().UnixMilli()
	r := okReply(t, evs, ack, "pong")
	ts, ok := r["timestamp"].(float64)
	if !ok || int64(ts) < before || int64(ts) > after {
		t.Errorf("pong timestamp %v not a millisecond time in [%d, %d]", r["timestamp"], before, after)
	}
	if len(r) != 1 {
		t.Errorf("pong = %v, want only a timestamp", r)
	}
}

func TestClientCannotJoinOtherUsersRooms(t *testing.T) {
	f := newFixture(t, ratelimit.Config{})
	c := f.connect("u1", "user", "premium")
	other := f.connect("u2", "user", "premium")
	for _, ev := range []string{"subscribe:portfolio", "subscribe:trades"} {
		for _, arg := range []string{`{"userId":"u2"}`, `"u2"`, `{"userId":"u2","room":"portfolio:u2"}`, `["portfolio:u2","trades:u2"]`, `{"rooms":["trades:u2"]}`} {
			evs, ack := c.call(ev, arg)
			okReply(t, evs, ack, "subscribed:"+strings.TrimPrefix(ev, "subscribe:"))
		}
	}
	for _, sym := range []string{"portfolio:u2", "trades:u2", "user:u2", "../x", "watchlist:AAPL", "admin:stats", other.sid, "u2 ", "portfolio:U2"} {
		evs, ack := c.call("subscribe:watchlist", symbolsJSON(sym))
		if sym == other.sid {
			// A socket id is 20 characters with '-' and '_': never a valid symbol.
			errReply(t, evs, ack, CodeInvalidPayload)
			continue
		}
		if sym == "u2 " { // "U2" is a valid ticker: it joins watchlist:U2, not a user room.
			okReply(t, evs, ack, "subscribed:watchlist")
			continue
		}
		errReply(t, evs, ack, CodeInvalidPayload)
	}
	// A valid symbol next to a room-like string refuses the whole request.
	evs, ack := c.call("subscribe:watchlist", symbolsJSON("AAPL", "trades:u2"))
	errReply(t, evs, ack, CodeInvalidPayload)

	evs, ack = c.call("subscribe:admin", `{"userId":"admin"}`)
	errReply(t, evs, ack, CodeForbidden)

	rooms := f.rooms(c.sid)
	want := []string{"portfolio:u1", "trades:u1", "user:u1", "watchlist:U2"}
	if !slices.Equal(rooms, want) {
		t.Errorf("rooms = %v, want %v", rooms, want)
	}
	for _, r := range f.nsp.Adapter().SocketRooms(c.sid) {
		if strings.Contains(r, "u2") || r == other.sid || r == AdminRoom {
			t.Errorf("socket of u1 is in room %q", r)
		}
	}
	assertRooms(t, f, other.sid, "user:u2")
}

func TestWatchlistSymbolCount(t *testing.T) {
	f := newFixture(t, ratelimit.Config{})
	c := f.connect("u1", "user", "premium")
	syms := make([]string, 51)
	for i := range syms {
		syms[i] = fmt.Sprintf("S%02d", i)
	}
	evs, ack := c.call("subscribe:watchlist", symbolsJSON(syms...))
	ev := errReply(t, evs, ack, CodeInvalidPayload)
	if !strings.Contains(ev["message"].(string), "50") {
		t.Errorf("message %q does not give the limit", ev["message"])
	}
	evs, ack = c.call("subscribe:watchlist", `[`+strings.TrimSuffix(strings.Repeat(`"X",`, 51), ",")+`]`)
	errReply(t, evs, ack, CodeInvalidPayload) // 51 entries, even if duplicates
	assertRooms(t, f, c.sid, "user:u1")
	assertQuota(t, f.quota("u1", 0))

	// 50 is allowed (premium tier: 50 symbols, default quota: 50 rooms).
	evs, ack = c.call("subscribe:watchlist", symbolsJSON(syms[:50]...))
	r := okReply(t, evs, ack, "subscribed:watchlist")
	if n := len(r["symbols"].([]any)); n != 50 {
		t.Errorf("%d symbols subscribed, want 50", n)
	}
	if n := len(f.rooms(c.sid)); n != 51 {
		t.Errorf("%d rooms, want 51", n)
	}
}

func TestWatchlistTierLimit(t *testing.T) {
	f := newFixture(t, ratelimit.Config{})
	f.h.WatchlistLimits = map[string]int{"free": 3, "basic": 5}
	free := f.connect("u1", "user", "free")
	syms := func(s ...string) string { return symbolsJSON(s...) }

	evs, ack := free.call("subscribe:watchlist", syms("A", "B"))
	okReply(t, evs, ack, "subscribed:watchlist")
	// Two new symbols would make 4 > 3: refused, nothing joined.
	evs, ack = free.call("subscribe:watchlist", syms("C", "D"))
	ev := errReply(t, evs, ack, CodeSubscriptionLimit)
	if !strings.Contains(ev["message"].(string), "tier") {
		t.Errorf("message %q does not mention the tier", ev["message"])
	}
	assertRooms(t, f, free.sid, "user:u1", "watchlist:A", "watchlist:B")
	assertQuota(t, f.quota("u1", 0), "watchlist:A", "watchlist:B")
	// Symbols already held do not count again.
	evs, ack = free.call("subscribe:watchlist", syms("A", "B", "C"))
	okReply(t, evs, ack, "subscribed:watchlist")
	evs, ack = free.call("subscribe:watchlist", syms("D"))
	errReply(t, evs, ack, CodeSubscriptionLimit)
	// Unsubscribing makes room.
	evs, ack = free.call("unsubscribe:watchlist", syms("a"))
	okReply(t, evs, ack, "unsubscribed:watchlist")
	evs, ack = free.call("subscribe:watchlist", syms("D"))
	okReply(t, evs, ack, "subscribed:watchlist")
	assertRooms(t, f, free.sid, "user:u1", "watchlist:B", "watchlist:C", "watchlist:D")

	// A tier that is not listed gets MaxSymbolsPerRequest.
	other := f.connect("u2", "user", "platinum")
	many := make([]string, 50)
	for i := range many {
		many[i] = fmt.Sprintf("T%d", i)
	}
	evs, ack = other.call("subscribe:watchlist", symbolsJSON(many...))
	okReply(t, evs, ack, "subscribed:watchlist")
}

// TestWatchlistTierLimitPerUser: the tier limit counts the user's symbols
// over all its sockets (a second tab cannot add another tier's worth).
func TestWatchlistTierLimitPerUser(t *testing.T) {
	f := newFixture(t, ratelimit.Config{})
	f.h.WatchlistLimits = map[string]int{"free": 3}
	tab1 := f.connect("u1", "user", "free")
	tab2 := f.connect("u1", "user", "free")
	evs, ack := tab1.call("subscribe:watchlist", symbolsJSON("A", "B"))
	okReply(t, evs, ack, "subscribed:watchlist")
	// The second tab: A is held already (free), C fits, D would be the 4th.
	evs, ack = tab2.call("subscribe:watchlist", symbolsJSON("A", "C", "D"))
	ev := errReply(t, evs, ack, CodeSubscriptionLimit)
	if !strings.Contains(ev["message"].(string), "tier") {
		t.Errorf("message %q does not mention the tier", ev["message"])
	}
	assertRooms(t, f, tab2.sid, "user:u1")
	evs, ack = tab2.call("subscribe:watchlist", symbolsJSON("A", "C"))
	okReply(t, evs, ack, "subscribed:watchlist")
	evs, ack = tab1.call("subscribe:watchlist", symbolsJSON("E"))
	errReply(t, evs, ack, CodeSubscriptionLimit)
}

func TestTotalSubscriptionLimitAllOrNothing(t *testing.T) {
	f := newFixture(t, ratelimit.Config{MaxSubscriptions: 3})
	c := f.connect("u1", "user", "premium")
	q := f.quota("u1", 0)
	evs, ack := c.call("subscribe:portfolio")
	okReply(t, evs, ack, "subscribed:portfolio")
	evs, ack = c.call("subscribe:trades")
	okReply(t, evs, ack, "subscribed:trades")

	// Two new rooms with one left: refused as a whole.
	evs, ack = c.call("subscribe:watchlist", symbolsJSON("AAPL", "MSFT"))
	errReply(t, evs, ack, CodeSubscriptionLimit)
	assertRooms(t, f, c.sid, "user:u1", "portfolio:u1", "trades:u1")
	assertQuota(t, q, "portfolio:u1", "trades:u1")

	evs, ack = c.call("subscribe:watchlist", symbolsJSON("AAPL"))
	okReply(t, evs, ack, "subscribed:watchlist")
	// A held room plus a new one: still all or nothing, the held one stays.
	evs, ack = c.call("subscribe:watchlist", symbolsJSON("AAPL", "MSFT"))
	errReply(t, evs, ack, CodeSubscriptionLimit)
	assertRooms(t, f, c.sid, "user:u1", "portfolio:u1", "trades:u1", "watchlist:AAPL")
	assertQuota(t, q, "portfolio:u1", "trades:u1", "watchlist:AAPL")
	// Rooms already held are granted at the limit.
	evs, ack = c.call("subscribe:watchlist", symbolsJSON("aapl"))
	okReply(t, evs, ack, "subscribed:watchlist")
	evs, ack = c.call("subscribe:trades")
	okReply(t, evs, ack, "subscribed:trades")

	// The quota is per user: a second socket of u1 sharing u1's rooms uses
	// none, a new room is refused.
	c2 := f.connect("u1", "user", "premium")
	evs, ack = c2.call("subscribe:portfolio")
	okReply(t, evs, ack, "subscribed:portfolio")
	evs, ack = c2.call("subscribe:watchlist", symbolsJSON("NVDA"))
	errReply(t, evs, ack, CodeSubscriptionLimit)
	evs, ack = c2.call("subscribe:watchlist", symbolsJSON("AAPL"))
	okReply(t, evs, ack, "subscribed:watchlist")
	assertRooms(t, f, c2.sid, "user:u1", "portfolio:u1", "watchlist:AAPL")

	// Another user has their own quota.
	u2 := f.connect("u2", "user", "premium")
	evs, ack = u2.call("subscribe:watchlist", symbolsJSON("A", "B", "C"))
	okReply(t, evs, ack, "subscribed:watchlist")

	// Leaving frees quota: after c leaves trades (c2 never held it), NVDA fits.
	evs, ack = c.call("unsubscribe:trades")
	okReply(t, evs, ack, "unsubscribed:trades")
	evs, ack = c2.call("subscribe:watchlist", symbolsJSON("NVDA"))
	okReply(t, evs, ack, "subscribed:watchlist")
}

// malformed are payloads of every JSON type that are not {symbols:[..]}.
var malformed = []string{
	`123`,
	`-1.5e300`,
	`"AAPL"`,
	`""`,
	`null`,
	`true`,
	`[]`,
	`[1,2,3]`,
	`[null]`,
	`[["AAPL"]]`,
	`[{"symbol":"AAPL"}]`,
	`{}`,
	`{"symbols":null}`,
	`{"symbols":[]}`,
	`{"symbols":"AAPL"}`,
	`{"symbols":123}`,
	`{"symbols":{"0":"AAPL"}}`,
	`{"symbols":[1.5]}`,
	`{"symbols":[true]}`,
	`{"symbols":[null]}`,
	`{"symbols":[["AAPL"]]}`,
	`{"symbols":[{"s":"AAPL"}]}`,
	`{"symbols":["AAPL",7]}`,
	`{"symbols":[""]}`,
	`{"symbol":["AAPL"]}`,
	`{"a":{"b":{"c":{"d":{"e":{"f":[[[[[[[[["AAPL"]]]]]]]]]}}}}}}`,
	`{"symbols":["` + strings.Repeat("A", 200000) + `"]}`,
	`"` + strings.Repeat("x", 200000) + `"`,
	`[` + strings.TrimSuffix(strings.Repeat(`{"a":[1,2,{"b":"c"}]},`, 5000), ",") + `]`,
}

func TestWatchlistMalformedPayloads(t *testing.T) {
	f := newFixture(t, ratelimit.Config{EventsPerMinute: -1})
	c := f.connect("u1", "user", "premium")
	for _, ev := range []string{"subscribe:watchlist", "unsubscribe:watchlist"} {
		// No argument at all.
		evs, ack := c.call(ev)
		errReply(t, evs, ack, CodeInvalidPayload)
		for _, arg := range malformed {
			evs, ack := c.call(ev, arg)
			errReply(t, evs, ack, CodeInvalidPayload)
		}
		// Without ack: the error event alone.
		c.emit(ev, `[1,2]`)
		got := c.drain()
		if len(got) != 1 || got[0].name != "error" || got[0].obj(t, 0)["code"] != CodeInvalidPayload {
			t.Errorf("%s without ack: %v", ev, raws(got))
		}
	}
	assertRooms(t, f, c.sid, "user:u1")
	assertQuota(t, f.quota("u1", 0))
	// The connection is still usable.
	evs, ack := c.call("subscribe:watchlist", symbolsJSON("AAPL"))
	okReply(t, evs, ack, "subscribed:watchlist")
}

func TestPayloadIgnoredByFixedRoomEvents(t *testing.T) {
	// subscribe:portfolio, subscribe:trades, unsubscribe:*, ping and
	// subscribe:admin take no arguments: whatever is sent, they act on the
	// socket's own user.
	f := newFixture(t, ratelimit.Config{EventsPerMinute: -1})
	c := f.connect("u1", "admin", "premium")
	for _, arg := range append([]string{`{"userId":"u2"}`}, malformed...) {
		for _, ev := range []string{"subscribe:portfolio", "subscribe:trades", "subscribe:admin", "unsubscribe:portfolio", "unsubscribe:trades", "ping"} {
			evs, ack := c.call(ev, arg, arg)
			confirm := map[string]string{"ping": "pong"}[ev]
			if confirm == "" {
				confirm = strings.Replace(ev, "subscribe:", "subscribed:", 1)
			}
			okReply(t, evs, ack, confirm)
		}
	}
	assertRooms(t, f, c.sid, "user:u1", AdminRoom)
}

func TestAdminSubscription(t *testing.T) {
	f := newFixture(t, ratelimit.Config{})
	user := f.connect("u1", "user", "enterprise")
	evs, ack := user.call("subscribe:admin")
	ev := errReply(t, evs, ack, CodeForbidden)
	if ev["message"] != "admin role required" {
		t.Errorf("message = %v", ev["message"])
	}
	user.emit("subscribe:admin")
	if got := user.drain(); len(got) != 1 || got[0].name != "error" || got[0].obj(t, 0)["code"] != CodeForbidden {
		t.Errorf("without ack: %v", raws(got))
	}
	assertRooms(t, f, user.sid, "user:u1")

	for _, role := range []string{"Admin", "administrator", ""} {
		c := f.connect("u-"+role, role, "free")
		evs, ack := c.call("subscribe:admin")
		errReply(t, evs, ack, CodeForbidden)
	}

	admin := f.connect("a1", "admin", "free")
	evs, ack = admin.call("subscribe:admin")
	okReply(t, evs, ack, "subscribed:admin")
	assertRooms(t, f, admin.sid, "user:a1", AdminRoom)
	// The admin room takes no subscription quota.
	assertQuota(t, f.quota("a1", 0))
}

func TestUnknownEvent(t *testing.T) {
	f := newFixture(t, ratelimit.Config{})
	c := f.connect("u1", "user", "free")
	for _, name := range []string{"subscribe:everything", "join", "subscribe:portfolio:u2", "SUBSCRIBE:PORTFOLIO", "pong"} {
		evs, ack := c.call(name, `{"room":"portfolio:u2"}`)
		ev := errReply(t, evs, ack, CodeInvalidPayload)
		if ev["message"] != "unknown event "+name {
			t.Errorf("message = %v", ev["message"])
		}
	}
	// A numeric event name.
	c.send(`4277[42,"x"]`)
	_, ack := c.untilAck(77)
	if a := ack.obj(t, 0); a["code"] != CodeInvalidPayload || a["message"] != "unknown event 42" {
		t.Errorf("numeric event ack = %v", a)
	}
	c.emit("hack", `"x"`)
	if got := c.drain(); len(got) != 1 || got[0].name != "error" || got[0].obj(t, 0)["code"] != CodeInvalidPayload {
		t.Errorf("without ack: %v", raws(got))
	}
	assertRooms(t, f, c.sid, "user:u1")
}

func TestRateLimit(t *testing.T) {
	// One event per minute after a burst of 4: nothing refills during the test.
	f := newFixture(t, ratelimit.Config{EventsPerMinute: 1, EventBurst: 4, FloodMaxDenials: -1})
	c := f.connect("u1", "user", "free")
	for i := range 4 {
		evs, ack := c.call("ping")
		if len(evs) != 1 || evs[0].name != "pong" {
			t.Fatalf("ping %d: %v %q", i, raws(evs), ack.raw)
		}
	}
	check := func(evs []packet, ack packet) {
		t.Helper()
		ev := errReply(t, evs, ack, CodeRateLimit)
		ms, ok := ev["retryAfterMs"].(float64)
		if !ok || ms <= 0 || ms > 60000 {
			t.Errorf("retryAfterMs = %v, want (0, 60000]", ev["retryAfterMs"])
		}
		if a := ack.obj(t, 0); a["retryAfterMs"] != ev["retryAfterMs"] {
			t.Errorf("ack retryAfterMs %v, event %v", a["retryAfterMs"], ev["retryAfterMs"])
		}
	}
	// Every kind of event is refused once the budget is spent, and a refused
	// subscription joins nothing.
	for _, call := range [][]string{
		{"ping"},
		{"subscribe:portfolio"},
		{"subscribe:trades"},
		{"subscribe:watchlist", symbolsJSON("AAPL")},
		{"subscribe:watchlist", `123`}, // invalid and refused: the limit answers
		{"unsubscribe:watchlist", symbolsJSON("AAPL")},
		{"unsubscribe:portfolio"},
		{"subscribe:admin"},
		{"no-such-event"},
	} {
		evs, ack := c.call(call[0], call[1:]...)
		check(evs, ack)
	}
	assertRooms(t, f, c.sid, "user:u1")
	assertQuota(t, f.quota("u1", 0))

	// Without ack: the error event alone.
	c.emit("subscribe:trades")
	c.emit("ping")
	var got []packet
	for len(got) < 2 {
		got = append(got, c.next())
	}
	for _, p := range got {
		if p.name != "error" || p.obj(t, 0)["code"] != CodeRateLimit {
			t.Errorf("without ack: %q", p.raw)
		}
	}

	// The limit is per user: another socket of u1 is limited too, u2 is not.
	c2 := f.connect("u1", "user", "free")
	evs, ack := c2.call("ping")
	check(evs, ack)
	u2 := f.connect("u2", "user", "free")
	evs, ack = u2.call("ping")
	okReply(t, evs, ack, "pong")
}

func TestRateLimitPrecheckPaths(t *testing.T) {
	// The tier check happens before AllowSubscribe; when it fails the event
	// is still charged, and once the budget is spent the rate limit answers.
	f := newFixture(t, ratelimit.Config{EventsPerMinute: 1, EventBurst: 2, FloodMaxDenials: -1})
	f.h.WatchlistLimits = map[string]int{"free": 1}
	c := f.connect("u1", "user", "free")
	evs, ack := c.call("subscribe:watchlist", symbolsJSON("A", "B")) // 1st event
	errReply(t, evs, ack, CodeSubscriptionLimit)
	evs, ack = c.call("subscribe:watchlist", `null`) // 2nd event
	errReply(t, evs, ack, CodeInvalidPayload)
	evs, ack = c.call("subscribe:watchlist", symbolsJSON("A", "B")) // budget spent
	errReply(t, evs, ack, CodeRateLimit)
	evs, ack = c.call("subscribe:watchlist", symbolsJSON("A"))
	errReply(t, evs, ack, CodeRateLimit)
	assertRooms(t, f, c.sid, "user:u1")
}

func TestFloodDisconnects(t *testing.T) {
	f := newFixture(t, ratelimit.Config{EventsPerMinute: 1, EventBurst: 1, FloodMaxDenials: 3})
	c := f.connect("u1", "user", "free")
	evs, ack := c.call("subscribe:trades")
	okReply(t, evs, ack, "subscribed:trades")
	for range 2 {
		evs, ack := c.call("ping")
		errReply(t, evs, ack, CodeRateLimit)
	}
	if f.h.Connections("u1") != 1 {
		t.Fatalf("disconnected before the flood threshold")
	}
	// The third consecutive refusal disconnects: error event, failed ack,
	// namespace DISCONNECT, then the connection closes.
	c.send(`4299["ping"]`)
	got := c.waitEnd()
	var kinds []byte
	for _, p := range got {
		kinds = append(kinds, p.kind)
	}
	if string(kinds) != "ead"+"x" {
		t.Fatalf("packets = %v, want error event, ack, disconnect, close", raws(got))
	}
	if got[0].obj(t, 0)["code"] != CodeRateLimit || got[1].id != 99 || got[1].obj(t, 0)["code"] != CodeRateLimit {
		t.Errorf("flood answer = %v", raws(got))
	}
	f.wait(c.sid, "disconnected")
	if r := f.reason(c.sid); r == "" {
		t.Error("no disconnect reason recorded")
	}
	if f.h.Users() != 0 || f.h.Connections("u1") != 0 {
		t.Errorf("after flood: users %d, connections %d", f.h.Users(), f.h.Connections("u1"))
	}
	assertQuota(t, f.quota("u1", 0))
	if len(f.nsp.Adapter().SocketRooms(c.sid)) != 0 {
		t.Errorf("disconnected socket still in rooms %v", f.nsp.Adapter().SocketRooms(c.sid))
	}
}

func TestFloodCounterResetsOnAllowedEvent(t *testing.T) {
	// Denials must be consecutive: an unrelated user is never disconnected,
	// and a socket under the threshold stays connected.
	f := newFixture(t, ratelimit.Config{EventsPerMinute: 1, EventBurst: 1, FloodMaxDenials: 2})
	c := f.connect("u1", "user", "free")
	evs, ack := c.call("ping")
	okReply(t, evs, ack, "pong")
	evs, ack = c.call("ping")
	errReply(t, evs, ack, CodeRateLimit)
	u2 := f.connect("u2", "user", "free")
	evs, ack = u2.call("ping")
	okReply(t, evs, ack, "pong")
	if f.h.Connections("u1") != 1 || f.h.Connections("u2") != 1 {
		t.Errorf("connections u1 %d u2 %d", f.h.Connections("u1"), f.h.Connections("u2"))
	}
}

func TestConnectionCountingAndQuotaRelease(t *testing.T) {
	f := newFixture(t, ratelimit.Config{MaxSubscriptions: 2})
	if f.h.Users() != 0 {
		t.Fatalf("Users() = %d before any connection", f.h.Users())
	}
	a := f.connect("u1", "user", "free")
	b := f.connect("u1", "user", "free")
	u2 := f.connect("u2", "user", "free")
	if f.h.Users() != 2 || f.h.Connections("u1") != 2 || f.h.Connections("u2") != 1 || f.h.Connections("nobody") != 0 {
		t.Fatalf("users %d, u1 %d, u2 %d", f.h.Users(), f.h.Connections("u1"), f.h.Connections("u2"))
	}
	evs, ack := a.call("subscribe:portfolio")
	okReply(t, evs, ack, "subscribed:portfolio")
	evs, ack = a.call("subscribe:watchlist", symbolsJSON("AAPL"))
	okReply(t, evs, ack, "subscribed:watchlist")
	evs, ack = b.call("subscribe:trades")
	errReply(t, evs, ack, CodeSubscriptionLimit)

	// Closing a releases its quota: b can now take two rooms.
	a.close()
	f.wait(a.sid, "disconnected")
	if f.h.Users() != 2 || f.h.Connections("u1") != 1 {
		t.Errorf("after one close: users %d, u1 %d", f.h.Users(), f.h.Connections("u1"))
	}
	qa := f.quota("u1", 0)
	assertQuota(t, qa)
	if granted, d := qa.AcquireSubscriptions(t.Context(), []string{"x"}); len(granted) != 0 || d.Allowed {
		t.Errorf("closed quota granted %v", granted)
	}
	evs, ack = b.call("subscribe:trades")
	okReply(t, evs, ack, "subscribed:trades")
	evs, ack = b.call("subscribe:watchlist", symbolsJSON("MSFT"))
	okReply(t, evs, ack, "subscribed:watchlist")

	b.close()
	f.wait(b.sid, "disconnected")
	if f.h.Users() != 1 || f.h.Connections("u1") != 0 {
		t.Errorf("after u1 left: users %d, u1 %d", f.h.Users(), f.h.Connections("u1"))
	}
	// A namespace disconnect from the client counts too.
	u2.send("41")
	f.wait(u2.sid, "disconnected")
	if f.h.Users() != 0 {
		t.Errorf("users %d after everyone left", f.h.Users())
	}
	if r := f.reason(u2.sid); r != "client namespace disconnect" {
		t.Errorf("reason %q", r)
	}
	// u1's quota is entirely free again.
	c := f.connect("u1", "user", "free")
	evs, ack = c.call("subscribe:watchlist", symbolsJSON("A", "B"))
	okReply(t, evs, ack, "subscribed:watchlist")
}

func TestUnauthenticatedSocketIsRefused(t *testing.T) {
	f := newFixture(t, ratelimit.Config{})
	c, p := dialSIO(t, f.url, map[string]any{"anonymous": true})
	if p.kind != pkConnect {
		t.Fatalf("connect: %q", p.raw)
	}
	got := c.waitEnd()
	if len(got) != 3 || got[0].name != "error" || got[1].kind != pkDisconnect || got[2].kind != pkClosed {
		t.Fatalf("packets = %v, want error event, disconnect, close", raws(got))
	}
	ev := got[0].obj(t, 0)
	if ev["code"] != CodeUnauthorized || ev["message"] != "not authenticated" {
		t.Errorf("error = %v", ev)
	}
	f.wait(c.sid, "attached")
	if f.h.Users() != 0 {
		t.Errorf("Users() = %d", f.h.Users())
	}
}

func TestQuotaFailureDisconnects(t *testing.T) {
	// An empty user id makes ratelimit.NewSocket fail: the socket is dropped.
	f := newFixture(t, ratelimit.Config{})
	c, p := dialSIO(t, f.url, map[string]any{"userId": ""})
	if p.kind != pkConnect {
		t.Fatalf("connect: %q", p.raw)
	}
	got := c.waitEnd()
	if len(got) != 2 || got[0].kind != pkDisconnect || got[1].kind != pkClosed {
		t.Fatalf("packets = %v, want disconnect, close", raws(got))
	}
	f.wait(c.sid, "attached")
	if f.h.Users() != 0 {
		t.Errorf("Users() = %d", f.h.Users())
	}
}

func TestIdentityOfUnauthenticated(t *testing.T) {
	f := newFixture(t, ratelimit.Config{})
	c, _ := dialSIO(t, f.url, map[string]any{"anonymous": true})
	f.wait(c.sid, "attached")
	s := f.socket(c.sid)
	if IdentityOf(s) != nil {
		t.Errorf("IdentityOf(anonymous) = %+v", IdentityOf(s))
	}
}
