// Command ferretdb runs FerretDB v1.24.2 with the SQLite backend for tests.
//
// It embeds the public github.com/FerretDB/FerretDB/ferretdb package, which
// avoids the version.txt panic of `go install .../cmd/ferretdb`. It lives in its
// own Go module so that FerretDB's ~120 modules stay out of tradewire's
// dependency graph. internal/testutil/mongotest builds and starts it.
//
// Once listening it prints one line to stdout: the MongoDB URI
// (mongodb://host:port/). With -exit-on-stdin-eof it exits when stdin reaches
// EOF, so a test binary that dies never leaves it behind.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen-addr", "127.0.0.1:0", "TCP address to listen on (port 0: pick a free port)")
	dir := flag.String("sqlite-dir", "", "directory for the SQLite files (created if missing; required)")
	stdinEOF := flag.Bool("exit-on-stdin-eof", false, "exit when stdin is closed")
	level := flag.String("log-level", "error", "log level: debug, info, warn, error")
	removeDir := flag.Bool("remove-dir-on-exit", false, "delete -sqlite-dir when exiting")
	flag.Parse()

	err := run(*listen, *dir, *level, *stdinEOF)
	if *removeDir && *dir != "" {
		_ = os.RemoveAll(*dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
}

func run(listen, dir, level string, stdinEOF bool) error {
	if dir == "" {
		return fmt.Errorf("-sqlite-dir is required")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: listen},
		Handler:   "sqlite",
		SQLiteURL: "file:" + abs + "/", // must be an existing directory ending with "/"
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})),
	})
	if err != nil {
		return err
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if stdinEOF {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			cancel()
		}()
	}

	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	fmt.Println(f.MongoDBURI()) // blocks until listening
	return <-done
}
