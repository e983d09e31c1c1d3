package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tradewire/tradewire/adapter"
	"github.com/tradewire/tradewire/adapter/redisadapter/internal/msgpack"
	"github.com/tradewire/tradewire/parser"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Vectors from wire-formats.md §3, captured from the real npm packages.
const (
	vecA1 = "93a65f6b376c717683a47479706502a46461746193a362696ec40301020381a66e6573746564c4026869a36e7370a12f83a5726f6f6d7390a665786365707490a5666c61677380"
	vecR7 = "85a3756964a65f6b376c7176a9726571756573744964a6646642556958a47479706507a67061636b657483a47479706502a46461746192a661636b2d657607a36e7370a12fa46f70747383a5726f6f6d7390a665786365707490a5666c61677381a774696d656f7574cd012c"
	vecR9 = "83a47479706509a9726571756573744964a6646642556958a67061636b6574ac636c69656e742d61636b2d37"
	vecE1 = "93a7656d697474657283a47479706502a46461746192a2657601a36e7370a12f83a5726f6f6d7390a5666c61677380a665786365707490"
	vecE2 = "93a7656d697474657283a47479706502a46461746192a26576a172a36e7370a12f83a5726f6f6d7391a5726f6f6d31a5666c61677380a665786365707490"
	vecE3 = "93a7656d697474657283a47479706502a46461746191a26576a36e7370a12f83a5726f6f6d7392a161a162a5666c61677382a8766f6c6174696c65c3a8636f6d7072657373c3a665786365707491a163"
	vecE4 = "93a7656d697474657283a47479706502a46461746192a26576c0a36e7370a52f6368617483a5726f6f6d7390a5666c61677380a665786365707490"
	vecE5 = "93a7656d697474657283a47479706502a46461746192a362696ec402deada36e7370a12f83a5726f6f6d7390a5666c61677380a665786365707490"
	vecS1 = `{"type":3,"data":{"packet":{"type":2,"data":["ev",1]},"opts":{"rooms":[],"except":[],"flags":{}}},"uid":"6aa9781dc5561bee","nsp":"/"}`
	vecS2 = "84a47479706503a46461746182a67061636b657482a47479706502a46461746192a362696ec4020102a46f70747383a5726f6f6d7390a665786365707490a5666c61677380a3756964b036616139373831646335353631626565a36e7370a12f"
)

func boolp(b bool) *bool { return &b }

func TestBroadcastVectors(t *testing.T) {
	cases := []struct {
		name, hex   string
		uid         string
		typ         parser.Type
		nsp, data   string
		attachments [][]byte
		opts        adapter.BroadcastOptions
		// reencode: Go writes the same bytes (adapter key order); the
		// emitter writes opts as {rooms, flags, except}.
		reencode bool
	}{
		{"A1", vecA1, "_k7lqv", parser.BinaryEvent, "/",
			`["bin",{"_placeholder":true,"num":0},{"nested":{"_placeholder":true,"num":1}}]`,
			[][]byte{{1, 2, 3}, []byte("hi")}, adapter.BroadcastOptions{}, true},
		{"E1", vecE1, "emitter", parser.Event, "/", `["ev",1]`, nil, adapter.BroadcastOptions{}, false},
		{"E2", vecE2, "emitter", parser.Event, "/", `["ev","r"]`, nil, adapter.BroadcastOptions{Rooms: []string{"room1"}}, false},
		{"E3", vecE3, "emitter", parser.Event, "/", `["ev"]`, nil, adapter.BroadcastOptions{
			Rooms: []string{"a", "b"}, Except: []string{"c"}, Flags: adapter.Flags{Volatile: true, Compress: boolp(true)}}, false},
		{"E4", vecE4, "emitter", parser.Event, "/chat", `["ev",null]`, nil, adapter.BroadcastOptions{}, false},
		{"E5", vecE5, "emitter", parser.BinaryEvent, "/", `["bin",{"_placeholder":true,"num":0}]`, [][]byte{{0xde, 0xad}}, adapter.BroadcastOptions{}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := unhex(t, c.hex)
			b, err := DecodeBroadcast(raw)
			if err != nil {
				t.Fatal(err)
			}
			if b.UID != c.uid || b.Packet.Type != c.typ || b.Packet.Nsp != c.nsp || string(b.Packet.Data) != c.data {
				t.Fatalf("got uid=%q type=%v nsp=%q data=%s", b.UID, b.Packet.Type, b.Packet.Nsp, b.Packet.Data)
			}
			if !reflect.DeepEqual(b.Packet.Attachments, c.attachments) {
				t.Fatalf("attachments %x, want %x", b.Packet.Attachments, c.attachments)
			}
			if len(b.Opts.Rooms) != len(c.opts.Rooms) || len(b.Opts.Except) != len(c.opts.Except) ||
				(len(c.opts.Rooms) > 0 && !reflect.DeepEqual(b.Opts.Rooms, c.opts.Rooms)) ||
				(len(c.opts.Except) > 0 && !reflect.DeepEqual(b.Opts.Except, c.opts.Except)) ||
				!reflect.DeepEqual(b.Opts.Flags, c.opts.Flags) {
				t.Fatalf("opts %+v, want %+v", b.Opts, c.opts)
			}
			// the decoded packet is valid Socket.IO
			if b.Packet.Attachments == nil {
				if _, err := parser.Decode(b.Packet.AppendText(nil)); err != nil {
					t.Fatalf("packet does not parse: %v", err)
				}
			}
			out, err := EncodeBroadcast(b.UID, b.Packet, &b.Opts)
			if err != nil {
				t.Fatal(err)
			}
			if c.reencode && !bytes.Equal(out, raw) {
				t.Fatalf("re-encoded\n%x\nwant\n%x", out, raw)
			}
			// same message whatever the key order
			v1, _ := msgpack.Unmarshal(out)
			v2, _ := msgpack.Unmarshal(raw)
			if !sameValue(v1, v2) {
				t.Fatalf("re-encoded %#v, want %#v", v1, v2)
			}
		})
	}
}

// sameValue compares generic values with map key order ignored.
func sameValue(a, b any) bool {
	ma, okA := a.(msgpack.Map)
	mb, okB := b.(msgpack.Map)
	if okA && okB {
		if len(ma) != len(mb) {
			return false
		}
		for _, kv := range ma {
			v, ok := mb.Get(kv.Key)
			if !ok || !sameValue(kv.Value, v) {
				return false
			}
		}
		return true
	}
	aa, okA := a.([]any)
	ab, okB := b.([]any)
	if okA && okB {
		if len(aa) != len(ab) {
			return false
		}
		for i := range aa {
			if !sameValue(aa[i], ab[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

func TestRequestVectorR7(t *testing.T) {
	raw := unhex(t, vecR7)
	r, err := DecodeRequest(raw)
	if err != nil {
		t.Fatal(err)
	}
	if r.Type != TypeBroadcast || r.UID != "_k7lqv" || r.RequestID != "dfBUiX" || !r.HasRequestID {
		t.Fatalf("got %+v", r)
	}
	if string(r.Packet.Data) != `["ack-ev",7]` || r.Packet.Nsp != "/" || r.Packet.Type != parser.Event {
		t.Fatalf("packet %+v", r.Packet)
	}
	if r.Opts.Flags.Timeout != 300 || len(r.Opts.Rooms) != 0 {
		t.Fatalf("opts %+v", r.Opts)
	}
	out, err := EncodeRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, raw) {
		t.Fatalf("re-encoded\n%x\nwant\n%s", out, vecR7)
	}
}

func TestResponseVectorR9(t *testing.T) {
	raw := unhex(t, vecR9)
	r, err := DecodeResponse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if r.Type != TypeBroadcastAck || r.RequestID != "dfBUiX" || r.Packet != "client-ack-7" {
		t.Fatalf("got %+v", r)
	}
	out, err := EncodeBroadcastAckResponse("dfBUiX", "client-ack-7")
	if err != nil || !bytes.Equal(out, raw) {
		t.Fatalf("re-encoded %x (%v), want %s", out, err, vecR9)
	}
}

// The JSON request and response forms of the §3.1 table and §3.2.
func TestJSONRequestForms(t *testing.T) {
	cases := []struct {
		in   string
		want Request
		// out is what Go writes for the decoded request ("" = same as in)
		out string
	}{
		{`{"uid":"_k7lqv","requestId":"_UV5TE","type":1}`, Request{Type: 1, UID: "_k7lqv", RequestID: "_UV5TE", HasRequestID: true}, ""},
		{`{"uid":"u","requestId":"r","type":0,"rooms":["a"]}`, Request{Type: 0, UID: "u", RequestID: "r", HasRequestID: true, Rooms: []string{"a"}}, ""},
		{`{"uid":"u","type":2,"opts":{"rooms":["room1"],"except":[]},"rooms":["room9"]}`,
			Request{Type: 2, UID: "u", Opts: &adapter.BroadcastOptions{Rooms: []string{"room1"}, Except: []string{}}, Rooms: []string{"room9"}}, ""},
		{`{"type":2,"opts":{"rooms":["room1"],"except":[]},"rooms":["room5"]}`,
			Request{Type: 2, Opts: &adapter.BroadcastOptions{Rooms: []string{"room1"}, Except: []string{}}, Rooms: []string{"room5"}}, ""},
		{`{"type":3,"opts":{"rooms":[],"except":[]},"rooms":["room5"]}`,
			Request{Type: 3, Opts: &adapter.BroadcastOptions{Rooms: []string{}, Except: []string{}}, Rooms: []string{"room5"}}, ""},
		{`{"type":4,"opts":{"rooms":["room1"],"except":[]},"close":true}`,
			Request{Type: 4, Opts: &adapter.BroadcastOptions{Rooms: []string{"room1"}, Except: []string{}}, Close: true}, ""},
		{`{"uid":"u","requestId":"r","type":5,"opts":{"rooms":[],"except":["x"]}}`,
			Request{Type: 5, UID: "u", RequestID: "r", HasRequestID: true, Opts: &adapter.BroadcastOptions{Rooms: []string{}, Except: []string{"x"}}}, ""},
		{`{"uid":"u","type":6,"data":["hello",1,"two"]}`, Request{Type: 6, UID: "u", Args: []any{"hello", 1.0, "two"}}, ""},
		{`{"uid":"emitter","type":6,"data":["hello",{"z":1}]}`, Request{Type: 6, UID: "emitter", Args: []any{"hello", map[string]any{"z": 1.0}}}, ""},
		{`{"uid":"u","requestId":"r","type":6,"data":[]}`, Request{Type: 6, UID: "u", RequestID: "r", HasRequestID: true, Args: []any{}}, ""},
		// legacy single-socket forms
		{`{"uid":"u","requestId":"r","type":2,"sid":"s1","room":"x"}`, Request{Type: 2, UID: "u", RequestID: "r", HasRequestID: true, SID: "s1", Room: "x"}, ""},
		{`{"uid":"u","requestId":"r","type":3,"sid":"s1","room":5}`, Request{Type: 3, UID: "u", RequestID: "r", HasRequestID: true, SID: "s1", Room: "5"},
			`{"uid":"u","requestId":"r","type":3,"sid":"s1","room":"5"}`},
		{`{"uid":"u","requestId":"r","type":4,"sid":"s1","close":false}`, Request{Type: 4, UID: "u", RequestID: "r", HasRequestID: true, SID: "s1"}, ""},
	}
	for _, c := range cases {
		r, err := DecodeRequest([]byte(c.in))
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if !reflect.DeepEqual(*r, c.want) {
			t.Fatalf("%s:\n got %#v\nwant %#v", c.in, *r, c.want)
		}
		out, err := EncodeRequest(r)
		if err != nil {
			t.Fatal(err)
		}
		want := c.out
		if want == "" {
			want = c.in
		}
		if string(out) != want {
			t.Fatalf("re-encoded %s, want %s", out, want)
		}
	}
}

func TestRequestErrors(t *testing.T) {
	for _, in := range []string{
		``, `{`, `[]`, `{"type":12}`, `{"type":"1"}`, `{"type":1,"uid":5}`, `{"type":1,"requestId":{}}`,
		`{"type":2}`, `{"type":2,"opts":[]}`, `{"type":2,"opts":{"rooms":"a"}}`, `{"type":2,"opts":{"rooms":[{}]}}`,
		`{"type":2,"opts":{"flags":[]}}`, `{"type":6,"data":{}}`, `{"type":7,"requestId":"r","packet":1}`,
		`{"type":7,"packet":{"type":2,"data":[]}}`, `{"type":2,"sid":"s","room":[]}`, `{"type":0,"rooms":{}}`,
		`{"type":7,"requestId":"r","packet":{"type":9}}`, `{"type":7,"requestId":"r","packet":{"type":2,"nsp":1}}`,
		`{"type":7,"requestId":"r","packet":{"type":2,"id":-1}}`, `{"type":1}x`, "\x81\x01\xc0",
	} {
		if _, err := DecodeRequest([]byte(in)); err == nil {
			t.Errorf("DecodeRequest(%q) accepted", in)
		} else if !errors.Is(err, ErrInvalid) && !errors.Is(err, msgpack.ErrInvalid) {
			t.Errorf("DecodeRequest(%q) = %v, want ErrInvalid", in, err)
		}
	}
}

func TestResponses(t *testing.T) {
	if got := string(EncodeRoomsResponse("_UV5TE", []string{"086dSq7FJ1sNny9aAAAA", "room1"})); got != `{"requestId":"_UV5TE","rooms":["086dSq7FJ1sNny9aAAAA","room1"]}` {
		t.Fatal(got)
	}
	if got := string(EncodeSocketsResponse("r", nil)); got != `{"requestId":"r","sockets":[]}` {
		t.Fatal(got)
	}
	if got := string(EncodeAckResponse("r")); got != `{"requestId":"r"}` {
		t.Fatal(got)
	}
	if got := string(EncodeClientCountResponse("r", 0)); got != `{"type":8,"requestId":"r","clientCount":0}` {
		t.Fatal(got)
	}
	b, err := EncodeServerSideEmitResponse("r", map[string]any{"ok": true})
	if err != nil || string(b) != `{"type":6,"requestId":"r","data":{"ok":true}}` {
		t.Fatal(string(b), err)
	}
	r, err := DecodeResponse(b)
	if err != nil || r.Type != 6 || !reflect.DeepEqual(r.Data, map[string]any{"ok": true}) {
		t.Fatalf("%+v %v", r, err)
	}
	info := adapter.SocketInfo{ID: "s1", Rooms: []string{"s1", "r"}, Data: map[string]any{"user": "u1"},
		Handshake: adapter.Handshake{Address: "::1", Headers: map[string]any{"host": "x"}, Issued: 1700000000000, Query: map[string]any{}, Auth: map[string]any{}}}
	b, err = EncodeFetchResponse("r", []adapter.SocketInfo{info})
	if err != nil {
		t.Fatal(err)
	}
	r, err = DecodeResponse(b)
	if err != nil || r.Type != -1 || r.RequestID != "r" {
		t.Fatalf("%+v %v", r, err)
	}
	infos, err := r.SocketInfos()
	if err != nil || len(infos) != 1 || !reflect.DeepEqual(infos[0], info) {
		t.Fatalf("%+v %v", infos, err)
	}
	if b, _ := EncodeFetchResponse("r", nil); string(b) != `{"requestId":"r","sockets":[]}` {
		t.Fatal(string(b))
	}
	r, err = DecodeResponse([]byte(`{"requestId":"r","sockets":["a","b"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := r.SocketIDs(); err != nil || !reflect.DeepEqual(ids, []string{"a", "b"}) {
		t.Fatal(ids, err)
	}
	r, err = DecodeResponse([]byte(`{"requestId":"r","rooms":["a"]}`))
	if err != nil || !r.HasRooms || r.Rooms[0] != "a" {
		t.Fatal(r, err)
	}
	if _, err := (&Response{Sockets: []any{"x"}}).SocketInfos(); err == nil {
		t.Fatal("string accepted as a socket")
	}
	for _, in := range []string{`{"sockets":1}`, `{"rooms":[[]]}`, `{"clientCount":-1}`, `{"requestId":1}`, `{"type":"x"}`, "\x91\x01"} {
		if _, err := DecodeResponse([]byte(in)); err == nil {
			t.Errorf("DecodeResponse(%q) accepted", in)
		}
	}
	// a type 9 response with binary
	b, err = EncodeBroadcastAckResponse("r", []byte{1})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := DecodeResponse(b); err != nil || !bytes.Equal(r.Packet.([]byte), []byte{1}) {
		t.Fatal(r, err)
	}
}

func TestShardedVectors(t *testing.T) {
	m, err := DecodeCluster([]byte(vecS1))
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != MsgBroadcast || m.UID != "6aa9781dc5561bee" || m.Nsp != "/" || string(m.Packet.Data) != `["ev",1]` || m.Packet.Nsp != "/" {
		t.Fatalf("%+v", m)
	}
	out, err := EncodeCluster(m)
	if err != nil || string(out) != vecS1 {
		t.Fatalf("re-encoded %s (%v)", out, err)
	}
	raw := unhex(t, vecS2)
	m, err = DecodeCluster(raw)
	if err != nil {
		t.Fatal(err)
	}
	if m.Packet.Type != parser.BinaryEvent || string(m.Packet.Data) != `["bin",{"_placeholder":true,"num":0}]` || !bytes.Equal(m.Packet.Attachments[0], []byte{1, 2}) {
		t.Fatalf("%+v", m.Packet)
	}
	out, err = EncodeCluster(m)
	if err != nil || !bytes.Equal(out, raw) {
		t.Fatalf("re-encoded %x (%v)", out, err)
	}
}

func TestClusterRoundTrip(t *testing.T) {
	info := adapter.SocketInfo{ID: "s1", Rooms: []string{"s1"}, Data: map[string]any{"b": []any{1.0}},
		Handshake: adapter.Handshake{Headers: map[string]any{}, Query: map[string]any{}, Auth: map[string]any{}}}
	cases := []ClusterMessage{
		{Type: MsgBroadcast, UID: "u", Nsp: "/x", RequestID: "q", HasRequestID: true,
			Packet: &parser.Packet{Type: parser.Event, Nsp: "/x", Data: json.RawMessage(`["e"]`)},
			Opts:   adapter.BroadcastOptions{Rooms: []string{"r"}, Except: []string{"e"}, Flags: adapter.Flags{Timeout: 100}}},
		{Type: MsgSocketsJoin, UID: "u", Nsp: "/", Rooms: []string{"a"}, Opts: adapter.BroadcastOptions{Rooms: []string{"b"}, Except: []string{}}},
		{Type: MsgSocketsLeave, UID: "u", Nsp: "/", Rooms: []string{"a"}, Opts: adapter.BroadcastOptions{Rooms: []string{}, Except: []string{}}},
		{Type: MsgDisconnectSockets, UID: "u", Nsp: "/", Close: true, Opts: adapter.BroadcastOptions{Rooms: []string{}, Except: []string{}}},
		{Type: MsgFetchSockets, UID: "u", Nsp: "/", RequestID: "q", HasRequestID: true, Opts: adapter.BroadcastOptions{Rooms: []string{}, Except: []string{}}},
		{Type: MsgFetchSocketsResponse, UID: "u", Nsp: "/", RequestID: "q", HasRequestID: true, Sockets: []adapter.SocketInfo{info}},
		{Type: MsgServerSideEmit, UID: "u", Nsp: "/", Args: []any{"ev", []byte{1}}},
		{Type: MsgServerSideEmitResponse, UID: "u", Nsp: "/", RequestID: "q", HasRequestID: true, Arg: "ok"},
		{Type: MsgBroadcastClientCount, UID: "u", Nsp: "/", RequestID: "q", HasRequestID: true, ClientCount: 3},
		{Type: MsgBroadcastAck, UID: "u", Nsp: "/", RequestID: "q", HasRequestID: true, Arg: map[string]any{"k": []byte{2}}},
	}
	for _, c := range cases {
		b, err := EncodeCluster(&c)
		if err != nil {
			t.Fatalf("%d: %v", c.Type, err)
		}
		got, err := DecodeCluster(b)
		if err != nil {
			t.Fatalf("%d: %v (%q)", c.Type, err, b)
		}
		if !reflect.DeepEqual(*got, c) {
			t.Fatalf("type %d:\n got %#v\nwant %#v", c.Type, *got, c)
		}
	}
	if _, err := EncodeCluster(&ClusterMessage{Type: 99}); err == nil {
		t.Fatal("type 99 encoded")
	}
	for _, in := range []string{`{"type":99,"data":{}}`, `{"type":3}`, `{"type":3,"data":{"packet":1}}`, `{"type":4,"data":{"rooms":1}}`,
		`{"type":8,"data":{"sockets":1}}`, `{"type":8,"data":{"sockets":[1]}}`, `{"type":9,"data":{"packet":{}}}`, `{"type":11,"data":{"clientCount":"x"}}`,
		`{"type":3,"data":{"opts":1}}`, `{"type":3,"uid":1,"data":{}}`, `{"type":3,"nsp":1,"data":{}}`, `{"type":3,"data":{"requestId":1}}`, `{"type":[]}`} {
		if _, err := DecodeCluster([]byte(in)); err == nil {
			t.Errorf("DecodeCluster(%s) accepted", in)
		}
	}
}

func TestValues(t *testing.T) {
	// msgpack values -> JSON as JSON.stringify would write what notepack decoded
	ts := time.Date(2024, 1, 2, 3, 4, 5, 678000000, time.UTC)
	v := []any{int64(-1), uint64(math.MaxUint64), 1.5, 1e21, 1e-7, 123456.0, math.NaN(), math.Copysign(0, -1), ts, msgpack.Ext{Type: 3, Data: []byte{9}},
		map[string]any{"b": 1, "a": []string{"x"}}, "\u2028<>", true, nil, json.RawMessage(`{"r":1}`), struct{ X int }{1}}
	var att [][]byte
	b, err := AppendJSON(nil, v, &att)
	if err != nil {
		t.Fatal(err)
	}
	want := `[-1,18446744073709551615,1.5,1e+21,1e-7,123456,null,0,"2024-01-02T03:04:05.678Z",[3,{"_placeholder":true,"num":0}],{"a":["x"],"b":1},"` + "\u2028" + `<>",true,null,{"r":1},{"X":1}]`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	if len(att) != 1 || att[0][0] != 9 {
		t.Fatal(att)
	}
	b, _ = AppendJSON(nil, []byte{1, 2}, nil)
	if string(b) != `{"type":"Buffer","data":[1,2]}` {
		t.Fatal(string(b))
	}
	if _, err := AppendJSON(nil, make(chan int), nil); err == nil {
		t.Fatal("chan encoded")
	}
	// JSON parsing keeps order, resolves placeholders, keeps integer precision
	g, err := ParseJSON([]byte(`{"b":1,"a":{"_placeholder":true,"num":0},"c":9007199254740993,"d":18446744073709551615,"e":1e400,"b":2}`), [][]byte{{7}})
	if err != nil {
		t.Fatal(err)
	}
	m := g.(msgpack.Map)
	if m[0].Key != "b" || m[0].Value != int64(2) || !bytes.Equal(m[1].Value.([]byte), []byte{7}) || m[2].Value != int64(9007199254740993) ||
		m[3].Value != uint64(math.MaxUint64) || !math.IsInf(m[4].Value.(float64), 1) {
		t.Fatalf("%#v", m)
	}
	for _, in := range []string{`{"_placeholder":true,"num":1}`, `{"_placeholder":true}`, `[1,`, `{"a"}`, `1 2`, strings.Repeat("[", 200) + strings.Repeat("]", 200)} {
		if _, err := ParseJSON([]byte(in), [][]byte{{1}}); err == nil {
			t.Errorf("ParseJSON(%s) accepted", in)
		}
	}
	p := Plain([]any{int64(1), uint64(2), 3, msgpack.Map{{Key: "t", Value: ts}}, msgpack.Ext{Type: 1, Data: []byte{1}}})
	if !reflect.DeepEqual(p, []any{1.0, 2.0, 3.0, map[string]any{"t": "2024-01-02T03:04:05.678Z"}, []any{1.0, []byte{1}}}) {
		t.Fatalf("%#v", p)
	}
	for _, hv := range []any{[]any{[]byte{}}, msgpack.Map{{Key: "a", Value: []byte{}}}, map[string]any{"a": []byte{}}, msgpack.Ext{}} {
		if !HasBinary(hv) {
			t.Fatalf("HasBinary(%#v) = false", hv)
		}
	}
	if HasBinary(map[string]any{"a": 1}) || HasBinary(msgpack.Map{{Key: "a", Value: 1}}) {
		t.Fatal("HasBinary without binary")
	}
	n := Normalize([]any{float32(1), int32(2), json.RawMessage(`[1]`), json.RawMessage(`x`), ts, struct{ A string }{"a"}, make(chan int), []string{"s"}, msgpack.Map{{Key: "k", Value: float32(1)}}})
	if !sameValue(n, []any{1.0, int64(2), []any{int64(1)}, nil, ts, msgpack.Map{{Key: "A", Value: "a"}}, nil, []string{"s"}, msgpack.Map{{Key: "k", Value: 1.0}}}) {
		t.Fatalf("%#v", n)
	}
	if s, err := StringList([]any{"a", int64(1), uint64(2), 1.5}); err != nil || !reflect.DeepEqual(s, []string{"a", "1", "2", "1.5"}) {
		t.Fatal(s, err)
	}
	for _, tv := range []any{nil, false, int64(0), 0.0, math.NaN(), ""} {
		if truthy(tv) {
			t.Fatalf("truthy(%#v)", tv)
		}
	}
	for _, tv := range []any{true, int64(1), 1.0, "x", []any{}} {
		if !truthy(tv) {
			t.Fatalf("!truthy(%#v)", tv)
		}
	}
}

func TestPacketConversion(t *testing.T) {
	p := &parser.Packet{Type: parser.BinaryAck, Nsp: "", Data: json.RawMessage(`[{"_placeholder":true,"num":0}]`), Attachments: [][]byte{{5}}}
	m, err := PacketToWire(p, true)
	if err != nil {
		t.Fatal(err)
	}
	if m[0].Value != int64(3) || m[2].Value != "/" {
		t.Fatalf("%#v", m)
	}
	back, err := PacketFromWire(m, "/")
	if err != nil || back.Type != parser.BinaryAck || !bytes.Equal(back.Attachments[0], []byte{5}) {
		t.Fatalf("%+v %v", back, err)
	}
	// a BINARY_EVENT type on the wire without binary becomes EVENT
	back, err = PacketFromWire(msgpack.Map{{Key: "type", Value: int64(5)}, {Key: "data", Value: []any{"e"}}, {Key: "id", Value: int64(4)}}, "/n")
	if err != nil || back.Type != parser.Event || back.Nsp != "/n" || !back.HasID || back.ID != 4 {
		t.Fatalf("%+v %v", back, err)
	}
	back, err = PacketFromWire(msgpack.Map{{Key: "type", Value: int64(6)}, {Key: "data", Value: []any{"e"}}}, "/")
	if err != nil || back.Type != parser.Ack {
		t.Fatalf("%+v %v", back, err)
	}
	if _, err := PacketToWire(&parser.Packet{Data: json.RawMessage(`[{"_placeholder":true,"num":3}]`)}, true); err == nil {
		t.Fatal("bad placeholder accepted")
	}
	m, _ = PacketToWire(&parser.Packet{Type: parser.Disconnect}, false)
	if len(m) != 1 {
		t.Fatalf("%#v", m)
	}
	if _, err := EncodeBroadcast("u", &parser.Packet{Data: json.RawMessage(`[`)}, &adapter.BroadcastOptions{}); err == nil {
		t.Fatal("bad JSON encoded")
	}
	for _, in := range []string{"c0", "91a0", "92a0c0", "92a081a474797065a178", "93a081a0c001", "c1"} {
		if _, err := DecodeBroadcast(unhex(t, in)); err == nil {
			t.Errorf("DecodeBroadcast(%s) accepted", in)
		}
	}
	// opts may be missing
	b, err := DecodeBroadcast(unhex(t, "92a0"+"81a474797065"+"02"))
	if err != nil || b.Packet.Type != parser.Event {
		t.Fatal(b, err)
	}
}
