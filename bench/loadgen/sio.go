package loadgen

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Socket.IO protocol 5 packet types.
const (
	SIOConnect      = 0
	SIODisconnect   = 1
	SIOEvent        = 2
	SIOAck          = 3
	SIOConnectError = 4
	SIOBinaryEvent  = 5
	SIOBinaryAck    = 6
)

// SIOPacket is a decoded Socket.IO packet (text part only).
type SIOPacket struct {
	Type        int
	Attachments int    // only for binary types
	NSP         string // "/" when absent on the wire
	ID          int64  // ack id, -1 when absent
	Data        []byte // raw JSON, nil when absent
}

// AppendSIO appends the wire form of p: <type>[<attachments>-][<nsp>,][<id>][<json>].
func AppendSIO(dst []byte, p SIOPacket) []byte {
	dst = append(dst, byte('0'+p.Type))
	if p.Type == SIOBinaryEvent || p.Type == SIOBinaryAck {
		dst = strconv.AppendInt(dst, int64(p.Attachments), 10)
		dst = append(dst, '-')
	}
	if p.NSP != "" && p.NSP != "/" {
		dst = append(dst, p.NSP...)
		dst = append(dst, ',')
	}
	if p.ID >= 0 {
		dst = strconv.AppendInt(dst, p.ID, 10)
	}
	return append(dst, p.Data...)
}

// ParseSIO decodes the text form of a Socket.IO packet (without the Engine.IO
// '4' prefix) and validates its payload the way socket.io-parser does.
func ParseSIO(b []byte) (SIOPacket, error) {
	p := SIOPacket{NSP: "/", ID: -1}
	if len(b) == 0 {
		return p, errors.New("socket.io: empty packet")
	}
	if b[0] < '0' || b[0] > '6' {
		return p, fmt.Errorf("socket.io: unknown packet type %q", b[0])
	}
	p.Type = int(b[0] - '0')
	i := 1
	if p.Type == SIOBinaryEvent || p.Type == SIOBinaryAck {
		j := i
		for j < len(b) && b[j] != '-' {
			if b[j] < '0' || b[j] > '9' {
				return p, errors.New("socket.io: illegal attachments")
			}
			j++
		}
		if j == len(b) || j == i {
			return p, errors.New("socket.io: illegal attachments")
		}
		n, _ := strconv.Atoi(string(b[i:j]))
		if n > 10 {
			return p, errors.New("socket.io: too many attachments")
		}
		p.Attachments = n
		i = j + 1
	}
	if i < len(b) && b[i] == '/' {
		j := i
		for j < len(b) && b[j] != ',' {
			j++
		}
		p.NSP = string(b[i:j])
		if j < len(b) {
			j++
		}
		i = j
	}
	j := i
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	if j > i {
		id, err := strconv.ParseInt(string(b[i:j]), 10, 64)
		if err != nil {
			return p, fmt.Errorf("socket.io: ack id: %w", err)
		}
		p.ID = id
		i = j
	}
	if i < len(b) {
		p.Data = b[i:]
	}
	return p, validateSIO(p)
}

var reservedEvents = map[string]bool{
	"connect": true, "connect_error": true, "disconnect": true,
	"disconnecting": true, "newListener": true, "removeListener": true,
}

func validateSIO(p SIOPacket) error {
	var v any
	if p.Data != nil {
		if err := json.Unmarshal(p.Data, &v); err != nil {
			return fmt.Errorf("socket.io: invalid payload: %w", err)
		}
	}
	switch p.Type {
	case SIOConnect:
		if p.Data != nil {
			if _, ok := v.(map[string]any); !ok {
				return errors.New("socket.io: invalid CONNECT payload")
			}
		}
	case SIODisconnect:
		if p.Data != nil {
			return errors.New("socket.io: invalid DISCONNECT payload")
		}
	case SIOEvent, SIOBinaryEvent:
		a, ok := v.([]any)
		if !ok || len(a) == 0 {
			return errors.New("socket.io: invalid EVENT payload")
		}
		switch name := a[0].(type) {
		case float64:
		case string:
			if reservedEvents[name] {
				return fmt.Errorf("socket.io: reserved event name %q", name)
			}
		default:
			return errors.New("socket.io: invalid event name")
		}
	case SIOAck, SIOBinaryAck:
		if _, ok := v.([]any); !ok {
			return errors.New("socket.io: invalid ACK payload")
		}
	case SIOConnectError:
		switch v.(type) {
		case map[string]any, string:
		default:
			return errors.New("socket.io: invalid CONNECT_ERROR payload")
		}
	}
	return nil
}

// AppendEventMessage appends an Engine.IO message carrying a Socket.IO EVENT
// on the main namespace: 42[<id>]["<event>"(,<arg JSON>)*]. event must not
// need JSON escaping; args are raw JSON values.
func AppendEventMessage(dst []byte, ackID int64, event string, args ...[]byte) []byte {
	dst = append(dst, EIOMessage, '0'+SIOEvent)
	if ackID >= 0 {
		dst = strconv.AppendInt(dst, ackID, 10)
	}
	dst = append(dst, '[', '"')
	dst = append(dst, event...)
	dst = append(dst, '"')
	for _, a := range args {
		dst = append(dst, ',')
		dst = append(dst, a...)
	}
	return append(dst, ']')
}

// EventName returns the event name of an EVENT payload (a JSON array whose
// first element is a string) and the bytes after it, without decoding the
// rest. ok is false when the payload does not start with a plain string.
func EventName(data []byte) (name []byte, rest []byte, ok bool) {
	if len(data) < 3 || data[0] != '[' || data[1] != '"' {
		return nil, nil, false
	}
	for i := 2; i < len(data); i++ {
		switch data[i] {
		case '\\':
			return nil, nil, false // escaped names are not used by the product
		case '"':
			return data[2:i], data[i+1:], true
		}
	}
	return nil, nil, false
}

// ExtractTS finds the first "ts":<integer> field in a JSON text and returns the
// integer (unix nanoseconds in the benchmark payloads).
func ExtractTS(data []byte) (int64, bool) {
	const key = `"ts":`
	for i := 0; i+len(key) < len(data); i++ {
		if data[i] != '"' || string(data[i:i+len(key)]) != key {
			continue
		}
		j := i + len(key)
		for j < len(data) && data[j] == ' ' {
			j++
		}
		start := j
		for j < len(data) && data[j] >= '0' && data[j] <= '9' {
			j++
		}
		if j == start {
			return 0, false
		}
		v, err := strconv.ParseInt(string(data[start:j]), 10, 64)
		if err != nil {
			return 0, false
		}
		return v, true
	}
	return 0, false
}
