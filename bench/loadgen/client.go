package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// eioTransport is one Engine.IO session as seen by the Socket.IO client.
type eioTransport interface {
	Next() ([]byte, error)     // next text packet, e.g. "2" or "42[...]"
	Send(pkts ...[]byte) error // one or more text packets
	Close() error              // safe from any goroutine
	SetReadDeadline(time.Time) error
}

type wsTransport struct{ *WSConn }

func (t wsTransport) Next() ([]byte, error) {
	for {
		op, p, err := t.ReadMessage()
		if err != nil {
			return nil, err
		}
		if op == OpText {
			if !ValidEIOPacket(p) || p[0] == 'b' {
				return nil, fmt.Errorf("engine.io: bad packet %q", truncate(p, 64))
			}
			return p, nil
		}
		// binary frames are attachments; the benchmark events carry none
	}
}

func (t wsTransport) Send(pkts ...[]byte) error { return t.WriteText(pkts...) }

func (p *PollConn) SetReadDeadline(time.Time) error { return nil }

// Counters are the per-fleet event counters.
type Counters struct {
	Quotes  atomic.Uint64
	Trades  atomic.Uint64
	Other   atomic.Uint64
	Market  atomic.Uint64 // market:status, the event sent to every socket
	NoTS    atomic.Uint64
	Pings   atomic.Uint64
	Drops   atomic.Uint64 // established sessions lost unexpectedly
	Refused atomic.Uint64 // connect_error answers
}

// ClientSpec describes one simulated user connection.
type ClientSpec struct {
	Index     int
	URL       string // http://host:port
	Path      string // /socket.io/
	Transport string // websocket | polling
	Cookie    string // Cookie header value, may be empty
	Auth      []byte // CONNECT payload JSON, may be nil
	Symbols   []string
	Dialer    *net.Dialer
	HTTP      *http.Client    // polling only
	Life      context.Context // ends every request of a polling session; nil = background
}

// session is one live Socket.IO connection of a client.
type session struct {
	tr        eioTransport
	open      OpenPacket
	connected time.Duration // dial -> open packet
	ready     time.Duration // dial -> all subscriptions confirmed
}

// subscribeMessages are the product client's subscription emits with ack ids 0..2.
func subscribeMessages(symbols []string) [][]byte {
	var sb strings.Builder
	sb.WriteString(`{"symbols":[`)
	for i, s := range symbols {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.Quote(s))
	}
	sb.WriteString(`]}`)
	return [][]byte{
		AppendEventMessage(nil, 0, "subscribe:portfolio"),
		AppendEventMessage(nil, 1, "subscribe:trades"),
		AppendEventMessage(nil, 2, "subscribe:watchlist", []byte(sb.String())),
	}
}

var subscribedBits = map[string]uint8{
	"subscribed:portfolio": 1, "subscribed:trades": 2, "subscribed:watchlist": 4,
}

// ConnectError is a Socket.IO CONNECT_ERROR from the server.
type ConnectError struct{ Payload string }

func (e *ConnectError) Error() string { return "socket.io connect_error: " + e.Payload }

// establish opens the transport, connects the main namespace and waits for
// the three subscriptions to be confirmed (ack or subscribed:* event).
func establish(ctx context.Context, spec *ClientSpec, ev *eventSink) (*session, error) {
	t0 := time.Now()
	s := &session{}
	switch spec.Transport {
	case "polling":
		h := http.Header{}
		if spec.Cookie != "" {
			h.Set("Cookie", spec.Cookie)
		}
		life := spec.Life
		if life == nil {
			life = context.Background()
		}
		pc, open, err := DialPolling(ctx, life, spec.HTTP, spec.URL+spec.Path+"?EIO=4&transport=polling", h)
		if err != nil {
			return nil, err
		}
		s.tr, s.open = pc, open
	default:
		hostport := strings.TrimPrefix(strings.TrimPrefix(spec.URL, "http://"), "ws://")
		hdr := map[string]string{}
		if spec.Cookie != "" {
			hdr["Cookie"] = spec.Cookie
		}
		c, err := DialWS(ctx, spec.Dialer, hostport, spec.Path+"?EIO=4&transport=websocket", hdr)
		if err != nil {
			return nil, err
		}
		s.tr = wsTransport{c}
		if dl, ok := ctx.Deadline(); ok {
			_ = c.SetReadDeadline(dl)
		}
		p, err := s.tr.Next()
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("engine.io open: %w", err)
		}
		if s.open, err = ParseOpen(p); err != nil {
			c.Close()
			return nil, err
		}
	}
	s.connected = time.Since(t0)
	// a cancelled or expired attempt must not wait for the server
	defer context.AfterFunc(ctx, func() { s.tr.Close() })()
	fail := func(err error) (*session, error) {
		s.tr.Close()
		return nil, err
	}
	connect := []byte{EIOMessage, '0'}
	connect = append(connect, spec.Auth...)
	if err := s.tr.Send(connect); err != nil {
		return fail(err)
	}
	var mask uint8
	connected := false
	for mask != 7 {
		p, err := s.tr.Next()
		if err != nil {
			return fail(err)
		}
		switch p[0] {
		case EIOPing:
			if err := s.tr.Send([]byte{EIOPong}); err != nil {
				return fail(err)
			}
		case EIOClose:
			return fail(errors.New("engine.io: closed by server"))
		case EIOMessage:
			if len(p) < 2 {
				return fail(errors.New("socket.io: empty message"))
			}
			switch p[1] - '0' {
			case SIOConnect:
				connected = true
				if err := s.tr.Send(subscribeMessages(spec.Symbols)...); err != nil {
					return fail(err)
				}
			case SIOConnectError:
				return fail(&ConnectError{Payload: string(p[2:])})
			case SIODisconnect:
				return fail(errors.New("socket.io: disconnected by server"))
			case SIOAck:
				pk, err := ParseSIO(p[1:])
				if err != nil {
					return fail(err)
				}
				if pk.ID >= 0 && pk.ID <= 2 {
					if !strings.Contains(string(pk.Data), `"success":true`) {
						return fail(fmt.Errorf("subscription %d refused: %s", pk.ID, truncate(pk.Data, 200)))
					}
					mask |= 1 << pk.ID
				}
			case SIOEvent:
				if name, _, ok := EventName(p[2:]); ok {
					if bit, ok := subscribedBits[string(name)]; ok && connected {
						mask |= bit
						continue
					}
				}
				ev.handle(p)
			}
		}
	}
	s.ready = time.Since(t0)
	return s, nil
}

// eventSink records the latency of benchmark events.
type eventSink struct {
	lat *Histogram
	c   *Counters
	now func() time.Time
}

// handle processes an Engine.IO message packet that carries a Socket.IO EVENT.
func (e *eventSink) handle(p []byte) {
	if len(p) < 3 || p[1] != '0'+SIOEvent {
		return
	}
	name, rest, ok := EventName(p[2:])
	if !ok {
		e.c.Other.Add(1)
		return
	}
	switch string(name) {
	case "quote:update":
		e.c.Quotes.Add(1)
	case "trade:executed":
		e.c.Trades.Add(1)
	case "market:status":
		e.c.Market.Add(1)
	default:
		e.c.Other.Add(1)
		return
	}
	ts, ok := ExtractTS(rest)
	if !ok {
		e.c.NoTS.Add(1)
		return
	}
	e.lat.Record(time.Duration(e.now().UnixNano() - ts))
}

// serve runs the established session until it ends: answers heartbeats and
// records events.
func serve(s *session, ev *eventSink) error {
	pingWindow := time.Duration(s.open.PingInterval+s.open.PingTimeout) * time.Millisecond
	if pingWindow > 0 {
		_ = s.tr.SetReadDeadline(time.Now().Add(pingWindow + 5*time.Second))
	} else {
		_ = s.tr.SetReadDeadline(time.Time{})
	}
	for {
		p, err := s.tr.Next()
		if err != nil {
			return err
		}
		switch p[0] {
		case EIOPing:
			ev.c.Pings.Add(1)
			if pingWindow > 0 {
				_ = s.tr.SetReadDeadline(time.Now().Add(pingWindow + 5*time.Second))
			}
			if err := s.tr.Send([]byte{EIOPong}); err != nil {
				return err
			}
		case EIOClose:
			return errors.New("engine.io: closed by server")
		case EIOMessage:
			if len(p) >= 2 && p[1] == '0'+SIODisconnect {
				return errors.New("socket.io: disconnected by server")
			}
			ev.handle(p)
		}
	}
}
