package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
)

const maxBody = 1 << 20

// routes is the publish API subset the load generator uses, plus health and
// debug numbers.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("GET /debug/vars", func(w http.ResponseWriter, _ *http.Request) {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		s.mu.Lock()
		rooms := len(s.rooms)
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{
			"sockets": s.conns.Load(), "rooms": rooms, "goroutines": runtime.NumGoroutine(),
			"heap_alloc": m.HeapAlloc, "heap_inuse": m.HeapInuse, "heap_sys": m.HeapSys, "sys": m.Sys,
		})
	})
	mux.HandleFunc("POST /api/v1/emit", s.api(s.emit))
	mux.HandleFunc("POST /api/v1/events", s.api(s.events))
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, apiError{Code: "NOT_FOUND", Message: "not served by the minimal server"})
	})
	return mux
}

type apiError struct {
	Success bool   `json:"success"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e apiError) Error() string { return e.Code + ": " + e.Message }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// api checks the key, reads the body as one object or an array of them and
// answers {"success":true,"accepted":n} or an error.
func (s *Server) api(fn func([]json.RawMessage) (int, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+s.cfg.APIKey {
			writeJSON(w, http.StatusUnauthorized, apiError{Code: "UNAUTHORIZED", Message: "missing or bad API key"})
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			writeJSON(w, http.StatusRequestEntityTooLarge, apiError{Code: "BODY_TOO_LARGE", Message: err.Error()})
			return
		}
		var list []json.RawMessage
		if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '[' {
			err = json.Unmarshal(t, &list)
		} else {
			list = []json.RawMessage{t}
		}
		n := 0
		if err == nil {
			n, err = fn(list)
		}
		var ae apiError
		switch {
		case errors.As(err, &ae):
			writeJSON(w, http.StatusBadRequest, ae)
		case err != nil:
			writeJSON(w, http.StatusBadRequest, apiError{Code: "BAD_REQUEST", Message: err.Error()})
		default:
			writeJSON(w, http.StatusOK, map[string]any{"success": true, "accepted": n})
		}
	}
}

// eventFrame encodes 42["event",data] as one websocket text frame.
func eventFrame(event string, data json.RawMessage) []byte {
	name, _ := json.Marshal(event)
	if len(data) == 0 {
		return frame(opText, `42[`, string(name), `]`)
	}
	return frame(opText, `42[`, string(name), `,`, string(data), `]`)
}

// emit handles {"rooms":[...],"event":"...","data":...} messages.
func (s *Server) emit(list []json.RawMessage) (int, error) {
	type msg struct {
		Rooms []string        `json:"rooms"`
		Event string          `json:"event"`
		Data  json.RawMessage `json:"data"`
	}
	msgs := make([]msg, len(list))
	for i, raw := range list {
		if err := json.Unmarshal(raw, &msgs[i]); err != nil {
			return 0, err
		}
		if len(msgs[i].Rooms) == 0 || msgs[i].Event == "" {
			return 0, apiError{Code: "BAD_REQUEST", Message: "each message needs rooms[] and event"}
		}
	}
	for _, m := range msgs {
		s.broadcast(m.Rooms, eventFrame(m.Event, m.Data))
	}
	return len(msgs), nil
}

// events handles {"type":"trade.executed","userId":"u1","trade":{...}}: the
// trade goes to trades:<userId> as trade:executed {userId, trade}.
func (s *Server) events(list []json.RawMessage) (int, error) {
	type event struct {
		Type   string          `json:"type"`
		UserID string          `json:"userId"`
		Trade  json.RawMessage `json:"trade"`
	}
	evs := make([]event, len(list))
	for i, raw := range list {
		if err := json.Unmarshal(raw, &evs[i]); err != nil {
			return 0, err
		}
		if evs[i].Type != "trade.executed" || evs[i].UserID == "" || len(evs[i].Trade) == 0 || evs[i].Trade[0] != '{' {
			return 0, apiError{Code: "BAD_REQUEST", Message: fmt.Sprintf("event %d: only trade.executed with userId and trade is supported", i)}
		}
	}
	for _, e := range evs {
		uid, _ := json.Marshal(e.UserID)
		data := `{"userId":` + string(uid) + `,"trade":` + string(e.Trade) + `}`
		s.broadcast([]string{"trades:" + e.UserID}, eventFrame("trade:executed", json.RawMessage(data)))
	}
	return len(evs), nil
}
