package msgpack

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"reflect"
	"strconv"
	"testing"
	"time"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Encodings notepack.io 3.0.1 produces for the same JavaScript values.
func TestEncodeLikeNotepack(t *testing.T) {
	cases := []struct {
		v    any
		want string
	}{
		{nil, "c0"}, {true, "c3"}, {false, "c2"},
		{0, "00"}, {127, "7f"}, {128, "cc80"}, {255, "ccff"}, {256, "cd0100"},
		{65535, "cdffff"}, {65536, "ce00010000"}, {int64(1) << 32, "cf0000000100000000"},
		{-1, "ff"}, {-32, "e0"}, {-33, "d0df"}, {-128, "d080"}, {-129, "d1ff7f"},
		{-32768, "d18000"}, {-32769, "d2ffff7fff"}, {int64(-1) << 31, "d280000000"},
		{int64(-1)<<31 - 1, "d3ffffffff7fffffff"},
		{uint8(7), "07"}, {uint16(300), "cd012c"}, {uint32(70000), "ce00011170"}, {uint(1), "01"},
		{int8(-2), "fe"}, {int16(-2), "fe"}, {int32(-2), "fe"},
		{float64(300), "cd012c"}, {1.5, "cb3ff8000000000000"}, {float32(0.5), "cb3fe0000000000000"},
		{math.Copysign(0, -1), "00"}, {-2.0, "fe"}, {1e300, "cb7e37e43c8800759c"},
		{math.Inf(1), "cb7ff0000000000000"}, {1e20, "cb4415af1d78b58c40"},
		{"", "a0"}, {"abc", "a3616263"},
		{string(bytes.Repeat([]byte("x"), 32)), "d920" + hex.EncodeToString(bytes.Repeat([]byte("x"), 32))},
		{[]byte{1, 2, 3}, "c403010203"},
		{[]any{}, "90"}, {[]string{"a"}, "91a161"},
		{Map{{"b", 1}, {"a", 2}}, "82a16201a16102"},
		{map[string]any{"b": 1, "a": 2}, "82a16102a16201"},
		{time.Unix(1, 0), "d6ff00000001"},
		{time.UnixMilli(1500), "d7ff7735940000000001"},
		{time.Unix(-1, 0), "c70cff00000000ffffffffffffffff"},
		{Ext{Type: 5, Data: []byte{1}}, "d40501"},
		{Ext{Type: 5, Data: []byte{1, 2}}, "d5050102"},
		{Ext{Type: 5, Data: []byte{1, 2, 3}}, "c70305010203"},
	}
	for _, c := range cases {
		got, err := Marshal(c.v)
		if err != nil {
			t.Fatalf("%#v: %v", c.v, err)
		}
		if hex.EncodeToString(got) != c.want {
			t.Errorf("Marshal(%#v) = %x, want %s", c.v, got, c.want)
		}
	}
}

func TestEncodeLengths(t *testing.T) {
	for _, n := range []int{15, 16, 255, 256, 65535, 65536} {
		arr := make([]any, n)
		b, err := Marshal(arr)
		if err != nil {
			t.Fatal(err)
		}
		v, err := Unmarshal(b)
		if err != nil || len(v.([]any)) != n {
			t.Fatalf("array %d: %v", n, err)
		}
		m := make(Map, n)
		for i := range m {
			m[i] = KV{strconv.Itoa(i), nil} // distinct keys: a repeated key is one entry
		}
		b, _ = Marshal(m)
		v, err = Unmarshal(b)
		if err != nil || len(v.(Map)) != n {
			t.Fatalf("map %d: %v", n, err)
		}
		s := string(bytes.Repeat([]byte{'s'}, n))
		b, _ = Marshal(s)
		if v, err := Unmarshal(b); err != nil || v != s {
			t.Fatalf("str %d: %v", n, err)
		}
		bin := bytes.Repeat([]byte{9}, n)
		b, _ = Marshal(bin)
		if v, err := Unmarshal(b); err != nil || !bytes.Equal(v.([]byte), bin) {
			t.Fatalf("bin %d: %v", n, err)
		}
		e := Ext{Type: 3, Data: bin}
		b, _ = Marshal(e)
		if v, err := Unmarshal(b); err != nil || !reflect.DeepEqual(v, e) {
			t.Fatalf("ext %d: %v %#v", n, err, v)
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	if _, err := Marshal(struct{}{}); err == nil {
		t.Fatal("struct accepted")
	}
	if _, err := Marshal([]any{make(chan int)}); err == nil {
		t.Fatal("chan accepted")
	}
	if _, err := Marshal(Map{{"k", struct{}{}}}); err == nil {
		t.Fatal("struct in map accepted")
	}
	var deep any = 1
	for range MaxDepth + 2 {
		deep = []any{deep}
	}
	if _, err := Marshal(deep); err == nil {
		t.Fatal("deep value accepted")
	}
}

// Everything notepack can emit, including formats it never writes itself
// but reads (float32, int64 for small values, legacy extensions).
func TestDecode(t *testing.T) {
	cases := []struct {
		in   string
		want any
	}{
		{"c0", nil}, {"c3", true}, {"c2", false}, {"05", int64(5)}, {"ff", int64(-1)},
		{"cc80", int64(128)}, {"cd0100", int64(256)}, {"ce00010000", int64(65536)},
		{"cf0000000100000000", int64(1) << 32}, {"cfffffffffffffffff", uint64(math.MaxUint64)},
		{"d080", int64(-128)}, {"d18000", int64(-32768)}, {"d280000000", int64(math.MinInt32)},
		{"d3fffffffffffffffe", int64(-2)}, {"d30000000000000001", int64(1)},
		{"ca3fc00000", 1.5}, {"cb3ff8000000000000", 1.5},
		{"a3616263", "abc"}, {"d903616263", "abc"}, {"da0003616263", "abc"}, {"db00000003616263", "abc"},
		{"c4020102", []byte{1, 2}}, {"c500020102", []byte{1, 2}}, {"c6000000020102", []byte{1, 2}},
		{"920102", []any{int64(1), int64(2)}}, {"dc00020102", []any{int64(1), int64(2)}},
		{"dd000000020102", []any{int64(1), int64(2)}},
		{"82a16201a16102", Map{{"b", int64(1)}, {"a", int64(2)}}},
		{"de0001a16101", Map{{"a", int64(1)}}}, {"df00000001a16101", Map{{"a", int64(1)}}},
		{"d6ff00000001", time.Unix(1, 0).UTC()},
		{"d7ff7735940000000001", time.UnixMilli(1500).UTC()},
		{"c70cff00000000ffffffffffffffff", time.Unix(-1, 0).UTC()},
		{"d400c0", nil}, // legacy undefined
		{"d70000000000000005dc", time.UnixMilli(1500).UTC()}, // legacy Date in ms
		{"c7020001ff", []byte{1, 0xff}},                      // legacy ArrayBuffer
		{"d60501020304", Ext{5, []byte{1, 2, 3, 4}}},
		{"d8050102030405060708090a0b0c0d0e0f10", Ext{5, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}}},
		{"c800010501", Ext{5, []byte{1}}},
		{"c90000000105ff", Ext{5, []byte{0xff}}},
	}
	for _, c := range cases {
		got, err := Unmarshal(mustHex(t, c.in))
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Unmarshal(%s) = %#v, want %#v", c.in, got, c.want)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, in := range []string{
		"", "c1", "92c0", "a5616263", "c40501", "cd01", "81a161", "8101c0", "81c0c0",
		"c0c0", "dcffff", "dfffffffff", "d6ff0000", "c703ff010203", "d7ffffffffff00000000",
		"c70cffffffffff0000000000000000", "dbffffffff", "c6ffffffff", "c9ffffffff05",
	} {
		_, err := Unmarshal(mustHex(t, in))
		if err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("Unmarshal(%s) error = %v, want ErrInvalid", in, err)
		}
	}
	deep := bytes.Repeat([]byte{0x91}, MaxDepth+5)
	deep = append(deep, 0xc0)
	if _, err := Unmarshal(deep); !errors.Is(err, ErrInvalid) {
		t.Fatalf("deep: %v", err)
	}
}

func TestMapGet(t *testing.T) {
	m := Map{{"a", 1}}
	if v, ok := m.Get("a"); !ok || v != 1 {
		t.Fatal("Get a")
	}
	if _, ok := m.Get("b"); ok {
		t.Fatal("Get b")
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, s := range []string{
		"93a65f6b376c717683a47479706502a46461746193a362696ec40301020381a66e6573746564c4026869a36e7370a12f83a5726f6f6d7390a665786365707490a5666c61677380",
		"d7ff7735940000000001", "c70cff00000000ffffffffffffffff", "8101c0", "cb3ff8000000000000",
	} {
		f.Add(mustHex(f, s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Unmarshal(data)
		if err != nil {
			return
		}
		// whatever decodes must encode, and decode again to the same value
		b, err := Marshal(v)
		if err != nil {
			t.Fatalf("re-encode %#v: %v", v, err)
		}
		v2, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("decode re-encoded %x: %v", b, err)
		}
		if !equalish(v, v2) {
			t.Fatalf("round trip %#v != %#v", v, v2)
		}
	})
}

// equalish compares decoded values, treating floats with integer values and
// the integers they encode to as equal, and NaN as equal to NaN.
func equalish(a, b any) bool {
	switch x := a.(type) {
	case float64:
		switch y := b.(type) {
		case float64:
			return x == y || (math.IsNaN(x) && math.IsNaN(y))
		case int64:
			return x == float64(y)
		case uint64:
			return x == float64(y)
		}
		return false
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalish(x[i], y[i]) {
				return false
			}
		}
		return true
	case Map:
		y, ok := b.(Map)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i].Key != y[i].Key || !equalish(x[i].Value, y[i].Value) {
				return false
			}
		}
		return true
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	}
	return reflect.DeepEqual(a, b)
}

// A repeated map key keeps its first position and takes the last value, as
// notepack decoding into a JavaScript object does; also past the size where
// the decoder switches from scanning to an index.
func TestDecodeRepeatedKeys(t *testing.T) {
	for _, n := range []int{3, 40} {
		m := make(Map, 0, n+2)
		for i := range n {
			m = append(m, KV{strconv.Itoa(i), int64(i)})
		}
		m = append(m, KV{"1", "last"}, KV{strconv.Itoa(n - 1), "end"})
		b, err := Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		v, err := Unmarshal(b)
		if err != nil {
			t.Fatal(err)
		}
		got := v.(Map)
		if len(got) != n || got[1] != (KV{"1", "last"}) || got[n-1] != (KV{strconv.Itoa(n - 1), "end"}) || got[0] != (KV{"0", int64(0)}) {
			t.Fatalf("n=%d: %v", n, got)
		}
	}
}
