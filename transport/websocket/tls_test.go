package websocket

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"
)

// tlsEcho echoes every message, as many times as asked by a numeric prefix.
type tlsEcho struct {
	closed chan error
}

func (e *tlsEcho) OnMessage(c *Conn, binary bool, data []byte) {
	n := 1
	fmt.Sscanf(string(data), "%d", &n)
	for i := 0; i < n; i++ {
		_ = c.WriteMessage(binary, data)
	}
}

func (e *tlsEcho) OnClose(c *Conn, err error) { e.closed <- err }

// A TLS connection has no file descriptor to poll: it is read by its own
// goroutine and written by a goroutine per flush, in either mode, and keeps
// order under load.
func TestTLSConnections(t *testing.T) {
	for _, mode := range []Mode{ModeEpoll, ModeGoroutine} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			srv := NewServer(Options{Mode: mode})
			h := &tlsEcho{closed: make(chan error, 1)}
			hs := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if _, err := srv.Upgrade(w, r, h); err != nil {
					t.Errorf("upgrade: %v", err)
				}
			}))
			defer hs.Close()
			d := gws.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, HandshakeTimeout: 5 * time.Second}
			ws, _, err := d.Dial(strings.Replace(hs.URL, "https", "wss", 1), nil)
			if err != nil {
				t.Fatal(err)
			}
			// 500 copies of a 1 KB message: several flushes, each written by a
			// stream writer, must arrive whole and in order.
			msg := "500 " + strings.Repeat("x", 1020)
			if err := ws.WriteMessage(gws.TextMessage, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			for i := 0; i < 500; i++ {
				_, got, err := ws.ReadMessage()
				if err != nil || string(got) != msg {
					t.Fatalf("message %d: %v (%d bytes)", i, err, len(got))
				}
			}
			if err := ws.WriteMessage(gws.BinaryMessage, []byte{1, 2, 3}); err != nil {
				t.Fatal(err)
			}
			if typ, got, err := ws.ReadMessage(); err != nil || typ != gws.BinaryMessage || string(got) != "\x01\x02\x03" {
				t.Fatalf("binary echo: %v %v %v", typ, got, err)
			}
			ws.Close()
			select {
			case <-h.closed:
			case <-time.After(5 * time.Second):
				t.Fatal("server never saw the close")
			}
			srv.Close()
		})
	}
}
