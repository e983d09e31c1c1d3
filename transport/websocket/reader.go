package websocket

import (
	"unicode/utf8"
)

// reader reassembles client messages from stream bytes. It keeps nothing
// while the connection is idle: the state of a frame cut by the end of a
// read, or of a fragmented message, lives in st only while one exists.
type reader struct {
	st  *readState
	max int32 // max message size
}

// readState is a reader's unfinished business.
type readState struct {
	pending []byte // bytes of an incomplete frame
	frag    []byte // payload of a fragmented message so far
	fragOp  byte   // opcode of the fragmented message, 0 when none
}

// emitFunc receives one complete message or control frame. payload is
// freshly allocated and owned by the callee.
type emitFunc func(opcode byte, payload []byte) error

// state returns the reader's unfinished state, creating it.
func (r *reader) state() *readState {
	if r.st == nil {
		r.st = &readState{}
	}
	return r.st
}

// fragmented returns the opcode of the fragmented message in progress, or 0.
func (r *reader) fragmented() byte {
	if r.st == nil {
		return 0
	}
	return r.st.fragOp
}

// feed consumes data (which may be reused by the caller afterwards).
func (r *reader) feed(data []byte, emit emitFunc) error {
	buf := data
	if r.st != nil && len(r.st.pending) > 0 {
		r.st.pending = append(r.st.pending, data...)
		buf = r.st.pending
	}
	consumed, err := r.frames(buf, emit)
	if err != nil {
		r.st = nil
		return err
	}
	rest := buf[consumed:]
	switch {
	case len(rest) == 0:
		if r.st != nil {
			r.st.pending = nil
		}
	case r.st != nil && len(r.st.pending) > 0:
		r.st.pending = append(r.st.pending[:0], rest...)
	default:
		r.state().pending = append([]byte(nil), rest...)
	}
	if r.st != nil && r.st.pending == nil && r.st.fragOp == 0 {
		r.st = nil // between messages: nothing kept
	}
	return nil
}

func (r *reader) frames(buf []byte, emit emitFunc) (int, error) {
	off := 0
	for {
		h, ok, err := parseHeader(buf[off:])
		if err != nil {
			return 0, err
		}
		if !ok {
			return off, nil
		}
		if h.opcode < OpClose && int64(r.fragLen())+h.length > int64(r.max) {
			return 0, &CloseError{CloseTooBig, "message too big"}
		}
		if int64(len(buf)-off-h.size) < h.length {
			return off, nil
		}
		start := off + h.size
		end := start + int(h.length)
		payload := buf[start:end]
		unmask(payload, h.mask, 0)
		off = end
		if err := r.frame(h, payload, emit); err != nil {
			return 0, err
		}
	}
}

func (r *reader) frame(h header, payload []byte, emit emitFunc) error {
	switch h.opcode {
	case OpClose, OpPing, OpPong:
		if h.opcode == OpClose {
			if err := validateClose(payload); err != nil {
				return err
			}
		}
		return emit(h.opcode, append([]byte(nil), payload...))
	case OpContinuation:
		if r.fragmented() == 0 {
			return &CloseError{CloseProtocolError, "continuation without start"}
		}
		r.st.frag = append(r.st.frag, payload...)
		if !h.fin {
			return nil
		}
		op, msg := r.st.fragOp, r.st.frag
		r.st.frag, r.st.fragOp = nil, 0
		return emitData(op, msg, emit)
	default: // text or binary
		if r.fragmented() != 0 {
			return &CloseError{CloseProtocolError, "new message inside a fragmented one"}
		}
		if !h.fin {
			st := r.state()
			st.fragOp = h.opcode
			st.frag = append([]byte(nil), payload...)
			return nil
		}
		return emitData(h.opcode, append([]byte(nil), payload...), emit)
	}
}

// fragLen is the size of the fragmented message so far.
func (r *reader) fragLen() int {
	if r.st == nil {
		return 0
	}
	return len(r.st.frag)
}

func emitData(op byte, msg []byte, emit emitFunc) error {
	if op == OpText && !utf8.Valid(msg) {
		return &CloseError{CloseInvalidPayload, "invalid UTF-8 in text message"}
	}
	return emit(op, msg)
}

func validateClose(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if len(p) == 1 {
		return &CloseError{CloseProtocolError, "bad close payload"}
	}
	code := int(p[0])<<8 | int(p[1])
	switch {
	case code < 1000, code >= 1004 && code <= 1006, code >= 1015 && code < 3000, code >= 5000:
		return &CloseError{CloseProtocolError, "bad close code"}
	}
	if !utf8.Valid(p[2:]) {
		return &CloseError{CloseInvalidPayload, "invalid UTF-8 in close reason"}
	}
	return nil
}
