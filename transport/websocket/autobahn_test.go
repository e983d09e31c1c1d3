package websocket

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
)

// An Autobahn-lite run: cases modelled on the Autobahn|Testsuite sections
// (1 framing, 2 pings/pongs, 3 reserved bits, 4 opcodes, 5 fragmentation,
// 6 UTF-8, 7 close handling, 9 limits) against an echo server, in both
// read modes. Each case sends frames and lists what the server must answer:
// echoed messages and pongs in order, then optionally a close code.
type abCase struct {
	name  string
	send  [][]byte
	reply []serverFrame // expected frames, in order
	close int           // expected close code after the replies (0: none, connection stays open)
}

func text(s string) serverFrame               { return serverFrame{fin: true, op: OpText, payload: []byte(s)} }
func bin(b []byte) serverFrame                { return serverFrame{fin: true, op: OpBinary, payload: b} }
func pong(b []byte) serverFrame               { return serverFrame{fin: true, op: OpPong, payload: b} }
func frag(fin bool, op byte, p string) []byte { return clientFrame(fin, 0, op, []byte(p), true) }

func autobahnCases() []abCase {
	var cases []abCase
	// 1.1 / 1.2: text and binary messages of boundary sizes.
	for _, n := range []int{0, 125, 126, 127, 128, 65535, 65536, 1 << 20} {
		p := strings.Repeat("*", n)
		cases = append(cases,
			abCase{name: fmt.Sprintf("1.1 text %d", n), send: [][]byte{masked(OpText, []byte(p))}, reply: []serverFrame{text(p)}},
			abCase{name: fmt.Sprintf("1.2 binary %d", n), send: [][]byte{masked(OpBinary, []byte(p))}, reply: []serverFrame{bin([]byte(p))}},
		)
	}
	// 2: pings and pongs.
	cases = append(cases,
		abCase{name: "2.1 ping empty", send: [][]byte{masked(OpPing, nil)}, reply: []serverFrame{pong([]byte{})}},
		abCase{name: "2.2 ping text", send: [][]byte{masked(OpPing, []byte("Hello, world!"))}, reply: []serverFrame{pong([]byte("Hello, world!"))}},
		abCase{name: "2.3 ping binary", send: [][]byte{masked(OpPing, []byte{0, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0, 0xff})}, reply: []serverFrame{pong([]byte{0, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0, 0xff})}},
		abCase{name: "2.4 ping 125", send: [][]byte{masked(OpPing, bytes.Repeat([]byte{0xfe}, 125))}, reply: []serverFrame{pong(bytes.Repeat([]byte{0xfe}, 125))}},
		abCase{name: "2.5 ping 126", send: [][]byte{masked(OpPing, bytes.Repeat([]byte{0xfe}, 126))}, close: CloseProtocolError},
		abCase{name: "2.6 unsolicited pong", send: [][]byte{masked(OpPong, []byte("x")), masked(OpText, []byte("after"))}, reply: []serverFrame{text("after")}},
		abCase{name: "2.10 ten pings", send: func() [][]byte {
			var out [][]byte
			for i := 0; i < 10; i++ {
				out = append(out, masked(OpPing, []byte(fmt.Sprint("payload-", i))))
			}
			return out
		}(), reply: func() []serverFrame {
			var out []serverFrame
			for i := 0; i < 10; i++ {
				out = append(out, pong([]byte(fmt.Sprint("payload-", i))))
			}
			return out
		}()},
	)
	// 3: reserved bits.
	for i, rsv := range []byte{0x40, 0x20, 0x60, 0x10, 0x50, 0x30, 0x70} {
		cases = append(cases, abCase{
			name:  fmt.Sprintf("3.%d rsv %#x", i+1, rsv),
			send:  [][]byte{masked(OpText, []byte("ok")), clientFrame(true, rsv, OpText, []byte("x"), true), masked(OpText, []byte("never"))},
			reply: []serverFrame{text("ok")}, close: CloseProtocolError,
		})
	}
	// 4: reserved opcodes.
	for _, op := range []byte{3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF} {
		cases = append(cases, abCase{
			name:  fmt.Sprintf("4 opcode %#x", op),
			send:  [][]byte{masked(OpText, []byte("ok")), masked(op, []byte("x"))},
			reply: []serverFrame{text("ok")}, close: CloseProtocolError,
		})
	}
	// 5: fragmentation.
	cases = append(cases,
		abCase{name: "5.1 fragmented ping", send: [][]byte{frag(false, OpPing, "a"), frag(true, OpContinuation, "b")}, close: CloseProtocolError},
		abCase{name: "5.2 fragmented pong", send: [][]byte{frag(false, OpPong, "a"), frag(true, OpContinuation, "b")}, close: CloseProtocolError},
		abCase{name: "5.3 text in two fragments", send: [][]byte{frag(false, OpText, "frag"), frag(true, OpContinuation, "ment")}, reply: []serverFrame{text("fragment")}},
		abCase{name: "5.6 ping between fragments", send: [][]byte{frag(false, OpText, "a"), masked(OpPing, []byte("p")), frag(true, OpContinuation, "b")},
			reply: []serverFrame{pong([]byte("p")), text("ab")}},
		abCase{name: "5.9 continuation first", send: [][]byte{frag(true, OpContinuation, "x"), masked(OpText, []byte("never"))}, close: CloseProtocolError},
		abCase{name: "5.15 text inside fragmented", send: [][]byte{frag(false, OpText, "a"), frag(false, OpContinuation, "b"), masked(OpText, []byte("c"))}, close: CloseProtocolError},
		abCase{name: "5.19 many fragments with pings", send: [][]byte{
			frag(false, OpText, "1"), frag(false, OpContinuation, "2"), masked(OpPing, []byte("x")),
			frag(false, OpContinuation, "3"), masked(OpPing, []byte("y")), frag(true, OpContinuation, "4"),
		}, reply: []serverFrame{pong([]byte("x")), pong([]byte("y")), text("1234")}},
		abCase{name: "5.20 empty fragments", send: [][]byte{frag(false, OpText, ""), frag(false, OpContinuation, ""), frag(true, OpContinuation, "")}, reply: []serverFrame{text("")}},
	)
	// 6: UTF-8.
	hello := "κόσμε"
	var splitEverywhere [][]byte
	for i := 1; i < len(hello); i++ {
		splitEverywhere = append(splitEverywhere, frag(false, OpText, hello[:i]), frag(true, OpContinuation, hello[i:]))
	}
	var splitReplies []serverFrame
	for i := 1; i < len(hello); i++ {
		splitReplies = append(splitReplies, text(hello))
	}
	cases = append(cases,
		abCase{name: "6.2 valid multi-byte", send: [][]byte{masked(OpText, []byte(hello))}, reply: []serverFrame{text(hello)}},
		abCase{name: "6.4 split at every byte", send: splitEverywhere, reply: splitReplies},
		abCase{name: "6.5 4-byte character", send: [][]byte{masked(OpText, []byte("\U0001F600\U0010FFFF"))}, reply: []serverFrame{text("\U0001F600\U0010FFFF")}},
		abCase{name: "6.3 invalid in the middle", send: [][]byte{masked(OpText, []byte("κόσμε\xed\xa0\x80edited"))}, close: CloseInvalidPayload},
		abCase{name: "6.6 invalid in a later fragment", send: [][]byte{frag(false, OpText, "κό"), frag(true, OpContinuation, "σμ\xff")}, close: CloseInvalidPayload},
		abCase{name: "6.8 code point beyond U+10FFFF", send: [][]byte{masked(OpText, []byte("\xf4\x90\x80\x80"))}, close: CloseInvalidPayload},
		abCase{name: "6.12 lone continuation byte", send: [][]byte{masked(OpText, []byte("\x80"))}, close: CloseInvalidPayload},
		abCase{name: "6.21 overlong slash", send: [][]byte{masked(OpText, []byte("\xe0\x80\xaf"))}, close: CloseInvalidPayload},
		abCase{name: "6 binary is not checked", send: [][]byte{masked(OpBinary, []byte{0xff, 0xfe})}, reply: []serverFrame{bin([]byte{0xff, 0xfe})}},
	)
	// 7: close handling. A valid close is echoed with its code; an invalid one gets 1002 (or 1007).
	for _, code := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		cases = append(cases, abCase{name: fmt.Sprintf("7.7 close %d", code), send: [][]byte{masked(OpClose, closeBody(code, "r"))}, close: code})
	}
	for _, code := range []int{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		cases = append(cases, abCase{name: fmt.Sprintf("7.9 close %d", code), send: [][]byte{masked(OpClose, closeBody(code, ""))}, close: CloseProtocolError})
	}
	cases = append(cases,
		abCase{name: "7.1 close then text", send: [][]byte{masked(OpClose, closeBody(1000, "")), masked(OpText, []byte("never"))}, close: 1000},
		abCase{name: "7.3 close empty", send: [][]byte{masked(OpClose, nil)}, close: CloseNoStatus},
		abCase{name: "7.3.2 close one byte", send: [][]byte{masked(OpClose, []byte{3})}, close: CloseProtocolError},
		abCase{name: "7.3.5 close 123-byte reason", send: [][]byte{masked(OpClose, closeBody(1000, strings.Repeat("*", 123)))}, close: 1000},
		abCase{name: "7.5 close reason invalid utf-8", send: [][]byte{masked(OpClose, closeBody(1000, "\xce\xba\xe1\xbd"))}, close: CloseInvalidPayload},
	)
	// 9: limits (MaxMessage 1 MiB).
	big := make([]byte, 1<<20+1)
	cases = append(cases,
		abCase{name: "9 one byte over the limit", send: [][]byte{masked(OpBinary, big)}, close: CloseTooBig},
		abCase{name: "9 over the limit in fragments", send: [][]byte{clientFrame(false, 0, OpBinary, big[:1<<19], true), clientFrame(true, 0, OpContinuation, big[1<<19:], true)}, close: CloseTooBig},
	)
	return cases
}

func TestAutobahnLite(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			h := newRecordingHandler(true)
			_, addr := startServer(t, Options{Mode: m.mode, MaxMessage: 1 << 20}, h)
			done := make(chan struct{})
			defer close(done)
			go func() {
				for {
					select {
					case <-h.msgs:
					case <-h.conns:
					case <-done:
						return
					}
				}
			}()
			for _, tc := range autobahnCases() {
				c := dialRaw(t, addr)
				if tc.close != 0 {
					// The server may close before it has read everything
					// (e.g. a frame announced too big): a failed write is
					// fine, the close frame is what counts.
					var all []byte
					for _, f := range tc.send {
						all = append(all, f...)
					}
					_, _ = c.nc.Write(all)
				} else {
					c.send(tc.send...)
				}
				for i, want := range tc.reply {
					got := c.read()
					if got.op != want.op || !got.fin || !bytes.Equal(got.payload, want.payload) {
						t.Fatalf("%s: reply %d = op %d %q, want op %d %q", tc.name, i, got.op, trunc(string(got.payload)), want.op, trunc(string(want.payload)))
					}
				}
				if tc.close == 0 {
					// Still open: a ping is answered.
					c.send(masked(OpPing, []byte("alive")))
					if f := c.read(); f.op != OpPong || string(f.payload) != "alive" {
						t.Fatalf("%s: connection not usable afterwards: op %d %q", tc.name, f.op, f.payload)
					}
					c.nc.Close()
					continue
				}
				f := c.read()
				if f.op != OpClose {
					t.Fatalf("%s: got op %d %q, want a close frame", tc.name, f.op, trunc(string(f.payload)))
				}
				code := CloseNoStatus
				if len(f.payload) >= 2 {
					code = int(binary.BigEndian.Uint16(f.payload))
				}
				if code != tc.close {
					t.Fatalf("%s: close code %d (%q), want %d", tc.name, code, f.payload, tc.close)
				}
				c.expectEOF()
			}
		})
	}
}
