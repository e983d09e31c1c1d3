// Command tradewire is the real-time gateway: Socket.IO v4 for browsers,
// Express session auth, trading rooms, a publish API for backends, and
// Redis-based scale-out. With no configuration it starts in dev mode.
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
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/tradewire/tradewire/internal/config"
	"github.com/tradewire/tradewire/internal/gateway"
	"github.com/tradewire/tradewire/internal/logging"
)

func main() { os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr)) }

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := config.LoadWithUsage(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "tradewire:", err)
		return 2
	}
	log, err := logging.New(logFormat(cfg, args, getenv, stderr), cfg.LogLevel, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "tradewire:", err)
		return 2
	}
	slog.SetDefault(log)
	log.Info("starting tradewire", "config", cfg)

	// First signal: graceful drain. Second signal: exit at once.
	ctx, stop := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sigs
		log.Info("signal received, draining (send it again to exit at once)", "signal", s.String())
		stop()
		s = <-sigs
		log.Warn("second signal, exiting now", "signal", s.String())
		os.Exit(1)
	}()

	g, err := gateway.New(ctx, cfg, log)
	if err != nil {
		log.Error("startup failed", "err", err)
		return 1
	}
	if cfg.DevMode() {
		log.Warn("DEV MODE: memory sessions, POST /dev/login, demo quote feed; not for production",
			"publish_example", "curl -H 'Authorization: Bearer "+g.DevAPIKey()+"' -d '{\"type\":\"notification\",\"userId\":\"u1\",\"notification\":{\"title\":\"Hi\",\"message\":\"Hello\"}}' http://"+cfg.Addr+"/api/v1/events")
	}
	if cfg.DebugAddr != "" {
		go serveDebug(cfg.DebugAddr, log)
	}
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		log.Error("listen failed", "addr", cfg.Addr, "err", err)
		return 1
	}
	log.Info("listening", "addr", l.Addr().String(), "path", cfg.Path)
	if cfg.Dashboard {
		log.Info("dashboard: open "+dashboardURL(l.Addr()), "url", dashboardURL(l.Addr()))
	}
	if err := g.Serve(ctx, l); err != nil {
		log.Error("server stopped", "err", err)
		return 1
	}
	return 0
}

// logFormat is the configured log format, except in dev mode with logs going
// to a terminal and no format asked for: human-readable text there.
func logFormat(cfg *config.Config, args []string, getenv func(string) string, w io.Writer) string {
	if !cfg.DevMode() || getenv(config.EnvPrefix+"LOG_FORMAT") != "" {
		return cfg.LogFormat
	}
	for _, a := range args {
		if strings.HasPrefix(strings.TrimLeft(a, "-"), "log-format") {
			return cfg.LogFormat
		}
	}
	if isTerminal(w) {
		return logging.FormatText
	}
	return cfg.LogFormat
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// dashboardURL is the address a browser on this machine opens for the
// dashboard: an unspecified listen address becomes localhost.
func dashboardURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String() + "/"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// serveDebug serves net/http/pprof on its own listener.
func serveDebug(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info("debug server (pprof)", "addr", addr)
	if err := http.ListenAndServe(addr, mux); err != nil {
		log.Error("debug server", "err", err)
	}
}
