package websocket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAppendFrameSizes(t *testing.T) {
	tests := []struct {
		n      int
		header []byte
	}{
		{0, []byte{0x82, 0}},
		{1, []byte{0x82, 1}},
		{125, []byte{0x82, 125}},
		{126, []byte{0x82, 126, 0, 126}},
		{127, []byte{0x82, 126, 0, 127}},
		{65535, []byte{0x82, 126, 0xff, 0xff}},
		{65536, []byte{0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
		{1 << 20, []byte{0x82, 127, 0, 0, 0, 0, 0, 0x10, 0, 0}},
	}
	for _, tt := range tests {
		payload := bytes.Repeat([]byte{0xa5}, tt.n)
		f := AppendFrame(nil, OpBinary, payload)
		if !bytes.Equal(f[:len(tt.header)], tt.header) {
			t.Errorf("n=%d: header %x, want %x", tt.n, f[:len(tt.header)], tt.header)
		}
		if len(f) != len(tt.header)+tt.n || FrameSize(tt.n) != len(f) {
			t.Errorf("n=%d: frame %d bytes, FrameSize %d, want %d", tt.n, len(f), FrameSize(tt.n), len(tt.header)+tt.n)
		}
		if !bytes.Equal(f[len(tt.header):], payload) {
			t.Errorf("n=%d: payload changed", tt.n)
		}
		got, err := readServerFrame(bytes.NewReader(f))
		if err != nil || !got.fin || got.op != OpBinary || !bytes.Equal(got.payload, payload) {
			t.Errorf("n=%d: frame does not read back: %v", tt.n, err)
		}
	}
	// Appends to dst; the opcode is kept.
	f := AppendFrame([]byte("xy"), OpText, []byte("hi"))
	if string(f) != "xy\x81\x02hi" {
		t.Fatalf("AppendFrame with prefix = %q", f)
	}
	if f := AppendFrame(nil, OpClose, nil); !bytes.Equal(f, []byte{0x88, 0}) {
		t.Fatalf("empty close = %x", f)
	}
}

func TestAcceptKey(t *testing.T) {
	// RFC 6455 section 1.3.
	if got := AcceptKey("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("AcceptKey = %q", got)
	}
}

func TestUnmaskAtEveryPosition(t *testing.T) {
	mask := [4]byte{0x01, 0x82, 0x43, 0xc4}
	src := make([]byte, 40)
	for i := range src {
		src[i] = byte(i * 7)
	}
	for pos := 0; pos < 8; pos++ {
		for n := 0; n <= len(src); n++ {
			b := append([]byte(nil), src[:n]...)
			unmask(b, mask, pos)
			for i := range b {
				if want := src[i] ^ mask[(pos+i)%4]; b[i] != want {
					t.Fatalf("pos=%d n=%d i=%d: %x, want %x", pos, n, i, b[i], want)
				}
			}
		}
	}
}

func TestCloseErrorWrapsErrProtocol(t *testing.T) {
	err := error(&CloseError{Code: CloseTooBig, Reason: "message too big"})
	if !errors.Is(err, ErrProtocol) || err.Error() != "websocket: message too big" {
		t.Fatalf("%v", err)
	}
	if (&HandshakeError{"x"}).Error() != "websocket: x" {
		t.Fatal("HandshakeError text")
	}
}

// A close reason longer than a control frame allows is truncated so the
// frame stays valid: at most 125 bytes and, as RFC 6455 §5.5.1 requires of
// the reason, valid UTF-8.
func TestClosePayloadTruncatesReason(t *testing.T) {
	p := closePayload(4000, strings.Repeat("x", 200))
	if len(p) != 125 || binary.BigEndian.Uint16(p) != 4000 {
		t.Fatalf("close payload %d bytes", len(p))
	}
	if f := AppendFrame(nil, OpClose, p); f[1] != 125 {
		t.Fatalf("close frame length %d", f[1])
	}
	p = closePayload(4000, strings.Repeat("é", 100))
	if len(p) > 125 || binary.BigEndian.Uint16(p) != 4000 {
		t.Fatalf("close payload %d bytes", len(p))
	}
	if !utf8.Valid(p[2:]) {
		t.Fatalf("close reason truncated inside a character: %q", p[len(p)-3:])
	}
	// What the server sends must pass its own reader's validation.
	if err := validateClose(p); err != nil {
		t.Fatalf("the server's own close frame is invalid: %v", err)
	}
}

// ---- reader ----

// pendingBytes returns the bytes of an incomplete frame the reader holds.
func (r *reader) pendingBytes() []byte {
	if r.st == nil {
		return nil
	}
	return r.st.pending
}

type readMsg struct {
	op      byte
	payload string
}

// feedAll feeds data in chunks of size chunk (all at once when 0) and
// returns the messages and the error.
func feedAll(max int, data []byte, chunk int) ([]readMsg, error) {
	r := reader{max: int32(max)}
	var out []readMsg
	emit := func(op byte, p []byte) error {
		out = append(out, readMsg{op, string(p)})
		return nil
	}
	data = append([]byte(nil), data...) // the reader unmasks in place
	if chunk <= 0 {
		chunk = len(data) + 1
	}
	for len(data) > 0 {
		n := min(chunk, len(data))
		// The caller's buffer may be reused after feed returns.
		buf := append([]byte(nil), data[:n]...)
		err := r.feed(buf, emit)
		for i := range buf {
			buf[i] = 0xEE
		}
		if err != nil {
			return out, err
		}
		data = data[n:]
	}
	return out, nil
}

func closeCode(err error) int {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return 0
}

func cat(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

func TestReaderMessages(t *testing.T) {
	big := strings.Repeat("x", 70000)
	tests := []struct {
		name string
		in   []byte
		want []readMsg
	}{
		{"text", masked(OpText, []byte("hello")), []readMsg{{OpText, "hello"}}},
		{"empty text", masked(OpText, nil), []readMsg{{OpText, ""}}},
		{"binary", masked(OpBinary, []byte{0, 0xff, 1}), []readMsg{{OpBinary, "\x00\xff\x01"}}},
		{"16-bit length", masked(OpText, []byte(big[:300])), []readMsg{{OpText, big[:300]}}},
		{"64-bit length", masked(OpBinary, []byte(big)), []readMsg{{OpBinary, big}}},
		{"two in one read", cat(masked(OpText, []byte("a")), masked(OpText, []byte("b"))), []readMsg{{OpText, "a"}, {OpText, "b"}}},
		{"fragmented", cat(
			clientFrame(false, 0, OpText, []byte("Hel"), true),
			clientFrame(false, 0, OpContinuation, []byte("lo, "), true),
			clientFrame(true, 0, OpContinuation, []byte("wörld"), true),
		), []readMsg{{OpText, "Hello, wörld"}}},
		{"utf-8 split across fragments", cat(
			clientFrame(false, 0, OpText, []byte("\xc3"), true),
			clientFrame(true, 0, OpContinuation, []byte("\xa9"), true),
		), []readMsg{{OpText, "é"}}},
		{"fragmented binary with empty parts", cat(
			clientFrame(false, 0, OpBinary, nil, true),
			clientFrame(false, 0, OpContinuation, []byte{1}, true),
			clientFrame(true, 0, OpContinuation, nil, true),
		), []readMsg{{OpBinary, "\x01"}}},
		{"control frames inside a fragmented message", cat(
			clientFrame(false, 0, OpText, []byte("a"), true),
			masked(OpPing, []byte("p1")),
			clientFrame(false, 0, OpContinuation, []byte("b"), true),
			masked(OpPong, []byte("p2")),
			clientFrame(true, 0, OpContinuation, []byte("c"), true),
		), []readMsg{{OpPing, "p1"}, {OpPong, "p2"}, {OpText, "abc"}}},
		{"ping 125", masked(OpPing, []byte(big[:125])), []readMsg{{OpPing, big[:125]}}},
		{"close empty", masked(OpClose, nil), []readMsg{{OpClose, ""}}},
		{"close 1000 reason", masked(OpClose, closeBody(1000, "bye")), []readMsg{{OpClose, "\x03\xe8bye"}}},
		{"close 1012", masked(OpClose, closeBody(1012, "")), []readMsg{{OpClose, "\x03\xf4"}}},
		{"close 3000", masked(OpClose, closeBody(3000, "")), []readMsg{{OpClose, "\x0b\xb8"}}},
		{"close 4999", masked(OpClose, closeBody(4999, "é")), []readMsg{{OpClose, "\x13\x87é"}}},
	}
	for _, tt := range tests {
		for _, chunk := range []int{0, 1, 2, 3, 7, 100, 4096} {
			got, err := feedAll(1<<20, tt.in, chunk)
			if err != nil {
				t.Fatalf("%s (chunk %d): %v", tt.name, chunk, err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("%s (chunk %d): %d messages, want %d", tt.name, chunk, len(got), len(tt.want))
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("%s (chunk %d): message %d = %v %q, want %v %q", tt.name, chunk, i,
						got[i].op, trunc(got[i].payload), tt.want[i].op, trunc(tt.want[i].payload))
				}
			}
		}
	}
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func TestReaderErrors(t *testing.T) {
	nonMinimal16 := []byte{0x81, 0x80 | 126, 0, 5}
	nonMinimal16 = append(nonMinimal16, testMask[:]...)
	nonMinimal16 = append(nonMinimal16, "hello"...)
	nonMinimal64 := []byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0xff, 0xff}
	overflow64 := []byte{0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1}
	longPing := clientFrame(true, 0, OpPing, bytes.Repeat([]byte{1}, 126), true)

	tests := []struct {
		name string
		in   []byte
		code int
		// messages delivered before the error
		before int
	}{
		{"unmasked", clientFrame(true, 0, OpText, []byte("x"), false), CloseProtocolError, 0},
		{"rsv1", clientFrame(true, 0x40, OpText, []byte("x"), true), CloseProtocolError, 0},
		{"rsv2", clientFrame(true, 0x20, OpText, []byte("x"), true), CloseProtocolError, 0},
		{"rsv3", clientFrame(true, 0x10, OpBinary, []byte("x"), true), CloseProtocolError, 0},
		{"non-minimal 16-bit length", nonMinimal16, CloseProtocolError, 0},
		{"non-minimal 64-bit length", nonMinimal64, CloseProtocolError, 0},
		{"64-bit length with the top bit", overflow64, CloseProtocolError, 0},
		{"opcode 3", masked(3, nil), CloseProtocolError, 0},
		{"opcode 7", masked(7, nil), CloseProtocolError, 0},
		{"opcode 0xB", masked(0xB, nil), CloseProtocolError, 0},
		{"opcode 0xF", masked(0xF, nil), CloseProtocolError, 0},
		{"ping longer than 125", longPing, CloseProtocolError, 0},
		{"fragmented ping", clientFrame(false, 0, OpPing, nil, true), CloseProtocolError, 0},
		{"fragmented close", clientFrame(false, 0, OpClose, nil, true), CloseProtocolError, 0},
		{"continuation without start", clientFrame(true, 0, OpContinuation, []byte("x"), true), CloseProtocolError, 0},
		{"new message inside a fragmented one", cat(
			clientFrame(false, 0, OpText, []byte("a"), true),
			masked(OpText, []byte("b")),
		), CloseProtocolError, 0},
		{"invalid utf-8", masked(OpText, []byte("a\xffb")), CloseInvalidPayload, 0},
		{"overlong utf-8", masked(OpText, []byte("\xc0\xaf")), CloseInvalidPayload, 0},
		{"utf-16 surrogate", masked(OpText, []byte("\xed\xa0\x80")), CloseInvalidPayload, 0},
		{"truncated utf-8 at message end", cat(
			clientFrame(false, 0, OpText, []byte("ok"), true),
			clientFrame(true, 0, OpContinuation, []byte("\xe2\x82"), true),
		), CloseInvalidPayload, 0},
		{"invalid utf-8 after a valid message", cat(masked(OpText, []byte("fine")), masked(OpText, []byte{0xff})), CloseInvalidPayload, 1},
		{"close with one byte", masked(OpClose, []byte{3}), CloseProtocolError, 0},
		{"close reason invalid utf-8", masked(OpClose, closeBody(1000, "\xff")), CloseInvalidPayload, 0},
		{"too big", masked(OpBinary, make([]byte, 1025)), CloseTooBig, 0},
		{"too big across fragments", cat(
			clientFrame(false, 0, OpBinary, make([]byte, 600), true),
			clientFrame(true, 0, OpContinuation, make([]byte, 600), true),
		), CloseTooBig, 0},
		{"too big announced only", append([]byte{0x82, 0x80 | 127, 0, 0, 0, 1, 0, 0, 0, 0}, testMask[:]...), CloseTooBig, 0},
	}
	for _, code := range []int{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		tests = append(tests, struct {
			name   string
			in     []byte
			code   int
			before int
		}{"close code " + strconv.Itoa(code), masked(OpClose, closeBody(code, "")), CloseProtocolError, 0})
	}
	for _, tt := range tests {
		for _, chunk := range []int{0, 1, 5} {
			got, err := feedAll(1024, tt.in, chunk)
			if err == nil {
				t.Fatalf("%s (chunk %d): no error, messages %v", tt.name, chunk, got)
			}
			if !errors.Is(err, ErrProtocol) || closeCode(err) != tt.code {
				t.Fatalf("%s (chunk %d): %v (code %d), want code %d", tt.name, chunk, err, closeCode(err), tt.code)
			}
			if len(got) != tt.before {
				t.Fatalf("%s (chunk %d): %d messages before the error, want %d", tt.name, chunk, len(got), tt.before)
			}
		}
	}
}

// The reader holds no buffer between complete frames, and keeps only the
// incomplete tail of a frame split across reads.
func TestReaderPendingBuffer(t *testing.T) {
	r := reader{max: 1 << 20}
	var got []readMsg
	emit := func(op byte, p []byte) error { got = append(got, readMsg{op, string(p)}); return nil }
	f := masked(OpText, []byte("hello world"))
	two := cat(f, f)
	must(t, r.feed(append([]byte(nil), two[:len(f)+3]...), emit))
	if len(got) != 1 || len(r.pendingBytes()) != 3 {
		t.Fatalf("after 1.x frames: %d messages, %d pending", len(got), len(r.pendingBytes()))
	}
	must(t, r.feed(append([]byte(nil), two[len(f)+3:len(f)+5]...), emit))
	if len(r.pendingBytes()) != 5 {
		t.Fatalf("pending %d", len(r.pendingBytes()))
	}
	must(t, r.feed(append([]byte(nil), two[len(f)+5:]...), emit))
	if len(got) != 2 || r.st != nil || got[1].payload != "hello world" {
		t.Fatalf("after all: %v, pending %d", got, len(r.pendingBytes()))
	}
	// An error drops the pending bytes.
	must(t, r.feed(append([]byte(nil), f[:4]...), emit))
	if err := r.feed([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, emit); err == nil {
		t.Fatal("garbage accepted")
	}
	if r.st != nil {
		t.Fatal("pending kept after an error")
	}
}

// An error returned by emit stops the reader.
func TestReaderEmitError(t *testing.T) {
	stop := errors.New("stop")
	r := reader{max: 100}
	n := 0
	err := r.feed(cat(masked(OpText, []byte("a")), masked(OpText, []byte("b"))), func(byte, []byte) error {
		n++
		return stop
	})
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("err %v after %d messages", err, n)
	}
	// Fragmented messages too.
	r = reader{max: 100}
	err = r.feed(cat(clientFrame(false, 0, OpBinary, []byte("a"), true), clientFrame(true, 0, OpContinuation, []byte("b"), true)),
		func(byte, []byte) error { return stop })
	if !errors.Is(err, stop) {
		t.Fatalf("fragmented: %v", err)
	}
}

// Emitted payloads are owned by the callee: later reads do not change them.
func TestReaderPayloadOwnership(t *testing.T) {
	r := reader{max: 100}
	var kept [][]byte
	emit := func(_ byte, p []byte) error { kept = append(kept, p); return nil }
	buf := masked(OpText, []byte("first"))
	must(t, r.feed(buf, emit))
	copy(buf, masked(OpText, []byte("other")))
	must(t, r.feed(buf, emit))
	if string(kept[0]) != "first" || string(kept[1]) != "other" {
		t.Fatalf("payloads %q", kept)
	}
}

func BenchmarkReaderSmallFrames(b *testing.B) {
	var stream []byte
	for i := 0; i < 100; i++ {
		stream = append(stream, masked(OpText, []byte(`42["quote",{"s":"AAPL","p":189.12}]`))...)
	}
	buf := make([]byte, len(stream))
	r := reader{max: 1 << 20}
	emit := func(byte, []byte) error { return nil }
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, stream)
		if err := r.feed(buf, emit); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReaderLargeFrameInChunks feeds one 1 MiB binary frame in reads of
// 4 KiB (ModeGoroutine's read size) and 64 KiB (the epoll loop's), against
// one read: the cost of reassembling a large frame across reads.
func BenchmarkReaderLargeFrameInChunks(b *testing.B) {
	frame := masked(OpBinary, bytes.Repeat([]byte{0x5a}, 1<<20))
	work := make([]byte, len(frame))
	for _, chunk := range []int{len(frame), 64 << 10, 4 << 10} {
		b.Run("read="+strconv.Itoa(chunk), func(b *testing.B) {
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				copy(work, frame)
				r := reader{max: 2 << 20}
				n := 0
				for off := 0; off < len(work); off += chunk {
					end := min(off+chunk, len(work))
					if err := r.feed(work[off:end], func(byte, []byte) error { n++; return nil }); err != nil {
						b.Fatal(err)
					}
				}
				if n != 1 {
					b.Fatal(n)
				}
			}
		})
	}
}
