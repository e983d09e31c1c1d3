package trading

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tradewire/tradewire/internal/testutil/sioclient"
	"github.com/tradewire/tradewire/ratelimit"
)

// okReply checks a successful reply: exactly the confirmation event, then
// an ack {success:true,...} carrying the same object. It returns that object.
func okReply(t *testing.T, evs []sioclient.Packet, ack sioclient.Packet, confirm string) map[string]any {
	t.Helper()
	if len(evs) != 1 || evs[0].Kind != sioclient.KindEvent || evs[0].Name != confirm {
		t.Fatalf("events before ack = %v, want one %q event", raws(evs), confirm)
	}
	ev := evs[0].Obj(t, 0)
	if len(ack.Args) != 1 {
		t.Fatalf("ack %q: want one argument", ack.Raw)
	}
	a := ack.Obj(t, 0)
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
func errReply(t *testing.T, evs []sioclient.Packet, ack sioclient.Packet, code string) map[string]any {
	t.Helper()
	if len(evs) != 1 || evs[0].Kind != sioclient.KindEvent || evs[0].Name != "error" {
		t.Fatalf("events before ack = %v, want one error event", raws(evs))
	}
	ev := evs[0].Obj(t, 0)
	if ev["code"] != code {
		t.Errorf("error event %v: code is not %s", ev, code)
	}
	if msg, _ := ev["message"].(string); msg == "" {
		t.Errorf("error event %v has no message", ev)
	}
	a := ack.Obj(t, 0)
	if a["success"] != false || a["code"] != code || a["message"] != ev["message"] {
		t.Errorf("ack %v does not match error event %v", a, ev)
	}
	if len(ack.Args) != 1 {
		t.Errorf("ack %q: want one argument", ack.Raw)
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

func raws(ps []sioclient.Packet) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Raw
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
	assertRooms(t, f, c.SID(), "user:u1")
	assertQuota(t, f.quota("u1", 0))
	s := f.socket(c.SID())
	id := IdentityOf(s)
	if id == nil || id.UserID != "u1" || id.Tier != "free" {
		t.Errorf("IdentityOf = %+v", id)
	}
	if d, ok := DataOf(s); !ok || d.UserID != "u1" || d.Role != "user" || d.Tier != "free" {
		t.Errorf("socket data = %v", s.Data())
	}
	// Other nodes and restores see it as JSON.
	if raw, err := json.Marshal(s.Data()); err != nil || string(raw) != `{"userId":"u1","role":"user","tier":"free"}` {
		t.Errorf("socket data as JSON = %s, %v", raw, err)
	}
	s.SetData(map[string]any{"userId": "u9", "tier": "basic"}) // as a restore decodes it
	if d, ok := DataOf(s); !ok || d.UserID != "u9" || d.Tier != "basic" || d.Role != "" {
		t.Errorf("restored data = %+v, %v", d, ok)
	}
	s.SetData(42)
	if _, ok := DataOf(s); ok {
		t.Error("DataOf accepted foreign data")
	}
}

func TestSubscribeEveryEventWithAck(t *testing.T) {
	f := newFixture(t, ratelimit.Config{})
	c := f.connect("u1", "user", "premium")
	q := f.quota("u1", 0)

	evs, ack := c.Call("subscribe:portfolio")
	okReply(t, evs, ack, "subscribed:portfolio")
	assertRooms(t, f, c.SID(), "user:u1", "portfolio:u1")

	evs, ack = c.Call("subscribe:trades", `{}`)
	okReply(t, evs, ack, "subscribed:trades")
	assertRooms(t, f, c.SID(), "user:u1", "portfolio:u1", "trades:u1")

	evs, ack = c.Call("subscribe:watchlist", `{"symbols":["aapl"," msft ","AAPL","brk.b"]}`)
	r := okReply(t, evs, ack, "subscribed:watchlist")
	if !reflect.DeepEqual(r["symbols"], []any{"AAPL", "MSFT", "BRK.B"}) {
		t.Errorf("symbols = %v, want normalised and de-duplicated", r["symbols"])
	}
	assertRooms(t, f, c.SID(), "user:u1", "portfolio:u1", "trades:u1", "watchlist:AAPL", "watchlist:MSFT", "watchlist:BRK.B")
	assertQuota(t, q, "portfolio:u1", "trades:u1", "watchlist:AAPL", "watchlist:MSFT", "watchlist:BRK.B")

	// The bare-array form.
	evs, ack = c.Call("subscribe:watchlist", `["tsla"]`)
	r = okReply(t, evs, ack, "subscribed:watchlist")
	if !reflect.DeepEqual(r["symbols"], []any{"TSLA"}) {
		t.Errorf("symbols = %v", r["symbols"])
	}

	evs, ack = c.Call("unsubscribe:watchlist", `{"symbols":["msft","tsla","NVDA"]}`)
	r = okReply(t, evs, ack, "unsubscribed:watchlist")
	if !reflect.DeepEqual(r["symbols"], []any{"MSFT", "TSLA", "NVDA"}) {
		t.Errorf("symbols = %v", r["symbols"])
	}
	assertRooms(t, f, c.SID(), "user:u1", "portfolio:u1", "trades:u1", "watchlist:AAPL", "watchlist:BRK.B")
	assertQuota(t, q, "portfolio:u1", "trades:u1", "watchlist:AAPL", "watchlist:BRK.B")

	evs, ack = c.Call("unsubscribe:portfolio")
	okReply(t, evs, ack, "unsubscribed:portfolio")
	evs, ack = c.Call("unsubscribe:trades")
	okReply(t, evs, ack, "unsubscribed:trades")
	assertRooms(t, f, c.SID(), "user:u1", "watchlist:AAPL", "watchlist:BRK.B")
	assertQuota(t, q, "watchlist:AAPL", "watchlist:BRK.B")

	// Unsubscribing twice is harmless.
	evs, ack = c.Call("unsubscribe:trades")
	okReply(t, evs, ack, "unsubscribed:trades")
	assertQuota(t, q, "watchlist:AAPL", "watchlist:BRK.B")

	// Subscribing twice keeps one room and one quota entry.
	for range 2 {
		evs, ack = c.Call("subscribe:portfolio")
		okReply(t, evs, ack, "subscribed:portfolio")
	}
	assertQuota(t, q, "portfolio:u1", "watchlist:AAPL", "watchlist:BRK.B")
}

func TestSubscribeWithoutAckSendsConfirmation(t *testing.T) {
	f := newFixture(t, ratelimit.Config{})
	c := f.connect("u1", "user", "free")
	c.Emit("subscribe:trades")
	c.Emit("subscribe:watchlist", symbolsJSON("AMD"))
	c.Emit("unsubscribe:watchlist", symbolsJSON("AMD"))
	c.Emit("subscribe:portfolio")
	c.Emit("unsubscribe:portfolio")
	c.Emit("ping")
	got := c.Drain()
	var names []string
	for _, p := range got {
		names = append(names, p.Name)
	}
	want := []string{"subscribed:trades", "subscribed:watchlist", "unsubscribed:watchlist", "subscribed:portfolio", "unsubscribed:portfolio", "pong"}
	if !slices.Equal(names, want) {
		t.Fatalf("events = %v, want %v", raws(got), want)
	}
	if r := got[1].Obj(t, 0); r["success"] != true || !reflect.DeepEqual(r["symbols"], []any{"AMD"}) {
		t.Errorf("subscribed:watchlist = %v", r)
	}
	assertRooms(t, f, c.SID(), "user:u1", "trades:u1")
}

func TestPingPong(t *testing.T) {
	f := newFixture(t, ratelimit.Config{})
	c := f.connect("u1", "user", "free")
	before := time.Now().UnixMilli()
	evs, ack := c.Call("ping", `{"anything":1}`)
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
			evs, ack := c.Call(ev, arg)
			okReply(t, evs, ack, "subscribed:"+strings.TrimPrefix(ev, "subscribe:"))
		}
	}
	for _, sym := range []string{"portfolio:u2", "trades:u2", "user:u2", "../x", "watchlist:AAPL", "admin:stats", other.SID(), "u2 ", "portfolio:U2"} {
		evs, ack := c.Call("subscribe:watchlist", symbolsJSON(sym))
		if sym == other.SID() {
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
	evs, ack := c.Call("subscribe:watchlist", symbolsJSON("AAPL", "trades:u2"))
	errReply(t, evs, ack, CodeInvalidPayload)

	evs, ack = c.Call("subscribe:admin", `{"userId":"admin"}`)
	errReply(t, evs, ack, CodeForbidden)

	rooms := f.rooms(c.SID())
	want := []string{"portfolio:u1", "trades:u1", "user:u1", "watchlist:U2"}
	if !slices.Equal(rooms, want) {
		t.Errorf("rooms = %v, want %v", rooms, want)
	}
	for _, r := range f.nsp.Adapter().SocketRooms(c.SID()) {
		if strings.Contains(r, "u2") || r == other.SID() || r == AdminRoom {
			t.Errorf("socket of u1 is in room %q", r)
		}
	}
	assertRooms(t, f, other.SID(), "user:u2")
}

func TestWatchlistSymbolCount(t *testing.T) {
	f := newFixture(t, ratelimit.Config{})
	c := f.connect("u1", "user", "premium")
	syms := make([]string, 51)
	for i := range syms {
		syms[i] = fmt.Sprintf("S%02d", i)
	}
	evs, ack := c.Call("subscribe:watchlist", symbolsJSON(syms...))
	ev := errReply(t, evs, ack, CodeInvalidPayload)
	if !strings.Contains(ev["message"].(string), "50") {
		t.Errorf("message %q does not give the limit", ev["message"])
	}
	evs, ack = c.Call("subscribe:watchlist", `[`+strings.TrimSuffix(strings.Repeat(`"X",`, 51), ",")+`]`)
	errReply(t, evs, ack, CodeInvalidPayload) // 51 entries, even if duplicates
	assertRooms(t, f, c.SID(), "user:u1")
	assertQuota(t, f.quota("u1", 0))

	// 50 is allowed (premium tier: 50 symbols, default quota: 50 rooms).
	evs, ack = c.Call("subscribe:watchlist", symbolsJSON(syms[:50]...))
	r := okReply(t, evs, ack, "subscribed:watchlist")
	if n := len(r["symbols"].([]any)); n != 50 {
		t.Errorf("%d symbols subscribed, want 50", n)
	}
	if n := len(f.rooms(c.SID())); n != 51 {
		t.Errorf("%d rooms, want 51", n)
	}
}

func TestWatchlistTierLimit(t *testing.T) {
	f := newFixture(t, ratelimit.Config{})
	f.h.WatchlistLimits = map[string]int{"free": 3, "basic": 5}
	free := f.connect("u1", "user", "free")
	syms := func(s ...string) string { return symbolsJSON(s...) }

	evs, ack := free.Call("subscribe:watchlist", syms("A", "B"))
	okReply(t, evs, ack, "subscribed:watchlist")
	// Two new symbols would make 4 > 3: refused, nothing joined.
	evs, ack = free.Call("subscribe:watchlist", syms("C", "D"))
	ev := errReply(t, evs, ack, CodeSubscriptionLimit)
	if !strings.Contains(ev["message"].(string), "tier") {
		t.Errorf("message %q does not mention the tier", ev["message"])
	}
	assertRooms(t, f, free.SID(), "user:u1", "watchlist:A", "watchlist:B")
	assertQuota(t, f.quota("u1", 0), "watchlist:A", "watchlist:B")
	// Symbols already held do not count again.
	evs, ack = free.Call("subscribe:watchlist", syms("A", "B", "C"))
	okReply(t, evs, ack, "subscribed:watchlist")
	evs, ack = free.Call("subscribe:watchlist", syms("D"))
	errReply(t, evs, ack, CodeSubscriptionLimit)
	// Unsubscribing makes room.
	evs, ack = free.Call("unsubscribe:watchlist", syms("a"))
	okReply(t, evs, ack, "unsubscribed:watchlist")
	evs, ack = free.Call("subscribe:watchlist", syms("D"))
	okReply(t, evs, ack, "subscribed:watchlist")
	assertRooms(t, f, free.SID(), "user:u1", "watchlist:B", "watchlist:C", "watchlist:D")

	// A tier that is not listed gets MaxSymbolsPerRequest.
	other := f.connect("u2", "user", "platinum")
	many := make([]string, 50)
	for i := range many {
		many[i] = fmt.Sprintf("T%d", i)
	}
	evs, ack = other.Call("subscribe:watchlist", symbolsJSON(many...))
	okReply(t, evs, ack, "subscribed:watchlist")
}

// TestWatchlistTierLimitPerUser: the tier limit counts the user's symbols
// over all its sockets (a second tab cannot add another tier's worth).
func TestWatchlistTierLimitPerUser(t *testing.T) {
	f := newFixture(t, ratelimit.Config{})
	f.h.WatchlistLimits = map[string]int{"free": 3}
	tab1 := f.connect("u1", "user", "free")
	tab2 := f.connect("u1", "user", "free")
	evs, ack := tab1.Call("subscribe:watchlist", symbolsJSON("A", "B"))
	okReply(t, evs, ack, "subscribed:watchlist")
	// The second tab: A is held already (free), C fits, D would be the 4th.
	evs, ack = tab2.Call("subscribe:watchlist", symbolsJSON("A", "C", "D"))
	ev := errReply(t, evs, ack, CodeSubscriptionLimit)
	if !strings.Contains(ev["message"].(string), "tier") {
		t.Errorf("message %q does not mention the tier", ev["message"])
	}
	assertRooms(t, f, tab2.SID(), "user:u1")
	evs, ack = tab2.Call("subscribe:watchlist", symbolsJSON("A", "C"))
	okReply(t, evs, ack, "subscribed:watchlist")
	evs, ack = tab1.Call("subscribe:watchlist", symbolsJSON("E"))
	errReply(t, evs, ack, CodeSubscriptionLimit)
}

func TestTotalSubscriptionLimitAllOrNothing(t *testing.T) {
	f := newFixture(t, ratelimit.Config{MaxSubscriptions: 3})
	c := f.connect("u1", "user", "premium")
	q := f.quota("u1", 0)
	evs, ack := c.Call("subscribe:portfolio")
	okReply(t, evs, ack, "subscribed:portfolio")
	evs, ack = c.Call("subscribe:trades")
	okReply(t, evs, ack, "subscribed:trades")

	// Two new rooms with one left: refused as a whole.
	evs, ack = c.Call("subscribe:watchlist", symbolsJSON("AAPL", "MSFT"))
	errReply(t, evs, ack, CodeSubscriptionLimit)
	assertRooms(t, f, c.SID(), "user:u1", "portfolio:u1", "trades:u1")
	assertQuota(t, q, "portfolio:u1", "trades:u1")

	evs, ack = c.Call("subscribe:watchlist", symbolsJSON("AAPL"))
	okReply(t, evs, ack, "subscribed:watchlist")
	// A held room plus a new one: still all or nothing, the held one stays.
	evs, ack = c.Call("subscribe:watchlist", symbolsJSON("AAPL", "MSFT"))
	errReply(t, evs, ack, CodeSubscriptionLimit)
	assertRooms(t, f, c.SID(), "user:u1", "portfolio:u1", "trades:u1", "watchlist:AAPL")
	assertQuota(t, q, "portfolio:u1", "trades:u1", "watchlist:AAPL")
	// Rooms already held are granted at the limit.
	evs, ack = c.Call("subscribe:watchlist", symbolsJSON("aapl"))
	okReply(t, evs, ack, "subscribed:watchlist")
	evs, ack = c.Call("subscribe:trades")
	okReply(t, evs, ack, "subscribed:trades")

	// The quota is per user: a second socket of u1 sharing u1's rooms uses
	// none, a new room is refused.
	c2 := f.connect("u1", "user", "premium")
	evs, ack = c2.Call("subscribe:portfolio")
	okReply(t, evs, ack, "subscribed:portfolio")
	evs, ack = c2.Call("subscribe:watchlist", symbolsJSON("NVDA"))
	errReply(t, evs, ack, CodeSubscriptionLimit)
	evs, ack = c2.Call("subscribe:watchlist", symbolsJSON("AAPL"))
	okReply(t, evs, ack, "subscribed:watchlist")
	assertRooms(t, f, c2.SID(), "user:u1", "portfolio:u1", "watchlist:AAPL")

	// Another user has their own quota.
	u2 := f.connect("u2", "user", "premium")
	evs, ack = u2.Call("subscribe:watchlist", symbolsJSON("A", "B", "C"))
	okReply(t, evs, ack, "subscribed:watchlist")

	// Leaving frees quota: after c leaves trades (c2 never held it), NVDA fits.
	evs, ack = c.Call("unsubscribe:trades")
	okReply(t, evs, ack, "unsubscribed:trades")
	evs, ack = c2.Call("subscribe:watchlist", symbolsJSON("NVDA"))
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
		evs, ack := c.Call(ev)
		errReply(t, evs, ack, CodeInvalidPayload)
		for _, arg := range malformed {
			evs, ack := c.Call(ev, arg)
			errReply(t, evs, ack, CodeInvalidPayload)
		}
		// Without ack: the error event alone.
		c.Emit(ev, `[1,2]`)
		got := c.Drain()
		if len(got) != 1 || got[0].Name != "error" || got[0].Obj(t, 0)["code"] != CodeInvalidPayload {
			t.Errorf("%s without ack: %v", ev, raws(got))
		}
	}
	assertRooms(t, f, c.SID(), "user:u1")
	assertQuota(t, f.quota("u1", 0))
	// The connection is still usable.
	evs, ack := c.Call("subscribe:watchlist", symbolsJSON("AAPL"))
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
			evs, ack := c.Call(ev, arg, arg)
			confirm := map[string]string{"ping": "pong"}[ev]
			if confirm == "" {
				confirm = strings.Replace(ev, "subscribe:", "subscribed:", 1)
			}
			okReply(t, evs, ack, confirm)
		}
	}
	assertRooms(t, f, c.SID(), "user:u1", AdminRoom)
}

func TestAdminSubscription(t *testing.T) {
	f := newFixture(t, ratelimit.Config{})
	user := f.connect("u1", "user", "enterprise")
	evs, ack := user.Call("subscribe:admin")
	ev := errReply(t, evs, ack, CodeForbidden)
	if ev["message"] != "admin role required" {
		t.Errorf("message = %v", ev["message"])
	}
	user.Emit("subscribe:admin")
	if got := user.Drain(); len(got) != 1 || got[0].Name != "error" || got[0].Obj(t, 0)["code"] != CodeForbidden {
		t.Errorf("without ack: %v", raws(got))
	}
	assertRooms(t, f, user.SID(), "user:u1")

	for _, role := range []string{"Admin", "administrator", ""} {
		c := f.connect("u-"+role, role, "free")
		evs, ack := c.Call("subscribe:admin")
		errReply(t, evs, ack, CodeForbidden)
	}

	admin := f.connect("a1", "admin", "free")
	evs, ack = admin.Call("subscribe:admin")
	okReply(t, evs, ack, "subscribed:admin")
	assertRooms(t, f, admin.SID(), "user:a1", AdminRoom)
	// The admin room takes no subscription quota.
	assertQuota(t, f.quota("a1", 0))
}

func TestUnknownEvent(t *testing.T) {
	f := newFixture(t, ratelimit.Config{})
	c := f.connect("u1", "user", "free")
	for _, name := range []string{"subscribe:everything", "join", "subscribe:portfolio:u2", "SUBSCRIBE:PORTFOLIO", "pong"} {
		evs, ack := c.Call(name, `{"room":"portfolio:u2"}`)
		ev := errReply(t, evs, ack, CodeInvalidPayload)
		if ev["message"] != "unknown event "+name {
			t.Errorf("message = %v", ev["message"])
		}
	}
	// A numeric event name.
	c.Send(`4277[42,"x"]`)
	_, ack := c.UntilAck(77)
	if a := ack.Obj(t, 0); a["code"] != CodeInvalidPayload || a["message"] != "unknown event 42" {
		t.Errorf("numeric event ack = %v", a)
	}
	c.Emit("hack", `"x"`)
	if got := c.Drain(); len(got) != 1 || got[0].Name != "error" || got[0].Obj(t, 0)["code"] != CodeInvalidPayload {
		t.Errorf("without ack: %v", raws(got))
	}
	assertRooms(t, f, c.SID(), "user:u1")
}

func TestRateLimit(t *testing.T) {
	// One event per minute after a burst of 4: nothing refills during the test.
	f := newFixture(t, ratelimit.Config{EventsPerMinute: 1, EventBurst: 4, FloodMaxDenials: -1})
	c := f.connect("u1", "user", "free")
	for i := range 4 {
		evs, ack := c.Call("ping")
		if len(evs) != 1 || evs[0].Name != "pong" {
			t.Fatalf("ping %d: %v %q", i, raws(evs), ack.Raw)
		}
	}
	check := func(evs []sioclient.Packet, ack sioclient.Packet) {
		t.Helper()
		ev := errReply(t, evs, ack, CodeRateLimit)
		ms, ok := ev["retryAfterMs"].(float64)
		if !ok || ms <= 0 || ms > 60000 {
			t.Errorf("retryAfterMs = %v, want (0, 60000]", ev["retryAfterMs"])
		}
		if a := ack.Obj(t, 0); a["retryAfterMs"] != ev["retryAfterMs"] {
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
		evs, ack := c.Call(call[0], call[1:]...)
		check(evs, ack)
	}
	assertRooms(t, f, c.SID(), "user:u1")
	assertQuota(t, f.quota("u1", 0))

	// Without ack: the error event alone.
	c.Emit("subscribe:trades")
	c.Emit("ping")
	var got []sioclient.Packet
	for len(got) < 2 {
		got = append(got, c.Next())
	}
	for _, p := range got {
		if p.Name != "error" || p.Obj(t, 0)["code"] != CodeRateLimit {
			t.Errorf("without ack: %q", p.Raw)
		}
	}

	// The limit is per user: another socket of u1 is limited too, u2 is not.
	c2 := f.connect("u1", "user", "free")
	evs, ack := c2.Call("ping")
	check(evs, ack)
	u2 := f.connect("u2", "user", "free")
	evs, ack = u2.Call("ping")
	okReply(t, evs, ack, "pong")
}

func TestRateLimitPrecheckPaths(t *testing.T) {
	// The tier check happens before AllowSubscribe; when it fails the event
	// is still charged, and once the budget is spent the rate limit answers.
	f := newFixture(t, ratelimit.Config{EventsPerMinute: 1, EventBurst: 2, FloodMaxDenials: -1})
	f.h.WatchlistLimits = map[string]int{"free": 1}
	c := f.connect("u1", "user", "free")
	evs, ack := c.Call("subscribe:watchlist", symbolsJSON("A", "B")) // 1st event
	errReply(t, evs, ack, CodeSubscriptionLimit)
	evs, ack = c.Call("subscribe:watchlist", `null`) // 2nd event
	errReply(t, evs, ack, CodeInvalidPayload)
	evs, ack = c.Call("subscribe:watchlist", symbolsJSON("A", "B")) // budget spent
	errReply(t, evs, ack, CodeRateLimit)
	evs, ack = c.Call("subscribe:watchlist", symbolsJSON("A"))
	errReply(t, evs, ack, CodeRateLimit)
	assertRooms(t, f, c.SID(), "user:u1")
}

func TestFloodDisconnects(t *testing.T) {
	f := newFixture(t, ratelimit.Config{EventsPerMinute: 1, EventBurst: 1, FloodMaxDenials: 3})
	c := f.connect("u1", "user", "free")
	evs, ack := c.Call("subscribe:trades")
	okReply(t, evs, ack, "subscribed:trades")
	for range 2 {
		evs, ack := c.Call("ping")
		errReply(t, evs, ack, CodeRateLimit)
	}
	if f.lim.UserSockets("u1") != 1 {
		t.Fatalf("disconnected before the flood threshold")
	}
	// The third consecutive refusal disconnects: error event, failed ack,
	// namespace DISCONNECT, then the connection closes.
	c.Send(`4299["ping"]`)
	got := c.WaitEnd()
	var kinds []byte
	for _, p := range got {
		kinds = append(kinds, byte(p.Kind))
	}
	if string(kinds) != "ead"+"x" {
		t.Fatalf("packets = %v, want error event, ack, disconnect, close", raws(got))
	}
	if got[0].Obj(t, 0)["code"] != CodeRateLimit || got[1].ID != 99 || got[1].Obj(t, 0)["code"] != CodeRateLimit {
		t.Errorf("flood answer = %v", raws(got))
	}
	f.wait(c.SID(), "disconnected")
	if r := f.reason(c.SID()); r == "" {
		t.Error("no disconnect reason recorded")
	}
	if f.lim.Users() != 0 || f.lim.UserSockets("u1") != 0 {
		t.Errorf("after flood: users %d, connections %d", f.lim.Users(), f.lim.UserSockets("u1"))
	}
	assertQuota(t, f.quota("u1", 0))
	if len(f.nsp.Adapter().SocketRooms(c.SID())) != 0 {
		t.Errorf("disconnected socket still in rooms %v", f.nsp.Adapter().SocketRooms(c.SID()))
	}
}

func TestFloodCounterResetsOnAllowedEvent(t *testing.T) {
	// Denials must be consecutive: an unrelated user is never disconnected,
	// and a socket under the threshold stays connected.
	f := newFixture(t, ratelimit.Config{EventsPerMinute: 1, EventBurst: 1, FloodMaxDenials: 2})
	c := f.connect("u1", "user", "free")
	evs, ack := c.Call("ping")
	okReply(t, evs, ack, "pong")
	evs, ack = c.Call("ping")
	errReply(t, evs, ack, CodeRateLimit)
	u2 := f.connect("u2", "user", "free")
	evs, ack = u2.Call("ping")
	okReply(t, evs, ack, "pong")
	if f.lim.UserSockets("u1") != 1 || f.lim.UserSockets("u2") != 1 {
		t.Errorf("connections u1 %d u2 %d", f.lim.UserSockets("u1"), f.lim.UserSockets("u2"))
	}
}

func TestConnectionCountingAndQuotaRelease(t *testing.T) {
	f := newFixture(t, ratelimit.Config{MaxSubscriptions: 2})
	if f.lim.Users() != 0 {
		t.Fatalf("Users() = %d before any connection", f.lim.Users())
	}
	a := f.connect("u1", "user", "free")
	b := f.connect("u1", "user", "free")
	u2 := f.connect("u2", "user", "free")
	if f.lim.Users() != 2 || f.lim.UserSockets("u1") != 2 || f.lim.UserSockets("u2") != 1 || f.lim.UserSockets("nobody") != 0 {
		t.Fatalf("users %d, u1 %d, u2 %d", f.lim.Users(), f.lim.UserSockets("u1"), f.lim.UserSockets("u2"))
	}
	evs, ack := a.Call("subscribe:portfolio")
	okReply(t, evs, ack, "subscribed:portfolio")
	evs, ack = a.Call("subscribe:watchlist", symbolsJSON("AAPL"))
	okReply(t, evs, ack, "subscribed:watchlist")
	evs, ack = b.Call("subscribe:trades")
	errReply(t, evs, ack, CodeSubscriptionLimit)

	// Closing a releases its quota: b can now take two rooms.
	a.Close()
	f.wait(a.SID(), "disconnected")
	if f.lim.Users() != 2 || f.lim.UserSockets("u1") != 1 {
		t.Errorf("after one close: users %d, u1 %d", f.lim.Users(), f.lim.UserSockets("u1"))
	}
	qa := f.quota("u1", 0)
	assertQuota(t, qa)
	if granted, d := qa.AcquireSubscriptions(t.Context(), []string{"x"}); len(granted) != 0 || d.Allowed {
		t.Errorf("closed quota granted %v", granted)
	}
	evs, ack = b.Call("subscribe:trades")
	okReply(t, evs, ack, "subscribed:trades")
	evs, ack = b.Call("subscribe:watchlist", symbolsJSON("MSFT"))
	okReply(t, evs, ack, "subscribed:watchlist")

	b.Close()
	f.wait(b.SID(), "disconnected")
	if f.lim.Users() != 1 || f.lim.UserSockets("u1") != 0 {
		t.Errorf("after u1 left: users %d, u1 %d", f.lim.Users(), f.lim.UserSockets("u1"))
	}
	// A namespace disconnect from the client counts too.
	u2.Send("41")
	f.wait(u2.SID(), "disconnected")
	if f.lim.Users() != 0 {
		t.Errorf("users %d after everyone left", f.lim.Users())
	}
	if r := f.reason(u2.SID()); r != "client namespace disconnect" {
		t.Errorf("reason %q", r)
	}
	// u1's quota is entirely free again.
	c := f.connect("u1", "user", "free")
	evs, ack = c.Call("subscribe:watchlist", symbolsJSON("A", "B"))
	okReply(t, evs, ack, "subscribed:watchlist")
}

func TestUnauthenticatedSocketIsRefused(t *testing.T) {
	f := newFixture(t, ratelimit.Config{})
	c, p := sioclient.DialStream(t, f.url, map[string]any{"anonymous": true})
	if p.Kind != sioclient.KindConnect {
		t.Fatalf("connect: %q", p.Raw)
	}
	got := c.WaitEnd()
	if len(got) != 3 || got[0].Name != "error" || got[1].Kind != sioclient.KindDisconnect || got[2].Kind != sioclient.KindClosed {
		t.Fatalf("packets = %v, want error event, disconnect, close", raws(got))
	}
	ev := got[0].Obj(t, 0)
	if ev["code"] != CodeUnauthorized || ev["message"] != "not authenticated" {
		t.Errorf("error = %v", ev)
	}
	f.wait(c.SID(), "attached")
	if f.lim.Users() != 0 {
		t.Errorf("Users() = %d", f.lim.Users())
	}
}

func TestQuotaFailureDisconnects(t *testing.T) {
	// An empty user id makes ratelimit.NewSocket fail: the socket is dropped.
	f := newFixture(t, ratelimit.Config{})
	c, p := sioclient.DialStream(t, f.url, map[string]any{"userId": ""})
	if p.Kind != sioclient.KindConnect {
		t.Fatalf("connect: %q", p.Raw)
	}
	got := c.WaitEnd()
	if len(got) != 2 || got[0].Kind != sioclient.KindDisconnect || got[1].Kind != sioclient.KindClosed {
		t.Fatalf("packets = %v, want disconnect, close", raws(got))
	}
	f.wait(c.SID(), "attached")
	if f.lim.Users() != 0 {
		t.Errorf("Users() = %d", f.lim.Users())
	}
}

func TestIdentityOfUnauthenticated(t *testing.T) {
	f := newFixture(t, ratelimit.Config{})
	c, _ := sioclient.DialStream(t, f.url, map[string]any{"anonymous": true})
	f.wait(c.SID(), "attached")
	s := f.socket(c.SID())
	if IdentityOf(s) != nil {
		t.Errorf("IdentityOf(anonymous) = %+v", IdentityOf(s))
	}
}

// A socket whose transport closed while Attach ran keeps no count and no
// open quota, whichever of Attach and the disconnect hook saw it first.
func TestAttachAfterTheSocketClosedReleasesAtOnce(t *testing.T) {
	f := newFixture(t, ratelimit.Config{})
	c := f.connect("u1", "user", "free")
	s := f.socket(c.SID())
	c.Close()
	f.wait(c.SID(), "disconnected")
	if n := f.lim.UserSockets("u1"); n != 0 {
		t.Fatalf("connections after the disconnect: %d", n)
	}
	f.h.Attach(s) // as if the close had raced this Attach
	if n := f.lim.UserSockets("u1"); n != 0 || f.lim.Users() != 0 {
		t.Fatalf("a late Attach left %d connections, %d users", n, f.lim.Users())
	}
	if g, d := f.quota("u1", 1).AcquireSubscriptions(t.Context(), []string{"r"}); len(g) != 0 || d.Allowed {
		t.Fatalf("the late Attach's quota is still open: granted %v", g)
	}
	// The hook running again (it may run after Attach) changes nothing.
	f.h.onDisconnect(s, "transport close")
	if n := f.lim.UserSockets("u1"); n != 0 {
		t.Fatalf("connections after a second release: %d", n)
	}
}
