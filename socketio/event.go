package socketio

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tradewire/tradewire/parser"
)

// ErrNoAck is returned by Event.Ack when the client asked for no ack or the
// ack was already sent.
var ErrNoAck = errors.New("socket.io: no ack expected")

// Event is one event received from a client.
type Event struct {
	Name string
	// Args are the event arguments as raw JSON (binary placeholders intact).
	Args []json.RawMessage
	// Attachments are the binary parts referenced by placeholders in Args.
	Attachments [][]byte

	ack func(data []byte, attachments [][]byte) error
}

// Decode unmarshals argument i into v. A missing argument is an error.
func (e *Event) Decode(i int, v any) error {
	if i < 0 || i >= len(e.Args) {
		return fmt.Errorf("socket.io: event %q has no argument %d", e.Name, i)
	}
	if err := json.Unmarshal(e.Args[i], v); err != nil {
		return fmt.Errorf("socket.io: event %q argument %d: %w", e.Name, i, err)
	}
	return nil
}

// Values returns the arguments as generic values, with binary attachments
// as []byte.
func (e *Event) Values() ([]any, error) {
	out := make([]any, len(e.Args))
	for i, a := range e.Args {
		v, err := parser.Unpack(a, e.Attachments)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// RawArgs returns the arguments ready to be emitted again unchanged
// (binary included, JSON byte for byte) with Socket.EmitRaw.
func (e *Event) RawArgs() ([]json.RawMessage, [][]byte) { return e.Args, e.Attachments }

// HasAck reports whether the client expects an acknowledgement.
func (e *Event) HasAck() bool { return e.ack != nil }

// Ack acknowledges the event with args (at most once).
func (e *Event) Ack(args ...any) error {
	if e.ack == nil {
		return ErrNoAck
	}
	var enc parser.Encoder
	if err := enc.AppendArray(args...); err != nil {
		return fmt.Errorf("socket.io: encode ack: %w", err)
	}
	f := e.ack
	e.ack = nil
	return f(enc.Buf, enc.Attachments)
}

// AckRaw acknowledges the event with raw JSON arguments and attachments
// (e.g. an event's own RawArgs, echoed unchanged).
func (e *Event) AckRaw(args []json.RawMessage, attachments [][]byte) error {
	if e.ack == nil {
		return ErrNoAck
	}
	buf := []byte{'['}
	for i, a := range args {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, a...)
	}
	buf = append(buf, ']')
	f := e.ack
	e.ack = nil
	return f(buf, attachments)
}

// ConnectError refuses a connection from a middleware: the client gets
// connect_error with Message and Data.
type ConnectError struct {
	Message string
	Data    any
}

func (e *ConnectError) Error() string { return e.Message }

func encodeConnectError(err error) json.RawMessage {
	var ce *ConnectError
	if !errors.As(err, &ce) {
		ce = &ConnectError{Message: err.Error()}
	}
	var enc parser.Encoder
	enc.Buf = append(enc.Buf, `{"message":`...)
	enc.Buf = parser.AppendString(enc.Buf, ce.Message)
	if ce.Data != nil {
		enc.Buf = append(enc.Buf, `,"data":`...)
		if e := enc.AppendValue(ce.Data); e != nil {
			enc.Buf = append(enc.Buf, "null"...)
		}
	}
	enc.Buf = append(enc.Buf, '}')
	return enc.Buf
}

// buildEvent encodes an EVENT packet for nsp.
func buildEvent(nsp, event string, args []any) (*parser.Packet, error) {
	var enc parser.Encoder
	enc.Buf = make([]byte, 0, 64)
	enc.Buf = append(enc.Buf, '[')
	enc.Buf = parser.AppendString(enc.Buf, event)
	for _, a := range args {
		enc.Buf = append(enc.Buf, ',')
		if err := enc.AppendValue(a); err != nil {
			return nil, fmt.Errorf("socket.io: encode %q: %w", event, err)
		}
	}
	enc.Buf = append(enc.Buf, ']')
	return &parser.Packet{Type: parser.Event, Nsp: nsp, Data: enc.Buf, Attachments: enc.Attachments}, nil
}

// buildRawEvent encodes an EVENT from raw JSON arguments and attachments.
func buildRawEvent(nsp, event string, args []json.RawMessage, attachments [][]byte) *parser.Packet {
	buf := make([]byte, 0, 64)
	buf = append(buf, '[')
	buf = parser.AppendString(buf, event)
	for _, a := range args {
		buf = append(buf, ',')
		buf = append(buf, a...)
	}
	buf = append(buf, ']')
	return &parser.Packet{Type: parser.Event, Nsp: nsp, Data: buf, Attachments: attachments}
}

// unpackArgs turns an ACK's raw array into generic values.
func unpackArgs(p *parser.Packet) ([]any, error) {
	v, err := parser.Unpack(p.Data, p.Attachments)
	if err != nil {
		return nil, err
	}
	arr, _ := v.([]any)
	return arr, nil
}
