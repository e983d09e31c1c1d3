package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tradewire/tradewire/auth"
	"github.com/tradewire/tradewire/internal/testutil/mongotest"
	"github.com/tradewire/tradewire/internal/testutil/redistest"
)

// TestScriptsCluster runs scripts/cluster (Redis, FerretDB, three nodes,
// rrproxy), logs a user in through a connect-mongo session, and connects
// through the round-robin proxy with polling, then upgrades to websocket:
// consecutive polling requests land on different nodes, which forward them
// to the session's owner.
func TestScriptsCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole cluster")
	}
	ferret, err := mongotest.Binary(t)
	if err != nil {
		t.Fatal(err)
	}
	proxyPort := redistest.FreePort(t)
	nodes := []int{redistest.FreePort(t), redistest.FreePort(t), redistest.FreePort(t)}
	redisPort, mongoPort := redistest.FreePort(t), redistest.FreePort(t)
	dir := t.TempDir()
	const secret = "cluster-test-secret"

	script, _ := filepath.Abs("../../scripts/cluster")
	cmd := exec.Command("bash", script)
	cmd.Env = append(os.Environ(),
		fmt.Sprintf("CLUSTER_PORT=%d", proxyPort),
		fmt.Sprintf("CLUSTER_NODE_PORTS=%d %d %d", nodes[0], nodes[1], nodes[2]),
		fmt.Sprintf("CLUSTER_REDIS_PORT=%d", redisPort),
		fmt.Sprintf("CLUSTER_MONGO_PORT=%d", mongoPort),
		"CLUSTER_DIR="+dir,
		"CLUSTER_SESSION_SECRET="+secret,
		"TRADEWIRE_FERRETDB_BIN="+ferret,
		"TRADEWIRE_PING_INTERVAL=1s",
		"TRADEWIRE_PING_TIMEOUT=5s",
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, _ := cmd.StdoutPipe()
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the script's own process group
			<-exited
		}
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "cluster ready:") {
				ready <- sc.Text()
			}
		}
		exited <- cmd.Wait()
	}()
	select {
	case line := <-ready:
		t.Log(line)
	case <-time.After(240 * time.Second):
		t.Fatalf("cluster not ready; stderr:\n%s", stderr.String())
	}

	// A user and a connect-mongo session, as the Node app writes them.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mc, err := mongo.Connect(options.Client().ApplyURI(fmt.Sprintf("mongodb://127.0.0.1:%d/", mongoPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Disconnect(context.Background())
	db := mc.Database("tradewire")
	if _, err := db.Collection("users").InsertOne(ctx, bson.D{{Key: "_id", Value: "u1"}, {Key: "role", Value: "trader"}, {Key: "subscriptionTier", Value: "pro"}}); err != nil {
		t.Fatal(err)
	}
	sess := `{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"},"passport":{"user":"u1"}}`
	if _, err := db.Collection("sessions").InsertOne(ctx, bson.D{{Key: "_id", Value: "sid-cluster-1"}, {Key: "expires", Value: time.Now().Add(time.Hour)}, {Key: "session", Value: sess}}); err != nil {
		t.Fatal(err)
	}
	cookie := auth.SignedCookie("connect.sid", "sid-cluster-1", secret)
	base := fmt.Sprintf("http://127.0.0.1:%d/socket.io/?EIO=4&transport=polling", proxyPort)

	do := func(method, url, body string) string {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
		req.Header.Set("Cookie", cookie)
		if body != "" {
			req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
		}
		return string(b)
	}

	open := do("GET", base, "")
	if !strings.HasPrefix(open, "0{") {
		t.Fatalf("open packet %q", open)
	}
	var hs struct {
		SID      string   `json:"sid"`
		Upgrades []string `json:"upgrades"`
	}
	if err := json.Unmarshal([]byte(open[1:]), &hs); err != nil || hs.SID == "" {
		t.Fatalf("handshake %q: %v", open, err)
	}
	if len(hs.Upgrades) != 1 || hs.Upgrades[0] != "websocket" {
		t.Fatalf("upgrades %v", hs.Upgrades)
	}
	polling := base + "&sid=" + hs.SID
	// Round robin: the CONNECT and the next GET reach the other two nodes.
	if got := do("POST", polling, "40"); got != "ok" {
		t.Fatalf("POST 40: %q", got)
	}
	connect := do("GET", polling, "")
	if !strings.HasPrefix(connect, `40{"sid":"`) {
		t.Fatalf("CONNECT answer %q (auth through the proxy failed?)", connect)
	}
	// An event with an ack over polling, answered whatever node the POST hits.
	if got := do("POST", polling, `421["ping"]`); got != "ok" {
		t.Fatalf("POST ping: %q", got)
	}
	var acked bool
	for i := 0; i < 5 && !acked; i++ {
		acked = strings.Contains(do("GET", polling, ""), `431[{"timestamp":`)
	}
	if !acked {
		t.Fatal("no ack of ping over polling")
	}

	// Upgrade through the proxy; the probe may land on any node.
	wsURL := strings.Replace(strings.Replace(polling, "http://", "ws://", 1), "transport=polling", "transport=websocket", 1)
	h := http.Header{}
	h.Set("Cookie", cookie)
	ws, _, err := websocket.DefaultDialer.Dial(wsURL, h)
	if err != nil {
		t.Fatalf("websocket through the proxy: %v", err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := ws.WriteMessage(websocket.TextMessage, []byte("2probe")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.ReadMessage(); err != nil || string(msg) != "3probe" {
		t.Fatalf("probe answer %q: %v", msg, err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte("5")); err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`422["ping"]`)); err != nil {
		t.Fatal(err)
	}
	var sawAck, sawPing bool
	for !(sawAck && sawPing) {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("after upgrade (ack %v, heartbeat %v): %v", sawAck, sawPing, err)
		}
		switch s := string(msg); {
		case strings.HasPrefix(s, `432[{"timestamp":`):
			sawAck = true
		case s == "2":
			sawPing = true
			_ = ws.WriteMessage(websocket.TextMessage, []byte("3"))
		}
	}
}

// lockedBuffer is a strings.Builder safe for the exec copier and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
