// Command server is the fixture of the socket.io-client compatibility tests
// (tests/compat). It is also a compact tour of the socketio API: namespaces,
// middleware, events, acks both ways, binary, rooms, broadcast operators and
// connection state recovery.
//
// It listens on -addr and prints the address it got as the first line of
// stdout, so a test can ask for port 0.
//
// Namespaces:
//
//	/        the events below
//	/admin   the same events behind a middleware: auth.token must be "secret"
//	/tight   recovery buffer of 10 packets, so a long absence cannot be recovered
//	/brief   recovery window of 300ms, so a session expires quickly
//
// Events (every namespace; "ack" means the client passes a callback):
//
//	echo ...args, ack            acks the arguments unchanged; without ack, emits "echo" back
//	binary:echo ...args, ack     decodes (binary as []byte) and acks/emits the values back
//	binary:make {size}, ack      emits "binary:made" with server-made binary, top level and nested
//	room:join room, ack          joins room; acks the socket's rooms
//	room:leave room, ack         leaves room; acks the socket's rooms
//	room:broadcast {room, payload}, ack   s.To(room).Emit("room:message") (sender excluded)
//	room:announce {room, payload}, ack    nsp.To(room).Emit("room:message") (sender included)
//	room:members room, ack       nsp.To(room).FetchSockets: acks [{id, rooms, data}]
//	room:move {from, to}, ack    nsp.To(from).SocketsJoin(to)
//	room:kick {room, close}, ack nsp.To(room).DisconnectSockets(close)
//	room:ask {room, question, timeoutMs}, ack   nsp.To(room).EmitWithAck("question"): acks {answers, error}
//	ask {question, timeoutMs}, ack          s.EmitWithAck("question"): acks {answer, error}
//	stream {event, from, to, intervalMs, burst, target}, ack
//	                             emits event with n = from..to to target (a room or socket id,
//	                             default the sender) through the namespace, so the emits are
//	                             recorded for recovery even while the target is away; burst
//	                             events back to back, then a pause of intervalMs; acks {sent}
//	data:set value, ack          s.SetData(value) (kept across recovery)
//	whoami ack                   acks {id, nsp, recovered, transport, rooms, data, auth}
//	observe ack                  joins "observers" (namespace "/"), which gets
//	                             "observed:connect" {id, nsp, recovered} and
//	                             "observed:disconnect" {id, nsp, reason} for every socket
//	disconnect-me {close}        s.Disconnect(close)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/tradewire/tradewire/adapter"
	"github.com/tradewire/tradewire/engineio"
	"github.com/tradewire/tradewire/socketio"
)

// Recovery limits of the special namespaces.
const (
	tightBuffer = 10                     // packets kept by /tight
	briefWindow = 300 * time.Millisecond // recovery window of /brief
	maxStream   = 10_000                 // bound of one stream request
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	origins := flag.String("origins", "*", "comma-separated allowed Origins (\"*\": any)")
	pingInterval := flag.Duration("ping-interval", 300*time.Millisecond, "Engine.IO ping interval")
	// Short enough for a quick heartbeat test, long enough for a polling
	// client on a busy 2-core machine (its pong may wait behind a POST).
	pingTimeout := flag.Duration("ping-timeout", time.Second, "Engine.IO ping timeout")
	connectTimeout := flag.Duration("connect-timeout", time.Second, "close connections that join no namespace after this")
	recovery := flag.Duration("recovery", 2*time.Minute, "connection state recovery window (0: off)")
	verbose := flag.Bool("v", false, "debug logging (every disconnect with its reason)")
	flag.Parse()

	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	srv := socketio.NewServer(socketio.Options{
		Engine: engineio.Options{
			PingInterval: *pingInterval,
			PingTimeout:  *pingTimeout,
			MaxPayload:   1_000_000,
			Origins:      engineio.ParseOrigins(*origins),
			Logger:       log,
		},
		ConnectTimeout: *connectTimeout,
		Recovery:       socketio.RecoveryOptions{MaxDisconnection: *recovery, SkipMiddlewares: true},
		Adapter:        adapterFactory(*recovery),
		Logger:         log,
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	newFixture(ctx, srv, log).register()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Error("listen", "addr", *addr, "err", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())

	mux := http.NewServeMux()
	mux.Handle("/socket.io/", srv)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = hs.Shutdown(shutdownCtx)
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("serve", "err", err)
		os.Exit(1)
	}
}

// adapterFactory gives every namespace an in-memory adapter recording
// packets for recovery, with smaller limits for /tight and /brief.
func adapterFactory(window time.Duration) adapter.Factory {
	return func(nsp adapter.Namespace) adapter.Adapter {
		opts := adapter.Options{RecoveryWindow: window}
		switch nsp.Name() {
		case "/tight":
			opts.RecoveryMaxPackets = tightBuffer
		case "/brief":
			opts.RecoveryWindow = min(window, briefWindow)
		}
		return adapter.NewMemory(nsp, opts)
	}
}

type fixture struct {
	ctx context.Context // ends at shutdown; stops streams
	srv *socketio.Server
	log *slog.Logger
}

func newFixture(ctx context.Context, srv *socketio.Server, log *slog.Logger) *fixture {
	return &fixture{ctx: ctx, srv: srv, log: log}
}

func (f *fixture) register() {
	admin := f.srv.Of("/admin")
	admin.Use(requireToken)
	for _, nsp := range []*socketio.Namespace{f.srv.Of("/"), admin, f.srv.Of("/tight"), f.srv.Of("/brief")} {
		nsp.OnConnection(f.onConnection)
	}
}

// requireToken refuses sockets whose auth.token is not "secret"; the token
// "plain-error" gets a plain error (a connect_error without data).
func requireToken(_ context.Context, s *socketio.Socket) error {
	switch tok, _ := s.Auth()["token"].(string); tok {
	case "secret":
		s.SetData(map[string]any{"user": "admin"})
		return nil
	case "plain-error":
		return errors.New("plain error")
	default:
		return &socketio.ConnectError{Message: "not authorized", Data: map[string]any{"code": "UNAUTHORIZED"}}
	}
}

// observe reports a socket's life cycle to the "observers" room of "/".
func (f *fixture) observe(event string, payload map[string]any) {
	_ = f.srv.Of("/").To("observers").Emit(event, payload)
}

func (f *fixture) onConnection(s *socketio.Socket) {
	nsp := s.Namespace()
	f.observe("observed:connect", map[string]any{"id": s.ID(), "nsp": nsp.Name(), "recovered": s.Recovered()})
	s.OnDisconnect(func(reason string) {
		f.log.Debug("socket disconnected", "nsp", nsp.Name(), "transport", s.Transport(), "reason", reason)
		f.observe("observed:disconnect", map[string]any{"id": s.ID(), "nsp": nsp.Name(), "reason": reason})
	})

	s.On("echo", func(s *socketio.Socket, e *socketio.Event) {
		if e.HasAck() {
			_ = e.AckRaw(e.RawArgs())
			return
		}
		args, att := e.RawArgs()
		_ = s.EmitRaw("echo", args, att)
	})
	s.On("binary:echo", func(s *socketio.Socket, e *socketio.Event) {
		vals, err := e.Values()
		if err != nil {
			_ = e.Ack(map[string]any{"error": err.Error()})
			return
		}
		if e.HasAck() {
			_ = e.Ack(vals...)
			return
		}
		_ = s.Emit("binary:echo", vals...)
	})
	s.On("binary:make", func(s *socketio.Socket, e *socketio.Event) {
		var req struct{ Size int }
		_ = e.Decode(0, &req)
		req.Size = max(0, min(req.Size, 1<<20))
		top := make([]byte, req.Size)
		for i := range top {
			top[i] = byte(i)
		}
		_ = s.Emit("binary:made", top, map[string]any{
			"nested": map[string]any{"bytes": []byte{0xde, 0xad, 0xbe, 0xef}},
			"list":   []any{[]byte{1, 2, 3}, "text", []byte{}},
		})
		_ = e.Ack(true)
	})

	s.On("room:join", func(s *socketio.Socket, e *socketio.Event) {
		var room string
		if e.Decode(0, &room) == nil {
			s.Join(room)
		}
		_ = e.Ack(sortedRooms(s))
	})
	s.On("room:leave", func(s *socketio.Socket, e *socketio.Event) {
		var room string
		if e.Decode(0, &room) == nil {
			s.Leave(room)
		}
		_ = e.Ack(sortedRooms(s))
	})
	s.On("room:broadcast", func(s *socketio.Socket, e *socketio.Event) {
		var req struct{ Room string }
		_ = e.Decode(0, &req)
		vals, _ := e.Values()
		_ = s.To(req.Room).Emit("room:message", payloadOf(vals), s.ID())
		_ = e.Ack(true)
	})
	s.On("room:announce", func(s *socketio.Socket, e *socketio.Event) {
		var req struct{ Room string }
		_ = e.Decode(0, &req)
		vals, _ := e.Values()
		_ = nsp.To(req.Room).Emit("room:message", payloadOf(vals), s.ID())
		_ = e.Ack(true)
	})
	s.On("room:members", func(s *socketio.Socket, e *socketio.Event) {
		var room string
		_ = e.Decode(0, &room)
		infos, err := nsp.To(room).FetchSockets(s.Context())
		if err != nil {
			_ = e.Ack(map[string]any{"error": err.Error()})
			return
		}
		out := make([]any, 0, len(infos))
		for _, in := range infos {
			rooms := slices.Clone(in.Rooms)
			slices.Sort(rooms)
			out = append(out, map[string]any{"id": in.ID, "rooms": rooms, "data": in.Data})
		}
		_ = e.Ack(out)
	})
	s.On("room:move", func(s *socketio.Socket, e *socketio.Event) {
		var req struct{ From, To string }
		_ = e.Decode(0, &req)
		nsp.To(req.From).SocketsJoin(req.To)
		_ = e.Ack(true)
	})
	s.On("room:kick", func(s *socketio.Socket, e *socketio.Event) {
		var req struct {
			Room  string
			Close bool
		}
		_ = e.Decode(0, &req)
		_ = e.Ack(true) // before: the sender may be one of the kicked
		nsp.To(req.Room).DisconnectSockets(req.Close)
	})
	s.On("room:ask", func(s *socketio.Socket, e *socketio.Event) {
		var req struct {
			Room      string
			Question  any
			TimeoutMs int
		}
		_ = e.Decode(0, &req)
		// Acks of every client (this one's too) are read by their own
		// connection's loop: never wait for them inside a handler.
		go func() {
			answers, err := nsp.To(req.Room).Timeout(millis(req.TimeoutMs)).EmitWithAck(s.Context(), "question", req.Question)
			res := map[string]any{"answers": toAny(answers)}
			if err != nil {
				res["error"] = err.Error()
			}
			_ = e.Ack(res)
		}()
	})
	s.On("ask", func(s *socketio.Socket, e *socketio.Event) {
		var req struct {
			Question  any
			TimeoutMs int
		}
		_ = e.Decode(0, &req)
		err := s.EmitWithAck("question", []any{req.Question}, millis(req.TimeoutMs), func(args []any, err error) {
			if err != nil {
				_ = e.Ack(map[string]any{"error": err.Error()})
				return
			}
			_ = e.Ack(map[string]any{"answer": args})
		})
		if err != nil {
			_ = e.Ack(map[string]any{"error": err.Error()})
		}
	})
	s.On("stream", func(s *socketio.Socket, e *socketio.Event) {
		var req streamRequest
		_ = e.Decode(0, &req)
		if req.Event == "" {
			req.Event = "tick"
		}
		if req.Target == "" {
			req.Target = s.ID()
		}
		req.To = min(req.To, req.From+maxStream-1)
		req.Burst = max(1, req.Burst)
		go f.stream(nsp, req, e)
	})
	s.On("data:set", func(s *socketio.Socket, e *socketio.Event) {
		vals, _ := e.Values()
		if len(vals) > 0 {
			s.SetData(vals[0])
		}
		_ = e.Ack(true)
	})
	s.On("whoami", func(s *socketio.Socket, e *socketio.Event) {
		_ = e.Ack(map[string]any{
			"id": s.ID(), "nsp": nsp.Name(), "recovered": s.Recovered(), "transport": s.Transport(),
			"rooms": sortedRooms(s), "data": s.Data(), "auth": s.Auth(),
		})
	})
	s.On("observe", func(s *socketio.Socket, e *socketio.Event) {
		s.Join("observers")
		_ = e.Ack(true)
	})
	s.On("disconnect-me", func(s *socketio.Socket, e *socketio.Event) {
		var req struct{ Close bool }
		_ = e.Decode(0, &req)
		s.Disconnect(req.Close)
	})
}

type streamRequest struct {
	Event      string
	From, To   int
	IntervalMs int // pause after each burst
	Burst      int // events emitted back to back (default 1)
	Target     string
}

// stream emits req.Event(n) for n = From..To to req.Target through the
// namespace, Burst at a time, then acks {sent}. It stops early at shutdown.
func (f *fixture) stream(nsp *socketio.Namespace, req streamRequest, e *socketio.Event) {
	sent := 0
	for n := req.From; n <= req.To; n++ {
		if n > req.From && (n-req.From)%req.Burst == 0 && req.IntervalMs > 0 {
			select {
			case <-f.ctx.Done():
				return
			case <-time.After(millis(req.IntervalMs)):
			}
		}
		if err := nsp.To(req.Target).Emit(req.Event, n); err != nil {
			_ = e.Ack(map[string]any{"sent": sent, "error": err.Error()})
			return
		}
		sent++
	}
	_ = e.Ack(map[string]any{"sent": sent})
}

// payloadOf returns the "payload" field of a request object.
func payloadOf(vals []any) any {
	if len(vals) == 0 {
		return nil
	}
	m, _ := vals[0].(map[string]any)
	return m["payload"]
}

func sortedRooms(s *socketio.Socket) []string {
	rooms := s.Rooms()
	slices.Sort(rooms)
	return rooms
}

func toAny(acks [][]any) []any {
	out := make([]any, len(acks))
	for i, a := range acks {
		out[i] = a
	}
	return out
}

func millis(ms int) time.Duration { return time.Duration(ms) * time.Millisecond }
