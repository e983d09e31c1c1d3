package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func lookupEnv(kv map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := kv[k]
		return v, ok
	}
}

func TestDevModeOnlyWhenAskedOrNothingDeployed(t *testing.T) {
	// Every deployment-like setting alone turns dev mode off and, without a
	// session store, is refused naming what is missing.
	values := map[string]string{
		"REDIS_URL": "redis://r:6379", "MONGO_URL": "mongodb://m/db", "SESSION_STORE": "redis",
		"SESSION_SECRETS": "s", "SESSION_REDIS_URL": "redis://s:6379", "API_KEYS": "0123456789abcdef",
		"TRUSTED_PROXIES": "10.0.0.0/8", "INGEST_STREAM": "events", "ADVERTISE_URL": "http://n1:8080",
		"CLUSTER_SECRET": strings.Repeat("c", 32),
	}
	for _, name := range deploymentSettings {
		t.Run(name, func(t *testing.T) {
			kv := map[string]string{EnvPrefix + name: values[name]}
			c, err := LoadEnv(nil, lookupEnv(kv), &bytes.Buffer{})
			if err == nil {
				t.Fatalf("%s alone: dev=%v store=%q, want an error", name, c.DevMode(), c.SessionStore)
			}
			if !strings.Contains(err.Error(), EnvPrefix) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q", err)
			}
		})
	}
	// The case: secrets, keys, Redis set and MONGO_URL empty.
	kv := map[string]string{
		"TRADEWIRE_SESSION_SECRETS": "real-secret", "TRADEWIRE_API_KEYS": "0123456789abcdef",
		"TRADEWIRE_REDIS_URL": "redis://r:6379", "TRADEWIRE_MONGO_URL": "",
	}
	if _, err := LoadEnv(nil, lookupEnv(kv), &bytes.Buffer{}); err == nil || err.Error() != "TRADEWIRE_MONGO_URL is set but empty: unset it or give a value" {
		t.Fatalf("empty MONGO_URL: %v", err)
	}
	delete(kv, "TRADEWIRE_MONGO_URL")
	_, err := LoadEnv(nil, lookupEnv(kv), &bytes.Buffer{})
	want := "no session store: TRADEWIRE_REDIS_URL, TRADEWIRE_SESSION_SECRETS, TRADEWIRE_API_KEYS set without TRADEWIRE_SESSION_STORE or TRADEWIRE_MONGO_URL (set TRADEWIRE_DEV_MODE=true for dev mode)"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	// Asked for explicitly, dev mode may use the memory store with the same settings.
	kv["TRADEWIRE_DEV_MODE"] = "true"
	c, err := LoadEnv(nil, lookupEnv(kv), &bytes.Buffer{})
	if err != nil || !c.DevMode() || !c.DevModeExplicit() || c.SessionStore != StoreMemory || !c.DemoFeed {
		t.Fatalf("explicit dev mode: %v %+v", err, c)
	}
	// ... or the redis store, and then no cluster secret is demanded.
	kv["TRADEWIRE_SESSION_STORE"] = "redis"
	if c, err := LoadEnv([]string{"-dev-mode"}, lookupEnv(kv), &bytes.Buffer{}); err != nil || !c.DevMode() || c.SessionStore != StoreRedis {
		t.Fatalf("dev mode with the redis store: %v", err)
	}
	// Never with mongo.
	if _, err := LoadEnv(nil, lookupEnv(map[string]string{"TRADEWIRE_DEV_MODE": "true", "TRADEWIRE_MONGO_URL": "mongodb://m/db"}), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "not mongo") {
		t.Fatalf("dev mode with mongo: %v", err)
	}
	// DEV_MODE=false with nothing else names the missing store.
	if _, err := LoadEnv([]string{"-dev-mode=false"}, lookupEnv(nil), &bytes.Buffer{}); err == nil || !strings.HasPrefix(err.Error(), "TRADEWIRE_DEV_MODE=false requires a session store") {
		t.Fatalf("dev mode off without store: %v", err)
	}
	// Nothing at all: dev mode, as on a fresh machine.
	if c, err := LoadEnv(nil, lookupEnv(map[string]string{"TRADEWIRE_LOG_LEVEL": "debug"}), &bytes.Buffer{}); err != nil || !c.DevMode() || c.DevModeExplicit() {
		t.Fatalf("fresh machine: %v", err)
	}
}

func TestCORSWildcardOnlyInDevMode(t *testing.T) {
	kv := prodEnv()
	kv["TRADEWIRE_CORS_ORIGINS"] = "*"
	if _, err := LoadEnv(nil, lookupEnv(kv), &bytes.Buffer{}); err == nil || !strings.HasPrefix(err.Error(), "TRADEWIRE_CORS_ORIGINS=* is refused outside dev mode") {
		t.Fatalf("got %v", err)
	}
	if c, err := LoadEnv(nil, lookupEnv(map[string]string{"TRADEWIRE_CORS_ORIGINS": "*"}), &bytes.Buffer{}); err != nil || c.CORSOrigins[0] != "*" {
		t.Fatalf("dev mode *: %v", err)
	}
}

func TestSecretsFromFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	kv := prodEnv()
	delete(kv, "TRADEWIRE_SESSION_SECRETS")
	delete(kv, "TRADEWIRE_CLUSTER_SECRET")
	kv["TRADEWIRE_SESSION_SECRETS_FILE"] = write("secrets", "from-file-1,from-file-2\n")
	kv["TRADEWIRE_CLUSTER_SECRET_FILE"] = write("cluster", strings.Repeat("k", 32)+"\r\n")
	c, err := LoadEnv(nil, lookupEnv(kv), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !equalStrings(c.SessionSecrets, []string{"from-file-1", "from-file-2"}) || c.ClusterSecret != strings.Repeat("k", 32) {
		t.Fatalf("secrets %q cluster %q", c.SessionSecrets, c.ClusterSecret)
	}
	// Both forms: an error naming both.
	kv["TRADEWIRE_SESSION_SECRETS"] = "x"
	if _, err := LoadEnv(nil, lookupEnv(kv), &bytes.Buffer{}); err == nil || err.Error() != "both TRADEWIRE_SESSION_SECRETS and TRADEWIRE_SESSION_SECRETS_FILE are set: give one" {
		t.Fatalf("both: %v", err)
	}
	delete(kv, "TRADEWIRE_SESSION_SECRETS")
	for name, content := range map[string]string{"missing": "", "empty": "\n"} {
		p := filepath.Join(dir, name)
		if content != "" {
			p = write(name, content)
		}
		kv["TRADEWIRE_SESSION_SECRETS_FILE"] = p
		if _, err := LoadEnv(nil, lookupEnv(kv), &bytes.Buffer{}); err == nil || !strings.HasPrefix(err.Error(), "TRADEWIRE_SESSION_SECRETS_FILE") {
			t.Fatalf("%s file: %v", name, err)
		}
	}
	kv["TRADEWIRE_SESSION_SECRETS_FILE"] = ""
	if _, err := LoadEnv(nil, lookupEnv(kv), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "set but empty") {
		t.Fatalf("empty _FILE: %v", err)
	}
	// A file alone is deployment-like.
	if _, err := LoadEnv(nil, lookupEnv(map[string]string{"TRADEWIRE_API_KEYS_FILE": write("keys", "0123456789abcdef\n")}), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "TRADEWIRE_API_KEYS") {
		t.Fatalf("keys file alone: %v", err)
	}
}
