package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"

	"riskd/engine"
	"riskd/internal/backoff"
	"riskd/rules"
	"riskd/streams/notify"
)

// Topics names the Kafka topics the stream scorer reads and writes.
type Topics struct {
	// Inputs are the event topics (key = account id).
	Inputs []string
	// Decisions gets every decision, Alerts every user alert, Actions lock
	// commands for the account service, DLQ the messages that could not be
	// decided. All outputs are keyed by account id.
	Decisions, Alerts, Actions, DLQ string
}

// DefaultTopics are the topic names of the design.
func DefaultTopics() Topics {
	return Topics{
		Inputs:    []string{"payments", "account-events"},
		Decisions: "risk.decisions", Alerts: "risk.alerts", Actions: "risk.actions", DLQ: "risk.dlq",
	}
}

// DecisionStore makes decisions durable (ClickHouse in production). It must
// retry until it succeeds or ctx ends, and be idempotent by event id.
type DecisionStore interface {
	WriteDecisions(ctx context.Context, ds []*engine.Decision) error
}

// Config sets up a Pipeline.
type Config struct {
	Brokers []string
	// Group is the consumer group id.
	Group  string
	Topics Topics
	// Instance names this riskd in the fleet (state.instance): it stamps
	// the support commands this instance's API publishes, so the others
	// apply them and this one skips them (ActionRecord.Instance).
	Instance string
	// BatchSize and FlushInterval bound an output batch: it is written when
	// it has BatchSize results or is FlushInterval old, whichever is first.
	BatchSize     int
	FlushInterval time.Duration
	// CommitInterval is how often durable offsets are committed.
	CommitInterval time.Duration
	// MaxInFlight bounds fetched messages whose outputs are not durable;
	// a reader waits when it is reached (backpressure on the broker). It
	// should cover the batches being stored (StoreParallelism) plus one
	// filling; 0 means 4 batches plus one per parallel store. It bounds
	// the decide API's decisions whose outputs are not durable too, apart:
	// at that many, a decide call waits (up to its deadline) for one.
	MaxInFlight int
	// StoreParallelism is how many batches may be writing to the store at
	// once; 0 means 3.
	StoreParallelism int
	// RetryMin and RetryMax bound the backoff between output retries.
	RetryMin, RetryMax time.Duration
	// MaxOutputBytes bounds every message written to an output topic:
	// key, value, and header keys and values together (the YAML key
	// output.max_output_bytes); 0 means DefaultMaxOutputBytes. It must
	// leave room for Kafka's record framing under the writer's batch limit
	// of 1,000,000 bytes (itself under the brokers' default
	// message.max.bytes of 1,048,588), which Validate checks. A dead
	// letter over it is cut to fit, with its original size and checksum in
	// headers (HeaderTruncated); any other output over it is parked
	// without being sent (see MaxPublishAttempts).
	MaxOutputBytes int
	// MaxPublishAttempts bounds how often an output message is sent when
	// the writer or the broker refuses it for what it is: too large, found
	// corrupt, or any Kafka error that is not retriable (the YAML key
	// output.max_publish_attempts); 0 means DefaultMaxPublishAttempts.
	// Then the message is parked: replaced by a small dead letter on the
	// DLQ topic that names the topic it was meant for and the refusal, and
	// counted in riskd_parked_outputs_total; the stream goes on. Transient
	// failures (broker unreachable, no leader, timeouts) are not counted
	// against it: they are retried with backoff for as long as they last,
	// which holds offsets back and, through MaxInFlight, slows intake.
	MaxPublishAttempts int
	// DrainTimeout bounds the wait, on shutdown, for in-flight messages to
	// become durable; what is not durable then is not committed and is
	// read again on the next start.
	DrainTimeout time.Duration
	Logger       *slog.Logger
	// Notify, if set, receives user alerts and lock commands once they are
	// durable (webhooks, the live stream). It must not block.
	Notify Notifier
	// Rules is the engine's rule holder. Ready requires a set in it, and
	// the per-rule series (riskd_rule_errors_total, riskd_rule_hits_total)
	// of every installed set are exported from 0. Nil fails the rules
	// readiness condition.
	Rules *rules.Holder
	// LagInterval is how often riskd_consumer_lag is asked of the broker;
	// 0 means 5s.
	LagInterval time.Duration
	// FleetInterval is how often the consumer group's members and their
	// partitions are asked of the broker, for Owner (fleet.go); 0 means 1s.
	FleetInterval time.Duration
	// Partitioner is how the wallet's producers map an account key to a
	// partition (PartitionerFNV1a, the default, or PartitionerMurmur2):
	// Owner computes an account's partition the same way.
	Partitioner string
	// StoreCheckInterval is how often the store is pinged when no write
	// has succeeded for that long; the clickhouse readiness condition fails
	// after a failed ping (until a write or ping succeeds) or after three
	// intervals without a success. 0 means 5s.
	StoreCheckInterval time.Duration
	// MergeWait bounds how long the merge of the input partitions (see
	// merge.go) waits for a partition whose records are on the broker but
	// not fetched yet, before it goes on without it and that partition's
	// events may come late (the YAML key kafka.merge_wait); 0 means
	// DefaultMergeWait. Waiting is what keeps a backlog in event-time
	// order however fast each partition is read.
	MergeWait time.Duration
	// MaxIdle is how long the merge waits for a caught-up partition with
	// nothing buffered before it goes on without it (kafka.max_idle, as
	// Kafka Streams' max.task.idle.ms). 0, the default, does not wait:
	// live events are decided as they arrive, and a quiet partition does
	// not hold the others back.
	MaxIdle time.Duration
	// Snapshots, when set, keeps the engine's state in Kafka: a cut every
	// SnapshotInterval (0: DefaultSnapshotInterval), saved once the
	// offsets it reflects are committed, and a last one after a complete
	// drain (see statesave.go).
	Snapshots        SnapshotStore
	SnapshotInterval time.Duration
	// Resume is where the engine's restored state stands: per topic and
	// partition, the offset after the last message it reflects
	// (kafka.FirstOffset: none). A partition assigned while the state
	// stands behind the group's committed offset is read from where the
	// state stands, and the messages below the committed offset are
	// decided again without making their outputs (they are durable
	// already, made by an earlier run or another instance), which brings
	// the state up to the committed offset. The pipeline keeps this map up
	// to date across rebalances, so a partition that comes back catches
	// up from where this engine left it (or, with PartitionStates, from
	// the newest snapshot of the group that holds it). With RebuildUnknown, a partition
	// not in the map is rebuilt the same way from the start of its log
	// (the input topics' retention): this engine holds none of its
	// accounts' state (with PartitionStates the engine must be
	// PartitionTagged for that to hold after a drop). Without it (a state restored from a file written at
	// a clean stop), unknown partitions start at the committed offset.
	// ResumeSeq is the restored snapshot's Seq, so the next one saved
	// follows it.
	Resume map[string]map[int]int64
	// Standby has every instance decide, without outputs, the partitions
	// it does not own, keeping each decision until the owner commits past
	// it, so that a partition moved here goes on at once (standby.go).
	// StandbyLimit bounds the decisions kept per partition (0:
	// DefaultStandbyLimit); past it the standby of that partition stops.
	Standby      bool
	StandbyLimit int
	// ResumeShared is where the restored shared entity windows (devices,
	// IPs, payees...) stand, for every partition of the inputs: they
	// count the events of partitions other instances decide too (see
	// shared.go). nil: where Resume says (a state saved before they had
	// positions of their own). A partition in neither is read from the
	// start of its log.
	ResumeShared   map[string]map[int]int64
	RebuildUnknown bool
	// PublishAPIEvents appends every event decided through Decide (not a
	// duplicate) to its input topic (MovesMoney: the first input, others:
	// the last), keyed by its account, with the HeaderOrigin header: the
	// other instances of a fleet then add it to their shared entity
	// windows as they do the stream's, and a restart that restored a
	// state cut before it replays it. This instance reads it back as a
	// repeated event_id (no outputs; riskd_decide_events_read_back_total).
	PublishAPIEvents bool
	// PartitionStates, when set, moves the state of a partition's
	// accounts with the partition (partitionstate.go): at each generation
	// the engine drops the accounts of the partitions no longer assigned
	// here (unless Standby), and restores those of a partition assigned
	// here whose state stands behind the committed offset from the newest
	// fitting snapshot of the group, so it is read from there instead of
	// from the start of its log.
	PartitionStates PartitionStates
	// PartitionLinger is how long, with PartitionStates, the state of a
	// partition moved away stays here, and in this instance's snapshots
	// at where it stands, before it is dropped: the partition's new owner
	// lists the group's snapshots and then loads one, and snapshots saved
	// in between without the partition would send it to its log. 0 means
	// DefaultPartitionLinger.
	PartitionLinger time.Duration
	ResumeSeq       uint64
	// StallTimeout is how long an output batch may wait, from the moment
	// it is cut, to become durable (published and stored) before the
	// output readiness condition fails. A healthy batch takes tens to
	// hundreds of milliseconds; retries against a broker or ClickHouse that
	// is away take as long as the outage. 0 means DefaultStallTimeout.
	StallTimeout time.Duration
}

// DefaultMergeWait is Config.MergeWait's default: far above a fetch round
// trip, short enough that a partition whose leader is gone stops the
// others for no longer than an operator would notice.
const DefaultMergeWait = 30 * time.Second

// DefaultStallTimeout is Config.StallTimeout's default: well above a
// healthy batch's time to become durable under load (a few seconds at
// most), well below what an operator would tolerate without being told.
const DefaultStallTimeout = 15 * time.Second

// Output limits. See Config.MaxOutputBytes.
const (
	// DefaultMaxOutputBytes leaves a tenth of the writer's batch limit
	// for framing and headroom.
	DefaultMaxOutputBytes = 900_000
	// DefaultMaxPublishAttempts is enough to ride out a corrupt transfer
	// (CORRUPT_MESSAGE is refused once, and the next attempt succeeds)
	// without lingering on a message that will never be taken.
	DefaultMaxPublishAttempts = 3

	// writerBatchBytes is the output writer's largest record batch: the
	// most it puts in one produce request per partition, and so the
	// largest message it takes (franz-go refuses a larger one with
	// kerr.MessageTooLarge before sending anything). A full batch stays
	// under the brokers' default message.max.bytes of 1,048,588.
	writerBatchBytes = 1_000_000
	// recordOverhead is room for the framing of one message in a batch
	// (lengths, timestamp, header counts) beyond outputBytes: a few dozen
	// bytes for riskd's dozen headers, with margin.
	recordOverhead = 1000
	// minOutputBytes is the smallest MaxOutputBytes Validate accepts: a
	// dead letter's key and headers (each value from input bounded by
	// maxHeaderBytes) and some of its body must fit.
	minOutputBytes = 16 << 10
)

// Validate checks the limits that New cannot default away, and names the
// offending key. New does not validate: call Validate at start-up.
func (c Config) Validate() error {
	var errs []error
	switch most := writerBatchBytes - recordOverhead; {
	case c.MaxOutputBytes < 0:
		errs = append(errs, fmt.Errorf("output.max_output_bytes: %d is negative; 0 means %d", c.MaxOutputBytes, DefaultMaxOutputBytes))
	case c.MaxOutputBytes > most:
		errs = append(errs, fmt.Errorf("output.max_output_bytes: %d is above %d, the Kafka writer's batch limit of %d bytes less %d for record framing; the writer would refuse a message that large",
			c.MaxOutputBytes, most, writerBatchBytes, recordOverhead))
	case c.MaxOutputBytes > 0 && c.MaxOutputBytes < minOutputBytes:
		errs = append(errs, fmt.Errorf("output.max_output_bytes: %d is too small to hold a dead letter's headers; want at least %d", c.MaxOutputBytes, minOutputBytes))
	}
	if c.MaxPublishAttempts < 0 {
		errs = append(errs, fmt.Errorf("output.max_publish_attempts: %d is negative; 0 means %d", c.MaxPublishAttempts, DefaultMaxPublishAttempts))
	}
	if c.MergeWait < 0 {
		errs = append(errs, fmt.Errorf("kafka.merge_wait: %v is negative; 0 means %v", c.MergeWait, DefaultMergeWait))
	}
	if c.MaxIdle < 0 {
		errs = append(errs, fmt.Errorf("kafka.max_idle: %v is negative; 0 means not to wait", c.MaxIdle))
	}
	switch c.Partitioner {
	case "", PartitionerFNV1a, PartitionerMurmur2:
	default:
		errs = append(errs, fmt.Errorf("kafka.partitioner: %q is not one of %s (kafka-go's Hash, Sarama's default) or %s (the Java client's)",
			c.Partitioner, PartitionerFNV1a, PartitionerMurmur2))
	}
	return errors.Join(errs...)
}

// Notifier fans alerts out to subscribers (streams/notify).
type Notifier interface {
	Publish(notify.Notification)
}

func (c Config) withDefaults() Config {
	if c.Group == "" {
		c.Group = "riskd"
	}
	if c.StandbyLimit <= 0 {
		c.StandbyLimit = DefaultStandbyLimit
	}
	def := DefaultTopics()
	if len(c.Topics.Inputs) == 0 {
		c.Topics.Inputs = def.Inputs
	}
	for _, name := range []struct {
		set *string
		def string
	}{
		{&c.Topics.Decisions, def.Decisions}, {&c.Topics.Alerts, def.Alerts},
		{&c.Topics.Actions, def.Actions}, {&c.Topics.DLQ, def.DLQ},
	} {
		if *name.set == "" {
			*name.set = name.def
		}
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 5000
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = 200 * time.Millisecond
	}
	if c.StoreParallelism <= 0 {
		c.StoreParallelism = 3
	}
	if c.CommitInterval <= 0 {
		c.CommitInterval = time.Second
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = (4 + c.StoreParallelism) * c.BatchSize
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 100 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 5 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.MaxOutputBytes <= 0 {
		c.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if c.MaxPublishAttempts <= 0 {
		c.MaxPublishAttempts = DefaultMaxPublishAttempts
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.LagInterval <= 0 {
		c.LagInterval = 5 * time.Second
	}
	if c.FleetInterval <= 0 {
		c.FleetInterval = time.Second
	}
	if c.Partitioner == "" {
		c.Partitioner = PartitionerFNV1a
	}
	if c.StoreCheckInterval <= 0 {
		c.StoreCheckInterval = 5 * time.Second
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = DefaultStallTimeout
	}
	if c.MergeWait <= 0 {
		c.MergeWait = DefaultMergeWait
	}
	if c.SnapshotInterval <= 0 {
		c.SnapshotInterval = DefaultSnapshotInterval
	}
	if c.PartitionLinger <= 0 {
		c.PartitionLinger = DefaultPartitionLinger
	}
	return c
}

// Pipeline is the stream scorer: it reads the input topics with a consumer
// group, hands each message to its account's shard, writes what the
// decisions produced (ClickHouse, output topics, DLQ) in batches, and
// commits an offset only once everything before it is durable. A crash
// therefore loses nothing; a replay re-publishes with the same event ids and
// the store collapses repeated rows.
type Pipeline struct {
	cfg   Config
	eng   *engine.Engine
	store DecisionStore
	// ownedBefore is what the previous generation assigned here (nil
	// before the first), to tell the partitions that moved here.
	ownedBefore map[topicPartition]bool
	out         *outputWriter // every output topic's messages
	alone       *outputWriter // one message per produce request, for retries of refused ones (see write)
	m           *Metrics
	stages      [stageCount]prometheus.Observer // m.Stage by stage
	log         *slog.Logger
	slots       chan struct{} // one token per in-flight message
	// decides holds a token per decide API decision whose outputs are not
	// durable yet (Decide), as slots does per stream message.
	decides chan struct{}
	// handovers holds the decide API events whose deadline passed before
	// they reached a shard, until runHandovers appends them to their
	// input topic (Config.PublishAPIEvents); as many as decides.
	handovers chan []byte
	// lostWarnedAt is when handOver last logged a lost event (Unix ns).
	lostWarnedAt atomic.Int64
	// results takes every decision to the output stage without its sender
	// waiting; the tokens of slots and decides bound what it holds.
	results *resultQueue
	// submissions pools what a stream message's Done needs (submission).
	submissions sync.Pool
	// pubMu serialises notifications from the output stage and the API, so
	// one account's notifications reach the notifier in order.
	pubMu sync.Mutex
	// health is what Ready judges; engineUp is set while RunEngine runs.
	health   *health
	engineUp atomic.Bool
	now      func() time.Time
	// rulesSeen is the last rule set whose series were exported; only the
	// output goroutine touches it after New.
	rulesSeen *rules.RuleSet
	// beforeFetch, when set (tests only), runs before every fetch of a
	// partition: a test holds one partition's reader back with it.
	beforeFetch func(ctx context.Context, topic string, partition int)

	// State snapshots (statesave.go): cuts waiting to be saved (one at a
	// time), when the merger cuts next, the Seq of the last one saved and
	// the offsets committed so far.
	cuts        chan pendingCut
	nextCut     time.Time
	snapSeq     uint64
	committedMu sync.Mutex
	committed   map[topicPartition]int64
	// stateAt is where the engine's state stands per partition (see
	// Config.Resume); runGeneration reads and updates it between
	// generations, the merger of one generation reads it for cuts.
	stateAt map[topicPartition]int64
	// leaving holds, per partition moved away whose accounts' state is
	// still here, when it is dropped, and leaveAt the earliest of those
	// times (partitionstate.go); runGeneration's and its merger's.
	leaving map[int]time.Time
	leaveAt time.Time
	// sharedAt is where the shared entity windows stand per partition of
	// the inputs, assigned or not (see Config.ResumeShared), kept alike.
	sharedAt map[topicPartition]int64
	// standby holds, per partition decided here as a standby, what was
	// decided past its owner's commits (standby.go); runGeneration's.
	standby map[topicPartition]*standbyLog

	// Support commands (commands.go): Command's requests reach the
	// running merger through commands; mergerGone is closed when that
	// merger returns (nil while none runs). placed are the commands to
	// apply again at their places, touched by the merger only.
	commands   chan commandRequest
	cmdMu      sync.Mutex
	mergerGone chan struct{}
	placed     []PlacedCommand
	// own is when this instance's API last applied a support command, by
	// account and aspect (NoteOwnCommand), guarded by ownMu.
	ownMu sync.Mutex
	own   map[string]time.Time
	// apiURL is where this instance's API answers (SetAPI); fleet is the
	// group as runFleet last described it (fleet.go).
	apiURL string
	fleet  atomic.Pointer[fleetView]
}

// Instance is the name of this riskd in the fleet (Config.Instance).
func (p *Pipeline) Instance() string { return p.cfg.Instance }

// result is one message's outcome, on its way to the output stage.
type result struct {
	d      *engine.Decision
	err    error
	msg    kafka.Message // the input, for the DLQ
	part   *partitionOffsets
	ticket uint64
	// ahead marks a standby's decision made with shared entity windows
	// that held the event already (engine.PartAccount; standby.go).
	ahead bool
	// timed marks a stream decision whose latencies the output stage
	// observes (observeDecided), queued its wait for the shard.
	timed  bool
	queued time.Duration
}

// New builds a Pipeline over a running engine.
func New(cfg Config, eng *engine.Engine, store DecisionStore, m *Metrics) *Pipeline {
	cfg = cfg.withDefaults()
	if m == nil {
		m = NewMetrics(nil)
	}
	m.initTopics(cfg.Topics)
	p := &Pipeline{
		cfg:       cfg,
		eng:       eng,
		store:     store,
		out:       newOutputWriter(cfg.Brokers, newOutputBalancer(cfg), false),
		alone:     newOutputWriter(cfg.Brokers, newOutputBalancer(cfg), true),
		m:         m,
		stages:    m.stageObservers(),
		log:       cfg.Logger,
		slots:     make(chan struct{}, cfg.MaxInFlight),
		decides:   make(chan struct{}, cfg.MaxInFlight),
		handovers: make(chan []byte, cfg.MaxInFlight),
		results:   newResultQueue(),
		health:    newHealth(store),
		now:       time.Now,

		cuts:      make(chan pendingCut, 1),
		snapSeq:   cfg.ResumeSeq,
		committed: map[topicPartition]int64{},
		stateAt:   map[topicPartition]int64{},
		leaving:   map[int]time.Time{},
		sharedAt:  map[topicPartition]int64{},
		standby:   map[topicPartition]*standbyLog{},
		commands:  make(chan commandRequest),
	}
	for topic, parts := range cfg.Resume {
		for part, next := range parts {
			p.stateAt[topicPartition{topic, part}] = next
		}
	}
	shared := cfg.ResumeShared
	if shared == nil { // a state saved before the shared windows had positions of their own
		shared = cfg.Resume
	}
	for topic, parts := range shared {
		for part, next := range parts {
			p.sharedAt[topicPartition{topic, part}] = next
		}
	}
	p.submissions.New = newSubmission
	p.nextCut = time.Now().Add(cfg.SnapshotInterval)
	p.noteRules()
	m.readyFrom(p.Ready)
	return p
}

// noteRules exports zeros for the per-rule series of the installed rule
// set, once per set.
func (p *Pipeline) noteRules() {
	if p.cfg.Rules == nil {
		return
	}
	if rs := p.cfg.Rules.Load(); rs != nil && rs != p.rulesSeen {
		p.rulesSeen = rs
		p.m.initRules(rs)
	}
}

// outputBalancer places the outputs by account (kafka.Hash: one
// account's outputs stay in order), and the decide API's events appended
// to an input topic (Config.PublishAPIEvents) as the wallet's producers do
// (Config.Partitioner), so each lands in its account's partition.
type outputBalancer struct {
	inputs map[string]bool
	murmur bool
	hash   kafka.Hash
}

func newOutputBalancer(cfg Config) *outputBalancer {
	b := &outputBalancer{inputs: map[string]bool{}, murmur: cfg.Partitioner == PartitionerMurmur2}
	for _, t := range cfg.Topics.Inputs {
		b.inputs[t] = true
	}
	return b
}

func (b *outputBalancer) Balance(msg kafka.Message, partitions ...int) int {
	if b.murmur && b.inputs[msg.Topic] {
		return kafka.Murmur2Balancer{Consistent: true}.Balance(msg, partitions...)
	}
	return b.hash.Balance(msg, partitions...)
}

// Run consumes until ctx ends, then stops fetching, waits (up to
// DrainTimeout) for what was fetched to become durable, commits, and
// returns. The engine must keep running until Run returns. While ctx
// lasts, two monitors run beside intake: the consumer lag, asked of the
// broker (runLag), and the store's health (runStoreCheck); Ready reports
// not ready before Run, once ctx has ended, and after Run returns.
func (p *Pipeline) Run(ctx context.Context) error {
	defer p.out.Close()
	defer p.alone.Close()
	p.health.setRunning(true)
	defer p.health.setRunning(false)
	defer context.AfterFunc(ctx, p.health.setStopping)()
	monCtx, stopMonitors := context.WithCancel(ctx)
	var monitors sync.WaitGroup
	defer func() {
		stopMonitors()
		monitors.Wait()
	}()
	monitors.Go(func() { p.runLag(monCtx) })
	monitors.Go(func() { p.runStoreCheck(monCtx) })
	monitors.Go(func() { p.runFleet(monCtx) })
	// Periodic snapshots stop before the last one is saved (or abandoned).
	snapCtx, stopSnapshots := context.WithCancel(context.WithoutCancel(ctx))
	var snapshotter sync.WaitGroup
	if p.cfg.Snapshots != nil {
		snapshotter.Go(func() { p.runSnapshots(snapCtx) })
	}
	defer func() {
		stopSnapshots()
		snapshotter.Wait()
	}()
	// The output stage outlives intake so a shutdown can drain; it ends when
	// the drain is over or, on a hard stop, when DrainTimeout runs out.
	outCtx, stopOut := context.WithCancel(context.WithoutCancel(ctx))
	defer stopOut()
	var outWG sync.WaitGroup
	outWG.Add(1)
	go func() {
		defer outWG.Done()
		p.runOutput(outCtx)
	}()
	outWG.Go(func() { p.runHandovers(outCtx) })
	// Outputs that are still retrying when the drain gives up are abandoned
	// here: their offsets stay uncommitted.
	stopDrain := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(p.cfg.DrainTimeout, stopOut)
		context.AfterFunc(outCtx, func() { t.Stop() })
	})
	defer stopDrain()

	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                p.cfg.Group,
		Brokers:           p.cfg.Brokers,
		Topics:            p.cfg.Topics.Inputs,
		StartOffset:       kafka.FirstOffset,
		HeartbeatInterval: time.Second,
		SessionTimeout:    10 * time.Second,
		RebalanceTimeout:  p.cfg.DrainTimeout,
		// Same partition numbers of every input on one member (see
		// coPartitioned); range only while an older riskd is in the group.
		GroupBalancers: []kafka.GroupBalancer{coPartitioned{userData: p.memberUserData()}, kafka.RangeGroupBalancer{}},
		Logger:         kafka.LoggerFunc(func(string, ...any) {}),
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			p.log.Warn("kafka consumer group", "detail", fmt.Sprintf(msg, args...))
		}),
	})
	if err != nil {
		return fmt.Errorf("streams: consumer group %q: %w", p.cfg.Group, err)
	}
	for ctx.Err() == nil {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			p.m.Errors.WithLabelValues("group").Inc()
			p.health.joinFailed(err, p.now())
			p.log.Warn("joining consumer group failed; retrying", "group", p.cfg.Group, "err", err)
			sleepCtx(ctx, p.cfg.RetryMin)
			continue
		}
		p.runGeneration(ctx, outCtx, gen)
	}
	if err := group.Close(); err != nil && !errors.Is(err, kafka.ErrGroupClosed) {
		p.log.Warn("closing consumer group", "err", err)
	}
	stopOut()
	outWG.Wait()
	stopSnapshots()
	snapshotter.Wait()
	if n := len(p.slots); n > 0 {
		return fmt.Errorf("%w: %d messages", ErrNotDrained, n)
	}
	if p.cfg.Snapshots != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.DrainTimeout)
		defer cancel()
		if err := p.saveFinal(sctx); err != nil {
			p.stateFailed("saving the engine state at shutdown", err)
		}
	}
	return nil
}

// ErrNotDrained is returned by Run when the shutdown drain ran out of time
// with messages still in flight. Their offsets were not committed, so they
// are read again on the next start; engine state that already includes
// them must not be checkpointed, or the replay would take them for
// duplicates and skip their outputs.
var ErrNotDrained = errors.New("streams: shutdown drain incomplete")

// runGeneration reads every partition assigned in gen until the generation
// ends (a rebalance) or ctx ends, then drains and commits its partitions.
func (p *Pipeline) runGeneration(ctx, outCtx context.Context, gen *kafka.Generation) {
	p.takePartitions(ctx, gen.Assignments)
	var parts []*mergeInput
	owned := map[topicPartition]bool{}
	for topic, as := range gen.Assignments {
		for _, a := range as {
			tp := topicPartition{topic, a.ID}
			owned[tp] = true
			parts = append(parts, p.assignedInput(outCtx, tp, a.Offset))
		}
	}
	moved := p.movedHere(owned)
	// Every other partition of the inputs, for the shared entity windows,
	// and decided without outputs by a standby.
	for _, tp := range p.otherPartitions(ctx, owned) {
		parts = append(parts, p.otherInput(tp))
	}
	// A fixed order, so that ties in event time are broken alike on every
	// run and on every instance.
	slices.SortFunc(parts, func(a, b *mergeInput) int {
		if c := strings.Compare(a.topic, b.topic); c != 0 {
			return c
		}
		return a.partition - b.partition
	})
	var assigned []*mergeInput // the partitions this instance decides
	for _, in := range parts {
		if in.owned {
			assigned = append(assigned, in)
			in.recoverAtOutputs = moved[topicPartition{in.topic, in.partition}]
		}
	}
	if len(moved) > 0 {
		p.recoverStore() // a standby's handed-over decisions come first
	}
	p.log.Info("consumer group generation", "generation", gen.ID, "member", gen.MemberID, "partitions", len(assigned),
		"shared_only", len(parts)-len(assigned))
	states := make([]partitionState, len(assigned))
	for i, a := range assigned {
		states[i] = partitionState{topic: a.topic, partition: a.partition, progress: a.progress}
	}
	p.markBehind(ctx, parts)
	p.health.startGeneration(gen.ID, states)
	defer p.health.endGeneration()

	genEnded, drained := make(chan struct{}), make(chan struct{})
	defer close(drained) // after the last commit below
	gen.Start(func(genCtx context.Context) {
		<-genCtx.Done()
		close(genEnded)
		// kafka-go rejoins, closing this generation's coordinator
		// connection, once this returns: hold it until the drain has made
		// its last commit, so a rebalance does not hand the partitions on
		// with durable outputs uncommitted (their next owner would make
		// them again). The broker waits up to RebalanceTimeout, which is
		// DrainTimeout.
		<-drained
	})
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	go func() {
		select {
		case <-genEnded:
			stopReading()
		case <-readCtx.Done():
		}
	}()
	var readers sync.WaitGroup
	arrived := make(chan struct{}, 1)
	for _, a := range parts {
		if !a.owned {
			readers.Go(func() { p.fetch(readCtx, a, arrived) })
		}
	}
	for i, a := range assigned {
		readers.Go(func() {
			p.health.setReading(gen.ID, i, true)
			defer p.health.setReading(gen.ID, i, false)
			p.fetch(readCtx, a, arrived)
		})
	}
	readers.Go(func() { p.merge(readCtx, outCtx, parts, arrived) })
	if p.cfg.Standby {
		readers.Go(func() { p.pollStandbyCommits(readCtx, parts) })
	}

	var lastWarn time.Time
	var failed int
	commit := func() {
		offsets := map[string]map[int]int64{}
		for _, a := range assigned {
			next, _ := a.offsets.committable()
			if next < 0 {
				continue
			}
			if offsets[a.topic] == nil {
				offsets[a.topic] = map[int]int64{}
			}
			offsets[a.topic][a.partition] = next
		}
		if len(offsets) == 0 {
			return
		}
		if err := gen.CommitOffsets(offsets); err != nil {
			p.m.Errors.WithLabelValues("commit").Inc()
			// While the broker is away this fails every interval; say so
			// every few seconds, with the count, not every time.
			if failed++; time.Since(lastWarn) >= 10*time.Second {
				p.log.Warn("commit offsets failed; they will be committed later or replayed", "failures", failed, "err", err)
				lastWarn, failed = time.Now(), 0
			}
			return
		}
		for _, a := range assigned {
			if next, ok := offsets[a.topic][a.partition]; ok {
				p.m.Committed.WithLabelValues(a.topic, itoa(a.partition)).Set(float64(next))
			}
		}
		p.noteCommitted(offsets)
	}
	tick := time.NewTicker(p.cfg.CommitInterval)
	defer tick.Stop()
	for readCtx.Err() == nil {
		select {
		case <-tick.C:
			commit()
		case <-readCtx.Done():
		}
	}
	p.health.endGeneration() // intake of this generation is over; the drain follows
	readers.Wait()
	// Drain: wait until every fetched message is durable (or the output
	// stage gives up), then make the last commit of this generation.
	for outCtx.Err() == nil && inFlight(parts, func(a *mergeInput) *partitionOffsets { return a.offsets }) > 0 {
		select {
		case <-tick.C:
			commit()
		case <-outCtx.Done():
		}
	}
	commit()
	for _, a := range parts {
		a.reader.Close()
		tp := topicPartition{a.topic, a.partition}
		p.sharedAt[tp] = a.next
		if a.owned || a.standby != nil {
			p.stateAt[tp] = a.accountAt()
		}
	}
}

// Recoverer is a DecisionStore that can check again for rows stored
// already (chstore.Store.Recover).
type Recoverer interface {
	Recover()
}

// movedHere returns the partitions assigned in this generation that the
// previous one did not assign here (none in the first generation, whose
// store opened in its recovery window). Their previous owner may have
// stored decisions whose offsets it never committed (killed), which this
// instance writes again: the store's recovery window (the restart's check,
// for a rebalance) is restarted when they are output (recoverStore).
func (p *Pipeline) movedHere(owned map[topicPartition]bool) map[topicPartition]bool {
	before := p.ownedBefore
	p.ownedBefore = owned
	if before == nil {
		return nil
	}
	moved := map[topicPartition]bool{}
	for tp := range owned {
		if !before[tp] {
			moved[tp] = true
		}
	}
	return moved
}

// recoverStore restarts the store's recovery window, when it has one.
func (p *Pipeline) recoverStore() {
	if r, ok := p.store.(Recoverer); ok {
		r.Recover()
	}
}

// assignedInput makes the merger's input for tp, assigned to this instance
// with the group's committed offset committed (negative: none): read from
// the committed offset, or from where this engine's state of it stands when
// that is behind (its messages up to the commit decided again without
// outputs), or, after a standby of it that stands past the commit, from
// there, with the standby's decisions since the commit output first.
func (p *Pipeline) assignedInput(outCtx context.Context, tp topicPartition, committed int64) *mergeInput {
	start := committed
	if start < 0 {
		start = kafka.FirstOffset
	}
	replayUntil := int64(-1)
	at, known := p.stateAt[tp]
	if !known && p.cfg.RebuildUnknown {
		at, known = kafka.FirstOffset, true
	}
	if known && (at < start || (at < 0 && committed > 0)) {
		start, replayUntil = at, committed
	}
	var handed []result
	tookOver := false
	if log := p.standby[tp]; log != nil && known && at > start {
		if handed, tookOver = log.handOver(max(start, 0), at); tookOver {
			start = at
		} else {
			p.log.Warn("the standby's decisions of a partition moved here do not reach back to its committed offset; deciding it from there",
				"topic", tp.topic, "partition", tp.partition, "committed", start, "standby_from", log.from, "standby_at", at)
		}
	}
	delete(p.standby, tp) // a standby's decisions of it are handed over or of no use
	// Shared windows that never read the partition read it from where its
	// accounts would be rebuilt without a state: its log's start, with
	// RebuildUnknown, even when its accounts' state came from another
	// member's snapshot (partitionstate.go).
	sharedFallback := start
	if p.cfg.RebuildUnknown {
		sharedFallback = kafka.FirstOffset
	}
	in := p.newInput(tp, start, p.sharedFrom(tp, sharedFallback))
	in.owned, in.accountFrom, in.replayUntil = true, start, replayUntil
	in.progress.until = replayUntil
	if tookOver {
		p.takeOver(outCtx, in, handed)
		p.log.Info("partition taken over from this instance's standby state; the decisions its previous owner had not committed are output from there",
			"topic", tp.topic, "partition", tp.partition, "committed", committed, "decided_to", at, "outputs", len(handed))
	}
	if replayUntil >= 0 {
		p.log.Info("replaying to rebuild the engine state; outputs held back up to the committed offset",
			"topic", tp.topic, "partition", tp.partition, "from", start, "until", replayUntil)
	}
	if c := max(committed, 0); in.sharedFrom > c {
		p.log.Info("the shared entity windows stand ahead of the committed offset; the events between are decided with windows that hold later events",
			"topic", tp.topic, "partition", tp.partition, "committed", c, "shared_windows_at", in.sharedFrom)
	}
	return in
}

// fetchErrors is what a partition reader reports (partitionReader's
// problem). The reader retries failed fetches and connections by itself
// and reports them only here (FetchMessage returns just the errors that
// came without records), so each one counts in
// riskd_errors_total{stage="fetch"}, and is logged at most every
// warnInterval with the count. The reader's client may call it from
// several goroutines at once.
func (p *Pipeline) fetchErrors(topic string, partition int) func(error) {
	var warn warnEvery
	return func(err error) {
		p.m.Errors.WithLabelValues("fetch").Inc()
		if n, ok := warn.due(time.Now()); ok {
			p.log.Warn("kafka reader", "topic", topic, "partition", partition, "errors", n, "detail", err)
		}
	}
}

func inFlight[T any](parts []T, offsets func(T) *partitionOffsets) int {
	n := 0
	for _, a := range parts {
		_, k := offsets(a).committable()
		n += k
	}
	return n
}

// runOutput collects results into batches and makes each batch durable.
// Kafka outputs are written by this goroutine, batch after batch, so one
// account's messages stay in order; the ClickHouse write of a batch then
// runs beside the next batches (up to StoreParallelism at once), because
// the store's round trip, not CPU, bounds a serial stage. A batch's offsets
// are finished when both writes are done, in whatever order batches finish:
// the partition trackers commit only contiguous durable prefixes.
func (p *Pipeline) runOutput(ctx context.Context) {
	var stores sync.WaitGroup
	defer stores.Wait()
	slots := make(chan struct{}, p.cfg.StoreParallelism)
	// spare holds the lists of stored batches for the next ones: a list
	// has room for BatchSize results, a megabyte at the default, however
	// few a batch cut by the flush interval holds.
	spare := make(chan []result, p.cfg.StoreParallelism+1)
	batch := make([]result, 0, p.cfg.BatchSize)
	var arena outputArena // publishBatch's, batch after batch
	tick := time.NewTicker(p.cfg.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-p.results.ready:
			from := len(batch)
			batch = p.results.take(batch, p.cfg.BatchSize-len(batch))
			p.observeDecided(batch[from:])
			if len(batch) < p.cfg.BatchSize {
				continue
			}
		case <-tick.C:
			p.noteRules()
			if len(batch) == 0 {
				continue
			}
		case <-ctx.Done():
			return
		}
		id := p.health.batchCut(len(batch), p.now())
		out, err := p.publishBatch(ctx, batch, &arena)
		if err != nil {
			p.health.batchDone(id)
			return // only when ctx ended: these offsets stay uncommitted
		}
		p.health.batchPhase(id, phaseStoreSlot)
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			p.health.batchDone(id)
			return
		}
		p.health.batchPhase(id, phaseStore)
		stores.Add(1)
		go func(batch []result) {
			defer stores.Done()
			defer func() { <-slots }()
			err := p.storeBatch(ctx, batch, out)
			if err == nil {
				p.finish(batch)
				p.health.batchDone(id)
				select {
				case spare <- clearTo0(batch):
				default:
				}
			} else if ctx.Err() != nil {
				p.health.batchDone(id) // abandoned by the drain
			}
			// Otherwise the store refused the batch for good (storeBatch
			// logged why): it stays pending, and the output condition
			// fails, because its offsets can never be committed.
		}(batch)
		select { // the store goroutine owns the old one
		case batch = <-spare:
		default:
			batch = make([]result, 0, p.cfg.BatchSize)
		}
	}
}

// observeDecided observes the latencies of stream decisions as the output
// stage takes them, on its one goroutine: observed on the shards, the
// histograms' counters moved between the cores with every decision (the
// three observations take 17 to 19 times as long from two goroutines at
// once as from one: BenchmarkDecisionObservations), and a shard's time is
// the pipeline's scarcest.
func (p *Pipeline) observeDecided(taken []result) {
	for i := range taken {
		r := &taken[i]
		if !r.timed {
			continue
		}
		if !r.msg.Time.IsZero() {
			p.m.KafkaToDecision.Observe(r.d.DecidedAt.Sub(r.msg.Time).Seconds())
		}
		p.stages[stageQueue].Observe(r.queued.Seconds())
		p.stages[stageScore].Observe(r.d.Latency.Seconds())
	}
}

// finish marks a durable batch's messages done and frees their slots.
func (p *Pipeline) finish(batch []result) {
	for _, r := range batch {
		if r.part == nil { // decided through the API: no offset, a decide token
			<-p.decides
			continue
		}
		r.part.finish(r.ticket)
		<-p.slots
		p.m.InFlight.Dec()
		if r.d != nil {
			p.stages[stageOutput].Observe(time.Since(r.d.DecidedAt).Seconds())
		}
	}
}

// batchOutputs is what a batch writes besides its Kafka messages.
type batchOutputs struct {
	decisions []*engine.Decision
}

// publishBatch writes a batch's Kafka outputs (decisions, alerts, lock
// commands, dead letters), retried until they succeed or ctx ends, then
// hands its notifications to the notifier in order. The outputs are encoded
// into arena, reset first: the last batch's publish returned, so nothing
// holds what it wrote there (see outputArena).
func (p *Pipeline) publishBatch(ctx context.Context, batch []result, arena *outputArena) (batchOutputs, error) {
	p.m.BatchSize.Observe(float64(len(batch)))
	arena.reset()
	var out batchOutputs
	msgs := arena.msgs[:0]
	defer func() { arena.msgs = msgs }() // grown, it serves the next batch
	var notes []notify.Notification
	now := time.Now()
	for _, r := range batch {
		switch {
		case r.err != nil:
			msgs = append(msgs, p.cfg.Topics.deadLetter(r.msg, r.err, now, p.cfg.MaxOutputBytes))
		case r.d.Duplicate:
			// Decided before (the decide API, or a replay after a restart
			// that restored state): its outputs already exist.
		default:
			out.decisions = append(out.decisions, r.d)
			first := len(msgs)
			var err error
			if msgs, err = p.cfg.Topics.outputMessages(msgs, r.d, arena); err != nil {
				return out, fmt.Errorf("streams: encode decision %s: %w", r.d.EventID, err)
			}
			if p.cfg.Notify != nil {
				notes = appendNotes(notes, r.d, msgs[first+1:])
			}
			if p.cfg.PublishAPIEvents && r.d.Source.Topic == APISource.Topic {
				msgs = append(msgs, p.cfg.Topics.inputMessage(r.d))
			}
		}
	}
	start := time.Now()
	if err := p.publish(ctx, msgs); err != nil {
		return out, err
	}
	p.m.SinkSeconds.WithLabelValues("kafka").Observe(time.Since(start).Seconds())
	// Subscribers hear of an alert once it is on Kafka (the durable record
	// consumers replay from), in batch order, so per account in order.
	p.notify(notes...)
	return out, nil
}

// storeBatch writes a batch's decisions to the store, retried until it
// succeeds or ctx ends, and counts the batch's results.
func (p *Pipeline) storeBatch(ctx context.Context, batch []result, out batchOutputs) error {
	if len(out.decisions) > 0 && p.store != nil {
		start := time.Now()
		if err := p.store.WriteDecisions(ctx, out.decisions); err != nil {
			if ctx.Err() == nil {
				// The store retries everything that may pass; this never will.
				p.m.Errors.WithLabelValues("clickhouse").Inc()
				p.health.storeFailed("write", err, p.now())
				p.log.Error("the store refused a batch; its offsets stay uncommitted", "decisions", len(out.decisions), "err", err)
			}
			return err
		}
		p.health.storeSucceeded(p.now())
		p.m.SinkSeconds.WithLabelValues("clickhouse").Observe(time.Since(start).Seconds())
	}
	for _, r := range batch {
		switch {
		case r.err != nil:
			p.m.DeadLettered.WithLabelValues(r.msg.Topic).Inc()
			p.log.Info("message sent to the dead-letter topic", "topic", r.msg.Topic,
				"partition", r.msg.Partition, "offset", r.msg.Offset, "reason", r.err.Error())
		case r.d.Duplicate && isFromDecide(r.msg):
			p.m.DecideReadBack.Inc()
		case r.d.Duplicate:
			p.m.Duplicates.Inc()
		default:
			p.m.Decided.WithLabelValues(r.d.Action.String()).Inc()
			for _, h := range r.d.Matched {
				p.m.RuleHits.WithLabelValues(h.RuleID, h.Action.String(), "active").Inc()
			}
			for _, h := range r.d.Shadow {
				p.m.RuleHits.WithLabelValues(h.RuleID, h.Action.String(), "shadow").Inc()
			}
			if r.d.Candidate.Version != "" {
				p.m.Candidate.WithLabelValues(r.d.Action.String(), r.d.Candidate.Action.String()).Inc()
			}
			if len(r.d.Errored) > 0 {
				p.m.Errors.WithLabelValues("rules").Add(float64(len(r.d.Errored)))
				for _, h := range r.d.Errored {
					p.m.RuleErrors.WithLabelValues(h.RuleID).Inc()
				}
			}
			for _, reason := range r.d.LateFor { // once per group the event was late for
				p.m.Late.WithLabelValues(r.d.Source.Topic, reason).Inc()
			}
		}
	}
	return nil
}

// notify hands durable notifications to the notifier, in order.
func (p *Pipeline) notify(notes ...notify.Notification) {
	if p.cfg.Notify == nil || len(notes) == 0 {
		return
	}
	p.pubMu.Lock()
	defer p.pubMu.Unlock()
	for _, n := range notes {
		p.cfg.Notify.Publish(n)
	}
}

// publish writes msgs to Kafka and returns nil once every one of them is
// written or parked, or an error when ctx ends first.
//
// A failure is either transient or a refusal. A transient failure (broker
// unreachable, no leader for a partition, a timeout: anything refused does
// not name) is retried with backoff for as long as it lasts: the output
// stage waits, offsets stay uncommitted, and intake slows until it stops
// (backpressure); each failed round counts in
// riskd_errors_total{stage="kafka_out"}. A refusal (see refused) would
// come back on every attempt, so a refused message is sent at most
// MaxPublishAttempts times, the retries alone (p.alone) so that a broker
// refusing a whole batch cannot park messages it would take on their own;
// then it is parked: replaced by a small dead letter on the DLQ topic
// (parkedLetter) and counted in riskd_parked_outputs_total{topic}. A
// message over MaxOutputBytes is parked without being sent. A parked
// letter refused MaxPublishAttempts times in turn is dropped, logged and
// counted in riskd_dropped_outputs_total{topic}: no message is retried
// forever for what it is.
func (p *Pipeline) publish(ctx context.Context, msgs []kafka.Message) error {
	pp := pendingLists.Get().(*[]outgoing)
	defer func() { *pp = clearTo0(*pp); pendingLists.Put(pp) }()
	pending := (*pp)[:0]
	for _, m := range msgs {
		if n := outputBytes(m); n > p.cfg.MaxOutputBytes {
			err := fmt.Errorf("%w: %d bytes, the bound is %d", errOutputTooLarge, n, p.cfg.MaxOutputBytes)
			p.log.Warn("output over the size bound; parked on the dead-letter topic", "topic", m.Topic, "bytes", n)
			pending = append(pending, p.park(m, err))
			continue
		}
		pending = append(pending, outgoing{msg: m})
	}
	*pp = pending // grown, it serves the next call
	for round := 1; len(pending) > 0; round++ {
		errs := p.write(ctx, pending)
		if ctx.Err() != nil {
			return fmt.Errorf("streams: publish: %w", ctx.Err())
		}
		var failed, transient int
		var lastErr error
		next := pending[:0] // written over as it is read: next[j] with j <= i
		for i, o := range pending {
			err := errs[i]
			switch {
			case err == nil:
				if o.parkedFrom != "" {
					p.m.Parked.WithLabelValues(o.parkedFrom).Inc()
				}
				continue
			case !refused(err):
				transient++
				next = append(next, o)
			case o.refusals+1 < p.cfg.MaxPublishAttempts:
				o.refusals++
				next = append(next, o)
			case o.parkedFrom != "":
				p.m.Dropped.WithLabelValues(o.parkedFrom).Inc()
				h := headerMap(o.msg)
				p.log.Error("the dead letter of a parked output was refused too; dropped",
					"topic", o.parkedFrom, "event_id", h[HeaderEventID], "original_bytes", h[HeaderOriginalBytes],
					"original_sha256", h[HeaderOriginalSHA256], "err", err)
			default:
				p.log.Warn("output refused; parked on the dead-letter topic", "topic", o.msg.Topic,
					"bytes", outputBytes(o.msg), "attempts", o.refusals+1, "err", err)
				next = append(next, p.park(o.msg, fmt.Errorf("refused %d times: %w", o.refusals+1, err)))
			}
			failed++
			lastErr = err
		}
		pending = next
		if failed == 0 {
			continue
		}
		p.m.Errors.WithLabelValues("kafka_out").Inc()
		if len(pending) == 0 {
			continue
		}
		p.log.Warn("publishing outputs failed; retrying", "messages", len(pending), "transient", transient,
			"attempt", round, "err", lastErr)
		// Retry at once when all that is left are new parked letters.
		if transient > 0 || slices.ContainsFunc(pending, func(o outgoing) bool { return o.refusals > 0 }) {
			sleepCtx(ctx, backoff.Delay(p.cfg.RetryMin, p.cfg.RetryMax, round))
		}
	}
	return nil
}

// errOutputTooLarge is the refusal a parked output over MaxOutputBytes names.
var errOutputTooLarge = errors.New("output message over output.max_output_bytes")

// outgoing is a message publish is writing.
type outgoing struct {
	msg kafka.Message
	// refusals counts the attempts at msg that were refused.
	refusals int
	// parkedFrom is the topic of the output msg replaces when msg is a
	// parked letter, "" otherwise.
	parkedFrom string
}

// park replaces output m, refused for reason, with its parked letter.
func (p *Pipeline) park(m kafka.Message, reason error) outgoing {
	return outgoing{msg: p.cfg.Topics.parkedLetter(m, reason, time.Now(), p.cfg.MaxOutputBytes), parkedFrom: m.Topic}
}

// refused reports whether err means the writer or the broker refused a
// message for what it is, so that sending it again is likely to fail the
// same way: any Kafka error code that is not retriable
// (MESSAGE_TOO_LARGE, which the writer also gives a message over
// writerBatchBytes before sending it, INVALID_RECORD, an authorization
// failure...). CORRUPT_MESSAGE is retriable for Kafka, since a transfer
// can garble a batch, but a message found corrupt MaxPublishAttempts
// times in a row is taken as refused too. Everything else (network
// errors, timeouts, retriable codes such as LEADER_NOT_AVAILABLE, the
// writer giving up on them after outputDeliveryTimeout) is transient.
// This is the one place that decides which Kafka output errors are
// retried without bound.
func refused(err error) bool {
	var code *kerr.Error
	if errors.As(err, &code) {
		return code == kerr.CorruptMessage || !code.Retriable
	}
	return false
}

// write makes one attempt at each pending message and returns each one's
// error (nil: written). Messages refused before are written through
// p.alone, one topic at a time and one message per produce request, so
// neither another message of their batch nor another topic's metadata
// failure is taken for their own refusal; the rest go out at once.
func (p *Pipeline) write(ctx context.Context, pending []outgoing) []error {
	errs := make([]error, len(pending))
	var now []int
	var topics []string
	alone := map[string][]int{}
	for i, o := range pending {
		if o.refusals == 0 {
			now = append(now, i)
			continue
		}
		if _, ok := alone[o.msg.Topic]; !ok {
			topics = append(topics, o.msg.Topic)
		}
		alone[o.msg.Topic] = append(alone[o.msg.Topic], i)
	}
	p.out.write(ctx, pending, now, errs)
	for _, t := range topics {
		p.alone.write(ctx, pending, alone[t], errs)
	}
	return errs
}

// pendingLists holds publish's lists for the next call: an output
// batch's messages, 1.6 MB for 5,000 decisions, were made afresh for
// every batch.
var pendingLists = sync.Pool{New: func() any { return new([]outgoing) }}

// clearTo0 zeroes s's elements, so that a pooled list holds no message
// past its use, and returns it emptied.
func clearTo0[T any](s []T) []T {
	clear(s)
	return s[:0]
}

// headerMap is m's headers by key, the last of repeated ones winning.
func headerMap(m kafka.Message) map[string]string {
	h := make(map[string]string, len(m.Headers))
	for _, kv := range m.Headers {
		h[kv.Key] = string(kv.Value)
	}
	return h
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
