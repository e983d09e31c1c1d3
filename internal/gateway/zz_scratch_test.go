package gateway

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/tradewire/tradewire/trading"
)

func TestScratchJoinRace(t *testing.T) {
	g := startGateway(t, "-demo-feed=false", "-rate-connections-per-minute=100000")
	login := devLogin(t, g.URL, "u1", "user")
	miss := 0
	for i := 0; i < 500; i++ {
		c := dialCookie(t, g.URL, login.Cookie)
		_ = g.Emitter().Notify(context.Background(), "u1", trading.Notification{Title: "Hi", Message: "x"})
		if _, err := c.WaitEvent("notification", time.Second); err != nil {
			miss++
		}
		c.Close()
	}
	t.Logf("missed %d of 500", miss)
}

func TestScratchRedisDownAtStart(t *testing.T) {
	start := time.Now()
	g := startGateway(t, "-redis-url", "redis://127.0.0.1:1", "-session-store", "redis", "-session-secrets", "s", "-demo-feed=false")
	t.Logf("New returned without error after %v", time.Since(start))
	deadline := time.Now().Add(15 * time.Second)
	cl := &http.Client{Timeout: 500 * time.Millisecond}
	for time.Now().Before(deadline) {
		r, err := cl.Get(g.URL + "/healthz")
		if err == nil {
			r.Body.Close()
			t.Logf("/healthz first answered %d after %v", r.StatusCode, time.Since(start))
			return
		}
	}
	t.Log("healthz never answered")
}
