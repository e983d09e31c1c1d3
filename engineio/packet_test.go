package engineio

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/tradewire/tradewire/transport/websocket"
)

// The polling payload vector of wire-formats §1: 4hello␞bAQID.
func TestPayloadVector(t *testing.T) {
	const wire = "3468656c6c6f1e6241514944"
	pkts := []*Packet{NewMessage([]byte("hello"), false), NewMessage([]byte{1, 2, 3}, true)}
	got := EncodePayload(pkts)
	if hex.EncodeToString(got) != wire {
		t.Fatalf("EncodePayload = %x, want %s", got, wire)
	}
	raw, _ := hex.DecodeString(wire)
	back, err := DecodePayload(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != 2 || back[0].Type != TypeMessage || back[0].Binary || string(back[0].Data) != "hello" ||
		back[1].Type != TypeMessage || !back[1].Binary || !bytes.Equal(back[1].Data, []byte{1, 2, 3}) {
		t.Fatalf("DecodePayload = %+v %+v", back[0], back[1])
	}
}

func TestEncodePayload(t *testing.T) {
	tests := []struct {
		pkts []*Packet
		want string
	}{
		{[]*Packet{{Type: TypeOpen, Data: []byte(`{"sid":"x"}`)}}, `0{"sid":"x"}`},
		{[]*Packet{noopPacket, closePacket}, "6\x1e1"},
		{[]*Packet{pingPacket}, "2"},
		{[]*Packet{{Type: TypePong, Data: []byte("probe")}}, "3probe"},
		{[]*Packet{NewMessage([]byte("é"), false), NewMessage(nil, true), NewMessage([]byte{1, 2, 3, 4}, true)}, "4é\x1eb\x1ebAQIDBA=="},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := string(EncodePayload(tt.pkts)); got != tt.want {
			t.Errorf("EncodePayload = %q, want %q", got, tt.want)
		}
	}
}

func TestDecodePayload(t *testing.T) {
	tests := []struct {
		in   string
		want []Packet
	}{
		{"4hello", []Packet{{Type: TypeMessage, Data: []byte("hello")}}},
		{"2", []Packet{{Type: TypePing, Data: []byte{}}}},
		{"3\x1e4a\x1e4b", []Packet{{Type: TypePong}, {Type: TypeMessage, Data: []byte("a")}, {Type: TypeMessage, Data: []byte("b")}}},
		{`451-["bin",{"_placeholder":true,"num":0},13]` + "\x1ebAQIDBA==", []Packet{
			{Type: TypeMessage, Data: []byte(`51-["bin",{"_placeholder":true,"num":0},13]`)},
			{Type: TypeMessage, Binary: true, Data: []byte{1, 2, 3, 4}},
		}},
		{"b", []Packet{{Type: TypeMessage, Binary: true, Data: []byte{}}}},
		{"1", []Packet{{Type: TypeClose}}},
		{"5\x1e6", []Packet{{Type: TypeUpgrade}, {Type: TypeNoop}}},
	}
	for _, tt := range tests {
		got, err := DecodePayload([]byte(tt.in))
		if err != nil {
			t.Fatalf("DecodePayload(%q): %v", tt.in, err)
		}
		if len(got) != len(tt.want) {
			t.Fatalf("DecodePayload(%q): %d packets", tt.in, len(got))
		}
		for i := range got {
			if got[i].Type != tt.want[i].Type || got[i].Binary != tt.want[i].Binary || !bytes.Equal(got[i].Data, tt.want[i].Data) {
				t.Fatalf("DecodePayload(%q)[%d] = %c %v %q", tt.in, i, got[i].Type, got[i].Binary, got[i].Data)
			}
		}
	}
	for _, bad := range []string{"", "\x1e", "4a\x1e", "\x1e4a", "7", "abc", "4a\x1e\x1e4b", "b!!!", "bAQI", "4ok\x1ex"} {
		if got, err := DecodePayload([]byte(bad)); err == nil || !errors.Is(err, ErrParse) {
			t.Errorf("DecodePayload(%q) = %v, %v; want ErrParse", bad, got, err)
		}
	}
}

func TestDecodePacket(t *testing.T) {
	for c := byte('0'); c <= '6'; c++ {
		p, err := DecodePacket([]byte{c, 'x'})
		if err != nil || p.Type != c || string(p.Data) != "x" || p.Binary {
			t.Fatalf("DecodePacket(%c): %+v %v", c, p, err)
		}
	}
	for _, bad := range []string{"", "/", "7", "b", "a"} {
		if _, err := DecodePacket([]byte(bad)); !errors.Is(err, ErrParse) {
			t.Errorf("DecodePacket(%q): %v", bad, err)
		}
	}
}

// A packet's websocket frame is the type character plus data in one text
// frame (binary: the raw bytes in a binary frame), encoded once and shared.
func TestWebSocketFrame(t *testing.T) {
	for _, n := range []int{0, 124, 125, 126, 65534, 65535, 65536, 200000} {
		data := []byte(strings.Repeat("a", n))
		p := NewMessage(data, false)
		f := p.WebSocketFrame()
		want := websocket.AppendFrame(nil, websocket.OpText, append([]byte{'4'}, data...))
		if !bytes.Equal(f, want) {
			t.Fatalf("text n=%d: frame header %x, want %x", n, f[:min(len(f), 10)], want[:min(len(want), 10)])
		}
		if cap(f) != len(f) {
			t.Errorf("text n=%d: frame capacity %d for %d bytes (size precomputed wrongly)", n, cap(f), len(f))
		}
		if &p.WebSocketFrame()[0] != &f[0] {
			t.Fatal("frame encoded twice")
		}
		b := NewMessage(data, true)
		if got, want := b.WebSocketFrame(), websocket.AppendFrame(nil, websocket.OpBinary, data); !bytes.Equal(got, want) {
			t.Fatalf("binary n=%d: frame differs", n)
		}
	}
	if f := pingPacket.WebSocketFrame(); !bytes.Equal(f, []byte{0x81, 1, '2'}) {
		t.Fatalf("ping frame %x", f)
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := NewID()
		if len(id) != 20 || strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			t.Fatalf("id %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

func BenchmarkWebSocketFrameShared(b *testing.B) {
	p := NewMessage([]byte(`2["quote",{"symbol":"AAPL","bid":189.12}]`), false)
	b.ReportAllocs()
	for b.Loop() {
		_ = p.WebSocketFrame()
	}
}
