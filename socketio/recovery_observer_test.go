package socketio

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tradewire/tradewire/internal/testutil/poll"
)

// recoveryCounter counts recovery outcomes (and ignores the rest).
type recoveryCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *recoveryCounter) EventIn(string)               {}
func (r *recoveryCounter) EventOut(string, int)         {}
func (r *recoveryCounter) Broadcast(int, time.Duration) {}
func (r *recoveryCounter) SlowConsumerDropped()         {}
func (r *recoveryCounter) Recovery(outcome string)      { r.mu.Lock(); r.n[outcome]++; r.mu.Unlock() }
func (r *recoveryCounter) get(outcome string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[outcome]
}
func newRecoveryCounter() *recoveryCounter { return &recoveryCounter{n: map[string]int{}} }

func TestRecoveryOutcomesObserved(t *testing.T) {
	obs := newRecoveryCounter()
	srv, ss := recoveryServer(t, Options{Observer: obs})
	_, pid, offset := awayInRoom(t, srv, ss, "")

	// An unknown pid is not found; no pid or no offset is no attempt.
	for _, auth := range []string{`{"pid":"unknown","offset":"1-0"}`, fmt.Sprintf(`{"pid":%q}`, pid), `{}`} {
		c2 := srv.dial("")
		connectRecovering(t, c2, auth)
		c2.close()
	}
	c3 := srv.dial("")
	connectRecovering(t, c3, fmt.Sprintf(`{"pid":%q,"offset":%q}`, pid, offset))
	poll.Until(t, "outcomes counted", func() bool { return obs.get(RecoveryRecovered) == 1 })
	if obs.get(RecoveryNotFound) != 1 || obs.get(RecoveryDisabled) != 0 {
		t.Fatalf("outcomes %v, want 1 recovered, 1 not_found", obs.n)
	}

	// With recovery off, a client that asks is counted as disabled.
	off := newRecoveryCounter()
	plain := newTestServer(t, Options{Observer: off})
	c4 := plain.dial("")
	c4.send(`0{"pid":"p","offset":"1-0"}`)
	c4.next()
	poll.Until(t, "disabled counted", func() bool { return off.get(RecoveryDisabled) == 1 })
}
