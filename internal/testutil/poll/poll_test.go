package poll

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	var n atomic.Int32
	if !Check(time.Second, func() bool { return n.Add(1) == 5 }) {
		t.Fatal("a condition that becomes true was reported false")
	}
	start := time.Now()
	if Check(30*time.Millisecond, func() bool { return false }) {
		t.Fatal("a false condition was reported true")
	}
	if time.Since(start) < 30*time.Millisecond {
		t.Fatal("gave up before the timeout")
	}
}

func TestForAndUntil(t *testing.T) {
	done := make(chan struct{})
	time.AfterFunc(10*time.Millisecond, func() { close(done) })
	closed := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	if d := For(t, time.Second, "done", closed); d < 10*time.Millisecond {
		t.Fatalf("returned after %v, before the condition held", d)
	}
	Until(t, "done again", closed)
}

// fatalRecorder captures Fatalf instead of ending the test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = format
}

func TestForFailsWithWhat(t *testing.T) {
	rec := &fatalRecorder{TB: t}
	For(rec, 5*time.Millisecond, "never", func() bool { return false })
	if rec.msg == "" {
		t.Fatal("a condition that never held did not fail the test")
	}
}
