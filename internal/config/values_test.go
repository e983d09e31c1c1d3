package config

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestParseByteSize(t *testing.T) {
	good := map[string]ByteSize{
		"0": 0, "1000000": 1000000, "1MiB": MiB, "1 mib": MiB, "64KiB": 64 * KiB, "64ki": 64 * KiB,
		"1MB": 1000000, "1.5MB": 1500000, "2g": 2000000000, "1GiB": GiB, "10b": 10, "3kB": 3000, " 7 ": 7,
	}
	for in, want := range good {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "1 TB", "-1", "1.2.3", "1e3", "abc", "99999999999GiB"} {
		if _, err := ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q) succeeded", bad)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	cases := map[ByteSize]string{0: "0B", 1: "1B", 1000000: "1000000B", KiB: "1KiB", 3 * MiB: "3MiB", 2 * GiB: "2GiB", MiB + 1: "1048577B"}
	for in, want := range cases {
		if got := in.String(); got != want {
			t.Errorf("%d.String() = %q; want %q", int64(in), got, want)
		}
	}
}

func TestParseRedisURL(t *testing.T) {
	cases := []struct {
		in      string
		cluster bool
		tls     bool
		addrs   string
		client  string
	}{
		{"redis://localhost", false, false, "localhost:6379", "redis://localhost"},
		{"redis://:pw@10.0.0.5:6380/2", false, false, "10.0.0.5:6380", "redis://:pw@10.0.0.5:6380/2"},
		{"rediss://user:pw@[::1]:7000", false, true, "[::1]:7000", "rediss://user:pw@[::1]:7000"},
		{"unix:///run/redis.sock?db=1", false, false, "/run/redis.sock", "unix:///run/redis.sock?db=1"},
		{"redis+cluster://h1:7000,h2:7001,h3", true, false, "h1:7000,h2:7001,h3:6379",
			"redis://h1:7000?addr=h2%3A7001&addr=h3%3A6379"},
		{"rediss+cluster://u:p%40ss@h1:7000, [::1]:7001 ,[::2]/?dial_timeout=3s", true, true, "h1:7000,[::1]:7001,[::2]:6379",
			"rediss://u:p%40ss@h1:7000?addr=%5B%3A%3A1%5D%3A7001&addr=%5B%3A%3A2%5D%3A6379&dial_timeout=3s"},
		{"redis+cluster://solo/0", true, false, "solo:6379", "redis://solo:6379"},
	}
	for _, tc := range cases {
		got, err := ParseRedisURL(tc.in)
		if err != nil {
			t.Errorf("ParseRedisURL(%q): %v", tc.in, err)
			continue
		}
		if got.Cluster != tc.cluster || got.TLS != tc.tls || strings.Join(got.Addrs, ",") != tc.addrs || got.ClientURL != tc.client {
			t.Errorf("ParseRedisURL(%q) = %+v", tc.in, got)
		}
	}
	bad := map[string]string{
		"localhost:6379":                 "not a URL",
		"memcached://h":                  `unsupported scheme "memcached"`,
		"redis://":                       "no host",
		"redis://h/x":                    `database "x" is not a number`,
		"redis://h:99999999999999999999": "invalid port",
		"redis://h:0":                    "invalid port",
		"unix://":                        "no socket path",
		"unix://%zz":                     "malformed URL",
		"redis+cluster://":               "no cluster nodes",
		"redis+cluster://h1,h2/3":        "only database 0",
		"redis+cluster://h1:x":           `node "h1:x" has an invalid port`,
		"redis+cluster://:7000":          `node ":7000" is not host:port`,
		"redis+cluster://h1?a=%zz":       "invalid query string",
		"redis+cluster://h1?a=1#frag":    "fragments are not allowed",
		"redis+cluster://u:p%zz@h1":      "malformed URL",
	}
	for in, want := range bad {
		_, err := ParseRedisURL(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRedisURL(%q) error = %v; want %q", in, err, want)
		}
	}
}

func TestRedisTargetLogValue(t *testing.T) {
	tgt, err := ParseRedisURL("rediss+cluster://u:hunter2@h1:7000,h2:7001")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("redis", "redis", tgt)
	out := buf.String()
	if strings.Contains(out, "hunter2") || !strings.Contains(out, "redis.cluster=true") || !strings.Contains(out, "redis.addrs=h1:7000,h2:7001") {
		t.Fatalf("got %s", out)
	}
}
