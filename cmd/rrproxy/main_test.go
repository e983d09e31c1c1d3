package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

func backend(t *testing.T, name string) *httptest.Server {
	up := websocket.Upgrader{}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if websocket.IsWebSocketUpgrade(r) {
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			for {
				_, msg, err := c.ReadMessage()
				if err != nil {
					return
				}
				_ = c.WriteMessage(websocket.TextMessage, append([]byte(name+":"), msg...))
			}
		}
		io.WriteString(w, name+" "+r.Header.Get("X-Forwarded-For"))
	}))
	t.Cleanup(s.Close)
	return s
}

func TestRoundRobinAndWebsocket(t *testing.T) {
	a, b := backend(t, "a"), backend(t, "b")
	ua, _ := url.Parse(a.URL)
	ub, _ := url.Parse(b.URL)
	p := New([]*url.URL{ua, ub}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	front := httptest.NewServer(p)
	defer front.Close()

	var got []string
	for i := 0; i < 4; i++ {
		resp, err := http.Get(front.URL + "/x")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got = append(got, strings.Fields(string(body))[0])
		if !strings.Contains(string(body), "127.0.0.1") {
			t.Fatalf("X-Forwarded-For missing: %q", body)
		}
	}
	if strings.Join(got, "") != "abab" {
		t.Fatalf("not round robin: %v", got)
	}
	if p.Hits[0].Load() != 2 || p.Hits[1].Load() != 2 {
		t.Fatalf("hits %d %d", p.Hits[0].Load(), p.Hits[1].Load())
	}
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(front.URL, "http", "ws", 1)+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for i := 0; i < 3; i++ { // one backend for the whole tunnel
		_ = ws.WriteMessage(websocket.TextMessage, []byte("hi"))
		_, msg, err := ws.ReadMessage()
		if err != nil || string(msg) != "a:hi" {
			t.Fatalf("tunnel: %q %v", msg, err)
		}
	}
}

func TestBackendDown(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead, _ := url.Parse("http://" + l.Addr().String())
	l.Close()
	var logs bytes.Buffer
	front := httptest.NewServer(New([]*url.URL{dead}, slog.New(slog.NewTextHandler(&logs, nil))))
	defer front.Close()
	resp, err := http.Get(front.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(logs.String(), "backend error") {
		t.Fatalf("status %d, logs %q", resp.StatusCode, logs.String())
	}
}

func TestParseBackends(t *testing.T) {
	for _, bad := range []string{"", " , ", "ftp://x", "http://", "::"} {
		if _, err := parseBackends(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	us, err := parseBackends("http://a:1, https://b:2,")
	if err != nil || len(us) != 2 || us[1].Host != "b:2" {
		t.Fatalf("%v %v", us, err)
	}
}

func TestRun(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-backends", "ftp://x"}, &out, &errb); code != 2 {
		t.Fatalf("bad backends: exit %d", code)
	}
	if code := run(context.Background(), []string{"-nope"}, &out, &errb); code != 2 {
		t.Fatalf("bad flag: exit %d", code)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	if code := run(context.Background(), []string{"-listen", l.Addr().String(), "-backends", "http://127.0.0.1:1"}, &out, &errb); code != 1 {
		t.Fatalf("busy port: exit %d", code)
	}
	b := backend(t, "a")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	pr, pw := io.Pipe()
	go func() { done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-backends", b.URL}, pw, io.Discard) }()
	line := make([]byte, 200)
	n, _ := pr.Read(line)
	if !strings.Contains(string(line[:n]), "listening") {
		t.Fatalf("first line %q", line[:n])
	}
	go io.Copy(io.Discard, pr)
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d", code)
	}
}
