package mongotest

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func connect(t *testing.T, uri string) (*mongo.Client, string) {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(3 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c, strings.TrimPrefix(u.Path, "/")
}

func TestStartGivesFreshDatabases(t *testing.T) {
	ctx := context.Background()
	a, b := Start(t), Start(t)
	if a == b {
		t.Fatalf("two calls returned the same URL %q", a)
	}
	ca, dbA := connect(t, a)
	cb, dbB := connect(t, b)
	if dbA == "" || dbA == dbB || len(dbA) > 63 {
		t.Fatalf("database names %q, %q", dbA, dbB)
	}
	if _, err := ca.Database(dbA).Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: "x"}, {Key: "v", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	var got bson.M
	if err := ca.Database(dbA).Collection("c").FindOne(ctx, bson.D{{Key: "_id", Value: "x"}}).Decode(&got); err != nil {
		t.Fatalf("find in A: %v", err)
	}
	n, err := cb.Database(dbB).Collection("c").CountDocuments(ctx, bson.D{})
	if err != nil || n != 0 {
		t.Fatalf("database B sees %d docs (err %v); want an empty database", n, err)
	}
}

func TestStartServerStop(t *testing.T) {
	s := StartServer(t)
	uri := Database(t, s.URI)
	c, db := connect(t, uri)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Database(db).RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err(); err != nil {
		t.Fatalf("ping: %v", err)
	}
	s.Stop()
	s.Stop() // idempotent
	ctx2, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	if err := c.Database(db).RunCommand(ctx2, bson.D{{Key: "ping", Value: 1}}).Err(); err == nil {
		t.Fatal("ping succeeded after Stop")
	}
}

func TestBinaryIsCached(t *testing.T) {
	if os.Getenv(EnvBinary) != "" {
		t.Logf("%s set; checking that path", EnvBinary)
	}
	p1, err := Binary(t)
	if err != nil {
		t.Fatal(err)
	}
	fi1, err := os.Stat(p1)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := Binary(nil)
	if err != nil {
		t.Fatal(err)
	}
	fi2, _ := os.Stat(p2)
	if p1 != p2 || !fi1.ModTime().Equal(fi2.ModTime()) {
		t.Fatalf("second call rebuilt or moved the binary: %s vs %s", p1, p2)
	}
}

func TestDBName(t *testing.T) {
	n := dbName("TestX/sub test with spaces and a very long name that goes on and on")
	if len(n) > 63 {
		t.Fatalf("len %d > 63: %q", len(n), n)
	}
	for _, r := range n {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			t.Fatalf("bad rune %q in %q", r, n)
		}
	}
	if dbName("a") == dbName("a") {
		t.Fatal("names repeat")
	}
}

func TestExternalURL(t *testing.T) {
	shared := Start(t) // the shared FerretDB stands in for an external server
	u, _ := url.Parse(shared)
	u.Path = "/ignored"
	u.RawQuery = "appName=mongotest"
	t.Setenv(EnvURL, u.String())
	got := Start(t)
	g, err := url.Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	if g.Host != u.Host || g.RawQuery != "appName=mongotest" || g.Path == "/ignored" || g.Path == "/" {
		t.Fatalf("Start with %s = %s", EnvURL, got)
	}
	c, db := connect(t, got)
	if _, err := c.Database(db).Collection("c").InsertOne(context.Background(), bson.D{{Key: "a", Value: 1}}); err != nil {
		t.Fatal(err)
	}
}

func TestStartFailures(t *testing.T) {
	t.Setenv(EnvBinary, filepath.Join(t.TempDir(), "missing"))
	if _, err := startProcess(nil); err == nil {
		t.Fatal("missing binary started")
	}
	t.Setenv(EnvBinary, "/bin/echo") // prints its arguments, not a URI
	if _, err := startProcess(nil); err == nil || !strings.Contains(err.Error(), "did not start") {
		t.Fatalf("bogus binary: %v", err)
	}
	script := filepath.Join(t.TempDir(), "fails.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho boom-on-stderr >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvBinary, script)
	if _, err := startProcess(nil); err == nil || !strings.Contains(err.Error(), "boom-on-stderr") {
		t.Fatalf("failing binary: error %v does not carry its stderr", err)
	}
}

func TestBuildFailureIsReported(t *testing.T) {
	t.Setenv(EnvBinary, "")
	src := t.TempDir()
	for name, body := range map[string]string{
		"go.mod":  "module broken\n\ngo 1.22\n",
		"go.sum":  "",
		"main.go": "package main\n\nfunc main() { undefined() }\n",
	} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cache := t.TempDir()
	userCacheDir = func() (string, error) { return cache, nil }
	findToolDir = func() (string, error) { return src, nil }
	defer func() { userCacheDir, findToolDir = os.UserCacheDir, toolDir }()
	_, err := Binary(t)
	if err == nil || !strings.Contains(err.Error(), "build tools/ferretdb") || !strings.Contains(err.Error(), "undefined") {
		t.Fatalf("err = %v", err)
	}
}

// TestBuildIntoFreshCache exercises the build path: two concurrent callers
// with an empty cache directory get one binary (file lock, temp + rename).
func TestBuildIntoFreshCache(t *testing.T) {
	if os.Getenv(EnvBinary) != "" {
		t.Setenv(EnvBinary, "")
	}
	dir := t.TempDir()
	userCacheDir = func() (string, error) { return dir, nil }
	defer func() { userCacheDir = os.UserCacheDir }()
	var wg sync.WaitGroup
	paths := make([]string, 2)
	errs := make([]error, 2)
	for i := range paths {
		wg.Add(1)
		go func() { defer wg.Done(); paths[i], errs[i] = Binary(nil) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if paths[0] != paths[1] || !strings.Contains(paths[0], "ferretdb-"+FerretDBVersion+"-") {
		t.Fatalf("paths %v", paths)
	}
	entries, _ := os.ReadDir(filepath.Dir(paths[0]))
	if len(entries) != 1 {
		t.Fatalf("cache dir holds %d files, want only the binary (no temp leftovers)", len(entries))
	}
	t.Setenv(EnvBinary, paths[0])
	s := StartServer(t)
	if !strings.HasPrefix(s.URI, "mongodb://127.0.0.1:") {
		t.Fatalf("URI %q", s.URI)
	}
}
