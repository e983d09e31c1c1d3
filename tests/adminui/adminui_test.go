// Package adminui_test drives the official Socket.IO Admin UI (the built
// ui/dist of @socket.io/admin-ui, served locally) in Debian's Chromium
// against a two-node tradewire cluster on a real Redis.
package adminui_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"

	"github.com/tradewire/tradewire/auth"
	"github.com/tradewire/tradewire/internal/config"
	"github.com/tradewire/tradewire/internal/gateway"
	"github.com/tradewire/tradewire/internal/testutil/redistest"
	"github.com/tradewire/tradewire/internal/testutil/sioclient"
)

const secret = "adminui-browser-test-secret"

func startNode(t *testing.T, args ...string) string {
	t.Helper()
	cfg, err := config.Load(append([]string{"-addr", "127.0.0.1:0", "-log-level", "error"}, args...), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, err := gateway.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = g.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(40 * time.Second):
			t.Error("gateway did not stop")
		}
	})
	return "http://" + l.Addr().String()
}

func TestOfficialAdminUIInChromium(t *testing.T) {
	dist := "node_modules/@socket.io/admin-ui/ui/dist"
	if _, err := os.Stat(dist + "/index.html"); err != nil {
		t.Fatalf("the Admin UI is not installed (run npm ci in tests/adminui; scripts/test does): %v", err)
	}
	ui := httptest.NewServer(http.FileServer(http.Dir(dist)))
	defer ui.Close()

	rs := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer rdb.Close()
	hash, _ := bcrypt.GenerateFromPassword([]byte("ui-pass"), bcrypt.MinCost)
	common := []string{"-redis-url", rs.URL(), "-session-store", "redis", "-session-secrets", secret,
		"-demo-feed=false", "-rate-connections-per-minute", "1000", "-cors-origins", ui.URL,
		"-admin-ui", "-admin-ui-username", "ops", "-admin-ui-password", string(hash)}
	for _, s := range config.Settings() { // required with Redis where the setting exists
		if s.Env == config.EnvPrefix+"CLUSTER_SECRET" {
			common = append(common, "-cluster-secret", "adminui-browser-test-cluster-secret-0123")
		}
	}
	a := startNode(t, append(common, "-node-id", "ui-node-a")...)
	b := startNode(t, append(common, "-node-id", "ui-node-b")...)

	sess := `{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"},"passport":{"user":"u7"}}`
	if err := rdb.Set(context.Background(), "sess:sid-adminui-browser-u7-aaaaaaaa", sess, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	h := http.Header{"Cookie": {"connect.sid=" + url.QueryEscape(auth.Sign("sid-adminui-browser-u7-aaaaaaaa", secret))}}
	c, err := sioclient.Dial(b, sioclient.Options{Header: h})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.EmitWithAck(3*time.Second, "subscribe:portfolio"); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "ui.mjs")
	cmd.Env = append(os.Environ(), "UI_URL="+ui.URL, "SERVER_URL="+a, "ADMIN_USER=ops", "ADMIN_PASS=ui-pass",
		"SOCKET_ID="+c.ID(), "ROOM=portfolio:u7", "SERVERS=ui-node-a,ui-node-b")
	out, err := cmd.CombinedOutput()
	t.Logf("ui.mjs: %s", strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("the Admin UI check failed: %v", err)
	}
	if err := c.WaitClosed(10 * time.Second); err != nil {
		t.Fatal("the client on node B is still connected after the UI's disconnect")
	}
}
