// Package websocket is tradewire's RFC 6455 server transport: the opening
// handshake, the frame codec and a connection layer built for many idle
// connections and heavy fan-out.
//
// On Linux, connections are read by a few epoll loops instead of a goroutine
// each, so an idle connection holds no goroutine stack and no read buffer;
// writes are queued as pre-encoded frames and flushed with one writev per
// connection per flush, so a broadcast frame encoded once is shared by every
// recipient. The package knows nothing about Engine.IO.
package websocket

import (
	"encoding/binary"
	"errors"
)

// Opcodes of RFC 6455.
const (
	OpContinuation = 0x0
	OpText         = 0x1
	OpBinary       = 0x2
	OpClose        = 0x8
	OpPing         = 0x9
	OpPong         = 0xA
)

// Close codes used by the server.
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001
	CloseProtocolError   = 1002
	CloseUnsupportedData = 1003
	CloseNoStatus        = 1005
	CloseInvalidPayload  = 1007
	ClosePolicyViolation = 1008
	CloseTooBig          = 1009
	CloseInternalError   = 1011
)

// ErrProtocol is wrapped by frame decoding errors; the close code to send is
// carried by *CloseError.
var ErrProtocol = errors.New("websocket: protocol error")

// CloseError is a connection-fatal error with the close code to report.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string { return "websocket: " + e.Reason }

// Unwrap lets errors.Is(err, ErrProtocol) match.
func (e *CloseError) Unwrap() error { return ErrProtocol }

// AppendFrame appends one unmasked, final server frame to dst.
func AppendFrame(dst []byte, opcode byte, payload []byte) []byte {
	n := len(payload)
	dst = append(dst, 0x80|opcode)
	switch {
	case n <= 125:
		dst = append(dst, byte(n))
	case n <= 0xFFFF:
		dst = append(dst, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return append(dst, payload...)
}

// FrameSize is the encoded size of a server frame with n payload bytes.
func FrameSize(n int) int {
	switch {
	case n <= 125:
		return 2 + n
	case n <= 0xFFFF:
		return 4 + n
	}
	return 10 + n
}

// header is a parsed client frame header.
type header struct {
	fin    bool
	opcode byte
	masked bool
	mask   [4]byte
	length int64
	size   int // header bytes
}

// parseHeader parses a frame header from b. ok is false when b is too short.
func parseHeader(b []byte) (h header, ok bool, err error) {
	if len(b) < 2 {
		return h, false, nil
	}
	if b[0]&0x70 != 0 {
		return h, false, &CloseError{CloseProtocolError, "reserved bits set"}
	}
	h.fin = b[0]&0x80 != 0
	h.opcode = b[0] & 0x0F
	h.masked = b[1]&0x80 != 0
	l := int64(b[1] & 0x7F)
	h.size = 2
	switch l {
	case 126:
		if len(b) < 4 {
			return h, false, nil
		}
		l = int64(binary.BigEndian.Uint16(b[2:4]))
		if l < 126 {
			return h, false, &CloseError{CloseProtocolError, "non-minimal length"}
		}
		h.size = 4
	case 127:
		if len(b) < 10 {
			return h, false, nil
		}
		u := binary.BigEndian.Uint64(b[2:10])
		if u>>63 != 0 {
			return h, false, &CloseError{CloseProtocolError, "length overflow"}
		}
		if u <= 0xFFFF {
			return h, false, &CloseError{CloseProtocolError, "non-minimal length"}
		}
		l = int64(u)
		h.size = 10
	}
	h.length = l
	if h.masked {
		if len(b) < h.size+4 {
			return h, false, nil
		}
		copy(h.mask[:], b[h.size:h.size+4])
		h.size += 4
	}
	switch h.opcode {
	case OpContinuation, OpText, OpBinary:
	case OpClose, OpPing, OpPong:
		if !h.fin || h.length > 125 {
			return h, false, &CloseError{CloseProtocolError, "bad control frame"}
		}
	default:
		return h, false, &CloseError{CloseProtocolError, "unknown opcode"}
	}
	if !h.masked {
		return h, false, &CloseError{CloseProtocolError, "client frame not masked"}
	}
	return h, true, nil
}

// unmask XORs b with the mask starting at position pos of the payload.
func unmask(b []byte, mask [4]byte, pos int) {
	m := uint64(binary.LittleEndian.Uint32(mask[:]))
	// rotate the mask to start at pos
	shift := uint(pos&3) * 8
	m = (m >> shift) | (m << (32 - shift))
	m &= 0xFFFFFFFF
	m |= m << 32
	i := 0
	for ; i+8 <= len(b); i += 8 {
		v := binary.LittleEndian.Uint64(b[i:])
		binary.LittleEndian.PutUint64(b[i:], v^m)
	}
	for ; i < len(b); i++ {
		b[i] ^= mask[(pos+i)&3]
	}
}
