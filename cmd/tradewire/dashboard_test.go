package main

import (
	"bytes"
	"net"
	"os"
	"testing"

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
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	dev, err := config.Load(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0)
	if err != nil {
		tty, err = os.OpenFile("/dev/null", os.O_WRONLY, 0) // char device too
		if err != nil {
			t.Skip("no character device")
		}
	}
	defer tty.Close()
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
	prod, err := config.Load(nil, env(map[string]string{"TRADEWIRE_MONGO_URL": "mongodb://m/db", "TRADEWIRE_SESSION_SECRETS": "s", "TRADEWIRE_API_KEYS": "0123456789abcdef0"}))
	if err != nil {
		t.Fatal(err)
	}
	if f := logFormat(prod, nil, env(nil), tty); f != "json" {
		t.Fatalf("production on a terminal: %q", f)
	}
}
