package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tradewire/tradewire/internal/config"
	"github.com/tradewire/tradewire/internal/testutil/poll"
)

func TestDevBannerWarnsEveryIntervalOffLoopback(t *testing.T) {
	old := devWarnInterval
	devWarnInterval = 50 * time.Millisecond
	defer func() { devWarnInterval = old }()
	for _, tc := range []struct {
		args  []string
		warns bool
	}{
		{[]string{"-dev-mode", "-addr", "0.0.0.0:8080"}, true},
		{[]string{"-dev-mode", "-addr", ":8080"}, true},
		{[]string{"-dev-mode", "-addr", "127.0.0.1:8080"}, false},
		{[]string{"-addr", ":8080"}, false}, // implicit dev mode: the laptop case
	} {
		cfg, err := config.LoadEnv(tc.args, func(string) (string, bool) { return "", false }, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		buf := &syncBuffer{}
		ctx, cancel := context.WithCancel(context.Background())
		devBanner(ctx, slog.New(slog.NewTextHandler(buf, nil)), cfg, "dev-key", &net.TCPAddr{IP: net.IPv4zero, Port: 8080})
		if tc.warns {
			// Repeated: at least 3 within a few intervals (generous under load).
			if !poll.Check(3*time.Second, func() bool { return strings.Count(buf.String(), "NON-LOOPBACK") >= 3 }) {
				t.Errorf("%v: warning not repeated:\n%s", tc.args, buf.String())
			}
		} else {
			time.Sleep(150 * time.Millisecond)
			if n := strings.Count(buf.String(), "NON-LOOPBACK"); n != 0 {
				t.Errorf("%v: %d loud warnings:\n%s", tc.args, n, buf.String())
			}
		}
		cancel()
		logs := buf.String()
		if !strings.Contains(logs, "Bearer dev-key") || !strings.Contains(logs, "http://127.0.0.1:8080/api/v1/events") {
			t.Errorf("%v: banner without a usable curl line:\n%s", tc.args, logs)
		}
	}
}

func TestLoopbackAndLocalURL(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:1": true, "[::1]:1": true, "localhost:1": true, ":1": false, "0.0.0.0:1": false, "10.0.0.1:1": false, "bad": false} {
		if config.IsLoopback(addr) != want {
			t.Errorf("IsLoopback(%q) != %v", addr, want)
		}
	}
	if h := localURLHost(&net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 9}); h != "10.1.2.3:9" {
		t.Errorf("localURLHost = %q", h)
	}
	if h := localURLHost(&net.TCPAddr{IP: net.IPv6unspecified, Port: 9}); h != "127.0.0.1:9" {
		t.Errorf("localURLHost = %q", h)
	}
}
