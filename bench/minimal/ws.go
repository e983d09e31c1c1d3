package main

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/url"
	"strings"
)

// requestHead is what the server needs from an HTTP/1.1 request head.
type requestHead struct {
	Method, Path, Query string
	Upgrade             string // Upgrade header
	ConnUpgrade         bool   // Connection header lists "upgrade"
	Key, Version        string // Sec-WebSocket-Key / -Version
	Cookie              string
}

const maxHead = 8 << 10

var errBadRequest = errors.New("malformed HTTP request")

// headEnd returns the length of the request head including its final CRLF
// CRLF, or -1 when b does not hold a complete head yet.
func headEnd(b []byte) int {
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		return i + 4
	}
	return -1
}

// parseHead parses a complete request head (request line and headers, each
// ending in CRLF, then an empty line).
func parseHead(b []byte) (requestHead, error) {
	var h requestHead
	lines := strings.Split(strings.TrimSuffix(string(b), "\r\n\r\n"), "\r\n")
	parts := strings.Split(lines[0], " ")
	if len(parts) != 3 || parts[0] == "" || !strings.HasPrefix(parts[1], "/") ||
		(parts[2] != "HTTP/1.1" && parts[2] != "HTTP/1.0") {
		return h, errBadRequest
	}
	h.Method = parts[0]
	h.Path, h.Query, _ = strings.Cut(parts[1], "?")
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return h, errBadRequest
		}
		v = strings.TrimSpace(v)
		switch strings.ToLower(k) {
		case "upgrade":
			h.Upgrade = v
		case "connection":
			for _, t := range strings.Split(v, ",") {
				h.ConnUpgrade = h.ConnUpgrade || strings.EqualFold(strings.TrimSpace(t), "upgrade")
			}
		case "sec-websocket-key":
			h.Key = v
		case "sec-websocket-version":
			h.Version = v
		case "cookie":
			if h.Cookie != "" {
				h.Cookie += "; "
			}
			h.Cookie += v
		}
	}
	return h, nil
}

// checkUpgrade reports why h is not an Engine.IO v4 websocket upgrade ("" when it is).
func checkUpgrade(h requestHead) (code, msg string) {
	q, err := url.ParseQuery(h.Query)
	switch {
	case h.Path != "/socket.io/":
		return "NOT_FOUND", "only /socket.io/ is served"
	case err != nil || q.Get("EIO") != "4":
		return "UNSUPPORTED_PROTOCOL_VERSION", "EIO=4 only"
	case q.Get("transport") != "websocket" || q.Get("sid") != "":
		return "UNKNOWN_TRANSPORT", "websocket without a prior polling session only"
	case h.Method != "GET" || !strings.EqualFold(h.Upgrade, "websocket") || !h.ConnUpgrade:
		return "BAD_HANDSHAKE", "not a websocket upgrade"
	case h.Version != "13":
		return "BAD_HANDSHAKE", "Sec-WebSocket-Version must be 13"
	}
	if k, err := base64.StdEncoding.DecodeString(h.Key); err != nil || len(k) != 16 {
		return "BAD_HANDSHAKE", "bad Sec-WebSocket-Key"
	}
	return "", ""
}

// cookieSession returns the session id of a connect.sid cookie
// (s:<sid>.<signature>, URL-encoded); the signature is not checked.
func cookieSession(header string) string {
	for _, part := range strings.Split(header, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || k != "connect.sid" {
			continue
		}
		v, err := url.PathUnescape(v)
		if err != nil || !strings.HasPrefix(v, "s:") {
			return ""
		}
		v = v[2:]
		if i := strings.LastIndexByte(v, '.'); i > 0 {
			return v[:i]
		}
		return ""
	}
	return ""
}

// acceptKey is Sec-WebSocket-Accept for key (RFC 6455 §4.2.2).
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// WebSocket opcodes.
const (
	opCont  = 0x0
	opText  = 0x1
	opBin   = 0x2
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

const maxPayload = 1 << 20

// frameError is a protocol violation with its RFC 6455 close code.
type frameError struct {
	code uint16
	msg  string
}

func (e *frameError) Error() string { return e.msg }

// parseFrame decodes one client frame at the start of b, unmasking its
// payload in place. n is 0 when b does not hold a whole frame yet.
func parseFrame(b []byte) (op byte, payload []byte, n int, err error) {
	if len(b) < 2 {
		return 0, nil, 0, nil
	}
	fin, rsv, op := b[0]&0x80 != 0, b[0]&0x70, b[0]&0x0f
	masked, l, i := b[1]&0x80 != 0, uint64(b[1]&0x7f), 2
	switch {
	case rsv != 0:
		return 0, nil, 0, &frameError{1002, "reserved bits set"}
	case !masked:
		return 0, nil, 0, &frameError{1002, "client frame not masked"}
	case op >= opClose && (!fin || l > 125):
		return 0, nil, 0, &frameError{1002, "bad control frame"}
	case op == opCont || (op < opClose && !fin):
		return 0, nil, 0, &frameError{1003, "fragmented messages are not supported"}
	case op != opText && op != opBin && op < opClose || op > opPong:
		return 0, nil, 0, &frameError{1002, "unknown opcode"}
	}
	switch l {
	case 126:
		if len(b) < 4 {
			return 0, nil, 0, nil
		}
		l, i = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return 0, nil, 0, nil
		}
		l, i = binary.BigEndian.Uint64(b[2:]), 10
	}
	if l > maxPayload {
		return 0, nil, 0, &frameError{1009, "message too big"}
	}
	if uint64(len(b)) < uint64(i)+4+l {
		return 0, nil, 0, nil
	}
	mask := b[i : i+4]
	payload = b[i+4 : i+4+int(l)]
	for j := range payload {
		payload[j] ^= mask[j&3]
	}
	return op, payload, i + 4 + int(l), nil
}

// frame returns a server frame (unmasked, final) carrying the parts.
func frame(op byte, parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n+10)
	b = append(b, 0x80|op)
	switch {
	case n < 126:
		b = append(b, byte(n))
	case n < 1<<16:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// closeFrame returns a close frame with a status code.
func closeFrame(code uint16, reason string) []byte {
	return frame(opClose, string([]byte{byte(code >> 8), byte(code)}), reason)
}
