package soak

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cmd/tradewire once per test process (without -race: the
// gateway is measured as it ships), or returns TRADEWIRE_SOAK_GATEWAY_BIN
// (a prebuilt binary, e.g. one with a deliberate leak to check that the
// soak catches it).
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("TRADEWIRE_SOAK_GATEWAY_BIN"); p != "" {
			binPath = p
			return
		}
		dir, err := os.MkdirTemp("", "tradewire-soak-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "tradewire")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/tradewire/tradewire/cmd/tradewire").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// node is one gateway process.
type node struct {
	name      string
	url       string
	port      int
	debugURL  string
	pid       int
	cmd       *exec.Cmd
	done      chan struct{}
	mu        sync.Mutex
	log       []string // warn and error lines, bounded
	logLines  int
	panicked  bool
	exitState string
}

const maxKeptLogLines = 2000

func (n *node) exited() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

func (n *node) logTail(lines int) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	from := max(0, len(n.log)-lines)
	return strings.Join(n.log[from:], "\n")
}

func startNode(t *testing.T, name, redisURL string, extra ...string) *node {
	t.Helper()
	addr, debugAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command(binary(t))
	cmd.Env = append(os.Environ(),
		"TRADEWIRE_ADDR="+addr, "TRADEWIRE_DEBUG_ADDR="+debugAddr, "TRADEWIRE_NODE_ID=soak-"+name,
		"TRADEWIRE_REDIS_URL="+redisURL, "TRADEWIRE_SESSION_STORE=redis",
		"TRADEWIRE_SESSION_SECRETS="+secret, "TRADEWIRE_API_KEYS="+apiKey,
		"TRADEWIRE_CLUSTER_SECRET=soak-test-cluster-secret-0123456789ab",
		"TRADEWIRE_LOG_FORMAT=text", "TRADEWIRE_LOG_LEVEL=warn",
		"TRADEWIRE_RATE_CONNECTIONS_PER_MINUTE=1000000", "TRADEWIRE_RATE_EVENTS_PER_MINUTE=1000000",
		"TRADEWIRE_DRAIN_WINDOW=1s", "TRADEWIRE_SHUTDOWN_TIMEOUT=5s")
	cmd.Env = append(cmd.Env, extra...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	n := &node{name: name, url: "http://" + addr, port: portOf(addr), debugURL: "http://" + debugAddr,
		cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.pid = cmd.Process.Pid
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			n.mu.Lock()
			n.logLines++
			if strings.Contains(line, "panic") || strings.Contains(line, "fatal error") {
				n.panicked = true
			}
			if len(n.log) < maxKeptLogLines {
				n.log = append(n.log, line)
			}
			n.mu.Unlock()
		}
	}()
	go func() {
		err := cmd.Wait()
		n.mu.Lock()
		n.exitState = fmt.Sprint(err)
		n.mu.Unlock()
		close(n.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-n.done
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.panicked {
			t.Errorf("node %s panicked:\n%s", n.name, strings.Join(n.log, "\n"))
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if n.exited() {
			t.Fatalf("node %s exited at start: %s\n%s", n.name, n.exitState, n.logTail(50))
		}
		resp, err := http.Get(n.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return n
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("node %s not ready:\n%s", n.name, n.logTail(50))
	return nil
}

// probeClient never keeps connections alive, so the sampler leaves no
// socket of its own open on a node between samples.
var probeClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func httpGet(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d", u, resp.StatusCode)
	}
	return b, nil
}

// metricValues sums the samples of the wanted Prometheus metrics (all
// label sets of a name are added up).
func metricValues(text []byte, names ...string) map[string]float64 {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	out := make(map[string]float64, len(names))
	for _, line := range strings.Split(string(text), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		name := line[:sp]
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
		}
		if !want[name] {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err == nil {
			out[name] += v
		}
	}
	return out
}

// fdCounts classifies a process's open file descriptors: TCP sockets on
// the gateway's listening port (clients, the listener excluded), sockets
// to Redis, and everything else.
type fdCounts struct {
	Total, Client, Redis int
}

func tcpInodes(pid int) map[string][2]int {
	// inode -> {local port, remote port}; state 0A (LISTEN) is skipped.
	out := map[string][2]int{}
	for _, f := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		if err != nil {
			continue
		}
		for i, line := range strings.Split(string(b), "\n") {
			fs := strings.Fields(line)
			if i == 0 || len(fs) < 10 || fs[3] == "0A" {
				continue
			}
			out[fs[9]] = [2]int{hexPort(fs[1]), hexPort(fs[2])}
		}
	}
	return out
}

func hexPort(addr string) int {
	i := strings.LastIndexByte(addr, ':')
	p, _ := strconv.ParseInt(addr[i+1:], 16, 32)
	return int(p)
}

func countFDs(pid, listenPort, redisPort int) (fdCounts, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fdCounts{}, err
	}
	inodes := tcpInodes(pid)
	var c fdCounts
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		c.Total++
		if !strings.HasPrefix(link, "socket:[") {
			continue
		}
		ports, ok := inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")]
		switch {
		case !ok:
		case ports[0] == listenPort:
			c.Client++
		case ports[1] == redisPort:
			c.Redis++
		}
	}
	return c, nil
}

// goroutineStacks parses a /debug/pprof/goroutine?debug=1 profile into
// count per stack (function names only, innermost first).
func goroutineStacks(profile []byte) map[string]int {
	out := map[string]int{}
	for _, block := range strings.Split(string(profile), "\n\n") {
		lines := strings.Split(strings.TrimSpace(block), "\n")
		if len(lines) > 0 && strings.HasPrefix(lines[0], "goroutine profile:") {
			lines = lines[1:] // the first group follows the header line
		}
		if len(lines) < 2 {
			continue
		}
		head := strings.Fields(lines[0])
		if len(head) < 2 || head[1] != "@" {
			continue
		}
		n, err := strconv.Atoi(head[0])
		if err != nil {
			continue
		}
		var frames []string
		for _, l := range lines[1:] {
			fs := strings.Fields(l)
			if len(fs) >= 3 && fs[0] == "#" {
				fn := fs[2]
				if i := strings.LastIndex(fn, "+0x"); i > 0 {
					fn = fn[:i]
				}
				frames = append(frames, fn)
			}
		}
		out[strings.Join(frames, " <- ")] += n
	}
	return out
}

// stackGrowth lists the stacks that have more goroutines in after than in
// before, largest growth first.
func stackGrowth(before, after map[string]int, top int) []string {
	type g struct {
		stack  string
		before int
		after  int
	}
	var gs []g
	for s, n := range after {
		if n > before[s] {
			gs = append(gs, g{s, before[s], n})
		}
	}
	sort.Slice(gs, func(i, j int) bool { return gs[i].after-gs[i].before > gs[j].after-gs[j].before })
	var out []string
	for i, x := range gs {
		if i == top {
			break
		}
		frames := strings.Split(x.stack, " <- ")
		// Skip the runtime's parking frames to show where it waits.
		for len(frames) > 3 && (strings.HasPrefix(frames[0], "runtime.") || strings.HasPrefix(frames[0], "internal/")) {
			frames = frames[1:]
		}
		frames = frames[:min(len(frames), 5)]
		out = append(out, fmt.Sprintf("%+d (%d -> %d): %s", x.after-x.before, x.before, x.after, strings.Join(frames, " <- ")))
	}
	return out
}

// procCPU returns the CPU seconds (user + system) a process used so far.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	fs := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fs) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(fs[11], 64)
	st, _ := strconv.ParseFloat(fs[12], 64)
	return (ut + st) / 100 // USER_HZ
}
