package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The gateway binary is built once per test binary into buildDir.
var (
	buildOnce  sync.Once
	buildDir   string
	gatewayBin string
	buildErr   error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// envGatewayBin names a prebuilt tradewire binary to test instead of
// building ./cmd/tradewire.
const envGatewayBin = "TRADEWIRE_INTEROP_GATEWAY_BIN"

// buildGateway compiles ./cmd/tradewire, the binary operators run.
func buildGateway(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(envGatewayBin); p != "" {
		return p
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "tradewire-interop-")
		if buildErr != nil {
			return
		}
		gatewayBin = filepath.Join(buildDir, "tradewire")
		start := time.Now()
		cmd := exec.Command(goTool(), "build", "-o", gatewayBin, "github.com/tradewire/tradewire/cmd/tradewire")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/tradewire: %w\n%s", err, out)
			return
		}
		t.Logf("built cmd/tradewire in %v", time.Since(start).Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return gatewayBin
}

// syncBuffer collects a process's output for failure reports.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 4<<20 {
		return len(p), nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// gatewayProc is a running tradewire binary.
type gatewayProc struct {
	base   string
	apiKey string
	logs   *syncBuffer
}

const interopAPIKey = "interop-publish-key-0123456789"

// startGateway runs the tradewire binary configured by env (on top of the
// settings every interop gateway shares) on a free loopback port and waits
// until /readyz answers 200.
func startGateway(t *testing.T, env map[string]string) *gatewayProc {
	t.Helper()
	bin := buildGateway(t)
	vars := map[string]string{
		"TRADEWIRE_ADDR":                        "127.0.0.1:0",
		"TRADEWIRE_LOG_FORMAT":                  "json",
		"TRADEWIRE_SESSION_SECRETS":             strings.Join(secrets, ","),
		"TRADEWIRE_API_KEYS":                    interopAPIKey,
		"TRADEWIRE_RATE_CONNECTIONS_PER_MINUTE": "10000",
		"TRADEWIRE_DRAIN_WINDOW":                "100ms",
		"TRADEWIRE_SHUTDOWN_TIMEOUT":            "5s",
		"TRADEWIRE_CLUSTER_SECRET":              "interop-cluster-secret-0123456789abcdef",
	}
	if env["TRADEWIRE_SESSION_STORE"] == "" && env["TRADEWIRE_MONGO_URL"] == "" {
		// Secrets and keys without a session store: dev mode must be asked for.
		vars["TRADEWIRE_DEV_MODE"] = "true"
	}
	for k, v := range env {
		vars[k] = v
	}
	cmd := exec.Command(bin)
	for _, kv := range os.Environ() { // settings of the caller's shell must not leak in
		if !strings.HasPrefix(kv, "TRADEWIRE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	g := &gatewayProc{apiKey: interopAPIKey, logs: &syncBuffer{}}
	cmd.Stdout = g.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start tradewire: %v", err)
	}
	done := make(chan struct{})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = g.logs.Write(append(line, '\n'))
			if sent {
				continue
			}
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "listening" && rec.Addr != "" {
				addr <- rec.Addr
				sent = true
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("tradewire log:\n%s", tail(g.logs.String(), 60))
		}
	})
	select {
	case a := <-addr:
		g.base = "http://" + a
	case <-done:
		t.Fatalf("tradewire exited at start:\n%s", g.logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("tradewire not listening after 30s:\n%s", g.logs.String())
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body := g.get(t, "/readyz")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: HTTP %d %s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return g
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

func (g *gatewayProc) get(t *testing.T, path string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", g.base+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// publishStatus posts one domain event to the publish API and returns the
// answer.
func (g *gatewayProc) publishStatus(t *testing.T, event any) (int, string) {
	t.Helper()
	body, _ := json.Marshal(event)
	req, _ := http.NewRequest("POST", g.base+"/api/v1/events", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+g.apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// publish posts one domain event to the publish API and requires it to be
// accepted.
func (g *gatewayProc) publish(t *testing.T, event any) {
	t.Helper()
	status, b := g.publishStatus(t, event)
	var r struct {
		Accepted int `json:"accepted"`
	}
	if status != http.StatusAccepted || json.Unmarshal([]byte(b), &r) != nil || r.Accepted != 1 {
		body, _ := json.Marshal(event)
		t.Fatalf("publish %s: HTTP %d %s", body, status, b)
	}
}

// report is one line from client.js.
type report struct {
	ID        string            `json:"id"`
	T         int64             `json:"t"`
	Type      string            `json:"type"`
	SocketID  string            `json:"socketId"`
	Transport string            `json:"transport"`
	First     string            `json:"firstTransport"`
	Message   string            `json:"message"`
	Data      json.RawMessage   `json:"data"`
	Event     string            `json:"event"`
	Args      []json.RawMessage `json:"args"`
	Offset    string            `json:"offset"`
	Seq       int               `json:"seq"`
	Err       string            `json:"err"`
	Reason    string            `json:"reason"`

	at time.Time // when Go read it
}

func (r report) String() string {
	switch r.Type {
	case "event":
		var b strings.Builder
		for _, a := range r.Args {
			b.WriteString(" ")
			b.Write(a)
		}
		return fmt.Sprintf("event %q%s", r.Event, b.String())
	case "connect_error":
		return fmt.Sprintf("connect_error %q %s", r.Message, r.Data)
	case "disconnect":
		return "disconnect " + r.Reason
	}
	return r.Type
}

// clients is a client.js process: real socket.io-client sockets driven over
// JSON lines.
type clients struct {
	stdin  io.WriteCloser
	wmu    sync.Mutex
	mu     sync.Mutex
	queues map[string]chan report
	seq    int
	dead   chan struct{}
	stderr *syncBuffer
}

func startClients(t *testing.T) *clients {
	t.Helper()
	installNodeApp(t)
	cmd := exec.Command("node", "client.js")
	cmd.Dir = appDir
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &clients{stdin: stdin, queues: map[string]chan report{}, dead: make(chan struct{}), stderr: &syncBuffer{}}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node client.js: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = stdin.Close()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	ready := make(chan struct{})
	go func() {
		defer close(c.dead)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		first := true
		for sc.Scan() {
			line := sc.Text()
			if first {
				first = false
				if line == "ready" {
					close(ready)
					continue
				}
			}
			var r report
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				_, _ = c.stderr.Write([]byte("unparsable report: " + line + "\n"))
				continue
			}
			r.at = time.Now()
			c.queue(r.ID) <- r
		}
	}()
	select {
	case <-ready:
	case <-c.dead:
		t.Fatalf("client.js exited at start:\n%s", c.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("client.js not ready after 30s:\n%s", c.stderr.String())
	}
	return c
}

func (c *clients) queue(id string) chan report {
	c.mu.Lock()
	defer c.mu.Unlock()
	q, ok := c.queues[id]
	if !ok {
		q = make(chan report, 1024)
		c.queues[id] = q
	}
	return q
}

func (c *clients) send(t *testing.T, cmd map[string]any) {
	t.Helper()
	b, _ := json.Marshal(cmd)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.stdin.Write(append(b, '\n')); err != nil {
		t.Fatalf("client.js stdin: %v\n%s", err, c.stderr.String())
	}
}

// sock is one socket.io-client socket in client.js.
type sock struct {
	c        *clients
	id       string
	q        chan report
	upgraded string // the transport of the last upgrade report skipped
}

// connectOpts are the io() options the test varies.
type connectOpts struct {
	Cookie     string         // sent as the Cookie header (extraHeaders)
	Auth       map[string]any // the CONNECT payload
	Transports []string       // default: polling, then upgrade to websocket
}

func (c *clients) open(t *testing.T, id, url string, o connectOpts) *sock {
	t.Helper()
	cmd := map[string]any{"op": "connect", "id": id, "url": url}
	if o.Cookie != "" {
		cmd["cookie"] = o.Cookie
	}
	if o.Auth != nil {
		cmd["auth"] = o.Auth
	}
	if o.Transports != nil {
		cmd["transports"] = o.Transports
	}
	s := &sock{c: c, id: id, q: c.queue(id)}
	c.send(t, cmd)
	return s
}

// next returns the socket's next report, skipping transport upgrades.
func (s *sock) next(t *testing.T, timeout time.Duration) report {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case r := <-s.q:
			if r.Type == "fatal" {
				t.Fatalf("client.js: %s", r.Message)
			}
			if r.Type == "upgrade" {
				s.upgraded = r.Transport
				continue
			}
			return r
		case <-s.c.dead:
			t.Fatalf("socket %s: client.js died:\n%s", s.id, s.c.stderr.String())
		case <-deadline:
			t.Fatalf("socket %s: nothing within %v", s.id, timeout)
		}
	}
}

// quiet fails if the socket reports anything but upgrades within d.
func (s *sock) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case r := <-s.q:
			if r.Type != "upgrade" {
				t.Fatalf("socket %s: unexpected %v", s.id, r)
			}
		case <-deadline:
			return
		}
	}
}

// waitUpgrade waits until the socket reported its upgrade to websocket.
func (s *sock) waitUpgrade(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for s.upgraded != "websocket" {
		select {
		case r := <-s.q:
			if r.Type != "upgrade" {
				t.Fatalf("socket %s: unexpected %v while waiting for the upgrade", s.id, r)
			}
			s.upgraded = r.Transport
		case <-deadline:
			t.Fatalf("socket %s: no upgrade to websocket within %v", s.id, timeout)
		}
	}
}

// connected waits for the connection and returns the socket id.
func (s *sock) connected(t *testing.T) report {
	t.Helper()
	r := s.next(t, 15*time.Second)
	if r.Type != "connect" {
		t.Fatalf("socket %s: %v, want connect", s.id, r)
	}
	return r
}

// refused waits for connect_error and returns err.data.code.
func (s *sock) refused(t *testing.T, timeout time.Duration) (code, message string) {
	t.Helper()
	r := s.next(t, timeout)
	if r.Type != "connect_error" {
		t.Fatalf("socket %s: %v, want connect_error", s.id, r)
	}
	var data struct {
		Code string `json:"code"`
	}
	if err := json.Unmarshal(r.Data, &data); err != nil {
		t.Fatalf("socket %s: connect_error %q carries no data object: %s", s.id, r.Message, r.Data)
	}
	return data.Code, r.Message
}

// emit emits event with args and an ack callback, and returns the ack's
// first argument. Other reports that arrive meanwhile are returned too.
func (s *sock) emit(t *testing.T, event string, args ...any) (ack json.RawMessage, others []report) {
	t.Helper()
	s.c.mu.Lock()
	s.c.seq++
	seq := s.c.seq
	s.c.mu.Unlock()
	if args == nil {
		args = []any{}
	}
	s.c.send(t, map[string]any{"op": "emit", "id": s.id, "seq": seq, "event": event, "args": args})
	for {
		r := s.next(t, 10*time.Second)
		if r.Type == "ack" && r.Seq == seq {
			if r.Err != "" || len(r.Args) == 0 {
				t.Fatalf("socket %s: %s ack: err %q args %s", s.id, event, r.Err, r.Args)
			}
			return r.Args[0], others
		}
		others = append(others, r)
	}
}

func (s *sock) close(t *testing.T) {
	t.Helper()
	s.c.send(t, map[string]any{"op": "close", "id": s.id})
}
