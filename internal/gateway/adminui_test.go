package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"

	"github.com/tradewire/tradewire/internal/config"
	"github.com/tradewire/tradewire/internal/testutil/redistest"
	"github.com/tradewire/tradewire/internal/testutil/sioclient"
)

// adminConn is a raw Socket.IO client of the /admin namespace.
type adminConn struct {
	ws   *websocket.Conn
	mu   sync.Mutex
	raw  []string
	cond *sync.Cond
	err  error
}

func dialAdminNsp(t *testing.T, base string, auth map[string]any) (*adminConn, string) {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(base, "http", "ws", 1)+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, msg, err := ws.ReadMessage(); err != nil || msg[0] != '0' {
		t.Fatalf("open: %q %v", msg, err)
	}
	b, _ := json.Marshal(auth)
	_ = ws.WriteMessage(websocket.TextMessage, []byte("40/admin,"+string(b)))
	_, msg, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Time{})
	a := &adminConn{ws: ws}
	a.cond = sync.NewCond(&a.mu)
	go func() {
		for {
			_, m, err := ws.ReadMessage()
			a.mu.Lock()
			if err != nil {
				a.err = err
			} else {
				a.raw = append(a.raw, string(m))
				if string(m) == "2" {
					_ = ws.WriteMessage(websocket.TextMessage, []byte("3"))
				}
			}
			a.cond.Broadcast()
			a.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return a, string(msg)
}

// waitFor waits for a frame containing every part.
func (a *adminConn) waitFor(t *testing.T, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	timer := time.AfterFunc(10*time.Second, func() { a.mu.Lock(); a.cond.Broadcast(); a.mu.Unlock() })
	defer timer.Stop()
	a.mu.Lock()
	defer a.mu.Unlock()
	for {
	frames:
		for _, f := range a.raw {
			for _, p := range parts {
				if !strings.Contains(f, p) {
					continue frames
				}
			}
			return f
		}
		if a.err != nil || time.Now().After(deadline) {
			t.Fatalf("no frame with %q (err %v)", parts, a.err)
		}
		a.cond.Wait()
	}
}

func (a *adminConn) all() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.Join(a.raw, "\n")
}

// clusterSecretArgs gives the cluster secret flag when this configuration
// has that setting (it is required with Redis outside dev mode there).
func clusterSecretArgs() []string {
	for _, s := range config.Settings() {
		if s.Env == config.EnvPrefix+"CLUSTER_SECRET" {
			return []string{"-cluster-secret", "admin-ui-test-cluster-secret-0123456789"}
		}
	}
	return nil
}

func TestAdminUISettings(t *testing.T) {
	load := func(args ...string) *config.Config {
		cfg, err := config.Load(append([]string{"-addr", "127.0.0.1:0"}, args...), func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// Outside dev mode a login is required; a plain password is refused.
	srv := redistest.Start(t)
	base := append([]string{"-redis-url", srv.URL(), "-session-store", "redis", "-session-secrets", testSecret, "-admin-ui"}, clusterSecretArgs()...)
	if _, err := New(context.Background(), load(base...), log); err == nil || !strings.Contains(err.Error(), "ADMIN_UI_USERNAME") {
		t.Fatalf("no login outside dev mode: %v", err)
	}
	if _, err := New(context.Background(), load(append(base, "-admin-ui-username", "ops", "-admin-ui-password", "plain")...), log); err == nil || !strings.Contains(err.Error(), "bcrypt") {
		t.Fatalf("plain password: %v", err)
	}
	// Dev mode: no login needed.
	g := startGateway(t, "-admin-ui", "-admin-ui-readonly")
	a, connect := dialAdminNsp(t, g.URL, map[string]any{})
	if !strings.HasPrefix(connect, "40/admin,") {
		t.Fatalf("dev mode admin connect: %q", connect)
	}
	a.waitFor(t, `"config"`, `{"supportedFeatures":["AGGREGATED_EVENTS","ALL_EVENTS"]}`)
}

// TestAdminUITwoNodes: an admin logged into node A sees both servers and
// the sockets of node B with their rooms, and its _disconnect closes a
// client connected to node B; nothing it receives carries credentials.
func TestAdminUITwoNodes(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	hash, _ := bcrypt.GenerateFromPassword([]byte("admin-pass"), bcrypt.MinCost)
	node := func(id string) *testGateway {
		args := append([]string{"-redis-url", srv.URL(), "-session-store", "redis", "-session-secrets", testSecret,
			"-api-keys", testAPIKey, "-demo-feed=false", "-rate-connections-per-minute", "1000", "-node-id", id,
			"-admin-ui", "-admin-ui-username", "ops", "-admin-ui-password", string(hash)}, clusterSecretArgs()...)
		return startGateway(t, args...)
	}
	a, b := node("node-a"), node("node-b")

	cookie := seedSession(t, rdb, "sid-admin-ui-u1-aaaaaaaaaaaaaaaa", "u1")
	c, err := sioclient.Dial(b.URL, sioclient.Options{Header: http.Header{"Cookie": {cookie}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.EmitWithAck(3*time.Second, "subscribe:trades"); err != nil {
		t.Fatal(err)
	}

	if _, refused := dialAdminNsp(t, a.URL, map[string]any{"username": "ops", "password": "wrong"}); !strings.Contains(refused, "invalid credentials") {
		t.Fatalf("wrong password: %q", refused)
	}
	adm, connect := dialAdminNsp(t, a.URL, map[string]any{"username": "ops", "password": "admin-pass"})
	if !strings.HasPrefix(connect, "40/admin,") {
		t.Fatalf("admin connect: %q", connect)
	}
	session := adm.waitFor(t, `42/admin,["session","`)
	sid := strings.TrimSuffix(strings.TrimPrefix(session, `42/admin,["session","`), `"]`)
	// The login is shared through Redis: node B accepts the session id.
	if _, connectB := dialAdminNsp(t, b.URL, map[string]any{"sessionId": sid}); !strings.HasPrefix(connectB, "40/admin,") {
		t.Fatalf("session id on the other node: %q", connectB)
	}
	adm.waitFor(t, `"server_stats"`, `"serverId":"node-a"`)
	adm.waitFor(t, `"server_stats"`, `"serverId":"node-b"`)
	adm.waitFor(t, `"all_sockets"`, `"id":"`+c.ID()+`"`, `"trades:u1"`)

	adm.ws.WriteMessage(websocket.TextMessage, []byte(`42/admin,["_disconnect","/",true,"`+c.ID()+`"]`))
	if err := c.WaitClosed(10 * time.Second); err != nil {
		t.Fatal("the client on node B was not closed by the admin on node A")
	}
	adm.waitFor(t, `"socket_disconnected"`, `"`+c.ID()+`"`)
	out := adm.all()
	for _, secret := range []string{"sid-admin-ui-u1", "connect.sid", cookie, "admin-pass", `"auth"`} {
		if strings.Contains(out, secret) {
			t.Errorf("the admin namespace received %q", secret)
		}
	}
}
