package trading

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// waitFor bounds every wait of the test client; it only guards against a
// hung test and is never what a test asserts.
const waitFor = 10 * time.Second

// Kinds of packets the test client receives.
const (
	pkConnect      = 'c' // 40{...}
	pkConnectError = 'E' // 44{...}
	pkEvent        = 'e' // 42[...]
	pkAck          = 'a' // 43<id>[...]
	pkDisconnect   = 'd' // 41
	pkClosed       = 'x' // websocket closed
	pkOther        = 'o'
)

// packet is one Socket.IO packet received by the test client.
type packet struct {
	kind byte
	name string            // event name (events)
	id   int               // ack id (acks)
	args []json.RawMessage // event arguments (after the name) or ack arguments
	raw  string            // the Engine.IO message without its type character
}

// arg decodes argument i into a generic map (fails the test otherwise).
func (p packet) obj(t testing.TB, i int) map[string]any {
	t.Helper()
	if i >= len(p.args) {
		t.Fatalf("packet %q has no argument %d", p.raw, i)
	}
	var m map[string]any
	if err := json.Unmarshal(p.args[i], &m); err != nil || m == nil {
		t.Fatalf("argument %d of %q is not an object: %v", i, p.raw, err)
	}
	return m
}

// sioClient speaks Engine.IO v4 / Socket.IO 5 text frames over a real
// websocket: it answers pings and queues every other packet in order.
type sioClient struct {
	t      testing.TB
	conn   *websocket.Conn
	wmu    sync.Mutex
	in     chan packet
	sid    string
	pid    string   // recovery session id, when the server has recovery on
	early  []packet // events received before the CONNECT answer
	nextID int
}

// dialSIO opens a websocket session at baseURL (http://host) and sends a
// CONNECT to "/" with auth. It returns the client and the CONNECT answer
// (pkConnect or pkConnectError).
func dialSIO(t testing.TB, baseURL string, auth any) (*sioClient, packet) {
	t.Helper()
	u, err := url.Parse(baseURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Scheme = "ws"
	u.Path = "/socket.io/"
	u.RawQuery = "EIO=4&transport=websocket"
	d := websocket.Dialer{HandshakeTimeout: waitFor}
	conn, resp, err := d.Dial(u.String(), nil)
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	_ = resp.Body.Close()
	_ = conn.SetReadDeadline(time.Now().Add(waitFor))
	_, open, err := conn.ReadMessage()
	if err != nil || len(open) == 0 || open[0] != '0' {
		t.Fatalf("open packet: %q, %v", open, err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	c := &sioClient{t: t, conn: conn, in: make(chan packet, 8192)}
	t.Cleanup(func() { _ = conn.Close() })
	go c.readLoop()
	connect := "40"
	if auth != nil {
		b, err := json.Marshal(auth)
		if err != nil {
			t.Fatal(err)
		}
		connect += string(b)
	}
	c.send(connect)
	p := c.next()
	for p.kind == pkEvent { // missed events of a recovered session come first
		c.early = append(c.early, p)
		p = c.next()
	}
	if p.kind == pkConnect {
		var m struct {
			SID string `json:"sid"`
			PID string `json:"pid"`
		}
		if err := json.Unmarshal([]byte(p.raw[1:]), &m); err != nil || m.SID == "" {
			t.Fatalf("CONNECT reply without sid: %q", p.raw)
		}
		c.sid, c.pid = m.SID, m.PID
	}
	return c, p
}

func (c *sioClient) readLoop() {
	for {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			c.in <- packet{kind: pkClosed, raw: err.Error()}
			return
		}
		s := string(msg)
		if s == "2" {
			c.send("3")
			continue
		}
		c.in <- parsePacket(s)
	}
}

// parsePacket decodes one Engine.IO message carrying a Socket.IO packet of
// the main namespace.
func parsePacket(s string) packet {
	p := packet{kind: pkOther, raw: s}
	if len(s) < 2 || s[0] != '4' {
		return p
	}
	p.raw = s[1:]
	body := s[2:]
	switch s[1] {
	case '0':
		p.kind = pkConnect
		return p
	case '4':
		p.kind = pkConnectError
		return p
	case '1':
		p.kind = pkDisconnect
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
		p.id, _ = strconv.Atoi(body[:i])
	}
	var arr []json.RawMessage
	if err := json.Unmarshal([]byte(body[i:]), &arr); err != nil {
		return p
	}
	if s[1] == '3' {
		p.kind, p.args = pkAck, arr
		return p
	}
	if len(arr) == 0 || json.Unmarshal(arr[0], &p.name) != nil {
		return p
	}
	p.kind, p.args = pkEvent, arr[1:]
	return p
}

// send writes one raw Engine.IO text message.
func (c *sioClient) send(frame string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(waitFor))
	_ = c.conn.WriteMessage(websocket.TextMessage, []byte(frame))
}

// eventArray encodes ["event", args...]; args are raw JSON texts.
func eventArray(event string, args ...string) string {
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

// emit sends an event without ack id.
func (c *sioClient) emit(event string, args ...string) { c.send("42" + eventArray(event, args...)) }

// next returns the next packet, failing the test after waitFor.
func (c *sioClient) next() packet {
	c.t.Helper()
	select {
	case p := <-c.in:
		return p
	case <-time.After(waitFor):
		c.t.Fatalf("client %s: no packet within %v", c.sid, waitFor)
		return packet{}
	}
}

// call sends an event with a fresh ack id and returns the events received
// before the ack, and the ack. It fails the test if the connection ends
// first.
func (c *sioClient) call(event string, args ...string) ([]packet, packet) {
	c.t.Helper()
	id := c.nextID
	c.nextID++
	c.send("42" + strconv.Itoa(id) + eventArray(event, args...))
	return c.untilAck(id)
}

func (c *sioClient) untilAck(id int) ([]packet, packet) {
	c.t.Helper()
	var before []packet
	for {
		p := c.next()
		switch {
		case p.kind == pkAck && p.id == id:
			return before, p
		case p.kind == pkClosed || p.kind == pkDisconnect:
			c.t.Fatalf("client %s: connection ended waiting for ack %d (got %q after %v)", c.sid, id, p.raw, before)
		}
		before = append(before, p)
	}
}

// drain returns the events received until the ack of a ping sent now:
// handlers run in order per connection, so everything the server emitted
// for earlier packets arrives before that ack. The pong event of the
// barrier ping itself is not included.
func (c *sioClient) drain() []packet {
	c.t.Helper()
	evs, _ := c.call("ping")
	if n := len(evs); n > 0 && evs[n-1].kind == pkEvent && evs[n-1].name == "pong" {
		evs = evs[:n-1]
	}
	return evs
}

// waitEnd reads until the connection ends and returns what arrived.
func (c *sioClient) waitEnd() []packet {
	c.t.Helper()
	var got []packet
	for {
		p := c.next()
		got = append(got, p)
		if p.kind == pkClosed {
			return got
		}
	}
}

func (c *sioClient) close() { _ = c.conn.Close() }
