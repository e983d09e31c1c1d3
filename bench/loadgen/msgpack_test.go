package loadgen

import (
	"encoding/hex"
	"math"
	"testing"
)

// Emitter vectors E1-E5 of wire-formats §3.2 (deterministic real output of
// @socket.io/redis-emitter 5.1.0).
func TestEmitterVectors(t *testing.T) {
	cases := []struct {
		name, channel, hex string
		build              func() (string, []byte, error)
	}{
		{"E1", "socket.io#/#", "93a7656d697474657283a47479706502a46461746192a2657601a36e7370a12f83a5726f6f6d7390a5666c61677380a665786365707490",
			func() (string, []byte, error) { return EmitterMessage("socket.io", "/", nil, "ev", 1) }},
		{"E2", "socket.io#/#room1#", "93a7656d697474657283a47479706502a46461746192a26576a172a36e7370a12f83a5726f6f6d7391a5726f6f6d31a5666c61677380a665786365707490",
			func() (string, []byte, error) { return EmitterMessage("socket.io", "/", []string{"room1"}, "ev", "r") }},
		{"E3", "socket.io#/#", "93a7656d697474657283a47479706502a46461746191a26576a36e7370a12f83a5726f6f6d7392a161a162a5666c61677382a8766f6c6174696c65c3a8636f6d7072657373c3a665786365707491a163",
			func() (string, []byte, error) {
				flags := (&OrderedMap{}).Set("volatile", true).Set("compress", true)
				return EmitterMessageOpts("socket.io", "/", []string{"a", "b"}, []string{"c"}, flags, "ev")
			}},
		{"E4", "socket.io#/chat#", "93a7656d697474657283a47479706502a46461746192a26576c0a36e7370a52f6368617483a5726f6f6d7390a5666c61677380a665786365707490",
			func() (string, []byte, error) { return EmitterMessage("socket.io", "/chat", nil, "ev", nil) }},
		{"E5", "socket.io#/#", "93a7656d697474657283a47479706502a46461746192a362696ec402deada36e7370a12f83a5726f6f6d7390a5666c61677380a665786365707490",
			func() (string, []byte, error) { return EmitterMessage("socket.io", "", nil, "bin", []byte{0xde, 0xad}) }},
	}
	for _, c := range cases {
		ch, msg, err := c.build()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if ch != c.channel || hex.EncodeToString(msg) != c.hex {
			t.Errorf("%s: channel %q msg %x", c.name, ch, msg)
		}
	}
}

func TestMsgpackScalars(t *testing.T) {
	cases := []struct {
		v    any
		want string
	}{
		{false, "c2"}, {127, "7f"}, {-1, "ff"}, {-32, "e0"}, {200, "ccc8"}, {300, "cd012c"},
		{70000, "ce00011170"}, {int64(1) << 40, "cf0000010000000000"}, {-100, "d09c"}, {-1000, "d1fc18"},
		{-100000, "d2fffe7960"}, {int64(-1) << 40, "d3ffffff0000000000"}, {1.5, "cb3ff8000000000000"},
		{float64(3), "03"}, {math.Pow(2, 60), "cb43b0000000000000"},
		{string(make([]byte, 40)), "d928" + hex.EncodeToString(make([]byte, 40))},
		{map[string]any{"b": 1, "a": []any{}}, "82a16190a16201"},
		{[]string{"x"}, "91a178"},
	}
	for _, c := range cases {
		got, err := AppendMsgpack(nil, c.v)
		if err != nil || hex.EncodeToString(got) != c.want {
			t.Errorf("%#v: %x (%v), want %s", c.v, got, err, c.want)
		}
	}
	// lengths that need 16 and 32 bit headers
	long, _ := AppendMsgpack(nil, string(make([]byte, 300)))
	if hex.EncodeToString(long[:3]) != "da012c" {
		t.Errorf("str16 %x", long[:3])
	}
	huge, _ := AppendMsgpack(nil, string(make([]byte, 70000)))
	if hex.EncodeToString(huge[:5]) != "db00011170" {
		t.Errorf("str32 %x", huge[:5])
	}
	b16, _ := AppendMsgpack(nil, make([]byte, 300))
	b32, _ := AppendMsgpack(nil, make([]byte, 70000))
	if hex.EncodeToString(b16[:3]) != "c5012c" || hex.EncodeToString(b32[:5]) != "c600011170" {
		t.Errorf("bin %x %x", b16[:3], b32[:5])
	}
	arr, _ := AppendMsgpack(nil, make([]any, 20))
	if hex.EncodeToString(arr[:3]) != "dc0014" {
		t.Errorf("array16 %x", arr[:3])
	}
	if got := appendMsgpackLen(nil, 70000, 0x80, 0xde, 0xdf); hex.EncodeToString(got) != "df00011170" {
		t.Errorf("map32 %x", got)
	}
	for _, bad := range []any{struct{}{}, []any{struct{}{}}, (&OrderedMap{}).Set("k", struct{}{})} {
		if _, err := AppendMsgpack(nil, bad); err == nil {
			t.Errorf("%T accepted", bad)
		}
	}
	if _, _, err := EmitterMessage("p", "/", nil, "ev", struct{}{}); err == nil {
		t.Error("bad arg accepted")
	}
}
