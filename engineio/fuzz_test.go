package engineio

import (
	"bytes"
	"testing"
)

// FuzzDecodePayload: DecodePayload never panics, and what it accepts
// re-encodes to a payload that decodes to the same packets.
func FuzzDecodePayload(f *testing.F) {
	for _, s := range []string{
		"4hello\x1ebAQID", "2", "3\x1e4a\x1e4b", "6\x1e1", "b", "bAQIDBA==", "0{\"sid\":\"x\"}",
		`451-["bin",{"_placeholder":true,"num":0},13]` + "\x1ebAQIDBA==", "abc", "\x1e", "bAQI", "5\x1e6", "4é",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		pkts, err := DecodePayload(body)
		if err != nil {
			return
		}
		if len(pkts) == 0 {
			t.Fatal("no packets and no error")
		}
		for _, p := range pkts {
			if p.Binary && p.Type != TypeMessage {
				t.Fatalf("binary packet of type %c", p.Type)
			}
			if p.Type < TypeOpen || p.Type > TypeNoop {
				t.Fatalf("type %q", p.Type)
			}
		}
		again, err := DecodePayload(EncodePayload(pkts))
		if err != nil {
			t.Fatalf("re-encoded payload does not decode: %v", err)
		}
		if len(again) != len(pkts) {
			t.Fatalf("%d packets became %d", len(pkts), len(again))
		}
		for i := range pkts {
			if again[i].Type != pkts[i].Type || again[i].Binary != pkts[i].Binary || !bytes.Equal(again[i].Data, pkts[i].Data) {
				t.Fatalf("packet %d changed: %+v -> %+v", i, pkts[i], again[i])
			}
		}
	})
}
