package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestHoldUntilHoldsOnlyTheEnginePath(t *testing.T) {
	started := make(chan struct{})
	h := holdUntil(started, "/socket.io/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}))
	// Health is served while the engine path waits.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusTeapot {
		t.Fatalf("/healthz: %d", rec.Code)
	}
	done := make(chan int, 1)
	go func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/socket.io/?EIO=4&transport=polling", nil))
		done <- rec.Code
	}()
	select {
	case c := <-done:
		t.Fatalf("engine request answered %d before start", c)
	case <-time.After(50 * time.Millisecond):
	}
	close(started)
	if c := <-done; c != http.StatusTeapot {
		t.Fatalf("engine request after start: %d", c)
	}
	// A request given up while waiting gets nothing from next.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec = httptest.NewRecorder()
	holdUntil(make(chan struct{}), "/socket.io/", http.NotFoundHandler()).ServeHTTP(rec, httptest.NewRequest("GET", "/socket.io/", nil).WithContext(ctx))
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Fatalf("cancelled request: %d %q", rec.Code, rec.Body.String())
	}
}
