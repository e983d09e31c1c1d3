package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tradewire/tradewire/internal/config"
)

func TestDashboardURL(t *testing.T) {
	for addr, want := range map[string]string{
		"[::]:8080":      "http://localhost:8080/",
		"0.0.0.0:9000":   "http://localhost:9000/",
		"127.0.0.1:8080": "http://127.0.0.1:8080/",
		"[::1]:80":       "http://[::1]:80/",
	} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := dashboardURL(a); got != want {
			t.Errorf("%s: %s, want %s", addr, got, want)
		}
	}
	if got := dashboardURL(&net.UnixAddr{Name: "sock", Net: "unix"}); got != "http://sock/" {
		t.Errorf("unix: %s", got)
	}
}

func TestLogFormatInDevMode(t *testing.T) {
	getenv := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	env := func(kv map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := kv[k]; return v, ok }
	}
	dev, err := config.Load(nil, getenv(nil))
	if err != nil {
		t.Fatal(err)
	}
	tty := openPTY(t)
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if f := logFormat(dev, nil, env(nil), null); f != "json" {
		t.Fatalf("dev mode to /dev/null: %q, want json (not a terminal)", f)
	}
	if f := logFormat(dev, nil, env(nil), tty); f != "text" {
		t.Fatalf("dev mode on a terminal: %q, want text", f)
	}
	if f := logFormat(dev, nil, env(nil), &bytes.Buffer{}); f != "json" {
		t.Fatalf("dev mode to a pipe: %q, want json", f)
	}
	if f := logFormat(dev, nil, env(map[string]string{"TRADEWIRE_LOG_FORMAT": "json"}), tty); f != "json" {
		t.Fatalf("explicit env: %q", f)
	}
	if f := logFormat(dev, []string{"-log-format=json"}, env(nil), tty); f != "json" {
		t.Fatalf("explicit flag: %q", f)
	}
	prod, err := config.Load(nil, getenv(map[string]string{"TRADEWIRE_MONGO_URL": "mongodb://m/db", "TRADEWIRE_SESSION_SECRETS": "s", "TRADEWIRE_API_KEYS": "0123456789abcdef0"}))
	if err != nil {
		t.Fatal(err)
	}
	if f := logFormat(prod, nil, env(nil), tty); f != "json" {
		t.Fatalf("production on a terminal: %q", f)
	}
}

// openPTY opens the terminal side of a new pseudo-terminal.
func openPTY(t *testing.T) *os.File {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
