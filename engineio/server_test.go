package engineio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tradewire/tradewire/internal/testutil/poll"
	"github.com/tradewire/tradewire/transport/websocket"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestNewServerDefaults(t *testing.T) {
	o := NewServer(Options{}).Options()
	if o.PingInterval != 25*time.Second || o.PingTimeout != 20*time.Second || o.UpgradeTimeout != 10*time.Second ||
		o.MaxPayload != 1_000_000 || o.MaxBufferedBytes != 4<<20 || o.Logger == nil {
		t.Fatalf("defaults %+v", o)
	}
}

func TestHandshakePolling(t *testing.T) {
	obs := newCountingObserver()
	h := newHarness(t, Options{Observer: obs})
	r := h.do(http.MethodGet, "EIO=4&transport=polling&t=abc&extra=1", nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("status %d", r.status)
	}
	// The key order is fixed (wire-formats §1).
	re := regexp.MustCompile(`^0\{"sid":"([A-Za-z0-9_-]{20})","upgrades":\["websocket"\],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000\}$`)
	m := re.FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("open packet %q", r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "text/plain; charset=UTF-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Content-Length") != strconv.Itoa(len(r.body)) {
		t.Fatalf("headers %v", r.header)
	}
	// No CORS headers without an Origin.
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS header without Origin")
	}
	s, ok := h.srv.Session(m[1])
	if !ok || s.ID() != m[1] || s.Transport() != "polling" || h.srv.Count() != 1 || len(h.srv.Sessions()) != 1 {
		t.Fatal("session not registered")
	}
	hs := s.Handshake()
	if hs.Query.Get("extra") != "1" || !strings.Contains(hs.URL, "transport=polling") || hs.Secure || hs.XDomain ||
		hs.IP() != "127.0.0.1" || hs.Issued == 0 || hs.Header.Get("User-Agent") == "" {
		t.Fatalf("handshake %+v (ip %q)", hs, hs.IP())
	}
	if obs.get(func(o *countingObserver) int { return o.opened["polling"] }) != 1 {
		t.Fatal("SessionOpened not observed")
	}
	// Two handshakes, two sessions.
	if other := h.handshake(); other == m[1] {
		t.Fatal("same sid twice")
	}
}

func TestHandshakeValuesFromOptions(t *testing.T) {
	h := newHarness(t, Options{PingInterval: 300 * time.Millisecond, PingTimeout: 200 * time.Millisecond, MaxPayload: 1234, Transports: []string{"polling"}})
	r := h.do(http.MethodGet, "EIO=4&transport=polling", nil, nil)
	if !regexp.MustCompile(`^0\{"sid":"[A-Za-z0-9_-]{20}","upgrades":\[\],"pingInterval":300,"pingTimeout":200,"maxPayload":1234\}$`).MatchString(r.body) {
		t.Fatalf("open packet %q", r.body)
	}
	// websocket is not allowed: code 0.
	if r := h.do(http.MethodGet, "EIO=4&transport=websocket", nil, nil); r.status != 400 || r.body != `{"code":0,"message":"Transport unknown"}` {
		t.Fatalf("websocket refused: %d %s", r.status, r.body)
	}
}

func TestHTTPErrorTable(t *testing.T) {
	obs := newCountingObserver()
	h := newHarness(t, Options{Observer: obs})
	sid := h.handshake()
	wsHeaders := http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}
	tests := []struct {
		name   string
		method string
		query  string
		hdr    http.Header
		status int
		code   int
		msg    string
	}{
		{"EIO missing", "GET", "transport=polling", nil, 400, 5, "Unsupported protocol version"},
		{"EIO=3", "GET", "EIO=3&transport=polling", nil, 400, 5, "Unsupported protocol version"},
		{"EIO=abc", "GET", "EIO=abc&transport=polling", nil, 400, 5, "Unsupported protocol version"},
		{"transport missing", "GET", "EIO=4", nil, 400, 0, "Transport unknown"},
		{"transport unknown", "GET", "EIO=4&transport=flashsocket", nil, 400, 0, "Transport unknown"},
		{"unknown sid", "GET", "EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA", nil, 400, 1, "Session ID unknown"},
		{"unknown sid POST", "POST", "EIO=4&transport=polling&sid=nope", nil, 400, 1, "Session ID unknown"},
		{"unknown sid websocket", "GET", "EIO=4&transport=websocket&sid=nope", wsHeaders, 400, 1, "Session ID unknown"},
		{"handshake POST", "POST", "EIO=4&transport=polling", nil, 400, 2, "Bad handshake method"},
		{"handshake PUT", "PUT", "EIO=4&transport=polling", nil, 400, 2, "Bad handshake method"},
		{"websocket without upgrade", "GET", "EIO=4&transport=websocket", nil, 400, 3, "Bad request"},
		{"other method on a session", "PUT", "EIO=4&transport=polling&sid=" + sid, nil, 500, 3, "Bad request"},
		{"foreign origin", "GET", "EIO=4&transport=polling", http.Header{"Origin": {"https://evil.example"}}, 403, 4, "Forbidden"},
	}
	for _, tt := range tests {
		r := h.do(tt.method, tt.query, strings.NewReader(""), tt.hdr)
		want := `{"code":` + strconv.Itoa(tt.code) + `,"message":"` + tt.msg + `"}`
		if r.status != tt.status || r.body != want {
			t.Errorf("%s: %d %s, want %d %s", tt.name, r.status, r.body, tt.status, want)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", tt.name, ct)
		}
	}
	if n := obs.get(func(o *countingObserver) int { return o.rejected[5] }); n != 3 {
		t.Errorf("rejections with code 5 observed: %d", n)
	}
	// The session survived the PUT.
	if _, ok := h.srv.Session(sid); !ok {
		t.Fatal("session closed by an error on another request")
	}
}

func TestPollingGetHeldUntilData(t *testing.T) {
	h := newHarness(t, Options{})
	sid := h.handshake()
	s, _ := h.srv.Session(sid)
	if s.Writable() {
		t.Fatal("writable without a pending GET")
	}
	ch := h.asyncGet(sid)
	select {
	case r := <-ch:
		t.Fatalf("GET returned without data: %+v", r)
	case <-time.After(150 * time.Millisecond):
	}
	poll.Until(t, "GET pending", s.Writable)
	if err := s.Send(NewMessage([]byte("hello"), false), NewMessage([]byte{1, 2, 3}, true)); err != nil {
		t.Fatal(err)
	}
	r := wait(t, ch)
	if r.status != 200 || r.body != "4hello\x1ebAQID" {
		t.Fatalf("GET %d %q", r.status, r.body)
	}
	// Packets queued without a GET wait for the next one, all in one body.
	for _, m := range []string{"a", "b", "c"} {
		if err := s.Send(NewMessage([]byte(m), false)); err != nil {
			t.Fatal(err)
		}
	}
	if b := s.Buffered(); b != 3*3 {
		t.Fatalf("Buffered %d, want 9", b)
	}
	if r := h.get(sid); r.body != "4a\x1e4b\x1e4c" {
		t.Fatalf("GET %q", r.body)
	}
	if s.Buffered() != 0 {
		t.Fatal("buffer not emptied")
	}
}

func TestPollingPost(t *testing.T) {
	h := newHarness(t, Options{})
	sid := h.handshake()
	rec := h.rec(sid)
	r := h.post(sid, "4hello\x1ebAQID\x1e4é")
	if r.status != 200 || r.body != "ok" || r.header.Get("Content-Type") != "text/html" {
		t.Fatalf("POST %d %q %v", r.status, r.body, r.header)
	}
	for _, want := range []msg{{"hello", false}, {"\x01\x02\x03", true}, {"é", false}} {
		if got := rec.next(t); got != want {
			t.Fatalf("message %+v, want %+v", got, want)
		}
	}
	// Pings and noops from the client carry no message; a pong without a ping is ignored.
	if r := h.post(sid, "3\x1e6"); r.body != "ok" {
		t.Fatalf("POST %q", r.body)
	}
	if rec.isClosed() {
		t.Fatal("session closed by a pong/noop")
	}
}

func TestOverlappingGets(t *testing.T) {
	obs := newCountingObserver()
	h := newHarness(t, Options{Observer: obs})
	sid := h.handshake()
	rec := h.rec(sid)
	first := h.asyncGet(sid)
	poll.Until(t, "first GET pending", rec.s.Writable)
	second := h.get(sid)
	if second.status != 400 {
		t.Fatalf("second GET: %d %q", second.status, second.body)
	}
	if r := wait(t, first); r.status != 200 || r.body != "1" {
		t.Fatalf("first GET: %d %q", r.status, r.body)
	}
	if reason := rec.waitClosed(t); reason != ReasonTransportError {
		t.Fatalf("reason %q", reason)
	}
	if r := h.get(sid); r.status != 400 || !strings.Contains(r.body, `"code":1`) {
		t.Fatalf("GET after close: %d %s", r.status, r.body)
	}
	if n := obs.get(func(o *countingObserver) int { return o.closed["polling/transport error"] }); n != 1 {
		t.Fatalf("SessionClosed observed %d times", n)
	}
}

func TestPostClose(t *testing.T) {
	h := newHarness(t, Options{})
	sid := h.handshake()
	rec := h.rec(sid)
	pending := h.asyncGet(sid)
	poll.Until(t, "GET pending", rec.s.Writable)
	if r := h.post(sid, "1"); r.status != 200 || r.body != "ok" {
		t.Fatalf("POST 1: %d %q", r.status, r.body)
	}
	if r := wait(t, pending); r.status != 200 || r.body != "6" {
		t.Fatalf("pending GET: %d %q", r.status, r.body)
	}
	if reason := rec.waitClosed(t); reason != ReasonTransportClose {
		t.Fatalf("reason %q", reason)
	}
	if err := rec.s.Send(NewMessage([]byte("x"), false)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after close: %v", err)
	}
	if rec.s.Writable() {
		t.Fatal("closed session writable")
	}
}

func TestPostRefusals(t *testing.T) {
	h := newHarness(t, Options{MaxPayload: 100})
	tests := []struct {
		name   string
		ctype  string
		body   string
		status int
		reason string
	}{
		{"octet-stream", "application/octet-stream", "4hello", 400, ReasonTransportError},
		{"too large", "text/plain", "4" + strings.Repeat("x", 100), 413, ReasonTransportError},
		{"invalid packet", "text/plain", "abc", 400, ReasonParseError},
		{"empty body", "text/plain", "", 400, ReasonParseError},
		{"bad base64", "text/plain", "4ok\x1eb!!", 400, ReasonParseError},
		{"client ping", "text/plain", "2", 200, ReasonTransportError},
	}
	for _, tt := range tests {
		sid := h.handshake()
		rec := h.rec(sid)
		r := h.do(http.MethodPost, "EIO=4&transport=polling&sid="+sid, strings.NewReader(tt.body), http.Header{"Content-Type": {tt.ctype}})
		if r.status != tt.status {
			t.Errorf("%s: status %d %q, want %d", tt.name, r.status, r.body, tt.status)
		}
		if reason := rec.waitClosed(t); reason != tt.reason {
			t.Errorf("%s: reason %q, want %q", tt.name, reason, tt.reason)
		}
	}
	// Exactly MaxPayload is fine.
	sid := h.handshake()
	if r := h.post(sid, "4"+strings.Repeat("x", 99)); r.status != 200 {
		t.Fatalf("payload at the limit: %d", r.status)
	}
	if m := h.rec(sid).next(t); len(m.data) != 99 {
		t.Fatalf("message of %d bytes", len(m.data))
	}
}

// A client that gives up on its pending GET ends the session.
func TestPollingClientAbort(t *testing.T) {
	h := newHarness(t, Options{})
	sid := h.handshake()
	rec := h.rec(sid)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.url("EIO=4&transport=polling&sid="+sid), nil)
	done := make(chan struct{})
	go func() {
		resp, err := h.client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		close(done)
	}()
	poll.Until(t, "GET pending", rec.s.Writable)
	cancel()
	<-done
	if reason := rec.waitClosed(t); reason != ReasonTransportError {
		t.Fatalf("reason %q", reason)
	}
}

func TestPollingHeartbeat(t *testing.T) {
	h := newHarness(t, Options{PingInterval: 100 * time.Millisecond, PingTimeout: 500 * time.Millisecond})
	sid := h.handshake()
	rec := h.rec(sid)
	// Three ping/pong rounds keep the session open.
	for i := 0; i < 3; i++ {
		if r := h.get(sid); r.status != 200 || r.body != "2" {
			t.Fatalf("round %d: GET %d %q, want a ping", i, r.status, r.body)
		}
		if r := h.post(sid, "3"); r.body != "ok" {
			t.Fatalf("pong: %q", r.body)
		}
	}
	if rec.isClosed() {
		t.Fatal("closed despite pongs")
	}
	// Then no pong: the session times out and the pending GET gets a close.
	if r := h.get(sid); r.body != "2" {
		t.Fatalf("GET %q, want a ping", r.body)
	}
	start := time.Now()
	pending := h.asyncGet(sid)
	if reason := rec.waitClosed(t); reason != ReasonPingTimeout {
		t.Fatalf("reason %q", reason)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("ping timeout after %v", d)
	}
	if r := wait(t, pending); r.status != 200 || r.body != "1" {
		t.Fatalf("pending GET after the timeout: %d %q", r.status, r.body)
	}
	if r := h.get(sid); r.status != 400 {
		t.Fatalf("GET on a timed-out session: %d", r.status)
	}
}

func TestCORS(t *testing.T) {
	h := newHarness(t, Options{Origins: ParseOrigins(" http://example.com/ , https://app.example.com,,")})
	hdr := http.Header{"Origin": {"http://example.com"}}
	r := h.do(http.MethodGet, "EIO=4&transport=polling", nil, hdr)
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "http://example.com" ||
		r.header.Get("Access-Control-Allow-Credentials") != "true" || r.header.Get("Vary") != "Origin" {
		t.Fatalf("allowed origin: %d %v", r.status, r.header)
	}
	sid := parseOpen(t, r.body).SID
	if !h.rec(sid).s.Handshake().XDomain {
		t.Fatal("XDomain not set for a cross-origin handshake")
	}
	// Origins compare case-insensitively.
	if r := h.do(http.MethodGet, "EIO=4&transport=polling", nil, http.Header{"Origin": {"HTTPS://APP.EXAMPLE.COM"}}); r.status != 200 {
		t.Fatalf("case-insensitive origin: %d", r.status)
	}
	// Preflight.
	r = h.do(http.MethodOptions, "EIO=4&transport=polling", nil, http.Header{"Origin": {"http://example.com"}, "Access-Control-Request-Headers": {"content-type"}})
	if r.status != 204 || r.header.Get("Access-Control-Allow-Methods") != "GET,HEAD,PUT,PATCH,POST,DELETE" ||
		r.header.Get("Access-Control-Allow-Headers") != "content-type" || r.header.Get("Access-Control-Allow-Origin") != "http://example.com" ||
		r.header.Get("Access-Control-Max-Age") != "600" || r.body != "" {
		t.Fatalf("preflight: %d %v %q", r.status, r.header, r.body)
	}
	// Foreign origins are refused on preflight, polling (new and existing session) and websocket.
	evil := http.Header{"Origin": {"https://evil.example"}}
	for _, q := range []string{"EIO=4&transport=polling", "EIO=4&transport=polling&sid=" + sid} {
		if r := h.do(http.MethodGet, q, nil, evil); r.status != 403 || r.body != `{"code":4,"message":"Forbidden"}` {
			t.Fatalf("foreign origin GET %s: %d %s", q, r.status, r.body)
		}
	}
	if r := h.do(http.MethodOptions, "EIO=4&transport=polling", nil, evil); r.status != 403 {
		t.Fatalf("foreign preflight: %d", r.status)
	}
	if r := h.do(http.MethodPost, "EIO=4&transport=polling&sid="+sid, strings.NewReader("4x"), evil); r.status != 403 {
		t.Fatalf("foreign POST: %d", r.status)
	}
	c, resp, err := h.dialWS("EIO=4&transport=websocket", evil)
	if err == nil {
		c.Close()
		t.Fatal("foreign websocket accepted")
	}
	if resp == nil || resp.StatusCode != 403 {
		t.Fatalf("foreign websocket: %v %v", resp, err)
	}
	// ... also when upgrading an existing session.
	c, resp, err = h.dialWS("EIO=4&transport=websocket&sid="+sid, evil)
	if err == nil {
		c.Close()
		t.Fatal("foreign websocket upgrade accepted")
	}
	if resp == nil || resp.StatusCode != 403 {
		t.Fatalf("foreign websocket upgrade: %v", resp)
	}
	// A listed origin may use websocket.
	c, resp, err = h.dialWS("EIO=4&transport=websocket", hdr)
	if err != nil {
		t.Fatalf("allowed websocket: %v", err)
	}
	resp.Body.Close()
	c.Close()
	// Same origin (Origin host = Host) is allowed without being listed.
	same := http.Header{"Origin": {"http://" + h.host}}
	if r := h.do(http.MethodGet, "EIO=4&transport=polling", nil, same); r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "http://"+h.host {
		t.Fatalf("same origin: %d %v", r.status, r.header)
	}
	// Same host over another scheme is not same origin, unless a proxy in
	// front says the request arrived over https.
	if r := h.do(http.MethodGet, "EIO=4&transport=polling", nil, http.Header{"Origin": {"https://" + h.host}}); r.status != 403 {
		t.Fatalf("https origin on an http request: %d", r.status)
	}
	if r := h.do(http.MethodGet, "EIO=4&transport=polling", nil, http.Header{"Origin": {"https://" + h.host}, "X-Forwarded-Proto": {"https"}}); r.status != 200 {
		t.Fatalf("https origin behind a TLS proxy: %d", r.status)
	}
	// A malformed Origin is foreign.
	if r := h.do(http.MethodGet, "EIO=4&transport=polling", nil, http.Header{"Origin": {"::not a url"}}); r.status != 403 {
		t.Fatalf("malformed origin: %d", r.status)
	}
}

func TestCORSAny(t *testing.T) {
	h := newHarness(t, Options{Origins: OriginPolicy{Allowed: []string{"*"}}})
	r := h.do(http.MethodGet, "EIO=4&transport=polling", nil, http.Header{"Origin": {"https://anyone.example"}})
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "*" || r.header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("any origin: %d %v", r.status, r.header)
	}
	r = h.do(http.MethodOptions, "EIO=4&transport=polling", nil, http.Header{"Origin": {"https://anyone.example"}})
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("any preflight: %d %v", r.status, r.header)
	}
	// Without an Origin (non-browser client): no CORS headers, allowed.
	if r := h.do(http.MethodGet, "EIO=4&transport=polling", nil, nil); r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("no origin: %d %v", r.status, r.header)
	}
}

func TestParseOrigins(t *testing.T) {
	p := ParseOrigins("http://a.com/, https://b.com ,, *")
	want := []string{"http://a.com", "https://b.com", "*"}
	if strings.Join(p.Allowed, "|") != strings.Join(want, "|") {
		t.Fatalf("ParseOrigins = %q", p.Allowed)
	}
	if len(ParseOrigins("").Allowed) != 0 {
		t.Fatal("empty list")
	}
}

func TestAllowRequest(t *testing.T) {
	var calls atomic.Int32
	h := newHarness(t, Options{AllowRequest: func(r *http.Request) error {
		calls.Add(1)
		switch r.URL.Query().Get("who") {
		case "flood":
			return &RequestError{Status: http.StatusTooManyRequests, Code: CodeForbidden, Message: "Too many connections", Header: http.Header{"Retry-After": {"7"}}}
		case "banned":
			return errors.New("banned user")
		case "wrapped":
			return fmt.Errorf("limit: %w", &RequestError{Message: "custom forbidden"})
		}
		return nil
	}})
	r := h.do(http.MethodGet, "EIO=4&transport=polling&who=flood", nil, nil)
	if r.status != 429 || r.header.Get("Retry-After") != "7" || r.body != `{"code":4,"message":"Too many connections"}` {
		t.Fatalf("rate limited: %d %v %s", r.status, r.header, r.body)
	}
	r = h.do(http.MethodGet, "EIO=4&transport=polling&who=banned", nil, nil)
	if r.status != 403 || r.body != `{"code":4,"message":"banned user"}` {
		t.Fatalf("plain error: %d %s", r.status, r.body)
	}
	r = h.do(http.MethodGet, "EIO=4&transport=polling&who=wrapped", nil, nil)
	if r.status != 403 || r.body != `{"code":4,"message":"custom forbidden"}` {
		t.Fatalf("wrapped RequestError: %d %s", r.status, r.body)
	}
	// Refused on websocket too, before the upgrade.
	_, resp, err := h.dialWS("EIO=4&transport=websocket&who=flood", nil)
	if err == nil || resp == nil || resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7" {
		t.Fatalf("websocket refusal: %v %v", resp, err)
	}
	if h.handshake() == "" || h.srv.Count() != 1 {
		t.Fatal("allowed handshake")
	}
	if calls.Load() != 5 {
		t.Fatalf("AllowRequest called %d times", calls.Load())
	}
	// AllowRequest does not run for requests on an existing session.
	sid := h.handshake()
	_ = h.post(sid, "4x")
	if calls.Load() != 6 {
		t.Fatalf("AllowRequest called %d times", calls.Load())
	}
}

func TestStopAcceptingAndShutdown(t *testing.T) {
	obs := newCountingObserver()
	h := newHarness(t, Options{Observer: obs})
	polling := h.handshake()
	ws := h.mustDialWS("EIO=4&transport=websocket")
	_, open := readWS(t, ws)
	wsSid := parseOpen(t, open).SID
	pending := h.asyncGet(polling)
	poll.Until(t, "GET pending", h.rec(polling).s.Writable)

	h.srv.StopAccepting()
	r := h.do(http.MethodGet, "EIO=4&transport=polling", nil, nil)
	if r.status != 503 || r.body != `{"code":4,"message":"Server is shutting down"}` {
		t.Fatalf("handshake while stopping: %d %s", r.status, r.body)
	}
	if _, resp, err := h.dialWS("EIO=4&transport=websocket", nil); err == nil || resp.StatusCode != 503 {
		t.Fatalf("websocket while stopping: %v", err)
	}
	// Existing sessions still work.
	if r := h.post(polling, "4still here"); r.body != "ok" {
		t.Fatalf("POST while stopping: %q", r.body)
	}
	writeWS(t, ws, "4ws still here")
	if m := h.rec(wsSid).next(t); m.data != "ws still here" {
		t.Fatalf("ws message %q", m.data)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if h.srv.Count() != 0 {
		t.Fatalf("%d sessions after Shutdown", h.srv.Count())
	}
	for _, sid := range []string{polling, wsSid} {
		if reason := h.rec(sid).waitClosed(t); reason != ReasonForcedClose {
			t.Fatalf("%s closed with %q", sid, reason)
		}
	}
	if r := wait(t, pending); r.body != "1" {
		t.Fatalf("pending GET at shutdown: %q", r.body)
	}
	expectWSClosed(t, ws)
	if n := obs.get(func(o *countingObserver) int {
		return o.closed["websocket/forced close"] + o.closed["polling/forced close"]
	}); n != 2 {
		t.Fatalf("SessionClosed observed %d", n)
	}
	// Shutdown with nothing left returns at once, even with an expired context.
	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := h.srv.Shutdown(done); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

// A polling session whose client does not fetch is closed as a slow consumer
// once its buffer passes MaxBufferedBytes.
func TestPollingSlowConsumer(t *testing.T) {
	h := newHarness(t, Options{MaxBufferedBytes: 10_000})
	sid := h.handshake()
	rec := h.rec(sid)
	payload := make([]byte, 999)
	var err error
	n := 0
	for ; n < 100; n++ {
		if err = rec.s.Send(NewMessage(payload, false)); err != nil {
			break
		}
		if b := rec.s.Buffered(); b > 10_000 {
			t.Fatalf("buffered %d", b)
		}
	}
	if !errors.Is(err, websocket.ErrQueueFull) || n != 9 {
		t.Fatalf("after %d sends: %v", n, err)
	}
	if reason := rec.waitClosed(t); reason != ReasonSlowConsumer {
		t.Fatalf("reason %q", reason)
	}
	if r := h.get(sid); r.status != 400 {
		t.Fatalf("GET after close: %d", r.status)
	}
}

// A server-initiated close of a polling session with no GET pending keeps
// the queued messages (e.g. a Socket.IO DISCONNECT) and the close packet for
// the client's next GET (wire-formats §1: "the next GET receives 6␞1"); the
// sid is unknown afterwards.
func TestCloseWithoutPendingGetDeliversBuffer(t *testing.T) {
	h := newHarness(t, Options{})
	sid := h.handshake()
	rec := h.rec(sid)
	if err := rec.s.Send(NewMessage([]byte("bye"), false)); err != nil {
		t.Fatal(err)
	}
	rec.s.Close(ReasonForcedClose)
	if reason := rec.waitClosed(t); reason != ReasonForcedClose {
		t.Fatalf("reason %q", reason)
	}
	// The queued message first, the close packet in the GET after it (a
	// client handles a close at once and messages a tick later).
	r := h.get(sid)
	if r.status != 200 || r.body != "4bye" {
		t.Fatalf("next GET after a server close: %d %q, want 200 %q", r.status, r.body, "4bye")
	}
	if r := h.get(sid); r.status != 200 || r.body != "1" {
		t.Fatalf("GET after the queued messages: %d %q, want 200 \"1\"", r.status, r.body)
	}
	if r := h.get(sid); r.status != 400 {
		t.Fatalf("GET after the close was delivered: %d", r.status)
	}
}

// A lingering closed session that the client never polls again goes away
// after PingTimeout.
func TestCloseLingerExpires(t *testing.T) {
	h := newHarness(t, Options{PingTimeout: 100 * time.Millisecond})
	sid := h.handshake()
	rec := h.rec(sid)
	_ = rec.s.Send(NewMessage([]byte("bye"), false))
	rec.s.Close(ReasonForcedClose)
	if _, ok := h.srv.Session(sid); !ok {
		t.Fatal("session dropped before its last GET")
	}
	poll.Until(t, "lingering session removed", func() bool { _, ok := h.srv.Session(sid); return !ok })
	if r := h.get(sid); r.status != 400 {
		t.Fatalf("GET after linger: %d %q", r.status, r.body)
	}
	// Other reasons, or nothing queued: removed at once.
	sid2 := h.handshake()
	h.rec(sid2).s.Close(ReasonForcedClose)
	if r := h.get(sid2); r.status != 400 {
		t.Fatalf("close with an empty buffer: %d %q", r.status, r.body)
	}
	sid3 := h.handshake()
	_ = h.rec(sid3).s.Send(NewMessage([]byte("x"), false))
	h.rec(sid3).s.Close(ReasonPingTimeout)
	if r := h.get(sid3); r.status != 400 {
		t.Fatalf("ping-timeout close: %d %q", r.status, r.body)
	}
}

func TestCustomIDTagAndForward(t *testing.T) {
	var n atomic.Int32
	var forwarded []string
	var mu sync.Mutex
	h := newHarness(t, Options{
		NewID: func() string { return fmt.Sprintf("node1-%014d", n.Add(1)) },
		Tag:   func(r *http.Request) any { return r.URL.Query().Get("tag") },
		Forward: func(w http.ResponseWriter, r *http.Request, sid string) bool {
			if !strings.HasPrefix(sid, "node2-") {
				return false
			}
			mu.Lock()
			forwarded = append(forwarded, r.Method+" "+r.URL.Query().Get("transport")+" "+sid)
			mu.Unlock()
			w.WriteHeader(http.StatusTeapot)
			return true
		},
	})
	r := h.do(http.MethodGet, "EIO=4&transport=polling&tag=gold", nil, nil)
	sid := parseOpen(t, r.body).SID
	if sid != "node1-00000000000001" {
		t.Fatalf("sid %q", sid)
	}
	if tag := h.rec(sid).s.Handshake().Tag; tag != "gold" {
		t.Fatalf("tag %v", tag)
	}
	// Local sessions are served here; foreign ones are forwarded; unknown
	// ones the forwarder declines get the usual error.
	if r := h.post(sid, "4local"); r.body != "ok" {
		t.Fatalf("local POST %q", r.body)
	}
	if r := h.get("node2-00000000000009"); r.status != http.StatusTeapot {
		t.Fatalf("foreign GET: %d", r.status)
	}
	_, resp, err := h.dialWS("EIO=4&transport=websocket&sid=node2-00000000000009", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTeapot {
		t.Fatalf("foreign websocket: %v %v", resp, err)
	}
	if r := h.get("node3-00000000000009"); r.status != 400 || !strings.Contains(r.body, `"code":1`) {
		t.Fatalf("unknown GET: %d %s", r.status, r.body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(forwarded) != 2 || forwarded[0] != "GET polling node2-00000000000009" || forwarded[1] != "GET websocket node2-00000000000009" {
		t.Fatalf("forwarded %q", forwarded)
	}
}
