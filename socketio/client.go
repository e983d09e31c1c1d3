package socketio

import (
	"sync"
	"time"

	"github.com/tradewire/tradewire/engineio"
	"github.com/tradewire/tradewire/parser"
)

// client is one Engine.IO session multiplexing namespace sockets.
type client struct {
	srv  *Server
	sess *engineio.Session
	dec  parser.Decoder

	mu           sync.Mutex
	sockets      []*Socket // one per connected namespace; usually just "/"
	connectTimer *time.Timer
	connects     int32 // CONNECT packets received, bounded by maxConnectAttempts
	closed       bool
	running      bool // (lock: qmu) in the same word as the two above

	qmu sync.Mutex
	in  *inbox // packets waiting for the worker; nil while there are none
}

// inbox holds a client's packets until its worker handles them. Inboxes
// are pooled: an idle client holds none.
type inbox struct {
	pkts []*parser.Packet
	head int // the next packet to handle
}

var inboxPool = sync.Pool{New: func() any { return new(inbox) }}

// maxPooledInbox bounds the inboxes kept in inboxPool.
const maxPooledInbox = 256

func (in *inbox) waiting() int { return len(in.pkts) - in.head }

// recycle empties in and returns it to the pool.
func (in *inbox) recycle() {
	if cap(in.pkts) > maxPooledInbox {
		return
	}
	clear(in.pkts)
	in.pkts, in.head = in.pkts[:0], 0
	inboxPool.Put(in)
}

func newClient(srv *Server, sess *engineio.Session) *client {
	c := &client{srv: srv, sess: sess}
	c.connectTimer = time.AfterFunc(srv.opts.ConnectTimeout, func() {
		c.mu.Lock()
		none := len(c.sockets) == 0 && !c.closed
		c.mu.Unlock()
		if none {
			sess.Close(engineio.ReasonForcedClose)
		}
	})
	return c
}

// OnMessage runs on the transport's goroutine: decode, then queue for the
// client's worker so handlers may block without stalling the transport.
func (c *client) OnMessage(data []byte, binary bool) {
	var p *parser.Packet
	var err error
	if binary {
		p, err = c.dec.DecodeBinary(data)
	} else {
		p, err = c.dec.DecodeText(data)
	}
	if err != nil {
		c.srv.log.Debug("socket.io parse error", "sid", c.sess.ID(), "err", err)
		c.sess.Close(engineio.ReasonParseError)
		return
	}
	if p == nil {
		// Waiting for attachments: only a connected client may send them,
		// so nothing is buffered for one that has not authenticated.
		c.mu.Lock()
		none := len(c.sockets) == 0
		c.mu.Unlock()
		if none {
			c.sess.Close(engineio.ReasonParseError)
		}
		return
	}
	c.qmu.Lock()
	if c.in != nil && c.in.waiting() >= c.srv.opts.MaxInbox {
		c.qmu.Unlock()
		c.srv.log.Warn("client flooding: inbox full, disconnecting", "sid", c.sess.ID())
		c.sess.Close(engineio.ReasonTransportError)
		return
	}
	if c.in == nil {
		c.in = inboxPool.Get().(*inbox)
	}
	c.in.pkts = append(c.in.pkts, p)
	start := !c.running
	c.running = true
	c.qmu.Unlock()
	if start {
		go c.drain()
	}
}

func (c *client) drain() {
	for {
		c.qmu.Lock()
		in := c.in
		if in == nil || in.waiting() == 0 {
			c.running = false
			c.in = nil
			c.qmu.Unlock()
			if in != nil {
				in.recycle()
			}
			return
		}
		p := in.pkts[in.head]
		in.pkts[in.head] = nil
		in.head++
		c.qmu.Unlock()
		c.handle(p)
	}
}

func (c *client) handle(p *parser.Packet) {
	if p.Type == parser.Connect {
		c.connect(p)
		return
	}
	c.mu.Lock()
	s := c.socketOf(p.Nsp)
	c.mu.Unlock()
	if s == nil {
		// A packet for a namespace that is not connected closes the connection.
		c.sess.Close(engineio.ReasonParseError)
		return
	}
	s.onPacket(p)
}

// maxConnectAttempts bounds the CONNECT packets one session may send: each
// costs an authentication, so a refused client cannot retry forever on one
// session.
const maxConnectAttempts = 8

func (c *client) connect(p *parser.Packet) {
	c.mu.Lock()
	c.connects++
	tooMany := c.connects > maxConnectAttempts
	c.mu.Unlock()
	if tooMany {
		c.srv.log.Info("too many CONNECT attempts on one session, closing", "sid", c.sess.ID())
		c.sess.Close(engineio.ReasonForcedClose)
		return
	}
	nsp := c.srv.namespace(p.Nsp)
	if nsp == nil {
		c.writePacket(&parser.Packet{Type: parser.ConnectError, Nsp: p.Nsp, Data: []byte(`{"message":"Invalid namespace"}`)})
		return
	}
	c.mu.Lock()
	dup := c.socketOf(p.Nsp) != nil
	c.mu.Unlock()
	if dup {
		c.sess.Close(engineio.ReasonParseError)
		return
	}
	nsp.connect(c, p.Data)
}

// socketOf returns the client's socket in namespace nsp, or nil. c.mu must be held.
func (c *client) socketOf(nsp string) *Socket {
	for _, s := range c.sockets {
		if s.nsp.name == nsp {
			return s
		}
	}
	return nil
}

func (c *client) addSocket(s *Socket) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.sockets = append(c.sockets, s)
	if c.connectTimer != nil {
		c.connectTimer.Stop()
		c.connectTimer = nil // not needed any more: free it
	}
	if keep := c.srv.opts.KeepHeaders; keep != nil {
		c.sess.Handshake().Compact(keep)
	}
	return true
}

func (c *client) removeSocket(s *Socket) {
	c.mu.Lock()
	for i, x := range c.sockets {
		if x == s {
			c.sockets = append(c.sockets[:i], c.sockets[i+1:]...)
			break
		}
	}
	if len(c.sockets) == 0 {
		c.sockets = nil
	}
	c.mu.Unlock()
}

// writePacket encodes p for this client alone.
func (c *client) writePacket(p *parser.Packet) error {
	return c.sess.Send(encodeForEngine(p)...)
}

// encodeForEngine turns a packet into Engine.IO messages: the text part and
// one binary message per attachment.
func encodeForEngine(p *parser.Packet) []*engineio.Packet {
	text := engineio.NewMessage(p.AppendText(make([]byte, 0, len(p.Data)+8)), false)
	if len(p.Attachments) == 0 {
		return []*engineio.Packet{text}
	}
	out := make([]*engineio.Packet, 0, 1+len(p.Attachments))
	out = append(out, text)
	for _, a := range p.Attachments {
		out = append(out, engineio.NewMessage(a, true))
	}
	return out
}

// OnClose runs on the transport's goroutine when the connection ends. The
// client's worker may still hold packets that arrived before the close: a
// namespace DISCONNECT among them is honoured first, in order, so the socket
// ends with "client namespace disconnect" as the client asked (a client
// that disconnects and closes at once sends both). The other queued packets
// are dropped: their acks could not be answered on a closed connection.
func (c *client) OnClose(reason string) {
	c.qmu.Lock()
	var queued []*parser.Packet
	if c.in != nil {
		queued = c.in.pkts[c.in.head:] // the inbox is dropped, not recycled
		c.in = nil
	}
	c.qmu.Unlock()
	for _, p := range queued {
		if p.Type != parser.Disconnect {
			continue
		}
		c.mu.Lock()
		s := c.socketOf(p.Nsp)
		c.mu.Unlock()
		if s != nil {
			s.onClose(ReasonClientNamespaceDisconnect)
		}
	}
	c.mu.Lock()
	c.closed = true
	if c.connectTimer != nil {
		c.connectTimer.Stop()
	}
	sockets := c.sockets
	c.sockets = nil
	c.mu.Unlock()
	for _, s := range sockets {
		s.onClose(reason)
	}
}
