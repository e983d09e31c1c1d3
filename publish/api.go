// Package publish is how backend services reach connected clients: an HTTP
// API authenticated with API keys (this file) and a Go client for it
// (client.go).
package publish

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/tradewire/tradewire/trading"
)

// MaxBodyBytes bounds a publish request body.
const MaxBodyBytes = 1 << 20

// MaxBatch bounds the events of one batch request.
const MaxBatch = 1000

// EmitRequest is a raw emit: event and data to rooms (all sockets when
// rooms is empty), minus sockets in except.
type EmitRequest struct {
	// ID identifies the emit for de-duplication (optional).
	ID     string          `json:"id,omitempty"`
	Rooms  []string        `json:"rooms"`
	Except []string        `json:"except,omitempty"`
	Event  string          `json:"event"`
	Data   json.RawMessage `json:"data,omitempty"`
}

// Response is the JSON body of every API answer.
type Response struct {
	// Accepted counts the items delivered by this request.
	Accepted int `json:"accepted"`
	// Duplicates counts the items whose event id was delivered before.
	Duplicates int `json:"duplicates,omitempty"`
	// Duplicate is true when a single-event request was a duplicate.
	Duplicate bool `json:"duplicate,omitempty"`
	// Results has one entry per item, in request order (publishes only).
	Results []ItemResult `json:"results,omitempty"`
	Error   *APIError    `json:"error,omitempty"`
}

// Item statuses.
const (
	StatusAccepted  = "accepted"
	StatusDuplicate = "duplicate"
	StatusRejected  = "rejected"
)

// ItemResult is the outcome of one item of a publish request.
type ItemResult struct {
	Index  int    `json:"index"`
	Status string `json:"status"`
	// Code is set for rejected items: PUBLISH_FAILED (the broadcast was
	// refused; nothing of it was delivered), IN_PROGRESS (the same event id
	// is being delivered by another request), NOT_ATTEMPTED (an earlier
	// item was rejected; items are sent in order and stop at the first
	// failure, so a user's events never arrive out of order).
	Code string `json:"code,omitempty"`
}

// APIError describes a refused request.
type APIError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Index is the position of the offending item in a batch.
	Index *int `json:"index,omitempty"`
}

// Handler serves POST /api/v1/events and POST /api/v1/emit.
type Handler struct {
	emitter *trading.Emitter
	b       trading.Broadcaster
	keys    []apiKey
	log     *slog.Logger
}

// Scope is what an API key may do.
type Scope uint8

// Scopes. A key configured as "<key>:publish" may only publish, "<key>:read"
// may only read the cluster views (stats, connections, room members); a key
// without a suffix may do both.
const (
	ScopePublish Scope = 1 << iota
	ScopeRead
	scopeAll = ScopePublish | ScopeRead
)

type apiKey struct {
	sum   [32]byte
	scope Scope
}

// ParseKey splits a configured key into the secret the client presents and
// its scope (":publish" or ":read" suffix; none = both).
func ParseKey(k string) (string, Scope) {
	if s, ok := strings.CutSuffix(k, ":publish"); ok {
		return s, ScopePublish
	}
	if s, ok := strings.CutSuffix(k, ":read"); ok {
		return s, ScopeRead
	}
	return k, scopeAll
}

// NewHandler returns the publish API. keys are the accepted API keys (see
// ParseKey for scopes); with none, every request is refused.
func NewHandler(b trading.Broadcaster, keys []string, log *slog.Logger) *Handler {
	h := &Handler{emitter: trading.NewEmitter(b), b: b, log: log}
	if h.log == nil {
		h.log = slog.Default()
	}
	for _, k := range keys {
		if secret, scope := ParseKey(k); secret != "" {
			h.keys = append(h.keys, apiKey{sum: sha256.Sum256([]byte(secret)), scope: scope})
		}
	}
	return h
}

// Authorized reports whether r carries a valid API key of any scope
// (Authorization: Bearer <key>, or X-API-Key).
func (h *Handler) Authorized(r *http.Request) bool {
	return h.scopeOf(r) != 0
}

// Allowed reports whether r carries a valid key (known) and whether that
// key has scope (ok).
func (h *Handler) Allowed(r *http.Request, scope Scope) (known, ok bool) {
	s := h.scopeOf(r)
	return s != 0, s&scope == scope
}

// scopeOf returns the scope of r's key, 0 when it has no valid key. Every
// configured key is compared, in constant time.
func (h *Handler) scopeOf(r *http.Request) Scope {
	key := ""
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		key = strings.TrimSpace(a[7:])
	} else {
		key = r.Header.Get("X-API-Key")
	}
	if key == "" {
		return 0
	}
	sum := sha256.Sum256([]byte(key))
	var scope Scope
	for _, k := range h.keys {
		match := subtle.ConstantTimeCompare(sum[:], k.sum[:])
		scope |= Scope(subtle.ConstantTimeSelect(match, int(k.scope), 0))
	}
	return scope
}

// Mount registers the API routes on mux.
func (h *Handler) Mount(mux *http.ServeMux) {
	mux.Handle("POST /api/v1/events", h.guard(h.events))
	mux.Handle("POST /api/v1/emit", h.guard(h.emit))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, code, msg string, index *int) {
	writeJSON(w, status, Response{Error: &APIError{Code: code, Message: msg, Index: index}})
}

func (h *Handler) guard(next func(http.ResponseWriter, *http.Request, []json.RawMessage)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		known, ok := h.Allowed(r, ScopePublish)
		if !known {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tradewire"`)
			writeErr(w, http.StatusUnauthorized, "UNAUTHORIZED", "missing or invalid API key", nil)
			return
		}
		if !ok {
			writeErr(w, http.StatusForbidden, "FORBIDDEN", "this API key may not publish", nil)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
		if err != nil {
			writeErr(w, http.StatusBadRequest, "INVALID_PAYLOAD", "cannot read body", nil)
			return
		}
		if len(body) > MaxBodyBytes {
			writeErr(w, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE", fmt.Sprintf("body over %d bytes", MaxBodyBytes), nil)
			return
		}
		items, err := splitBatch(body)
		if err != nil {
			writeErr(w, http.StatusBadRequest, "INVALID_PAYLOAD", err.Error(), nil)
			return
		}
		next(w, r, items)
	})
}

// splitBatch accepts one JSON object or an array of them.
func splitBatch(body []byte) ([]json.RawMessage, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, errors.New("empty body")
	}
	if body[0] == '{' {
		if !json.Valid(body) {
			return nil, errors.New("body is not valid JSON")
		}
		return []json.RawMessage{body}, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(body, &items); err != nil {
		return nil, errors.New("body must be a JSON object or an array of objects")
	}
	if len(items) == 0 {
		return nil, errors.New("empty batch")
	}
	if len(items) > MaxBatch {
		return nil, fmt.Errorf("batch over %d items", MaxBatch)
	}
	return items, nil
}

func decodeStrict(raw json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", trading.ErrInvalidEvent, err)
	}
	return nil
}

func (h *Handler) events(w http.ResponseWriter, r *http.Request, items []json.RawMessage) {
	routed := make([]*trading.Routed, 0, len(items))
	ids := make([]string, 0, len(items))
	for i, raw := range items {
		var ev trading.DomainEvent
		err := decodeStrict(raw, &ev)
		var rt *trading.Routed
		if err == nil {
			rt, err = h.emitter.Route(&ev)
		}
		if err != nil {
			idx := i
			writeErr(w, http.StatusBadRequest, "INVALID_EVENT", err.Error(), &idx)
			return
		}
		routed = append(routed, rt)
		ids = append(ids, ev.ID)
	}
	send := make([]func() error, len(routed))
	for i, rt := range routed {
		send[i] = func() error {
			return trading.BroadcastEvent(r.Context(), h.b, ids[i], rt.Rooms, nil, rt.Event, rt.Data)
		}
	}
	h.sendAll(w, "publish", send)
}

// sendAll sends the items in order, stopping at the first failure, and
// answers with one result per item: 202 when every item was accepted, 200
// when every item was a duplicate, 503 when the first item failed, 207
// (Multi-Status) for any mix. Items before a failure stay delivered; a
// retry of the whole request with the same event ids delivers only the
// rest (the others answer duplicate).
func (h *Handler) sendAll(w http.ResponseWriter, what string, send []func() error) {
	resp := Response{Results: make([]ItemResult, len(send))}
	failed := -1
	for i, f := range send {
		res := &resp.Results[i]
		res.Index = i
		if failed >= 0 {
			res.Status, res.Code = StatusRejected, "NOT_ATTEMPTED"
			continue
		}
		err := f()
		switch {
		case err == nil:
			res.Status = StatusAccepted
			resp.Accepted++
		case errors.Is(err, trading.ErrDuplicate):
			res.Status = StatusDuplicate
			resp.Duplicates++
		case errors.Is(err, trading.ErrInProgress):
			res.Status, res.Code = StatusRejected, "IN_PROGRESS"
			failed = i
		default:
			h.log.Error(what+" failed", "index", i, "err", err)
			res.Status, res.Code = StatusRejected, "PUBLISH_FAILED"
			failed = i
		}
	}
	status := http.StatusAccepted
	switch {
	case failed == 0:
		status = http.StatusServiceUnavailable
		idx := 0
		resp.Error = &APIError{Code: resp.Results[0].Code, Message: "broadcast failed; nothing was delivered, retry", Index: &idx}
	case failed > 0 || (resp.Duplicates > 0 && resp.Accepted > 0):
		status = http.StatusMultiStatus
	case resp.Duplicates > 0:
		status = http.StatusOK
		resp.Duplicate = len(send) == 1
	}
	writeJSON(w, status, resp)
}

var reservedEvents = map[string]bool{
	"connect": true, "connect_error": true, "disconnect": true, "disconnecting": true,
	"newListener": true, "removeListener": true, "error": false,
}

// ValidateEmit checks a raw emit as the API does (event name, rooms).
func ValidateEmit(e *EmitRequest) error { return validateEmit(e) }

func validateEmit(e *EmitRequest) error {
	if e.Event == "" || len(e.Event) > 128 {
		return fmt.Errorf("%w: event must be 1-128 characters", trading.ErrInvalidEvent)
	}
	if reservedEvents[e.Event] {
		return fmt.Errorf("%w: event %q is reserved", trading.ErrInvalidEvent, e.Event)
	}
	for _, r := range append(append([]string{}, e.Rooms...), e.Except...) {
		if r == "" || len(r) > 256 {
			return fmt.Errorf("%w: room names must be 1-256 characters", trading.ErrInvalidEvent)
		}
	}
	return nil
}

func (h *Handler) emit(w http.ResponseWriter, r *http.Request, items []json.RawMessage) {
	reqs := make([]EmitRequest, len(items))
	for i, raw := range items {
		err := decodeStrict(raw, &reqs[i])
		if err == nil {
			err = validateEmit(&reqs[i])
		}
		if err != nil {
			idx := i
			writeErr(w, http.StatusBadRequest, "INVALID_EVENT", err.Error(), &idx)
			return
		}
	}
	send := make([]func() error, len(reqs))
	for i := range reqs {
		var data any
		if len(reqs[i].Data) > 0 {
			data = reqs[i].Data
		}
		send[i] = func() error {
			return trading.BroadcastEvent(r.Context(), h.b, reqs[i].ID, reqs[i].Rooms, reqs[i].Except, reqs[i].Event, data)
		}
	}
	h.sendAll(w, "emit", send)
}
