package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/internal/testutil/poll"
	"github.com/tradewire/tradewire/internal/testutil/redistest"
)

// minNode is the oldest Node.js major version the Node side runs on.
const minNode = 20

var (
	setupOnce sync.Once
	setupErr  error
	serverBin string // the Go node, built once per test binary
	nodePath  string
	workDir   string // a temp dir removed by TestMain
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tradewire-cluster-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	workDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// setup checks the tools, runs npm ci when the pinned packages are missing
// and builds ./server (with -race when this test runs with it), once.
func setup(t *testing.T) {
	t.Helper()
	setupOnce.Do(func() { setupErr = doSetup() })
	if setupErr != nil {
		t.Fatal(setupErr)
	}
}

func doSetup() error {
	node, err := exec.LookPath("node")
	if err != nil {
		return fmt.Errorf("node not found in PATH: the mixed-cluster tests need Node.js %d+ with npm (e.g. apt-get install nodejs npm): %w", minNode, err)
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		return fmt.Errorf("node --version: %w", err)
	}
	v := strings.TrimSpace(string(out))
	m := regexp.MustCompile(`^v(\d+)\.`).FindStringSubmatch(v)
	if m == nil {
		return fmt.Errorf("node --version: unexpected %q", v)
	}
	if major, _ := strconv.Atoi(m[1]); major < minNode {
		return fmt.Errorf("node %s is too old: the mixed-cluster tests need Node.js %d+", v, minNode)
	}
	nodePath = node
	for _, tool := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found in PATH (apt-get install redis-server redis-tools): %w", tool, err)
		}
	}
	if err := installPackages(); err != nil {
		return err
	}
	serverBin = filepath.Join(workDir, "cluster-go-node")
	args := []string{"build", "-o", serverBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./server")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./server: %w\n%s", err, out)
	}
	return nil
}

// installPackages runs npm ci when a pinned package is not installed.
func installPackages() error {
	for _, p := range []string{"socket.io", "socket.io-client", "@socket.io/redis-adapter", "@socket.io/redis-emitter", "redis"} {
		if _, err := os.Stat(filepath.Join("node_modules", p, "package.json")); err != nil {
			npm, err := exec.LookPath("npm")
			if err != nil {
				return fmt.Errorf("npm not found in PATH: the mixed-cluster tests need it to install tests/cluster/package.json: %w", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("npm ci in tests/cluster: %w\n%s", err, out)
			}
			return nil
		}
	}
	return nil
}

// logWriter sends complete lines to the test log (while the test runs) and
// remembers whether one was a data race report.
type logWriter struct {
	t      *testing.T
	prefix string

	mu      sync.Mutex
	partial []byte
	race    bool
	done    bool
	lines   []string
}

func (l *logWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := slices.Index(l.partial, '\n')
		if i < 0 {
			break
		}
		s := strings.TrimRight(string(l.partial[:i]), "\r")
		l.partial = l.partial[i+1:]
		if strings.Contains(s, "DATA RACE") {
			l.race = true
		}
		l.lines = append(l.lines, s)
		if testing.Verbose() && !l.done {
			l.t.Log(l.prefix + s)
		}
	}
	return len(p), nil
}

// stop ends logging to t and reports what was written.
func (l *logWriter) stop() (lines []string, race bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done = true
	if len(l.partial) > 0 {
		l.lines = append(l.lines, string(l.partial))
		l.partial = nil
	}
	return l.lines, l.race
}

// goNode is a running Go node.
type goNode struct {
	URL    string
	cmd    *exec.Cmd
	exited chan error
	killed atomic.Bool
}

// Kill ends the node with SIGKILL (a crash) and waits for it to exit.
func (g *goNode) Kill() {
	if g.killed.Swap(true) {
		return
	}
	_ = g.cmd.Process.Kill()
	err := <-g.exited
	g.exited <- err // for the cleanup
}

// Pause stops the node (SIGSTOP) until Resume: it keeps its connections but
// answers nothing.
func (g *goNode) Pause() { _ = g.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues a paused node.
func (g *goNode) Resume() { _ = g.cmd.Process.Signal(syscall.SIGCONT) }

// startGoNode starts the Go node with args. It is stopped with SIGTERM when
// the test ends; an unclean exit (unless it was killed) or a data race fails
// the test.
func startGoNode(t *testing.T, name string, args ...string) *goNode {
	t.Helper()
	cmd := exec.Command(serverBin, append([]string{"-addr", "127.0.0.1:0", "-name", name}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &logWriter{t: t, prefix: name + ": "}
	cmd.Stderr = logs
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
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
	fail := func(format string, a ...any) {
		lines, _ := logs.stop()
		t.Fatalf("%s: %s\n%s", name, fmt.Sprintf(format, a...), strings.Join(lines, "\n"))
	}
	var addr string
	select {
	case addr = <-first:
	case err := <-exited:
		fail("exited before printing its address: %v", err)
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		fail("printed no address within 20s")
	}
	if addr == "" {
		fail("closed stdout without printing its address")
	}
	g := &goNode{URL: "http://" + addr, cmd: cmd, exited: exited}
	t.Cleanup(func() {
		if g.killed.Load() {
			<-exited
			lines, race := logs.stop()
			if race {
				t.Errorf("%s: the race detector reported a data race:\n%s", name, strings.Join(lines, "\n"))
			}
			return
		}
		_ = cmd.Process.Signal(syscall.SIGCONT) // in case it was paused
		_ = cmd.Process.Signal(syscall.SIGTERM)
		var err error
		select {
		case err = <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			err = errors.New("did not stop within 10s of SIGTERM")
			<-exited
		}
		lines, race := logs.stop()
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if race {
			t.Errorf("%s: the race detector reported a data race:\n%s", name, strings.Join(lines, "\n"))
		} else if t.Failed() && !testing.Verbose() && len(lines) > 0 {
			t.Logf("%s log:\n%s", name, strings.Join(lines, "\n"))
		}
	})
	return g
}

// event is one event received by a client of the pool.
type event struct {
	Event string
	Args  []any
}

// nodeProc is a running e2e.js: the Node server and the emitter
// (ROLE=server), or the client pool (ROLE=clients).
type nodeProc struct {
	URL   string // the Node socket.io server (ROLE=server)
	stdin io.WriteCloser
	cmd   *exec.Cmd

	mu      sync.Mutex
	changed *sync.Cond
	results map[float64]map[string]any
	events  map[string][]event // per client
	nextID  float64
	dead    error
}

func startNodeProc(t *testing.T, env ...string) *nodeProc {
	t.Helper()
	role := "node"
	for _, e := range env {
		if r, ok := strings.CutPrefix(e, "ROLE="); ok {
			role = "node " + r
		}
	}
	cmd := exec.Command(nodePath, "e2e.js")
	cmd.Env = append(os.Environ(), env...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &logWriter{t: t, prefix: role + ": "}
	cmd.Stderr = logs
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node e2e.js: %v", err)
	}
	np := &nodeProc{stdin: in, cmd: cmd, results: map[float64]map[string]any{}, events: map[string][]event{}}
	np.changed = sync.NewCond(&np.mu)
	ready := make(chan map[string]any, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 4<<20)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				logs.Write([]byte("unparsed stdout: " + sc.Text() + "\n"))
				continue
			}
			np.mu.Lock()
			switch m["type"] {
			case "ready":
				ready <- m
			case "result":
				id, _ := m["id"].(float64)
				np.results[id] = m
			case "event":
				c, _ := m["client"].(string)
				ev, _ := m["event"].(string)
				args, _ := m["args"].([]any)
				np.events[c] = append(np.events[c], event{ev, args})
			}
			np.changed.Broadcast()
			np.mu.Unlock()
		}
		np.mu.Lock()
		np.dead = errors.New("e2e.js exited")
		np.changed.Broadcast()
		np.mu.Unlock()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT) // in case it was paused
		_ = in.Close()                          // e2e.js exits when stdin closes
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = cmd.Wait()
		lines, _ := logs.stop()
		if t.Failed() && len(lines) > 0 {
			t.Logf("%s stderr:\n%s", role, strings.Join(lines, "\n"))
		}
	})
	select {
	case m := <-ready:
		np.URL, _ = m["url"].(string)
	case <-done:
		lines, _ := logs.stop()
		t.Fatalf("e2e.js exited before it was ready:\n%s", strings.Join(lines, "\n"))
	case <-time.After(20 * time.Second):
		t.Fatal("e2e.js not ready within 20s")
	}
	return np
}

// Pause stops the process (SIGSTOP) until Resume: it keeps its connections
// but answers nothing.
func (np *nodeProc) Pause() { _ = np.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues a paused process.
func (np *nodeProc) Resume() { _ = np.cmd.Process.Signal(syscall.SIGCONT) }

// waitLocked waits until cond (called with np.mu held) is true, d passes
// (false) or the process dies (false).
func (np *nodeProc) waitLocked(d time.Duration, cond func() bool) bool {
	timer := time.AfterFunc(d, func() {
		np.mu.Lock()
		np.changed.Broadcast()
		np.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(d)
	for !cond() {
		if np.dead != nil || !time.Now().Before(deadline) {
			return false
		}
		np.changed.Wait()
	}
	return true
}

// call runs a command and returns its result, failing the test on an error.
func (np *nodeProc) call(t *testing.T, cmd map[string]any) any {
	t.Helper()
	res, err := np.try(cmd)
	if err != nil {
		t.Fatalf("node %v: %v", cmd["cmd"], err)
	}
	return res
}

// try runs a command and returns its result or error.
func (np *nodeProc) try(cmd map[string]any) (any, error) {
	np.mu.Lock()
	np.nextID++
	id := np.nextID
	np.mu.Unlock()
	cmd["id"] = id
	b, err := json.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	if _, err := np.stdin.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("write to e2e.js: %w", err)
	}
	np.mu.Lock()
	defer np.mu.Unlock()
	var m map[string]any
	if !np.waitLocked(20*time.Second, func() bool { m = np.results[id]; return m != nil }) {
		return nil, fmt.Errorf("no result within 20s (process error: %v)", np.dead)
	}
	delete(np.results, id)
	if e, ok := m["error"]; ok {
		return nil, fmt.Errorf("%v", e)
	}
	return m["result"], nil
}

// emit sends a client event with an ack from client and returns the ack's
// first argument (what socket.io-client's emitWithAck resolves with).
func (np *nodeProc) emit(t *testing.T, client, ev string, args ...any) any {
	t.Helper()
	if args == nil {
		args = []any{}
	}
	return np.call(t, map[string]any{"cmd": "emit", "client": client, "event": ev, "args": args})
}

// eventsOf returns a copy of what client received.
func (np *nodeProc) eventsOf(client string) []event {
	np.mu.Lock()
	defer np.mu.Unlock()
	return slices.Clone(np.events[client])
}

// waitEvents waits until every client in clients has an event matching f.
func (np *nodeProc) waitEvents(d time.Duration, clients []string, f func(event) bool) (missing []string) {
	np.mu.Lock()
	defer np.mu.Unlock()
	check := func() bool {
		missing = missing[:0]
		for _, c := range clients {
			if !slices.ContainsFunc(np.events[c], f) {
				missing = append(missing, c)
			}
		}
		return len(missing) == 0
	}
	np.waitLocked(d, check)
	return missing
}

// redisCluster is a running three-master Redis Cluster (no replicas).
type redisCluster struct {
	servers []*redistest.Server
}

func (c *redisCluster) addrs() []string {
	out := make([]string, len(c.servers))
	for i, s := range c.servers {
		out[i] = s.Addr
	}
	return out
}

// startRedisCluster launches three cluster-enabled redis-servers on free
// ports, joins them with redis-cli --cluster create and waits until every
// node reports cluster_state:ok. They stop when the test ends.
func startRedisCluster(t *testing.T) *redisCluster {
	t.Helper()
	c := &redisCluster{}
	for range 3 {
		dir := t.TempDir()
		c.servers = append(c.servers, redistest.Start(t,
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "5000"))
	}
	args := append([]string{"--cluster", "create"}, c.addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, s := range c.servers {
		cl := redis.NewClient(&redis.Options{Addr: s.Addr})
		poll.For(t, 30*time.Second, s.Addr+" cluster_state:ok", func() bool {
			info, err := cl.ClusterInfo(context.Background()).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		})
		_ = cl.Close()
	}
	return c
}

// shardNumSub sums PUBSUB SHARDNUMSUB channel over every master.
func (c *redisCluster) shardNumSub(t *testing.T, channel string) int64 {
	t.Helper()
	var n int64
	for _, s := range c.servers {
		cl := redis.NewClient(&redis.Options{Addr: s.Addr})
		res, err := cl.PubSubShardNumSub(context.Background(), channel).Result()
		_ = cl.Close()
		if err != nil {
			t.Fatalf("PUBSUB SHARDNUMSUB on %s: %v", s.Addr, err)
		}
		n += res[channel]
	}
	return n
}
