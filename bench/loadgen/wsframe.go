package loadgen

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
)

// WebSocket opcodes (RFC 6455 §5.2).
const (
	OpContinuation = 0x0
	OpText         = 0x1
	OpBinary       = 0x2
	OpClose        = 0x8
	OpPing         = 0x9
	OpPong         = 0xA
)

const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// AcceptKey computes Sec-WebSocket-Accept for a Sec-WebSocket-Key.
func AcceptKey(key string) string {
	h := sha1.Sum([]byte(key + websocketGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// Frame is one decoded WebSocket frame. Payload aliases the parsed buffer and
// is already unmasked.
type Frame struct {
	Fin     bool
	Op      byte
	Masked  bool
	Mask    [4]byte
	Payload []byte
}

// ErrFrameTooLarge is returned for frames above the reader's limit.
var ErrFrameTooLarge = errors.New("websocket: frame too large")

// AppendFrame appends one frame. When masked is true the payload is masked
// with mask while being copied (clients must mask, RFC 6455 §5.3).
func AppendFrame(dst []byte, op byte, fin bool, masked bool, mask [4]byte, payload []byte) []byte {
	b0 := op & 0x0f
	if fin {
		b0 |= 0x80
	}
	var mbit byte
	if masked {
		mbit = 0x80
	}
	n := len(payload)
	switch {
	case n < 126:
		dst = append(dst, b0, mbit|byte(n))
	case n <= 0xffff:
		dst = append(dst, b0, mbit|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, b0, mbit|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	if !masked {
		return append(dst, payload...)
	}
	dst = append(dst, mask[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	maskBytes(dst[start:], mask)
	return dst
}

func maskBytes(b []byte, mask [4]byte) {
	for i := range b {
		b[i] ^= mask[i&3]
	}
}

// ParseFrame decodes the frame at the start of b. It returns n == 0 and no
// error when b does not yet hold a whole frame. Masked payloads are unmasked
// in place.
func ParseFrame(b []byte, maxPayload int) (f Frame, n int, err error) {
	if len(b) < 2 {
		return f, 0, nil
	}
	f.Fin = b[0]&0x80 != 0
	if b[0]&0x70 != 0 {
		return f, 0, errors.New("websocket: reserved bits set (no extension negotiated)")
	}
	f.Op = b[0] & 0x0f
	switch f.Op {
	case OpContinuation, OpText, OpBinary:
	case OpClose, OpPing, OpPong:
		if !f.Fin {
			return f, 0, errors.New("websocket: fragmented control frame")
		}
	default:
		return f, 0, fmt.Errorf("websocket: unknown opcode %#x", f.Op)
	}
	f.Masked = b[1]&0x80 != 0
	plen := uint64(b[1] & 0x7f)
	i := 2
	switch plen {
	case 126:
		if len(b) < 4 {
			return f, 0, nil
		}
		plen = uint64(binary.BigEndian.Uint16(b[2:4]))
		i = 4
	case 127:
		if len(b) < 10 {
			return f, 0, nil
		}
		plen = binary.BigEndian.Uint64(b[2:10])
		i = 10
	}
	if f.Op >= OpClose && plen > 125 {
		return f, 0, errors.New("websocket: control frame payload over 125 bytes")
	}
	if plen > uint64(maxPayload) {
		return f, 0, ErrFrameTooLarge
	}
	if f.Masked {
		if len(b) < i+4 {
			return f, 0, nil
		}
		copy(f.Mask[:], b[i:i+4])
		i += 4
	}
	end := i + int(plen)
	if len(b) < end {
		return f, 0, nil
	}
	f.Payload = b[i:end]
	if f.Masked {
		maskBytes(f.Payload, f.Mask)
	}
	return f, end, nil
}

// FrameHeaderLen returns the header size needed for a payload of n bytes.
func FrameHeaderLen(n int, masked bool) int {
	h := 2
	switch {
	case n >= 1<<16:
		h = 10
	case n >= 126:
		h = 4
	}
	if masked {
		h += 4
	}
	return h
}
