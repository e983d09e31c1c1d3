// Package mongotest gives tests a MongoDB-wire database of their own.
//
// If TRADEWIRE_TEST_MONGO_URL is set, Start returns that server's URL with a
// unique database name per call. Otherwise it runs FerretDB v1.24.2 with the
// SQLite backend: the tools/ferretdb module (kept out of tradewire's
// dependency graph) is built once into the user cache directory, keyed by
// version and source hash, and one process is shared by the whole test binary.
// The process exits when the test binary does (it watches its stdin pipe).
//
// FerretDB is a stand-in: it has no TTL indexes, and lookups by _id are full
// scans as shipped, so its latencies are not MongoDB numbers.
package mongotest

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// FerretDBVersion is the FerretDB release tools/ferretdb embeds.
const FerretDBVersion = "v1.24.2"

// EnvURL names the variable that selects an existing server.
const EnvURL = "TRADEWIRE_TEST_MONGO_URL"

// EnvBinary names a variable that points at a prebuilt tools/ferretdb binary,
// skipping the build.
const EnvBinary = "TRADEWIRE_FERRETDB_BIN"

// userCacheDir and findToolDir are replaced in tests.
var (
	userCacheDir = os.UserCacheDir
	findToolDir  = toolDir
)

var (
	sharedOnce sync.Once
	shared     *Server
	sharedErr  error
	dbCounter  atomic.Int64
)

// Start returns a mongodb:// URL whose path is a fresh database that no other
// test uses. The database is dropped when the test ends.
func Start(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		sharedOnce.Do(func() {
			shared, sharedErr = startProcess(nil)
		})
		if sharedErr != nil {
			t.Fatalf("mongotest: %v", sharedErr)
		}
		base = shared.URI
	}
	return Database(t, base)
}

// Database returns base (a mongodb:// URL) with its path replaced by a unique
// database name derived from the test name, and drops that database when the
// test ends.
func Database(t testing.TB, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("mongotest: parse URL: %v", err)
	}
	name := dbName(t.Name())
	u.Path = "/" + name
	uri := u.String()
	t.Cleanup(func() { dropDatabase(uri, name) })
	return uri
}

// dbName builds a database name of at most 63 characters from [A-Za-z0-9_].
func dbName(testName string) string {
	var b strings.Builder
	for _, r := range testName {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	base := b.String()
	if len(base) > 32 {
		base = base[len(base)-32:] // the end of a subtest path is the distinctive part
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	return fmt.Sprintf("t_%s_%d_%s", base, dbCounter.Add(1), hex.EncodeToString(rnd[:]))
}

func dropDatabase(uri, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(2 * time.Second))
	if err != nil {
		return
	}
	defer func() { _ = c.Disconnect(ctx) }()
	_ = c.Database(name).Drop(ctx)
}

// Server is one FerretDB process.
type Server struct {
	URI string // mongodb://127.0.0.1:PORT/

	mu    sync.Mutex
	cmd   *exec.Cmd
	stdin io.WriteCloser // kept open: the process exits when it closes
	done  chan struct{}
}

// StartServer starts a dedicated FerretDB process (ignoring
// TRADEWIRE_TEST_MONGO_URL) that the test may Stop, e.g. to simulate an
// outage. It is stopped when the test ends.
func StartServer(t testing.TB) *Server {
	t.Helper()
	s, err := startProcess(t)
	if err != nil {
		t.Fatalf("mongotest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Stop kills the process and waits for it to exit. Safe to call twice.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-s.done
	_ = s.stdin.Close()
}

func startProcess(t testing.TB) (*Server, error) {
	bin, err := Binary(t)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tradewire-ferretdb-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-listen-addr", "127.0.0.1:0", "-sqlite-dir", dir,
		"-exit-on-stdin-eof", "-remove-dir-on-exit", "-log-level", "error")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &lockedWriter{w: &stderr}
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start ferretdb: %w", err)
	}
	s := &Server{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		lines <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, r)
	}()
	go func() {
		_ = cmd.Wait()
		_ = os.RemoveAll(dir)
		close(s.done)
	}()
	select {
	case line := <-lines:
		if !strings.HasPrefix(line, "mongodb://") {
			s.Stop()
			return nil, fmt.Errorf("ferretdb did not start: %q %s", line, cmd.Stderr.(*lockedWriter).String())
		}
		s.URI = line
		return s, nil
	case <-time.After(30 * time.Second):
		s.Stop()
		return nil, errors.New("ferretdb not ready after 30s")
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w.Len() > 64<<10 {
		return len(p), nil
	}
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

// Binary returns the path of the tools/ferretdb binary, building it on first
// use into os.UserCacheDir()/tradewire/ferretdb-<version>-<source hash>/.
// Concurrent test binaries serialize the build with a file lock, and the
// binary is written to a temporary name and renamed, so a reader never sees
// a partial file. t may be nil; it is only used for logging.
func Binary(t testing.TB) (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		return p, nil
	}
	src, err := findToolDir()
	if err != nil {
		return "", err
	}
	key, err := sourceHash(src)
	if err != nil {
		return "", err
	}
	cache, err := userCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	root := filepath.Join(cache, "tradewire")
	dir := filepath.Join(root, "ferretdb-"+FerretDBVersion+"-"+key)
	bin := filepath.Join(dir, "ferretdb")
	if isExecutable(bin) {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(filepath.Join(root, "ferretdb.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if isExecutable(bin) { // built by another process while we waited
		return bin, nil
	}
	if t != nil {
		t.Logf("mongotest: building FerretDB %s into %s (first time only, about 1-2 min)", FerretDBVersion, dir)
	}
	tmp := fmt.Sprintf("%s.tmp-%d", bin, os.Getpid())
	cmd := exec.Command(goTool(), "build", "-trimpath", "-o", tmp, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly -buildvcs=false")
	out, err := cmd.CombinedOutput()
	if err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("build tools/ferretdb: %w\n%s", err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	return bin, nil
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// toolDir finds tools/ferretdb: next to this source file, else above the
// working directory.
func toolDir() (string, error) {
	var candidates []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		candidates = append(candidates, filepath.Join(filepath.Dir(file), "..", "..", "..", "tools", "ferretdb"))
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			candidates = append(candidates, filepath.Join(d, "tools", "ferretdb"))
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	for _, c := range candidates {
		if _, err := os.Stat(filepath.Join(c, "go.mod")); err == nil {
			return filepath.Clean(c), nil
		}
	}
	return "", errors.New("tools/ferretdb not found (set " + EnvBinary + " or " + EnvURL + ")")
}

// sourceHash hashes the tool's go.mod, go.sum and Go files, so a change to
// the tool rebuilds it.
func sourceHash(dir string) (string, error) {
	h := sha256.New()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return "", err
	}
	names = append([]string{filepath.Join(dir, "go.mod"), filepath.Join(dir, "go.sum")}, names...)
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", filepath.Base(n), len(b))
		h.Write(b)
	}
	h.Write([]byte(runtime.Version()))
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}
