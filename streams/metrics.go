package streams

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"riskd/rules"
)

// Metrics are the stream scorer's Prometheus series. Labels stay low in
// cardinality: topics, partitions, actions, stages and rule ids, never
// accounts. Every series whose labels are known at start is exported from
// 0 (stages and actions by NewMetrics, topics by New, rules whenever a rule
// set is installed, partitions once assigned), so alerts on rate() and
// dashboards see it before the first event.
type Metrics struct {
	Consumed     *prometheus.CounterVec   // messages fetched, by topic
	Decided      *prometheus.CounterVec   // decisions made durable, by action
	Duplicates   prometheus.Counter       // events already decided (same event_id)
	DeadLettered *prometheus.CounterVec   // messages sent to the DLQ, by source topic
	Lag          *prometheus.GaugeVec     // end offset less the group's committed offset, from the broker, by assigned topic and partition
	Committed    *prometheus.GaugeVec     // last committed offset, by topic and partition
	BatchSize    prometheus.Histogram     // results per output flush
	SinkSeconds  *prometheus.HistogramVec // time to make a flush durable, by sink (clickhouse, kafka)
	Errors       *prometheus.CounterVec   // failures that were retried or logged, by stage (see ErrorStages)
	InFlight     prometheus.Gauge         // fetched messages not yet durable
	RuleHits     *prometheus.CounterVec   // stored decisions a rule matched, by rule, action and mode
	// Candidate counts stored decisions that carry a candidate rule set's
	// outcome (a shadow publish), by live and candidate action: the
	// agreement matrix as it grows.
	Candidate *prometheus.CounterVec
	// RuleErrors counts run-time errors of each rule's expression in
	// stored decisions (engine.Decision.Errored), by rule; each also counts
	// in Errors{stage="rules"}.
	RuleErrors *prometheus.CounterVec
	// Late counts stored decisions of events too old for the windows of
	// one of their entities (engine.Decision.LateFor: decided, not added
	// to that entity's windows), once per event and entity group, by
	// source topic ("api" for the decide API) and reason: the group, as
	// features.Set.GroupName names it ("account", "device.id", "ip", ...).
	// Its series are exported from 0 for every input topic and every
	// reason given to LateReasons.
	Late *prometheus.CounterVec
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
	// Stage splits an event's way through the stream into the stages it
	// can wait in (stageNames), so a latency figure can be traced to its
	// cause: riskd_stage_seconds{stage}.
	Stage *prometheus.HistogramVec
	// State snapshots (see Config.Snapshots): bytes written to the state
	// topic (its traffic), snapshots by outcome (saved, failed,
	// abandoned), the time from a cut to its save, and the size of the
	// last one saved.
	StateBytes   prometheus.Counter
	StateSaves   *prometheus.CounterVec
	StateSeconds prometheus.Histogram
	// StatePause is how long a cut held the shards (freezing their state
	// and writing their locks and ids; the copy and the encoding run
	// beside them): the wait it adds to events.
	StatePause prometheus.Histogram
	StateSize  prometheus.Gauge
	// Restore: how long loading the last snapshot took at start, how big
	// it was, and the events decided again since (from the snapshot's
	// offsets to the committed ones) with their outputs held back because
	// the first run made them durable.
	RestoreSeconds prometheus.Gauge
	RestoreBytes   prometheus.Gauge
	Replayed       prometheus.Counter
	// SharedOnly counts the events of partitions this instance does not
	// decide, added to its shared entity windows only (shared.go), and
	// SharedDelay is the time from such an event's Kafka timestamp to
	// that moment: how far this instance's entity windows lag behind the
	// rest of the fleet's traffic.
	SharedOnly  prometheus.Counter
	SharedDelay prometheus.Histogram
	// DecidedAhead counts events decided here, outputs made, whose shared
	// entity windows held them already and later events too: a partition
	// that moved here from an instance that stood behind this one's
	// shared windows (the rebalance bound, shared.go).
	DecidedAhead prometheus.Counter
	// StandbyDecided counts the events decided here as a standby (no
	// outputs), StandbyHandedOver the standby's decisions output when
	// their partition moved here (standby.go).
	StandbyDecided, StandbyHandedOver prometheus.Counter
	// StandbyKept is how many standby decisions wait for their owners'
	// commits, as of the last poll: what standbys hold in memory.
	StandbyKept prometheus.Gauge
	// DecideReadBack counts the events decided through the decide API that
	// this instance read back from its input topic as repeated event ids
	// (Config.PublishAPIEvents): not counted in Duplicates.
	DecideReadBack prometheus.Counter
	// DecideHandedOver counts the decide API events whose deadline passed
	// before they reached a shard, by what became of them: appended to
	// their input topic for the stream to decide (appended), or not
	// (lost: the hand-over queue was full, or riskd stopped first).
	DecideHandedOver *prometheus.CounterVec
	// PartitionRestores counts the partitions moved here whose accounts'
	// state was restored from a snapshot of the group (restored), that no
	// snapshot fitted (none) or whose snapshot was refused (refused), the
	// last two rebuilt from their logs; PartitionRestoreSeconds times a
	// restore, PartitionDropped counts the accounts whose state was
	// dropped because their partition moved away (partitionstate.go).
	PartitionRestores       *prometheus.CounterVec
	PartitionRestoreSeconds prometheus.Histogram
	PartitionDropped        prometheus.Counter
	// PlacedCommands counts support commands applied again at their place
	// in the replay after a restore (see Pipeline.Place).
	PlacedCommands prometheus.Counter
	// ready exports riskd_ready and riskd_ready_condition from the
	// pipeline's Ready at each scrape.
	ready *readyCollector
	// lateTopics and lateReasons are the label values of Late known so
	// far, whose every pair is exported.
	lateMu      sync.Mutex
	lateTopics  []string
	lateReasons []string
}

// ErrorStages are the values of riskd_errors_total's stage label:
//   - group: joining the consumer group failed;
//   - fetch: reading an input topic failed (Kafka in; kafka-go retries);
//   - commit: committing offsets failed;
//   - lag: asking the broker for end or committed offsets failed;
//   - kafka_out: publishing outputs failed (a round of retries);
//   - clickhouse: a ClickHouse write attempt (through chstore's
//     Config.OnRetry, see StoreRetried) or ping failed;
//   - rules: a rule's expression failed at run time (per rule in
//     riskd_rule_errors_total);
//   - merge: the event-time merge went on without a partition that had
//     unread records (Config.MergeWait), or could not ask where the
//     partitions end;
//   - state: cutting or saving an engine state snapshot failed;
//   - fleet: describing the consumer group (who owns which partition, for
//     the decide API's forwarding) failed.
//
// Undecodable input is not an error stage: it is counted in
// riskd_dlq_total. Webhook failures are counted by streams/notify.
var ErrorStages = []string{"group", "fetch", "commit", "lag", "kafka_out", "clickhouse", "rules", "merge", "state", "fleet"}

// NewMetrics creates the series and registers them on reg (nil: not registered,
// for tests that run several pipelines in one process).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_consumed_total", Help: "Messages fetched from the input partitions assigned to this instance (those of other instances count in riskd_shared_window_events_total or riskd_standby_decisions_total).",
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
			Name: "riskd_consumer_lag",
			Help: "Messages between the consumer group's committed offset and the partition's end, asked of the broker every few seconds, by partition assigned to this instance.",
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
			Name: "riskd_errors_total", Help: "Errors by stage (group, fetch, commit, lag, kafka_out, clickhouse, rules).",
		}, []string{"stage"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "riskd_in_flight_messages", Help: "Fetched messages whose outputs are not yet durable.",
		}),
		KafkaToDecision: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "riskd_kafka_to_decision_seconds", Help: "Time from a message's Kafka timestamp to its decision.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18), // 0.5 ms .. about 65 s
		}),
		Stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "riskd_stage_seconds", Help: "Time a stream event spends in each stage: fetch (Kafka timestamp to fetched), merge (fetched to handed to the engine: the event-time merge and the in-flight bound), queue (handed to the engine to its shard taking it), score (deciding it), output (decided to durable in Kafka and ClickHouse).",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 22), // 50 µs .. about 105 s
		}, []string{"stage"}),
		RuleHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_rule_hits_total", Help: "Stored decisions each rule matched, by rule, action and mode (active, shadow).",
		}, []string{"rule", "action", "mode"}),
		Candidate: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_candidate_decisions_total", Help: "Stored decisions the candidate rule set (a shadow publish) also decided, by live and candidate action.",
		}, []string{"live", "candidate"}),
		Parked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_parked_outputs_total", Help: "Output messages refused by the Kafka writer or broker for good and parked on the dead-letter topic, by the topic they were meant for.",
		}, []string{"topic"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_dropped_outputs_total", Help: "Parked output messages whose dead letter was refused too, and so were lost, by the topic they were meant for.",
		}, []string{"topic"}),
		RuleErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_rule_errors_total", Help: "Run-time errors of each rule's expression in stored decisions (the rule counts as not matched).",
		}, []string{"rule"}),
		Late: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_late_events_total",
			Help: "Stored decisions of events too late for the feature windows of one of their entities (decided, not added to that entity's windows), once per event and entity group, by source topic and reason (the group: account, device.id, ip, ...).",
		}, []string{"topic", "reason"}),
		StateBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "riskd_state_bytes_total", Help: "Bytes of engine state snapshots written to the state topic.",
		}),
		StateSaves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_state_snapshots_total", Help: "Engine state snapshots by outcome (saved, failed, abandoned).",
		}, []string{"outcome"}),
		StateSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "riskd_state_snapshot_seconds", Help: "Time from an engine state cut to its snapshot being saved in Kafka.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
		StatePause: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "riskd_state_cut_pause_seconds", Help: "Longest time a shard was held at an engine state cut's marker, freezing its state (the decisions behind the cut wait this long; the copy and its encoding run beside the shards).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		StateSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "riskd_state_snapshot_size_bytes", Help: "Size of the last engine state snapshot saved.",
		}),
		RestoreSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "riskd_state_restore_seconds", Help: "Time taken at start to load and restore the last engine state snapshot.",
		}),
		RestoreBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "riskd_state_restore_bytes", Help: "Size of the engine state snapshot restored at start.",
		}),
		Replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "riskd_replayed_events_total", Help: "Events decided again after a restore to rebuild state, their outputs held back (already durable).",
		}),
		SharedOnly: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "riskd_shared_window_events_total", Help: "Events of partitions other instances decide, added to this instance's device, IP, payee and other shared entity windows only.",
		}),
		SharedDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "riskd_shared_window_delay_seconds", Help: "Time from the Kafka timestamp of an event another instance decides to its addition to this instance's shared entity windows.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18), // as riskd_kafka_to_decision_seconds
		}),
		DecidedAhead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "riskd_decided_with_windows_ahead_total", Help: "Events decided, outputs made, with shared entity windows that already held them and later events (a partition taken over from an instance that stood behind this one).",
		}),
		StandbyDecided: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "riskd_standby_decisions_total", Help: "Events of partitions other instances own, decided here as a standby without outputs.",
		}),
		StandbyHandedOver: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "riskd_standby_handed_over_total", Help: "Decisions made here as a standby and output when their partition moved here, past its previous owner's last commit.",
		}),
		StandbyKept: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "riskd_standby_kept_decisions", Help: "Decisions made here as a standby that their partitions' owners have not committed yet (kept in memory, at most kafka.standby_limit per partition).",
		}),
		DecideHandedOver: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_decide_handed_over_total",
			Help: "Decide API events whose deadline passed before they reached a shard (answered decide.on_timeout), by outcome: appended to their input topic for the stream to decide and record, or lost (decide.publish_events).",
		}, []string{"outcome"}),
		DecideReadBack: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "riskd_decide_events_read_back_total", Help: "Events decided through the decide API that this instance wrote to their input topic and read back as already decided (decide.publish_events).",
		}),
		PartitionRestores: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_partition_state_restores_total", Help: "Partitions moved here, by how their accounts' state was had: restored from a snapshot of the group, or rebuilt from their logs because none fitted or it was refused.",
		}, []string{"result"}),
		PartitionRestoreSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "riskd_partition_state_restore_seconds", Help: "Time to load a snapshot of the group and restore from it the state of the partitions moved here.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
		PartitionDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "riskd_partition_state_dropped_accounts_total", Help: "Accounts whose state this instance dropped because their partition moved to another instance.",
		}),
		PlacedCommands: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "riskd_replayed_commands_total", Help: "Support commands (locks, unlocks, suppressions) applied again at their place in the stream after a restore.",
		}),
		ready: newReadyCollector(),
	}
	for _, outcome := range []string{"saved", "failed", "abandoned"} {
		m.StateSaves.WithLabelValues(outcome)
	}
	for _, result := range []string{"restored", "none", "refused"} {
		m.PartitionRestores.WithLabelValues(result)
	}
	// Export zeros for the known label values, so dashboards and alerts see
	// every series from the start.
	for a := rules.Allow; a <= rules.Lock; a++ {
		m.Decided.WithLabelValues(a.String())
	}
	for _, stage := range ErrorStages {
		m.Errors.WithLabelValues(stage)
	}
	for _, sink := range []string{"clickhouse", "kafka"} {
		m.SinkSeconds.WithLabelValues(sink)
	}
	for _, outcome := range []string{handedOverAppended, handedOverLost} {
		m.DecideHandedOver.WithLabelValues(outcome)
	}
	m.noteLate([]string{APISource.Topic}, nil)
	if reg != nil {
		reg.MustRegister(m.Consumed, m.Decided, m.Duplicates, m.DeadLettered, m.Lag,
			m.Committed, m.BatchSize, m.SinkSeconds, m.Errors, m.InFlight, m.RuleHits, m.Candidate, m.KafkaToDecision, m.Stage,
			m.Parked, m.Dropped, m.RuleErrors, m.Late, m.StateBytes, m.StateSaves, m.StateSeconds, m.StatePause, m.StateSize,
			m.RestoreSeconds, m.RestoreBytes, m.Replayed, m.SharedOnly, m.SharedDelay, m.DecidedAhead, m.StandbyDecided, m.StandbyHandedOver, m.StandbyKept,
			m.DecideReadBack, m.DecideHandedOver, m.PartitionRestores, m.PartitionRestoreSeconds, m.PartitionDropped, m.PlacedCommands, m.ready)
	}
	return m
}

// StoreRetried counts a failed ClickHouse write attempt that will be
// retried in riskd_errors_total{stage="clickhouse"}; its signature is
// chstore.Config.OnRetry's, which the daemon sets to it.
func (m *Metrics) StoreRetried(op string, err error) {
	m.Errors.WithLabelValues("clickhouse").Inc()
}

// initTopics exports zeros for the series labelled by topic, whose names
// are known only once the pipeline's config is (New calls it).
func (m *Metrics) initTopics(t Topics) {
	for _, topic := range []string{t.Decisions, t.Alerts, t.Actions, t.DLQ} {
		m.Parked.WithLabelValues(topic)
		m.Dropped.WithLabelValues(topic)
	}
	for _, topic := range t.Inputs {
		m.Consumed.WithLabelValues(topic)
		m.DeadLettered.WithLabelValues(topic)
	}
	m.noteLate(t.Inputs, nil)
}

// LateReasons exports riskd_late_events_total at 0 for these reasons (the
// feature Set's group names, see features.Set.GroupName) on every topic;
// the daemon calls it once its features are loaded.
func (m *Metrics) LateReasons(reasons ...string) { m.noteLate(nil, reasons) }

// noteLate adds topics and reasons to the known label values of Late and
// exports every pair at 0.
func (m *Metrics) noteLate(topics, reasons []string) {
	m.lateMu.Lock()
	defer m.lateMu.Unlock()
	for _, t := range topics {
		if !slices.Contains(m.lateTopics, t) {
			m.lateTopics = append(m.lateTopics, t)
		}
	}
	for _, r := range reasons {
		if !slices.Contains(m.lateReasons, r) {
			m.lateReasons = append(m.lateReasons, r)
		}
	}
	for _, t := range m.lateTopics {
		for _, r := range m.lateReasons {
			m.Late.WithLabelValues(t, r)
		}
	}
}

// initRules exports zeros for the per-rule series of rs: its errors, and
// its hits with the action and mode each rule has in rs. Series of rules
// no longer in the set keep their counts.
func (m *Metrics) initRules(rs *rules.RuleSet) {
	for _, r := range rs.Rules {
		m.RuleErrors.WithLabelValues(r.ID)
		m.RuleHits.WithLabelValues(r.ID, r.Action.String(), r.Mode.String())
	}
}

// readyFrom makes the readiness series report ready (a pipeline's Ready).
func (m *Metrics) readyFrom(ready func() Readiness) { m.ready.src.Store(&ready) }

// readyCollector exports a Readiness at scrape time: riskd_ready (1 or 0)
// and riskd_ready_condition{condition} (1 or 0 per condition, every one
// of Conditions from the start). Before a pipeline is attached every
// value is 0.
//
// It also exports the assignment /readyz lists: riskd_assigned_partitions,
// riskd_restoring_partitions and riskd_restore_remaining_messages (the
// messages left to decide again, over the restoring partitions whose
// first message was read).
type readyCollector struct {
	src                              atomic.Pointer[func() Readiness]
	ready, per                       *prometheus.Desc
	assigned, restoring, restoreLeft *prometheus.Desc
}

func newReadyCollector() *readyCollector {
	return &readyCollector{
		ready: prometheus.NewDesc("riskd_ready", "1 while /readyz answers ready: every riskd_ready_condition is 1.", nil, nil),
		per: prometheus.NewDesc("riskd_ready_condition",
			"1 while the readiness condition holds (kafka, engine, clickhouse, output, rules); /readyz says why one does not.",
			[]string{"condition"}, nil),
		assigned: prometheus.NewDesc("riskd_assigned_partitions",
			"Input partitions assigned to this instance in the running consumer group generation (/readyz lists them).", nil, nil),
		restoring: prometheus.NewDesc("riskd_restoring_partitions",
			"Assigned partitions whose already decided messages are being decided again, without outputs, to rebuild the state (after a restart or a move).", nil, nil),
		restoreLeft: prometheus.NewDesc("riskd_restore_remaining_messages",
			"Messages the restoring partitions have left to decide again before they decide new ones.", nil, nil),
	}
}

func (c *readyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.ready
	ch <- c.per
	ch <- c.assigned
	ch <- c.restoring
	ch <- c.restoreLeft
}

func (c *readyCollector) Collect(ch chan<- prometheus.Metric) {
	var r Readiness
	if f := c.src.Load(); f != nil {
		r = (*f)()
	}
	ok := map[string]bool{}
	for _, cond := range r.Conditions {
		ok[cond.Name] = cond.OK
	}
	ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, b2f(r.Ready))
	for _, name := range Conditions {
		ch <- prometheus.MustNewConstMetric(c.per, prometheus.GaugeValue, b2f(ok[name]), name)
	}
	var restoring, left float64
	for _, ps := range r.Partitions {
		if ps.Restoring {
			restoring++
			left += float64(max(ps.RestoreLeft, 0))
		}
	}
	ch <- prometheus.MustNewConstMetric(c.assigned, prometheus.GaugeValue, float64(len(r.Partitions)))
	ch <- prometheus.MustNewConstMetric(c.restoring, prometheus.GaugeValue, restoring)
	ch <- prometheus.MustNewConstMetric(c.restoreLeft, prometheus.GaugeValue, left)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// The stages of riskd_stage_seconds, in an event's order.
const (
	stageFetch = iota
	stageMerge
	stageQueue
	stageScore
	stageOutput
	stageCount
)

var stageNames = [stageCount]string{"fetch", "merge", "queue", "score", "output"}

// stageObservers resolves the stage histogram's series once, so the hot
// path does no label lookup per event.
func (m *Metrics) stageObservers() [stageCount]prometheus.Observer {
	var o [stageCount]prometheus.Observer
	for i, n := range stageNames {
		o[i] = m.Stage.WithLabelValues(n)
	}
	return o
}
