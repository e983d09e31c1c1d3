package loadgen

import (
	"testing"
)

// Encoder vectors of wire-formats §2.
func TestAppendSIOVectors(t *testing.T) {
	cases := []struct {
		p    SIOPacket
		want string
	}{
		{SIOPacket{Type: SIOConnect, ID: -1}, "0"},
		{SIOPacket{Type: SIOConnect, ID: -1, Data: []byte(`{"token":"abc"}`)}, `0{"token":"abc"}`},
		{SIOPacket{Type: SIOConnect, NSP: "/admin", ID: -1, Data: []byte(`{"token":"abc"}`)}, `0/admin,{"token":"abc"}`},
		{SIOPacket{Type: SIODisconnect, NSP: "/", ID: -1}, "1"},
		{SIOPacket{Type: SIODisconnect, NSP: "/admin", ID: -1}, "1/admin,"},
		{SIOPacket{Type: SIOEvent, ID: -1, Data: []byte(`["hello",1,{"a":"é"}]`)}, `2["hello",1,{"a":"é"}]`},
		{SIOPacket{Type: SIOEvent, NSP: "/admin", ID: 12, Data: []byte(`["hello"]`)}, `2/admin,12["hello"]`},
		{SIOPacket{Type: SIOAck, NSP: "/admin", ID: 12, Data: []byte(`["ok"]`)}, `3/admin,12["ok"]`},
		{SIOPacket{Type: SIOConnectError, ID: -1, Data: []byte(`{"message":"Not authorized","data":{"code":401}}`)}, `4{"message":"Not authorized","data":{"code":401}}`},
		{SIOPacket{Type: SIOBinaryEvent, Attachments: 2, ID: -1, Data: []byte(`["up",{"_placeholder":true,"num":0},{"f":{"_placeholder":true,"num":1}}]`)}, `52-["up",{"_placeholder":true,"num":0},{"f":{"_placeholder":true,"num":1}}]`},
		{SIOPacket{Type: SIOBinaryEvent, Attachments: 1, NSP: "/admin", ID: 7, Data: []byte(`["up",{"_placeholder":true,"num":0}]`)}, `51-/admin,7["up",{"_placeholder":true,"num":0}]`},
		{SIOPacket{Type: SIOBinaryAck, Attachments: 1, ID: 5, Data: []byte(`[{"_placeholder":true,"num":0}]`)}, `61-5[{"_placeholder":true,"num":0}]`},
	}
	for _, c := range cases {
		got := string(AppendSIO(nil, c.p))
		if got != c.want {
			t.Errorf("AppendSIO = %s, want %s", got, c.want)
			continue
		}
		back, err := ParseSIO([]byte(got))
		if err != nil {
			t.Errorf("ParseSIO(%s): %v", got, err)
			continue
		}
		wantNSP := c.p.NSP
		if wantNSP == "" {
			wantNSP = "/"
		}
		if back.Type != c.p.Type || back.NSP != wantNSP || back.ID != c.p.ID || string(back.Data) != string(c.p.Data) || back.Attachments != c.p.Attachments {
			t.Errorf("round trip %s: %+v", got, back)
		}
	}
}

func TestParseSIOQuirksAndErrors(t *testing.T) {
	// the namespace runs to the first ',' or the end
	p, err := ParseSIO([]byte(`0/admin["x"]`))
	if err != nil || p.NSP != `/admin["x"]` || p.Data != nil {
		t.Fatalf("%+v %v", p, err)
	}
	// ... so an EVENT written that way has no payload and is invalid
	if _, err := ParseSIO([]byte(`2/admin["x"]`)); err == nil {
		t.Fatal(`2/admin["x"] accepted`)
	}
	// a CONNECT reply as tradewire and Node send it
	p, err = ParseSIO([]byte(`0{"sid":"6qC0VeqI4EljQvY-AAAA","pid":"Z5kntX1FxUd3KTtYAAAB"}`))
	if err != nil || p.Type != SIOConnect {
		t.Fatal(err)
	}
	// the observed connect_error forms
	for _, s := range []string{`4/admin,{"message":"not authorized","data":{"reason":"bad token"}}`, `4"legacy"`, `3[]`, `2[1]`} {
		if _, err := ParseSIO([]byte(s)); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	bad := []string{
		"", "7", "2{}", `2abc[]`, "2[]", `2["connect"]`, `2["disconnecting",1]`, `2[{}]`,
		`0[1]`, `1{}`, `3{}`, `4 1`, `5-["x"]`, `5x-["x"]`, `511-["x"]`, `52`, `2[`, `2999999999999999999999["x"]`,
	}
	for _, s := range bad {
		if _, err := ParseSIO([]byte(s)); err == nil {
			t.Errorf("ParseSIO(%q) accepted", s)
		}
	}
}

func TestAppendEventMessage(t *testing.T) {
	if got := string(AppendEventMessage(nil, 0, "subscribe:portfolio")); got != `420["subscribe:portfolio"]` {
		t.Fatal(got)
	}
	if got := string(AppendEventMessage(nil, 2, "subscribe:watchlist", []byte(`{"symbols":["A","B","C"]}`))); got != `422["subscribe:watchlist",{"symbols":["A","B","C"]}]` {
		t.Fatal(got)
	}
	if got := string(AppendEventMessage(nil, -1, "x", []byte("1"), []byte(`"y"`))); got != `42["x",1,"y"]` {
		t.Fatal(got)
	}
	msgs := subscribeMessages([]string{"SYM001", "SYM002", "SYM003"})
	if string(msgs[2]) != `422["subscribe:watchlist",{"symbols":["SYM001","SYM002","SYM003"]}]` || string(msgs[1]) != `421["subscribe:trades"]` {
		t.Fatalf("%q", msgs)
	}
	for _, m := range msgs {
		if _, err := ParseSIO(m[1:]); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEventNameAndTS(t *testing.T) {
	name, rest, ok := EventName([]byte(`["quote:update",{"symbol":"SYM001","price":100.01,"ts":1795000000123456789}]`))
	if !ok || string(name) != "quote:update" {
		t.Fatal(string(name), ok)
	}
	if ts, ok := ExtractTS(rest); !ok || ts != 1795000000123456789 {
		t.Fatal(ts, ok)
	}
	// Node's trade:executed payload: ts nested in trade, "timestamp" must not match
	ev := []byte(`["trade:executed",{"userId":"u1","trade":{"id":"t1","symbol":"SYM001","side":"buy","quantity":10,"price":100.5,"ts":1795000000000000000},"timestamp":"2026-11-26T14:00:00.000Z","notification":{"title":"x"}}]`)
	_, rest, _ = EventName(ev)
	if ts, ok := ExtractTS(rest); !ok || ts != 1795000000000000000 {
		t.Fatal(ts, ok)
	}
	if ts, ok := ExtractTS([]byte(`{"ts": 42}`)); !ok || ts != 42 {
		t.Fatal("space after colon", ts)
	}
	for _, s := range []string{`{"timestamp":1}`, `{"ts":"x"}`, `{"ts":123456789012345678901}`, `{}`} {
		if _, ok := ExtractTS([]byte(s)); ok {
			t.Errorf("ExtractTS(%s) ok", s)
		}
	}
	for _, s := range []string{`[1]`, `["a\"b"]`, `["open`, `{}`, `[`} {
		if _, _, ok := EventName([]byte(s)); ok {
			t.Errorf("EventName(%s) ok", s)
		}
	}
}
