package loadgen

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

// RFC 6455 §1.3: the handshake example.
func TestAcceptKeyRFCVector(t *testing.T) {
	if got := AcceptKey("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("AcceptKey = %q", got)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RFC 6455 §5.7 examples.
func TestFramesRFCExamples(t *testing.T) {
	hello := []byte("Hello")
	// A single-frame unmasked text message
	if got := AppendFrame(nil, OpText, true, false, [4]byte{}, hello); !bytes.Equal(got, mustHex(t, "810548656c6c6f")) {
		t.Fatalf("unmasked = %x", got)
	}
	// A single-frame masked text message
	masked := mustHex(t, "818537fa213d7f9f4d5158")
	if got := AppendFrame(nil, OpText, true, true, [4]byte{0x37, 0xfa, 0x21, 0x3d}, hello); !bytes.Equal(got, masked) {
		t.Fatalf("masked = %x", got)
	}
	f, n, err := ParseFrame(append([]byte(nil), masked...), 1<<20)
	if err != nil || n != len(masked) || !f.Fin || f.Op != OpText || !f.Masked || string(f.Payload) != "Hello" {
		t.Fatalf("parse masked: %+v n=%d err=%v", f, n, err)
	}
	// A fragmented unmasked text message
	first, second := mustHex(t, "010348656c"), mustHex(t, "80026c6f")
	f1, _, _ := ParseFrame(first, 100)
	f2, _, _ := ParseFrame(second, 100)
	if f1.Fin || f1.Op != OpText || string(f1.Payload) != "Hel" || !f2.Fin || f2.Op != OpContinuation || string(f2.Payload) != "lo" {
		t.Fatalf("fragments: %+v %+v", f1, f2)
	}
	// Unmasked Ping and masked Pong
	if got := AppendFrame(nil, OpPing, true, false, [4]byte{}, hello); !bytes.Equal(got, mustHex(t, "890548656c6c6f")) {
		t.Fatalf("ping = %x", got)
	}
	pong := mustHex(t, "8a8537fa213d7f9f4d5158")
	if got := AppendFrame(nil, OpPong, true, true, [4]byte{0x37, 0xfa, 0x21, 0x3d}, hello); !bytes.Equal(got, pong) {
		t.Fatalf("pong = %x", got)
	}
	// 256 bytes binary message in a single unmasked frame: 0x82 0x7E 0x0100
	big := bytes.Repeat([]byte{7}, 256)
	got := AppendFrame(nil, OpBinary, true, false, [4]byte{}, big)
	if !bytes.Equal(got[:4], mustHex(t, "827e0100")) || len(got) != 260 {
		t.Fatalf("256 header = %x len %d", got[:4], len(got))
	}
	// 64KiB binary message: 0x82 0x7F 0x0000000000010000
	huge := make([]byte, 65536)
	got = AppendFrame(nil, OpBinary, true, false, [4]byte{}, huge)
	if !bytes.Equal(got[:10], mustHex(t, "827f0000000000010000")) {
		t.Fatalf("64k header = %x", got[:10])
	}
	f, n, err = ParseFrame(got, 1<<20)
	if err != nil || n != len(got) || len(f.Payload) != 65536 {
		t.Fatalf("64k parse n=%d err=%v", n, err)
	}
	if FrameHeaderLen(5, true) != 6 || FrameHeaderLen(256, false) != 4 || FrameHeaderLen(65536, true) != 14 {
		t.Fatal("FrameHeaderLen")
	}
}

func TestParseFrameIncompleteAndErrors(t *testing.T) {
	full := AppendFrame(nil, OpText, true, true, [4]byte{1, 2, 3, 4}, bytes.Repeat([]byte("x"), 300))
	for i := 0; i < len(full); i++ {
		if _, n, err := ParseFrame(append([]byte(nil), full[:i]...), 1<<20); n != 0 || err != nil {
			t.Fatalf("prefix %d: n=%d err=%v", i, n, err)
		}
	}
	long := AppendFrame(nil, OpBinary, true, false, [4]byte{}, make([]byte, 70000))
	if _, n, err := ParseFrame(long[:9], 1<<20); n != 0 || err != nil {
		t.Fatal("64-bit length prefix should be incomplete")
	}
	cases := map[string][]byte{
		"reserved bits":       {0xc1, 0x00},
		"unknown opcode":      {0x83, 0x00},
		"fragmented control":  {0x09, 0x00},
		"long control":        {0x89, 0x7e, 0x00, 0x80},
		"over the size limit": {0x82, 0x7e, 0x10, 0x00},
	}
	for name, b := range cases {
		if _, _, err := ParseFrame(b, 1000); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, _, err := ParseFrame([]byte{0x82, 0x7e, 0x10, 0x00}, 1000); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("want ErrFrameTooLarge, got %v", err)
	}
}

func TestCheckUpgradeResponse(t *testing.T) {
	key := "dGhlIHNhbXBsZSBub25jZQ=="
	ok := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
	if err := checkUpgradeResponse([]byte(ok), key); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: wrong\r\n",
	} {
		if err := checkUpgradeResponse([]byte(bad), key); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
