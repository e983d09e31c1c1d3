// Command server is the Go node of the mixed-cluster end-to-end test
// (tests/cluster/e2e_test.go): a tradewire Socket.IO server (socketio +
// redisadapter) that shares one Redis, or one Redis Cluster in sharded mode,
// with a Node socket.io 4.8 server running @socket.io/redis-adapter.
//
// It listens on -addr and, once its adapter is subscribed, prints the
// address it got as the first line of stdout, so a test can ask for port 0.
//
// Every socket of "/" gets data {server: -name, name: auth.name}. Events
// (the Node node in e2e.js handles the same ones; "ack" means the client
// passes a callback):
//
//	join room, ack                        s.Join(room); acks the socket's sorted rooms
//	broadcast spec..., ack                for each spec {nsp, rooms, except, event, args} in order:
//	                                      Of(nsp).To(rooms...).Except(except...).Emit(event, args...)
//	                                      (binary as []byte);
//	                                      acks true, or {error}
//	socketsJoin {in, rooms}, ack          nsp.In(in...).SocketsJoin(rooms...); acks true
//	fetchSockets {in}, ack                nsp.In(in...).FetchSockets: acks [{id, rooms, data}] or {error}
//	serverSideEmit args..., ack           nsp.ServerSideEmit(args) with replies: acks {replies} or {replies, error}
//	ask {rooms, timeoutMs, question}, ack nsp.To(rooms...).Timeout(..).EmitWithAck("question", question):
//	                                      acks {answers: [first ack argument of each client]} or {answers, error}
//
// The namespaces "/" and "/chat" both have these events; a broadcast spec
// may name either with "nsp" (default: the sender's).
//
// Server-side emits from other nodes: ["who", ...args] is answered with
// {server: -name, args}; ["relay", ...args] is sent to this node's local
// sockets as the event "relayed" {server: -name, args}.
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
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/adapter/redisadapter"
	"github.com/tradewire/tradewire/engineio"
	"github.com/tradewire/tradewire/socketio"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	name := flag.String("name", "go", "this node's name, reported in socket data and server-side emit replies")
	redisURL := flag.String("redis", "", "Redis URL (classic adapter)")
	clusterAddrs := flag.String("cluster", "", "comma-separated Redis Cluster masters (sharded adapter)")
	verbose := flag.Bool("v", false, "debug logging")
	flag.Parse()

	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("node", *name)

	var rdb redis.UniversalClient
	sharded := false
	switch {
	case *clusterAddrs != "":
		rdb = redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(*clusterAddrs, ","), DialTimeout: 2 * time.Second})
		sharded = true
	case *redisURL != "":
		opts, err := redis.ParseURL(*redisURL)
		if err != nil {
			log.Error("redis url", "err", err)
			os.Exit(2)
		}
		rdb = redis.NewClient(opts)
	default:
		log.Error("one of -redis or -cluster is required")
		os.Exit(2)
	}
	defer func() { _ = rdb.Close() }()

	node := redisadapter.NewNode(rdb, redisadapter.Options{
		KeyPrefix:       "socket.io",
		Sharded:         sharded,
		RequestsTimeout: 5 * time.Second,
		Logger:          log,
	})
	srv := socketio.NewServer(socketio.Options{
		Engine: engineio.Options{
			Origins: engineio.OriginPolicy{Allowed: []string{"*"}},
			Logger:  log,
		},
		Adapter: node.Factory(),
		Logger:  log,
	})
	// Creating the namespaces creates their adapters, hence the subscriptions.
	nsps := map[string]*socketio.Namespace{"/": srv.Of("/"), "/chat": srv.Of("/chat")}
	for _, nsp := range nsps {
		register(nsp, nsps, *name)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	readyCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	err := node.WaitReady(readyCtx)
	cancel()
	if err != nil {
		log.Error("redis adapter not ready", "err", err)
		os.Exit(1)
	}

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
		_ = node.Close()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = hs.Shutdown(shutdownCtx)
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("serve", "err", err)
		os.Exit(1)
	}
}

// broadcastSpec is one broadcast asked for by a client.
type broadcastSpec struct {
	Nsp    *socketio.Namespace
	Rooms  []string
	Except []string
	Event  string
	Args   []any
}

// register sets up nsp; nsps are the namespaces a broadcast may name.
func register(nsp *socketio.Namespace, nsps map[string]*socketio.Namespace, name string) {
	nsp.OnServerSideEmit(func(args []any, reply func(any)) {
		if len(args) == 0 {
			return
		}
		ev, _ := args[0].(string)
		payload := map[string]any{"server": name, "args": nonNil(args[1:])}
		switch ev {
		case "who":
			if reply != nil {
				reply(payload)
			}
		case "relay":
			_ = nsp.Local().Emit("relayed", payload)
		}
	})

	nsp.OnConnection(func(s *socketio.Socket) {
		client, _ := s.Auth()["name"].(string)
		s.SetData(map[string]any{"server": name, "name": client})

		s.On("join", func(s *socketio.Socket, e *socketio.Event) {
			var room string
			if err := e.Decode(0, &room); err != nil || room == "" {
				_ = e.Ack(map[string]any{"error": "join: a room name is required"})
				return
			}
			s.Join(room)
			rooms := s.Rooms()
			slices.Sort(rooms)
			_ = e.Ack(rooms)
		})
		s.On("broadcast", func(s *socketio.Socket, e *socketio.Event) {
			vals, err := e.Values()
			if err != nil {
				_ = e.Ack(map[string]any{"error": err.Error()})
				return
			}
			// Decode every spec first: binary arguments are []byte in vals.
			specs := make([]broadcastSpec, 0, len(vals))
			for _, v := range vals {
				m, ok := v.(map[string]any)
				if !ok {
					_ = e.Ack(map[string]any{"error": fmt.Sprintf("broadcast: spec %T is not an object", v)})
					return
				}
				sp := broadcastSpec{Nsp: nsp}
				if n, ok := m["nsp"].(string); ok {
					if sp.Nsp = nsps[n]; sp.Nsp == nil {
						_ = e.Ack(map[string]any{"error": "broadcast: unknown namespace " + n})
						return
					}
				}
				sp.Event, _ = m["event"].(string)
				sp.Rooms = stringList(m["rooms"])
				sp.Except = stringList(m["except"])
				sp.Args = asSlice(m["args"])
				specs = append(specs, sp)
			}
			for _, sp := range specs {
				if err := sp.Nsp.To(sp.Rooms...).Except(sp.Except...).Emit(sp.Event, sp.Args...); err != nil {
					_ = e.Ack(map[string]any{"error": err.Error()})
					return
				}
			}
			_ = e.Ack(true)
		})
		s.On("socketsJoin", func(s *socketio.Socket, e *socketio.Event) {
			var req struct{ In, Rooms []string }
			if err := e.Decode(0, &req); err != nil {
				_ = e.Ack(map[string]any{"error": err.Error()})
				return
			}
			nsp.In(req.In...).SocketsJoin(req.Rooms...)
			_ = e.Ack(true)
		})
		s.On("fetchSockets", func(s *socketio.Socket, e *socketio.Event) {
			var req struct{ In []string }
			_ = e.Decode(0, &req)
			// Cluster requests wait for other nodes: never inside the
			// connection's read loop.
			go func() {
				infos, err := nsp.In(req.In...).FetchSockets(s.Context())
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
			}()
		})
		s.On("ask", func(s *socketio.Socket, e *socketio.Event) {
			var req struct {
				Rooms     []string
				TimeoutMs int
				Question  any
			}
			if err := e.Decode(0, &req); err != nil {
				_ = e.Ack(map[string]any{"error": err.Error()})
				return
			}
			// The acks of this node's clients are read by their connections'
			// loops (this one's too): never wait inside a handler.
			go func() {
				answers, err := nsp.To(req.Rooms...).Timeout(time.Duration(req.TimeoutMs)*time.Millisecond).
					EmitWithAck(s.Context(), "question", req.Question)
				out := make([]any, 0, len(answers))
				for _, a := range answers { // the first ack argument, as Node reports it
					var first any
					if len(a) > 0 {
						first = a[0]
					}
					out = append(out, first)
				}
				res := map[string]any{"answers": out}
				if err != nil {
					res["error"] = err.Error()
				}
				_ = e.Ack(res)
			}()
		})
		s.On("serverSideEmit", func(s *socketio.Socket, e *socketio.Event) {
			args, err := e.Values()
			if err != nil || len(args) == 0 {
				_ = e.Ack(map[string]any{"error": "serverSideEmit: an event name is required"})
				return
			}
			go func() {
				var mu sync.Mutex
				replies := []any{}
				err := nsp.ServerSideEmit(s.Context(), args, func(a any) {
					mu.Lock()
					replies = append(replies, a)
					mu.Unlock()
				})
				mu.Lock()
				res := map[string]any{"replies": replies}
				mu.Unlock()
				if err != nil {
					res["error"] = err.Error()
				}
				_ = e.Ack(res)
			}()
		})
	})
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// stringList returns the strings of a JSON array.
func stringList(v any) []string {
	var out []string
	for _, e := range asSlice(v) {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func nonNil(s []any) []any {
	if s == nil {
		return []any{}
	}
	return s
}
