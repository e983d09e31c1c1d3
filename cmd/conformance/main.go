// Command conformance serves the official Engine.IO and Socket.IO protocol
// test suites at once: /engine.io/ echoes every message, /socket.io/ runs
// the suite's namespaces and events.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/tradewire/tradewire/engineio"
	"github.com/tradewire/tradewire/socketio"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(1)
	}
}

// run serves until the listener fails.
func run(args []string) error {
	fs := flag.NewFlagSet("conformance", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:3000", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return http.ListenAndServe(*addr, NewHandler(log))
}

func engineOptions(log *slog.Logger) engineio.Options {
	return engineio.Options{
		PingInterval: 300 * time.Millisecond,
		PingTimeout:  200 * time.Millisecond,
		MaxPayload:   1_000_000,
		Origins:      engineio.OriginPolicy{Allowed: []string{"*"}},
		Logger:       log,
	}
}

// NewHandler returns the mux serving both suites.
func NewHandler(log *slog.Logger) http.Handler {
	eio := engineio.NewServer(engineOptions(log))
	eio.OnConnection = func(s *engineio.Session) {
		s.OnMessage(func(data []byte, binary bool) {
			_ = s.Send(engineio.NewMessage(data, binary))
		})
	}

	sio := socketio.NewServer(socketio.Options{
		Engine:         engineOptions(log),
		ConnectTimeout: time.Second,
		Logger:         log,
	})
	onConnection := func(s *socketio.Socket) {
		auth := s.AuthRaw()
		if len(auth) == 0 {
			auth = []byte("{}")
		}
		_ = s.EmitRaw("auth", []json.RawMessage{auth}, nil)
	}
	sio.Of("/").OnConnection(func(s *socketio.Socket) {
		onConnection(s)
		s.On("message", func(s *socketio.Socket, e *socketio.Event) {
			args, att := e.RawArgs()
			_ = s.EmitRaw("message-back", args, att)
		})
		s.On("message-with-ack", func(s *socketio.Socket, e *socketio.Event) {
			if e.HasAck() {
				_ = e.AckRaw(e.RawArgs())
			}
		})
	})
	sio.Of("/custom").OnConnection(onConnection)

	mux := http.NewServeMux()
	mux.Handle("/engine.io/", eio)
	mux.Handle("/socket.io/", sio)
	return mux
}
