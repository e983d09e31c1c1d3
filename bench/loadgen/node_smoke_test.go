package loadgen

// Smoke runs of the real load generator against the real Node baseline
// (bench/baseline-node: socket.io 4.8.4) and a real Redis. The machine may be
// shared, so they assert what must hold under any load (every client ready,
// every published message delivered, the right errors), never timings.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tradewire/tradewire/internal/testutil/redistest"
)

func TestMain(m *testing.M) {
	if os.Getenv("LOADGEN_TEST_WORKER") == "1" {
		if err := ServeWorker(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var npmOnce sync.Once

// nodeBaselineDir returns bench/baseline-node with its pinned dependencies
// installed (npm ci from package-lock.json when node_modules is missing).
func nodeBaselineDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../baseline-node")
	if err != nil {
		t.Fatal(err)
	}
	npmOnce.Do(func() {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "socket.io")); err == nil {
			return
		}
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
	})
	return dir
}

type nodeServer struct {
	URL string
	PID int
	log *bytes.Buffer
}

func startNode(t *testing.T, redisURL string, env ...string) *nodeServer {
	t.Helper()
	dir := nodeBaselineDir(t)
	port := redistest.FreePort(t)
	cmd := exec.Command("node", "server.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port), "HOST=127.0.0.1", "REDIS_URL="+redisURL,
		"SESSION_SECRETS=smoke-secret", "API_KEYS=smoke-key")
	cmd.Env = append(cmd.Env, env...)
	var logBuf bytes.Buffer
	cmd.Stderr = &logBuf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	s := &nodeServer{URL: "http://127.0.0.1:" + strconv.Itoa(port), PID: cmd.Process.Pid, log: &logBuf}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.URL + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		select {
		case <-done:
			t.Fatalf("node exited: %s", logBuf.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("node not ready: %s", logBuf.String())
	return nil
}

func smokeConfig(scenario string, redisURL string, urls ...string) Config {
	return Config{
		Scenario: scenario, URLs: urls, RedisURL: redisURL, Secret: "smoke-secret", APIKey: "smoke-key",
		RampRate: 400, Hold: 300 * time.Millisecond, StepDur: 500 * time.Millisecond, Warmup: 200 * time.Millisecond,
		RateStart: 20, RateFactor: 2, MaxSteps: 2, P99Limit: 10 * time.Second, MinDeliver: 0.9, Drain: 300 * time.Millisecond,
		ConnectTimeout: 10 * time.Second, StormTimeout: 20 * time.Second,
	}
}

func TestNodeBaselineSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node and redis")
	}
	rs := redistest.Start(t)
	node := startNode(t, rs.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var log bytes.Buffer

	t.Run("idle websocket with server stats", func(t *testing.T) {
		cfg := smokeConfig("idle", rs.URL(), node.URL)
		cfg.Conns, cfg.Label = 40, "node"
		cfg.ServerPIDs = []int{node.PID}
		cfg.DebugURLs = []string{node.URL + "/debug/vars"}
		cfg.SourceIPs = []string{"127.0.0.2", "127.0.0.3"}
		res, err := Run(ctx, cfg, &log)
		if err != nil {
			t.Fatalf("%v\n%s", err, log.String())
		}
		if res.Ramp.Ready != 40 || res.Ramp.Never != 0 || res.Ramp.ReadyLat.Count != 40 || res.Ramp.Connect.Count != 40 {
			t.Fatalf("%+v", res.Ramp)
		}
		if res.Server == nil || res.Server.RSSAfterKB == 0 || res.Server.DebugAfter["sockets"] != 40 || res.Server.DebugBefore["sockets"] != 0 {
			t.Fatalf("%+v", res.Server)
		}
		if res.Client.RSSKB == 0 || res.LoadAvg == "" {
			t.Fatalf("%+v", res.Client)
		}
	})

	t.Run("idle with one broadcast to every socket", func(t *testing.T) {
		cfg := smokeConfig("idle", rs.URL(), node.URL)
		cfg.Conns, cfg.BroadcastAll = 30, true
		res, err := Run(ctx, cfg, &log)
		if err != nil {
			t.Fatalf("%v\n%s", err, log.String())
		}
		b := res.Broadcast
		if b == nil || b.Expected != 30 || b.Received != 30 || b.Latency.Count != 30 || b.Latency.MaxMS <= 0 || b.Drops != 0 {
			t.Fatalf("broadcast %+v", b)
		}
	})

	t.Run("idle polling with auth.sessionID", func(t *testing.T) {
		cfg := smokeConfig("idle", rs.URL(), node.URL)
		cfg.Conns, cfg.Transport, cfg.AuthMode = 10, "polling", "auth"
		res, err := Run(ctx, cfg, &log)
		if err != nil || res.Ramp.Ready != 10 {
			t.Fatalf("%v %+v\n%s", err, res.Ramp, log.String())
		}
	})

	t.Run("bad secret is refused with connect_error", func(t *testing.T) {
		cfg := smokeConfig("idle", rs.URL(), node.URL)
		cfg.Conns, cfg.Secret, cfg.RampTimeout = 5, "wrong-secret", 1500*time.Millisecond
		res, err := Run(ctx, cfg, &log)
		if err == nil || res.Ramp.Ready != 0 || res.Ramp.Never != 5 || res.Ramp.FailedAttempts < 5 {
			t.Fatalf("%v %+v", err, res.Ramp)
		}
		found := false
		for k := range res.Ramp.Errors {
			found = found || strings.Contains(k, "connect_error") && strings.Contains(k, "NO_SESSION")
		}
		if !found {
			t.Fatalf("errors %v", res.Ramp.Errors)
		}
	})

	t.Run("fanout over http", func(t *testing.T) {
		cfg := smokeConfig("fanout", rs.URL(), node.URL)
		cfg.Conns = 100
		cfg.ServerPIDs = []int{node.PID}
		res, err := Run(ctx, cfg, &log)
		if err != nil {
			t.Fatalf("%v\n%s", err, log.String())
		}
		if len(res.Steps) == 0 {
			t.Fatal("no steps")
		}
		for _, s := range res.Steps {
			if s.Received == 0 || float64(s.Received) < 0.9*s.Expected || s.PublishFailed != 0 || s.Latency.Count != s.Received {
				t.Fatalf("step %+v", s)
			}
		}
	})

	t.Run("user-events over http, one event per request", func(t *testing.T) {
		cfg := smokeConfig("user-events", rs.URL(), node.URL)
		cfg.Conns, cfg.RateStart, cfg.MaxSteps = 50, 40, 1
		res, err := Run(ctx, cfg, &log)
		if err != nil {
			t.Fatalf("%v\n%s", err, log.String())
		}
		s := res.Steps[0]
		// An event arriving at the window's edge can be in the latency
		// histogram but not the window's count: allow one or two.
		if s.Received == 0 || float64(s.Received) < 0.9*s.Expected || s.Latency.Count < s.Received || s.Latency.Count > s.Received+2 {
			t.Fatalf("step %+v", s)
		}
	})

	t.Run("storm with two worker processes", func(t *testing.T) {
		t.Setenv("LOADGEN_TEST_WORKER", "1")
		cfg := smokeConfig("storm", rs.URL(), node.URL)
		cfg.Conns, cfg.Procs, cfg.WorkerCmd = 60, 2, []string{os.Args[0], "-test.run=^$"}
		cfg.ServerPIDs = []int{node.PID}
		res, err := Run(ctx, cfg, &log)
		if err != nil {
			t.Fatalf("%v\n%s", err, log.String())
		}
		if res.Ramp.Ready != 60 || res.Storm == nil || res.Storm.Recovered != 60 || res.Storm.AllBackS <= 0 || res.Storm.RSSPeakKB == 0 || res.Storm.Back.Count != 60 {
			t.Fatalf("%+v %+v", res.Ramp, res.Storm)
		}
		if res.Client.RSSKB == 0 {
			t.Fatal("workers reported no RSS")
		}
	})

	t.Run("cluster of two with the redis adapter, published through the emitter", func(t *testing.T) {
		a := startNode(t, rs.URL(), "ADAPTER=redis")
		b := startNode(t, rs.URL(), "ADAPTER=redis")
		cfg := smokeConfig("cluster", rs.URL(), a.URL, b.URL)
		cfg.Conns, cfg.PublishMode, cfg.MaxSteps = 100, "emitter", 1
		cfg.ServerPIDs = []int{a.PID, b.PID}
		res, err := Run(ctx, cfg, &log)
		if err != nil {
			t.Fatalf("%v\n%s", err, log.String())
		}
		for _, s := range res.Steps {
			if s.Received == 0 || float64(s.Received) < 0.9*s.Expected {
				t.Fatalf("step %+v", s)
			}
		}
		// the same through HTTP on one node, relayed by the adapter
		cfg.PublishMode, cfg.MaxSteps = "http", 1
		cfg.Scenario = "user-events"
		res, err = Run(ctx, cfg, &log)
		if err != nil || res.Steps[0].Received == 0 || float64(res.Steps[0].Received) < 0.9*res.Steps[0].Expected {
			t.Fatalf("%v %+v", err, res.Steps)
		}
	})
}

// The worker protocol end to end in one process: RemoteFleet <-> ServeWorker
// over pipes, driving real connections to the Node baseline.
func TestRemoteFleetOverPipes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node and redis")
	}
	rs := redistest.Start(t)
	// fast heartbeats: the clients must answer pings or Node drops them within 400 ms
	node := startNode(t, rs.URL(), "ADAPTER=redis", "PING_INTERVAL=150", "PING_TIMEOUT=250")
	cfg := smokeConfig("storm", rs.URL(), node.URL)
	cfg.Conns = 8
	cfg.Defaults()
	if _, err := SeedSessions(context.Background(), redisClient(t, rs.URL()), cfg.RunID, cfg.Users, time.Hour); err != nil {
		t.Fatal(err)
	}
	toWorkerR, toWorkerW := io.Pipe()
	fromWorkerR, fromWorkerW := io.Pipe()
	served := make(chan error, 1)
	go func() {
		served <- ServeWorker(context.Background(), toWorkerR, fromWorkerW)
		fromWorkerW.Close()
	}()
	f, err := NewRemoteFleet(cfg.FleetConfigs()[0], toWorkerW, fromWorkerR)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rr, err := f.Ramp(ctx)
	if err != nil || rr.Ready != 8 || rr.ReadyH.Count != 8 {
		t.Fatalf("%v %+v", err, rr)
	}
	time.Sleep(1200 * time.Millisecond)
	if p := f.Progress(); p.Ready != 8 || p.Launched != 8 {
		t.Fatalf("progress %+v", p)
	}
	hp := &HTTPPublisher{Base: node.URL, Key: "smoke-key", Client: http.DefaultClient, EventsBatch: true}
	if err := hp.post(ctx, "/api/v1/emit",
		[]byte(`{"rooms":["watchlist:SYM000"],"event":"quote:update","data":{"symbol":"SYM000","ts":1}}`)); err != nil {
		t.Fatal(err)
	}
	if err := hp.Trades(ctx, []int{0, 1}); err != nil { // as one JSON array
		t.Fatal(err)
	}
	if err := hp.post(ctx, "/api/v1/events", []byte(`{"type":"nope"}`)); err == nil || !strings.Contains(err.Error(), "HTTP 400") {
		t.Fatalf("unknown event type: %v", err)
	}
	em := &EmitterPublisher{RDB: redisClient(t, rs.URL()), Prefix: "socket.io"}
	if err := em.Trades(ctx, []int{2}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	snap, err := f.Snap(ctx)
	if err != nil || snap.Quotes != 1 || snap.Trades != 3 || snap.NoTS != 0 || snap.Ready != 8 || snap.Drops != 0 || snap.RSSKB == 0 {
		t.Fatalf("%v %+v", err, snap)
	}
	st, err := f.Storm(ctx, 20*time.Second)
	if err != nil || st.Recovered != 8 || st.Conns != 8 {
		t.Fatalf("%v %+v", err, st)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if _, err := f.Snap(ctx); err == nil {
		t.Fatal("snap after close should fail")
	}
}
