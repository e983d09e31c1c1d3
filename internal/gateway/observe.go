package gateway

import (
	"errors"
	"time"

	"github.com/tradewire/tradewire/auth"
	"github.com/tradewire/tradewire/internal/metrics"
)

// engineObserver feeds transport events to metrics.
type engineObserver struct{ m *metrics.Metrics }

func (o engineObserver) SessionOpened(transport string) { o.m.ConnectionOpened(transport) }
func (o engineObserver) SessionClosed(transport, reason string) {
	o.m.ConnectionClosed(transport)
	if reason == "slow consumer" {
		o.m.SlowConsumerDisconnect()
	}
}
func (o engineObserver) SessionUpgraded() {
	o.m.ConnectionUpgraded(metrics.TransportPolling, metrics.TransportWebSocket)
}
func (o engineObserver) HandshakeRejected(code int) { o.m.Handshake(engineCode(code)) }

func engineCode(code int) string {
	switch code {
	case 0:
		return "TRANSPORT_UNKNOWN"
	case 1:
		return "SESSION_ID_UNKNOWN"
	case 2:
		return "BAD_HANDSHAKE_METHOD"
	case 3:
		return "BAD_REQUEST"
	case 4:
		return "FORBIDDEN"
	case 5:
		return "UNSUPPORTED_PROTOCOL_VERSION"
	}
	return "other"
}

// socketObserver feeds socket events to metrics.
type socketObserver struct{ m *metrics.Metrics }

func (o socketObserver) EventIn(name string) { o.m.EventIn(name) }
func (o socketObserver) EventOut(name string, n int) {
	o.m.EventsOut(name, n)
}
func (o socketObserver) Broadcast(n int, took time.Duration) { o.m.Broadcast(n, took) }
func (o socketObserver) SlowConsumerDropped()                { o.m.SendQueueDrop() }

// authObserver feeds session lookups to metrics.
type authObserver struct{ m *metrics.Metrics }

func (o authObserver) ObserveLookup(store string, d time.Duration, err error) {
	o.m.SessionLookup(store, d)
	if err != nil {
		code := auth.CodeOf(err)
		var ae *auth.Error
		if !errors.As(err, &ae) {
			code = auth.CodeStoreUnavailable
		}
		o.m.SessionLookupError(store, code)
	}
}
func (o authObserver) ObserveCache(bool) {}

// adapterObserver feeds Redis adapter traffic to metrics.
type adapterObserver struct{ m *metrics.Metrics }

func (o adapterObserver) OnPublish(string, int)      { o.m.RedisPublish() }
func (o adapterObserver) OnReceive(string, int)      { o.m.RedisReceive() }
func (o adapterObserver) OnError(op string, _ error) { o.m.RedisError(op) }
func (o adapterObserver) OnResubscribe(string)       { o.m.RedisError("resubscribe") }

// Recovery implements socketio.RecoveryObserver.
func (o socketObserver) Recovery(outcome string) { o.m.Recovery(outcome) }
