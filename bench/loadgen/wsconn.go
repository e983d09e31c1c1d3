package loadgen

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// WSConn is a minimal client WebSocket connection tuned for many idle
// connections: one small growable read buffer, frames parsed in place, all
// writes from the owner goroutine. It is not safe for concurrent use except
// Close.
type WSConn struct {
	conn       net.Conn
	buf        []byte
	r, w       int
	wbuf       []byte
	rng        uint64
	frag       []byte
	fragOp     byte
	inFrag     bool
	maxPayload int
}

const wsInitialBuffer = 1024

// ErrClosedByPeer is returned after a close frame from the server.
var ErrClosedByPeer = errors.New("websocket: closed by server")

// DialWS opens a TCP connection with d and performs the WebSocket upgrade
// for target (host:port and request URI) with extra request headers.
func DialWS(ctx context.Context, d *net.Dialer, hostport, requestURI string, header map[string]string) (*WSConn, error) {
	conn, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return nil, err
	}
	c, err := UpgradeWS(ctx, conn, hostport, requestURI, header)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// UpgradeWS performs the client handshake on an open connection.
func UpgradeWS(ctx context.Context, conn net.Conn, host, requestURI string, header map[string]string) (*WSConn, error) {
	var keyb [16]byte
	_, _ = rand.Read(keyb[:])
	key := base64.StdEncoding.EncodeToString(keyb[:])
	var req strings.Builder
	req.WriteString("GET " + requestURI + " HTTP/1.1\r\nHost: " + host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\n")
	for k, v := range header {
		req.WriteString(k + ": " + v + "\r\n")
	}
	req.WriteString("\r\n")
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// cancellation unblocks the handshake too
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer func() {
		if stop() {
			_ = conn.SetDeadline(time.Time{})
		}
	}()
	if _, err := io.WriteString(conn, req.String()); err != nil {
		return nil, fmt.Errorf("websocket: write handshake: %w", err)
	}
	c := &WSConn{conn: conn, buf: make([]byte, wsInitialBuffer), maxPayload: 16 << 20}
	c.rng = uint64(time.Now().UnixNano()) | 1
	for {
		if end := bytes.Index(c.buf[:c.w], []byte("\r\n\r\n")); end >= 0 {
			if err := checkUpgradeResponse(c.buf[:end+2], key); err != nil {
				return nil, err
			}
			c.r = end + 4
			return c, nil
		}
		if c.w == len(c.buf) {
			if len(c.buf) >= 16<<10 {
				return nil, errors.New("websocket: handshake response headers too large")
			}
			c.grow()
		}
		n, err := conn.Read(c.buf[c.w:])
		c.w += n
		if err != nil {
			if c.w > 0 {
				return nil, fmt.Errorf("websocket: handshake: %w (got %q)", err, truncate(c.buf[:c.w], 200))
			}
			return nil, fmt.Errorf("websocket: handshake: %w", err)
		}
	}
}

// checkUpgradeResponse validates a 101 response head (status line + headers,
// each ending in CRLF).
func checkUpgradeResponse(head []byte, key string) error {
	lines := strings.Split(strings.TrimRight(string(head), "\r\n"), "\r\n")
	status := lines[0]
	if !strings.HasPrefix(status, "HTTP/1.1 101") {
		return fmt.Errorf("websocket: upgrade refused: %q", status)
	}
	var accept, upgrade string
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "sec-websocket-accept":
			accept = strings.TrimSpace(v)
		case "upgrade":
			upgrade = strings.TrimSpace(v)
		}
	}
	if !strings.EqualFold(upgrade, "websocket") {
		return fmt.Errorf("websocket: bad Upgrade header %q", upgrade)
	}
	if accept != AcceptKey(key) {
		return fmt.Errorf("websocket: bad Sec-WebSocket-Accept %q", accept)
	}
	return nil
}

func (c *WSConn) grow() {
	nb := make([]byte, 2*len(c.buf))
	copy(nb, c.buf[c.r:c.w])
	c.w -= c.r
	c.r = 0
	c.buf = nb
}

// ReadMessage returns the next data message (text or binary), answering
// pings and joining fragments. The payload is valid until the next call.
func (c *WSConn) ReadMessage() (op byte, payload []byte, err error) {
	for {
		f, n, err := ParseFrame(c.buf[c.r:c.w], c.maxPayload)
		if err != nil {
			return 0, nil, err
		}
		if n == 0 {
			if err := c.fill(); err != nil {
				return 0, nil, err
			}
			continue
		}
		c.r += n
		if c.r == c.w {
			c.r, c.w = 0, 0 // payload stays valid: nothing overwrites it before the next read
		}
		switch f.Op {
		case OpPing:
			if err := c.writeFrame(OpPong, f.Payload); err != nil {
				return 0, nil, err
			}
		case OpPong:
		case OpClose:
			_ = c.writeFrame(OpClose, nil)
			return OpClose, nil, ErrClosedByPeer
		case OpContinuation:
			if !c.inFrag {
				return 0, nil, errors.New("websocket: continuation without start")
			}
			c.frag = append(c.frag, f.Payload...)
			if f.Fin {
				c.inFrag = false
				return c.fragOp, c.frag, nil
			}
		default:
			if c.inFrag {
				return 0, nil, errors.New("websocket: new message inside fragmented message")
			}
			if !f.Fin {
				c.inFrag, c.fragOp = true, f.Op
				c.frag = append(c.frag[:0], f.Payload...)
				continue
			}
			return f.Op, f.Payload, nil
		}
	}
}

// fill reads more bytes, compacting or growing the buffer first.
func (c *WSConn) fill() error {
	if c.r > 0 {
		copy(c.buf, c.buf[c.r:c.w])
		c.w -= c.r
		c.r = 0
	}
	if c.w == len(c.buf) {
		c.grow()
	}
	n, err := c.conn.Read(c.buf[c.w:])
	c.w += n
	if n > 0 {
		return nil
	}
	return err
}

func (c *WSConn) nextMask() [4]byte {
	// xorshift64: masks only need to be unpredictable to intermediaries, not secret
	c.rng ^= c.rng << 13
	c.rng ^= c.rng >> 7
	c.rng ^= c.rng << 17
	v := c.rng
	return [4]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
}

func (c *WSConn) writeFrame(op byte, payload []byte) error {
	c.wbuf = AppendFrame(c.wbuf[:0], op, true, true, c.nextMask(), payload)
	_, err := c.conn.Write(c.wbuf)
	return err
}

// WriteText sends each message as its own text frame in one write call.
func (c *WSConn) WriteText(msgs ...[]byte) error {
	c.wbuf = c.wbuf[:0]
	for _, m := range msgs {
		c.wbuf = AppendFrame(c.wbuf, OpText, true, true, c.nextMask(), m)
	}
	_, err := c.conn.Write(c.wbuf)
	if cap(c.wbuf) > 4096 {
		c.wbuf = nil
	}
	return err
}

// SetReadDeadline sets the underlying connection's read deadline.
func (c *WSConn) SetReadDeadline(t time.Time) error { return c.conn.SetReadDeadline(t) }

// Close closes the TCP connection without a closing handshake (like a dropped
// network link). Safe to call from another goroutine.
func (c *WSConn) Close() error { return c.conn.Close() }
