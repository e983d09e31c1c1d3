// Command rrproxy is a tiny round-robin HTTP reverse proxy for local
// clusters (scripts/cluster): every request, including each Engine.IO
// polling request, goes to the next backend in turn, with no stickiness, and
// websocket upgrades are passed through. It stands in for the load balancer
// of deploy/compose.yaml for people without Docker; it is not meant for
// production traffic.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rrproxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "listen address")
	backends := fs.String("backends", "", "comma list of backend base URLs (http://host:port)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	targets, err := parseBackends(*backends)
	if err != nil {
		fmt.Fprintln(stderr, "rrproxy:", err)
		return 2
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(stderr, "rrproxy:", err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	srv := &http.Server{Handler: New(targets, log), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "rrproxy listening on http://%s -> %s\n", l.Addr(), *backends)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		fmt.Fprintln(stderr, "rrproxy:", err)
		return 1
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return 0
}

// parseBackends parses a comma list of http(s) base URLs.
func parseBackends(list string) ([]*url.URL, error) {
	var out []*url.URL
	for _, part := range strings.Split(list, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		u, err := url.Parse(part)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("backend %q is not an http(s)://host:port URL", part)
		}
		out = append(out, u)
	}
	if len(out) == 0 {
		return nil, errors.New("-backends is required (comma list of http://host:port)")
	}
	return out, nil
}

// Proxy sends each request to the next backend in turn.
type Proxy struct {
	targets []*url.URL
	next    atomic.Uint64
	rp      *httputil.ReverseProxy
	// Hits counts requests per backend index, for tests and debugging.
	Hits []atomic.Int64
}

// New returns a round-robin proxy over targets (at least one).
func New(targets []*url.URL, log *slog.Logger) *Proxy {
	p := &Proxy{targets: targets, Hits: make([]atomic.Int64, len(targets))}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			i := int(p.next.Add(1)-1) % len(p.targets)
			p.Hits[i].Add(1)
			r.SetURL(p.targets[i])
			r.SetXForwarded()
		},
		// Flush at once: long-polling GETs and streamed bodies must not wait.
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Warn("backend error", "url", r.URL.String(), "err", err)
			http.Error(w, "bad gateway", http.StatusBadGateway)
		},
	}
	return p
}

// ServeHTTP implements http.Handler. httputil.ReverseProxy passes websocket
// upgrades (101 Switching Protocols) through as a raw byte tunnel.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.rp.ServeHTTP(w, r) }
