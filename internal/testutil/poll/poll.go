// Package poll waits in tests for a condition that becomes true
// asynchronously: the one polling helper of the module's tests.
//
// It polls often at first (1 ms) and backs off to every 20 ms, so fast
// conditions cost little wall time and slow ones little CPU.
package poll

import (
	"testing"
	"time"
)

// DefaultTimeout is Until's timeout: generous, because a loaded CI machine
// is slow, and a condition that holds returns at once anyway.
const DefaultTimeout = 10 * time.Second

// Check polls cond until it holds (true) or timeout passes (false).
func Check(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	interval := time.Millisecond
	for !cond() {
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(interval)
		if interval < 20*time.Millisecond {
			interval *= 2
		}
	}
	return true
}

// For polls cond until it holds and returns how long that took; the test
// fails with what it waited for when timeout passes first.
func For(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	if !Check(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
	return time.Since(start)
}

// Until is For with DefaultTimeout.
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	For(t, DefaultTimeout, what, cond)
}
