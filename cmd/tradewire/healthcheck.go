package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// init dispatches `tradewire healthcheck [URL]` before the gateway's own flag
// parsing (kept out of main.go so it does not touch the startup code). In a
// test binary os.Args[1] is a -test flag, so this never triggers there.
func init() {
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		os.Exit(healthcheck(os.Args[2:], os.Stdout, os.Stderr))
	}
}

// defaultHealthURL is probed by `tradewire healthcheck` without an argument.
const defaultHealthURL = "http://127.0.0.1:8080/healthz"

// healthcheck implements `tradewire healthcheck [URL]`, the container
// HEALTHCHECK of images without a shell or curl (distroless): it GETs URL
// and exits 0 on a 2xx answer within 3 s, else 1.
func healthcheck(args []string, stdout, stderr io.Writer) int {
	url := defaultHealthURL
	if len(args) > 1 {
		fmt.Fprintln(stderr, "usage: tradewire healthcheck [URL]")
		return 2
	}
	if len(args) == 1 {
		url = args[0]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return 2
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		fmt.Fprintf(stderr, "healthcheck: %s: %s %s\n", url, resp.Status, body)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", body)
	return 0
}
