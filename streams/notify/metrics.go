package notify

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Delivery outcomes, the values of the outcome label.
const (
	OutcomeDelivered       = "delivered"        // a 2xx answer
	OutcomeRetried         = "retried"          // a failed attempt that will be tried again
	OutcomeParked          = "parked"           // given up on and written to the dead letters
	OutcomeDroppedOverflow = "dropped_overflow" // the subscriber's queue was full at Publish
	OutcomeAbandoned       = "abandoned"        // queued or in flight when the Notifier stopped
)

var outcomes = []string{OutcomeDelivered, OutcomeRetried, OutcomeParked, OutcomeDroppedOverflow,
	OutcomeAbandoned}

// metrics are the Notifier's Prometheus series. Labels are subscriber names
// and outcomes, never accounts.
type metrics struct {
	deliveries *prometheus.CounterVec   // by subscriber and outcome
	latency    *prometheus.HistogramVec // Publish to 2xx, retries included, by subscriber
	sseClients prometheus.Gauge
	sseDropped prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, subs []Subscriber) *metrics {
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_webhook_deliveries_total",
			Help: "Webhook notifications by subscriber and outcome (delivered, retried, parked, dropped_overflow, abandoned).",
		}, []string{"subscriber", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "riskd_webhook_delivery_seconds",
			Help:    "Time from Publish to a 2xx answer, queueing and retries included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"subscriber"}),
		sseClients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "riskd_alert_stream_clients", Help: "Connected live alert stream (SSE) clients.",
		}),
		sseDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "riskd_alert_stream_dropped_total", Help: "Live stream clients disconnected because they fell behind.",
		}),
	}
	// Zeros for every known series, so dashboards see them from the start.
	for _, s := range subs {
		for _, o := range outcomes {
			m.deliveries.WithLabelValues(s.Name, o)
		}
		m.latency.WithLabelValues(s.Name)
	}
	if reg != nil {
		reg.MustRegister(m.deliveries, m.latency, m.sseClients, m.sseDropped)
	}
	return m
}
