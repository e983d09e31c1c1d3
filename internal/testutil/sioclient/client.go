// Package sioclient is a minimal Socket.IO v5 client over websocket for Go
// tests: it answers heartbeats, connects to a namespace with an auth
// payload, emits events with or without acks, and records received events.
package sioclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Event is one received EVENT (text only; attachments are not decoded).
type Event struct {
	Name string
	Args []json.RawMessage
	// AckID is the id of a server event expecting an ack (-1: none).
	AckID int
}

// Client is one test connection.
type Client struct {
	conn *websocket.Conn
	wmu  sync.Mutex

	mu         sync.Mutex
	cond       *sync.Cond
	events     []Event
	acks       map[int]chan []json.RawMessage
	nextAck    int
	sid        string
	pid        string
	connectErr json.RawMessage
	closed     bool
	closeErr   error
	lastOffset string
	noPong     bool
	manualAcks bool
}

// Options configure Dial.
type Options struct {
	Header http.Header    // handshake headers (Cookie, Origin, X-Forwarded-For...)
	Auth   map[string]any // CONNECT auth payload
	Path   string         // default /socket.io/
	// Timeout bounds the connection (default 5s).
	Timeout time.Duration
	// Dialer, when set, dials the websocket (e.g. with a source address).
	Dialer *websocket.Dialer
	// ManualAcks leaves server events expecting an ack unanswered until
	// Ack is called (by default they are answered at once with "ok").
	ManualAcks bool
}

// ErrConnectRefused is returned by Dial when the server answered CONNECT_ERROR.
var ErrConnectRefused = errors.New("sioclient: connect refused")

// ConnectError is the CONNECT_ERROR payload.
type ConnectError struct {
	Message string         `json:"message"`
	Data    map[string]any `json:"data"`
}

func (e *ConnectError) Error() string { return "connect_error: " + e.Message }

// Unwrap matches ErrConnectRefused.
func (e *ConnectError) Unwrap() error { return ErrConnectRefused }

// Dial connects to base (http://host:port) and joins namespace "/".
func Dial(base string, opts Options) (*Client, error) {
	if opts.Path == "" {
		opts.Path = "/socket.io/"
	}
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	d := opts.Dialer
	if d == nil {
		d = &websocket.Dialer{HandshakeTimeout: opts.Timeout}
	}
	conn, err := openSession(base, opts.Path, d, opts.Header, opts.Timeout)
	if err != nil {
		return nil, err
	}
	c := &Client{conn: conn, acks: make(map[int]chan []json.RawMessage), manualAcks: opts.ManualAcks}
	c.cond = sync.NewCond(&c.mu)
	go c.readLoop()
	var auth any // a nil map must send no payload, not "null"
	if opts.Auth != nil {
		auth = opts.Auth
	}
	if err := c.write(connectFrame(auth)); err != nil {
		c.Close()
		return nil, err
	}
	deadline := time.Now().Add(opts.Timeout)
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.sid == "" && c.connectErr == nil && !c.closed {
		if !c.waitUntil(deadline) {
			go c.Close()
			return nil, errors.New("sioclient: connect timeout")
		}
	}
	if c.connectErr != nil {
		ce := &ConnectError{}
		_ = json.Unmarshal(c.connectErr, ce)
		go c.Close()
		return nil, ce
	}
	if c.closed {
		return nil, fmt.Errorf("sioclient: closed during connect: %v", c.closeErr)
	}
	return c, nil
}

// openSession opens an Engine.IO websocket session at base (http://host:port)
// under path and reads its open packet, waiting at most timeout for it.
func openSession(base, path string, d *websocket.Dialer, header http.Header, timeout time.Duration) (*websocket.Conn, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	u.Path = path
	u.RawQuery = "EIO=4&transport=websocket"
	conn, resp, err := d.Dial(u.String(), header)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("sioclient: dial: %w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, fmt.Errorf("sioclient: dial: %w", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	_, open, err := conn.ReadMessage()
	if err != nil || len(open) == 0 || open[0] != '0' {
		conn.Close()
		return nil, fmt.Errorf("sioclient: no open packet: %v", err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	return conn, nil
}

// connectFrame is the CONNECT to "/" with auth (nil: none).
func connectFrame(auth any) []byte {
	connect := []byte("40")
	if auth != nil {
		b, _ := json.Marshal(auth)
		connect = append(connect, b...)
	}
	return connect
}

// waitUntil waits on cond until deadline; false when it passed. c.mu held.
func (c *Client) waitUntil(deadline time.Time) bool {
	if time.Now().After(deadline) {
		return false
	}
	t := time.AfterFunc(time.Until(deadline), func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	c.cond.Wait()
	t.Stop()
	return true
}

// SetNoPong stops (or resumes) answering heartbeats, to test ping timeouts.
func (c *Client) SetNoPong(v bool) {
	c.mu.Lock()
	c.noPong = v
	c.mu.Unlock()
}

// ID returns the socket id.
func (c *Client) ID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sid
}

// PID returns the recovery pid (empty when recovery is off).
func (c *Client) PID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pid
}

// LastOffset returns the last recovery offset seen.
func (c *Client) LastOffset() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastOffset
}

func (c *Client) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.conn.WriteMessage(websocket.TextMessage, b)
}

// WriteRaw sends a raw Engine.IO text frame.
func (c *Client) WriteRaw(frame string) error { return c.write([]byte(frame)) }

func (c *Client) readLoop() {
	for {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			c.mu.Lock()
			c.closed, c.closeErr = true, err
			c.cond.Broadcast()
			c.mu.Unlock()
			return
		}
		c.handle(msg)
	}
}

func (c *Client) handle(msg []byte) {
	if len(msg) == 0 {
		return
	}
	switch msg[0] {
	case '2':
		c.mu.Lock()
		noPong := c.noPong
		c.mu.Unlock()
		if !noPong {
			_ = c.write([]byte("3"))
		}
		return
	case '4':
	default:
		return
	}
	p := msg[1:]
	if len(p) == 0 {
		return
	}
	typ := p[0]
	p = p[1:]
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.cond.Broadcast()
	switch typ {
	case '0':
		var m struct{ SID, PID string }
		_ = json.Unmarshal(p, &m)
		c.sid, c.pid = m.SID, m.PID
	case '4':
		c.connectErr = append(json.RawMessage(nil), p...)
	case '1':
		c.closed = true
		c.closeErr = errors.New("server namespace disconnect")
	case '2', '3':
		i := 0
		for i < len(p) && p[i] >= '0' && p[i] <= '9' {
			i++
		}
		id, hasID := 0, i > 0
		if hasID {
			id, _ = strconv.Atoi(string(p[:i]))
		}
		var arr []json.RawMessage
		if err := json.Unmarshal(p[i:], &arr); err != nil {
			return
		}
		if typ == '3' {
			if ch, ok := c.acks[id]; ok {
				delete(c.acks, id)
				ch <- arr
			}
			return
		}
		if len(arr) == 0 {
			return
		}
		var name string
		_ = json.Unmarshal(arr[0], &name)
		args := arr[1:]
		if c.pid != "" && len(args) > 0 {
			var off string
			if json.Unmarshal(args[len(args)-1], &off) == nil {
				c.lastOffset = off
			}
		}
		ackID := -1
		if hasID {
			ackID = id
		}
		c.events = append(c.events, Event{Name: name, Args: args, AckID: ackID})
		if hasID && !c.manualAcks {
			// Answer server acks with the event name, as a test client.
			go c.write([]byte("43" + strconv.Itoa(id) + `["ok"]`))
		}
	}
}

// Ack answers the server event with ack id id (see Options.ManualAcks).
func (c *Client) Ack(id int, args ...any) error {
	if args == nil {
		args = []any{}
	}
	b, err := json.Marshal(args)
	if err != nil {
		return err
	}
	return c.write(append([]byte("43"+strconv.Itoa(id)), b...))
}

// Emit sends an event without ack.
func (c *Client) Emit(event string, args ...any) error {
	b, err := json.Marshal(append([]any{event}, args...))
	if err != nil {
		return err
	}
	return c.write(append([]byte("42"), b...))
}

// EmitWithAck sends an event and waits for its ack.
func (c *Client) EmitWithAck(timeout time.Duration, event string, args ...any) ([]json.RawMessage, error) {
	b, err := json.Marshal(append([]any{event}, args...))
	if err != nil {
		return nil, err
	}
	ch := make(chan []json.RawMessage, 1)
	c.mu.Lock()
	id := c.nextAck
	c.nextAck++
	c.acks[id] = ch
	c.mu.Unlock()
	if err := c.write(append([]byte("42"+strconv.Itoa(id)), b...)); err != nil {
		return nil, err
	}
	select {
	case a := <-ch:
		return a, nil
	case <-time.After(timeout):
		return nil, fmt.Errorf("sioclient: no ack for %q within %v", event, timeout)
	}
}

// Events returns a copy of the events received so far.
func (c *Client) Events() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.events...)
}

// EventsNamed returns the received events with that name.
func (c *Client) EventsNamed(name string) []Event {
	var out []Event
	for _, e := range c.Events() {
		if e.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// WaitEvent waits until an event named name (received after skip earlier
// ones of that name) arrives, and returns it.
func (c *Client) WaitEvent(name string, timeout time.Duration) (Event, error) {
	return c.WaitEventN(name, 1, timeout)
}

// WaitEventN waits until n events named name have been received and
// returns the n-th.
func (c *Client) WaitEventN(name string, n int, timeout time.Duration) (Event, error) {
	deadline := time.Now().Add(timeout)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		count := 0
		for _, e := range c.events {
			if e.Name == name {
				count++
				if count == n {
					return e, nil
				}
			}
		}
		if c.closed {
			return Event{}, fmt.Errorf("sioclient: closed before %q #%d: %v", name, n, c.closeErr)
		}
		if !c.waitUntil(deadline) {
			return Event{}, fmt.Errorf("sioclient: %q #%d not received within %v (got %d)", name, n, timeout, count)
		}
	}
}

// WaitClosed waits until the server closes the connection.
func (c *Client) WaitClosed(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.closed {
		if !c.waitUntil(deadline) {
			return fmt.Errorf("sioclient: still open after %v", timeout)
		}
	}
	return nil
}

// Closed reports whether the connection ended.
func (c *Client) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Close closes the websocket without a goodbye (like a dropped network).
func (c *Client) Close() error { return c.conn.Close() }
