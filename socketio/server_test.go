package socketio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tradewire/tradewire/adapter"
	"github.com/tradewire/tradewire/engineio"
	"github.com/tradewire/tradewire/internal/testutil/poll"
	"github.com/tradewire/tradewire/parser"
)

func TestConnectNamespaces(t *testing.T) {
	srv := newTestServer(t, Options{})
	main := collectSockets(srv.io.Of("/"))
	admin := collectSockets(srv.io.Of("admin")) // normalised to /admin
	if srv.io.Of("/admin").Name() != "/admin" || len(srv.io.Namespaces()) != 2 {
		t.Fatal("Of does not normalise or reuse namespaces")
	}
	c := srv.dial("x=1")
	c.send(`0{"token":"abc","n":1}`)
	p := c.next()
	// Only "sid" when recovery is off.
	if !regexp.MustCompile(`^0\{"sid":"[A-Za-z0-9_-]{20}"\}$`).MatchString(string(p.AppendText(nil))) {
		t.Fatalf("CONNECT reply %s", p.AppendText(nil))
	}
	var r struct{ SID string }
	_ = json.Unmarshal(p.Data, &r)
	s := main.get(t, r.SID)
	if s.ID() == c.eioSID {
		t.Fatal("socket id equals the Engine.IO sid")
	}
	if !reflect.DeepEqual(s.Auth(), map[string]any{"token": "abc", "n": float64(1)}) || string(s.AuthRaw()) != `{"token":"abc","n":1}` {
		t.Fatalf("auth %v %s", s.Auth(), s.AuthRaw())
	}
	if s.Namespace() != srv.io.Of("/") || s.Transport() != "websocket" || s.Handshake().Query.Get("x") != "1" ||
		s.Header().Get("Sec-Websocket-Version") != "13" || !s.Connected() || s.Recovered() || s.Context().Err() != nil {
		t.Fatal("socket accessors")
	}
	if !s.InRoom(s.ID()) {
		t.Fatal("socket not in its own room")
	}

	// Custom namespace, no auth.
	id := c.connect("/admin", "")
	as := admin.get(t, id)
	if as.Auth() != nil || as.AuthRaw() != nil || id == s.ID() {
		t.Fatalf("admin socket auth %v", as.Auth())
	}
	if srv.io.Of("/admin").Count() != 1 || srv.io.Of("/").Count() != 1 {
		t.Fatal("counts")
	}
	if got, ok := srv.io.Of("/admin").Socket(id); !ok || got != as {
		t.Fatal("Namespace.Socket")
	}
	if len(srv.io.Of("/admin").Sockets()) != 1 {
		t.Fatal("Namespace.Sockets")
	}

	// Unknown namespace: exactly this packet, and the connection stays usable.
	c.send("0/random,")
	if got := c.nextText(); got != `4/random,{"message":"Invalid namespace"}` {
		t.Fatalf("invalid namespace: %s", got)
	}
	s.Emit("still", "here")
	if got := c.nextText(); got != `2["still","here"]` {
		t.Fatalf("after invalid namespace: %s", got)
	}
	if srv.io.Engine().Count() != 1 {
		t.Fatal("engine session count")
	}
}

func TestMiddleware(t *testing.T) {
	srv := newTestServer(t, Options{})
	nsp := srv.io.Of("/admin")
	var calls atomic.Int32
	nsp.Use(func(ctx context.Context, s *Socket) error {
		calls.Add(1)
		if ctx == nil || s.ID() == "" {
			return errors.New("no context")
		}
		s.Set("user", s.Auth()["token"])
		return nil
	})
	nsp.Use(func(_ context.Context, s *Socket) error {
		switch s.Auth()["token"] {
		case "bad":
			return &ConnectError{Message: "not authorized", Data: map[string]any{"reason": "bad token", "code": 401}}
		case "plain":
			return errors.New("plain refusal")
		case "weird":
			return &ConnectError{Message: "weird", Data: make(chan int)} // unserialisable data
		}
		return nil
	})
	ss := collectSockets(nsp)
	c := srv.dial("")
	c.send(`0/admin,{"token":"bad"}`)
	if got := c.nextText(); got != `4/admin,{"message":"not authorized","data":{"code":401,"reason":"bad token"}}` {
		t.Fatalf("refusal: %s", got)
	}
	c.send(`0/admin,{"token":"plain"}`)
	if got := c.nextText(); got != `4/admin,{"message":"plain refusal"}` {
		t.Fatalf("plain refusal: %s", got)
	}
	c.send(`0/admin,{"token":"weird"}`)
	if got := c.nextText(); got != `4/admin,{"message":"weird","data":null}` {
		t.Fatalf("unserialisable data: %s", got)
	}
	if nsp.Count() != 0 {
		t.Fatal("refused socket registered")
	}
	// The connection survives refusals; a good token connects.
	id := c.connect("/admin", `{"token":"good"}`)
	if got := ss.get(t, id).Get("user"); got != "good" {
		t.Fatalf("value set by middleware: %v", got)
	}
	if ss.get(t, id).Get("missing") != nil {
		t.Fatal("Get of a missing key")
	}
	if calls.Load() != 4 {
		t.Fatalf("middleware ran %d times", calls.Load())
	}
}

func TestEventsAndAcksFromClient(t *testing.T) {
	srv := newTestServer(t, Options{})
	got := make(chan *Event, 16)
	srv.io.Of("/").OnConnection(func(s *Socket) {
		s.On("hello", func(s *Socket, e *Event) { got <- e })
		s.On("ask", func(s *Socket, e *Event) {
			if !e.HasAck() {
				got <- e
				return
			}
			var q string
			_ = e.Decode(0, &q)
			if err := e.Ack("ok:"+q, map[string]any{"n": 1}); err != nil {
				t.Errorf("Ack: %v", err)
			}
			if err := e.Ack("again"); !errors.Is(err, ErrNoAck) {
				t.Errorf("second Ack: %v", err)
			}
			got <- e
		})
		s.On("bin", func(s *Socket, e *Event) {
			_ = e.Ack([]byte{0xca, 0xfe}, "x")
			got <- e
		})
		s.On("echo", func(s *Socket, e *Event) {
			args, att := e.RawArgs()
			_ = s.EmitRaw("echo-back", args, att)
			if e.HasAck() {
				_ = e.AckRaw(args, att)
			}
		})
		s.OnAny(func(s *Socket, e *Event) { got <- e })
	})
	c := srv.dial("")
	c.connect("/", "")

	c.send(`2["hello",1,{"a":"é"},"<&>"]`)
	e := <-got
	if e.Name != "hello" || len(e.Args) != 3 || e.HasAck() {
		t.Fatalf("event %+v", e)
	}
	var n int
	var obj map[string]string
	if e.Decode(0, &n) != nil || n != 1 || e.Decode(1, &obj) != nil || obj["a"] != "é" {
		t.Fatal("Decode")
	}
	if err := e.Decode(5, &n); err == nil {
		t.Fatal("Decode of a missing argument")
	}
	if err := e.Decode(2, &n); err == nil {
		t.Fatal("Decode into the wrong type")
	}
	vals, err := e.Values()
	if err != nil || !reflect.DeepEqual(vals, []any{float64(1), map[string]any{"a": "é"}, "<&>"}) {
		t.Fatalf("Values %v %v", vals, err)
	}
	if err := e.Ack(); !errors.Is(err, ErrNoAck) {
		t.Fatalf("Ack without id: %v", err)
	}
	if err := e.AckRaw(nil, nil); !errors.Is(err, ErrNoAck) {
		t.Fatalf("AckRaw without id: %v", err)
	}

	c.send(`212["ask","q1"]`)
	<-got
	if p := c.nextText(); p != `312["ok:q1",{"n":1}]` {
		t.Fatalf("ack %s", p)
	}

	// Binary in, binary ack out.
	c.send(`51-13["bin",{"_placeholder":true,"num":0},13]`, []byte{1, 2, 3, 4})
	e = <-got
	vals, _ = e.Values()
	if !bytes.Equal(vals[0].([]byte), []byte{1, 2, 3, 4}) || vals[1] != float64(13) {
		t.Fatalf("binary event values %v", vals)
	}
	p := c.next()
	if string(p.AppendText(nil)) != `61-13[{"_placeholder":true,"num":0},"x"]` || !bytes.Equal(p.Attachments[0], []byte{0xca, 0xfe}) {
		t.Fatalf("binary ack %s %x", p.AppendText(nil), p.Attachments)
	}

	// Raw echo keeps JSON byte for byte and binary parts (as the conformance suite checks).
	c.send(`52-456["echo",{"_placeholder":true,"num":0},{"k":[1, 2]},{"_placeholder":true,"num":1}]`, []byte{9}, []byte{8, 7})
	p = c.next()
	if string(p.AppendText(nil)) != `52-["echo-back",{"_placeholder":true,"num":0},{"k":[1, 2]},{"_placeholder":true,"num":1}]` ||
		!bytes.Equal(p.Attachments[0], []byte{9}) || !bytes.Equal(p.Attachments[1], []byte{8, 7}) {
		t.Fatalf("raw echo %s %x", p.AppendText(nil), p.Attachments)
	}
	p = c.next()
	if string(p.AppendText(nil)) != `62-456[{"_placeholder":true,"num":0},{"k":[1, 2]},{"_placeholder":true,"num":1}]` {
		t.Fatalf("raw ack %s", p.AppendText(nil))
	}

	// Unknown events go to OnAny; numeric names too.
	c.send(`2["other",true]`)
	if e := <-got; e.Name != "other" {
		t.Fatalf("any %q", e.Name)
	}
	c.send(`2[42,"x"]`)
	if e := <-got; e.Name != "42" || len(e.Args) != 1 {
		t.Fatalf("numeric event %q %d", e.Name, len(e.Args))
	}
	// An ACK for an unknown id is ignored.
	c.send(`399["late"]`)
	c.send(`2["hello"]`)
	if e := <-got; e.Name != "hello" {
		t.Fatal("connection unusable after a stray ack")
	}
}

func TestEmitAndAcksFromServer(t *testing.T) {
	srv := newTestServer(t, Options{})
	ss := collectSockets(srv.io.Of("/"))
	c := srv.dial("")
	s := ss.get(t, c.connect("/", ""))

	if err := s.Emit("news", "a", 1, nil, map[string]any{"z": 1, "a": []any{true}}); err != nil {
		t.Fatal(err)
	}
	if got := c.nextText(); got != `2["news","a",1,null,{"a":[true],"z":1}]` {
		t.Fatalf("emit %s", got)
	}
	if err := s.Emit("bin", []byte{1, 2}, map[string]any{"f": []byte{3}}); err != nil {
		t.Fatal(err)
	}
	p := c.next()
	if string(p.AppendText(nil)) != `52-["bin",{"_placeholder":true,"num":0},{"f":{"_placeholder":true,"num":1}}]` ||
		!bytes.Equal(p.Attachments[0], []byte{1, 2}) || !bytes.Equal(p.Attachments[1], []byte{3}) {
		t.Fatalf("binary emit %s", p.AppendText(nil))
	}
	if err := s.Emit("bad", make(chan int)); err == nil {
		t.Fatal("unencodable argument accepted")
	}

	// Ack ids count from 0 per socket; the client answers 0 with text, 1 with binary.
	results := make(chan string, 4)
	cb := func(args []any, err error) { results <- fmt.Sprintf("%v|%v", args, err) }
	if err := s.EmitWithAck("withack", []any{1}, time.Second, cb); err != nil {
		t.Fatal(err)
	}
	if got := c.nextText(); got != `20["withack",1]` {
		t.Fatalf("withack %s", got)
	}
	c.send(`30["client-ack",{"ok":true}]`)
	if r := <-results; r != "[client-ack map[ok:true]]|<nil>" {
		t.Fatalf("ack result %s", r)
	}
	_ = s.EmitWithAck("bin-ack", nil, 0, cb)
	if got := c.nextText(); got != `21["bin-ack"]` {
		t.Fatalf("bin-ack %s", got)
	}
	c.send(`61-1[{"_placeholder":true,"num":0}]`, []byte{0xaa})
	if r := <-results; r != "[[170]]|<nil>" {
		t.Fatalf("binary ack result %s", r)
	}
	// No answer: ErrAckTimeout, once; a late ack is ignored.
	start := time.Now()
	_ = s.EmitWithAck("slow", nil, 100*time.Millisecond, cb)
	if got := c.nextText(); got != `22["slow"]` {
		t.Fatalf("slow %s", got)
	}
	if r := <-results; r != "[]|"+ErrAckTimeout.Error() {
		t.Fatalf("timeout result %s", r)
	}
	if time.Since(start) < 90*time.Millisecond {
		t.Fatal("timed out early")
	}
	c.send(`32["too late"]`)
	select {
	case r := <-results:
		t.Fatalf("late ack delivered: %s", r)
	case <-time.After(100 * time.Millisecond):
	}
	if err := s.EmitWithAck("bad", []any{make(chan int)}, 0, cb); err == nil {
		t.Fatal("unencodable ack emit accepted")
	}
	// A pending ack fails with ErrDisconnected when the socket goes.
	_ = s.EmitWithAck("pending", nil, 0, cb)
	c.nextText()
	c.close()
	if r := <-results; r != "[]|"+ErrDisconnected.Error() {
		t.Fatalf("pending ack at disconnect: %s", r)
	}
	if err := s.Emit("gone"); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("Emit after disconnect: %v", err)
	}
	_ = s.EmitWithAck("gone", nil, time.Second, cb)
	if r := <-results; r != "[]|"+ErrDisconnected.Error() {
		t.Fatalf("EmitWithAck after disconnect: %s", r)
	}
}

// Sockets in rooms a:{r1} b:{r1,r2} c:{}.
func roomFixture(t *testing.T, srv *testServer) (map[string]*wsClient, map[string]*Socket) {
	ss := collectSockets(srv.io.Of("/"))
	clients := map[string]*wsClient{}
	socks := map[string]*Socket{}
	for _, name := range []string{"a", "b", "c"} {
		c := srv.dial("")
		clients[name] = c
		socks[name] = ss.get(t, c.connect("/", ""))
	}
	socks["a"].Join("r1")
	socks["b"].Join("r1", "r2")
	return clients, socks
}

// expectRecipients checks who got event ev: each client's next packet is ev
// (for the listed ones) or the marker the test sends right after.
func expectRecipients(t *testing.T, clients map[string]*wsClient, socks map[string]*Socket, ev string, want ...string) {
	t.Helper()
	for name, s := range socks {
		_ = s.Emit("marker")
		c := clients[name]
		first := c.nextText()
		should := false
		for _, w := range want {
			if w == name {
				should = true
			}
		}
		if should {
			if !strings.HasPrefix(first, `2["`+ev+`"`) {
				t.Fatalf("%s: got %s, want %s", name, first, ev)
			}
			if m := c.nextText(); m != `2["marker"]` {
				t.Fatalf("%s: got %s after %s", name, m, ev)
			}
		} else if first != `2["marker"]` {
			t.Fatalf("%s: got %s, should not receive %s", name, first, ev)
		}
	}
}

func TestRoomsAndBroadcast(t *testing.T) {
	srv := newTestServer(t, Options{})
	clients, socks := roomFixture(t, srv)
	nsp := srv.io.Of("/")
	a, b := socks["a"], socks["b"]
	rooms := b.Rooms()
	sort.Strings(rooms)
	if want := []string{b.ID(), "r1", "r2"}; !reflect.DeepEqual(rooms, func() []string { sort.Strings(want); return want }()) {
		t.Fatalf("rooms of b %v", rooms)
	}

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(nsp.Emit("all", 1))
	expectRecipients(t, clients, socks, "all", "a", "b", "c")
	must(nsp.To("r1").Emit("r1"))
	expectRecipients(t, clients, socks, "r1", "a", "b")
	must(nsp.In("r1", "r2").Emit("r1r2"))
	expectRecipients(t, clients, socks, "r1r2", "a", "b")
	must(nsp.To("r1").To("r1").Except("r2").Emit("r1-not-r2"))
	expectRecipients(t, clients, socks, "r1-not-r2", "a")
	must(nsp.Except("r1").Emit("not-r1"))
	expectRecipients(t, clients, socks, "not-r1", "c")
	must(a.To("r1").Emit("from-a"))
	expectRecipients(t, clients, socks, "from-a", "b")
	must(a.Broadcast().Emit("a-broadcast"))
	expectRecipients(t, clients, socks, "a-broadcast", "b", "c")
	must(nsp.To(socks["c"].ID()).Emit("to-c"))
	expectRecipients(t, clients, socks, "to-c", "c")
	must(nsp.Local().Emit("local"))
	expectRecipients(t, clients, socks, "local", "a", "b", "c")
	must(nsp.To("nobody").Emit("nobody"))
	expectRecipients(t, clients, socks, "nobody")
	// An operator can be reused, and deriving from it does not change it.
	op := nsp.To("r2")
	_ = op.To("r1").Except("r2")
	must(op.Emit("reused"))
	expectRecipients(t, clients, socks, "reused", "b")
	if err := op.Emit("bad", make(chan int)); err == nil {
		t.Fatal("unencodable broadcast accepted")
	}

	b.Leave("r2")
	if b.InRoom("r2") {
		t.Fatal("Leave")
	}
	must(nsp.To("r2").Emit("r2-after-leave"))
	expectRecipients(t, clients, socks, "r2-after-leave")
	// Binary broadcasts carry their attachments to every recipient.
	must(nsp.To("r1").Emit("bin", []byte{5}))
	for _, name := range []string{"a", "b"} {
		p := clients[name].next()
		if p.Type != parser.BinaryEvent || !bytes.Equal(p.Attachments[0], []byte{5}) {
			t.Fatalf("%s: %s", name, p.AppendText(nil))
		}
	}
}

// Volatile packets are dropped for sockets that cannot take them right now
// (a polling client without a pending GET), delivered otherwise.
func TestVolatile(t *testing.T) {
	srv := newTestServer(t, Options{})
	ss := collectSockets(srv.io.Of("/"))
	ws := srv.dial("")
	wsSock := ss.get(t, ws.connect("/", ""))

	pc := newPollingClient(t, srv)
	pid := pc.connect()
	ps := ss.get(t, pid)
	_ = ps
	// Volatile is about writability: wait until the CONNECT reply is
	// accounted as written (the flusher updates the count after writev).
	poll.Until(t, "websocket client writable", wsSock.client.sess.Writable)
	if err := srv.io.Of("/").Volatile().Emit("vol", 1); err != nil {
		t.Fatal(err)
	}
	if got := ws.nextText(); got != `2["vol",1]` {
		t.Fatalf("websocket client: %s", got)
	}
	_ = srv.io.Of("/").Emit("kept", 2)
	if got := pc.get(); got != `42["kept",2]` {
		t.Fatalf("polling client got %q (the volatile packet must be dropped)", got)
	}
	_ = wsSock
}

// pollingClient speaks Engine.IO long-polling by hand.
type pollingClient struct {
	t   *testing.T
	srv *testServer
	sid string
}

func newPollingClient(t *testing.T, srv *testServer) *pollingClient {
	pc := &pollingClient{t: t, srv: srv}
	body := pc.request(http.MethodGet, "", "")
	var o struct{ SID string }
	if err := json.Unmarshal([]byte(body[1:]), &o); err != nil {
		t.Fatalf("open %q", body)
	}
	pc.sid = o.SID
	return pc
}

func (pc *pollingClient) request(method, sid, body string) string {
	pc.t.Helper()
	u := "http://" + pc.srv.host + "/socket.io/?EIO=4&transport=polling"
	if sid != "" {
		u += "&sid=" + sid
	}
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		pc.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	if resp.StatusCode != 200 {
		pc.t.Fatalf("%s: %d %s", method, resp.StatusCode, b.String())
	}
	return b.String()
}

func (pc *pollingClient) get() string         { return pc.request(http.MethodGet, pc.sid, "") }
func (pc *pollingClient) post(payload string) { pc.request(http.MethodPost, pc.sid, payload) }

func (pc *pollingClient) connect() string {
	pc.post("40")
	body := pc.get()
	var r struct{ SID string }
	if !strings.HasPrefix(body, "40{") || json.Unmarshal([]byte(body[2:]), &r) != nil {
		pc.t.Fatalf("CONNECT reply %q", body)
	}
	return r.SID
}

func TestBroadcastEmitWithAck(t *testing.T) {
	srv := newTestServer(t, Options{})
	clients, socks := roomFixture(t, srv)
	nsp := srv.io.Of("/")
	answer := func(name string, reply bool) {
		go func() {
			p := clients[name].next()
			if reply {
				clients[name].send(fmt.Sprintf(`3%d["ack-from-%s"]`, p.ID, name))
			}
		}()
	}
	// Everyone answers.
	answer("a", true)
	answer("b", true)
	acks, err := nsp.To("r1").Timeout(2*time.Second).EmitWithAck(context.Background(), "q", 1)
	if err != nil || len(acks) != 2 {
		t.Fatalf("acks %v err %v", acks, err)
	}
	got := []string{acks[0][0].(string), acks[1][0].(string)}
	sort.Strings(got)
	if got[0] != "ack-from-a" || got[1] != "ack-from-b" {
		t.Fatalf("acks %v", got)
	}
	// One does not answer: the ones received and adapter.ErrTimeout.
	answer("a", true)
	answer("b", false)
	answer("c", true)
	acks, err = nsp.To().Timeout(300*time.Millisecond).EmitWithAck(context.Background(), "q2")
	if !errors.Is(err, adapter.ErrTimeout) || len(acks) != 2 {
		t.Fatalf("partial: %v %v", acks, err)
	}
	// No recipient: done at once.
	start := time.Now()
	acks, err = nsp.To("nobody").EmitWithAck(context.Background(), "q3")
	if err != nil || len(acks) != 0 || time.Since(start) > time.Second {
		t.Fatalf("no recipient: %v %v", acks, err)
	}
	// The context ends first.
	answer("c", false)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	acks, err = nsp.Except("r1").EmitWithAck(ctx, "q4")
	if !errors.Is(err, context.DeadlineExceeded) || len(acks) != 0 {
		t.Fatalf("context: %v %v", acks, err)
	}
	if _, err := nsp.To().EmitWithAck(context.Background(), "bad", make(chan int)); err == nil {
		t.Fatal("unencodable ack broadcast accepted")
	}
	_ = socks
}

func TestFetchJoinLeaveDisconnectSockets(t *testing.T) {
	srv := newTestServer(t, Options{})
	clients, socks := roomFixture(t, srv)
	nsp := srv.io.Of("/")
	socks["a"].SetData(map[string]any{"user": "u1"})

	infos, err := nsp.To("r1").FetchSockets(context.Background())
	if err != nil || len(infos) != 2 {
		t.Fatalf("fetch: %v %v", infos, err)
	}
	var ia adapter.SocketInfo
	for _, in := range infos {
		if in.ID == socks["a"].ID() {
			ia = in
		}
	}
	if ia.ID == "" || !reflect.DeepEqual(ia.Data, map[string]any{"user": "u1"}) || ia.Handshake.Address != "127.0.0.1" ||
		ia.Handshake.Query["transport"] != "websocket" || ia.Handshake.Headers["sec-websocket-version"] != "13" ||
		ia.Handshake.Issued == 0 || ia.Handshake.Time == "" || !strings.Contains(ia.Handshake.URL, "EIO=4") {
		t.Fatalf("info %+v", ia)
	}
	all, _ := nsp.FetchSockets(context.Background())
	if len(all) != 3 {
		t.Fatalf("fetch all: %d", len(all))
	}

	nsp.To("r1").SocketsJoin("vip", "gold")
	if !socks["a"].InRoom("vip") || !socks["b"].InRoom("gold") || socks["c"].InRoom("vip") {
		t.Fatal("SocketsJoin")
	}
	nsp.Except("r2").SocketsLeave("vip")
	if socks["a"].InRoom("vip") || !socks["b"].InRoom("vip") {
		t.Fatal("SocketsLeave")
	}

	// Disconnect without closing: the client gets 41, the connection stays.
	r := onDisconnect(socks["b"])
	nsp.To("r2").DisconnectSockets(false)
	if got := clients["b"].nextText(); got != "1" {
		t.Fatalf("b got %s", got)
	}
	if reason := r.wait(t); reason != ReasonServerNamespaceDisconnect {
		t.Fatalf("reason %q", reason)
	}
	if socks["b"].Connected() || socks["b"].Context().Err() == nil || nsp.Count() != 2 {
		t.Fatal("b still connected")
	}
	id := clients["b"].connect("/", "") // reconnect on the same connection
	if id == socks["b"].ID() {
		t.Fatal("same socket id after a new CONNECT")
	}
	// Disconnect with close ends the connection.
	nsp.Except("r1").DisconnectSockets(true)
	if got := clients["c"].nextText(); got != "1" {
		t.Fatalf("c got %s", got)
	}
	clients["c"].waitClosed()
}

func TestDisconnect(t *testing.T) {
	srv := newTestServer(t, Options{})
	ss := collectSockets(srv.io.Of("/"))
	cs := collectSockets(srv.io.Of("/custom"))
	c := srv.dial("")
	main := ss.get(t, c.connect("/", ""))
	custom := cs.get(t, c.connect("/custom", ""))

	// Server disconnect from /custom: 41/custom, and / keeps working.
	r := onDisconnect(custom)
	custom.Disconnect(false)
	custom.Disconnect(false) // no second packet
	if got := c.nextText(); got != "1/custom," {
		t.Fatalf("got %s", got)
	}
	if reason := r.wait(t); reason != ReasonServerNamespaceDisconnect {
		t.Fatalf("reason %q", reason)
	}
	_ = main.Emit("alive")
	if got := c.nextText(); got != `2["alive"]` {
		t.Fatalf("got %s", got)
	}
	// Client disconnect from /: nothing is sent back, the session stays open.
	c2 := srv.dial("")
	s2 := ss.get(t, c2.connect("/", ""))
	custom2 := cs.get(t, c2.connect("/custom", ""))
	r2 := onDisconnect(s2)
	c2.send("1")
	if reason := r2.wait(t); reason != ReasonClientNamespaceDisconnect {
		t.Fatalf("reason %q", reason)
	}
	c2.none(100 * time.Millisecond)
	_ = custom2.Emit("custom-alive")
	if got := c2.nextText(); got != `2/custom,["custom-alive"]` {
		t.Fatalf("got %s", got)
	}
	// A packet for the namespace it left closes the connection.
	c2.send(`2["x"]`)
	c2.waitClosed()

	// Disconnect(true) closes the transport too.
	r = onDisconnect(main)
	main.Disconnect(true)
	if got := c.nextText(); got != "1" {
		t.Fatalf("got %s", got)
	}
	if reason := r.wait(t); reason != ReasonServerNamespaceDisconnect {
		t.Fatalf("reason %q", reason)
	}
	c.waitClosed()
}

func TestTransportCloseReason(t *testing.T) {
	srv := newTestServer(t, Options{})
	ss := collectSockets(srv.io.Of("/"))
	c := srv.dial("")
	s := ss.get(t, c.connect("/", ""))
	r := onDisconnect(s)
	c.close()
	if reason := r.wait(t); reason != engineio.ReasonTransportClose {
		t.Fatalf("reason %q", reason)
	}
	poll.Until(t, "socket removed", func() bool { return srv.io.Of("/").Count() == 0 })
}

// A client that disconnects its namespace and closes the connection at once
// (socket.io-client's socket.disconnect() on the last socket) sends both;
// the DISCONNECT may still wait in the worker's inbox behind a busy handler
// when the close arrives, and must decide the reason all the same.
func TestClientDisconnectQueuedBeforeClose(t *testing.T) {
	srv := newTestServer(t, Options{})
	release := make(chan struct{})
	started := make(chan struct{})
	ss := collectSockets(srv.io.Of("/"))
	srv.io.Of("/").OnConnection(func(s *Socket) {
		s.On("busy", func(*Socket, *Event) {
			close(started)
			<-release
		})
	})
	c := srv.dial("")
	s := ss.get(t, c.connect("/", ""))
	r := onDisconnect(s)
	c.send(`2["busy"]`)
	<-started // the worker is busy: the DISCONNECT below waits in the inbox
	c.send("1")
	c.close()
	if reason := r.wait(t); reason != ReasonClientNamespaceDisconnect {
		t.Fatalf("reason %q, want %q", reason, ReasonClientNamespaceDisconnect)
	}
	close(release)
	poll.Until(t, "socket removed", func() bool { return srv.io.Of("/").Count() == 0 })
}

func TestConnectTimeout(t *testing.T) {
	srv := newTestServer(t, Options{ConnectTimeout: 150 * time.Millisecond})
	idle := srv.dial("")
	idle.waitClosed()
	// A client that connects in time is kept.
	c := srv.dial("")
	c.connect("/", "")
	c.none(300 * time.Millisecond)
}

func TestInvalidPacketsCloseTheConnection(t *testing.T) {
	srv := newTestServer(t, Options{})
	for _, tt := range []struct {
		name string
		send func(c *wsClient)
	}{
		{"garbage", func(c *wsClient) { c.sendRaw("4abc") }},
		{"event object", func(c *wsClient) { c.sendRaw("42{}") }},
		{"garbage before payload", func(c *wsClient) { c.sendRaw(`42abc["x"]`) }},
		{"reserved event", func(c *wsClient) { c.sendRaw(`42["disconnect"]`) }},
		{"unconnected namespace", func(c *wsClient) { c.sendRaw(`42/other,["x"]`) }},
		{"duplicate connect", func(c *wsClient) { c.sendRaw("40") }},
		{"connect error from client", func(c *wsClient) { c.sendRaw(`44{"message":"x"}`) }},
		{"binary without pending packet", func(c *wsClient) { _ = c.ws.WriteMessage(2, []byte{1}) }},
	} {
		c := srv.dial("")
		c.connect("/", "")
		tt.send(c)
		select {
		case <-c.closed:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: connection kept", tt.name)
		}
	}
}

// A client that floods events faster than its handlers run is disconnected
// once MaxInbox packets wait.
func TestFloodBeyondMaxInbox(t *testing.T) {
	srv := newTestServer(t, Options{MaxInbox: 5})
	release := make(chan struct{})
	started := make(chan struct{}, 100)
	var handled atomic.Int32
	ss := collectSockets(srv.io.Of("/"))
	srv.io.Of("/").OnConnection(func(s *Socket) {
		s.On("work", func(*Socket, *Event) {
			started <- struct{}{}
			<-release
			handled.Add(1)
		})
	})
	c := srv.dial("")
	s := ss.get(t, c.connect("/", ""))
	r := onDisconnect(s)
	c.send(`2["work"]`)
	<-started // the handler is busy: further packets wait in the inbox
	for i := 0; i < 50; i++ {
		c.sendRaw(`42["work"]`) // errors ignored: the server cuts the flood short
	}
	c.waitClosed()
	close(release)
	if reason := r.wait(t); reason != engineio.ReasonTransportError {
		t.Fatalf("reason %q", reason)
	}
	// A client within the limit is fine.
	c2 := srv.dial("")
	c2.connect("/", "")
	for i := 0; i < 5; i++ {
		c2.send(`2["work"]`)
	}
	poll.Until(t, "handled", func() bool { return handled.Load() == 6 })
	select {
	case err := <-c2.errs:
		t.Fatalf("client within the limit disconnected: %v", err)
	default:
	}
}

// ---- connection state recovery ----

func recoveryServer(t *testing.T, opts Options) (*testServer, *sockets) {
	opts.Recovery = RecoveryOptions{MaxDisconnection: time.Minute, SkipMiddlewares: true}
	srv := newTestServer(t, opts)
	return srv, collectSockets(srv.io.Of("/"))
}

// connectRecovering connects and returns every packet received up to and
// including the CONNECT reply, and the reply's sid and pid.
func connectRecovering(t *testing.T, c *wsClient, auth string) (missed []string, sid, pid string) {
	t.Helper()
	c.send("0" + auth)
	for {
		p := c.next()
		if p.Type == parser.Connect {
			var r struct{ SID, PID string }
			if err := json.Unmarshal(p.Data, &r); err != nil {
				t.Fatalf("reply %s", p.Data)
			}
			if !regexp.MustCompile(`^\{"sid":"[^"]+","pid":"[^"]+"\}$`).Match(p.Data) {
				t.Fatalf("reply %s", p.Data)
			}
			return missed, r.SID, r.PID
		}
		missed = append(missed, string(p.AppendText(nil)))
	}
}

// awayInRoom connects a recovering client with auth, joins its socket to
// "room", sends it one recorded tick and drops the connection; it returns
// the socket id, the pid and the tick's offset once the server has seen
// the socket go.
func awayInRoom(t *testing.T, srv *testServer, ss *sockets, auth string) (sid, pid, offset string) {
	t.Helper()
	c := srv.dial("")
	_, sid, pid = connectRecovering(t, c, auth)
	s := ss.get(t, sid)
	s.Join("room")
	r := onDisconnect(s)
	_ = srv.io.Of("/").To("room").Emit("tick", 1)
	offset = lastOffset(t, c.next())
	c.close()
	r.wait(t)
	return sid, pid, offset
}

func lastOffset(t *testing.T, p *parser.Packet) string {
	t.Helper()
	_, args := eventArgs(t, p)
	s, ok := args[len(args)-1].(string)
	if !ok {
		t.Fatalf("no offset in %s", p.Data)
	}
	return s
}

func TestRecovery(t *testing.T) {
	srv, ss := recoveryServer(t, Options{})
	var mwCalls atomic.Int32
	srv.io.Of("/").Use(func(context.Context, *Socket) error { mwCalls.Add(1); return nil })
	c := srv.dial("")
	_, sid, pid := connectRecovering(t, c, `{"user":"u1"}`)
	s := ss.get(t, sid)
	s.Join("room")
	s.SetData(map[string]any{"n": 1})
	r := onDisconnect(s)

	// Broadcasts and plain emits carry an offset as their last argument.
	_ = srv.io.Of("/").To("room").Emit("tick", 1)
	p := c.next()
	offset := lastOffset(t, p)
	if !strings.HasPrefix(string(p.Data), `["tick",1,"`) {
		t.Fatalf("tick %s", p.Data)
	}
	_ = s.Emit("direct", "d")
	if p := c.next(); !strings.HasPrefix(string(p.Data), `["direct","d","`) {
		t.Fatalf("direct emit %s", p.Data)
	}
	// Acks and volatile packets get none.
	_ = s.EmitWithAck("ask", nil, 0, func([]any, error) {})
	if p := c.nextText(); p != `20["ask"]` {
		t.Fatalf("ack emit %s", p)
	}
	offset = func() string { // the last offset the client saw is from "direct"
		_ = srv.io.Of("/").To("room").Emit("tick", 2)
		return lastOffset(t, c.next())
	}()

	c.close()
	if reason := r.wait(t); reason != engineio.ReasonTransportClose {
		t.Fatalf("reason %q", reason)
	}
	// While away.
	_ = srv.io.Of("/").To("room").Emit("tick", 3)
	_ = srv.io.Of("/").To("other").Emit("not-for-you")
	_ = srv.io.Of("/").Emit("everyone", []byte{7})
	_ = srv.io.Of("/").Volatile().Emit("volatile")

	c2 := srv.dial("")
	missed, sid2, pid2 := connectRecovering(t, c2, fmt.Sprintf(`{"pid":%q,"offset":%q,"user":"u1"}`, pid, offset))
	if sid2 != sid || pid2 != pid {
		t.Fatalf("restored as %s/%s, want %s/%s", sid2, pid2, sid, pid)
	}
	if len(missed) != 2 || !strings.HasPrefix(missed[0], `2["tick",3,"`) || !strings.HasPrefix(missed[1], `51-["everyone",{"_placeholder":true,"num":0},"`) {
		t.Fatalf("missed %q", missed)
	}
	var s2 *Socket
	poll.Until(t, "restored socket registered", func() bool {
		ss.mu.Lock()
		defer ss.mu.Unlock()
		s2 = ss.m[sid2]
		return s2 != s
	})
	if !s2.Recovered() || !s2.InRoom("room") || !reflect.DeepEqual(s2.Data(), map[string]any{"n": float64(1)}) {
		t.Fatalf("restored socket: recovered=%v rooms=%v data=%v", s2.Recovered(), s2.Rooms(), s2.Data())
	}
	if mwCalls.Load() != 1 {
		t.Fatalf("middleware ran %d times (skipped on recovery)", mwCalls.Load())
	}
	// Live again.
	_ = srv.io.Of("/").To("room").Emit("tick", 4)
	if p := c2.next(); !strings.HasPrefix(string(p.Data), `["tick",4,"`) {
		t.Fatalf("live after recovery %s", p.Data)
	}
}

// A client that reconnects before the server saw its old connection die
// (a network that dropped without a FIN) is restored all the same: the
// restore ends the old connection first. A wrong pid ends nothing.
func TestRecoveryWhileOldConnectionOpen(t *testing.T) {
	srv, ss := recoveryServer(t, Options{})
	c := srv.dial("")
	_, sid, pid := connectRecovering(t, c, `{}`)
	if !strings.HasPrefix(pid, sid+".") {
		t.Fatalf("pid %q does not name socket %q", pid, sid)
	}
	s := ss.get(t, sid)
	s.Join("room")
	_ = srv.io.Of("/").To("room").Emit("tick", 1)
	offset := lastOffset(t, c.next())
	_ = srv.io.Of("/").To("room").Emit("tick", 2) // sent on the old connection, never read there

	intruder := srv.dial("")
	if _, sid3, _ := connectRecovering(t, intruder, fmt.Sprintf(`{"pid":%q,"offset":%q}`, sid+".not-the-secret", offset)); sid3 == sid {
		t.Fatal("a wrong pid restored the socket")
	}
	if !s.Connected() {
		t.Fatal("a wrong pid ended the old connection")
	}

	c2 := srv.dial("")
	missed, sid2, pid2 := connectRecovering(t, c2, fmt.Sprintf(`{"pid":%q,"offset":%q}`, pid, offset))
	if sid2 != sid || pid2 != pid {
		t.Fatalf("not restored: sid %q pid %q", sid2, pid2)
	}
	if len(missed) != 1 || !strings.HasPrefix(missed[0], `2["tick",2,"`) {
		t.Fatalf("missed %q", missed)
	}
	c.waitClosed()
	_ = srv.io.Of("/").To("room").Emit("tick", 3)
	if p := c2.next(); !strings.HasPrefix(string(p.Data), `["tick",3,"`) {
		t.Fatalf("live after restore: %s", p.Data)
	}
}

// A restore whose connection closes while the CONNECT is still being
// handled (here: inside a slow middleware) keeps the saved state for the
// client's next attempt instead of consuming it.
func TestRecoveryKeptWhenTheConnectionClosesDuringConnect(t *testing.T) {
	srv := newTestServer(t, Options{Recovery: RecoveryOptions{MaxDisconnection: time.Minute}})
	ss := collectSockets(srv.io.Of("/"))
	entered, release := make(chan struct{}, 1), make(chan struct{})
	srv.io.Of("/").Use(func(_ context.Context, s *Socket) error {
		if s.Auth()["slow"] == true {
			entered <- struct{}{}
			<-release
		}
		return nil
	})
	sid, pid, offset := awayInRoom(t, srv, ss, `{}`)

	before := srv.io.Engine().Count()
	c2 := srv.dial("")
	poll.Until(t, "the second connection", func() bool { return srv.io.Engine().Count() == before+1 })
	c2.send("0" + fmt.Sprintf(`{"pid":%q,"offset":%q,"slow":true}`, pid, offset))
	<-entered // the restore took the state; the middleware holds the CONNECT
	c2.close()
	poll.Until(t, "the second connection closed", func() bool { return srv.io.Engine().Count() == before })
	close(release)

	c3 := srv.dial("")
	_, sid3, pid3 := connectRecovering(t, c3, fmt.Sprintf(`{"pid":%q,"offset":%q}`, pid, offset))
	if sid3 != sid || pid3 != pid {
		t.Fatalf("the state was lost with the closed connection: sid %q pid %q", sid3, pid3)
	}
	if s3 := ss.getRecovered(t, sid3); !s3.InRoom("room") {
		t.Fatal("restored without its rooms")
	}
}

func TestRecoveryRefused(t *testing.T) {
	srv, ss := recoveryServer(t, Options{Adapter: adapter.MemoryFactory(adapter.Options{RecoveryWindow: time.Minute, RecoveryMaxPackets: 2})})
	sid, pid, offset := awayInRoom(t, srv, ss, "")
	// Three packets while away: the buffer (2) lost the one after the offset.
	for i := 2; i <= 4; i++ {
		_ = srv.io.Of("/").To("room").Emit("tick", i)
	}
	for _, auth := range []string{
		fmt.Sprintf(`{"pid":%q,"offset":%q}`, pid, offset),   // trimmed offset
		fmt.Sprintf(`{"pid":"unknown","offset":%q}`, offset), // unknown pid
		fmt.Sprintf(`{"pid":%q}`, pid),                       // no offset
		`{"pid":1,"offset":true}`,                            // wrong types
	} {
		c2 := srv.dial("")
		missed, sid2, pid2 := connectRecovering(t, c2, auth)
		if len(missed) != 0 || sid2 == sid || pid2 == pid {
			t.Fatalf("%s: missed %q, sid %s pid %s: want a new session with nothing replayed", auth, missed, sid2, pid2)
		}
		if s2 := ss.get(t, sid2); s2.Recovered() || s2.InRoom("room") {
			t.Fatalf("%s: partially recovered", auth)
		}
		c2.close()
	}
}

// A client namespace disconnect is not recoverable.
func TestRecoveryNotAfterClientDisconnect(t *testing.T) {
	srv, ss := recoveryServer(t, Options{})
	c := srv.dial("")
	_, sid, pid := connectRecovering(t, c, "")
	s := ss.get(t, sid)
	r := onDisconnect(s)
	_ = s.Emit("x")
	offset := lastOffset(t, c.next())
	c.send("1")
	r.wait(t)
	missed, sid2, _ := connectRecovering(t, c, fmt.Sprintf(`{"pid":%q,"offset":%q}`, pid, offset))
	if sid2 == sid || len(missed) != 0 {
		t.Fatal("recovered after a client namespace disconnect")
	}
}

// ---- misc ----

type countingObserver struct {
	mu         sync.Mutex
	in         map[string]int
	out        map[string]int
	broadcasts int
	dropped    int
}

func (o *countingObserver) EventIn(name string) { o.mu.Lock(); o.in[name]++; o.mu.Unlock() }
func (o *countingObserver) EventOut(name string, n int) {
	o.mu.Lock()
	o.out[name] += n
	o.mu.Unlock()
}
func (o *countingObserver) Broadcast(int, time.Duration) { o.mu.Lock(); o.broadcasts++; o.mu.Unlock() }
func (o *countingObserver) SlowConsumerDropped()         { o.mu.Lock(); o.dropped++; o.mu.Unlock() }

func TestObserverAndServerSideEmit(t *testing.T) {
	obs := &countingObserver{in: map[string]int{}, out: map[string]int{}}
	srv := newTestServer(t, Options{Observer: obs})
	clients, _ := roomFixture(t, srv)
	nsp := srv.io.Of("/")
	_ = nsp.Emit("quote", 1)
	for _, c := range clients {
		c.next()
	}
	got := make(chan string, 1)
	srv.io.Of("/").Sockets()[0].On("ping", func(*Socket, *Event) { got <- "ping" })
	for _, c := range clients {
		c.send(`2["ping"]`)
	}
	<-got
	obs.mu.Lock()
	if obs.out["quote"] != 3 || obs.broadcasts != 1 {
		t.Fatalf("observer out %v broadcasts %d", obs.out, obs.broadcasts)
	}
	obs.mu.Unlock()
	poll.Until(t, "events in", func() bool { obs.mu.Lock(); defer obs.mu.Unlock(); return obs.in["ping"] == 3 })

	// Single node: server-side emits reach no one, handlers run for incoming ones.
	if err := nsp.ServerSideEmit(context.Background(), []any{"hello"}, nil); err != nil {
		t.Fatal(err)
	}
	var sse []any
	nsp.OnServerSideEmit(func(args []any, reply func(any)) { sse = args; reply("r") })
	var replied any
	nsp.HandleServerSideEmit([]any{"from-node-2"}, func(v any) { replied = v })
	if !reflect.DeepEqual(sse, []any{"from-node-2"}) || replied != "r" {
		t.Fatalf("server-side emit %v %v", sse, replied)
	}
	if nsp.Adapter() == nil {
		t.Fatal("Adapter")
	}
	if s, ok := nsp.LocalSocket(nsp.Sockets()[0].ID()); !ok || s.ID() == "" {
		t.Fatal("LocalSocket")
	}
	if _, ok := nsp.LocalSocket("nope"); ok {
		t.Fatal("LocalSocket of an unknown id")
	}
}

func TestServerClose(t *testing.T) {
	srv := newTestServer(t, Options{})
	ss := collectSockets(srv.io.Of("/"))
	c := srv.dial("")
	s := ss.get(t, c.connect("/", ""))
	r := onDisconnect(s)
	if err := srv.io.Close(); err != nil {
		t.Fatal(err)
	}
	if reason := r.wait(t); reason != engineio.ReasonForcedClose {
		t.Fatalf("reason %q", reason)
	}
	c.waitClosed()
}

// BUG (socketio/namespace.go, Namespace.Deliver): Deliver holds n.mu.RLock
// (and, through the adapter's LocalSockets iterator, the adapter's read lock)
// while calling Session.Send for each recipient. When a recipient's queue
// overflows, Send closes the session synchronously; the close handler runs
// Socket.onClose -> Namespace.removeSocket, which takes n.mu.Lock (and
// adapter.DelAll takes the adapter's write lock) on the same goroutine: the
// broadcast deadlocks, and with it every later connect, disconnect and
// broadcast of the namespace. A slow consumer must be dropped without
// blocking the broadcaster (e.g. close it after releasing the locks).
func TestBroadcastToSlowConsumerDoesNotDeadlock(t *testing.T) {
	srv := newTestServer(t, Options{Engine: engineio.Options{MaxBufferedBytes: 4096}})
	// The slow socket is alone in its namespace, so that the test's cleanup
	// does not block on the deadlocked namespace if the bug is present.
	ss := collectSockets(srv.io.Of("/slow"))
	pc := newPollingClient(t, srv) // never fetches again
	pc.post("40/slow,")
	body := pc.get()
	var reply struct{ SID string }
	if !strings.HasPrefix(body, "40/slow,{") || json.Unmarshal([]byte(body[len("40/slow,"):]), &reply) != nil {
		t.Fatalf("CONNECT reply %q", body)
	}
	slow := ss.get(t, reply.SID)
	r := onDisconnect(slow)

	done := make(chan struct{})
	go func() {
		defer close(done)
		payload := strings.Repeat("x", 1000)
		for i := 0; i < 10; i++ {
			_ = srv.io.Of("/slow").Emit("quote", payload)
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("broadcast to a slow consumer deadlocked")
	}
	if reason := r.wait(t); reason != engineio.ReasonSlowConsumer {
		t.Fatalf("reason %q", reason)
	}
	if srv.io.Of("/slow").Count() != 0 {
		t.Fatal("slow socket still registered")
	}
}
