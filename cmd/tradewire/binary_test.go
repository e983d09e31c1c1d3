package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tradewire/tradewire/internal/testutil/poll"
	"github.com/tradewire/tradewire/internal/testutil/sioclient"
)

var (
	binDir   string
	binOnce  sync.Once
	binPath  string
	binError error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tradewire-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// gatewayBinary builds ./cmd/tradewire once per test run (with -race when
// the tests run with it, so the binary's own races are reported too).
func gatewayBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		gobin, err := exec.LookPath("go")
		if err != nil {
			gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		binPath = filepath.Join(binDir, "tradewire")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command(gobin, append(args, ".")...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			binError = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binError != nil {
		t.Fatal(binError)
	}
	return binPath
}

// proc is one running gateway binary.
type proc struct {
	cmd    *exec.Cmd
	base   string
	stderr *syncBuffer
	done   chan struct{}
	state  *os.ProcessState
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

// startBinary starts the gateway in dev mode on a free port with settings
// (TRADEWIRE_ names) and waits until /readyz answers 200.
func startBinary(t *testing.T, settings map[string]string) *proc {
	t.Helper()
	p := launchBinary(t, settings)
	p.waitReady(t)
	return p
}

// launchBinary starts the gateway like startBinary without waiting for it.
func launchBinary(t *testing.T, settings map[string]string) *proc {
	t.Helper()
	bin := gatewayBinary(t)
	addr := freeAddr(t)
	cmd := exec.Command(bin)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TRADEWIRE_") && !strings.HasPrefix(kv, "GORACE=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "TRADEWIRE_ADDR="+addr, "GORACE=halt_on_error=0 exitcode=66 atexit_sleep_ms=0")
	for k, v := range settings {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &proc{cmd: cmd, base: "http://" + addr, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout = io.Discard
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		p.state = cmd.ProcessState
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("gateway stderr (tail):\n%s", tail(p.stderr.String(), 4000))
		}
	})
	return p
}

// waitReady waits until /readyz answers 200.
func (p *proc) waitReady(t *testing.T) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	ok := poll.Check(30*time.Second, func() bool {
		if p.exited() {
			return true
		}
		resp, err := client.Get(p.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if !ok || p.exited() {
		t.Fatalf("gateway not ready (exited %v):\n%s", p.exited(), p.stderr.String())
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal: %v", err)
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.state.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("gateway still running after %v", timeout)
		return -1
	}
}

// checkLogs fails on panics, data races or fatal runtime errors in stderr.
func (p *proc) checkLogs(t *testing.T) {
	t.Helper()
	s := p.stderr.String()
	for _, bad := range []string{"panic:", "DATA RACE", "fatal error:", "goroutine "} {
		if strings.Contains(s, bad) {
			t.Errorf("gateway stderr contains %q:\n%s", bad, tail(s, 8000))
		}
	}
}

// logLines returns the JSON log records whose msg is msg.
func (p *proc) logLines(msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// dialMany connects n clients over websocket, conc at a time, spreading
// them over a few dev users.
func dialMany(t *testing.T, base string, n, conc int) []*sioclient.Client {
	t.Helper()
	cookies := make([]string, 10)
	for i := range cookies {
		cookies[i] = devLoginUser(t, base, "user"+strconv.Itoa(i))
	}
	clients := make([]*sioclient.Client, n)
	errs := make([]error, n)
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			h := http.Header{}
			h.Set("Cookie", cookies[i%len(cookies)])
			clients[i], errs[i] = sioclient.Dial(base, sioclient.Options{Header: h, Timeout: 15 * time.Second})
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("dialing %d clients: %v", n, err)
	}
	return clients
}

func devLoginUser(t testing.TB, base, user string) string {
	t.Helper()
	resp, err := http.Post(base+"/dev/login", "application/json", strings.NewReader(`{"userId":"`+user+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Cookie string `json:"cookie"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&r) != nil || r.Cookie == "" {
		t.Fatalf("dev login %s: HTTP %d", user, resp.StatusCode)
	}
	return r.Cookie
}

type readyProbe struct {
	code int
	body string
	at   time.Duration
}

// probeReadiness polls /readyz from start until the listener refuses or
// stop is closed, and returns the answers seen.
func probeReadiness(base string, start time.Time, stop <-chan struct{}) []readyProbe {
	client := &http.Client{Timeout: 500 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	var out []readyProbe
	for {
		select {
		case <-stop:
			return out
		default:
		}
		resp, err := client.Get(base + "/readyz")
		if err != nil {
			if len(out) > 0 {
				return out
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out = append(out, readyProbe{code: resp.StatusCode, body: string(b), at: time.Since(start)})
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBinaryGracefulShutdownOf1000Clients is the shutdown acceptance test
// on the real binary: SIGTERM with 1,000 websocket clients connected.
func TestBinaryGracefulShutdownOf1000Clients(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary with 1,000 clients; -short skips it")
	}
	const (
		n      = 1000
		window = 3 * time.Second
	)
	p := startBinary(t, map[string]string{
		"TRADEWIRE_RATE_CONNECTIONS_PER_MINUTE": "100000",
		"TRADEWIRE_DRAIN_WINDOW":                window.String(),
		"TRADEWIRE_LOG_LEVEL":                   "info",
	})
	dialStart := time.Now()
	clients := dialMany(t, p.base, n, 32)
	t.Logf("%d clients connected in %v", n, time.Since(dialStart).Round(time.Millisecond))

	// Record when each client sees its connection end.
	closedAt := make([]time.Duration, n)
	var closedWG sync.WaitGroup
	var start time.Time
	startSet := make(chan struct{})
	for i, c := range clients {
		closedWG.Add(1)
		go func() {
			defer closedWG.Done()
			err := c.WaitClosed(window + 20*time.Second)
			<-startSet
			if err != nil {
				closedAt[i] = -1
				return
			}
			closedAt[i] = time.Since(start)
		}()
	}

	stopProbe := make(chan struct{})
	probes := make(chan []readyProbe, 1)
	start = time.Now()
	close(startSet)
	p.signal(t, syscall.SIGTERM)
	go func() { probes <- probeReadiness(p.base, start, stopProbe) }()

	// A new connection during the drain is refused.
	var lateErr error
	if poll.Check(window/2, func() bool { return len(p.logLines("draining")) > 0 }) {
		_, lateErr = sioclient.Dial(p.base, sioclient.Options{Timeout: 2 * time.Second})
	}

	code := p.wait(t, window+7*time.Second)
	took := time.Since(start)
	close(stopProbe)
	seen := <-probes
	t.Logf("SIGTERM to exit with %d clients: %v (drain window %v)", n, took.Round(time.Millisecond), window)
	if code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	p.checkLogs(t)

	// Readiness said draining (503) while connections were being closed.
	// (A probe sent before the process handled the signal may still get 200;
	// once draining, readiness must never come back.)
	draining503 := false
	for _, pr := range seen {
		if pr.code == http.StatusServiceUnavailable && strings.Contains(pr.body, `"draining"`) {
			draining503 = true
		}
		if pr.code == http.StatusOK && draining503 {
			t.Errorf("/readyz answered 200 %v after SIGTERM, after it had said draining: %s", pr.at, pr.body)
		}
	}
	if !draining503 {
		t.Errorf("/readyz never answered 503 draining during the drain (%d probes: %+v)", len(seen), seen)
	} else {
		t.Logf("/readyz probed %d times, from %v to %v after SIGTERM", len(seen), seen[0].at.Round(time.Millisecond), seen[len(seen)-1].at.Round(time.Millisecond))
	}
	if lateErr == nil {
		t.Error("a new connection was accepted during the drain")
	}

	// Every client got server:shutdown with a reconnect delay, then was closed.
	closedWG.Wait()
	distinct := map[int64]bool{}
	var first, last time.Duration = time.Hour, 0
	for i, c := range clients {
		ev, err := c.WaitEvent("server:shutdown", time.Second)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		var payload struct {
			ReconnectInMs *int64 `json:"reconnectInMs"`
		}
		// Args[1], when present, is the connection-state-recovery offset.
		if len(ev.Args) == 0 || json.Unmarshal(ev.Args[0], &payload) != nil || payload.ReconnectInMs == nil {
			t.Fatalf("client %d: server:shutdown payload %s", i, ev.Args)
		}
		if ms := *payload.ReconnectInMs; ms < 0 || ms > (window+time.Second).Milliseconds() {
			t.Fatalf("client %d: reconnectInMs %d outside [0, window+1s]", i, ms)
		}
		distinct[*payload.ReconnectInMs] = true
		if closedAt[i] < 0 {
			t.Fatalf("client %d: not closed", i)
		}
		first, last = min(first, closedAt[i]), max(last, closedAt[i])
	}
	t.Logf("clients closed from %v to %v after SIGTERM; %d distinct reconnect delays", first.Round(time.Millisecond), last.Round(time.Millisecond), len(distinct))
	if len(distinct) < n/2 {
		t.Errorf("only %d distinct reconnectInMs among %d clients: reconnections are not spread", len(distinct), n)
	}
	// Disconnects are spread over the window: the last is scheduled at
	// window*(n-1)/n, the first at once.
	if last < window*2/3 {
		t.Errorf("last client closed %v after SIGTERM: disconnects not spread over the %v window", last, window)
	}
	if first > window/2 {
		t.Errorf("first client closed only %v after SIGTERM", first)
	}

	drain := p.logLines("draining")
	if len(drain) != 1 || drain[0]["connections"] != float64(n) {
		t.Errorf("draining log: %v", drain)
	}
	if len(p.logLines("shutdown complete")) != 1 {
		t.Error("no shutdown complete log")
	}
}

// TestBinarySecondSignalExitsAtOnce: a second SIGTERM during a long drain
// ends the process at once with a non-zero code.
func TestBinarySecondSignalExitsAtOnce(t *testing.T) {
	p := startBinary(t, map[string]string{
		"TRADEWIRE_RATE_CONNECTIONS_PER_MINUTE": "1000",
		"TRADEWIRE_DRAIN_WINDOW":                "20s",
		"TRADEWIRE_SHUTDOWN_TIMEOUT":            "40s",
		"TRADEWIRE_DEMO_FEED":                   "false",
	})
	clients := dialMany(t, p.base, 20, 10)
	p.signal(t, syscall.SIGTERM)
	if !poll.Check(5*time.Second, func() bool { return len(p.logLines("draining")) > 0 }) {
		t.Fatal("no draining log after the first SIGTERM")
	}
	if _, err := clients[0].WaitEvent("server:shutdown", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if p.exited() {
		t.Fatal("exited before the second signal although the drain window is 20s")
	}
	start := time.Now()
	p.signal(t, syscall.SIGTERM)
	code := p.wait(t, 5*time.Second)
	t.Logf("second SIGTERM to exit: %v", time.Since(start).Round(time.Millisecond))
	if code == 0 {
		t.Fatal("exit code 0 after a second SIGTERM, want non-zero")
	}
	if len(p.logLines("second signal, exiting now")) != 1 {
		t.Errorf("no second-signal log")
	}
	if len(p.logLines("shutdown complete")) != 0 {
		t.Errorf("the drain completed although the process was told to exit at once")
	}
	for i, c := range clients {
		if err := c.WaitClosed(5 * time.Second); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	p.checkLogs(t)
}

// TestBinarySIGINTDrains: SIGINT (Ctrl-C) drains like SIGTERM.
func TestBinarySIGINTDrains(t *testing.T) {
	p := startBinary(t, map[string]string{"TRADEWIRE_DRAIN_WINDOW": "1s"})
	clients := dialMany(t, p.base, 2, 2)
	p.signal(t, syscall.SIGINT)
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGINT", code)
	}
	if sig := p.logLines("signal received, draining (send it again to exit at once)"); len(sig) != 1 || sig[0]["signal"] != "interrupt" {
		t.Fatalf("signal log: %v", sig)
	}
	// The first client is closed at once, the second half-way through the
	// window: it has long had its notice when the process exits.
	if _, err := clients[1].WaitEvent("server:shutdown", time.Second); err != nil {
		t.Fatal(err)
	}
	p.checkLogs(t)
}

// TestBinaryShutdownNoticeNotLostAtExit: every client must receive
// server:shutdown even when its connection is closed right before the
// process exits (drain window 0, or the last client of any window). The
// gateway must not exit before the queued frames are written.
func TestBinaryShutdownNoticeNotLostAtExit(t *testing.T) {
	const n = 300
	p := startBinary(t, map[string]string{
		"TRADEWIRE_DRAIN_WINDOW":                "0s",
		"TRADEWIRE_RATE_CONNECTIONS_PER_MINUTE": "1000",
		"TRADEWIRE_LOG_LEVEL":                   "warn",
	})
	clients := dialMany(t, p.base, n, 20)
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	var lost []string
	for i, c := range clients {
		if _, err := c.WaitEvent("server:shutdown", 2*time.Second); err != nil {
			lost = append(lost, fmt.Sprintf("client %d: %v", i, err))
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d clients never received server:shutdown (the process exited before writing it); first: %s", len(lost), n, lost[0])
	}
	p.checkLogs(t)
}

// TestBinaryRedisUnreachableAtStart: with the cluster Redis unreachable the
// gateway must not hang silently: within 15s it either exits non-zero
// naming TRADEWIRE_REDIS_URL, or serves /healthz (readiness false); and a
// single SIGTERM then ends it.
func TestBinaryRedisUnreachableAtStart(t *testing.T) {
	p := launchBinary(t, map[string]string{
		"TRADEWIRE_REDIS_URL":       "redis://127.0.0.1:1",
		"TRADEWIRE_SESSION_STORE":   "redis",
		"TRADEWIRE_SESSION_SECRETS": "test-secret",
		"TRADEWIRE_CLUSTER_SECRET":  "binary-test-cluster-secret-0123456789",
	})
	client := &http.Client{Timeout: 500 * time.Millisecond}
	var healthz int
	poll.Check(15*time.Second, func() bool {
		if p.exited() {
			return true
		}
		resp, err := client.Get(p.base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		healthz = resp.StatusCode
		return true
	})
	if p.exited() {
		if code := p.state.ExitCode(); code == 0 || !strings.Contains(p.stderr.String(), "TRADEWIRE_REDIS_URL") {
			t.Fatalf("exited %d without naming TRADEWIRE_REDIS_URL", code)
		}
		return
	}
	if healthz != http.StatusOK {
		t.Errorf("after 15s with Redis unreachable the gateway neither exited nor answered /healthz (it is stuck starting)")
	}
	p.signal(t, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("one SIGTERM did not stop a gateway whose Redis is unreachable")
	}
	if strings.Contains(p.stderr.String(), "second signal") {
		t.Fatal("exited through the second-signal path")
	}
}
