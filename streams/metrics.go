package streams

import (
	"github.com/prometheus/client_golang/prometheus"

	"riskd/rules"
)

// Metrics are the stream scorer's Prometheus series. Labels stay low in
// cardinality: topics, partitions, actions and stages, never accounts.
type Metrics struct {
	Consumed     *prometheus.CounterVec   // messages fetched, by topic
	Decided      *prometheus.CounterVec   // decisions made durable, by action
	Duplicates   prometheus.Counter       // events already decided (same event_id)
	DeadLettered *prometheus.CounterVec   // messages sent to the DLQ, by source topic
	Lag          *prometheus.GaugeVec     // messages behind the partition's end, by topic and partition
	Committed    *prometheus.GaugeVec     // last committed offset, by topic and partition
	BatchSize    prometheus.Histogram     // results per output flush
	SinkSeconds  *prometheus.HistogramVec // time to make a flush durable, by sink (clickhouse, kafka)
	Errors       *prometheus.CounterVec   // failures that were retried or logged, by stage
	InFlight     prometheus.Gauge         // fetched messages not yet durable
	RuleHits     *prometheus.CounterVec   // stored decisions a rule matched, by rule, action and mode
	// Parked counts output messages the writer or the broker refused for
	// good, replaced by a dead letter on the DLQ topic, by the topic they
	// were meant for (see Config.MaxPublishAttempts).
	Parked *prometheus.CounterVec
	// Dropped counts parked outputs whose dead letter was refused too, and
	// so are nowhere in Kafka; by the topic they were meant for. Any
	// increase needs an operator: the DLQ topic itself refuses messages.
	Dropped *prometheus.CounterVec
	// KafkaToDecision is the time from a message's Kafka timestamp (set by
	// its producer or the broker) to its decision: queueing in Kafka, fetch,
	// shard queue and scoring. A consumer that falls behind shows here first.
	KafkaToDecision prometheus.Histogram
}

// NewMetrics creates the series and registers them on reg (nil: not registered,
// for tests that run several pipelines in one process).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_consumed_total", Help: "Messages fetched from input topics.",
		}, []string{"topic"}),
		Decided: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_decisions_total", Help: "Decisions stored and published, by action.",
		}, []string{"action"}),
		Duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "riskd_duplicate_events_total", Help: "Events whose event_id was already decided; no new outputs.",
		}),
		DeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_dlq_total", Help: "Messages that could not be decoded or validated, sent to the dead-letter topic.",
		}, []string{"topic"}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "riskd_consumer_lag", Help: "Messages between the consumer's position and the partition's end.",
		}, []string{"topic", "partition"}),
		Committed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "riskd_committed_offset", Help: "Last committed offset (next to read).",
		}, []string{"topic", "partition"}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "riskd_output_batch_size", Help: "Results per output flush.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
		SinkSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "riskd_sink_seconds", Help: "Time to make one output batch durable, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"sink"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_errors_total", Help: "Errors by stage (fetch, commit, clickhouse, kafka_out, rules).",
		}, []string{"stage"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "riskd_in_flight_messages", Help: "Fetched messages whose outputs are not yet durable.",
		}),
		KafkaToDecision: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "riskd_kafka_to_decision_seconds", Help: "Time from a message's Kafka timestamp to its decision.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18), // 0.5 ms .. about 65 s
		}),
		RuleHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_rule_hits_total", Help: "Stored decisions each rule matched, by rule, action and mode (active, shadow).",
		}, []string{"rule", "action", "mode"}),
		Parked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_parked_outputs_total", Help: "Output messages refused by the Kafka writer or broker for good and parked on the dead-letter topic, by the topic they were meant for.",
		}, []string{"topic"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_dropped_outputs_total", Help: "Parked output messages whose dead letter was refused too, and so were lost, by the topic they were meant for.",
		}, []string{"topic"}),
	}
	// Export zeros for the known label values, so dashboards and alerts see
	// every series from the start.
	for a := rules.Allow; a <= rules.Lock; a++ {
		m.Decided.WithLabelValues(a.String())
	}
	for _, stage := range []string{"fetch", "commit", "group", "kafka_out"} {
		m.Errors.WithLabelValues(stage)
	}
	if reg != nil {
		reg.MustRegister(m.Consumed, m.Decided, m.Duplicates, m.DeadLettered, m.Lag,
			m.Committed, m.BatchSize, m.SinkSeconds, m.Errors, m.InFlight, m.RuleHits, m.KafkaToDecision,
			m.Parked, m.Dropped)
	}
	return m
}

// initOutputs exports zeros for the series labelled by output topic, whose
// names are known only once the pipeline's config is (New calls it).
func (m *Metrics) initOutputs(t Topics) {
	for _, topic := range []string{t.Decisions, t.Alerts, t.Actions, t.DLQ} {
		m.Parked.WithLabelValues(topic)
		m.Dropped.WithLabelValues(topic)
	}
}
