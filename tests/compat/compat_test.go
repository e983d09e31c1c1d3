package compat

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// minNode is the oldest Node.js major version the tests run on (node:test
// with --test-concurrency and the spec reporter).
const minNode = 20

// TestSocketIOClient runs every *.test.mjs file with node --test against a
// freshly built fixture server, and fails if any of them fails.
func TestSocketIOClient(t *testing.T) {
	dir, err := os.Getwd() // go test runs in the package directory
	if err != nil {
		t.Fatal(err)
	}
	node := requireTool(t, "node")
	checkNodeVersion(t, node)
	installPackages(t, dir)

	bin := buildServer(t, dir)
	addr := startServer(t, bin)

	files, err := filepath.Glob(filepath.Join(dir, "*.test.mjs"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no *.test.mjs files in %s (%v)", dir, err)
	}
	slices.Sort(files)
	for i, f := range files {
		files[i] = filepath.Base(f)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// One file at a time: the heartbeat is short (300ms + 200ms) and the
	// machine small; parallel files would only add timing noise.
	args := append([]string{"--test", "--test-reporter=spec", "--test-concurrency=1"}, files...)
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"TRADEWIRE_COMPAT_URL=http://"+addr,
		"TRADEWIRE_COMPAT_SERVER_BIN="+bin,
		"NO_COLOR=1",
	)
	cmd.WaitDelay = 5 * time.Second
	out := &lineLogger{t: t, prefix: "node: "}
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Run()
	out.Flush()
	if ctx.Err() != nil {
		t.Fatalf("node --test did not finish within the deadline: %v", err)
	}
	if err != nil {
		t.Fatalf("socket.io-client compatibility tests failed (%v): %s", err, out.Summary())
	}
	t.Logf("socket.io-client compatibility tests: %s", out.Summary())
}

// requireTool returns the path of a tool the suite cannot run without.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found in PATH: the socket.io-client compatibility tests need Node.js %d+ with npm (e.g. apt-get install nodejs npm)", name, minNode)
	}
	return p
}

func checkNodeVersion(t *testing.T, node string) {
	t.Helper()
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatalf("node --version: %v", err)
	}
	v := strings.TrimSpace(string(out))
	m := regexp.MustCompile(`^v(\d+)\.`).FindStringSubmatch(v)
	if m == nil {
		t.Fatalf("node --version: unexpected %q", v)
	}
	if major, _ := strconv.Atoi(m[1]); major < minNode {
		t.Fatalf("node %s is too old: the compatibility tests need Node.js %d+", v, minNode)
	}
}

// installPackages runs npm ci when the pinned packages are not installed.
func installPackages(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "socket.io-client", "package.json")); err == nil {
		return
	}
	npm := requireTool(t, "npm")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	out := &lineLogger{t: t, prefix: "npm: "}
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	out.Flush()
	if err != nil {
		t.Fatalf("npm ci in %s failed: %v", dir, err)
	}
}

// buildServer builds ./server (with -race when this test runs with it).
func buildServer(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "compat-server")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./server")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./server: %v\n%s", err, out)
	}
	return bin
}

// startServer starts the fixture on a free port and returns its address.
// Its stderr goes to the test log; a data race report or an unclean exit
// fails the test.
func startServer(t *testing.T, bin string) string {
	t.Helper()
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-v")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &lineLogger{t: t, prefix: "server: "}
	cmd.Stderr = logs
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			first <- sc.Text()
		}
		close(first)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var addr string
	select {
	case addr = <-first:
	case err := <-exited:
		logs.Flush()
		t.Fatalf("server exited before printing its address: %v", err)
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("server printed no address within 10s")
	}
	if addr == "" {
		t.Fatal("server closed stdout without printing its address")
	}

	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		var err error
		select {
		case err = <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			err = errors.New("did not stop within 10s of SIGTERM")
			<-exited
		}
		logs.Flush()
		if err != nil {
			t.Errorf("server: %v", err)
		}
		if logs.Race() {
			t.Error("server: the race detector reported a data race (see the server log above)")
		}
	})
	return addr
}

// lineLogger writes complete lines to the test log as they come, and keeps
// node's closing summary ("ℹ tests N", "ℹ pass N", ...).
type lineLogger struct {
	t      *testing.T
	prefix string

	mu      sync.Mutex
	partial []byte
	summary []string
	race    bool
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := slices.Index(l.partial, '\n')
		if i < 0 {
			break
		}
		l.line(string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

func (l *lineLogger) line(s string) {
	s = strings.TrimRight(s, "\r")
	l.t.Log(l.prefix + s)
	if strings.Contains(s, "DATA RACE") {
		l.race = true
	}
	for _, k := range []string{"tests", "pass", "fail", "cancelled", "skipped", "todo"} {
		if strings.HasPrefix(s, "ℹ "+k+" ") {
			l.summary = append(l.summary, strings.TrimPrefix(s, "ℹ "))
		}
	}
}

// Flush logs a last line without newline.
func (l *lineLogger) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.line(string(l.partial))
		l.partial = nil
	}
}

// Summary returns node's closing counts, e.g. "tests 80, pass 78, fail 2, ...".
func (l *lineLogger) Summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.summary) == 0 {
		return "no summary from node"
	}
	return strings.Join(l.summary, ", ")
}

// Race reports whether a line was a race detector report.
func (l *lineLogger) Race() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.race
}
