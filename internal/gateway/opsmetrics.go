package gateway

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ingestGroup is the consumer group of the ingress stream (ingest's default).
const ingestGroup = "tradewire"

// opsScrapeTimeout bounds the Redis and readiness calls made by a scrape.
const opsScrapeTimeout = time.Second

// registerOpsMetrics adds the gauges that dashboards and alerts need and the
// hot-path counters do not give: readiness, draining, the Redis adapter's
// link state and the ingress stream's backlog. They are computed at scrape
// time, so they cost nothing between scrapes.
func (g *Gateway) registerOpsMetrics() {
	reg := g.metrics.Registry()
	if reg == nil {
		return
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "tradewire", Name: "ready",
		Help: "1 while /readyz answers ready (every dependency check passes and the node is not draining), else 0.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), opsScrapeTimeout)
		defer cancel()
		return boolGauge(g.health.Check(ctx).Ready())
	}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "tradewire", Name: "draining",
		Help: "1 while the node drains for shutdown, else 0.",
	}, func() float64 { return boolGauge(g.health.Draining()) }))
	eio := g.sio.Engine()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "tradewire", Name: "send_queue_bytes",
		Help: "Bytes queued for clients and not yet written, all connections together (a rise means clients or the network lag).",
	}, func() float64 { return float64(eio.QueuedBytes()) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: "tradewire", Name: "conflated_total",
		Help: "Queued quotes replaced by a newer quote of the same symbol before a lagging client got them.",
	}, func() float64 { return float64(eio.Conflated()) }))
	if g.node != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "tradewire", Name: "redis_adapter_up",
			Help: "1 while every Redis adapter pub/sub connection is subscribed and passed its last self-check, else 0.",
		}, func() float64 { return boolGauge(g.node.Ready() == nil) }))
	}
	if g.rdb != nil && g.cfg.IngestStream != "" {
		reg.MustRegister(&ingestCollector{g: g})
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var (
	ingestLagDesc = prometheus.NewDesc("tradewire_ingest_lag_entries",
		"Entries of the ingress stream not yet delivered to the consumer group (XINFO GROUPS lag); absent while Redis cannot say.", nil, nil)
	ingestPendingDesc = prometheus.NewDesc("tradewire_ingest_pending_entries",
		"Entries delivered to the consumer group but not yet acknowledged (XINFO GROUPS pending).", nil, nil)
)

// ingestCollector reports the ingress consumer group's backlog. A scrape
// that cannot reach Redis, or before the group exists, reports nothing
// rather than a made-up zero.
type ingestCollector struct{ g *Gateway }

func (c *ingestCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- ingestLagDesc
	ch <- ingestPendingDesc
}

func (c *ingestCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), opsScrapeTimeout)
	defer cancel()
	groups, err := c.g.rdb.XInfoGroups(ctx, c.g.cfg.IngestStream).Result()
	if err != nil {
		return
	}
	for _, gr := range groups {
		if gr.Name != ingestGroup {
			continue
		}
		if gr.Lag >= 0 {
			ch <- prometheus.MustNewConstMetric(ingestLagDesc, prometheus.GaugeValue, float64(gr.Lag))
		}
		ch <- prometheus.MustNewConstMetric(ingestPendingDesc, prometheus.GaugeValue, float64(gr.Pending))
	}
}
