package gateway

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
)

// certReloader serves the certificate of a PEM pair and reads the pair
// again on SIGHUP; a pair that fails to load keeps the previous one.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	cert              atomic.Pointer[tls.Certificate]
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) load() error {
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("TRADEWIRE_TLS_CERT_FILE / TRADEWIRE_TLS_KEY_FILE: %w", err)
	}
	r.cert.Store(&c)
	return nil
}

// getCertificate implements tls.Config.GetCertificate.
func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// watch reloads the pair on every SIGHUP until ctx ends.
func (r *certReloader) watch(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := r.load(); err != nil {
				r.log.Error("TLS certificate reload failed; keeping the previous one", "err", err)
				continue
			}
			r.log.Info("TLS certificate reloaded", "cert_file", r.certFile)
		}
	}
}

// tlsListener wraps l to serve TLS 1.2+ with the reloader's certificate,
// HTTP/1.1 only (websocket upgrades hijack the connection).
func tlsListener(l net.Listener, r *certReloader) net.Listener {
	return tls.NewListener(l, &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.getCertificate,
		NextProtos:     []string{"http/1.1"},
	})
}
