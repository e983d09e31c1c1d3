package sioclient

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tradewire/tradewire/socketio"
)

func TestParsePacket(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Packet
	}{
		{`40{"sid":"x"}`, Packet{Kind: KindConnect, Raw: `0{"sid":"x"}`}},
		{`44{"message":"no"}`, Packet{Kind: KindConnectError, Raw: `4{"message":"no"}`}},
		{`41`, Packet{Kind: KindDisconnect, Raw: `1`}},
		{`42["quote",{"s":1},2]`, Packet{Kind: KindEvent, Name: "quote", Args: []json.RawMessage{[]byte(`{"s":1}`), []byte(`2`)}, Raw: `2["quote",{"s":1},2]`}},
		{`4217["ev"]`, Packet{Kind: KindEvent, Name: "ev", ID: 17, Args: []json.RawMessage{}, Raw: `217["ev"]`}},
		{`433[{"ok":true}]`, Packet{Kind: KindAck, ID: 3, Args: []json.RawMessage{[]byte(`{"ok":true}`)}, Raw: `33[{"ok":true}]`}},
		{`42[1]`, Packet{Kind: KindOther, Raw: `2[1]`}},           // the name is not a string
		{`42not json`, Packet{Kind: KindOther, Raw: `2not json`}}, // no array
		{`45`, Packet{Kind: KindOther, Raw: `5`}},
		{`3`, Packet{Kind: KindOther, Raw: `3`}},
	} {
		got := ParsePacket(tc.in)
		if got.Kind != tc.want.Kind || got.Name != tc.want.Name || got.ID != tc.want.ID || got.Raw != tc.want.Raw || len(got.Args) != len(tc.want.Args) {
			t.Errorf("ParsePacket(%q) = %+v, want %+v", tc.in, got, tc.want)
			continue
		}
		for i := range got.Args {
			if string(got.Args[i]) != string(tc.want.Args[i]) {
				t.Errorf("ParsePacket(%q) arg %d = %s, want %s", tc.in, i, got.Args[i], tc.want.Args[i])
			}
		}
	}
}

func TestEventArray(t *testing.T) {
	if got, want := EventArray("sub", `{"a":1}`, `"x"`), `["sub",{"a":1},"x"]`; got != want {
		t.Fatalf("EventArray = %s, want %s", got, want)
	}
}

// streamServer adds the "ping" barrier Drain relies on: a "pong" event,
// then the ack.
func streamServer(t *testing.T, opts socketio.Options) *server {
	s := startServer(t, opts, "/socket.io/")
	s.nsp.On("ping", func(sock *socketio.Socket, e *socketio.Event) {
		_ = sock.Emit("pong")
		_ = e.Ack(map[string]any{"ok": true})
	})
	return s
}

func TestStreamInOrder(t *testing.T) {
	s := streamServer(t, socketio.Options{})
	c, p := DialStream(t, s.URL, map[string]any{"token": "t1"})
	if p.Kind != KindConnect || c.SID() == "" || c.PID() != "" || len(c.Early()) != 0 {
		t.Fatalf("connect: %+v sid %q pid %q", p, c.SID(), c.PID())
	}
	sock := s.socket(t)
	if sock.ID() != c.SID() || s.auth[0]["token"] != "t1" {
		t.Fatalf("server socket %q auth %v", sock.ID(), s.auth)
	}

	// Events arrive in order, before the ack of a later call.
	_ = sock.Emit("one", map[string]any{"n": 1})
	_ = sock.Emit("two")
	before, ack := c.Call("echo", `{"v":"x"}`)
	if len(before) != 2 || before[0].Name != "one" || before[1].Name != "two" {
		t.Fatalf("before the ack: %+v", before)
	}
	if n := before[0].Obj(t, 0)["n"]; n != float64(1) {
		t.Fatalf("one's argument: %v", n)
	}
	if ack.Kind != KindAck || ack.Obj(t, 0)["v"] != "x" {
		t.Fatalf("ack %+v", ack)
	}

	// Emit has no ack; Drain returns what came before its barrier.
	c.Emit("silent", `"quiet"`)
	_ = sock.Emit("three")
	got := c.Drain()
	if len(got) != 1 || got[0].Name != "three" {
		t.Fatalf("drained %+v", got)
	}
	if r := s.waitReceived(t, 2); r[1] != `silent:["quiet"]` {
		t.Fatalf("server received %v", r)
	}

	// A server-side namespace disconnect arrives as a DISCONNECT; closing
	// ends the stream with KindClosed.
	c.Emit("kick")
	if p := c.Next(); p.Kind != KindDisconnect {
		t.Fatalf("after kick: %+v", p)
	}
	c.Close()
	if end := c.WaitEnd(); end[len(end)-1].Kind != KindClosed {
		t.Fatalf("end %+v", end)
	}
}

func TestStreamRefusedAndRecovered(t *testing.T) {
	s := streamServer(t, socketio.Options{Recovery: socketio.RecoveryOptions{MaxDisconnection: time.Minute}})
	if _, p := DialStream(t, s.URL, map[string]any{"refuse": true}); p.Kind != KindConnectError || !strings.Contains(p.Raw, "FORBIDDEN") {
		t.Fatalf("refused connect: %+v", p)
	}

	c, _ := DialStream(t, s.URL, nil)
	if c.PID() == "" {
		t.Fatal("no pid with recovery on")
	}
	sock := s.socket(t)
	sock.Join("room")
	_ = s.nsp.To("room").Emit("tick", 1)
	tick := c.Next()
	var offset string
	if tick.Kind != KindEvent || len(tick.Args) != 2 || json.Unmarshal(tick.Args[1], &offset) != nil {
		t.Fatalf("tick %+v", tick)
	}
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for s.nsp.Count() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	_ = s.nsp.To("room").Emit("tick", 2) // missed while away

	c2, p := DialStream(t, s.URL, map[string]any{"pid": c.PID(), "offset": offset})
	if p.Kind != KindConnect || c2.SID() != c.SID() {
		t.Fatalf("not restored: %+v sid %q, was %q", p, c2.SID(), c.SID())
	}
	if early := c2.Early(); len(early) != 1 || early[0].Name != "tick" || string(early[0].Args[0]) != "2" {
		t.Fatalf("missed events %+v", early)
	}
}
