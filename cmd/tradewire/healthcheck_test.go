package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthcheckCommand(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"status":"ok"}`))
	}))
	defer ok.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"healthcheck", ok.URL + "/healthz"}, func(string) string { return "" }, &out, &errb); code != 0 || !strings.Contains(out.String(), `"ok"`) {
		t.Fatalf("healthy: exit %d, out %q, err %q", code, out.String(), errb.String())
	}
	errb.Reset()
	if code := run([]string{"healthcheck", ok.URL + "/readyz"}, nil, &out, &errb); code != 1 || !strings.Contains(errb.String(), "503") {
		t.Fatalf("503: exit %d, err %q", code, errb.String())
	}
	if code := run([]string{"healthcheck", "http://127.0.0.1:1/healthz"}, nil, &out, &errb); code != 1 {
		t.Fatalf("refused: exit %d", code)
	}
	if code := run([]string{"healthcheck", "a", "b"}, nil, &out, &errb); code != 2 {
		t.Fatalf("two args: exit %d", code)
	}
	if code := run([]string{"healthcheck", "http://bad host/"}, nil, &out, &errb); code != 2 {
		t.Fatalf("bad URL: exit %d", code)
	}
}
