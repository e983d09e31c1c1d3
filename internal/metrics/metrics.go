// Package metrics holds the gateway's Prometheus collectors in a registry of
// its own and small typed methods to update them.
//
// Every label takes its values from a fixed set; anything else is counted as
// "other", so no user id, session id, socket id or room name can ever become
// a label. Every method is safe on a nil *Metrics, so components run without
// metrics by holding a nil pointer.
package metrics

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "tradewire"

// Other is the label value of everything outside a label's fixed set.
const Other = "other"

// Transports (label transport).
const (
	TransportPolling   = "polling"
	TransportWebSocket = "websocket"
)

// Rate-limit kinds (label kind).
const (
	KindConnection   = "connection"
	KindEvent        = "event"
	KindSubscription = "subscription"
)

// Session stores (label store).
const (
	StoreMongo  = "mongo"
	StoreRedis  = "redis"
	StoreMemory = "memory"
)

// HandshakeOK is the code of a successful handshake.
const HandshakeOK = "ok"

// Fixed label values. Values are matched case-insensitively, with '-' read
// as '_'.
var (
	// HandshakeCodes are the failure codes counted under their own name:
	// Engine.IO handshake errors, then connect_error data.code values.
	HandshakeCodes = []string{
		"transport_unknown", "session_id_unknown", "bad_handshake_method", "bad_request", "forbidden",
		"unsupported_protocol_version", "origin_not_allowed", "payload_too_large",
		"unauthorized", "session_not_found", "session_expired", "invalid_signature", "user_not_found",
		"auth_unavailable", "rate_limited", "draining", "timeout", "invalid_namespace", "internal",
		"user_mismatch", "rate_limit", "store_unavailable",
	}
	// SessionErrorCodes are the session lookup error codes.
	SessionErrorCodes = []string{"not_found", "expired", "invalid", "decode", "timeout", "unavailable",
		"session_not_found", "session_expired", "store_unavailable", "unauthorized", "forbidden", "user_mismatch"}
	// RecoveryOutcomes are the connection state recovery outcomes:
	// recovered (missed packets replayed), not_found (no saved session: it
	// expired or never existed), offset_lost (the missed packets are no
	// longer buffered), disabled (recovery is off).
	RecoveryOutcomes = []string{"recovered", "not_found", "offset_lost", "disabled"}
	// RedisOps are the Redis adapter operations whose errors are counted.
	RedisOps = []string{"publish", "subscribe", "receive", "decode", "request",
		"subscriber", "selfcheck", "heartbeat", "encode", "unsubscribe", "resubscribe"}

	transports = []string{TransportPolling, TransportWebSocket}
	limitKinds = []string{KindConnection, KindEvent, KindSubscription}
	stores     = []string{StoreMongo, StoreRedis, StoreMemory, "mongo-users"}
)

// Histogram buckets.
var (
	fanoutBuckets  = []float64{0, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000}
	latencyBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	lookupBuckets  = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
)

// Options configure New.
type Options struct {
	// EventNames are the Socket.IO event names counted under their own
	// label; every other event name is counted as "other".
	EventNames []string
	// HandshakeCodes are failure codes counted under their own name in
	// addition to the package's HandshakeCodes.
	HandshakeCodes []string
}

// Metrics is the gateway's set of collectors. The zero value is not usable;
// a nil *Metrics is, and records nothing.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler

	events         labelSet
	handshakeCodes labelSet

	connections       *prometheus.GaugeVec
	handshakes        prometheus.Counter
	handshakeFailures *prometheus.CounterVec
	rooms             prometheus.Gauge
	eventsIn          *prometheus.CounterVec
	eventsOut         *prometheus.CounterVec
	eventInByName     map[string]prometheus.Counter // label value -> series, no lock on the hot path
	eventOutByName    map[string]prometheus.Counter
	fanout            prometheus.Histogram
	broadcastLatency  prometheus.Histogram
	sendQueueDrops    prometheus.Counter
	slowConsumers     prometheus.Counter
	rateLimit         *prometheus.CounterVec
	limiterRedis      prometheus.Gauge
	ingestConsumers   prometheus.Gauge
	redisPublishes    prometheus.Counter
	redisReceives     prometheus.Counter
	redisErrors       *prometheus.CounterVec
	sessionLookup     *prometheus.HistogramVec
	sessionErrors     *prometheus.CounterVec
	recoveries        *prometheus.CounterVec
}

// New creates the collectors, registers them with the Go runtime and
// process collectors in a new registry, and starts every labelled series
// at zero.
func New(opts Options) *Metrics {
	m := &Metrics{
		reg:            prometheus.NewRegistry(),
		events:         newLabelSet(opts.EventNames, false),
		handshakeCodes: newLabelSet(append(append([]string(nil), HandshakeCodes...), opts.HandshakeCodes...), true),
	}
	f := factory{m.reg}
	m.connections = f.gaugeVec("connections", "Open Engine.IO connections by transport.", "transport")
	m.handshakes = f.counter("handshakes_total", "Handshakes attempted, successful or not.")
	m.handshakeFailures = f.counterVec("handshake_failures_total", "Failed handshakes by error code.", "code")
	m.rooms = f.gauge("rooms", "Rooms with at least one local member.")
	m.eventsIn = f.counterVec("events_received_total", "Events received from clients, by event name (unlisted names are \"other\").", "event")
	m.eventsOut = f.counterVec("events_sent_total", "Events sent to clients, per recipient, by event name (unlisted names are \"other\").", "event")
	m.fanout = f.histogram("broadcast_recipients", "Local sockets reached by one broadcast.", fanoutBuckets)
	m.broadcastLatency = f.histogram("broadcast_duration_seconds", "Time to hand one broadcast to every local recipient's send queue.", latencyBuckets)
	m.sendQueueDrops = f.counter("send_queue_drops_total", "Messages dropped because a connection's send queue was full.")
	m.slowConsumers = f.counter("slow_consumer_disconnects_total", "Connections closed because they did not drain their send queue.")
	m.rateLimit = f.counterVec("rate_limit_decisions_total", "Rate-limit decisions by kind and result.", "kind", "result")
	m.limiterRedis = f.gauge("rate_limiter_redis", "1 while rate limits are enforced in Redis, 0 while the in-memory fallback is used.")
	m.ingestConsumers = f.gauge("ingest_consumers", "Consumers in the ingest stream's consumer group (one per live node; departed nodes are removed once their entries are claimed).")
	m.redisPublishes = f.counter("redis_adapter_publishes_total", "Messages published by the Redis adapter.")
	m.redisReceives = f.counter("redis_adapter_receives_total", "Messages received by the Redis adapter.")
	m.redisErrors = f.counterVec("redis_adapter_errors_total", "Redis adapter errors by operation.", "op")
	m.sessionLookup = f.histogramVec("session_lookup_duration_seconds", "Session store lookup latency by store.", lookupBuckets, "store")
	m.sessionErrors = f.counterVec("session_lookup_errors_total", "Session store lookup errors by store and code.", "store", "code")
	m.recoveries = f.counterVec("recoveries_total", "Connection state recovery attempts by outcome.", "outcome")

	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	// Start every known series at zero so dashboards and rate() see them
	// before the first event.
	for _, t := range withOther(transports) {
		m.connections.WithLabelValues(t)
	}
	for _, c := range m.handshakeCodes.values() {
		m.handshakeFailures.WithLabelValues(c)
	}
	m.eventInByName = make(map[string]prometheus.Counter)
	m.eventOutByName = make(map[string]prometheus.Counter)
	for _, e := range m.events.values() {
		m.eventInByName[e] = m.eventsIn.WithLabelValues(e)
		m.eventOutByName[e] = m.eventsOut.WithLabelValues(e)
	}
	for _, k := range limitKinds {
		m.rateLimit.WithLabelValues(k, "allowed")
		m.rateLimit.WithLabelValues(k, "denied")
	}
	for _, op := range withOther(RedisOps) {
		m.redisErrors.WithLabelValues(op)
	}
	for _, s := range stores {
		m.sessionLookup.WithLabelValues(s)
		for _, c := range withOther(SessionErrorCodes) {
			m.sessionErrors.WithLabelValues(s, c)
		}
	}
	for _, o := range withOther(RecoveryOutcomes) {
		m.recoveries.WithLabelValues(o)
	}

	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:      m.reg,
		ErrorHandling: promhttp.ContinueOnError,
	})
	return m
}

// Registry returns the registry, for components that bring collectors of
// their own. Nil for a nil *Metrics.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Handler serves the registry in the Prometheus exposition format, for
// GET /metrics. A nil *Metrics serves 404.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return m.handler
}

// ConnectionOpened counts a new connection on transport ("polling" or
// "websocket").
func (m *Metrics) ConnectionOpened(transport string) {
	if m == nil {
		return
	}
	m.connections.WithLabelValues(pick(transport, transports)).Inc()
}

// ConnectionClosed counts a closed connection that was on transport.
func (m *Metrics) ConnectionClosed(transport string) {
	if m == nil {
		return
	}
	m.connections.WithLabelValues(pick(transport, transports)).Dec()
}

// ConnectionUpgraded moves a connection from one transport to another.
func (m *Metrics) ConnectionUpgraded(from, to string) {
	if m == nil {
		return
	}
	m.connections.WithLabelValues(pick(from, transports)).Dec()
	m.connections.WithLabelValues(pick(to, transports)).Inc()
}

// Handshake counts a handshake; code is "ok" (or "") for a success, else the
// error code, from HandshakeCodes or Options.HandshakeCodes.
func (m *Metrics) Handshake(code string) {
	if m == nil {
		return
	}
	m.handshakes.Inc()
	if code == "" || foldLabel(code) == HandshakeOK {
		return
	}
	m.handshakeFailures.WithLabelValues(m.handshakeCodes.get(code)).Inc()
}

// SetRooms sets the number of rooms.
func (m *Metrics) SetRooms(n int) {
	if m == nil {
		return
	}
	m.rooms.Set(float64(n))
}

// RoomCreated counts a room that got its first member.
func (m *Metrics) RoomCreated() {
	if m == nil {
		return
	}
	m.rooms.Inc()
}

// RoomDeleted counts a room that lost its last member.
func (m *Metrics) RoomDeleted() {
	if m == nil {
		return
	}
	m.rooms.Dec()
}

// EventIn counts an event received from a client.
func (m *Metrics) EventIn(name string) {
	if m == nil {
		return
	}
	m.eventInByName[m.events.get(name)].Inc()
}

// EventOut counts an event sent to one client.
func (m *Metrics) EventOut(name string) { m.EventsOut(name, 1) }

// EventsOut counts an event sent to n clients.
func (m *Metrics) EventsOut(name string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.eventOutByName[m.events.get(name)].Add(float64(n))
}

// Broadcast records one broadcast: how many local sockets it reached and how
// long it took.
func (m *Metrics) Broadcast(recipients int, took time.Duration) {
	if m == nil {
		return
	}
	m.fanout.Observe(float64(recipients))
	m.broadcastLatency.Observe(took.Seconds())
}

// SendQueueDrop counts a message dropped from a full send queue.
func (m *Metrics) SendQueueDrop() {
	if m == nil {
		return
	}
	m.sendQueueDrops.Inc()
}

// SlowConsumerDisconnect counts a connection closed for not draining its
// send queue.
func (m *Metrics) SlowConsumerDisconnect() {
	if m == nil {
		return
	}
	m.slowConsumers.Inc()
}

// RateLimit counts a rate-limit decision of kind "connection", "event" or
// "subscription".
func (m *Metrics) RateLimit(kind string, allowed bool) {
	if m == nil {
		return
	}
	result := "denied"
	if allowed {
		result = "allowed"
	}
	m.rateLimit.WithLabelValues(pick(kind, limitKinds), result).Inc()
}

// SetIngestConsumers records the size of the ingest consumer group.
func (m *Metrics) SetIngestConsumers(n int) {
	if m == nil {
		return
	}
	m.ingestConsumers.Set(float64(n))
}

// SetLimiterRedis records whether rate limits are enforced in Redis (true)
// or by the in-memory fallback (false).
func (m *Metrics) SetLimiterRedis(redis bool) {
	if m == nil {
		return
	}
	v := 0.0
	if redis {
		v = 1
	}
	m.limiterRedis.Set(v)
}

// RedisPublish counts a message published by the Redis adapter.
func (m *Metrics) RedisPublish() {
	if m == nil {
		return
	}
	m.redisPublishes.Inc()
}

// RedisReceive counts a message received by the Redis adapter.
func (m *Metrics) RedisReceive() {
	if m == nil {
		return
	}
	m.redisReceives.Inc()
}

// RedisError counts a Redis adapter error during op (see RedisOps).
func (m *Metrics) RedisError(op string) {
	if m == nil {
		return
	}
	m.redisErrors.WithLabelValues(pick(op, RedisOps)).Inc()
}

// SessionLookup records the latency of one lookup in store ("mongo",
// "redis" or "memory"), successful or not.
func (m *Metrics) SessionLookup(store string, took time.Duration) {
	if m == nil {
		return
	}
	m.sessionLookup.WithLabelValues(pick(store, stores)).Observe(took.Seconds())
}

// SessionLookupError counts a failed lookup in store with code (see
// SessionErrorCodes).
func (m *Metrics) SessionLookupError(store, code string) {
	if m == nil {
		return
	}
	m.sessionErrors.WithLabelValues(pick(store, stores), pick(code, SessionErrorCodes)).Inc()
}

// Recovery counts a connection state recovery attempt by outcome (see
// RecoveryOutcomes).
func (m *Metrics) Recovery(outcome string) {
	if m == nil {
		return
	}
	m.recoveries.WithLabelValues(pick(outcome, RecoveryOutcomes)).Inc()
}

// labelSet maps arbitrary input to a fixed set of label values.
type labelSet struct {
	known map[string]string
	fold  bool // match case-insensitively, '-' as '_'
}

func newLabelSet(values []string, fold bool) labelSet {
	s := labelSet{known: make(map[string]string, len(values)), fold: fold}
	for _, v := range values {
		if v == "" || v == Other {
			continue
		}
		if fold {
			v = foldLabel(v)
		}
		s.known[v] = v
	}
	return s
}

func (s labelSet) get(v string) string {
	if s.fold {
		v = foldLabel(v)
	}
	if l, ok := s.known[v]; ok {
		return l
	}
	return Other
}

func (s labelSet) values() []string {
	out := make([]string, 0, len(s.known)+1)
	for v := range s.known {
		out = append(out, v)
	}
	return append(out, Other)
}

func foldLabel(v string) string {
	return strings.ReplaceAll(strings.ToLower(v), "-", "_")
}

// pick returns v folded if it is one of allowed, else Other.
func pick(v string, allowed []string) string {
	v = foldLabel(v)
	for _, a := range allowed {
		if v == a {
			return a
		}
	}
	return Other
}

func withOther(values []string) []string {
	return append(append([]string(nil), values...), Other)
}

// factory creates collectors in the tradewire namespace and registers them.
type factory struct{ reg *prometheus.Registry }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help})
	f.reg.MustRegister(g)
	return g
}

func (f factory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(g)
	return g
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}

func (f factory) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(h)
	return h
}
