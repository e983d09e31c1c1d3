package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/tradewire/tradewire/auth"
	"github.com/tradewire/tradewire/auth/memstore"
	"github.com/tradewire/tradewire/auth/mongostore"
	"github.com/tradewire/tradewire/auth/redisstore"
	"github.com/tradewire/tradewire/internal/testutil/mongotest"
	"github.com/tradewire/tradewire/internal/testutil/redistest"
)

// Node signs with the first secret and accepts both; so does Go.
var secrets = []string{"interop-new-secret", "interop-old-secret"}

const appDir = "testdata/nodeapp"

var npmOnce sync.Once
var npmErr error

// installNodeApp runs npm ci when node_modules is missing or older than
// package-lock.json.
func installNodeApp(t *testing.T) {
	t.Helper()
	npmOnce.Do(func() {
		for _, tool := range []string{"node", "npm"} {
			if _, err := exec.LookPath(tool); err != nil {
				npmErr = fmt.Errorf("%s not found in PATH: these tests need Node.js 20+ with npm (they run the Express app and socket.io-client from %s): %w", tool, appDir, err)
				return
			}
		}
		lock, err := os.Stat(filepath.Join(appDir, "package-lock.json"))
		if err != nil {
			npmErr = err
			return
		}
		if mark, err := os.Stat(filepath.Join(appDir, "node_modules", ".package-lock.json")); err == nil && !mark.ModTime().Before(lock.ModTime()) {
			return
		}
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = appDir
		out, err := cmd.CombinedOutput()
		if err != nil {
			npmErr = fmt.Errorf("npm ci: %w\n%s", err, out)
		}
	})
	if npmErr != nil {
		t.Fatal(npmErr)
	}
}

type user struct {
	Username string `json:"username"`
	Password string `json:"password"`
	ID       string `json:"id"`
}

// nodeApp is the running Express app.
type nodeApp struct {
	base string
}

func startNodeApp(t *testing.T, env map[string]string, users []user) *nodeApp {
	t.Helper()
	installNodeApp(t)
	usersJSON, _ := json.Marshal(users)
	secretsJSON, _ := json.Marshal(secrets)
	cmd := exec.Command("node", "server.js")
	cmd.Dir = appDir
	cmd.Env = append(os.Environ(), "USERS="+string(usersJSON), "SECRETS="+string(secretsJSON), "PORT=0")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdin, err := cmd.StdinPipe() // the app exits when this closes
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		lines <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, r)
	}()
	select {
	case line := <-lines:
		var port int
		if _, err := fmt.Sscanf(line, "listening %d", &port); err != nil {
			<-done
			t.Fatalf("node app did not start: %q\n%s", line, stderr.String())
		}
		return &nodeApp{base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	case <-time.After(30 * time.Second):
		t.Fatalf("node app not listening after 30s\n%s", stderr.String())
	}
	return nil
}

func (a *nodeApp) do(t *testing.T, method, path, cookie string, body any) *http.Response {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp
}

// login posts the credentials and returns the "connect.sid=..." pair from
// Set-Cookie, as a browser would send it back.
func (a *nodeApp) login(t *testing.T, username, password string) string {
	t.Helper()
	resp := a.do(t, "POST", "/login", "", map[string]string{"username": username, "password": password})
	if resp.StatusCode != 200 {
		t.Fatalf("login: HTTP %d", resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		if c.Name == auth.DefaultCookieName {
			if !strings.HasPrefix(c.Value, "s%3A") {
				t.Fatalf("cookie value %q is not a URL-encoded signed value", c.Value)
			}
			return c.Name + "=" + c.Value
		}
	}
	t.Fatalf("login set no %s cookie: %v", auth.DefaultCookieName, resp.Header.Values("Set-Cookie"))
	return ""
}

// sidOf extracts the session id the way a test may: decode and split.
func sidOf(t *testing.T, cookie string) string {
	t.Helper()
	v, _ := url.PathUnescape(strings.TrimPrefix(cookie, auth.DefaultCookieName+"="))
	sid, ok := auth.Unsign(v, secrets)
	if !ok {
		t.Fatalf("Go cannot verify Node's cookie %q", cookie)
	}
	return sid
}

func mongoDB(t *testing.T, uri string) *mongo.Database {
	t.Helper()
	c, db, err := mongostore.Connect(uri)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Bounded: after an outage test stopped the server, endSessions
		// would otherwise wait for server selection (30 s).
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = c.Disconnect(ctx)
	})
	return db
}

// loginAuthenticateLogout is the common flow: Node logs in, Go
// authenticates the cookie (and the signed id as auth.sessionID), Node logs
// out, Go reports SESSION_NOT_FOUND and Revalidate lists the session.
func loginAuthenticateLogout(t *testing.T, app *nodeApp, a *auth.Authenticator, wantUser, wantRole, wantTier string) {
	t.Helper()
	ctx := context.Background()
	cookie := app.login(t, "alice", "pw")
	if resp := app.do(t, "GET", "/me", cookie, nil); resp.StatusCode != 200 {
		t.Fatalf("node does not see its own session: HTTP %d", resp.StatusCode)
	}
	id, err := a.Authenticate(ctx, auth.Credentials{Cookie: "io=abc; " + cookie, UserID: wantUser})
	if err != nil {
		t.Fatalf("Authenticate(Node's cookie): %v", err)
	}
	if id.UserID != wantUser || id.Role != wantRole || id.Tier != wantTier {
		t.Fatalf("identity %+v, want %s/%s/%s", *id, wantUser, wantRole, wantTier)
	}
	if d := time.Until(id.ExpiresAt()); id.ExpiresAt().IsZero() || d <= 0 {
		t.Fatalf("ExpiresAt %v", id.ExpiresAt())
	}
	sid := sidOf(t, cookie)
	if id.SessionID != sid {
		t.Fatal("SessionID differs from the cookie's")
	}
	signed, _ := url.PathUnescape(strings.TrimPrefix(cookie, auth.DefaultCookieName+"="))
	if _, err := a.Authenticate(ctx, auth.Credentials{SessionID: signed}); err != nil {
		t.Fatalf("Authenticate(auth.sessionID): %v", err)
	}
	// A cookie signed with the old secret (rotation) is accepted by Go too.
	if _, err := a.Authenticate(ctx, auth.Credentials{Cookie: auth.SignedCookie(auth.DefaultCookieName, sid, secrets[1])}); err != nil {
		t.Fatalf("old-secret cookie: %v", err)
	}
	if _, err := a.Authenticate(ctx, auth.Credentials{Cookie: auth.SignedCookie(auth.DefaultCookieName, sid, "not-a-secret")}); auth.CodeOf(err) != auth.CodeUnauthorized {
		t.Fatalf("forged cookie: %v", err)
	}

	if resp := app.do(t, "POST", "/logout", cookie, nil); resp.StatusCode != 200 {
		t.Fatalf("logout: HTTP %d", resp.StatusCode)
	}
	_, err = a.Authenticate(ctx, auth.Credentials{Cookie: cookie})
	if auth.CodeOf(err) != auth.CodeSessionNotFound {
		t.Fatalf("after logout: %v, want SESSION_NOT_FOUND", err)
	}
	invalid, err := a.Revalidate(ctx, []string{sid})
	if err != nil || len(invalid) != 1 || invalid[0] != sid {
		t.Fatalf("Revalidate after logout: %v %v", invalid, err)
	}
}

func TestConnectMongoSessions(t *testing.T) {
	for _, c := range []struct{ name, stringify, serialize string }{
		{"json-string session, string user", "true", "string"},
		{"embedded session, {_id} user", "false", "object"},
	} {
		t.Run(c.name, func(t *testing.T) {
			uri := mongotest.Start(t)
			db := mongoDB(t, uri)
			oid := bson.NewObjectID()
			if _, err := db.Collection("users").InsertOne(context.Background(),
				bson.D{{Key: "_id", Value: oid}, {Key: "role", Value: "admin"}, {Key: "subscriptionTier", Value: "premium"}}); err != nil {
				t.Fatal(err)
			}
			app := startNodeApp(t, map[string]string{"STORE": "mongo", "MONGO_URL": uri, "STRINGIFY": c.stringify, "SERIALIZE": c.serialize},
				[]user{{"alice", "pw", oid.Hex()}})
			a, err := auth.New(auth.Config{Secrets: secrets, CacheTTL: -1},
				mongostore.NewSessions(db, ""), mongostore.NewUsers(db, mongostore.UsersConfig{}))
			if err != nil {
				t.Fatal(err)
			}
			loginAuthenticateLogout(t, app, a, oid.Hex(), "admin", "premium")

			// What connect-mongo wrote is what mongostore expects.
			cookie := app.login(t, "alice", "pw")
			var doc bson.M
			if err := db.Collection("sessions").FindOne(context.Background(), bson.D{{Key: "_id", Value: sidOf(t, cookie)}}).Decode(&doc); err != nil {
				t.Fatal(err)
			}
			if _, ok := doc["expires"].(bson.DateTime); !ok {
				t.Fatalf("expires is %T", doc["expires"])
			}
			_, isString := doc["session"].(string)
			if isString != (c.stringify == "true") {
				t.Fatalf("session stored as %T with stringify=%s", doc["session"], c.stringify)
			}
		})
	}
}

// TestTouchedSessionOutlivesItsCookieExpires shows why the store's expiry
// wins over cookie.expires inside the stored JSON: express-session's touch
// moves connect-mongo's "expires" forward without rewriting the JSON, so
// Node keeps accepting a session whose stored cookie.expires has passed.
func TestTouchedSessionOutlivesItsCookieExpires(t *testing.T) {
	uri := mongotest.Start(t)
	db := mongoDB(t, uri)
	users := memstore.New(0)
	users.PutUser(auth.User{ID: "u-touch", Role: "trader", Tier: "free"})
	const maxAge = 3 * time.Second
	app := startNodeApp(t, map[string]string{"STORE": "mongo", "MONGO_URL": uri, "MAX_AGE_MS": fmt.Sprint(maxAge.Milliseconds())},
		[]user{{"alice", "pw", "u-touch"}})
	a, err := auth.New(auth.Config{Secrets: secrets, CacheTTL: -1}, mongostore.NewSessions(db, ""), users)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cookie := app.login(t, "alice", "pw")
	loginAt := time.Now()
	time.Sleep(maxAge * 2 / 3)
	if resp := app.do(t, "GET", "/me", cookie, nil); resp.StatusCode != 200 { // touches the session
		t.Fatalf("/me: HTTP %d", resp.StatusCode)
	}
	time.Sleep(time.Until(loginAt.Add(maxAge + 300*time.Millisecond)))

	var doc struct {
		Session string `bson:"session"`
	}
	if err := db.Collection("sessions").FindOne(ctx, bson.D{{Key: "_id", Value: sidOf(t, cookie)}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	info, err := auth.ParseSession([]byte(doc.Session))
	if err != nil || info.CookieExpires.IsZero() || info.CookieExpires.After(time.Now()) {
		t.Fatalf("stored cookie.expires %v (err %v): expected it to be in the past by now", info.CookieExpires, err)
	}
	if resp := app.do(t, "GET", "/me", cookie, nil); resp.StatusCode != 200 {
		t.Fatalf("Node rejected the touched session: HTTP %d", resp.StatusCode)
	}
	if _, err := a.Authenticate(ctx, auth.Credentials{Cookie: cookie}); err != nil {
		t.Fatalf("Go rejected a session Node accepts: %v", err)
	}
	// Once the store's expiry passes (and autoRemove has not run), Go says expired.
	time.Sleep(maxAge + 200*time.Millisecond)
	if _, err := a.Authenticate(ctx, auth.Credentials{Cookie: cookie}); auth.CodeOf(err) != auth.CodeSessionExpired {
		t.Fatalf("after the store expiry: %v, want SESSION_EXPIRED", err)
	}
}

func TestConnectRedisSessions(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	users := memstore.New(0)
	users.PutUser(auth.User{ID: "64b7f0c2a1b2c3d4e5f60718", Role: "trader", Tier: "enterprise"})
	app := startNodeApp(t, map[string]string{"STORE": "redis", "REDIS_URL": srv.URL()},
		[]user{{"alice", "pw", "64b7f0c2a1b2c3d4e5f60718"}})
	a, err := auth.New(auth.Config{Secrets: secrets, CacheTTL: -1}, redisstore.New(rdb, ""), users)
	if err != nil {
		t.Fatal(err)
	}
	loginAuthenticateLogout(t, app, a, "64b7f0c2a1b2c3d4e5f60718", "trader", "enterprise")
	// connect-redis's default TTL is one day.
	cookie := app.login(t, "alice", "pw")
	id, err := a.Authenticate(context.Background(), auth.Credentials{Cookie: cookie})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(id.ExpiresAt()); d < 23*time.Hour || d > 24*time.Hour {
		t.Fatalf("ExpiresAt in %v, want about 24h", d)
	}
}
