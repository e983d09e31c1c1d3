package loadgen

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// The reader fed with the RFC 6455 §5.7 frames over a real connection:
// fragments are joined, pings answered with a masked pong, close reported.
func TestWSConnReadsRFCFrames(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	c := &WSConn{conn: client, buf: make([]byte, 8), maxPayload: 1 << 20, rng: 1}
	stream := bytes.Join([][]byte{
		mustHex(t, "010348656c"),     // fragmented "Hel"
		mustHex(t, "890548656c6c6f"), // ping "Hello" in the middle of the fragments
		mustHex(t, "80026c6f"),       // "lo"
		mustHex(t, "810548656c6c6f"), // "Hello" in one frame
		AppendFrame(nil, OpBinary, true, false, [4]byte{}, bytes.Repeat([]byte{9}, 70000)),
		mustHex(t, "8a00"), // unsolicited pong: ignored
		mustHex(t, "8800"), // close
	}, nil)
	go func() {
		// answer what the client writes: a pong, then its close reply
		buf := make([]byte, 64)
		var got []byte
		go func() { _, _ = server.Write(stream) }()
		for len(got) < 6+5+6 {
			n, err := server.Read(buf)
			if err != nil {
				return
			}
			got = append(got, buf[:n]...)
		}
		f, n, err := ParseFrame(got, 1000)
		if err != nil || f.Op != OpPong || !f.Masked || string(f.Payload) != "Hello" {
			t.Errorf("pong %+v %v", f, err)
		}
		if f, _, _ := ParseFrame(got[n:], 1000); f.Op != OpClose || !f.Masked {
			t.Errorf("close reply %+v", f)
		}
	}()
	for _, want := range []string{"Hello", "Hello"} {
		op, p, err := c.ReadMessage()
		if err != nil || op != OpText || string(p) != want {
			t.Fatalf("%d %q %v", op, p, err)
		}
	}
	op, p, err := c.ReadMessage()
	if err != nil || op != OpBinary || len(p) != 70000 || len(c.buf) < 70000 {
		t.Fatalf("big: %d %d %v", op, len(p), err)
	}
	if _, _, err := c.ReadMessage(); !errors.Is(err, ErrClosedByPeer) {
		t.Fatalf("want close, got %v", err)
	}
	time.Sleep(50 * time.Millisecond)
}

func TestWSConnProtocolErrors(t *testing.T) {
	for name, stream := range map[string][]byte{
		"continuation without start":   mustHex(t, "80026c6f"),
		"new message inside fragments": append(mustHex(t, "010348656c"), mustHex(t, "810548656c6c6f")...),
		"reserved bits":                {0xc1, 0x00},
	} {
		client, server := net.Pipe()
		go func() { _, _ = server.Write(stream); server.Close() }()
		c := &WSConn{conn: client, buf: make([]byte, 64), maxPayload: 1 << 20}
		if _, _, err := c.ReadMessage(); err == nil || errors.Is(err, io.EOF) {
			t.Errorf("%s: %v", name, err)
		}
		client.Close()
	}
	// a connection that ends mid-frame reports EOF
	client, server := net.Pipe()
	go func() { _, _ = server.Write([]byte{0x81, 0x05, 'H'}); server.Close() }()
	c := &WSConn{conn: client, buf: make([]byte, 64), maxPayload: 1 << 20}
	if _, _, err := c.ReadMessage(); !errors.Is(err, io.EOF) {
		t.Errorf("truncated: %v", err)
	}
}

func TestUpgradeFailures(t *testing.T) {
	ctx := context.Background()
	// a server that answers the upgrade with an Engine.IO HTTP error
	for name, resp := range map[string]string{
		"refused":  "HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\n\r\nBad request",
		"eof":      "HTTP/1.1 101 Switching",
		"too long": "HTTP/1.1 101 Switching Protocols\r\nX: " + string(bytes.Repeat([]byte("a"), 20000)),
	} {
		client, server := net.Pipe()
		go func() {
			buf := make([]byte, 4096)
			_, _ = server.Read(buf)
			_, _ = server.Write([]byte(resp))
			server.Close()
		}()
		if _, err := UpgradeWS(ctx, client, "x", "/", map[string]string{"Cookie": "a=b"}); err == nil {
			t.Errorf("%s: upgrade accepted", name)
		}
	}
	// nothing listens on port 1
	if _, err := DialWS(ctx, &net.Dialer{}, "127.0.0.1:1", "/", nil); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial: %v", err)
	}
}

func TestClassifyError(t *testing.T) {
	cases := map[string]error{
		`connect_error {"message":"x"}`:       &ConnectError{Payload: `{"message":"x"}`},
		"timeout":                             context.DeadlineExceeded,
		"connection refused":                  &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)},
		"connection reset":                    syscall.ECONNRESET,
		"no free source port (EADDRNOTAVAIL)": syscall.EADDRNOTAVAIL,
		"too many open files":                 syscall.EMFILE,
		"bad thing":                           errors.New("read tcp 127.0.0.2:4000->127.0.0.1:3000: bad thing"),
		"socket.io: disconnected by server":   errors.New("socket.io: disconnected by server"),
	}
	for want, err := range cases {
		if got := classifyError(err); got != want {
			t.Errorf("%v -> %q, want %q", err, got, want)
		}
	}
	if (&ConnectError{Payload: "p"}).Error() != "socket.io connect_error: p" {
		t.Error("ConnectError.Error")
	}
	if d := backoff(1); d < 500*time.Millisecond || d > 1500*time.Millisecond {
		t.Error(d)
	}
	if d := backoff(10); d < 2500*time.Millisecond || d > 7500*time.Millisecond {
		t.Error(d)
	}
}
