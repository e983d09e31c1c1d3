package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func decodeLines(t *testing.T, b *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestNewFormats(t *testing.T) {
	var buf bytes.Buffer
	l, err := New("", "", &buf)
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hello", "n", 1)
	l.Debug("hidden")
	lines := decodeLines(t, &buf)
	if len(lines) != 1 || lines[0]["msg"] != "hello" || lines[0]["n"] != float64(1) {
		t.Fatalf("default logger wrote %v", lines)
	}

	buf.Reset()
	l, err = New("TEXT", "debug", &buf)
	if err != nil {
		t.Fatal(err)
	}
	l.Debug("visible", "k", "v")
	if got := buf.String(); !strings.Contains(got, "level=DEBUG") || !strings.Contains(got, "msg=visible") || !strings.Contains(got, "k=v") {
		t.Fatalf("text logger wrote %q", got)
	}
	if strings.HasPrefix(strings.TrimSpace(buf.String()), "{") {
		t.Fatalf("text logger wrote JSON: %q", buf.String())
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New("xml", "info", &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), `"xml"`) {
		t.Fatalf("want format error naming xml, got %v", err)
	}
	if _, err := New("json", "loud", &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), `"loud"`) {
		t.Fatalf("want level error naming loud, got %v", err)
	}
}

func TestParseLevel(t *testing.T) {
	cases := map[string]slog.Level{
		"":        slog.LevelInfo,
		"debug":   slog.LevelDebug,
		"INFO":    slog.LevelInfo,
		"warn":    slog.LevelWarn,
		"Warning": slog.LevelWarn,
		"error":   slog.LevelError,
		"info+2":  slog.LevelInfo + 2,
		" debug ": slog.LevelDebug,
	}
	for in, want := range cases {
		got, err := ParseLevel(in)
		if err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"verbose", "1", "info+"} {
		if _, err := ParseLevel(bad); err == nil {
			t.Errorf("ParseLevel(%q) succeeded", bad)
		}
	}
}

func TestLevelFilters(t *testing.T) {
	var buf bytes.Buffer
	l, err := New("json", "warn", &buf)
	if err != nil {
		t.Fatal(err)
	}
	l.Info("no")
	l.Warn("yes")
	l.Error("also")
	lines := decodeLines(t, &buf)
	if len(lines) != 2 || lines[0]["msg"] != "yes" || lines[1]["msg"] != "also" {
		t.Fatalf("got %v", lines)
	}
}

func TestContextFields(t *testing.T) {
	var buf bytes.Buffer
	l, err := New("json", "info", &buf)
	if err != nil {
		t.Fatal(err)
	}
	ctx := WithSocket(context.Background(), "sock-1", "user-42")
	ctx = WithAttrs(ctx, slog.String("namespace", "/"))
	l.InfoContext(ctx, "event", "name", "subscribe")
	l.With("component", "auth").InfoContext(ctx, "with attrs")
	l.WithGroup("g").InfoContext(WithSocket(context.Background(), "s2", ""), "grouped", "a", 1)
	l.Info("no context")
	lines := decodeLines(t, &buf)
	if len(lines) != 4 {
		t.Fatalf("got %d lines", len(lines))
	}
	first := lines[0]
	if first[KeySocketID] != "sock-1" || first[KeyUserID] != "user-42" || first["namespace"] != "/" || first["name"] != "subscribe" {
		t.Fatalf("context fields missing: %v", first)
	}
	if lines[1]["component"] != "auth" || lines[1][KeySocketID] != "sock-1" {
		t.Fatalf("With lost context fields: %v", lines[1])
	}
	g, _ := lines[2]["g"].(map[string]any)
	if g == nil || g[KeySocketID] != "s2" || g["a"] != float64(1) {
		t.Fatalf("grouped record: %v", lines[2])
	}
	if _, ok := g[KeyUserID]; ok {
		t.Fatalf("empty user id was logged: %v", lines[2])
	}
	if _, ok := lines[3][KeySocketID]; ok {
		t.Fatalf("record without context got socket id: %v", lines[3])
	}
}

func TestWithAttrsDoesNotAlias(t *testing.T) {
	base := WithAttrs(context.Background(), slog.Int("a", 1))
	c1 := WithAttrs(base, slog.Int("b", 2))
	c2 := WithAttrs(base, slog.Int("c", 3))
	if len(ContextAttrs(base)) != 1 || ContextAttrs(c1)[1].Key != "b" || ContextAttrs(c2)[1].Key != "c" {
		t.Fatalf("attrs aliased: %v %v %v", ContextAttrs(base), ContextAttrs(c1), ContextAttrs(c2))
	}
	if WithAttrs(base) != base {
		t.Fatal("WithAttrs with no attrs should return ctx unchanged")
	}
	if WithSocket(base, "", "") != base {
		t.Fatal("WithSocket with empty ids should return ctx unchanged")
	}
}

func TestNewContextHandlerIdempotentAndEnabled(t *testing.T) {
	var buf bytes.Buffer
	inner := slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})
	h := NewContextHandler(inner)
	if NewContextHandler(h) != h {
		t.Fatal("wrapping twice should not stack handlers")
	}
	if h.Enabled(context.Background(), slog.LevelInfo) || !h.Enabled(context.Background(), slog.LevelError) {
		t.Fatal("Enabled does not follow the inner handler")
	}
	//nolint:staticcheck // a nil context must not crash the handler
	if err := h.Handle(nil, slog.NewRecord(timeZero, slog.LevelError, "x", 0)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"msg":"x"`) {
		t.Fatalf("got %q", buf.String())
	}
}

func TestRedactionInLogger(t *testing.T) {
	var buf bytes.Buffer
	l, err := New("json", "debug", &buf)
	if err != nil {
		t.Fatal(err)
	}
	l.Info("login",
		"socket_id", "abc123",
		"session_id", "s%3Asecret-session.sig",
		"connect.sid", "s:xyz",
		"sid", "engine-sid",
		"password", "hunter2",
		"API_KEY", "k-1",
		"x-api-key", "k-2",
		"session_secrets", []string{"a", "b"},
		"allow_unsigned_session_id", true,
		"redis_url", "redis://user:pa55@redis:6379/0",
		"err", errors.New("dial mongodb://app:topsecret@db:27017 failed"),
		slog.Group("session", "id", "raw-session", "user", "u1"),
		slog.Group("socket", "id", "sock-9"),
	)
	out := buf.String()
	for _, leaked := range []string{"s%3Asecret-session", "s:xyz", "engine-sid", "hunter2", "k-1", "k-2", `"a"`, "pa55", "topsecret", "raw-session"} {
		if strings.Contains(out, leaked) {
			t.Errorf("secret %q leaked: %s", leaked, out)
		}
	}
	m := decodeLines(t, &buf)[0]
	if m["socket_id"] != "abc123" || m["socket"].(map[string]any)["id"] != "sock-9" {
		t.Errorf("socket id must stay visible: %v", m)
	}
	if m["redis_url"] != "redis://user:"+Redacted+"@redis:6379/0" {
		t.Errorf("redis_url = %v", m["redis_url"])
	}
	if m["err"] != "dial mongodb://app:"+Redacted+"@db:27017 failed" {
		t.Errorf("err = %v", m["err"])
	}
	if m["allow_unsigned_session_id"] != true {
		t.Errorf("boolean flag was redacted: %v", m["allow_unsigned_session_id"])
	}
	if m["session"].(map[string]any)["user"] != "u1" || m["password"] != Redacted {
		t.Errorf("unexpected: %v", m)
	}
}

func TestIsSecretKey(t *testing.T) {
	secret := []string{"secret", "Session_Secrets", "password", "DB_PASSWORD", "pwd", "api_key", "apiKey", "X-Api-Key",
		"token", "access_token", "Authorization", "cookie", "Set-Cookie", "sid", "sessionID", "session-id", "connect.sid",
		"session", "auth", "private_key", "credentials", "api_keys"}
	public := []string{"socket_id", "socketId", "user_id", "request_id", "transport", "room", "event", "sessions_total",
		"session_store", "session_cookie", "auth_cache_ttl", "tokens_used", "msg"}
	for _, k := range secret {
		if !IsSecretKey(k) {
			t.Errorf("IsSecretKey(%q) = false", k)
		}
	}
	for _, k := range public {
		if IsSecretKey(k) {
			t.Errorf("IsSecretKey(%q) = true", k)
		}
	}
}

func TestRedact(t *testing.T) {
	if Redact("") != "" || Redact("x") != Redacted {
		t.Fatal("Redact")
	}
}

func TestRedactURLs(t *testing.T) {
	cases := map[string]string{
		"redis://:pw@h:6379":                                 "redis://:" + Redacted + "@h:6379",
		"rediss://default:p%40ss@h:6380/1":                   "rediss://default:" + Redacted + "@h:6380/1",
		"redis+cluster://u:p@h1:1,h2:2":                      "redis+cluster://u:" + Redacted + "@h1:1,h2:2",
		"mongodb+srv://u:p@cluster0/db?w=majority":           "mongodb+srv://u:" + Redacted + "@cluster0/db?w=majority",
		"mongodb://h/db?tlsCertificateKeyFilePassword=x&w=1": "mongodb://h/db?tlsCertificateKeyFilePassword=" + Redacted + "&w=1",
		"https://h/p?token=abc":                              "https://h/p?token=" + Redacted,
		"redis://user@h:6379":                                "redis://user@h:6379",
		"redis://h:6379":                                     "redis://h:6379",
		"plain text":                                         "plain text",
		"a=b&c=d":                                            "a=b&c=d",
		"two: redis://a:b@x and mongodb://c:d@y":             "two: redis://a:" + Redacted + "@x and mongodb://c:" + Redacted + "@y",
	}
	for in, want := range cases {
		if got := RedactURLs(in); got != want {
			t.Errorf("RedactURLs(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestReplaceAttrLeavesOthersAlone(t *testing.T) {
	a := slog.Int("count", 3)
	if got := ReplaceAttr(nil, a); !got.Equal(a) {
		t.Fatalf("got %v", got)
	}
	e := slog.Any("err", errors.New("plain"))
	if got := ReplaceAttr(nil, e); got.Value.Kind() != slog.KindAny {
		t.Fatalf("plain error was rewritten: %v", got)
	}
	s := slog.String("q", "a=b")
	if got := ReplaceAttr(nil, s); !got.Equal(s) {
		t.Fatalf("got %v", got)
	}
}

var timeZero = time.Time{}
