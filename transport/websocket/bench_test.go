package websocket

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"
)

// collectingHandler keeps every upgraded connection.
type collectingHandler struct {
	mu    sync.Mutex
	conns []*Conn
}

func (h *collectingHandler) OnMessage(*Conn, bool, []byte) {}
func (h *collectingHandler) OnClose(*Conn, error)          {}

// BenchmarkBroadcast writes one pre-encoded frame to N connections per op,
// over real loopback sockets. Clients handshake with gorilla/websocket, then
// count the bytes of the (fixed-size) frames on the underlying connection,
// so the client side allocates nothing and allocs/recipient is the
// server's cost.
//
// burst: b.N broadcasts back to back, then wait until every client has read
// everything (frames queued for one connection coalesce into one writev).
// paced: every broadcast is read by every client before the next one (one
// frame per connection per flush, the least favourable case).
func BenchmarkBroadcast(b *testing.B) {
	for _, m := range modes {
		for _, paced := range []bool{false, true} {
			name := "burst"
			if paced {
				name = "paced"
			}
			b.Run(fmt.Sprintf("%s/%s/N=1000", m.name, name), func(b *testing.B) { benchBroadcast(b, m.mode, 1000, paced) })
		}
	}
}

func benchBroadcast(b *testing.B, mode Mode, n int, paced bool) {
	h := &collectingHandler{}
	ws := NewServer(Options{Mode: mode, MaxQueue: 64 << 20})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := ws.Upgrade(w, r, h)
		if err != nil {
			return
		}
		h.mu.Lock()
		h.conns = append(h.conns, c)
		h.mu.Unlock()
	}))
	defer srv.Close()

	frame := AppendFrame(nil, OpText, []byte(`42["quote",{"symbol":"AAPL","bid":189.12,"ask":189.14,"ts":1700000000000}]`))
	var received atomic.Int64
	var wg sync.WaitGroup
	clients := make([]*gws.Conn, 0, n)
	d := gws.Dialer{HandshakeTimeout: 10 * time.Second}
	for i := 0; i < n; i++ {
		c, resp, err := d.Dial("ws://"+srv.Listener.Addr().String()+"/ws", nil)
		if err != nil {
			b.Fatalf("dial %d: %v", i, err)
		}
		resp.Body.Close()
		clients = append(clients, c)
		wg.Add(1)
		go func(nc io.Reader) {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			for {
				k, err := nc.Read(buf)
				received.Add(int64(k))
				if err != nil {
					return
				}
			}
		}(c.UnderlyingConn())
	}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
		wg.Wait()
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		h.mu.Lock()
		k := len(h.conns)
		h.mu.Unlock()
		if k == n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d connections upgraded", k, n)
		}
		time.Sleep(time.Millisecond)
	}
	conns := h.conns

	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	b.ResetTimer()
	perOp := int64(n) * int64(len(frame))
	for i := 0; i < b.N; i++ {
		for _, c := range conns {
			if err := c.WriteFrames(frame); err != nil {
				b.Fatal(err)
			}
		}
		if paced {
			for received.Load() < int64(i+1)*perOp {
				runtime.Gosched()
			}
		}
	}
	want := int64(b.N) * perOp
	for received.Load() < want {
		if time.Now().After(deadline.Add(time.Minute)) {
			b.Fatalf("received %d of %d bytes", received.Load(), want)
		}
		runtime.Gosched()
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	recipients := float64(b.N) * float64(n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/recipients, "ns/recipient")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/recipients, "allocs/recipient")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/recipients, "B/recipient")
}
