// Package parser encodes and decodes Socket.IO protocol 5 packets.
//
// A packet travels as one text Engine.IO message, followed by one binary
// Engine.IO message per attachment for BINARY_EVENT and BINARY_ACK:
//
//	<type>[<attachments>-][<nsp>,][<ackId>][<JSON>]
//
// Payloads are kept as raw JSON (with binary placeholders intact) so that a
// broadcast is encoded once and forwarded without re-marshalling.
package parser

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Type is a Socket.IO packet type.
type Type byte

// Packet types of protocol 5.
const (
	Connect Type = iota
	Disconnect
	Event
	Ack
	ConnectError
	BinaryEvent
	BinaryAck
)

var typeNames = [...]string{"CONNECT", "DISCONNECT", "EVENT", "ACK", "CONNECT_ERROR", "BINARY_EVENT", "BINARY_ACK"}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "UNKNOWN(" + strconv.Itoa(int(t)) + ")"
}

// DefaultMaxAttachments bounds the attachments one packet may announce.
const DefaultMaxAttachments = 10

// ErrInvalidPacket is wrapped by every decoding error.
var ErrInvalidPacket = errors.New("socket.io: invalid packet")

// Packet is one Socket.IO packet.
type Packet struct {
	Type Type
	// Nsp is the namespace, "/" when absent on the wire.
	Nsp string
	// ID is the ack id; valid only when HasID is true.
	ID    uint64
	HasID bool
	// Data is the JSON payload exactly as on the wire (placeholders intact),
	// nil when the packet has none.
	Data json.RawMessage
	// Attachments are the binary parts referenced by placeholders in Data.
	Attachments [][]byte
}

// AppendText appends the text part of p to dst. For packets with
// attachments the type is switched to its binary variant and the count is
// written, as the reference encoder does.
func (p *Packet) AppendText(dst []byte) []byte {
	t := p.Type
	if len(p.Attachments) > 0 {
		switch t {
		case Event:
			t = BinaryEvent
		case Ack:
			t = BinaryAck
		}
	}
	dst = append(dst, byte('0'+t))
	if t == BinaryEvent || t == BinaryAck {
		dst = strconv.AppendInt(dst, int64(len(p.Attachments)), 10)
		dst = append(dst, '-')
	}
	if p.Nsp != "" && p.Nsp != "/" {
		dst = append(dst, p.Nsp...)
		dst = append(dst, ',')
	}
	if p.HasID {
		dst = strconv.AppendUint(dst, p.ID, 10)
	}
	return append(dst, p.Data...)
}

// reserved event names a client may not emit.
func reserved(name string) bool {
	switch name {
	case "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener":
		return true
	}
	return false
}

// Decoder reassembles packets from Engine.IO messages. It is not safe for
// concurrent use; use one per connection.
type Decoder struct {
	// MaxAttachments bounds announced attachments (DefaultMaxAttachments when 0).
	MaxAttachments int32
	want           int32 // attachments the pending packet announced
	pending        *Packet
}

// Waiting reports whether the decoder holds a binary packet awaiting attachments.
func (d *Decoder) Waiting() bool { return d.pending != nil }

// Reset drops any partially received packet.
func (d *Decoder) Reset() { d.pending, d.want = nil, 0 }

// DecodeText parses a text message. It returns the packet when complete, or
// nil when attachments are still expected.
func (d *Decoder) DecodeText(msg []byte) (*Packet, error) {
	if d.pending != nil {
		want := d.want
		d.Reset()
		return nil, fmt.Errorf("%w: text message while waiting for %d attachments", ErrInvalidPacket, want)
	}
	maxAtt := int(d.MaxAttachments)
	if maxAtt <= 0 {
		maxAtt = DefaultMaxAttachments
	}
	p, n, err := decodeText(msg, maxAtt)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		p.Attachments = make([][]byte, 0, n)
		d.pending, d.want = p, int32(n)
		return nil, nil
	}
	return p, nil
}

// DecodeBinary adds an attachment to the pending packet and returns the
// packet once all its attachments arrived.
func (d *Decoder) DecodeBinary(b []byte) (*Packet, error) {
	if d.pending == nil {
		return nil, fmt.Errorf("%w: unexpected binary message", ErrInvalidPacket)
	}
	p := d.pending
	p.Attachments = append(p.Attachments, b)
	if len(p.Attachments) < int(d.want) {
		return nil, nil
	}
	d.Reset()
	if err := checkPlaceholders(p.Data, len(p.Attachments)); err != nil {
		return nil, err
	}
	return p, nil
}

// Decode parses a complete packet whose text part has no attachments. It is
// a convenience for tests and for transports that carry no binary.
func Decode(msg []byte) (*Packet, error) {
	p, n, err := decodeText(msg, DefaultMaxAttachments)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		return nil, fmt.Errorf("%w: packet announces %d attachments", ErrInvalidPacket, n)
	}
	return p, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidPacket}, args...)...)
}

func decodeText(msg []byte, maxAtt int) (*Packet, int, error) {
	if len(msg) == 0 {
		return nil, 0, invalid("empty")
	}
	c := msg[0]
	if c < '0' || c > '6' {
		return nil, 0, invalid("unknown type %q", c)
	}
	p := &Packet{Type: Type(c - '0'), Nsp: "/"}
	i := 1
	attachments := 0
	if p.Type == BinaryEvent || p.Type == BinaryAck {
		start := i
		for i < len(msg) && msg[i] >= '0' && msg[i] <= '9' {
			i++
		}
		if i == start || i >= len(msg) || msg[i] != '-' || i-start > 4 {
			return nil, 0, invalid("bad attachment count")
		}
		n, _ := strconv.Atoi(string(msg[start:i]))
		if n < 1 || n > maxAtt {
			return nil, 0, invalid("attachment count %d out of range", n)
		}
		attachments = n
		i++
	}
	if i < len(msg) && msg[i] == '/' {
		start := i
		for i < len(msg) && msg[i] != ',' {
			i++
		}
		p.Nsp = string(msg[start:i])
		if i < len(msg) {
			i++ // skip ','
		}
	}
	if i < len(msg) && msg[i] >= '0' && msg[i] <= '9' {
		start := i
		for i < len(msg) && msg[i] >= '0' && msg[i] <= '9' {
			i++
		}
		id, err := strconv.ParseUint(string(msg[start:i]), 10, 64)
		if err != nil {
			return nil, 0, invalid("bad ack id")
		}
		p.ID, p.HasID = id, true
	}
	if i < len(msg) {
		p.Data = json.RawMessage(msg[i:])
		if !json.Valid(p.Data) {
			return nil, 0, invalid("payload is not valid JSON")
		}
	}
	if err := validate(p); err != nil {
		return nil, 0, err
	}
	if attachments == 0 && (p.Type == BinaryEvent || p.Type == BinaryAck) {
		return nil, 0, invalid("binary packet without attachments")
	}
	return p, attachments, nil
}

func validate(p *Packet) error {
	first := firstNonSpace(p.Data)
	switch p.Type {
	case Connect:
		if p.Data != nil && first != '{' {
			return invalid("CONNECT payload must be an object")
		}
		if p.HasID {
			return invalid("CONNECT with ack id")
		}
	case Disconnect:
		if p.Data != nil || p.HasID {
			return invalid("DISCONNECT carries no payload")
		}
	case Event, BinaryEvent:
		if first != '[' {
			return invalid("EVENT payload must be an array")
		}
		name, isNum, err := firstElement(p.Data)
		if err != nil {
			return err
		}
		if !isNum && reserved(name) {
			return invalid("reserved event name %q", name)
		}
	case Ack, BinaryAck:
		if first != '[' || !p.HasID {
			return invalid("ACK needs an id and an array payload")
		}
	case ConnectError:
		if first != '{' && first != '"' {
			return invalid("CONNECT_ERROR payload must be an object")
		}
	}
	return nil
}

func firstNonSpace(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c
	}
	return 0
}

// firstElement returns the first element of a JSON array when it is a string
// (decoded) or reports isNum when it is a number. Anything else is invalid.
func firstElement(data []byte) (name string, isNum bool, err error) {
	els, err := SplitArray(data)
	if err != nil {
		return "", false, err
	}
	if len(els) == 0 {
		return "", false, invalid("empty EVENT array")
	}
	e := els[0]
	switch {
	case e[0] == '"':
		if err := json.Unmarshal(e, &name); err != nil {
			return "", false, invalid("bad event name")
		}
		return name, false, nil
	case e[0] == '-' || (e[0] >= '0' && e[0] <= '9'):
		return "", true, nil
	}
	return "", false, invalid("event name must be a string or a number")
}

// EventName returns the event name of an EVENT packet's data (first element).
func EventName(data []byte) string {
	name, _, _ := firstElement(data)
	return name
}
