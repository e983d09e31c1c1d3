package frontend

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestFrontend runs the Node suites; each is a subtest so a failure names it.
func TestFrontend(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	node := requireTool(t, "node")
	npmCI(t, root, "vitest")
	npmCI(t, filepath.Join(root, "tests/frontend/react18"), "react")
	bin := buildGateway(t, root)
	env := []string{"TRADEWIRE_BIN=" + bin, "NO_COLOR=1", "FORCE_COLOR=0"}
	// @tradewire/react and the type checks import the client's built
	// declarations (clients/js/dist is not committed).
	runNode(t, root, env, node, filepath.Join(root, "node_modules/typescript/bin/tsc"), "-p", "clients/js")
	vitest := filepath.Join(root, "node_modules/vitest/vitest.mjs")

	t.Run("vitest-react19", func(t *testing.T) {
		runNode(t, root, env, node, vitest, "run")
	})
	t.Run("vitest-react18", func(t *testing.T) {
		runNode(t, root, append(env, "TRADEWIRE_REACT_DIR="+filepath.Join(root, "tests/frontend/react18")), node, vitest, "run", "clients/react")
	})
	t.Run("chromium-e2e", func(t *testing.T) {
		chromium := os.Getenv("CHROMIUM")
		if chromium == "" {
			chromium = "/usr/bin/chromium"
		}
		if _, err := os.Stat(chromium); err != nil {
			t.Fatalf("Debian chromium not found at %s (apt-get install chromium; scripts/test does it): %v", chromium, err)
		}
		runNode(t, root, append(env, "CHROMIUM="+chromium), node, filepath.Join(root, "tests/frontend/e2e.mjs"))
	})
}

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found in PATH: the frontend tests need Node.js 20+ with npm (scripts/test installs it)", name)
	}
	return p
}

// npmCI installs the locked packages of dir unless node_modules/<probe> exists.
func npmCI(t *testing.T, dir, probe string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", probe, "package.json")); err == nil {
		return
	}
	npm := requireTool(t, "npm")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
}

// buildGateway builds cmd/tradewire (with -race when this test runs with it,
// so a data race in the gateway under browser traffic fails the test).
func buildGateway(t *testing.T, root string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tradewire")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), append(args, "./cmd/tradewire")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/tradewire: %v\n%s", err, out)
	}
	return bin
}

// runNode runs node with args in dir, logs its output line by line, and
// fails on a non-zero exit or a data race reported by a gateway.
func runNode(t *testing.T, dir string, env []string, node string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 10 * time.Second
	out := &lineLog{t: t}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	err := cmd.Run()
	out.flush()
	t.Logf("%s took %s", filepath.Base(args[len(args)-1]), time.Since(start).Round(100*time.Millisecond))
	if ctx.Err() != nil {
		t.Fatalf("did not finish in time: %v", err)
	}
	if err != nil {
		t.Fatalf("failed: %v", err)
	}
	if out.race {
		t.Fatal("a gateway reported a data race (see the log above)")
	}
}

type lineLog struct {
	t    *testing.T
	mu   sync.Mutex
	buf  bytes.Buffer
	race bool
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		line, err := l.buf.ReadString('\n')
		if err != nil {
			l.buf.WriteString(line)
			return len(p), nil
		}
		l.log(line)
	}
}

func (l *lineLog) log(line string) {
	line = strings.TrimRight(line, "\r\n")
	if strings.Contains(line, "DATA RACE") {
		l.race = true
	}
	l.t.Log(line)
}

func (l *lineLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() > 0 {
		l.log(l.buf.String())
		l.buf.Reset()
	}
}
