package parser

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// wirePacket is a packet as it travels: the text message and the binary
// messages that follow it.
type wirePacket struct {
	text        string
	attachments [][]byte
}

// decodeAll feeds a text message and its attachments to a fresh decoder.
func decodeAll(t *testing.T, text string, attachments ...[]byte) (*Packet, error) {
	t.Helper()
	var d Decoder
	p, err := d.DecodeText([]byte(text))
	if err != nil {
		return nil, err
	}
	for i, a := range attachments {
		if p != nil {
			t.Fatalf("%q: packet complete after %d of %d attachments", text, i, len(attachments))
		}
		if !d.Waiting() {
			t.Fatalf("%q: decoder not waiting before attachment %d", text, i)
		}
		p, err = d.DecodeBinary(a)
		if err != nil {
			return nil, err
		}
	}
	if p == nil {
		t.Fatalf("%q: packet incomplete after %d attachments", text, len(attachments))
	}
	if d.Waiting() {
		t.Fatalf("%q: decoder still waiting after a complete packet", text)
	}
	return p, nil
}

func samePacket(t *testing.T, got, want *Packet) {
	t.Helper()
	if got.Type != want.Type || got.Nsp != want.Nsp || got.HasID != want.HasID || got.ID != want.ID {
		t.Fatalf("header: got type=%v nsp=%q id=%d/%v, want type=%v nsp=%q id=%d/%v",
			got.Type, got.Nsp, got.ID, got.HasID, want.Type, want.Nsp, want.ID, want.HasID)
	}
	if !bytes.Equal(got.Data, want.Data) || (got.Data == nil) != (want.Data == nil) {
		t.Fatalf("data: got %q, want %q", got.Data, want.Data)
	}
	if len(got.Attachments) != len(want.Attachments) {
		t.Fatalf("attachments: got %d, want %d", len(got.Attachments), len(want.Attachments))
	}
	for i := range got.Attachments {
		if !bytes.Equal(got.Attachments[i], want.Attachments[i]) {
			t.Fatalf("attachment %d: got %x, want %x", i, got.Attachments[i], want.Attachments[i])
		}
	}
}

// The encoder vectors of wire-formats §2, both directions.
var specVectors = []struct {
	name string
	wire wirePacket
	pkt  Packet
}{
	{"connect", wirePacket{text: "0"}, Packet{Type: Connect, Nsp: "/"}},
	{"connect auth", wirePacket{text: `0{"token":"abc"}`}, Packet{Type: Connect, Nsp: "/", Data: json.RawMessage(`{"token":"abc"}`)}},
	{"connect nsp auth", wirePacket{text: `0/admin,{"token":"abc"}`}, Packet{Type: Connect, Nsp: "/admin", Data: json.RawMessage(`{"token":"abc"}`)}},
	{"disconnect", wirePacket{text: "1"}, Packet{Type: Disconnect, Nsp: "/"}},
	{"disconnect nsp", wirePacket{text: "1/admin,"}, Packet{Type: Disconnect, Nsp: "/admin"}},
	{"event utf8", wirePacket{text: `2["hello",1,{"a":"é"}]`}, Packet{Type: Event, Nsp: "/", Data: json.RawMessage(`["hello",1,{"a":"é"}]`)}},
	{"event nsp ack", wirePacket{text: `2/admin,12["hello"]`}, Packet{Type: Event, Nsp: "/admin", ID: 12, HasID: true, Data: json.RawMessage(`["hello"]`)}},
	{"ack", wirePacket{text: `312["ok"]`}, Packet{Type: Ack, Nsp: "/", ID: 12, HasID: true, Data: json.RawMessage(`["ok"]`)}},
	{"connect error", wirePacket{text: `4{"message":"Not authorized","data":{"code":401}}`},
		Packet{Type: ConnectError, Nsp: "/", Data: json.RawMessage(`{"message":"Not authorized","data":{"code":401}}`)}},
	{"binary event", wirePacket{
		text:        `52-["up",{"_placeholder":true,"num":0},{"f":{"_placeholder":true,"num":1}}]`,
		attachments: [][]byte{{0x01, 0x02, 0x03}, {0x04}},
	}, Packet{Type: BinaryEvent, Nsp: "/", Data: json.RawMessage(`["up",{"_placeholder":true,"num":0},{"f":{"_placeholder":true,"num":1}}]`),
		Attachments: [][]byte{{0x01, 0x02, 0x03}, {0x04}}}},
	{"binary event nsp ack", wirePacket{
		text:        `51-/admin,7["up",{"_placeholder":true,"num":0}]`,
		attachments: [][]byte{{0xff}},
	}, Packet{Type: BinaryEvent, Nsp: "/admin", ID: 7, HasID: true, Data: json.RawMessage(`["up",{"_placeholder":true,"num":0}]`),
		Attachments: [][]byte{{0xff}}}},
	{"binary ack", wirePacket{
		text:        `61-5[{"_placeholder":true,"num":0}]`,
		attachments: [][]byte{{0xab, 0xcd}},
	}, Packet{Type: BinaryAck, Nsp: "/", ID: 5, HasID: true, Data: json.RawMessage(`[{"_placeholder":true,"num":0}]`),
		Attachments: [][]byte{{0xab, 0xcd}}}},
}

func TestSpecVectorsDecode(t *testing.T) {
	for _, v := range specVectors {
		t.Run(v.name, func(t *testing.T) {
			p, err := decodeAll(t, v.wire.text, v.wire.attachments...)
			if err != nil {
				t.Fatalf("decode %q: %v", v.wire.text, err)
			}
			samePacket(t, p, &v.pkt)
		})
	}
}

func TestSpecVectorsEncode(t *testing.T) {
	for _, v := range specVectors {
		t.Run(v.name, func(t *testing.T) {
			p := v.pkt
			if got := string(p.AppendText(nil)); got != v.wire.text {
				t.Fatalf("AppendText = %q, want %q", got, v.wire.text)
			}
			// Appending keeps what dst already holds.
			if got := string(p.AppendText([]byte("4"))); got != "4"+v.wire.text {
				t.Fatalf("AppendText with prefix = %q", got)
			}
		})
	}
}

// An EVENT or ACK that carries attachments is written as its binary variant
// with the attachment count, as the reference encoder does.
func TestAppendTextSwitchesToBinaryType(t *testing.T) {
	var e Encoder
	if err := e.AppendArray("up", []byte{1, 2, 3}, map[string]any{"f": []byte{4}}); err != nil {
		t.Fatal(err)
	}
	p := Packet{Type: Event, Data: e.Buf, Attachments: e.Attachments}
	want := `52-["up",{"_placeholder":true,"num":0},{"f":{"_placeholder":true,"num":1}}]`
	if got := string(p.AppendText(nil)); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if !bytes.Equal(e.Attachments[0], []byte{1, 2, 3}) || !bytes.Equal(e.Attachments[1], []byte{4}) {
		t.Fatalf("attachments %x", e.Attachments)
	}

	var a Encoder
	if err := a.AppendArray([]byte{0xab, 0xcd}); err != nil {
		t.Fatal(err)
	}
	ack := Packet{Type: Ack, Nsp: "/", ID: 5, HasID: true, Data: a.Buf, Attachments: a.Attachments}
	if got := string(ack.AppendText(nil)); got != `61-5[{"_placeholder":true,"num":0}]` {
		t.Fatalf("binary ack = %q", got)
	}

	nsp := Packet{Type: Event, Nsp: "/admin", ID: 7, HasID: true, Data: json.RawMessage(`["up",{"_placeholder":true,"num":0}]`), Attachments: [][]byte{{0xff}}}
	if got := string(nsp.AppendText(nil)); got != `51-/admin,7["up",{"_placeholder":true,"num":0}]` {
		t.Fatalf("binary event with nsp = %q", got)
	}
}

func TestDecodeForms(t *testing.T) {
	tests := []struct {
		in   string
		want Packet
	}{
		// The namespace runs to the first ',' or the end of the message.
		{"0/custom", Packet{Type: Connect, Nsp: "/custom"}},
		{"0/custom,", Packet{Type: Connect, Nsp: "/custom"}},
		{`0/custom,{"a":1}`, Packet{Type: Connect, Nsp: "/custom", Data: json.RawMessage(`{"a":1}`)}},
		{"1/admin", Packet{Type: Disconnect, Nsp: "/admin"}},
		{`2/,["x"]`, Packet{Type: Event, Nsp: "/", Data: json.RawMessage(`["x"]`)}},
		// numeric event names are allowed
		{`2[1,"x"]`, Packet{Type: Event, Nsp: "/", Data: json.RawMessage(`[1,"x"]`)}},
		{`2[-1]`, Packet{Type: Event, Nsp: "/", Data: json.RawMessage(`[-1]`)}},
		{`2 ["x"]`, Packet{Type: Event, Nsp: "/", Data: json.RawMessage(` ["x"]`)}},
		{`20["x"]`, Packet{Type: Event, Nsp: "/", ID: 0, HasID: true, Data: json.RawMessage(`["x"]`)}},
		{`218446744073709551615["x"]`, Packet{Type: Event, Nsp: "/", ID: 18446744073709551615, HasID: true, Data: json.RawMessage(`["x"]`)}},
		{`3/admin,0[]`, Packet{Type: Ack, Nsp: "/admin", ID: 0, HasID: true, Data: json.RawMessage(`[]`)}},
		// legacy string CONNECT_ERROR
		{`4"legacy"`, Packet{Type: ConnectError, Nsp: "/", Data: json.RawMessage(`"legacy"`)}},
		{`4/admin,{"message":"not authorized"}`, Packet{Type: ConnectError, Nsp: "/admin", Data: json.RawMessage(`{"message":"not authorized"}`)}},
		// a placeholder-looking object in a non-binary packet is plain data
		{`2["x",{"_placeholder":true,"num":3}]`, Packet{Type: Event, Nsp: "/", Data: json.RawMessage(`["x",{"_placeholder":true,"num":3}]`)}},
	}
	for _, tt := range tests {
		p, err := Decode([]byte(tt.in))
		if err != nil {
			t.Fatalf("Decode(%q): %v", tt.in, err)
		}
		samePacket(t, p, &tt.want)
	}
}

func TestDecodeInvalid(t *testing.T) {
	tests := []struct{ in, why string }{
		{"", "empty"},
		{"7", "unknown type"},
		{"a", "unknown type"},
		{"/", "unknown type"},
		// CONNECT: none or an object
		{"0[]", "connect payload array"},
		{`0"tok"`, "connect payload string"},
		{"01", "connect payload number is read as an ack id"},
		{`05{}`, "connect with ack id"},
		{`0{"a":}`, "invalid json"},
		// DISCONNECT: none
		{"1{}", "disconnect with payload"},
		{"1/admin,5", "disconnect with ack id"},
		// EVENT
		{"2", "event without payload"},
		{"2[]", "empty event array"},
		{"2{}", "event object payload"},
		{`2"x"`, "event string payload"},
		{"2[true]", "event name bool"},
		{"2[null]", "event name null"},
		{`2[{"a":1}]`, "event name object"},
		{`2[["a"]]`, "event name array"},
		{`2abc["x"]`, "garbage before payload"},
		{`2/admin["x"]`, "namespace swallows payload"},
		{`2["x"`, "unterminated array"},
		{`2["x",]`, "trailing comma"},
		{`2["x"]]`, "trailing bracket"},
		{`299999999999999999999["x"]`, "ack id overflow"},
		// ACK: id and array
		{`3["ok"]`, "ack without id"},
		{`31{}`, "ack object"},
		{"31", "ack without payload"},
		// CONNECT_ERROR: object or legacy string
		{"4abc", "connect error garbage"},
		{"4", "connect error without payload"},
		{"4[]", "connect error array"},
		{"41", "connect error number is an id, no payload"},
		// binary packets through Decode announce attachments
		{`51-["x",{"_placeholder":true,"num":0}]`, "attachments through Decode"},
	}
	for _, tt := range tests {
		p, err := Decode([]byte(tt.in))
		if err == nil {
			t.Errorf("Decode(%q) = %+v, want error (%s)", tt.in, p, tt.why)
			continue
		}
		if !errors.Is(err, ErrInvalidPacket) {
			t.Errorf("Decode(%q) error %v does not wrap ErrInvalidPacket", tt.in, err)
		}
	}
}

func TestReservedEventNames(t *testing.T) {
	for _, name := range []string{"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"} {
		if _, err := Decode([]byte(`2["` + name + `",1]`)); !errors.Is(err, ErrInvalidPacket) {
			t.Errorf("event %q accepted: %v", name, err)
		}
		var d Decoder
		if _, err := d.DecodeText([]byte(`51-["` + name + `",{"_placeholder":true,"num":0}]`)); !errors.Is(err, ErrInvalidPacket) {
			t.Errorf("binary event %q accepted: %v", name, err)
		}
	}
	// Only exact names are reserved.
	for _, name := range []string{"Connect", "connected", "disconnect ", "message"} {
		if _, err := Decode([]byte(`2["` + name + `"]`)); err != nil {
			t.Errorf("event %q refused: %v", name, err)
		}
	}
	// An escaped reserved name is still reserved.
	if _, err := Decode([]byte(`2["conn\u0065ct"]`)); err == nil {
		t.Error(`escaped "connect" accepted`)
	}
	if _, err := Decode([]byte(`2["bad\escape"]`)); err == nil {
		t.Error("invalid escape accepted")
	}
}

func TestAttachmentCountBounds(t *testing.T) {
	ph := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = `{"_placeholder":true,"num":` + string(rune('0'+i%10)) + `}`
		}
		return `["x",` + strings.Join(parts, ",") + `]`
	}
	bad := []string{
		`50-["x"]`,                           // zero attachments
		`5-["x"]`,                            // no count
		`52["x"]`,                            // no '-'
		`5`,                                  // nothing
		`51`,                                 // count without '-'
		`511-` + ph(1),                       // 11 > 10
		`500001-["x"]`,                       // more than 4 digits
		`51a-["x"]`,                          // not a number
		`61-[{"_placeholder":true,"num":0}]`, // binary ack without id
	}
	for _, in := range bad {
		var d Decoder
		if p, err := d.DecodeText([]byte(in)); err == nil {
			t.Errorf("DecodeText(%q) = %+v, want error", in, p)
		}
		if d.Waiting() {
			t.Errorf("DecodeText(%q) left the decoder waiting", in)
		}
	}

	// Exactly 10 is accepted by default.
	var d Decoder
	p, err := d.DecodeText([]byte(`510-` + ph(10)))
	if err != nil || p != nil || !d.Waiting() {
		t.Fatalf("10 attachments: p=%v err=%v waiting=%v", p, err, d.Waiting())
	}
	for i := 0; i < 10; i++ {
		p, err = d.DecodeBinary([]byte{byte(i)})
		if err != nil {
			t.Fatalf("attachment %d: %v", i, err)
		}
	}
	if p == nil || len(p.Attachments) != 10 || p.Attachments[9][0] != 9 {
		t.Fatalf("10 attachments: %+v", p)
	}

	// A raised limit accepts more; a lowered one refuses.
	big := Decoder{MaxAttachments: 12}
	if _, err := big.DecodeText([]byte(`511-` + ph(11))); err != nil || !big.Waiting() {
		t.Fatalf("MaxAttachments 12 refused 11: %v", err)
	}
	small := Decoder{MaxAttachments: 1}
	if _, err := small.DecodeText([]byte(`52-` + ph(2))); err == nil {
		t.Fatal("MaxAttachments 1 accepted 2")
	}
}

func TestPlaceholderValidation(t *testing.T) {
	bad := []struct {
		text string
		n    int
	}{
		{`51-["x",{"_placeholder":true,"num":1}]`, 1},                                       // out of range
		{`51-["x",{"_placeholder":true,"num":-1}]`, 1},                                      // negative
		{`51-["x",{"_placeholder":true,"num":0.5}]`, 1},                                     // not an integer
		{`51-["x",{"_placeholder":true,"num":"0"}]`, 1},                                     // not a number
		{`51-["x",{"_placeholder":true}]`, 1},                                               // missing num
		{`52-["x",{"a":[{"_placeholder":true,"num":2}]},{"_placeholder":true,"num":0}]`, 2}, // nested, out of range
		{`61-3[{"k":{"_placeholder":true,"num":9}}]`, 1},
	}
	for _, b := range bad {
		att := make([][]byte, b.n)
		for i := range att {
			att[i] = []byte{byte(i)}
		}
		if p, err := decodeAll(t, b.text, att...); err == nil {
			t.Errorf("%q accepted: %+v", b.text, p)
		} else if !errors.Is(err, ErrInvalidPacket) {
			t.Errorf("%q: error %v does not wrap ErrInvalidPacket", b.text, err)
		}
	}
	good := []string{
		`51-["x",{"_placeholder":false,"num":7},{"_placeholder":true,"num":0}]`, // false is plain data
		`51-["x",{"a":{"b":[{"_placeholder":true,"num":0}]}}]`,
		`51-["x",1]`, // an unreferenced attachment is tolerated
	}
	for _, g := range good {
		if _, err := decodeAll(t, g, []byte{1}); err != nil {
			t.Errorf("%q refused: %v", g, err)
		}
	}
}

func TestDecoderStateErrors(t *testing.T) {
	var d Decoder
	if _, err := d.DecodeBinary([]byte{1}); !errors.Is(err, ErrInvalidPacket) {
		t.Fatalf("binary without pending packet: %v", err)
	}
	if p, err := d.DecodeText([]byte(`52-["x",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`)); p != nil || err != nil {
		t.Fatalf("binary text: %v %v", p, err)
	}
	if p, err := d.DecodeBinary([]byte{1}); p != nil || err != nil {
		t.Fatalf("first of two attachments: %v %v", p, err)
	}
	// A text message while attachments are expected is an error and drops the pending packet.
	if _, err := d.DecodeText([]byte(`2["x"]`)); !errors.Is(err, ErrInvalidPacket) {
		t.Fatalf("text while waiting: %v", err)
	}
	if d.Waiting() {
		t.Fatal("still waiting after the error")
	}
	// The decoder is usable again.
	p, err := d.DecodeText([]byte(`2["x"]`))
	if err != nil || p == nil || EventName(p.Data) != "x" {
		t.Fatalf("after reset: %v %v", p, err)
	}
	// Reset drops a pending packet.
	if _, err := d.DecodeText([]byte(`51-["x",{"_placeholder":true,"num":0}]`)); err != nil {
		t.Fatal(err)
	}
	d.Reset()
	if d.Waiting() {
		t.Fatal("Reset left the decoder waiting")
	}
	if _, err := d.DecodeBinary([]byte{1}); err == nil {
		t.Fatal("binary accepted after Reset")
	}
}

// Attachments are kept as given, in order; the decoder does not copy them.
func TestDecodeBinaryKeepsAttachmentOrder(t *testing.T) {
	a0, a1 := []byte("first"), []byte("second")
	p, err := decodeAll(t, `52-["x",{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]`, a0, a1)
	if err != nil {
		t.Fatal(err)
	}
	v, err := Unpack(p.Data, p.Attachments)
	if err != nil {
		t.Fatal(err)
	}
	arr := v.([]any)
	if string(arr[1].([]byte)) != "second" || string(arr[2].([]byte)) != "first" {
		t.Fatalf("unpacked %v", arr)
	}
}

func TestTypeString(t *testing.T) {
	want := map[Type]string{Connect: "CONNECT", Disconnect: "DISCONNECT", Event: "EVENT", Ack: "ACK",
		ConnectError: "CONNECT_ERROR", BinaryEvent: "BINARY_EVENT", BinaryAck: "BINARY_ACK", Type(9): "UNKNOWN(9)"}
	for typ, s := range want {
		if typ.String() != s {
			t.Errorf("%d.String() = %q, want %q", typ, typ.String(), s)
		}
	}
}

func TestEventName(t *testing.T) {
	tests := map[string]string{
		`["hello",1]`:   "hello",
		` [ "a\"b" ]`:   `a"b`,
		`["é"]`:         "é",
		`[1,"x"]`:       "",
		`[]`:            "",
		`{}`:            "",
		`["x"`:          "",
		`["\u0041bc"]`:  "Abc",
		`[{"a":1},"x"]`: "",
	}
	for in, want := range tests {
		if got := EventName([]byte(in)); got != want {
			t.Errorf("EventName(%s) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkDecodeText(b *testing.B) {
	msg := []byte(`2/admin,12["quote",{"symbol":"AAPL","bid":189.12,"ask":189.14,"ts":1700000000000}]`)
	b.ReportAllocs()
	var d Decoder
	for b.Loop() {
		if _, err := d.DecodeText(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendText(b *testing.B) {
	p := Packet{Type: Event, Nsp: "/admin", Data: json.RawMessage(`["quote",{"symbol":"AAPL","bid":189.12,"ask":189.14,"ts":1700000000000}]`)}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = p.AppendText(buf[:0])
	}
}
