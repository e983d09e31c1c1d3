package engineio

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"

	"github.com/tradewire/tradewire/internal/testutil/poll"
	"github.com/tradewire/tradewire/transport/websocket"
)

var wsModes = []struct {
	name string
	mode websocket.Mode
}{{"epoll", websocket.ModeEpoll}, {"goroutine", websocket.ModeGoroutine}}

// openWS opens a websocket-only session and returns its connection and record.
func (h *harness) openWS() (*gws.Conn, *sessRec) {
	h.t.Helper()
	c := h.mustDialWS("EIO=4&transport=websocket")
	_, open := readWS(h.t, c)
	return c, h.rec(parseOpen(h.t, open).SID)
}

// dialProbe opens an upgrade websocket for sid and waits until the server
// has registered it as the probe before the caller sends 2probe: a probe
// message that arrives earlier is dropped (see TestUpgradeProbeSentAtOnce).
func (h *harness) dialProbe(sid string) *gws.Conn {
	h.t.Helper()
	ws := h.mustDialWS("EIO=4&transport=websocket&sid=" + sid)
	s, ok := h.srv.Session(sid)
	if !ok {
		h.t.Fatalf("no session %s", sid)
	}
	poll.Until(h.t, "probe registered", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.probeLocked() != nil
	})
	return ws
}

func TestWebSocketSession(t *testing.T) {
	for _, m := range wsModes {
		t.Run(m.name, func(t *testing.T) {
			obs := newCountingObserver()
			h := newHarness(t, Options{WebSocket: websocket.Options{Mode: m.mode}, Observer: obs})
			c := h.mustDialWS("EIO=4&transport=websocket")
			typ, open := readWS(t, c)
			re := regexp.MustCompile(`^0\{"sid":"[A-Za-z0-9_-]{20}","upgrades":\[\],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000\}$`)
			if typ != gws.TextMessage || !re.MatchString(open) {
				t.Fatalf("open packet %d %q", typ, open)
			}
			rec := h.rec(parseOpen(t, open).SID)
			if rec.s.Transport() != "websocket" {
				t.Fatalf("transport %q", rec.s.Transport())
			}
			writeWS(t, c, "4hello")
			if err := c.WriteMessage(gws.BinaryMessage, []byte{1, 2, 3}); err != nil {
				t.Fatal(err)
			}
			if got := rec.next(t); got != (msg{"hello", false}) {
				t.Fatalf("got %+v", got)
			}
			if got := rec.next(t); got != (msg{"\x01\x02\x03", true}) {
				t.Fatalf("got %+v", got)
			}
			// One Engine.IO packet per frame; binary as a binary frame.
			if err := rec.s.Send(NewMessage([]byte("from server"), false), NewMessage([]byte{9, 8}, true)); err != nil {
				t.Fatal(err)
			}
			if typ, s := readWS(t, c); typ != gws.TextMessage || s != "4from server" {
				t.Fatalf("got %d %q", typ, s)
			}
			if typ, s := readWS(t, c); typ != gws.BinaryMessage || s != "\x09\x08" {
				t.Fatalf("got %d %q", typ, s)
			}
			poll.Until(t, "queue drained", func() bool { return rec.s.Writable() && rec.s.Buffered() == 0 })
			// A close packet from the client ends the session.
			writeWS(t, c, "1")
			if reason := rec.waitClosed(t); reason != ReasonTransportClose {
				t.Fatalf("reason %q", reason)
			}
			expectWSClosed(t, c)
			if obs.get(func(o *countingObserver) int { return o.opened["websocket"] }) != 1 {
				t.Fatal("SessionOpened(websocket) not observed")
			}
		})
	}
}

func TestWebSocketSessionEnds(t *testing.T) {
	h := newHarness(t, Options{MaxPayload: 1000})
	tests := []struct {
		name   string
		act    func(c *gws.Conn)
		reason string
	}{
		{"invalid packet", func(c *gws.Conn) { writeWS(t, c, "abc") }, ReasonParseError},
		{"empty packet", func(c *gws.Conn) { writeWS(t, c, "") }, ReasonParseError},
		{"client ping", func(c *gws.Conn) { writeWS(t, c, "2") }, ReasonTransportError},
		{"close frame", func(c *gws.Conn) {
			_ = c.WriteControl(gws.CloseMessage, gws.FormatCloseMessage(gws.CloseGoingAway, ""), time.Now().Add(time.Second))
		}, ReasonTransportClose},
		{"tcp close", func(c *gws.Conn) { c.UnderlyingConn().Close() }, ReasonTransportClose},
		{"tcp reset", func(c *gws.Conn) {
			_ = c.UnderlyingConn().(*net.TCPConn).SetLinger(0)
			c.UnderlyingConn().Close()
		}, ReasonTransportError},
		{"message over maxPayload", func(c *gws.Conn) { writeWS(t, c, "4"+strings.Repeat("x", 1000)) }, ReasonTransportError},
	}
	for _, tt := range tests {
		c, rec := h.openWS()
		// Act only once the websocket is attached to its session: an end
		// that comes earlier is lost (TestWebSocketClosedBeforeAttach).
		poll.Until(t, "websocket attached", func() bool {
			rec.s.mu.Lock()
			defer rec.s.mu.Unlock()
			return rec.s.ws != nil
		})
		tt.act(c)
		if reason := rec.waitClosed(t); reason != tt.reason {
			t.Errorf("%s: reason %q, want %q", tt.name, reason, tt.reason)
		}
		if _, ok := h.srv.Session(rec.s.ID()); ok {
			t.Errorf("%s: session still registered", tt.name)
		}
	}
}

func TestWebSocketHeartbeat(t *testing.T) {
	h := newHarness(t, Options{PingInterval: 100 * time.Millisecond, PingTimeout: 300 * time.Millisecond})
	c, rec := h.openWS()
	for i := 0; i < 3; i++ {
		if _, s := readWS(t, c); s != "2" {
			t.Fatalf("round %d: got %q, want a ping", i, s)
		}
		writeWS(t, c, "3")
	}
	if rec.isClosed() {
		t.Fatal("closed despite pongs")
	}
	if _, s := readWS(t, c); s != "2" {
		t.Fatalf("got %q", s)
	}
	if reason := rec.waitClosed(t); reason != ReasonPingTimeout {
		t.Fatalf("reason %q", reason)
	}
	expectWSClosed(t, c)
}

// The polling→websocket upgrade of wire-formats §1.
func TestUpgrade(t *testing.T) {
	for _, m := range wsModes {
		t.Run(m.name, func(t *testing.T) {
			obs := newCountingObserver()
			h := newHarness(t, Options{WebSocket: websocket.Options{Mode: m.mode}, Observer: obs})
			sid := h.handshake()
			rec := h.rec(sid)
			pending := h.asyncGet(sid)
			poll.Until(t, "GET pending", rec.s.Writable)

			ws := h.dialProbe(sid)
			writeWS(t, ws, "2probe")
			if _, s := readWS(t, ws); s != "3probe" {
				t.Fatalf("probe answer %q", s)
			}
			// The pending GET is released with a noop; further GETs answer at once.
			if r := wait(t, pending); r.status != 200 || r.body != "6" {
				t.Fatalf("pending GET during upgrade: %d %q", r.status, r.body)
			}
			if r := h.get(sid); r.body != "6" {
				t.Fatalf("GET during upgrade: %q", r.body)
			}
			// Still polling until the upgrade completes: sends are buffered, POST works.
			if rec.s.Transport() != "polling" {
				t.Fatal("transport switched before 5")
			}
			for _, s := range []string{"one", "two"} {
				if err := rec.s.Send(NewMessage([]byte(s), false)); err != nil {
					t.Fatal(err)
				}
			}
			if err := rec.s.Send(NewMessage([]byte{7}, true)); err != nil {
				t.Fatal(err)
			}
			if r := h.post(sid, "4posted during upgrade"); r.body != "ok" {
				t.Fatalf("POST during upgrade: %q", r.body)
			}
			if got := rec.next(t); got.data != "posted during upgrade" {
				t.Fatalf("got %q", got.data)
			}

			writeWS(t, ws, "5")
			// The buffer is flushed on the websocket, in order.
			for _, want := range []string{"4one", "4two"} {
				if _, s := readWSSkipPings(t, ws); s != want {
					t.Fatalf("flushed %q, want %q", s, want)
				}
			}
			if typ, s := readWS(t, ws); typ != gws.BinaryMessage || s != "\x07" {
				t.Fatalf("flushed binary %d %q", typ, s)
			}
			poll.Until(t, "upgrade complete", func() bool { return rec.s.Transport() == "websocket" })
			// The observer hears of it right after the switch (outside the session lock).
			poll.Until(t, "SessionUpgraded observed", func() bool {
				return obs.get(func(o *countingObserver) int { return o.upgraded }) == 1
			})
			// Polling on the sid is now refused with 400 (code 3).
			if r := h.get(sid); r.status != 400 || !strings.Contains(r.body, `"code":3`) {
				t.Fatalf("GET after upgrade: %d %s", r.status, r.body)
			}
			if r := h.post(sid, "4late"); r.status != 400 {
				t.Fatalf("POST after upgrade: %d", r.status)
			}
			// Both directions work on the websocket.
			writeWS(t, ws, "4over ws")
			if got := rec.next(t); got.data != "over ws" {
				t.Fatalf("got %q", got.data)
			}
			if err := rec.s.Send(NewMessage([]byte("after"), false)); err != nil {
				t.Fatal(err)
			}
			if _, s := readWSSkipPings(t, ws); s != "4after" {
				t.Fatalf("got %q", s)
			}
			if rec.isClosed() {
				t.Fatal("session closed")
			}
			// Closing the upgraded websocket ends the session.
			ws.Close()
			if reason := rec.waitClosed(t); reason != ReasonTransportClose {
				t.Fatalf("reason %q", reason)
			}
		})
	}
}

func TestUpgradeTimeout(t *testing.T) {
	h := newHarness(t, Options{UpgradeTimeout: 200 * time.Millisecond})
	sid := h.handshake()
	rec := h.rec(sid)
	ws := h.dialProbe(sid)
	writeWS(t, ws, "2probe")
	if _, s := readWS(t, ws); s != "3probe" {
		t.Fatalf("probe answer %q", s)
	}
	// No 5: the server closes the probe, the session stays on polling.
	expectWSClosed(t, ws)
	if rec.isClosed() {
		t.Fatal("session closed with its probe")
	}
	poll.Until(t, "probe dropped", func() bool {
		rec.s.mu.Lock()
		defer rec.s.mu.Unlock()
		return rec.s.probeLocked() == nil && !rec.s.upgrading
	})
	if err := rec.s.Send(NewMessage([]byte("still polling"), false)); err != nil {
		t.Fatal(err)
	}
	if r := h.get(sid); r.body != "4still polling" {
		t.Fatalf("GET %q", r.body)
	}
	// A second upgrade attempt can succeed.
	ws2 := h.dialProbe(sid)
	writeWS(t, ws2, "2probe")
	if _, s := readWS(t, ws2); s != "3probe" {
		t.Fatalf("second probe answer %q", s)
	}
	writeWS(t, ws2, "5")
	poll.Until(t, "upgraded", func() bool { return rec.s.Transport() == "websocket" })
}

func TestUpgradeProbeMisbehaves(t *testing.T) {
	h := newHarness(t, Options{})
	for _, tt := range []struct {
		name string
		act  func(c *gws.Conn)
	}{
		{"binary frame", func(c *gws.Conn) { _ = c.WriteMessage(gws.BinaryMessage, []byte{1}) }},
		{"unexpected text", func(c *gws.Conn) { writeWS(t, c, "4hello") }},
		{"client closes", func(c *gws.Conn) { c.Close() }},
	} {
		sid := h.handshake()
		rec := h.rec(sid)
		ws := h.dialProbe(sid)
		tt.act(ws)
		expectWSClosed(t, ws)
		poll.Until(t, tt.name+": probe dropped", func() bool {
			rec.s.mu.Lock()
			defer rec.s.mu.Unlock()
			return rec.s.probeLocked() == nil && !rec.s.upgrading
		})
		if rec.isClosed() || rec.s.Transport() != "polling" {
			t.Fatalf("%s: session affected", tt.name)
		}
		if r := h.post(sid, "4fine"); r.body != "ok" {
			t.Fatalf("%s: POST %q", tt.name, r.body)
		}
	}
}

// A second websocket on a sid that cannot take it completes the 101 and is
// then closed by the server (refusing it with 400 fails the official suite).
func TestSecondWebSocketClosed(t *testing.T) {
	h := newHarness(t, Options{})
	h.echo = true

	// On an upgraded session.
	sid := h.handshake()
	rec := h.rec(sid)
	ws := h.dialProbe(sid)
	writeWS(t, ws, "2probe")
	readWS(t, ws)
	writeWS(t, ws, "5")
	poll.Until(t, "upgraded", func() bool { return rec.s.Transport() == "websocket" })
	second := h.mustDialWS("EIO=4&transport=websocket&sid=" + sid)
	expectWSClosed(t, second)
	// The first websocket is unaffected.
	writeWS(t, ws, "4echo")
	if _, s := readWSSkipPings(t, ws); s != "4echo" {
		t.Fatalf("echo %q", s)
	}

	// While an upgrade is pending.
	sid2 := h.handshake()
	probe := h.dialProbe(sid2)
	writeWS(t, probe, "2probe")
	readWS(t, probe)
	extra := h.mustDialWS("EIO=4&transport=websocket&sid=" + sid2)
	expectWSClosed(t, extra)
	writeWS(t, probe, "5")
	poll.Until(t, "upgraded", func() bool { return h.rec(sid2).s.Transport() == "websocket" })

	// On a websocket-only session.
	_, wsRec := h.openWS()
	third := h.mustDialWS("EIO=4&transport=websocket&sid=" + wsRec.s.ID())
	expectWSClosed(t, third)
	if wsRec.isClosed() || rec.isClosed() {
		t.Fatal("an extra websocket closed the session")
	}
}

// Frames the client sends in the same TCP write as its upgrade request
// reach the session.
func TestWebSocketEarlyData(t *testing.T) {
	h := newHarness(t, Options{})
	nc, err := net.Dial("tcp", h.host)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	req := "GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: " + h.host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	mask := []byte{1, 2, 3, 4}
	payload := []byte("4early")
	frame := append([]byte{0x81, 0x80 | byte(len(payload))}, mask...)
	for i, b := range payload {
		frame = append(frame, b^mask[i%4])
	}
	if _, err := nc.Write(append([]byte(req), frame...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v", err)
	}
	hdr := make([]byte, 2)
	if _, err := br.Read(hdr); err != nil {
		t.Fatal(err)
	}
	open := make([]byte, hdr[1])
	if _, err := io.ReadFull(br, open); err != nil {
		t.Fatal(err)
	}
	rec := h.rec(parseOpen(t, string(open)).SID)
	if got := rec.next(t); got.data != "early" {
		t.Fatalf("got %q", got.data)
	}
}

// A websocket client that stops reading while the server sends a lot is
// closed as a slow consumer; the server never holds more than
// MaxBufferedBytes for it.
func TestWebSocketSlowConsumer(t *testing.T) {
	for _, m := range wsModes {
		t.Run(m.name, func(t *testing.T) {
			obs := newCountingObserver()
			const maxBuf = 256 << 10
			h := newHarness(t, Options{MaxBufferedBytes: maxBuf, WebSocket: websocket.Options{Mode: m.mode}, Observer: obs})
			_, rec := h.openWS() // never read again
			payload := bytes.Repeat([]byte("x"), 32<<10)
			var err error
			sent, maxSeen := 0, 0
			deadline := time.Now().Add(30 * time.Second)
			for err == nil {
				err = rec.s.Send(NewMessage(payload, false))
				if err == nil {
					sent++
				}
				if b := rec.s.Buffered(); b > maxSeen {
					maxSeen = b
				}
				if time.Now().After(deadline) {
					t.Fatalf("no slow-consumer close after %d messages", sent)
				}
				if sent%32 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			if !errors.Is(err, websocket.ErrQueueFull) {
				t.Fatalf("Send: %v", err)
			}
			// Data never goes past the bound; the close frame (and a pong)
			// are still queued after it, so allow a few control bytes.
			if maxSeen > maxBuf+64 {
				t.Fatalf("buffered %d > MaxBufferedBytes + control frames", maxSeen)
			}
			if reason := rec.waitClosed(t); reason != ReasonSlowConsumer {
				t.Fatalf("reason %q", reason)
			}
			if rec.s.Writable() {
				t.Fatal("closed session writable")
			}
			if n := obs.get(func(o *countingObserver) int { return o.closed["websocket/slow consumer"] }); n != 1 {
				t.Fatalf("observed %d slow-consumer closes", n)
			}
			// Memory is bounded by the socket buffers plus MaxBufferedBytes:
			// the number of accepted messages is finite and small.
			if sent*len(payload) > 64<<20 {
				t.Fatalf("accepted %d bytes before closing", sent*len(payload))
			}
		})
	}
}

// Sessions leave no goroutines behind once closed, on any transport.
func TestNoGoroutineLeak(t *testing.T) {
	h := newHarness(t, Options{PingInterval: time.Second, PingTimeout: time.Second})
	h.echo = true
	// Warm up: start the websocket layer's long-lived loops.
	c, _ := h.openWS()
	c.Close()
	poll.Until(t, "warm-up session gone", func() bool { return h.srv.Count() == 0 })
	h.client.CloseIdleConnections()
	time.Sleep(50 * time.Millisecond)
	base := runtime.NumGoroutine()

	var wsConns []*gws.Conn
	var pendings []<-chan response
	for i := 0; i < 10; i++ {
		c, _ := h.openWS()
		writeWS(t, c, "4x")
		readWSSkipPings(t, c)
		wsConns = append(wsConns, c)

		sid := h.handshake()
		_ = h.post(sid, "4y")
		pendings = append(pendings, h.asyncGet(sid))

		up := h.handshake()
		ws := h.dialProbe(up)
		writeWS(t, ws, "2probe")
		readWS(t, ws)
		writeWS(t, ws, "5")
		wsConns = append(wsConns, ws)
	}
	poll.Until(t, "sessions open", func() bool { return h.srv.Count() == 30 })
	h.srv.Close()
	for _, p := range pendings {
		wait(t, p)
	}
	for _, c := range wsConns {
		c.Close()
	}
	h.client.CloseIdleConnections()
	settleGoroutines(t, base)
}

// rawUpgrade sends a websocket upgrade request for sid followed, in the same
// TCP write, by the given text messages (masked frames), and returns the
// connection positioned after the 101 response.
func rawUpgrade(t *testing.T, h *harness, sid string, msgs ...string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", h.host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	req := "GET /engine.io/?EIO=4&transport=websocket&sid=" + sid + " HTTP/1.1\r\nHost: " + h.host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	out := []byte(req)
	mask := []byte{1, 2, 3, 4}
	for _, m := range msgs {
		out = append(out, 0x81, 0x80|byte(len(m)))
		out = append(out, mask...)
		for i := 0; i < len(m); i++ {
			out = append(out, m[i]^mask[i%4])
		}
	}
	if _, err := nc.Write(out); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v", err)
	}
	return nc, br
}

// BUG (engineio/session.go, Session.serveUpgrade): the upgrade websocket is
// recorded as the session's probe (s.probe = c) only after
// websocket.Server.Upgrade has returned, but the connection is already being
// read by then. A "2probe" that the websocket layer delivers before that
// assignment reaches wsHandler.OnMessage with s.probe != c, falls into the
// default branch (which only adopts connections of websocket-only
// sessions) and is silently dropped: the client never gets "3probe", the
// upgrade stalls until UpgradeTimeout closes the websocket. A client that
// sends 2probe as soon as the 101 arrives (engine.io-client does) hits this
// window under load; sending 2probe in the same TCP write as the request
// makes it deterministic (the early bytes are fed inside Upgrade). The server
// should answer 3probe: the probe must be registered before its first
// message can be handled.
func TestUpgradeProbeSentAtOnce(t *testing.T) {
	for _, m := range wsModes {
		t.Run(m.name, func(t *testing.T) {
			h := newHarness(t, Options{WebSocket: websocket.Options{Mode: m.mode}})
			sid := h.handshake()
			nc, br := rawUpgrade(t, h, sid, "2probe")
			_ = nc.SetReadDeadline(time.Now().Add(2 * time.Second))
			hdr := make([]byte, 2)
			if _, err := io.ReadFull(br, hdr); err != nil {
				t.Fatalf("no answer to a 2probe sent right after the upgrade request: %v", err)
			}
			body := make([]byte, hdr[1]&0x7f)
			if _, err := io.ReadFull(br, body); err != nil {
				t.Fatal(err)
			}
			if hdr[0] != 0x81 || string(body) != "3probe" {
				t.Fatalf("answer %x %q, want 3probe", hdr, body)
			}
		})
	}
}

// BUG (engineio/session.go, Session.completeUpgrade): on "5" the session
// switches to the websocket (s.ws = c, s.upgrading = false) and takes the
// polling buffer under s.mu, but writes that buffer to the websocket only
// after releasing the lock. A Send running in that window sees the active
// websocket and writes its packets directly, ahead of the older buffered
// ones: messages are delivered out of order across the upgrade. Packets sent
// from one goroutine must arrive in the order sent; the buffered packets
// should be queued on the websocket before the switch becomes visible (e.g.
// write them while still holding s.mu, WriteFrames does not block). The
// race is timing-dependent; 100 upgrades under a concurrent sender reproduce
// it reliably (1 to 5 of 100 reordered in each of 5 runs on a loaded 2-core machine).
func TestUpgradeKeepsOrder(t *testing.T) {
	h := newHarness(t, Options{})
	reordered := 0
	for round := 0; round < 100; round++ {
		sid := h.handshake()
		rec := h.rec(sid)
		ws := h.dialProbe(sid)
		writeWS(t, ws, "2probe")
		readWS(t, ws)
		stop := make(chan struct{})
		sent := make(chan int)
		go func() {
			i := 0
			defer func() { sent <- i }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if rec.s.Send(NewMessage([]byte(strconv.Itoa(i)), false)) != nil {
					return
				}
				i++
				if i%100 == 0 {
					time.Sleep(10 * time.Microsecond)
				}
			}
		}()
		time.Sleep(2 * time.Millisecond)
		writeWS(t, ws, "5")
		time.Sleep(5 * time.Millisecond)
		close(stop)
		n := <-sent
		for want := 0; want < n; want++ {
			_, s := readWSSkipPings(t, ws)
			if got, _ := strconv.Atoi(strings.TrimPrefix(s, "4")); got != want {
				reordered++
				t.Logf("upgrade %d: message %d arrived when %d was expected", round, got, want)
				break
			}
		}
		ws.Close()
	}
	if reordered > 0 {
		t.Fatalf("%d of 100 upgrades delivered messages out of order", reordered)
	}
}

// Keyed (conflatable) packets: a lagging polling client gets only the newest
// queued packet per key; on websocket they go through WriteKeyed.
func TestKeyedPackets(t *testing.T) {
	h := newHarness(t, Options{MaxBufferedBytes: 200})
	sid := h.handshake()
	rec := h.rec(sid)
	keyed := func(key, data string) *Packet { p := NewMessage([]byte(data), false); p.Key = key; return p }
	for _, p := range []*Packet{
		keyed("AAPL", "A1"), // first in an empty buffer: kept as is
		NewMessage([]byte("trade"), false),
		keyed("AAPL", "A2"),
		keyed("MSFT", "M1"),
		keyed("AAPL", "A3-longer"),
	} {
		if err := rec.s.Send(p); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := rec.s.Buffered(), len("4A1")+len("4trade")+len("4A3-longer")+len("4M1")+4; got != want {
		t.Fatalf("Buffered %d, want %d", got, want)
	}
	if r := h.get(sid); r.body != "4A1\x1e4trade\x1e4A3-longer\x1e4M1" {
		t.Fatalf("GET %q", r.body)
	}
	// Keys start afresh after a GET.
	_ = rec.s.Send(NewMessage([]byte("x"), false))
	_ = rec.s.Send(keyed("AAPL", "A4"))
	if r := h.get(sid); r.body != "4x\x1e4A4" {
		t.Fatalf("GET %q", r.body)
	}
	// Overflow with keyed packets is a slow consumer too.
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		err = rec.s.Send(keyed(fmt.Sprint("k", i), strings.Repeat("z", 20)))
	}
	if !errors.Is(err, websocket.ErrQueueFull) {
		t.Fatalf("keyed overflow: %v", err)
	}
	if reason := rec.waitClosed(t); reason != ReasonSlowConsumer {
		t.Fatalf("reason %q", reason)
	}
	if err := rec.s.Send(keyed("AAPL", "late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("keyed Send after close: %v", err)
	}

	// Websocket: delivered through the websocket layer.
	c, wrec := h.openWS()
	if err := wrec.s.Send(keyed("AAPL", "ws quote")); err != nil {
		t.Fatal(err)
	}
	if _, s := readWSSkipPings(t, c); s != "4ws quote" {
		t.Fatalf("got %q", s)
	}
}

// A websocket client that stops reading while keyed packets keep coming is
// not dropped as long as the keys are few: its queue holds one per key.
func TestKeyedPacketsKeepALaggingWebSocketAlive(t *testing.T) {
	h := newHarness(t, Options{MaxBufferedBytes: 64 << 10})
	c, rec := h.openWS()
	_ = c // never read
	for i := 0; i < 20000; i++ {
		p := NewMessage([]byte(fmt.Sprintf(`2["quote",{"s":"S%d","n":%d,"pad":"%s"}]`, i%20, i, strings.Repeat("p", 200))), false)
		p.Key = fmt.Sprint("S", i%20)
		if err := rec.s.Send(p); err != nil {
			t.Fatalf("send %d: %v (buffered %d)", i, err, rec.s.Buffered())
		}
	}
	if rec.isClosed() {
		t.Fatal("closed as a slow consumer")
	}
	if b := rec.s.Buffered(); b > 64<<10 {
		t.Fatalf("buffered %d", b)
	}
}

// BUG (engineio/server.go, Server.handshake, and session.go, wsHandler.OnClose):
// a websocket-only session attaches its connection (attachWebSocket) only
// after websocket.Server.Upgrade has returned, but the connection is read
// from inside Upgrade already. When the connection ends before the attach
// (the client resets or closes right after reading the open packet, which
// travels with the 101), wsHandler.OnClose sees s.ws != c and ignores the
// end; handshake then attaches the dead connection and the session stays
// open, unreachable, until the ping timeout (pingInterval + pingTimeout, 45 s
// by default), and then reports "ping timeout" instead of a transport
// error. The same ordering loses an early "2probe"
// (TestUpgradeProbeSentAtOnce), and a probe that dies before serveUpgrade
// records it leaves the session "upgrading" for good (no later upgrade is
// possible). The window is short: 2000 clients that reset as soon as they
// have the open packet leave 6 to 35 sessions stuck per run here. Expected: every session
// closes at once.
func TestWebSocketClosedBeforeAttach(t *testing.T) {
	h := newHarness(t, Options{})
	req := "GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: " + h.host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	const clients = 2000
	for i := 0; i < clients; i++ {
		nc, err := net.Dial("tcp", h.host)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		// Read the 101 and the open packet, then reset.
		buf := make([]byte, 512)
		_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		got := 0
		for !bytes.Contains(buf[:got], []byte(`"maxPayload"`)) {
			n, err := nc.Read(buf[got:])
			if err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
			got += n
		}
		_ = nc.(*net.TCPConn).SetLinger(0)
		nc.Close()
	}
	deadline := time.Now().Add(3 * time.Second)
	for h.srv.Count() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := h.srv.Count(); n > 0 {
		stuck := 0
		for _, s := range h.srv.Sessions() {
			s.mu.Lock()
			if s.ws != nil {
				stuck++
			}
			s.mu.Unlock()
		}
		t.Fatalf("%d of %d sessions still open 3 s after their websocket was reset (%d with a dead websocket attached)", n, clients, stuck)
	}
}
