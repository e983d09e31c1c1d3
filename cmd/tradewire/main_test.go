package main

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tradewire/tradewire/internal/config"
	"github.com/tradewire/tradewire/internal/testutil/poll"
	"github.com/tradewire/tradewire/internal/testutil/sioclient"
)

// syncBuffer is a bytes.Buffer safe for a writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func env(kv map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := kv[k]
		return v, ok
	}
}

func TestHelpListsEverySetting(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{arg}, env(nil), &stdout, &stderr); code != 0 {
			t.Fatalf("%s: exit %d, want 0 (stderr %q)", arg, code, stderr.String())
		}
		if stderr.Len() != 0 {
			t.Errorf("%s: unexpected stderr %q", arg, stderr.String())
		}
		out := stdout.String()
		settings := config.Settings()
		if len(settings) < 30 {
			t.Fatalf("only %d settings listed by config.Settings", len(settings))
		}
		for _, s := range settings {
			if !strings.Contains(out, "-"+s.Flag+" ") {
				t.Errorf("%s: flag -%s missing from the help", arg, s.Flag)
			}
			if !strings.Contains(out, "env "+s.Env+",") {
				t.Errorf("%s: variable %s missing from the help", arg, s.Env)
			}
			if !strings.Contains(out, s.Description) {
				t.Errorf("%s: description of %s missing from the help", arg, s.Env)
			}
		}
	}
}

func TestBadConfigurationExitsWithOneLine(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		env     map[string]string
		setting string // must be named in the message
	}{
		{"bad duration in env", nil, map[string]string{"TRADEWIRE_PING_INTERVAL": "abc"}, "TRADEWIRE_PING_INTERVAL"},
		{"negative flag", []string{"-max-subscriptions=-1"}, nil, "-max-subscriptions"},
		{"mongo store without URL", nil, map[string]string{"TRADEWIRE_SESSION_STORE": "mongo"}, "TRADEWIRE_MONGO_URL"},
		{"flag overrides a good env", []string{"-rate-events-per-minute", "x"}, map[string]string{"TRADEWIRE_RATE_EVENTS_PER_MINUTE": "5"}, "-rate-events-per-minute"},
		{"bad enum", []string{"-ws-mode=threads"}, nil, "-ws-mode"},
		{"bad log format", nil, map[string]string{"TRADEWIRE_LOG_FORMAT": "xml"}, "TRADEWIRE_LOG_FORMAT"},
		{"bad address", []string{"-addr", "nonsense"}, nil, "-addr"},
		{"unknown flag", []string{"-no-such-setting"}, nil, "-no-such-setting"},
		{"positional argument", []string{"serve"}, nil, `"serve"`},
		{"drain window vs timeout", []string{"-drain-window=10s", "-shutdown-timeout=5s"}, nil, "TRADEWIRE_DRAIN_WINDOW"},
		{"redis store without URL", []string{"-session-store=redis"}, nil, "TRADEWIRE_REDIS_URL"},
		{"production without secrets", []string{"-session-store=mongo", "-mongo-url=mongodb://127.0.0.1:1/app"}, nil, "TRADEWIRE_SESSION_SECRETS"},
		{"secret never echoed", []string{"-session-store=redis", "-redis-url=redis://127.0.0.1:1", "-session-secrets=s3cr3t-value", "-api-keys=k3y-tiny", "-cluster-secret=c0123456789abcdef0123456789abcdef"}, nil, "TRADEWIRE_API_KEYS"},
		{"deployment without session store", nil, map[string]string{"TRADEWIRE_SESSION_SECRETS": "s3cr3t-value", "TRADEWIRE_API_KEYS": "0123456789abcdef"}, "TRADEWIRE_SESSION_STORE"},
		{"set but empty", nil, map[string]string{"TRADEWIRE_SESSION_SECRETS": "s3cr3t-value", "TRADEWIRE_MONGO_URL": ""}, "TRADEWIRE_MONGO_URL is set but empty"},
		{"redis without cluster secret", nil, map[string]string{"TRADEWIRE_SESSION_STORE": "redis", "TRADEWIRE_REDIS_URL": "redis://127.0.0.1:1", "TRADEWIRE_SESSION_SECRETS": "s3cr3t-value"}, "TRADEWIRE_CLUSTER_SECRET"},
		{"cors wildcard outside dev mode", nil, map[string]string{"TRADEWIRE_SESSION_STORE": "mongo", "TRADEWIRE_MONGO_URL": "mongodb://127.0.0.1:1/app", "TRADEWIRE_SESSION_SECRETS": "s3cr3t-value", "TRADEWIRE_CORS_ORIGINS": "*"}, "TRADEWIRE_CORS_ORIGINS"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, env(tc.env), &stdout, &stderr)
			if code != 2 {
				t.Fatalf("exit %d, want 2 (stdout %q, stderr %q)", code, stdout.String(), stderr.String())
			}
			msg := stderr.String()
			if strings.Count(msg, "\n") != 1 || !strings.HasSuffix(msg, "\n") {
				t.Fatalf("want exactly one line on stderr, got %q", msg)
			}
			if !strings.HasPrefix(msg, "tradewire: ") || !strings.Contains(msg, tc.setting) {
				t.Fatalf("message %q does not name %s", msg, tc.setting)
			}
			if strings.Contains(msg, "s3cr3t-value") || strings.Contains(msg, "k3y-tiny") {
				t.Fatalf("message %q shows a secret", msg)
			}
			if stdout.Len() != 0 {
				t.Fatalf("unexpected stdout %q", stdout.String())
			}
			if strings.Contains(msg, "panic") {
				t.Fatalf("panic: %s", msg)
			}
		})
	}
}

func TestStartupFailureExitsNonZero(t *testing.T) {
	// A Mongo URL without a database name passes the syntax check but the
	// session store refuses it when the gateway is built.
	var stdout, stderr bytes.Buffer
	code := run([]string{"-session-store=mongo", "-mongo-url=mongodb://127.0.0.1:1", "-session-secrets=x", "-log-format=text"}, env(nil), &stdout, &stderr)
	if code == 0 {
		t.Fatal("exit 0 with an unusable Mongo URL")
	}
	if !strings.Contains(stderr.String(), "startup failed") || !strings.Contains(stderr.String(), "TRADEWIRE_MONGO_URL") {
		t.Fatalf("stderr does not explain the failure: %s", stderr.String())
	}
}

func TestListenFailureExitsNonZero(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var stdout bytes.Buffer
	stderr := &syncBuffer{}
	// The debug listener on the same taken address fails too, in the background.
	code := run([]string{"-addr", l.Addr().String(), "-debug-addr", l.Addr().String(), "-demo-feed=false"}, env(nil), &stdout, stderr)
	if code == 0 {
		t.Fatal("exit 0 although the address is taken")
	}
	if !strings.Contains(stderr.String(), "listen failed") {
		t.Fatalf("stderr: %s", stderr.String())
	}
	if !poll.Check(5*time.Second, func() bool { return strings.Contains(stderr.String(), `"msg":"debug server","err"`) }) {
		t.Fatalf("no debug server error logged: %s", stderr.String())
	}
}

var listeningRE = regexp.MustCompile(`"msg":"listening","addr":"([^"]+)"`)

// TestRunServesAndDrainsOnSIGTERM runs the gateway in this process and
// sends this process SIGTERM once. It must be the only test that signals
// this process: run's signal goroutine stays registered and exits the
// process on a second signal.
func TestRunServesAndDrainsOnSIGTERM(t *testing.T) {
	var stdout syncBuffer
	stderr := &syncBuffer{}
	debugAddr := freeAddr(t)
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"-addr", "127.0.0.1:0", "-drain-window", "200ms", "-demo-feed=false", "-debug-addr", debugAddr}, env(map[string]string{"TRADEWIRE_LOG_LEVEL": "info"}), &stdout, stderr)
	}()
	var addr string
	if !poll.Check(10*time.Second, func() bool {
		if m := listeningRE.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
			return true
		}
		return false
	}) {
		t.Fatalf("no listening log line: %s", stderr.String())
	}
	// The banner is written once the listener is up, beside the line above.
	if !poll.Check(5*time.Second, func() bool {
		logs := stderr.String()
		return strings.Contains(logs, "DEV MODE") && strings.Contains(logs, "Authorization: Bearer dev-")
	}) {
		t.Fatalf("dev mode warning with a curl example missing: %s", stderr.String())
	}
	// pprof on the separate debug listener.
	var pprofCode int
	if !poll.Check(5*time.Second, func() bool {
		resp, err := http.Get("http://" + debugAddr + "/debug/pprof/cmdline")
		if err != nil {
			return false
		}
		resp.Body.Close()
		pprofCode = resp.StatusCode
		return true
	}) || pprofCode != http.StatusOK {
		t.Fatalf("debug server: HTTP %d", pprofCode)
	}
	base := "http://" + addr
	if resp, err := http.Get(base + "/debug/pprof/cmdline"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("pprof served on the public listener")
		}
	}
	cookie := devLogin(t, base)
	c := dial(t, base, cookie)
	defer c.Close()

	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d after one SIGTERM, want 0; logs:\n%s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("run did not return after SIGTERM; logs:\n%s", stderr.String())
	}
	if _, err := c.WaitEvent("server:shutdown", time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitClosed(time.Second); err != nil {
		t.Fatal(err)
	}
	logs := stderr.String()
	for _, want := range []string{"signal received, draining", "shutdown complete"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log %q missing:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "second signal") {
		t.Errorf("a single SIGTERM was taken for two:\n%s", logs)
	}
}

// devLogin creates a dev-mode session for u1 and returns its Cookie header value.
func devLogin(t testing.TB, base string) string { return devLoginUser(t, base, "u1") }

func dial(t testing.TB, base, cookie string) *sioclient.Client {
	t.Helper()
	h := http.Header{}
	h.Set("Cookie", cookie)
	c, err := sioclient.Dial(base, sioclient.Options{Header: h, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return c
}

// TestOutOfRangeRateIsAConfigError: a rate the limiter cannot enforce is a
// bad configuration value like any other: exit 2 with one line naming the
// setting, not a startup failure naming a Go field.
func TestOutOfRangeRateIsAConfigError(t *testing.T) {
	for _, tc := range []struct{ arg, setting string }{
		{"-rate-connections-per-minute=100000000", "-rate-connections-per-minute"},
		{"-rate-events-per-minute=100000000", "-rate-events-per-minute"},
	} {
		var stdout, stderr bytes.Buffer
		code := run([]string{tc.arg, "-log-format=text"}, env(nil), &stdout, &stderr)
		msg := stderr.String()
		if code != 2 || strings.Count(msg, "\n") != 1 || !strings.Contains(msg, tc.setting) {
			t.Errorf("%s: exit %d, stderr ends %q; want exit 2 and one line naming %s", tc.arg, code, tail(msg, 160), tc.setting)
		}
	}
}

func TestApplyGCPercent(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	none := func(string) (string, bool) { return "", false }
	if got := applyGCPercent(37, none); got != 37 {
		t.Fatalf("applied %d, want 37", got)
	}
	if cur := debug.SetGCPercent(37); cur != 37 {
		t.Fatalf("runtime target %d after applying 37", cur)
	}
	// GOGC given: the runtime's value (set from it at start) stays.
	debug.SetGCPercent(80)
	gogc := func(k string) (string, bool) { return "80", k == "GOGC" }
	if got := applyGCPercent(37, gogc); got != 80 {
		t.Fatalf("with GOGC set: reported %d, want 80", got)
	}
	if cur := debug.SetGCPercent(80); cur != 80 {
		t.Fatalf("with GOGC set the target became %d", cur)
	}
}
