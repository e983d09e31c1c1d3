// Command minimal is the physical-limit reference server of bench/: an epoll
// push server that speaks just enough Engine.IO v4 / Socket.IO 5 over
// websocket for bench/loadgen, and pays for nothing else.
//
//	go run ./bench/minimal -addr 127.0.0.1:3002 -redis redis://127.0.0.1:6390 -api-key bench-api-key-0123456789
//
// What it does (see bench/README.md, "The minimal reference server"):
//   - one epoll loop goroutine on raw sockets (accept4, read, epoll_ctl), one
//     flusher goroutine that drains every dirty connection with writev(2), one
//     timing wheel for heartbeats; one ~150-byte struct per connection, rooms as
//     slices of connection pointers; a broadcast is encoded once and its bytes
//     shared by every recipient's queue;
//   - GET /socket.io/?EIO=4&transport=websocket: the upgrade and the open
//     packet; "40" answered with 40{"sid"} once the session is resolved;
//     subscribe:portfolio / subscribe:trades / subscribe:watchlist {symbols}
//     join portfolio:<user>, trades:<user>, watchlist:<SYMBOL> and are acked;
//     ping/pong per pingInterval/pingTimeout;
//   - the publish API subset the load generator uses, behind
//     "Authorization: Bearer <key>": POST /api/v1/emit and POST /api/v1/events
//     (trade.executed only), plus GET /health and GET /debug/vars; these are
//     handed to net/http after the request head is read.
//
// Sessions: the connect.sid cookie (or auth.sessionID) names a connect-redis
// session; with -redis, sess:<sid> is read once per connect and passport.user
// is the user (the signature is not checked: no auth beyond that). Without
// -redis the session id itself is the user id (enough for idle and fanout).
// Not supported: long-polling, other namespaces, binary packets, fragmented
// websocket messages, compression.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "minimal:", err)
		os.Exit(1)
	}
}

// run parses flags and serves until SIGINT or SIGTERM.
func run(args []string, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := newServer(cfg, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return err
	}
	s.log.Info("listening", "addr", s.Addr(), "pid", os.Getpid(), "redis", cfg.RedisURL != "")
	return s.Serve(ctx)
}

func parseFlags(args []string, stderr io.Writer) (Config, error) {
	fs := flag.NewFlagSet("minimal", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c Config
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:3002", "listen address (IPv4 host:port)")
	fs.StringVar(&c.RedisURL, "redis", "", "connect-redis session store (empty: the session id is the user id)")
	fs.StringVar(&c.APIKey, "api-key", "bench-api-key-0123456789", "publish API key (Authorization: Bearer)")
	fs.DurationVar(&c.PingInterval, "ping-interval", 25*time.Second, "Engine.IO pingInterval")
	fs.DurationVar(&c.PingTimeout, "ping-timeout", 20*time.Second, "Engine.IO pingTimeout")
	fs.IntVar(&c.MaxQueue, "max-queue", 4096, "frames queued for one connection before it is dropped")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return c, nil
}
