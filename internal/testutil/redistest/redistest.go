// Package redistest starts private redis-server processes for tests, each on
// a free loopback port with nothing on disk, so test runs never share key space.
//
// Set TRADEWIRE_TEST_REDIS_URL to use an existing server instead (the tests
// then share that server's key space; Kill and Restart are not available).
package redistest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is one redis-server started for a test.
type Server struct {
	Addr string // host:port

	t        testing.TB
	dir      string
	args     []string
	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{}
	external bool
}

// Start launches a redis-server on a free port and stops it when the test ends.
// extraArgs are appended to the command line (e.g. "--cluster-enabled", "yes").
func Start(t testing.TB, extraArgs ...string) *Server {
	t.Helper()
	if u := os.Getenv("TRADEWIRE_TEST_REDIS_URL"); u != "" && len(extraArgs) == 0 {
		pu, err := url.Parse(u)
		if err != nil || pu.Host == "" {
			t.Fatalf("redistest: TRADEWIRE_TEST_REDIS_URL %q is not a redis:// URL", u)
		}
		return &Server{Addr: pu.Host, t: t, external: true}
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redistest: redis-server not found in PATH (install with apt-get install -y redis-server): %v", err)
	}
	_ = bin
	port := FreePort(t)
	dir := t.TempDir()
	s := &Server{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		t:    t,
		dir:  dir,
	}
	s.args = append([]string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"),
	}, extraArgs...)
	s.startProcess()
	t.Cleanup(s.Kill)
	return s
}

// URL returns redis://addr.
func (s *Server) URL() string { return "redis://" + s.Addr }

func (s *Server) startProcess() {
	s.t.Helper()
	cmd := exec.Command("redis-server", s.args...)
	var out bytes.Buffer // redis-server reports command-line errors here, before any log exists
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("redistest: start redis-server: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if Ping(s.Addr) == nil {
			return
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			s.t.Fatalf("redistest: redis-server exited early: %s%s", out.String(), log)
		case <-time.After(10 * time.Millisecond):
		}
	}
	s.t.Fatalf("redistest: redis-server on %s not ready after 10s", s.Addr)
}

// Kill stops the server with SIGKILL and waits for it to exit. Safe to call twice.
func (s *Server) Kill() {
	if s.external {
		return
	}
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts the server again on the same port (empty: nothing is kept on disk).
func (s *Server) Restart() {
	s.t.Helper()
	if s.external {
		s.t.Fatal("redistest: Restart is not available with TRADEWIRE_TEST_REDIS_URL")
	}
	s.Kill()
	s.startProcess()
}

// Ping sends PING over a raw connection and expects +PONG.
func Ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("redistest: unexpected reply %q", line)
	}
	return nil
}

// FreePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
