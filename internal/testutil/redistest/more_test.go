package redistest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTB records Fatal calls (ending the calling goroutine like the real
// one) and cleanups; everything else goes to the real test.
type fakeTB struct {
	testing.TB
	mu       sync.Mutex
	fatal    string
	cleanups []func()
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Fatal(args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprint(args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Cleanup(fn func()) {
	f.mu.Lock()
	f.cleanups = append(f.cleanups, fn)
	f.mu.Unlock()
}

// do runs fn in its own goroutine (so Fatal can end it), then the
// cleanups, and returns the Fatal message ("" when none).
func (f *fakeTB) do(fn func()) string {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
	f.mu.Lock()
	cleanups := f.cleanups
	f.cleanups = nil
	msg := f.fatal
	f.fatal = ""
	f.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	return msg
}

func TestExternalServerFromEnv(t *testing.T) {
	for _, tc := range []struct{ url, addr string }{
		{"redis://127.0.0.1:6399/2", "127.0.0.1:6399"},
		{"redis://10.1.2.3:7000", "10.1.2.3:7000"},
		{"//localhost:6380", "localhost:6380"},
	} {
		t.Setenv("TRADEWIRE_TEST_REDIS_URL", tc.url)
		f := &fakeTB{TB: t}
		var s *Server
		if msg := f.do(func() { s = Start(f) }); msg != "" {
			t.Fatalf("%s: %s", tc.url, msg)
		}
		if s.Addr != tc.addr || !s.external || s.URL() != "redis://"+tc.addr {
			t.Fatalf("%s: addr %q external %v", tc.url, s.Addr, s.external)
		}
		s.Kill() // no-op on a server the test does not own
		if msg := f.do(s.Restart); !strings.Contains(msg, "Restart is not available") {
			t.Fatalf("Restart on an external server: %q", msg)
		}
	}
}

func TestExtraArgsStartPrivateServerDespiteEnv(t *testing.T) {
	t.Setenv("TRADEWIRE_TEST_REDIS_URL", "redis://127.0.0.1:1")
	s := Start(t, "--maxmemory", "10mb")
	if s.external || Ping(s.Addr) != nil {
		t.Fatalf("extra args must start a private server (external %v)", s.external)
	}
	s.Kill()
	s.Kill() // twice is safe
	if Ping(s.Addr) == nil {
		t.Fatal("still answering after Kill")
	}
}

func TestRedisServerFailures(t *testing.T) {
	bin := t.TempDir()
	t.Setenv("PATH", bin)
	f := &fakeTB{TB: t}

	if msg := f.do(func() { Start(f) }); !strings.Contains(msg, "redis-server not found in PATH") {
		t.Fatalf("no redis-server: %q", msg)
	}

	// A redis-server that exits at once.
	script := filepath.Join(bin, "redis-server")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho 'bad config' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if msg := f.do(func() { Start(f) }); !strings.Contains(msg, "redis-server exited early") {
		t.Fatalf("exiting server: %q", msg)
	}

	// A redis-server that cannot be executed.
	if err := os.WriteFile(script, []byte("#!/nonexistent/interpreter\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if msg := f.do(func() { Start(f) }); !strings.Contains(msg, "start redis-server") {
		t.Fatalf("unstartable server: %q", msg)
	}
}

func TestRealServerRefusesBadOption(t *testing.T) {
	f := &fakeTB{TB: t}
	start := time.Now()
	if msg := f.do(func() { Start(f, "--no-such-option", "1") }); !strings.Contains(msg, "exited early") {
		t.Fatalf("bad option: %q", msg)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v to notice the exit", d)
	}
}

// lineServer accepts one connection at a time and runs reply on it.
func lineServer(t *testing.T, reply func(c net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			reply(c)
			c.Close()
		}
	}()
	return l.Addr().String()
}

func TestPing(t *testing.T) {
	closed := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	if err := Ping(closed); err == nil {
		t.Fatal("Ping of a closed port succeeded")
	}
	wrong := lineServer(t, func(c net.Conn) {
		buf := make([]byte, 64)
		_, _ = c.Read(buf)
		_, _ = c.Write([]byte("-NOAUTH Authentication required.\r\n"))
	})
	if err := Ping(wrong); err == nil || !strings.Contains(err.Error(), "unexpected reply") {
		t.Fatalf("Ping with an error reply: %v", err)
	}
	silent := lineServer(t, func(c net.Conn) {
		buf := make([]byte, 64)
		_, _ = c.Read(buf)
	})
	if err := Ping(silent); err == nil {
		t.Fatal("Ping succeeded without a reply")
	}
	pong := lineServer(t, func(c net.Conn) {
		buf := make([]byte, 64)
		if n, _ := c.Read(buf); string(buf[:n]) == "PING\r\n" {
			_, _ = c.Write([]byte("+PONG\r\n"))
		}
	})
	if err := Ping(pong); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func TestFreePort(t *testing.T) {
	p := FreePort(t)
	if p <= 0 || p > 65535 {
		t.Fatalf("port %d", p)
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		t.Fatalf("port %d not free: %v", p, err)
	}
	l.Close()
}

func TestServersDoNotShareKeySpace(t *testing.T) {
	if os.Getenv("TRADEWIRE_TEST_REDIS_URL") != "" {
		t.Skip("TRADEWIRE_TEST_REDIS_URL shares one server by design")
	}
	a, b := Start(t), Start(t)
	if a.Addr == b.Addr {
		t.Fatalf("two servers on %s", a.Addr)
	}
	set := func(addr, cmd string) string {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		_, _ = c.Write([]byte(cmd))
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		return string(buf[:n])
	}
	if r := set(a.Addr, "SET k a\r\n"); r != "+OK\r\n" {
		t.Fatalf("SET: %q", r)
	}
	if r := set(b.Addr, "GET k\r\n"); r != "$-1\r\n" {
		t.Fatalf("key visible on the other server: %q", r)
	}
	// Restart keeps nothing.
	a.Restart()
	if r := set(a.Addr, "GET k\r\n"); r != "$-1\r\n" {
		t.Fatalf("key kept across Restart: %q", r)
	}
}

// TestExternalURLWithCredentials: a TRADEWIRE_TEST_REDIS_URL with a
// password must yield host:port, not "user:pass@host:port".
func TestExternalURLWithCredentials(t *testing.T) {
	t.Setenv("TRADEWIRE_TEST_REDIS_URL", "redis://:secret@127.0.0.1:6379/0")
	s := Start(t)
	if s.Addr != "127.0.0.1:6379" {
		t.Errorf("Addr = %q, want 127.0.0.1:6379 (the credentials are part of the address)", s.Addr)
	}
}

// TestEarlyExitExplainsWhy: when redis-server refuses its command line, the
// failure must say why (redis-server prints it on stderr, before any log
// file exists).
func TestEarlyExitExplainsWhy(t *testing.T) {
	f := &fakeTB{TB: t}
	msg := f.do(func() { Start(f, "--no-such-option", "1") })
	if !strings.Contains(msg, "no-such-option") {
		t.Errorf("failure message %q does not show redis-server's reason", msg)
	}
}
