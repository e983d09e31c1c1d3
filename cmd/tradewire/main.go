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
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tradewire/tradewire/internal/config"
	"github.com/tradewire/tradewire/internal/gateway"
	"github.com/tradewire/tradewire/internal/logging"
)

func main() { os.Exit(run(os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)) }

// run starts the gateway with the given arguments and environment lookup
// and returns the exit code: 2 for a configuration error, 1 for a runtime
// failure.
func run(args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) int {
	cfg, err := config.LoadEnv(args, lookup, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "tradewire:", err)
		return 2
	}
	log, err := logging.New(logFormat(cfg, args, lookup, stderr), cfg.LogLevel, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "tradewire:", err)
		return 2
	}
	slog.SetDefault(log)
	log.Info("starting tradewire", "config", cfg, "gc_percent", applyGCPercent(cfg.GCPercent, lookup))

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
	if cfg.DebugAddr != "" {
		go serveDebug(cfg.DebugAddr, log)
	}
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		log.Error("listen failed", "addr", cfg.Addr, "err", err)
		return 1
	}
	log.Info("listening", "addr", l.Addr().String(), "path", cfg.Path)
	if cfg.DevMode() {
		devBanner(ctx, log, cfg, g.DevAPIKey(), l.Addr())
	}
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
func logFormat(cfg *config.Config, args []string, lookup func(string) (string, bool), w io.Writer) string {
	if _, set := lookup(config.EnvPrefix + "LOG_FORMAT"); !cfg.DevMode() || set {
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

// isTerminal reports whether w is a terminal (it has terminal attributes;
// /dev/null, a character device too, has none).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
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

// devBanner logs the dev-mode warning with a curl line that works as
// printed, and, when dev mode was asked for explicitly on an address other
// machines can reach, repeats a loud warning every minute.
func devBanner(ctx context.Context, log *slog.Logger, cfg *config.Config, key string, addr net.Addr) {
	base := "http://" + localURLHost(addr)
	log.Warn("DEV MODE: POST /dev/login logs anyone in as anyone, demo quote feed; not for production",
		"session_store", cfg.SessionStore, "explicit", cfg.DevModeExplicit(),
		"publish_example", "curl -H 'Authorization: Bearer "+key+"' -H 'Content-Type: application/json' -d '{\"type\":\"notification\",\"userId\":\"u1\",\"notification\":{\"title\":\"Hi\",\"message\":\"Hello\"}}' "+base+"/api/v1/events")
	if !cfg.DevModeExplicit() || config.IsLoopback(cfg.Addr) {
		return
	}
	warn := func() {
		log.Warn("DEV MODE ON A NON-LOOPBACK ADDRESS: anyone who reaches "+cfg.Addr+" can log in as any user, admin included, with POST /dev/login; unset TRADEWIRE_DEV_MODE in a deployment",
			"addr", cfg.Addr)
	}
	warn()
	go func() {
		t := time.NewTicker(devWarnInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				warn()
			}
		}
	}()
}

// devWarnInterval is how often the non-loopback dev-mode warning repeats.
var devWarnInterval = time.Minute

// localURLHost is addr with an unspecified host replaced by 127.0.0.1, for
// a URL that works from this machine.
func localURLHost(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip, err := netip.ParseAddr(host); err != nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// applyGCPercent sets the collector's target to percent unless the GOGC
// environment variable was given (an operator's explicit choice), and
// returns the target in force. See docs/decisions/011-connection-state-second-step.md.
func applyGCPercent(percent int, lookup func(string) (string, bool)) int {
	if v, ok := lookup("GOGC"); ok && v != "" {
		cur := debug.SetGCPercent(100) // read the runtime's value (from GOGC) ...
		debug.SetGCPercent(cur)        // ... and keep it
		return cur
	}
	debug.SetGCPercent(percent)
	return percent
}
