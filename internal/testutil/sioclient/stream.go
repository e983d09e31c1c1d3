package sioclient

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// StreamWait bounds every wait of a Stream; it only guards against a hung
// test and is never what a test asserts.
const StreamWait = 10 * time.Second

// Kind is the kind of a packet a Stream receives.
type Kind byte

// Kinds of packets a Stream receives.
const (
	KindConnect      Kind = 'c' // 40{...}
	KindConnectError Kind = 'E' // 44{...}
	KindEvent        Kind = 'e' // 42[...]
	KindAck          Kind = 'a' // 43<id>[...]
	KindDisconnect   Kind = 'd' // 41
	KindClosed       Kind = 'x' // websocket closed
	KindOther        Kind = 'o'
)

// Packet is one Socket.IO packet of the main namespace received by a Stream.
type Packet struct {
	Kind Kind
	Name string            // event name (events)
	ID   int               // ack id (acks)
	Args []json.RawMessage // event arguments (after the name) or ack arguments
	Raw  string            // the Engine.IO message without its type character
}

// Obj decodes argument i into a generic map, failing the test otherwise.
func (p Packet) Obj(t testing.TB, i int) map[string]any {
	t.Helper()
	if i >= len(p.Args) {
		t.Fatalf("packet %q has no argument %d", p.Raw, i)
	}
	var m map[string]any
	if err := json.Unmarshal(p.Args[i], &m); err != nil || m == nil {
		t.Fatalf("argument %d of %q is not an object: %v", i, p.Raw, err)
	}
	return m
}

// Stream is the packet-by-packet test client: where Client records events
// for a test to look up, a Stream hands every packet over in order, so a
// test can assert what arrived before an ack, or that nothing else did. It
// answers pings itself. Methods fail the test (t) instead of returning
// errors; Next and the calls built on it must run on the test's goroutine.
type Stream struct {
	t      testing.TB
	conn   *websocket.Conn
	wmu    sync.Mutex
	in     chan Packet
	sid    string
	pid    string   // recovery session id, when the server has recovery on
	early  []Packet // events received before the CONNECT answer
	nextID int
}

// DialStream opens a websocket session at baseURL (http://host) and sends a
// CONNECT to "/" with auth (nil: none). It returns the stream and the
// CONNECT answer (KindConnect or KindConnectError). The connection is
// closed when the test ends.
func DialStream(t testing.TB, baseURL string, auth any) (*Stream, Packet) {
	t.Helper()
	conn, err := openSession(baseURL, "/socket.io/", &websocket.Dialer{HandshakeTimeout: StreamWait}, nil, StreamWait)
	if err != nil {
		t.Fatalf("%s: %v", baseURL, err)
	}
	c := &Stream{t: t, conn: conn, in: make(chan Packet, 8192)}
	t.Cleanup(func() { _ = conn.Close() })
	go c.readLoop()
	c.Send(string(connectFrame(auth)))
	p := c.Next()
	for p.Kind == KindEvent { // missed events of a recovered session come first
		c.early = append(c.early, p)
		p = c.Next()
	}
	if p.Kind == KindConnect {
		var m struct {
			SID string `json:"sid"`
			PID string `json:"pid"`
		}
		if err := json.Unmarshal([]byte(p.Raw[1:]), &m); err != nil || m.SID == "" {
			t.Fatalf("CONNECT reply without sid: %q", p.Raw)
		}
		c.sid, c.pid = m.SID, m.PID
	}
	return c, p
}

// SID returns the socket id from the CONNECT answer.
func (c *Stream) SID() string { return c.sid }

// PID returns the recovery session id (empty when recovery is off).
func (c *Stream) PID() string { return c.pid }

// Early returns the events that arrived before the CONNECT answer (the
// missed events of a restored session).
func (c *Stream) Early() []Packet { return c.early }

func (c *Stream) readLoop() {
	for {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			c.in <- Packet{Kind: KindClosed, Raw: err.Error()}
			return
		}
		s := string(msg)
		if s == "2" {
			c.Send("3")
			continue
		}
		c.in <- ParsePacket(s)
	}
}

// ParsePacket decodes one Engine.IO message carrying a Socket.IO packet of
// the main namespace.
func ParsePacket(s string) Packet {
	p := Packet{Kind: KindOther, Raw: s}
	if len(s) < 2 || s[0] != '4' {
		return p
	}
	p.Raw = s[1:]
	body := s[2:]
	switch s[1] {
	case '0':
		p.Kind = KindConnect
		return p
	case '4':
		p.Kind = KindConnectError
		return p
	case '1':
		p.Kind = KindDisconnect
		return p
	case '2', '3':
	default:
		return p
	}
	i := 0
	for i < len(body) && body[i] >= '0' && body[i] <= '9' {
		i++
	}
	if i > 0 {
		p.ID, _ = strconv.Atoi(body[:i])
	}
	var arr []json.RawMessage
	if err := json.Unmarshal([]byte(body[i:]), &arr); err != nil {
		return p
	}
	if s[1] == '3' {
		p.Kind, p.Args = KindAck, arr
		return p
	}
	if len(arr) == 0 || json.Unmarshal(arr[0], &p.Name) != nil {
		return p
	}
	p.Kind, p.Args = KindEvent, arr[1:]
	return p
}

// Send writes one raw Engine.IO text message.
func (c *Stream) Send(frame string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(StreamWait))
	_ = c.conn.WriteMessage(websocket.TextMessage, []byte(frame))
}

// EventArray encodes ["event", args...]; args are raw JSON texts.
func EventArray(event string, args ...string) string {
	name, _ := json.Marshal(event)
	var b strings.Builder
	b.WriteByte('[')
	b.Write(name)
	for _, a := range args {
		b.WriteByte(',')
		b.WriteString(a)
	}
	b.WriteByte(']')
	return b.String()
}

// Emit sends an event without ack id; args are raw JSON texts.
func (c *Stream) Emit(event string, args ...string) { c.Send("42" + EventArray(event, args...)) }

// Next returns the next packet, failing the test after StreamWait.
func (c *Stream) Next() Packet {
	c.t.Helper()
	select {
	case p := <-c.in:
		return p
	case <-time.After(StreamWait):
		c.t.Fatalf("client %s: no packet within %v", c.sid, StreamWait)
		return Packet{}
	}
}

// Call sends an event with a fresh ack id and returns the packets received
// before the ack, and the ack. It fails the test if the connection ends
// first.
func (c *Stream) Call(event string, args ...string) ([]Packet, Packet) {
	c.t.Helper()
	id := c.nextID
	c.nextID++
	c.Send("42" + strconv.Itoa(id) + EventArray(event, args...))
	return c.UntilAck(id)
}

// UntilAck returns the packets received until the ack with id, and the ack.
func (c *Stream) UntilAck(id int) ([]Packet, Packet) {
	c.t.Helper()
	var before []Packet
	for {
		p := c.Next()
		switch {
		case p.Kind == KindAck && p.ID == id:
			return before, p
		case p.Kind == KindClosed || p.Kind == KindDisconnect:
			c.t.Fatalf("client %s: connection ended waiting for ack %d (got %q after %v)", c.sid, id, p.Raw, before)
		}
		before = append(before, p)
	}
}

// Drain returns the events received until the ack of a "ping" event sent
// now (the server must answer it with an ack, after a "pong" event or
// not): a server that handles one connection's packets in order has sent
// everything for earlier packets before that ack. The barrier's own pong
// event is not included.
func (c *Stream) Drain() []Packet {
	c.t.Helper()
	evs, _ := c.Call("ping")
	if n := len(evs); n > 0 && evs[n-1].Kind == KindEvent && evs[n-1].Name == "pong" {
		evs = evs[:n-1]
	}
	return evs
}

// WaitEnd reads until the connection ends and returns what arrived.
func (c *Stream) WaitEnd() []Packet {
	c.t.Helper()
	var got []Packet
	for {
		p := c.Next()
		got = append(got, p)
		if p.Kind == KindClosed {
			return got
		}
	}
}

// Close closes the connection.
func (c *Stream) Close() { _ = c.conn.Close() }
