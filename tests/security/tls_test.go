package security

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"

	"github.com/tradewire/tradewire/internal/testutil/sioclient"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with serial to
// dir/cert.pem and dir/key.pem and returns it.
func writeCert(t *testing.T, dir string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "tradewire-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// Written to temp names and renamed, as a secret mount updates files.
	for name, block := range map[string]*pem.Block{"cert.pem": {Type: "CERTIFICATE", Bytes: der}, "key.pem": {Type: "EC PRIVATE KEY", Bytes: kb}} {
		tmp := filepath.Join(dir, name+".tmp")
		if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TLS: https and wss on ADDR with TLS 1.2+, a working Socket.IO session over
// wss, and the certificate read again on SIGHUP.
func TestTLSServesHTTPSAndWSSAndReloads(t *testing.T) {
	dir := t.TempDir()
	first := writeCert(t, dir, 1)
	addr := freeAddr(t, "127.0.0.1")
	cmd := exec.Command(binPath)
	cmd.Env = baseEnv(map[string]string{
		"TRADEWIRE_ADDR": addr, "TRADEWIRE_DEV_MODE": "true",
		"TRADEWIRE_TLS_CERT_FILE": filepath.Join(dir, "cert.pem"), "TRADEWIRE_TLS_KEY_FILE": filepath.Join(dir, "key.pem"),
	})
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var logs strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			logs.WriteString(sc.Text() + "\n")
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	pool := x509.NewCertPool()
	pool.AddCert(first)
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	base := "https://" + addr
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			mu.Lock()
			t.Fatalf("no https answer: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Plain http on the TLS port is not served.
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
		if resp.StatusCode == 200 {
			t.Fatal("plain http answered 200 on the TLS port")
		}
		resp.Body.Close()
	}
	// TLS 1.1 is refused.
	if c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}

	// A Socket.IO session over wss with a dev login made over https.
	resp, err := client.Post(base+"/dev/login", "application/json", strings.NewReader(`{"userId":"u1"}`))
	if err != nil {
		t.Fatal(err)
	}
	var login struct{ Cookie string }
	_ = json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	sc, err := sioclient.Dial(base, sioclient.Options{
		Header: http.Header{"Cookie": {login.Cookie}, "Origin": {base}},
		Dialer: &gws.Dialer{TLSClientConfig: &tls.Config{RootCAs: pool}, HandshakeTimeout: 5 * time.Second},
	})
	if err != nil {
		t.Fatalf("Socket.IO over wss: %v", err)
	}
	defer sc.Close()
	ack, err := sc.EmitWithAck(5*time.Second, "subscribe:watchlist", map[string]any{"symbols": []string{"AAPL"}})
	if err != nil || len(ack) == 0 || !strings.Contains(string(ack[0]), `"success":true`) {
		t.Fatalf("subscribe over wss: %s %v", ack, err)
	}

	// SIGHUP: new connections get the new certificate.
	second := writeCert(t, dir, 2)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	pool.AddCert(second)
	deadline = time.Now().Add(5 * time.Second)
	for {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
		if err == nil {
			serial := c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
			c.Close()
			if serial == 2 {
				break
			}
		}
		if time.Now().After(deadline) {
			mu.Lock()
			t.Fatalf("certificate not reloaded on SIGHUP:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
