package engineio

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Error codes of the Engine.IO HTTP error table.
const (
	CodeUnknownTransport   = 0
	CodeUnknownSID         = 1
	CodeBadHandshakeMethod = 2
	CodeBadRequest         = 3
	CodeForbidden          = 4
	CodeUnsupportedVersion = 5
)

var codeMessages = map[int]string{
	CodeUnknownTransport:   "Transport unknown",
	CodeUnknownSID:         "Session ID unknown",
	CodeBadHandshakeMethod: "Bad handshake method",
	CodeBadRequest:         "Bad request",
	CodeForbidden:          "Forbidden",
	CodeUnsupportedVersion: "Unsupported protocol version",
}

// RequestError refuses a request before a session exists (AllowRequest).
type RequestError struct {
	Status  int // HTTP status; 403 when 0
	Code    int // Engine.IO error code; CodeForbidden when Status is 403
	Message string
	Header  http.Header // extra response headers (e.g. Retry-After)
}

func (e *RequestError) Error() string { return e.Message }

func writeError(w http.ResponseWriter, status, code int, msg string) {
	if msg == "" {
		msg = codeMessages[code]
	}
	m, _ := json.Marshal(msg)
	body := []byte(`{"code":` + strconv.Itoa(code) + `,"message":` + string(m) + `}`)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeCodeError(w http.ResponseWriter, code int) {
	status := http.StatusBadRequest
	if code == CodeForbidden {
		status = http.StatusForbidden
	}
	writeError(w, status, code, "")
}
