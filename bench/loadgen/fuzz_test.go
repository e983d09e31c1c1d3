package loadgen

import (
	"bytes"
	"testing"
)

// The parsers the load generator runs on server bytes must never panic and
// must agree with their encoders.

func FuzzParseSIO(f *testing.F) {
	for _, s := range []string{`0`, `0/admin,{"token":"abc"}`, `2/admin,12["hello"]`, `312["ok"]`,
		`52-["up",{"_placeholder":true,"num":0}]`, `61-5[{"_placeholder":true,"num":0}]`, `4{"message":"x"}`, `2["a`, `5-`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseSIO(b)
		if err != nil {
			return
		}
		again, err := ParseSIO(AppendSIO(nil, p))
		if err != nil || again.Type != p.Type || again.ID != p.ID || !bytes.Equal(again.Data, p.Data) {
			// a namespace without ',' swallows the rest, so only check packets that re-encode to themselves
			if bytes.Equal(AppendSIO(nil, p), b) {
				t.Fatalf("round trip of %q: %+v %v", b, again, err)
			}
		}
	})
}

func FuzzParseFrame(f *testing.F) {
	f.Add(mustHexF("818537fa213d7f9f4d5158"))
	f.Add(mustHexF("827e0100"))
	f.Add(mustHexF("827f0000000000010000"))
	f.Add([]byte{0x89, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, n, err := ParseFrame(append([]byte(nil), b...), 1<<16)
		if err != nil || n == 0 {
			return
		}
		if n > len(b) || len(fr.Payload) > n {
			t.Fatalf("n=%d len=%d payload=%d", n, len(b), len(fr.Payload))
		}
		re := AppendFrame(nil, fr.Op, fr.Fin, fr.Masked, fr.Mask, fr.Payload)
		back, m, err := ParseFrame(re, 1<<16)
		if err != nil || m != len(re) || !bytes.Equal(back.Payload, fr.Payload) || back.Op != fr.Op {
			t.Fatalf("re-encode of %x: %v", b, err)
		}
	})
}

func FuzzEventAndTS(f *testing.F) {
	f.Add([]byte(`["quote:update",{"symbol":"S","price":1,"ts":1795000000000000000}]`))
	f.Add([]byte(`["trade:executed",{"trade":{"ts":5}}]`))
	f.Add([]byte(`{"ts":`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if name, rest, ok := EventName(b); ok && len(name)+len(rest)+3 != len(b) {
			t.Fatalf("EventName lengths: %q %q of %q", name, rest, b)
		}
		if ts, ok := ExtractTS(b); ok && ts < 0 {
			t.Fatalf("negative ts %d from %q", ts, b)
		}
	})
}

func FuzzParseOpenAndPayload(f *testing.F) {
	f.Add([]byte(`0{"sid":"eP_6HDYKH6bLZycbAAAA","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`))
	f.Add([]byte("4hello\x1ebAQID"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseOpen(b)
		parts := SplitPayload(b)
		if len(b) > 0 && !bytes.Equal(JoinPayload(parts...), b) {
			t.Fatalf("split/join of %q", b)
		}
	})
}

func mustHexF(s string) []byte {
	b := make([]byte, len(s)/2)
	for i := range b {
		var v byte
		for _, c := range s[2*i : 2*i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			default:
				v |= byte(c-'a') + 10
			}
		}
		b[i] = v
	}
	return b
}
