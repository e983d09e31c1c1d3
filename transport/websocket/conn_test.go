package websocket

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"

	"github.com/tradewire/tradewire/internal/testutil/poll"
)

func TestCheckRequest(t *testing.T) {
	base := func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/ws", nil)
		r.Header.Set("Connection", "keep-alive, Upgrade")
		r.Header.Set("Upgrade", "WebSocket")
		r.Header.Set("Sec-WebSocket-Version", "13")
		r.Header.Set("Sec-WebSocket-Key", testKey)
		return r
	}
	if err := CheckRequest(base()); err != nil {
		t.Fatalf("valid request refused: %v", err)
	}
	// Header values may be split over several lines.
	r := base()
	r.Header.Del("Connection")
	r.Header.Add("Connection", "keep-alive")
	r.Header.Add("Connection", "upgrade")
	if err := CheckRequest(r); err != nil {
		t.Fatalf("multi-line Connection refused: %v", err)
	}
	for name, mod := range map[string]func(*http.Request){
		"POST":           func(r *http.Request) { r.Method = http.MethodPost },
		"no Connection":  func(r *http.Request) { r.Header.Del("Connection") },
		"Connection":     func(r *http.Request) { r.Header.Set("Connection", "keep-alive") },
		"no Upgrade":     func(r *http.Request) { r.Header.Del("Upgrade") },
		"Upgrade h2c":    func(r *http.Request) { r.Header.Set("Upgrade", "h2c") },
		"version 8":      func(r *http.Request) { r.Header.Set("Sec-WebSocket-Version", "8") },
		"no version":     func(r *http.Request) { r.Header.Del("Sec-WebSocket-Version") },
		"no key":         func(r *http.Request) { r.Header.Del("Sec-WebSocket-Key") },
		"token fragment": func(r *http.Request) { r.Header.Set("Connection", "upgrade-insecure") },
	} {
		r := base()
		mod(r)
		var he *HandshakeError
		if err := CheckRequest(r); !errors.As(err, &he) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// rawRequest sends a request and returns the response status and body.
func rawRequest(t *testing.T, addr, req string) (int, string) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	must(t, err)
	defer nc.Close()
	_, err = nc.Write([]byte(req))
	must(t, err)
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	must(t, err)
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestUpgradeRefusals(t *testing.T) {
	h := newRecordingHandler(false)
	_, addr := startServer(t, Options{CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") != "https://evil.example" }}, h)

	noKey := strings.Replace(upgradeRequest(addr, "/ws"), "Sec-WebSocket-Key: "+testKey+"\r\n", "", 1)
	if code, body := rawRequest(t, addr, noKey); code != http.StatusBadRequest || !strings.Contains(body, "Sec-WebSocket-Key") {
		t.Fatalf("missing key: %d %q", code, body)
	}
	post := strings.Replace(upgradeRequest(addr, "/ws"), "GET", "POST", 1)
	if code, _ := rawRequest(t, addr, strings.Replace(post, "\r\n\r\n", "\r\nContent-Length: 0\r\n\r\n", 1)); code != http.StatusBadRequest {
		t.Fatalf("POST: %d", code)
	}
	evil := strings.Replace(upgradeRequest(addr, "/ws"), "\r\n\r\n", "\r\nOrigin: https://evil.example\r\n\r\n", 1)
	if code, _ := rawRequest(t, addr, evil); code != http.StatusForbidden {
		t.Fatalf("refused origin: %d", code)
	}
	good := strings.Replace(upgradeRequest(addr, "/ws"), "\r\n\r\n", "\r\nOrigin: https://app.example\r\n\r\n", 1)
	nc, err := net.Dial("tcp", addr)
	must(t, err)
	defer nc.Close()
	_, _ = nc.Write([]byte(good))
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	must(t, err)
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("allowed origin: %d", resp.StatusCode)
	}
	select {
	case <-h.conns:
	case <-time.After(5 * time.Second):
		t.Fatal("no connection for the allowed origin")
	}
	if len(h.conns) != 0 {
		t.Fatal("refused requests produced connections")
	}
}

// A ResponseWriter that cannot be hijacked gets a 500.
func TestUpgradeWithoutHijacker(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/ws", nil)
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", testKey)
	w := httptest.NewRecorder()
	c, err := NewServer(Options{}).Upgrade(w, r, newRecordingHandler(false))
	if err == nil || c != nil || w.Code != http.StatusInternalServerError {
		t.Fatalf("conn %v err %v code %d", c, err, w.Code)
	}
}

func dialGorilla(t testing.TB, addr string) *gws.Conn {
	t.Helper()
	d := gws.Dialer{HandshakeTimeout: 5 * time.Second}
	c, resp, err := d.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	resp.Body.Close()
	t.Cleanup(func() { c.Close() })
	return c
}

func TestEchoWithGorilla(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			h := newRecordingHandler(true)
			_, addr := startServer(t, Options{Mode: m.mode}, h)
			c := dialGorilla(t, addr)
			sc := h.conn(t)
			if sc.RemoteAddr().String() != c.LocalAddr().String() {
				t.Fatalf("RemoteAddr %v, client %v", sc.RemoteAddr(), c.LocalAddr())
			}
			pongs := make(chan string, 4)
			c.SetPongHandler(func(s string) error { pongs <- s; return nil })
			msgs := []struct {
				typ  int
				data []byte
			}{
				{gws.TextMessage, []byte("hello")},
				{gws.BinaryMessage, []byte{0, 1, 2, 0xff}},
				{gws.TextMessage, []byte("")},
				{gws.TextMessage, bytes.Repeat([]byte("é"), 50000)},
				{gws.BinaryMessage, bytes.Repeat([]byte{7}, 300000)},
			}
			for _, msg := range msgs {
				must(t, c.WriteMessage(msg.typ, msg.data))
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				typ, data, err := c.ReadMessage()
				must(t, err)
				if typ != msg.typ || !bytes.Equal(data, msg.data) {
					t.Fatalf("echo of %d bytes: type %d, %d bytes", len(msg.data), typ, len(data))
				}
				if e := h.nextMsg(t); e.binary != (msg.typ == gws.BinaryMessage) || e.data != string(msg.data) {
					t.Fatalf("handler saw %v %d bytes", e.binary, len(e.data))
				}
			}
			// Ping gets a pong with the same payload (read by gorilla's reader).
			must(t, c.WriteControl(gws.PingMessage, []byte("are you there"), time.Now().Add(time.Second)))
			must(t, c.WriteMessage(gws.TextMessage, []byte("after ping")))
			_, data, err := c.ReadMessage()
			must(t, err)
			if string(data) != "after ping" {
				t.Fatalf("got %q", data)
			}
			select {
			case p := <-pongs:
				if p != "are you there" {
					t.Fatalf("pong %q", p)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no pong")
			}
			// Gorilla's close: the server echoes the code, the client sees a normal close.
			must(t, c.WriteControl(gws.CloseMessage, gws.FormatCloseMessage(gws.CloseNormalClosure, "done"), time.Now().Add(time.Second)))
			_, _, err = c.ReadMessage()
			if !gws.IsCloseError(err, gws.CloseNormalClosure) {
				t.Fatalf("close: %v", err)
			}
			if err := h.waitClosed(t); !errors.Is(err, io.EOF) {
				t.Fatalf("OnClose(%v), want io.EOF for a peer close", err)
			}
		})
	}
}

func TestInitialFramesAndEarlyData(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			h := newRecordingHandler(true)
			open := AppendFrame(nil, OpText, []byte(`0{"sid":"x"}`))
			second := AppendFrame(nil, OpBinary, []byte{9})
			_, addr := startServer(t, Options{Mode: m.mode}, h, open, second)
			// The client's first frames travel in the same write as the request.
			c := dialRaw(t, addr, masked(OpText, []byte("early")), masked(OpPing, []byte("e")))
			if f := c.read(); f.op != OpText || string(f.payload) != `0{"sid":"x"}` {
				t.Fatalf("first frame %v %q", f.op, f.payload)
			}
			if f := c.read(); f.op != OpBinary || !bytes.Equal(f.payload, []byte{9}) {
				t.Fatalf("second frame %v %q", f.op, f.payload)
			}
			got := map[byte]string{}
			for i := 0; i < 2; i++ {
				f := c.read()
				got[f.op] = string(f.payload)
			}
			if got[OpText] != "early" || got[OpPong] != "e" {
				t.Fatalf("echo and pong of early data: %q", got)
			}
			if e := h.nextMsg(t); e.data != "early" {
				t.Fatalf("handler saw %q", e.data)
			}
		})
	}
}

func TestEarlyDataProtocolError(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			h := newRecordingHandler(false)
			_, addr := startServer(t, Options{Mode: m.mode}, h)
			c := dialRaw(t, addr, clientFrame(true, 0, OpText, []byte("x"), false))
			c.expectClose(CloseProtocolError)
			var ce *CloseError
			if err := h.waitClosed(t); !errors.As(err, &ce) || ce.Code != CloseProtocolError {
				t.Fatalf("OnClose(%v)", err)
			}
		})
	}
}

func TestProtocolErrorsOverTheWire(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			for _, tt := range []struct {
				name  string
				frame []byte
				code  int
			}{
				{"unmasked", clientFrame(true, 0, OpBinary, []byte("x"), false), CloseProtocolError},
				{"invalid utf-8", masked(OpText, []byte{'a', 0xff}), CloseInvalidPayload},
				{"too big", masked(OpBinary, make([]byte, 2000)), CloseTooBig},
				{"reserved bit", clientFrame(true, 0x40, OpText, []byte("x"), true), CloseProtocolError},
			} {
				h := newRecordingHandler(true)
				_, addr := startServer(t, Options{Mode: m.mode, MaxMessage: 1024}, h)
				c := dialRaw(t, addr)
				c.send(masked(OpText, []byte("fine")))
				if f := c.read(); string(f.payload) != "fine" {
					t.Fatalf("%s: echo %q", tt.name, f.payload)
				}
				c.send(tt.frame)
				c.expectClose(tt.code)
				var ce *CloseError
				if err := h.waitClosed(t); !errors.As(err, &ce) || ce.Code != tt.code {
					t.Fatalf("%s: OnClose(%v)", tt.name, err)
				}
			}
		})
	}
}

func TestPeerCloseEcho(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			for _, tt := range []struct {
				body []byte
				echo []byte
			}{
				{closeBody(1001, "going away"), closeBody(1001, "")},
				{nil, nil},
				{closeBody(4000, ""), closeBody(4000, "")},
			} {
				h := newRecordingHandler(true)
				_, addr := startServer(t, Options{Mode: m.mode}, h)
				c := dialRaw(t, addr)
				// Data after the close frame is ignored.
				c.send(masked(OpClose, tt.body), masked(OpText, []byte("ignored")))
				f := c.read()
				if f.op != OpClose || !bytes.Equal(f.payload, tt.echo) {
					t.Fatalf("close %x: got op %d payload %x, want %x", tt.body, f.op, f.payload, tt.echo)
				}
				c.expectEOF()
				if err := h.waitClosed(t); !errors.Is(err, io.EOF) {
					t.Fatalf("OnClose(%v)", err)
				}
				if len(h.msgs) != 0 {
					t.Fatal("a message after the close frame was delivered")
				}
			}
		})
	}
}

func TestServerClose(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			h := newRecordingHandler(false)
			_, addr := startServer(t, Options{Mode: m.mode}, h)
			c := dialRaw(t, addr)
			sc := h.conn(t)
			for i := 0; i < 3; i++ {
				must(t, sc.WriteMessage(false, []byte(fmt.Sprint("m", i))))
			}
			sc.Close()
			sc.Close() // idempotent
			if err := sc.WriteMessage(false, []byte("late")); !errors.Is(err, ErrClosed) {
				t.Fatalf("write after Close: %v", err)
			}
			for i := 0; i < 3; i++ {
				if f := c.read(); f.op != OpText || string(f.payload) != fmt.Sprint("m", i) {
					t.Fatalf("frame %d: %v %q", i, f.op, f.payload)
				}
			}
			// The close frame has no status, as engine.io's.
			if f := c.read(); f.op != OpClose || len(f.payload) != 0 {
				t.Fatalf("close frame %v %x", f.op, f.payload)
			}
			c.expectEOF()
			if err := h.waitClosed(t); err != nil {
				t.Fatalf("OnClose(%v), want nil", err)
			}
			if sc.Buffered() != 0 {
				t.Fatal("state after close")
			}
			sc.Abort() // no second OnClose
			time.Sleep(20 * time.Millisecond)
			if n := h.closeCalls(); n != 1 {
				t.Fatalf("OnClose called %d times", n)
			}
		})
	}
}

func TestCloseWithCode(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			h := newRecordingHandler(false)
			_, addr := startServer(t, Options{Mode: m.mode}, h)
			c := dialRaw(t, addr)
			sc := h.conn(t)
			sc.CloseWithCode(ClosePolicyViolation, "slow down")
			f := c.read()
			if f.closeCode() != ClosePolicyViolation || string(f.payload[2:]) != "slow down" {
				t.Fatalf("close frame %x", f.payload)
			}
			c.expectEOF()
			if err := h.waitClosed(t); err != nil {
				t.Fatalf("OnClose(%v)", err)
			}
		})
	}
}

func TestAbort(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			h := newRecordingHandler(false)
			_, addr := startServer(t, Options{Mode: m.mode}, h)
			c := dialRaw(t, addr)
			sc := h.conn(t)
			sc.Abort()
			if err := h.waitClosed(t); !errors.Is(err, ErrClosed) {
				t.Fatalf("OnClose(%v)", err)
			}
			// No close frame: the connection just ends.
			_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			rest, _ := io.ReadAll(c.br)
			if len(rest) != 0 {
				t.Fatalf("got %x after Abort", rest)
			}
			if err := sc.WriteMessage(true, []byte{1}); !errors.Is(err, ErrClosed) {
				t.Fatalf("write after Abort: %v", err)
			}
			sc.Close() // no effect after Abort
		})
	}
}

func TestClientGoesAway(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			// A plain TCP close is EOF.
			h := newRecordingHandler(false)
			_, addr := startServer(t, Options{Mode: m.mode}, h)
			c := dialRaw(t, addr)
			h.conn(t)
			c.nc.Close()
			if err := h.waitClosed(t); !errors.Is(err, io.EOF) {
				t.Fatalf("OnClose(%v), want io.EOF", err)
			}
			// A reset is an error other than EOF.
			c = dialRaw(t, addr)
			h.conn(t)
			c.send(masked(OpText, []byte("x")))
			h.nextMsg(t)
			must(t, c.nc.(*net.TCPConn).SetLinger(0))
			c.nc.Close()
			if err := h.waitClosed(t); err == nil || errors.Is(err, io.EOF) {
				t.Fatalf("OnClose(%v) after a reset", err)
			}
		})
	}
}

func TestWriteOrderPreserved(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			h := newRecordingHandler(false)
			_, addr := startServer(t, Options{Mode: m.mode, MaxQueue: 64 << 20}, h)
			c := dialRaw(t, addr)
			sc := h.conn(t)
			const writers, per = 4, 5000
			var wg sync.WaitGroup
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for i := 0; i < per; i++ {
						var b [8]byte
						binary.BigEndian.PutUint32(b[:], uint32(w))
						binary.BigEndian.PutUint32(b[4:], uint32(i))
						if err := sc.WriteFrames(AppendFrame(nil, OpBinary, b[:])); err != nil {
							t.Errorf("write: %v", err)
							return
						}
					}
				}(w)
			}
			next := make([]uint32, writers)
			for n := 0; n < writers*per; n++ {
				f := c.read()
				w, i := binary.BigEndian.Uint32(f.payload), binary.BigEndian.Uint32(f.payload[4:])
				if i != next[w] {
					t.Fatalf("writer %d: got %d, want %d", w, i, next[w])
				}
				next[w]++
			}
			wg.Wait()
			poll.Until(t, "queue drained", func() bool { return sc.Buffered() == 0 })
		})
	}
}

// Frames queued while a flush is pending go out together: many WriteFrames,
// one writev (in batches of at most 1024 buffers), in order.
func TestWriteCoalescing(t *testing.T) {
	h := newRecordingHandler(false)
	_, addr := startServer(t, Options{MaxQueue: 64 << 20}, h)
	c := dialRaw(t, addr)
	sc := h.conn(t)
	for _, n := range []int{500, 3000} {
		// Hold the connection as the flusher does while it is busy.
		sc.mu.Lock()
		sc.scheduled = true
		sc.mu.Unlock()
		total := 0
		for i := 0; i < n; i++ {
			f := AppendFrame(nil, OpText, []byte(fmt.Sprint(i)))
			total += len(f)
			must(t, sc.WriteFrames(f))
		}
		if got := sc.Buffered(); got != total {
			t.Fatalf("n=%d: %d bytes buffered before the flush, want %d (frames were written one by one)", n, got, total)
		}
		sc.mu.Lock()
		queued := sc.pending()
		sc.mu.Unlock()
		if queued != n {
			t.Fatalf("queue holds %d frames", queued)
		}
		sc.flush(newWriter()) // one flush for all of them
		if got := sc.Buffered(); got != 0 {
			t.Fatalf("n=%d: %d bytes left after one flush", n, got)
		}
		for i := 0; i < n; i++ {
			if f := c.read(); string(f.payload) != fmt.Sprint(i) {
				t.Fatalf("n=%d: frame %d = %q", n, i, f.payload)
			}
		}
	}
	// With the flusher free again, writes go out on their own.
	sc.mu.Lock()
	sched := sc.scheduled
	sc.mu.Unlock()
	if sched {
		t.Fatal("flush left the connection scheduled with an empty queue")
	}
	must(t, sc.WriteMessage(false, []byte("solo")))
	if f := c.read(); string(f.payload) != "solo" {
		t.Fatalf("got %q", f.payload)
	}
}

func TestTrimWritten(t *testing.T) {
	bufs := [][]byte{[]byte("abc"), []byte("de"), []byte("fgh")}
	for _, tt := range []struct {
		n    int
		want string
	}{{0, "abc|de|fgh"}, {2, "c|de|fgh"}, {3, "de|fgh"}, {4, "e|fgh"}, {6, "gh"}, {7, "h"}, {8, ""}} {
		in := [][]byte{bufs[0], bufs[1], bufs[2]}
		got := trimWritten(in, tt.n)
		var parts []string
		for _, b := range got {
			parts = append(parts, string(b))
		}
		if s := strings.Join(parts, "|"); s != tt.want {
			t.Errorf("trimWritten(%d) = %q, want %q", tt.n, s, tt.want)
		}
		if tt.n == 8 && got != nil {
			t.Error("fully written queue should be nil")
		}
	}
}

func TestQueueFull(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			h := newRecordingHandler(false)
			const maxQueue = 256 << 10
			_, addr := startServer(t, Options{Mode: m.mode, MaxQueue: maxQueue}, h)
			c := dialRaw(t, addr)
			sc := h.conn(t)

			// One write over the limit is refused whole.
			if err := sc.WriteFrames(make([]byte, maxQueue+1)); !errors.Is(err, ErrQueueFull) {
				t.Fatalf("oversized write: %v", err)
			}
			// A client that does not read: writes are accepted until the
			// socket buffers and then the queue fill up, never beyond MaxQueue.
			payload := bytes.Repeat([]byte{0xab}, 16<<10)
			sent := 0
			deadline := time.Now().Add(20 * time.Second)
			for {
				err := sc.WriteFrames(AppendFrame(nil, OpBinary, payload))
				if errors.Is(err, ErrQueueFull) {
					break
				}
				must(t, err)
				sent++
				if b := sc.Buffered(); b > maxQueue {
					t.Fatalf("buffered %d > MaxQueue", b)
				}
				if time.Now().After(deadline) {
					t.Fatalf("queue never filled after %d frames", sent)
				}
				if sent%64 == 0 {
					time.Sleep(time.Millisecond) // let the flusher hit the full socket
				}
			}
			if sc.Buffered() == 0 {
				t.Fatal("queue full but nothing buffered")
			}
			// When the client reads again, everything accepted arrives, in order,
			// and the queue drains (the writer waited for the socket).
			for i := 0; i < sent; i++ {
				f := c.read()
				if len(f.payload) != len(payload) {
					t.Fatalf("frame %d: %d bytes", i, len(f.payload))
				}
			}
			poll.Until(t, "queue drained", func() bool { return sc.Buffered() == 0 })
			must(t, sc.WriteMessage(false, []byte("after")))
			if f := c.read(); string(f.payload) != "after" {
				t.Fatalf("got %q", f.payload)
			}
		})
	}
}

// A closing connection whose peer does not read is torn down after
// CloseTimeout.
func TestCloseTimeout(t *testing.T) {
	h := newRecordingHandler(false)
	_, addr := startServer(t, Options{MaxQueue: 64 << 20, CloseTimeout: 200 * time.Millisecond}, h)
	_ = dialRaw(t, addr)
	sc := h.conn(t)
	payload := make([]byte, 64<<10)
	// Full means the kernel buffers are full too: a megabyte still queued
	// after the flusher had time to write is one the peer's window refuses
	// (right after a write the queue holds it whatever the kernel's room).
	poll.Until(t, "socket full", func() bool {
		for i := 0; i < 16; i++ {
			must(t, sc.WriteMessage(true, payload))
		}
		time.Sleep(20 * time.Millisecond)
		return sc.Buffered() > 1<<20
	})
	start := time.Now()
	sc.Close()
	if err := h.waitClosed(t); !errors.Is(err, ErrClosed) {
		t.Fatalf("OnClose(%v)", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("closed after %v, before CloseTimeout", d)
	}
	if sc.Buffered() != 0 {
		t.Fatal("queue kept after teardown")
	}
}

func TestSeveralPollers(t *testing.T) {
	h := newRecordingHandler(true)
	ws, addr := startServer(t, Options{Pollers: 3}, h)
	var clients []*rawClient
	for i := 0; i < 9; i++ {
		clients = append(clients, dialRaw(t, addr))
	}
	for i, c := range clients {
		c.send(masked(OpText, []byte(fmt.Sprint("c", i))))
	}
	for i, c := range clients {
		if f := c.read(); string(f.payload) != fmt.Sprint("c", i) {
			t.Fatalf("client %d got %q", i, f.payload)
		}
	}
	if len(ws.pollers) != 3 {
		t.Fatalf("%d pollers", len(ws.pollers))
	}
	used := map[*poller]bool{}
	for i := 0; i < 9; i++ {
		used[h.conn(t).poller] = true
	}
	if len(used) != 3 {
		t.Fatalf("connections spread over %d pollers", len(used))
	}
}

// Many connections flooding at once do not starve a quiet one.
func TestFloodingClientsDoNotStarveOthers(t *testing.T) {
	h := newRecordingHandler(false)
	_, addr := startServer(t, Options{}, h)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		c := dialRaw(t, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			chunk := bytes.Repeat(masked(OpBinary, make([]byte, 1000)), 64)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.nc.Write(chunk); err != nil {
					return
				}
			}
		}()
	}
	go func() {
		for {
			select {
			case <-h.msgs:
			case <-stop:
				return
			}
		}
	}()
	quiet := dialRaw(t, addr)
	quiet.send(masked(OpPing, []byte("q")))
	if f := quiet.read(); f.op != OpPong || string(f.payload) != "q" {
		t.Fatalf("quiet client got %v %q", f.op, f.payload)
	}
	close(stop)
	wg.Wait()
}

// A connection that lags keeps only the newest queued frame per key, in the
// position of the first one; unkeyed frames are never replaced.
func TestWriteKeyedConflates(t *testing.T) {
	h := newRecordingHandler(false)
	_, addr := startServer(t, Options{MaxQueue: 1000}, h)
	c := dialRaw(t, addr)
	sc := h.conn(t)
	frame := func(s string) []byte { return AppendFrame(nil, OpText, []byte(s)) }

	// Hold the connection as the flusher does while it is busy: it lags.
	sc.mu.Lock()
	sc.scheduled = true
	sc.mu.Unlock()
	// A keyed frame written to an empty queue may already be on its way: not replaceable.
	must(t, sc.WriteKeyed("AAPL", frame("AAPL 1")))
	must(t, sc.WriteFrames(frame("trade")))
	must(t, sc.WriteKeyed("AAPL", frame("AAPL 2")))
	must(t, sc.WriteKeyed("MSFT", frame("MSFT 1")))
	must(t, sc.WriteKeyed("AAPL", frame("AAPL 3 longer")))
	must(t, sc.WriteKeyed("MSFT", frame("MSFT 2")))
	must(t, sc.WriteFrames(frame("after")))
	want := []string{"AAPL 1", "trade", "AAPL 3 longer", "MSFT 2", "after"}
	total := 0
	for _, w := range want {
		total += len(frame(w))
	}
	if got := sc.Buffered(); got != total {
		t.Fatalf("Buffered %d, want %d (replaced frames must not count)", got, total)
	}
	sc.flush(newWriter())
	for _, w := range want {
		if f := c.read(); string(f.payload) != w {
			t.Fatalf("got %q, want %q", f.payload, w)
		}
	}
	// Once written, a key starts afresh.
	must(t, sc.WriteKeyed("AAPL", frame("AAPL 4")))
	if f := c.read(); string(f.payload) != "AAPL 4" {
		t.Fatalf("got %q", f.payload)
	}
	// Limits and closed connections.
	if err := sc.WriteKeyed("BIG", make([]byte, 1001)); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("oversized keyed write: %v", err)
	}
	sc.Close()
	if err := sc.WriteKeyed("AAPL", frame("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("keyed write after Close: %v", err)
	}
}

// With a client that stops reading, keyed frames stay bounded: the queue
// holds one frame per key however many are written.
func TestWriteKeyedBoundsALaggingQueue(t *testing.T) {
	h := newRecordingHandler(false)
	_, addr := startServer(t, Options{MaxQueue: 8 << 20}, h)
	c := dialRaw(t, addr)
	sc := h.conn(t)
	payload := bytes.Repeat([]byte{'q'}, 4096)
	// Fill the socket until frames stay queued.
	poll.Until(t, "socket full", func() bool {
		for i := 0; i < 64; i++ {
			must(t, sc.WriteFrames(AppendFrame(nil, OpBinary, payload)))
		}
		time.Sleep(time.Millisecond)
		sc.mu.Lock()
		defer sc.mu.Unlock()
		return sc.waiting && sc.pending() > 0
	})
	before := sc.Buffered()
	for i := 0; i < 10000; i++ {
		key := fmt.Sprint("sym", i%10)
		must(t, sc.WriteKeyed(key, AppendFrame(nil, OpText, []byte(fmt.Sprintf("%s #%05d", key, i)))))
	}
	grown := sc.Buffered() - before
	if one := len(AppendFrame(nil, OpText, []byte("sym0 #00000"))); grown > 10*one {
		t.Fatalf("queue grew by %d bytes for 10 keys (%d per frame)", grown, one)
	}
	// The client catches up and sees the newest frame of each key last.
	last := map[string]string{}
	deadline := time.Now().Add(20 * time.Second)
	for len(last) < 10 || last["sym9"] != "sym9 #09999" {
		if time.Now().After(deadline) {
			t.Fatalf("latest frames not received: %v", last)
		}
		f := c.read()
		if f.op == OpText {
			last[string(f.payload[:4])] = string(f.payload)
		}
	}
	for k := 0; k < 10; k++ {
		key := fmt.Sprint("sym", k)
		if want := fmt.Sprintf("%s #%05d", key, 9990+k); last[key] != want {
			t.Fatalf("%s: last %q, want %q", key, last[key], want)
		}
	}
}
