package websocket

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

// chunkSizes derives a chunking of n bytes from seed: every byte of seed is
// the size of the next chunk (0 means 1), cycling.
func chunkSizes(seed []byte, n int) []int {
	if len(seed) == 0 {
		return []int{n}
	}
	var out []int
	for i := 0; n > 0; i++ {
		c := int(seed[i%len(seed)])
		if c == 0 {
			c = 1
		}
		c = min(c, n)
		out = append(out, c)
		n -= c
	}
	return out
}

type fuzzResult struct {
	msgs []readMsg
	code int
	err  bool
}

func feedChunks(data []byte, sizes []int) fuzzResult {
	r := reader{max: 4096}
	var res fuzzResult
	emit := func(op byte, p []byte) error {
		res.msgs = append(res.msgs, readMsg{op, string(p)})
		return nil
	}
	data = append([]byte(nil), data...)
	for _, n := range sizes {
		buf := append([]byte(nil), data[:n]...)
		data = data[n:]
		err := r.feed(buf, emit)
		// The reader must not keep references into the caller's buffer.
		for i := range buf {
			buf[i] ^= 0x5a
		}
		if err != nil {
			res.err, res.code = true, closeCode(err)
			break
		}
	}
	return res
}

// FuzzReader feeds random bytes to the frame reader in random chunkings: it
// never panics, yields the same messages and the same error whatever the
// chunking, and everything it emits is well formed.
func FuzzReader(f *testing.F) {
	seeds := [][]byte{
		masked(OpText, []byte("hello")),
		cat(masked(OpText, []byte("a")), masked(OpBinary, []byte{0, 1}), masked(OpPing, []byte("p"))),
		cat(clientFrame(false, 0, OpText, []byte("He"), true), masked(OpPing, nil), clientFrame(true, 0, OpContinuation, []byte("llo"), true)),
		masked(OpClose, closeBody(1000, "bye")),
		masked(OpClose, closeBody(1005, "")),
		masked(OpText, bytes.Repeat([]byte("x"), 300)),
		masked(OpText, []byte{0xff}),
		clientFrame(true, 0x40, OpText, []byte("x"), true),
		clientFrame(true, 0, OpText, []byte("x"), false),
		{0x81, 0x80 | 126, 0, 5, 1, 2, 3, 4, 5, 6, 7, 8, 9},
	}
	for i, s := range seeds {
		f.Add(s, []byte{byte(i + 1), 3, 1})
	}
	f.Fuzz(func(t *testing.T, data, chunking []byte) {
		whole := feedChunks(data, []int{len(data)})
		if len(data) == 0 {
			whole = fuzzResult{}
		}
		parts := feedChunks(data, chunkSizes(chunking, len(data)))
		bytewise := feedChunks(data, chunkSizes([]byte{1}, len(data)))
		for _, other := range []fuzzResult{parts, bytewise} {
			if other.err != whole.err || other.code != whole.code || len(other.msgs) != len(whole.msgs) {
				t.Fatalf("chunking changed the result: whole=%d msgs err=%v code=%d, chunked=%d msgs err=%v code=%d",
					len(whole.msgs), whole.err, whole.code, len(other.msgs), other.err, other.code)
			}
			for i := range whole.msgs {
				if whole.msgs[i] != other.msgs[i] {
					t.Fatalf("message %d differs with chunking", i)
				}
			}
		}
		if whole.err && whole.code != CloseProtocolError && whole.code != CloseInvalidPayload && whole.code != CloseTooBig {
			t.Fatalf("unexpected close code %d", whole.code)
		}
		for _, m := range whole.msgs {
			switch m.op {
			case OpText, OpBinary:
				if len(m.payload) > 4096 {
					t.Fatalf("message of %d bytes over the limit", len(m.payload))
				}
				if m.op == OpText && !utf8.ValidString(m.payload) {
					t.Fatal("invalid UTF-8 text delivered")
				}
			case OpPing, OpPong, OpClose:
				if len(m.payload) > 125 {
					t.Fatalf("control frame of %d bytes", len(m.payload))
				}
				if m.op == OpClose && validateClose([]byte(m.payload)) != nil {
					t.Fatal("invalid close frame delivered")
				}
			default:
				t.Fatalf("emitted opcode %d", m.op)
			}
		}
	})
}
