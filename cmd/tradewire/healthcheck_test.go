package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os/exec"
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
	if code := healthcheck([]string{ok.URL + "/healthz"}, &out, &errb); code != 0 || !strings.Contains(out.String(), `"ok"`) {
		t.Fatalf("healthy: exit %d, out %q, err %q", code, out.String(), errb.String())
	}
	errb.Reset()
	if code := healthcheck([]string{ok.URL + "/readyz"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "503") {
		t.Fatalf("503: exit %d, err %q", code, errb.String())
	}
	if code := healthcheck([]string{"http://127.0.0.1:1/healthz"}, &out, &errb); code != 1 {
		t.Fatalf("refused: exit %d", code)
	}
	if code := healthcheck([]string{"a", "b"}, &out, &errb); code != 2 {
		t.Fatalf("two args: exit %d", code)
	}
	if code := healthcheck([]string{"http://bad host/"}, &out, &errb); code != 2 {
		t.Fatalf("bad URL: exit %d", code)
	}
}

// TestHealthcheckBinary runs the built binary as the Dockerfile's
// HEALTHCHECK does.
func TestHealthcheckBinary(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"status":"ok"}`))
	}))
	defer srv.Close()
	out, err := exec.Command(gatewayBinary(t), "healthcheck", srv.URL+"/healthz").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"ok"`) {
		t.Fatalf("healthy: %v %s", err, out)
	}
	srv.Close()
	err = exec.Command(gatewayBinary(t), "healthcheck", srv.URL+"/healthz").Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("down: %v", err)
	}
}
