package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tradewire/tradewire/bench/loadgen"
)

// FuzzParseHead: any bytes give a head or an error, never a panic, and an
// accepted head has a request line the server can route.
func FuzzParseHead(f *testing.F) {
	f.Add([]byte("GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nCookie: connect.sid=s%3Aabc.sig\r\n\r\n"))
	f.Add([]byte("POST /api/v1/emit HTTP/1.1\r\nContent-Length: 2\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.0\r\n\r\n"))
	f.Add([]byte("GET  HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if end := headEnd(b); end >= 0 {
			b = b[:end]
		}
		h, err := parseHead(b)
		if err != nil {
			return
		}
		if h.Method == "" || !strings.HasPrefix(h.Path, "/") {
			t.Fatalf("accepted %q as %+v", b, h)
		}
		checkUpgrade(h)
		cookieSession(h.Cookie)
	})
}

// FuzzParseFrame: a parsed frame never claims more bytes than given, and a
// frame written by the load generator's encoder parses back to its payload.
func FuzzParseFrame(f *testing.F) {
	f.Add([]byte{0x81, 0x82, 1, 2, 3, 4, '4' ^ 1, '0' ^ 2}, byte(1), []byte("40"))
	f.Add([]byte{0x81, 0xfe, 0, 200}, byte(1), bytes.Repeat([]byte("x"), 300))
	f.Add([]byte{0x88, 0x80, 0, 0, 0, 0}, byte(8), []byte{3, 232})
	f.Add([]byte{0x81, 0xff, 0, 0, 0, 0, 0, 0x10, 0, 0}, byte(9), []byte("ping"))
	f.Fuzz(func(t *testing.T, b []byte, op byte, payload []byte) {
		in := append([]byte(nil), b...)
		_, p, n, err := parseFrame(in)
		if err == nil && (n < 0 || n > len(in) || len(p) > n) {
			t.Fatalf("n=%d len=%d payload=%d", n, len(in), len(p))
		}
		op &= 0x0f
		if op != opText && op != opBin || len(payload) > maxPayload {
			return
		}
		fr := loadgen.AppendFrame(nil, op, true, true, [4]byte{b2(b, 0), b2(b, 1), 7, 9}, payload)
		gotOp, got, n, err := parseFrame(fr)
		if err != nil || n != len(fr) || gotOp != op || !bytes.Equal(got, payload) {
			t.Fatalf("round trip: op %d n %d/%d err %v", gotOp, n, len(fr), err)
		}
	})
}

func b2(b []byte, i int) byte {
	if i < len(b) {
		return b[i]
	}
	return 0
}

// FuzzSIOHead: the Socket.IO packet header splitter never panics and what
// it returns lies inside its input.
func FuzzSIOHead(f *testing.F) {
	for _, s := range []string{`0`, `0{"sessionID":"x"}`, `2["subscribe:trades"]`, `212["a",1]`, `0/admin,`, `2/admin,3["x"]`, `3`, `7`, `29999999999999999999[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, nsp, id, data, err := sioHead(b)
		if err != nil {
			return
		}
		if typ < '0' || typ > '6' || nsp == "" || id < -1 || len(data) > len(b) || !bytes.HasSuffix(b, data) {
			t.Fatalf("%q -> %c %q %d %q", b, typ, nsp, id, data)
		}
	})
}
