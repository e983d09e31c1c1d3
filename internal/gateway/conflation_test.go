package gateway

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// A client that stops reading while quotes flood keeps a bounded queue (one
// quote per symbol) and, when it resumes, gets the latest quote of each.
func TestLaggingClientGetsLatestQuotes(t *testing.T) {
	g := startGateway(t, "-demo-feed=false", "-send-queue-limit", "256KiB")
	login := devLogin(t, g.URL, "u1", "user")

	dialer := websocket.Dialer{
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
				return c.Control(func(fd uintptr) {
					_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
				})
			}}
			return d.DialContext(ctx, network, addr)
		},
	}
	h := http.Header{}
	h.Set("Cookie", login.Cookie)
	ws, _, err := dialer.Dial(strings.Replace(g.URL, "http", "ws", 1)+"/socket.io/?EIO=4&transport=websocket", h)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	read := func() string {
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, m, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return string(m)
	}
	read() // open
	_ = ws.WriteMessage(websocket.TextMessage, []byte("40"))
	read() // connect
	_ = ws.WriteMessage(websocket.TextMessage, []byte(`421["subscribe:watchlist",{"symbols":["AAPL","MSFT","TSLA"]}]`))
	for !strings.HasPrefix(read(), "431") {
	}

	// Stop reading; flood 3 symbols × 3000 quotes (~1.5 MB, six times the send queue limit).
	symbols := []string{"AAPL", "MSFT", "TSLA"}
	const n = 3000
	for i := 1; i <= n; i++ {
		for _, sym := range symbols {
			if err := g.Emitter().Quote(context.Background(), sym, map[string]any{"price": i, "pad": strings.Repeat("x", 100)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(300 * time.Millisecond)
	sessions := g.SocketIO().Engine().Sessions()
	if len(sessions) != 1 {
		t.Fatalf("%d sessions: the lagging client was disconnected", len(sessions))
	}
	if b := sessions[0].Buffered(); b > 64<<10 {
		t.Fatalf("queued %d bytes for a lagging client; conflation should keep it to a few quotes", b)
	}
	// What tradewire_conflated_total and tradewire_send_queue_bytes report.
	if c := g.SocketIO().Engine().Conflated(); c == 0 {
		t.Fatalf("no quote conflated of %d sent to a stalled client", 3*n)
	}
	if q, b := g.SocketIO().Engine().QueuedBytes(), sessions[0].Buffered(); q != int64(b) {
		t.Fatalf("QueuedBytes %d, the one session holds %d", q, b)
	}

	// Resume: read until the last quote of every symbol has arrived.
	last := map[string]float64{}
	deadline := time.Now().Add(10 * time.Second)
	received := 0
	for (last["AAPL"] != n || last["MSFT"] != n || last["TSLA"] != n) && time.Now().Before(deadline) {
		m := read()
		if m == "2" {
			_ = ws.WriteMessage(websocket.TextMessage, []byte("3"))
			continue
		}
		if !strings.HasPrefix(m, `42["quote:update"`) {
			continue
		}
		received++
		var arr []json.RawMessage
		_ = json.Unmarshal([]byte(m[2:]), &arr)
		var q struct {
			Symbol string  `json:"symbol"`
			Price  float64 `json:"price"`
		}
		_ = json.Unmarshal(arr[1], &q)
		if q.Price < last[q.Symbol] {
			t.Fatalf("%s went back from %v to %v", q.Symbol, last[q.Symbol], q.Price)
		}
		last[q.Symbol] = q.Price
	}
	if last["AAPL"] != n || last["MSFT"] != n || last["TSLA"] != n {
		t.Fatalf("latest quotes not delivered: %v", last)
	}
	if received >= 3*n {
		t.Fatalf("received all %d quotes: nothing was conflated", received)
	}
	t.Logf("received %d of %d quotes after lagging; the latest of each symbol arrived", received, 3*n)
}
