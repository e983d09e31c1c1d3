package parser

import (
	"bytes"
	"encoding/json"
	"testing"
)

// splitFuzzInput turns one fuzz input into a text message and attachments:
// the text runs to the first 0x1e, every further 0x1e starts an attachment.
func splitFuzzInput(in []byte) (text []byte, attachments [][]byte) {
	parts := bytes.Split(in, []byte{0x1e})
	return parts[0], parts[1:]
}

func joinFuzzInput(text string, attachments ...[]byte) []byte {
	out := []byte(text)
	for _, a := range attachments {
		out = append(out, 0x1e)
		out = append(out, a...)
	}
	return out
}

func addParserSeeds(f *testing.F) {
	for _, v := range specVectors {
		f.Add(joinFuzzInput(v.wire.text, v.wire.attachments...))
	}
	for _, s := range []string{
		`2["conn\u0065ct"]`, `2[]`, `4abc`, `2{}`, `2abc["x"]`, `511-["x"]`, `50-["x"]`,
		`51-["x",{"_placeholder":true,"num":1}]` + "\x1e\x01",
		`52-["x",{"a":[{"_placeholder":true,"num":1}]},{"_placeholder":true,"num":0}]` + "\x1eab\x1ec",
		`2/admin["x"]`, `0/custom`, `4"legacy"`, `218446744073709551615["x"]`, `2 ["x" , 1 ]`,
	} {
		f.Add([]byte(s))
	}
}

// FuzzDecode feeds arbitrary text and binary messages to a Decoder. It must
// never panic, and every packet it accepts must re-encode to messages that
// decode to the same packet.
func FuzzDecode(f *testing.F) {
	addParserSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		text, attachments := splitFuzzInput(in)
		var d Decoder
		p, err := d.DecodeText(text)
		for _, a := range attachments {
			if err != nil {
				break
			}
			var q *Packet
			q, err = d.DecodeBinary(a)
			if q != nil {
				p = q
			}
		}
		if err != nil || p == nil {
			return
		}
		if !json.Valid(p.Data) && p.Data != nil {
			t.Fatalf("accepted invalid JSON %q", p.Data)
		}
		if p.Data != nil {
			if _, err := Unpack(p.Data, p.Attachments); err != nil {
				t.Fatalf("accepted packet does not unpack: %v (%q)", err, p.Data)
			}
		}
		wire := p.AppendText(nil)
		var d2 Decoder
		q, err := d2.DecodeText(wire)
		for _, a := range p.Attachments {
			if err != nil {
				break
			}
			q, err = d2.DecodeBinary(a)
		}
		if err != nil {
			t.Fatalf("re-encoded %q (from %q) does not decode: %v", wire, text, err)
		}
		if q == nil {
			t.Fatalf("re-encoded %q incomplete", wire)
		}
		if q.Type != p.Type || q.Nsp != p.Nsp || q.ID != p.ID || q.HasID != p.HasID ||
			!bytes.Equal(q.Data, p.Data) || len(q.Attachments) != len(p.Attachments) {
			t.Fatalf("round trip of %q changed the packet:\n%+v\n%+v", text, p, q)
		}
		for i := range q.Attachments {
			if !bytes.Equal(q.Attachments[i], p.Attachments[i]) {
				t.Fatalf("attachment %d changed", i)
			}
		}
	})
}

// FuzzEncoder checks that encoded strings and arrays are always valid JSON
// that decodes back to the (UTF-8 sanitised) input, and that SplitArray,
// AppendArg and Unpack agree with the encoder.
func FuzzEncoder(f *testing.F) {
	f.Add("hello", []byte{1, 2, 3}, 1.5)
	f.Add("<é\u2028\x00\xff>", []byte{}, -0.0)
	f.Add("\"\\", []byte(nil), 1e300)
	f.Fuzz(func(t *testing.T, s string, bin []byte, num float64) {
		var e Encoder
		if err := e.AppendArray(s, bin, map[string]any{s: num, "b": []any{s, bin}}, json.RawMessage(`{"r":1}`)); err != nil {
			t.Fatal(err)
		}
		if !json.Valid(e.Buf) {
			t.Fatalf("invalid JSON %q", e.Buf)
		}
		if len(e.Attachments) != 2 {
			t.Fatalf("%d attachments", len(e.Attachments))
		}
		els, err := SplitArray(e.Buf)
		if err != nil || len(els) != 4 {
			t.Fatalf("SplitArray(%q) = %d elements, %v", e.Buf, len(els), err)
		}
		var back string
		if err := json.Unmarshal(els[0], &back); err != nil || back != string([]rune(s)) {
			t.Fatalf("string %q came back as %q (%v)", s, back, err)
		}
		v, err := Unpack(e.Buf, e.Attachments)
		if err != nil {
			t.Fatal(err)
		}
		if got := v.([]any)[1].([]byte); !bytes.Equal(got, bin) {
			t.Fatalf("binary %x came back as %x", bin, got)
		}
		withOffset := AppendArg(e.Buf, s)
		els2, err := SplitArray(withOffset)
		if err != nil || len(els2) != 5 || string(els2[4]) != string(els[0]) {
			t.Fatalf("AppendArg: %q (%v)", withOffset, err)
		}
		// As the payload of an EVENT, the encoded array decodes as a packet.
		if s != "" && !reserved(string([]rune(s))) {
			p := Packet{Type: Event, Nsp: "/x", ID: 3, HasID: true, Data: e.Buf, Attachments: e.Attachments}
			var d Decoder
			q, err := d.DecodeText(p.AppendText(nil))
			if err != nil || q != nil {
				t.Fatalf("decode %q: %v", p.AppendText(nil), err)
			}
			for _, a := range e.Attachments {
				q, err = d.DecodeBinary(a)
			}
			if err != nil || q == nil || EventName(q.Data) != string([]rune(s)) {
				t.Fatalf("decode binary event: %v %+v", err, q)
			}
		}
	})
}
