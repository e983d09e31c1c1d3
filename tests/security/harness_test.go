// Package security attacks the built tradewire binary the way issue 11
// describes, against a real Redis: each test fails on a gateway without the
// corresponding hardening.
package security

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/internal/testutil/redistest"
)

const (
	secret        = "security-test-session-secret"
	apiKey        = "security-test-api-key-0001"
	clusterSecret = "security-test-cluster-secret-0123456789"
)

var binPath string

// envBin names a prebuilt binary to attack instead (e.g. an older build,
// to check that each test fails without the hardening).
const envBin = "TRADEWIRE_SECURITY_TEST_BIN"

func TestMain(m *testing.M) {
	if b := os.Getenv(envBin); b != "" {
		binPath = b
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "tradewire-security-")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "tradewire")
	out, err := exec.Command("go", "build", "-o", binPath, "github.com/tradewire/tradewire/cmd/tradewire").CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		panic("go build: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// baseEnv is the environment of every run: nothing inherited that starts
// with TRADEWIRE_, plus the given settings.
func baseEnv(kv map[string]string) []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "TRADEWIRE_") {
			env = append(env, e)
		}
	}
	env = append(env, "TRADEWIRE_LOG_FORMAT=json", "TRADEWIRE_DRAIN_WINDOW=100ms", "TRADEWIRE_SHUTDOWN_TIMEOUT=3s")
	for k, v := range kv {
		env = append(env, k+"="+v)
	}
	return env
}

// deployment is a full deployment configuration on redisURL.
func deployment(redisURL string) map[string]string {
	return map[string]string{
		"TRADEWIRE_REDIS_URL": redisURL, "TRADEWIRE_SESSION_STORE": "redis",
		"TRADEWIRE_SESSION_SECRETS": secret, "TRADEWIRE_API_KEYS": apiKey,
		"TRADEWIRE_CLUSTER_SECRET": clusterSecret,
	}
}

// exitOf runs the binary and returns its exit code and stderr; a process
// still running after 5 s is killed and reported as exit -1.
func exitOf(t *testing.T, kv map[string]string) (int, string) {
	t.Helper()
	cmd := exec.Command(binPath)
	cmd.Env = baseEnv(kv)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), stderr.String()
		}
		return 0, stderr.String()
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return -1, stderr.String()
	}
}

// node is a running gateway process.
type node struct {
	URL  string
	Addr string
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	log  strings.Builder
}

func (n *node) Log() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.log.String()
}

// waitLog waits until the log contains sub.
func (n *node) waitLog(t *testing.T, sub string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if l := n.Log(); strings.Contains(l, sub) {
			return l
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("log %q not seen within %v:\n%s", sub, timeout, n.Log())
	return ""
}

// stop ends the process (SIGTERM, then kill).
func (n *node) stop() {
	select {
	case <-n.done:
		return
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(5 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
	}
}

func freeAddr(t *testing.T, host string) string {
	t.Helper()
	l, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs the binary on addr (127.0.0.1:free when empty) until ready.
func start(t *testing.T, addr string, kv map[string]string) *node {
	t.Helper()
	if addr == "" {
		addr = freeAddr(t, "127.0.0.1")
	}
	kv2 := map[string]string{"TRADEWIRE_ADDR": addr}
	for k, v := range kv {
		kv2[k] = v
	}
	cmd := exec.Command(binPath)
	cmd.Env = baseEnv(kv2)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	n := &node{URL: "http://127.0.0.1:" + port, Addr: addr, cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			n.mu.Lock()
			n.log.WriteString(sc.Text() + "\n")
			n.mu.Unlock()
		}
	}()
	go func() { _ = cmd.Wait(); close(n.done) }()
	t.Cleanup(func() {
		n.stop()
		if strings.Contains(n.Log(), "panic") {
			t.Errorf("node panicked:\n%s", n.Log())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-n.done:
			t.Fatalf("gateway exited at start:\n%s", n.Log())
		default:
		}
		resp, err := http.Get(n.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return n
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("gateway not ready:\n%s", n.Log())
	return nil
}

// startRedis starts a private redis-server and a client for it.
func startRedis(t *testing.T) (*redistest.Server, *redis.Client) {
	t.Helper()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	return srv, rdb
}

var bg = context.Background()
