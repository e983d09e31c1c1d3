package socketio

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tradewire/tradewire/engineio"
	"github.com/tradewire/tradewire/parser"
	"github.com/tradewire/tradewire/transport/websocket"
)

// The broadcast benchmark's clients live in a child process (this test
// binary, re-executed with fleetEnv set): 10,000 client sockets and 10,000
// server sockets do not fit one process's descriptor limit, and the
// server's allocation counts stay free of client work.
const fleetEnv = "TRADEWIRE_BENCH_FLEET"

func TestMain(m *testing.M) {
	if os.Getenv(fleetEnv) != "" {
		runFleet()
		return
	}
	code := m.Run()
	for _, f := range fleets {
		f.stop()
	}
	os.Exit(code)
}

// runFleet connects N Socket.IO clients over websocket to
// ws://ADDR/socket.io/ (namespace /), prints "ready", then counts the bytes
// they receive. Each stdin line "wait B" is answered "ok" once B bytes have
// arrived in total. It exits when stdin closes.
func runFleet() {
	addr := os.Getenv(fleetEnv)
	n, _ := strconv.Atoi(os.Getenv(fleetEnv + "_N"))
	var total atomic.Int64
	var conns []net.Conn
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	work := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				nc, br, err := fleetConnect(addr)
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					continue
				}
				mu.Lock()
				conns = append(conns, nc)
				mu.Unlock()
				go func() {
					buf := make([]byte, 16<<10)
					for {
						k, err := br.Read(buf)
						total.Add(int64(k))
						if err != nil {
							return
						}
					}
				}()
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		fmt.Println("error", err)
		os.Exit(1)
	default:
	}
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		want, _ := strconv.ParseInt(strings.TrimPrefix(sc.Text(), "wait "), 10, 64)
		for total.Load() < want {
			time.Sleep(50 * time.Microsecond)
		}
		fmt.Println("ok")
	}
	for _, c := range conns {
		c.Close()
	}
}

// fleetConnect opens a websocket, reads the open packet, joins "/" and reads
// the CONNECT reply.
func fleetConnect(addr string) (net.Conn, *bufio.Reader, error) {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, nil, err
	}
	req := "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: " + addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	// "40" as a masked text frame (mask 0).
	req += "\x81\x82\x00\x00\x00\x0040"
	if _, err := nc.Write([]byte(req)); err != nil {
		nc.Close()
		return nil, nil, err
	}
	br := bufio.NewReaderSize(nc, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		nc.Close()
		return nil, nil, fmt.Errorf("upgrade: %v", err)
	}
	for i := 0; i < 2; i++ { // open packet, CONNECT reply
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			nc.Close()
			return nil, nil, err
		}
		if _, err := br.Discard(int(h[1] & 0x7f)); err != nil {
			nc.Close()
			return nil, nil, err
		}
	}
	return nc, br, nil
}

// fleet is a server with n connected sockets in room "room", and the child
// process holding the clients.
type fleet struct {
	srv      *Server
	hs       *httptest.Server
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	stdout   *bufio.Scanner
	n        int
	expected int64 // bytes the clients must have received so far
}

var fleets = map[string]*fleet{}

func getFleet(b *testing.B, n int, mode websocket.Mode) *fleet {
	key := fmt.Sprint(n, mode)
	if f := fleets[key]; f != nil {
		return f
	}
	// One fleet at a time: server and client sockets of several would not
	// fit the descriptor limit.
	for k, f := range fleets {
		f.stop()
		delete(fleets, k)
	}
	srv := NewServer(Options{
		Engine: engineio.Options{
			PingInterval: time.Hour, PingTimeout: time.Hour,
			WebSocket: websocket.Options{Mode: mode},
			Logger:    quietLogger(),
		},
		ConnectTimeout: time.Hour,
		Logger:         quietLogger(),
	})
	srv.Of("/").OnConnection(func(s *Socket) { s.Join("room") })
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", srv)
	hs := httptest.NewUnstartedServer(mux)
	hs.Start()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fleetEnv+"="+hs.Listener.Addr().String(), fleetEnv+"_N="+strconv.Itoa(n))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	f := &fleet{srv: srv, hs: hs, cmd: cmd, stdin: stdin, stdout: bufio.NewScanner(stdout), n: n}
	fleets[key] = f
	if !f.stdout.Scan() || f.stdout.Text() != "ready" {
		b.Fatalf("client fleet: %q", f.stdout.Text())
	}
	deadline := time.Now().Add(time.Minute)
	for srv.Of("/").Count() != n {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d sockets connected", srv.Of("/").Count(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return f
}

// waitDelivered blocks until the clients have read every byte sent so far.
func (f *fleet) waitDelivered(b *testing.B, add int64) {
	f.expected += add
	fmt.Fprintf(f.stdin, "wait %d\n", f.expected)
	if !f.stdout.Scan() || f.stdout.Text() != "ok" {
		b.Fatalf("client fleet: %q", f.stdout.Text())
	}
}

func (f *fleet) stop() {
	f.stdin.Close()
	_ = f.cmd.Wait()
	_ = f.srv.Close()
	f.hs.CloseClientConnections()
	f.hs.Close()
}

// BenchmarkBroadcast measures Namespace.To("room").Emit to every socket of a
// room, end to end: encode once, fan out, write through the websocket layer
// over real loopback connections, until every client has read every frame.
// ns/recipient and allocs/recipient are per delivered message;
// enqueue-ns/recipient is the time spent inside Emit alone.
//
// burst: b.N broadcasts back to back, then wait for delivery (frames queued
// for one connection coalesce into one writev). paced: each broadcast is
// read by every client before the next (includes one round trip to the
// client process per op, about 0.1 ms).
func BenchmarkBroadcast(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, m := range []struct {
			name string
			mode websocket.Mode
		}{{"epoll", websocket.ModeEpoll}, {"goroutine", websocket.ModeGoroutine}} {
			for _, paced := range []bool{false, true} {
				name := "burst"
				if paced {
					name = "paced"
				}
				b.Run(fmt.Sprintf("%s/%s/sockets=%d", m.name, name, n), func(b *testing.B) { benchBroadcast(b, n, m.mode, paced) })
			}
		}
	}
}

func benchBroadcast(b *testing.B, n int, mode websocket.Mode, paced bool) {
	f := getFleet(b, n, mode)
	nsp := f.srv.Of("/")
	quote := map[string]any{"symbol": "AAPL", "bid": 189.12, "ask": 189.14, "ts": int64(1700000000000)}
	pkt, err := buildEvent("/", "quote", []any{quote})
	if err != nil {
		b.Fatal(err)
	}
	frameLen := int64(len(encodeForEngine(pkt)[0].WebSocketFrame()))
	op := nsp.To("room")

	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	b.ReportAllocs()
	b.ResetTimer()
	var enqueue time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := op.Emit("quote", quote); err != nil {
			b.Fatal(err)
		}
		enqueue += time.Since(start)
		if paced {
			f.waitDelivered(b, int64(n)*frameLen)
		}
	}
	if !paced {
		f.waitDelivered(b, int64(b.N)*int64(n)*frameLen)
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	recipients := float64(b.N) * float64(n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/recipients, "ns/recipient")
	b.ReportMetric(float64(enqueue.Nanoseconds())/recipients, "enqueue-ns/recipient")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/recipients, "allocs/recipient")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/recipients, "B/recipient")
	if nsp.Count() != n {
		b.Fatalf("%d sockets left (slow consumers dropped?)", nsp.Count())
	}
}

var _ = parser.Event
