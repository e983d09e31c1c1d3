package engineio

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/tradewire/tradewire/transport/websocket"
)

// Packet types of Engine.IO v4.
const (
	TypeOpen    byte = '0'
	TypeClose   byte = '1'
	TypePing    byte = '2'
	TypePong    byte = '3'
	TypeMessage byte = '4'
	TypeUpgrade byte = '5'
	TypeNoop    byte = '6'
)

// separator joins packets in a polling payload.
const separator = 0x1e

// ErrParse is wrapped by every packet decoding error.
var ErrParse = errors.New("engine.io: parse error")

// Packet is one Engine.IO packet. A Packet is immutable once created and
// may be sent to many sessions: its websocket frame is encoded once, on
// first use, and shared.
type Packet struct {
	Type   byte
	Binary bool // binary message (Type is TypeMessage)
	Data   []byte
	// Key, when set, is a conflation key: a session that lags keeps only
	// the newest queued packet of each key.
	Key string

	frame atomic.Pointer[[]byte]
}

// NewMessage returns a message packet.
func NewMessage(data []byte, binary bool) *Packet {
	return &Packet{Type: TypeMessage, Binary: binary, Data: data}
}

// WebSocketFrame returns the packet as one websocket frame, encoding it on
// first use.
func (p *Packet) WebSocketFrame() []byte {
	if f := p.frame.Load(); f != nil {
		return *f
	}
	var f []byte
	if p.Binary {
		f = websocket.AppendFrame(make([]byte, 0, websocket.FrameSize(len(p.Data))), websocket.OpBinary, p.Data)
	} else {
		n := len(p.Data) + 1
		f = make([]byte, 0, websocket.FrameSize(n))
		f = append(f, 0x81)
		switch {
		case n <= 125:
			f = append(f, byte(n))
		case n <= 0xFFFF:
			f = append(f, 126, byte(n>>8), byte(n))
		default:
			f = append(f, 127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
		}
		f = append(f, p.Type)
		f = append(f, p.Data...)
	}
	p.frame.Store(&f)
	return f
}

// pollingSize is the encoded size of p in a polling payload.
func (p *Packet) pollingSize() int {
	if p.Binary {
		return 1 + base64.StdEncoding.EncodedLen(len(p.Data))
	}
	return 1 + len(p.Data)
}

// appendPolling appends p in polling form: type + data, or b + base64.
func (p *Packet) appendPolling(dst []byte) []byte {
	if p.Binary {
		dst = append(dst, 'b')
		return base64.StdEncoding.AppendEncode(dst, p.Data)
	}
	dst = append(dst, p.Type)
	return append(dst, p.Data...)
}

// EncodePayload joins packets for a polling response.
func EncodePayload(pkts []*Packet) []byte {
	n := 0
	for _, p := range pkts {
		n += p.pollingSize() + 1
	}
	out := make([]byte, 0, n)
	for i, p := range pkts {
		if i > 0 {
			out = append(out, separator)
		}
		out = p.appendPolling(out)
	}
	return out
}

// DecodePacket parses one text packet (websocket text frame or one polling
// payload entry without the b prefix handling).
func DecodePacket(b []byte) (*Packet, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty packet", ErrParse)
	}
	if b[0] < TypeOpen || b[0] > TypeNoop {
		return nil, fmt.Errorf("%w: unknown packet type %q", ErrParse, b[0])
	}
	return &Packet{Type: b[0], Data: b[1:]}, nil
}

// DecodePayload splits a polling payload into packets.
func DecodePayload(body []byte) ([]*Packet, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: empty payload", ErrParse)
	}
	parts := bytes.Split(body, []byte{separator})
	out := make([]*Packet, 0, len(parts))
	for _, part := range parts {
		if len(part) > 0 && part[0] == 'b' {
			data, err := base64.StdEncoding.DecodeString(string(part[1:]))
			if err != nil {
				return nil, fmt.Errorf("%w: bad base64: %v", ErrParse, err)
			}
			out = append(out, &Packet{Type: TypeMessage, Binary: true, Data: data})
			continue
		}
		p, err := DecodePacket(part)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
