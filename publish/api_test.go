package publish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/tradewire/tradewire/trading"
)

var errBroadcast = errors.New("adapter unavailable")

var isoRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

const (
	validEvent = `{"type":"market.status","status":{"open":true}}`
	validEmit  = `{"rooms":["user:nobody"],"event":"x"}`
)

// recorderServer serves the API on a recorder on a free port.
func recorderServer(t *testing.T, keys ...string) (*recorder, *Handler, string) {
	t.Helper()
	rec := &recorder{}
	h := NewHandler(rec, keys, quietLogger())
	mux := http.NewServeMux()
	h.Mount(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return rec, h, srv.URL
}

func TestAuthorization(t *testing.T) {
	rec, _, url := recorderServer(t, testKey, "second-key", "")
	for _, c := range []struct {
		name    string
		headers []string
		ok      bool
	}{
		{"no credentials", nil, false},
		{"bearer", []string{"Authorization", "Bearer " + testKey}, true},
		{"bearer, lower-case scheme", []string{"Authorization", "bearer " + testKey}, true},
		{"bearer, upper-case scheme and spaces", []string{"Authorization", "BEARER   " + testKey + "  "}, true},
		{"bearer, second key", []string{"Authorization", "Bearer second-key"}, true},
		{"bearer, wrong key", []string{"Authorization", "Bearer wrong"}, false},
		{"bearer, key prefix", []string{"Authorization", "Bearer " + testKey[:8]}, false},
		{"bearer, key plus suffix", []string{"Authorization", "Bearer " + testKey + "x"}, false},
		{"bearer, case-changed key", []string{"Authorization", "Bearer " + strings.ToUpper(testKey)}, false},
		{"bearer without key", []string{"Authorization", "Bearer"}, false},
		{"bearer with blank key", []string{"Authorization", "Bearer    "}, false},
		{"empty key configured is not a key", []string{"Authorization", "Bearer  "}, false},
		{"basic auth", []string{"Authorization", "Basic dGVzdDp0ZXN0"}, false},
		{"key without scheme", []string{"Authorization", testKey}, false},
		{"x-api-key", []string{"X-API-Key", testKey}, true},
		{"x-api-key, header name case", []string{"x-api-key", "second-key"}, true},
		{"x-api-key, wrong", []string{"X-API-Key", "nope"}, false},
		{"x-api-key, empty", []string{"X-API-Key", ""}, false},
		{"wrong bearer wins over a good x-api-key", []string{"Authorization", "Bearer wrong", "X-API-Key", testKey}, false},
		{"another scheme falls back to x-api-key", []string{"Authorization", "Token abc", "X-API-Key", testKey}, true},
	} {
		for _, ep := range []struct{ path, body string }{{"/api/v1/events", validEvent}, {"/api/v1/emit", validEmit}} {
			st, hdr, r, raw := postTo(t, url+ep.path, ep.body, c.headers...)
			if c.ok {
				if st != http.StatusAccepted || r.Accepted != 1 || r.Error != nil {
					t.Errorf("%s %s: %d %s, want 202", c.name, ep.path, st, raw)
				}
				continue
			}
			if st != http.StatusUnauthorized || r.Error == nil || r.Error.Code != "UNAUTHORIZED" || r.Error.Message == "" || r.Error.Index != nil {
				t.Errorf("%s %s: %d %s, want 401 UNAUTHORIZED", c.name, ep.path, st, raw)
			}
			if got := hdr.Get("WWW-Authenticate"); got != `Bearer realm="tradewire"` {
				t.Errorf("%s: WWW-Authenticate %q", c.name, got)
			}
			if strings.Contains(raw, testKey) {
				t.Errorf("%s: response echoes the key", c.name)
			}
		}
	}
	// Refused requests never broadcast; accepted ones did.
	n := 0
	for _, b := range rec.take() {
		if b.event == "market:status" || b.event == "x" {
			n++
		}
	}
	if n != 14 { // 7 accepted cases, two endpoints
		t.Errorf("%d broadcasts, want 14", n)
	}

	// The key is checked before the body is read: an oversized body without
	// a key is a 401, not a 413.
	st, _, _, _ := postTo(t, url+"/api/v1/events", strings.Repeat(" ", MaxBodyBytes+10))
	if st != http.StatusUnauthorized {
		t.Errorf("oversized body without key: %d", st)
	}
}

func TestNewHandlerDefaultLogger(t *testing.T) {
	if h := NewHandler(&recorder{}, []string{testKey}, nil); h.log == nil {
		t.Error("no default logger")
	}
}

func TestNoKeysRefusesEverything(t *testing.T) {
	for _, keys := range [][]string{nil, {""}} {
		rec, _, url := recorderServer(t, keys...)
		for _, hdr := range [][]string{nil, bearer(""), bearer(" "), {"X-API-Key", ""}, bearer(testKey)} {
			if st, _, _, raw := postTo(t, url+"/api/v1/events", validEvent, hdr...); st != http.StatusUnauthorized {
				t.Errorf("keys %q, headers %q: %d %s", keys, hdr, st, raw)
			}
		}
		if len(rec.take()) != 0 {
			t.Error("refused request broadcast")
		}
	}
}

func intp(i int) *int { return &i }

func TestBadPayloads(t *testing.T) {
	rec, _, url := recorderServer(t, testKey)
	batch := func(items ...string) string { return "[" + strings.Join(items, ",") + "]" }
	many := func(n int, item string) string {
		return batch(strings.Split(strings.Repeat(item+"\x00", n-1)+item, "\x00")...)
	}
	type tc struct {
		body  string
		code  string
		index *int
		msg   string
	}
	common := []tc{
		{"", "INVALID_PAYLOAD", nil, "empty body"},
		{"  \n\t ", "INVALID_PAYLOAD", nil, "empty body"},
		{"null", "INVALID_PAYLOAD", nil, ""},
		{"123", "INVALID_PAYLOAD", nil, "JSON object or an array"},
		{`"event"`, "INVALID_PAYLOAD", nil, "JSON object or an array"},
		{"true", "INVALID_PAYLOAD", nil, "JSON object or an array"},
		{"[]", "INVALID_PAYLOAD", nil, "empty batch"},
		{`{"type":`, "INVALID_PAYLOAD", nil, "not valid JSON"},
		{`{"a":1} {"b":2}`, "INVALID_PAYLOAD", nil, "not valid JSON"},
		{`[{"a":1}] x`, "INVALID_PAYLOAD", nil, "JSON object or an array"},
		{`[{"a":1},]`, "INVALID_PAYLOAD", nil, "JSON object or an array"},
		{"\xff\xfe", "INVALID_PAYLOAD", nil, ""},
		{`[5]`, "INVALID_EVENT", intp(0), ""},
		{`["x"]`, "INVALID_EVENT", intp(0), ""},
		{`[[]]`, "INVALID_EVENT", intp(0), ""},
	}
	for _, ep := range []struct {
		path, valid string
		cases       []tc
	}{
		{"/api/v1/events", validEvent, append(common,
			tc{many(MaxBatch+1, validEvent), "INVALID_PAYLOAD", nil, "batch over 1000"},
			tc{`{}`, "INVALID_EVENT", intp(0), "type is required"},
			tc{batch(validEvent, validEvent, "null"), "INVALID_EVENT", intp(2), "type is required"},
			tc{batch(validEvent, `{"type":"market.status","status":{},"extra":1}`), "INVALID_EVENT", intp(1), `unknown field "extra"`},
			tc{`{"type":"market.status","status":{},"Status2":{}}`, "INVALID_EVENT", intp(0), "unknown field"},
			tc{`{"type":"notification","userId":"u1","notification":{"title":"a","message":"b","icon":"x"}}`, "INVALID_EVENT", intp(0), `unknown field "icon"`},
			tc{`{"type":"market.status","status":{},"userId":5}`, "INVALID_EVENT", intp(0), "userId"},
			tc{batch(validEvent, validEvent, `{"type":"trade.executed","userId":"u1","trade":{"symbol":"AAPL","side":"hold","quantity":1,"price":1}}`), "INVALID_EVENT", intp(2), "trade.side"},
			tc{batch(validEvent, `{"type":"quote.update","symbol":"portfolio:u2","quote":{}}`, validEvent), "INVALID_EVENT", intp(1), "symbol"},
			tc{`{"type":"teleport"}`, "INVALID_EVENT", intp(0), "unknown type"},
		)},
		{"/api/v1/emit", validEmit, append(common,
			tc{many(MaxBatch+1, validEmit), "INVALID_PAYLOAD", nil, "batch over 1000"},
			tc{`{"rooms":["a"]}`, "INVALID_EVENT", intp(0), "event must be 1-128 characters"},
			tc{`{"event":"` + strings.Repeat("e", 129) + `"}`, "INVALID_EVENT", intp(0), "event must be 1-128 characters"},
			tc{`{"event":"connect"}`, "INVALID_EVENT", intp(0), "reserved"},
			tc{`{"event":"connect_error"}`, "INVALID_EVENT", intp(0), "reserved"},
			tc{`{"event":"disconnect"}`, "INVALID_EVENT", intp(0), "reserved"},
			tc{`{"event":"disconnecting"}`, "INVALID_EVENT", intp(0), "reserved"},
			tc{`{"event":"newListener"}`, "INVALID_EVENT", intp(0), "reserved"},
			tc{`{"event":"removeListener"}`, "INVALID_EVENT", intp(0), "reserved"},
			tc{`{"event":"x","rooms":[""]}`, "INVALID_EVENT", intp(0), "room names must be 1-256 characters"},
			tc{`{"event":"x","rooms":["` + strings.Repeat("r", 257) + `"]}`, "INVALID_EVENT", intp(0), "room names"},
			tc{batch(validEmit, `{"event":"x","except":[""]}`), "INVALID_EVENT", intp(1), "room names"},
			tc{`{"event":"x","room":"user:u1"}`, "INVALID_EVENT", intp(0), `unknown field "room"`},
			tc{`{"event":"x","rooms":"user:u1"}`, "INVALID_EVENT", intp(0), "rooms"},
			tc{`{"event":7}`, "INVALID_EVENT", intp(0), "event"},
			tc{batch(validEmit, validEmit, validEmit, `{}`), "INVALID_EVENT", intp(3), "event must be"},
		)},
	} {
		for _, c := range ep.cases {
			st, hdr, r, raw := postTo(t, url+ep.path, c.body, authz...)
			short := c.body
			if len(short) > 60 {
				short = short[:60] + "..."
			}
			if st != http.StatusBadRequest || r.Error == nil {
				t.Errorf("%s %q: %d %.200s, want 400", ep.path, short, st, raw)
				continue
			}
			if hdr.Get("Content-Type") != "application/json" {
				t.Errorf("%s %q: content type %q", ep.path, short, hdr.Get("Content-Type"))
			}
			if r.Error.Code != c.code || !reflect.DeepEqual(r.Error.Index, c.index) || !strings.Contains(r.Error.Message, c.msg) || r.Error.Message == "" {
				idx := "none"
				if r.Error.Index != nil {
					idx = fmt.Sprint(*r.Error.Index)
				}
				t.Errorf("%s %q: error %s %q index %s; want %s containing %q index %v", ep.path, short, r.Error.Code, r.Error.Message, idx, c.code, c.msg, c.index)
			}
			if r.Accepted != 0 {
				t.Errorf("%s %q: accepted %d", ep.path, short, r.Accepted)
			}
		}
		// A refused batch delivers nothing, not even its valid items.
		if calls := rec.take(); len(calls) != 0 {
			t.Errorf("%s: refused requests broadcast %d events", ep.path, len(calls))
		}
		// MaxBatch items are fine.
		st, _, r, raw := postTo(t, url+ep.path, many(MaxBatch, ep.valid), authz...)
		if st != http.StatusAccepted || r.Accepted != MaxBatch {
			t.Errorf("%s: batch of %d: %d %.200s", ep.path, MaxBatch, st, raw)
		}
		if n := len(rec.take()); n != MaxBatch {
			t.Errorf("%s: %d broadcasts, want %d", ep.path, n, MaxBatch)
		}
	}
}

func TestBodyTooLarge(t *testing.T) {
	rec, _, url := recorderServer(t, testKey)
	for _, ep := range []struct{ path, valid string }{{"/api/v1/events", validEvent}, {"/api/v1/emit", validEmit}} {
		// Exactly MaxBodyBytes (padded with whitespace) is accepted.
		body := ep.valid + strings.Repeat(" ", MaxBodyBytes-len(ep.valid))
		if st, _, r, raw := postTo(t, url+ep.path, body, authz...); st != http.StatusAccepted || r.Accepted != 1 {
			t.Errorf("%s: %d-byte body: %d %s", ep.path, len(body), st, raw)
		}
		for _, n := range []int{MaxBodyBytes + 1, 3 * MaxBodyBytes} {
			body := ep.valid + strings.Repeat(" ", n-len(ep.valid))
			st, _, r, raw := postTo(t, url+ep.path, body, authz...)
			if st != http.StatusRequestEntityTooLarge || r.Error == nil || r.Error.Code != "PAYLOAD_TOO_LARGE" || r.Error.Index != nil {
				t.Errorf("%s: %d-byte body: %d %s, want 413", ep.path, n, st, raw)
			}
		}
	}
	if n := len(rec.take()); n != 2 {
		t.Errorf("%d broadcasts, want 2 (the two accepted bodies)", n)
	}
}

func TestRoutesAndMethods(t *testing.T) {
	_, _, url := recorderServer(t, testKey)
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/api/v1/events", http.StatusMethodNotAllowed},
		{http.MethodPut, "/api/v1/emit", http.StatusMethodNotAllowed},
		{http.MethodPost, "/api/v1/other", http.StatusNotFound},
		{http.MethodPost, "/api/v2/events", http.StatusNotFound},
	} {
		req, _ := http.NewRequest(c.method, url+c.path, strings.NewReader(validEvent))
		req.Header.Set("Authorization", "Bearer "+testKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.want)
		}
	}
}

func TestAcceptedResponse(t *testing.T) {
	rec, _, url := recorderServer(t, testKey)
	st, hdr, _, raw := postTo(t, url+"/api/v1/events", "[\n"+validEvent+","+validEvent+","+validEvent+"]\n", authz...)
	if st != http.StatusAccepted || strings.TrimSpace(raw) != `{"accepted":3,"results":[{"index":0,"status":"accepted"},{"index":1,"status":"accepted"},{"index":2,"status":"accepted"}]}` || hdr.Get("Content-Type") != "application/json" {
		t.Errorf("batch: %d %q %q", st, raw, hdr.Get("Content-Type"))
	}
	calls := rec.take()
	if len(calls) != 3 {
		t.Fatalf("%d broadcasts", len(calls))
	}
	for _, c := range calls {
		if c.rooms != nil || c.except != nil || c.event != "market:status" {
			t.Errorf("broadcast %+v", c)
		}
	}
}

func TestEmitForwardsDataVerbatim(t *testing.T) {
	rec, _, url := recorderServer(t, testKey)
	body := `[{"rooms":["user:u1","trades:u1"],"except":["user:u2"],"event":"custom","data":{"b":1, "a":[1.50,"é"]}},
	          {"event":"nodata"},
	          {"event":"nulldata","data":null},
	          {"rooms":[],"event":"error","data":"e"}]`
	if st, _, r, raw := postTo(t, url+"/api/v1/emit", body, authz...); st != http.StatusAccepted || r.Accepted != 4 {
		t.Fatalf("%d %s", st, raw)
	}
	calls := rec.take()
	if len(calls) != 4 {
		t.Fatalf("%d broadcasts", len(calls))
	}
	c := calls[0]
	if !reflect.DeepEqual(c.rooms, []string{"user:u1", "trades:u1"}) || !reflect.DeepEqual(c.except, []string{"user:u2"}) || c.event != "custom" {
		t.Errorf("first emit %+v", c)
	}
	if raw, ok := c.data.(json.RawMessage); !ok || string(raw) != `{"b":1, "a":[1.50,"é"]}` {
		t.Errorf("data %#v, want the raw JSON unchanged", c.data)
	}
	if calls[1].data != nil || calls[1].rooms != nil || calls[1].event != "nodata" {
		t.Errorf("emit without data: %+v", calls[1])
	}
	if raw, ok := calls[2].data.(json.RawMessage); !ok || string(raw) != "null" {
		t.Errorf("emit with null data: %#v", calls[2].data)
	}
	if calls[3].event != "error" || len(calls[3].rooms) != 0 {
		t.Errorf("error emit: %+v", calls[3])
	}
}

func TestBroadcastFailure(t *testing.T) {
	rec, _, url := recorderServer(t, testKey)
	for _, ep := range []struct{ path, valid string }{{"/api/v1/events", validEvent}, {"/api/v1/emit", validEmit}} {
		rec.take()
		rec.failAt = 2
		st, _, r, raw := postTo(t, url+ep.path, "["+ep.valid+","+ep.valid+","+ep.valid+"]", authz...)
		want := []ItemResult{{0, StatusAccepted, ""}, {1, StatusRejected, "PUBLISH_FAILED"}, {2, StatusRejected, "NOT_ATTEMPTED"}}
		if st != http.StatusMultiStatus || r.Accepted != 1 || !reflect.DeepEqual(r.Results, want) {
			t.Errorf("%s: %d %s, want 207 with %v", ep.path, st, raw, want)
		}
		if strings.Contains(raw, errBroadcast.Error()) {
			t.Errorf("%s: internal error leaked: %s", ep.path, raw)
		}
		// Delivery stops at the failed item.
		if n := len(rec.take()); n != 2 {
			t.Errorf("%s: %d broadcasts attempted, want 2", ep.path, n)
		}
		// The first item fails: 503, nothing delivered.
		rec.failAt = 1
		st, _, r, raw = postTo(t, url+ep.path, "["+ep.valid+","+ep.valid+"]", authz...)
		if st != http.StatusServiceUnavailable || r.Error == nil || r.Error.Code != "PUBLISH_FAILED" || r.Error.Index == nil || *r.Error.Index != 0 || len(r.Results) != 2 {
			t.Errorf("%s: %d %s, want 503 PUBLISH_FAILED at index 0", ep.path, st, raw)
		}
		rec.take()
	}
}

// onceBroadcaster is a OnceBroadcaster remembering ids in memory, as the
// gateway's Redis marks do (internal/gateway and tests/fault test those).
type onceBroadcaster struct {
	nspBroadcaster
	mu    sync.Mutex
	seen  map[string]bool
	calls []string
}

func (d *onceBroadcaster) BroadcastOnce(ctx context.Context, id string, rooms, except []string, event string, data any) error {
	d.mu.Lock()
	d.calls = append(d.calls, id)
	dup := d.seen[id]
	d.seen[id] = true
	d.mu.Unlock()
	if dup {
		return fmt.Errorf("%q: %w", id, trading.ErrDuplicate)
	}
	return d.Broadcast(ctx, rooms, except, event, data)
}

func TestDedupPerItem(t *testing.T) {
	g := newGateway(t)
	d := &onceBroadcaster{nspBroadcaster: g.api.b.(nspBroadcaster), seen: map[string]bool{}}
	g.api.b = d
	u1 := g.connect("u1")
	note := func(id, msg string) string {
		return fmt.Sprintf(`{"type":"notification","id":%q,"userId":"u1","notification":{"title":"t","message":%q}}`, id, msg)
	}
	post := func(path, body string, wantStatus int, want ...string) Response {
		t.Helper()
		st, _, r, raw := g.post(path, body, authz...)
		var got []string
		for _, res := range r.Results {
			got = append(got, res.Status+res.Code)
		}
		if st != wantStatus || !reflect.DeepEqual(got, want) {
			t.Fatalf("POST %s: %d %s, want %d %v", body, st, raw, wantStatus, want)
		}
		return r
	}
	post("/api/v1/events", note("n1", "first"), 202, "accepted")
	if r := post("/api/v1/events", note("n1", "again"), 200, "duplicate"); !r.Duplicate || r.Accepted != 0 || r.Duplicates != 1 {
		t.Errorf("duplicate answer %+v", r)
	}
	// dup inside a batch; no id is never deduped
	post("/api/v1/events", "["+note("n2", "a")+","+note("n2", "b")+","+note("", "c")+"]", 207, "accepted", "duplicate", "accepted")
	post("/api/v1/events", note("", "c"), 202, "accepted")
	// A refused batch does not consume its ids.
	if st, _, _, _ := g.post("/api/v1/events", "["+note("n3", "x")+`,{"type":"nope"}]`, authz...); st != http.StatusBadRequest {
		t.Fatalf("invalid batch: %d", st)
	}
	post("/api/v1/events", note("n3", "x"), 202, "accepted")
	// Raw emits are deduplicated by their optional id.
	for i, want := range []int{202, 200} {
		_ = i
		st, _, _, _ := g.post("/api/v1/emit", `{"id":"raw1","rooms":["user:u1"],"event":"raw"}`, authz...)
		if st != want {
			t.Fatalf("emit: %d, want %d", st, want)
		}
	}
	if st, _, _, _ := g.post("/api/v1/emit", `{"rooms":["user:u1"],"event":"raw"}`, authz...); st != 202 {
		t.Fatal("emit without id refused")
	}
	got := g.barrier(u1)[0]
	var msgs []string
	for _, p := range got {
		if p.Name == "notification" {
			var m struct {
				EventID      string `json:"eventId"`
				Notification struct{ Message string }
			}
			_ = json.Unmarshal(p.Args[0], &m)
			msgs = append(msgs, m.EventID+":"+m.Notification.Message)
		}
	}
	if want := []string{"n1:first", "n2:a", ":c", ":c", "n3:x"}; !reflect.DeepEqual(msgs, want) {
		t.Errorf("notifications %v, want %v", msgs, want)
	}
	assertNames(t, "u1", got, "notification", "notification", "notification", "notification", "notification", "raw", "raw")
	if want := []string{"n1", "n1", "n2", "n2", "n3", "raw1", "raw1"}; !reflect.DeepEqual(d.calls, want) {
		t.Errorf("BroadcastOnce called with %v, want %v", d.calls, want)
	}
}

func TestNoDedupWithoutHook(t *testing.T) {
	rec, _, url := recorderServer(t, testKey)
	body := `{"type":"market.status","id":"m1","status":{"open":true}}`
	for range 2 {
		if st, _, r, _ := postTo(t, url+"/api/v1/events", body, authz...); st != http.StatusAccepted || r.Accepted != 1 {
			t.Fatalf("%d accepted %d", st, r.Accepted)
		}
	}
	calls := rec.take()
	if len(calls) != 2 {
		t.Fatalf("%d broadcasts, want 2", len(calls))
	}
	if m := calls[0].data.(map[string]any); m["eventId"] != "m1" {
		t.Errorf("eventId = %v", m["eventId"])
	}
}

func TestEventsReachExactlyTheRightSockets(t *testing.T) {
	g := newGateway(t)
	u1a := g.connect("u1", subTrades, subPortfolio, subWatch("AAPL"))
	u1b := g.connect("u1")
	u2 := g.connect("u2", subTrades, subPortfolio, subWatch("MSFT"))
	u3 := g.connect("u3", subWatch("aapl", "msft"))
	none := g.connect("u4")

	for _, ev := range []string{
		`{"type":"trade.executed","id":"e1","userId":"u1","trade":{"id":"t1","symbol":"AAPL","side":"buy","quantity":10,"price":187.12}}`,
		`{"type":"trade.failed","userId":"u2","error":{"message":"Insufficient buying power"}}`,
		`{"type":"portfolio.updated","userId":"u1","portfolio":{"equity":1000}}`,
		`{"type":"position.closed","userId":"u2","position":{"symbol":"MSFT"}}`,
		`{"type":"notification","userId":"u1","notification":{"title":"Hi","message":"to every socket of u1"}}`,
		`{"type":"quote.update","symbol":"aapl","quote":{"price":187.5}}`,
		`{"type":"quote.update","symbol":"MSFT","quote":{"price":400}}`,
		`{"type":"quote.update","symbol":"NVDA","quote":{"price":900}}`,
		`{"type":"trade.executed","userId":"u9","trade":{"symbol":"AAPL","side":"sell","quantity":1,"price":1}}`,
		`{"type":"market.status","status":{"open":true}}`,
	} {
		if st, _, r, raw := g.post("/api/v1/events", ev, authz...); st != http.StatusAccepted || r.Accepted != 1 {
			t.Fatalf("POST %s: %d %s", ev, st, raw)
		}
	}
	got := g.barrier(u1a, u1b, u2, u3, none)
	assertNames(t, "u1 (subscribed)", got[0], "trade:executed", "portfolio:updated", "notification", "quote:update", "market:status")
	assertNames(t, "u1 (second socket)", got[1], "notification", "market:status")
	assertNames(t, "u2", got[2], "trade:failed", "position:closed", "quote:update", "market:status")
	assertNames(t, "u3", got[3], "quote:update", "quote:update", "market:status")
	assertNames(t, "u4", got[4], "market:status")

	// The payloads are the seed's.
	te := got[0][0]
	if len(te.Args) != 1 {
		t.Fatalf("trade:executed args %q", te.Raw)
	}
	var p map[string]any
	_ = json.Unmarshal(te.Args[0], &p)
	n, _ := p["notification"].(map[string]any)
	ts, _ := p["timestamp"].(string)
	if p["userId"] != "u1" || p["eventId"] != "e1" || !isoRE.MatchString(ts) ||
		n["title"] != "Trade Executed: AAPL" || n["message"] != "BUY 10 AAPL @ $187.12" || n["type"] != "success" {
		t.Errorf("trade:executed payload %s", te.Args[0])
	}
	if tr, _ := p["trade"].(map[string]any); tr["id"] != "t1" || tr["price"] != 187.12 {
		t.Errorf("trade %v", p["trade"])
	}
	for i, want := range []string{"AAPL", "MSFT"} {
		var q map[string]any
		_ = json.Unmarshal(got[3][i].Args[0], &q)
		if q["symbol"] != want {
			t.Errorf("u3 quote %d: %s", i, got[3][i].Args[0])
		}
	}
}

func TestEmitRoomsAndExcept(t *testing.T) {
	g := newGateway(t)
	u1 := g.connect("u1", subWatch("AAPL"))
	u2 := g.connect("u2", subWatch("AAPL"))
	u3 := g.connect("u3")
	for _, body := range []string{
		`{"rooms":["watchlist:AAPL"],"except":["user:u2"],"event":"promo","data":{"x":1}}`,
		`{"rooms":[],"event":"all"}`,
		`{"event":"all-no-rooms-field","data":"s"}`,
		`{"rooms":["user:u3"],"event":"direct","data":"hello"}`,
		`{"except":["watchlist:AAPL"],"event":"not-watchers"}`,
		`{"rooms":["user:u1","user:u2"],"event":"two","data":[1,2]}`,
		`{"rooms":["user:u1","watchlist:AAPL"],"event":"once"}`,
		`{"rooms":["` + u3.SID() + `"],"event":"by-socket-id"}`,
		`{"rooms":["user:u2"],"except":["user:u2"],"event":"nobody"}`,
		`[{"rooms":["user:u1"],"event":"b1"},{"rooms":["user:u1"],"event":"b2","data":{"n":2}}]`,
	} {
		if st, _, _, raw := g.post("/api/v1/emit", body, authz...); st != http.StatusAccepted {
			t.Fatalf("emit %s: %d %s", body, st, raw)
		}
	}
	got := g.barrier(u1, u2, u3)
	assertNames(t, "u1", got[0], "promo", "all", "all-no-rooms-field", "two", "once", "b1", "b2")
	assertNames(t, "u2", got[1], "all", "all-no-rooms-field", "two", "once")
	assertNames(t, "u3", got[2], "all", "all-no-rooms-field", "direct", "not-watchers", "by-socket-id")

	wantArgs := map[string]string{
		"promo": `[{"x":1}]`, "all": `[]`, "all-no-rooms-field": `["s"]`, "two": `[[1,2]]`, "b1": `[]`, "b2": `[{"n":2}]`,
		"direct": `["hello"]`, "not-watchers": `[]`,
	}
	for _, ps := range got {
		for _, p := range ps {
			want, ok := wantArgs[p.Name]
			if !ok {
				continue
			}
			b, _ := json.Marshal(p.Args)
			if p.Args == nil {
				b = []byte("[]")
			}
			if string(b) != want {
				t.Errorf("%s args %s, want %s", p.Name, b, want)
			}
		}
	}
}

func TestKeyScopes(t *testing.T) {
	_, h, url := recorderServer(t, "reader-key-0123456789:read", "publisher-key-0123456789:publish", "both-key-0123456789")
	for key, want := range map[string]int{"reader-key-0123456789": 403, "publisher-key-0123456789": 202, "both-key-0123456789": 202, "reader-key-0123456789:read": 401} {
		req, _ := http.NewRequest(http.MethodPost, url+"/api/v1/events", strings.NewReader(validEvent))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want && !(want == 202 && resp.StatusCode == 200) {
			t.Errorf("publish with %s: %d, want %d", key, resp.StatusCode, want)
		}
	}
	for key, want := range map[string][2]bool{"reader-key-0123456789": {true, true}, "publisher-key-0123456789": {true, false}, "nope": {false, false}} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("X-API-Key", key)
		if known, ok := h.Allowed(req, ScopeRead); known != want[0] || ok != want[1] {
			t.Errorf("read with %s: known %v ok %v, want %v", key, known, ok, want)
		}
	}
	if s, sc := ParseKey("k:publish"); s != "k" || sc != ScopePublish {
		t.Fatal("ParseKey")
	}
}
