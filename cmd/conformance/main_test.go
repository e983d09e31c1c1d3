package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tradewire/tradewire/internal/testutil/sioclient"
)

func server(t *testing.T) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(NewHandler(slog.New(slog.NewTextHandler(io.Discard, nil))))
	t.Cleanup(s.Close)
	return s
}

func TestEngineIOEchoesTextAndBinary(t *testing.T) {
	s := server(t)
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/engine.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, open, _ := ws.ReadMessage()
	if !strings.Contains(string(open), `"pingInterval":300,"pingTimeout":200,"maxPayload":1000000`) {
		t.Fatalf("open packet %s", open)
	}
	_ = ws.WriteMessage(websocket.TextMessage, []byte("4hello"))
	_ = ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
	for _, want := range []string{"4hello", "\x01\x02\x03"} {
		for {
			_, m, err := ws.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			if string(m) == "2" {
				_ = ws.WriteMessage(websocket.TextMessage, []byte("3"))
				continue
			}
			if string(m) != want {
				t.Fatalf("echo %q, want %q", m, want)
			}
			break
		}
	}
}

func TestSocketIOSuiteBehaviour(t *testing.T) {
	s := server(t)
	c, err := sioclient.Dial(s.URL, sioclient.Options{Auth: map[string]any{"token": "123"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ev, err := c.WaitEvent("auth", 2*time.Second)
	if err != nil || string(ev.Args[0]) != `{"token":"123"}` {
		t.Fatalf("auth event %v %v", ev, err)
	}
	_ = c.Emit("message", 1, "2", map[string]any{"3": []bool{true}})
	ev, err = c.WaitEvent("message-back", 2*time.Second)
	if err != nil || len(ev.Args) != 3 || string(ev.Args[2]) != `{"3":[true]}` {
		t.Fatalf("message-back %v %v", ev, err)
	}
	ack, err := c.EmitWithAck(2*time.Second, "message-with-ack", 1, "x")
	if err != nil || len(ack) != 2 || string(ack[1]) != `"x"` {
		t.Fatalf("ack %v %v", ack, err)
	}
	// Unknown namespace.
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/socket.io/?EIO=4&transport=websocket", http.Header{})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_, _, _ = ws.ReadMessage()
	_ = ws.WriteMessage(websocket.TextMessage, []byte("40/random,"))
	_ = ws.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, m, err := ws.ReadMessage()
	if err != nil || string(m) != `44/random,{"message":"Invalid namespace"}` {
		t.Fatalf("invalid namespace reply %q %v", m, err)
	}
}

func TestRunReportsListenAndFlagErrors(t *testing.T) {
	if err := run([]string{"-addr", "256.0.0.1:bad"}); err == nil {
		t.Fatal("bad address accepted")
	}
	if err := run([]string{"-nope"}); err == nil {
		t.Fatal("unknown flag accepted")
	}
}
