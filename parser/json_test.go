package parser

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"
)

func encodeValue(t *testing.T, v any) (string, [][]byte) {
	t.Helper()
	var e Encoder
	if err := e.AppendValue(v); err != nil {
		t.Fatalf("AppendValue(%#v): %v", v, err)
	}
	return string(e.Buf), e.Attachments
}

func TestEncoderValues(t *testing.T) {
	type point struct {
		X    int    `json:"x"`
		Name string `json:"name"`
	}
	tests := []struct {
		in   any
		want string
	}{
		{nil, `null`},
		{true, `true`},
		{false, `false`},
		{0, `0`},
		{-42, `-42`},
		{int64(-9007199254740993), `-9007199254740993`},
		{uint64(18446744073709551615), `18446744073709551615`},
		{1.5, `1.5`},
		{float64(100), `100`},
		{1e21, `1e+21`},
		{1e-7, `1e-7`},
		{math.NaN(), `null`},
		{math.Inf(1), `null`},
		{math.Inf(-1), `null`},
		{"", `""`},
		{"hello", `"hello"`},
		// strings are not HTML-escaped, as JSON.stringify
		{"<a href='x'>&</a>", `"<a href='x'>&</a>"`},
		// raw UTF-8 stays raw, including U+2028/2029 (JSON.stringify does not escape them)
		{"é€😀\u2028\u2029", "\"é€😀\u2028\u2029\""},
		{"quote\" backslash\\ slash/", `"quote\" backslash\\ slash/"`},
		{"\n\r\t\b\f", `"\n\r\t\b\f"`},
		{"\x00\x01\x1f\x7f", `"\u0000\u0001\u001f` + "\x7f" + `"`},
		// invalid UTF-8 becomes U+FFFD, one per bad byte
		{"a\xffb\xc3", "\"a\ufffdb\ufffd\""},
		{"\xed\xa0\x80", "\"\ufffd\ufffd\ufffd\""}, // an encoded surrogate is invalid UTF-8
		{json.RawMessage(`{"pre":"encoded", "kept" : [1,2]}`), `{"pre":"encoded", "kept" : [1,2]}`},
		{json.RawMessage(nil), `null`},
		{[]any{1, "a", nil, []any{}}, `[1,"a",null,[]]`},
		{map[string]any{}, `{}`},
		{map[string]any{"b": 1, "a": 2, "c": map[string]any{"z": true, "y": false}}, `{"a":2,"b":1,"c":{"y":false,"z":true}}`},
		{map[string]any{"k\"<": "v"}, `{"k\"<":"v"}`},
		// other types go through encoding/json without HTML escaping
		{point{X: 1, Name: "<b>"}, `{"x":1,"name":"<b>"}`},
		{map[string]int{"b": 2, "a": 1}, `{"a":1,"b":2}`},
		{[]string{"x", "y"}, `["x","y"]`},
		{int32(7), `7`},
		{float32(0.5), `0.5`},
	}
	for _, tt := range tests {
		got, att := encodeValue(t, tt.in)
		if got != tt.want {
			t.Errorf("AppendValue(%#v) = %s, want %s", tt.in, got, tt.want)
		}
		if len(att) != 0 {
			t.Errorf("AppendValue(%#v) produced %d attachments", tt.in, len(att))
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("AppendValue(%#v) = %s is not valid JSON", tt.in, got)
		}
	}
}

func TestEncoderBinaryPlaceholders(t *testing.T) {
	type blob []byte
	var e Encoder
	err := e.AppendArray(
		"up",
		[]byte{1, 2, 3},
		map[string]any{"f": []byte{4}, "a": []any{blob{5}, "x"}},
		[]byte{},
	)
	if err != nil {
		t.Fatal(err)
	}
	// map keys are sorted, so "a" (num 1) comes before "f" (num 2): depth-first order of the output.
	want := `["up",{"_placeholder":true,"num":0},{"a":[{"_placeholder":true,"num":1},"x"],"f":{"_placeholder":true,"num":2}},{"_placeholder":true,"num":3}]`
	if string(e.Buf) != want {
		t.Fatalf("got  %s\nwant %s", e.Buf, want)
	}
	wantAtt := [][]byte{{1, 2, 3}, {5}, {4}, {}}
	if len(e.Attachments) != len(wantAtt) {
		t.Fatalf("attachments %x", e.Attachments)
	}
	for i := range wantAtt {
		if !bytes.Equal(e.Attachments[i], wantAtt[i]) {
			t.Fatalf("attachment %d = %x, want %x", i, e.Attachments[i], wantAtt[i])
		}
	}
	// The encoded packet decodes back to the same values.
	p := Packet{Type: Event, Data: e.Buf, Attachments: e.Attachments}
	atts := make([][]byte, len(e.Attachments))
	copy(atts, e.Attachments)
	dp, err := decodeAll(t, string(p.AppendText(nil)), atts...)
	if err != nil {
		t.Fatal(err)
	}
	v, err := Unpack(dp.Data, dp.Attachments)
	if err != nil {
		t.Fatal(err)
	}
	wantV := []any{"up", []byte{1, 2, 3}, map[string]any{"f": []byte{4}, "a": []any{[]byte{5}, "x"}}, []byte{}}
	if !reflect.DeepEqual(v, wantV) {
		t.Fatalf("unpacked %#v", v)
	}
}

func TestEncoderErrors(t *testing.T) {
	bad := []any{
		make(chan int),
		func() {},
		[]any{1, make(chan int)},
		map[string]any{"k": func() {}},
		struct{ F float64 }{math.NaN()}, // encoding/json refuses NaN inside structs
	}
	for _, v := range bad {
		var e Encoder
		if err := e.AppendValue(v); err == nil {
			t.Errorf("AppendValue(%T) succeeded: %s", v, e.Buf)
		}
	}
	var e Encoder
	if err := e.AppendArray("x", make(chan int)); err == nil {
		t.Error("AppendArray with a channel succeeded")
	}
}

func TestAppendStringRoundTrip(t *testing.T) {
	for _, s := range []string{"", "plain", "\"\\/\b\f\n\r\t", "\x00\x7f\u0080\u07ff\u0800\uffff\U0010ffff", "bad\xff\xfe", "<>&\u2028"} {
		out := AppendString([]byte("prefix"), s)
		if !bytes.HasPrefix(out, []byte("prefix")) {
			t.Fatalf("prefix lost: %q", out)
		}
		var back string
		if err := json.Unmarshal(out[len("prefix"):], &back); err != nil {
			t.Fatalf("AppendString(%q) = %q is not a JSON string: %v", s, out, err)
		}
		if want := string([]rune(s)); back != want {
			t.Fatalf("round trip of %q = %q, want %q", s, back, want)
		}
	}
}

func TestSplitArray(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{`[]`, nil},
		{` [ ] `, nil},
		{`[1]`, []string{`1`}},
		{`[ 1 , "a,b" ,{"x":[1,2],"y":"]"}, [3,[4]] ,null,true,-1.5e3]`,
			[]string{`1`, `"a,b"`, `{"x":[1,2],"y":"]"}`, `[3,[4]]`, `null`, `true`, `-1.5e3`}},
		{`["a\"b\\",{"_placeholder":true,"num":0}]`, []string{`"a\"b\\"`, `{"_placeholder":true,"num":0}`}},
		{"[\t\"x\"\n,\r\n2]", []string{`"x"`, `2`}},
	}
	for _, tt := range tests {
		got, err := SplitArray([]byte(tt.in))
		if err != nil {
			t.Fatalf("SplitArray(%s): %v", tt.in, err)
		}
		if len(got) != len(tt.want) {
			t.Fatalf("SplitArray(%s) = %q, want %q", tt.in, got, tt.want)
		}
		for i := range got {
			if string(got[i]) != tt.want[i] {
				t.Fatalf("SplitArray(%s)[%d] = %s, want %s", tt.in, i, got[i], tt.want[i])
			}
		}
	}
	for _, in := range []string{``, `   `, `{}`, `"x"`, `[`, `[1`, `[1 2]`, `[1,`, `["abc`, `[{"a":1`, `[[1,2]`} {
		if got, err := SplitArray([]byte(in)); err == nil {
			t.Errorf("SplitArray(%q) = %q, want error", in, got)
		} else if !errors.Is(err, ErrInvalidPacket) {
			t.Errorf("SplitArray(%q) error %v does not wrap ErrInvalidPacket", in, err)
		}
	}
}

func TestUnpack(t *testing.T) {
	att := [][]byte{{0xde, 0xad}, {0xbe, 0xef}}
	v, err := Unpack(json.RawMessage(`["bin",{"_placeholder":true,"num":0},13,{"n":{"_placeholder":true,"num":1},"list":[{"_placeholder":true,"num":0}],"plain":{"_placeholder":false}}]`), att)
	if err != nil {
		t.Fatal(err)
	}
	want := []any{"bin", []byte{0xde, 0xad}, float64(13), map[string]any{
		"n": []byte{0xbe, 0xef}, "list": []any{[]byte{0xde, 0xad}}, "plain": map[string]any{"_placeholder": false},
	}}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("Unpack = %#v", v)
	}

	// Without attachments the JSON is returned as is (placeholders stay objects).
	v, err = Unpack(json.RawMessage(`{"a":[1,"x",null],"_placeholder":true,"num":0}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v, map[string]any{"a": []any{float64(1), "x", nil}, "_placeholder": true, "num": float64(0)}) {
		t.Fatalf("Unpack without attachments = %#v", v)
	}

	for _, bad := range []string{
		`[{"_placeholder":true,"num":2}]`,
		`[{"_placeholder":true,"num":-1}]`,
		`{"k":{"_placeholder":true,"num":1.5}}`,
		`[[{"_placeholder":true}]]`,
		`{"deep":{"deeper":[{"_placeholder":true,"num":9}]}}`,
	} {
		if v, err := Unpack(json.RawMessage(bad), att); err == nil {
			t.Errorf("Unpack(%s) = %#v, want error", bad, v)
		}
	}
	if _, err := Unpack(json.RawMessage(`[1,`), nil); !errors.Is(err, ErrInvalidPacket) {
		t.Errorf("Unpack of invalid JSON: %v", err)
	}
}

func TestAppendArg(t *testing.T) {
	tests := []struct{ in, arg, want string }{
		{`["news","n1"]`, "Q8Npw3q", `["news","n1","Q8Npw3q"]`},
		{`["x",[1,2]]`, "o.1", `["x",[1,2],"o.1"]`},
		{`["x",{"a":"]"}]`, "o", `["x",{"a":"]"},"o"]`},
		{`[]`, "o", `["o"]`},
		{`[ ]`, "o", `[ "o"]`},
		{`["a"] `, "o", `["a","o"] `},
		{`["x"]`, `q"\`, `["x","q\"\\"]`},
	}
	for _, tt := range tests {
		in := json.RawMessage(tt.in)
		got := AppendArg(in, tt.arg)
		if string(got) != tt.want {
			t.Errorf("AppendArg(%s, %q) = %s, want %s", tt.in, tt.arg, got, tt.want)
		}
		if string(in) != tt.in {
			t.Errorf("AppendArg modified its input: %s", in)
		}
		if !json.Valid(got) {
			t.Errorf("AppendArg(%s) = %s is invalid JSON", tt.in, got)
		}
	}
	// Not an array: returned unchanged.
	if got := AppendArg(json.RawMessage(`{"a":1}`), "o"); string(got) != `{"a":1}` {
		t.Errorf("AppendArg on an object = %s", got)
	}
	// The shared input is not aliased: appending to the result keeps the input intact.
	in := make([]byte, 0, 64)
	in = append(in, `["x"]`...)
	out := AppendArg(in, "o")
	out[1] = 'Y'
	if string(in) != `["x"]` {
		t.Errorf("result aliases input: %s", in)
	}
}

func BenchmarkEncoderEvent(b *testing.B) {
	args := []any{"quote", map[string]any{"symbol": "AAPL", "bid": 189.12, "ask": 189.14, "ts": int64(1700000000000)}}
	b.ReportAllocs()
	var e Encoder
	for b.Loop() {
		e.Buf, e.Attachments = e.Buf[:0], e.Attachments[:0]
		if err := e.AppendArray(args...); err != nil {
			b.Fatal(err)
		}
	}
}
