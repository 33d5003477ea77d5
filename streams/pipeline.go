package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/engine"
	"riskd/internal/backoff"
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
	// BatchSize and FlushInterval bound an output batch: it is written when
	// it has BatchSize results or is FlushInterval old, whichever is first.
	BatchSize     int
	FlushInterval time.Duration
	// CommitInterval is how often durable offsets are committed.
	CommitInterval time.Duration
	// MaxInFlight bounds fetched messages whose outputs are not durable;
	// a reader waits when it is reached (backpressure on the broker). It
	// should cover the batches being stored (StoreParallelism) plus one
	// filling; 0 means 4 batches plus one per parallel store.
	MaxInFlight int
	// StoreParallelism is how many batches may be writing to the store at
	// once; 0 means 3.
	StoreParallelism int
	// RetryMin and RetryMax bound the backoff between output retries.
	RetryMin, RetryMax time.Duration
	// DrainTimeout bounds the wait, on shutdown, for in-flight messages to
	// become durable; what is not durable then is not committed and is
	// read again on the next start.
	DrainTimeout time.Duration
	Logger       *slog.Logger
	// Notify, if set, receives user alerts and lock commands once they are
	// durable (webhooks, the live stream). It must not block.
	Notify Notifier
}

// Notifier fans alerts out to subscribers (streams/notify).
type Notifier interface {
	Publish(notify.Notification)
}

func (c Config) withDefaults() Config {
	if c.Group == "" {
		c.Group = "riskd"
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
	if c.Logger == nil {
		c.Logger = slog.Default()
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
	cfg    Config
	eng    *engine.Engine
	store  DecisionStore
	out    *kafka.Writer
	m      *Metrics
	log    *slog.Logger
	slots  chan struct{} // one token per in-flight message
	result chan result
	// outDone is closed when the output stage has stopped, so callbacks
	// never block on a stage that is gone.
	outDone chan struct{}
	// pubMu serialises notifications from the output stage and the API, so
	// one account's notifications reach the notifier in order.
	pubMu sync.Mutex
}

// result is one message's outcome, on its way to the output stage.
type result struct {
	d      *engine.Decision
	err    error
	msg    kafka.Message // the input, for the DLQ
	part   *partitionOffsets
	ticket uint64
}

// New builds a Pipeline over a running engine.
func New(cfg Config, eng *engine.Engine, store DecisionStore, m *Metrics) *Pipeline {
	cfg = cfg.withDefaults()
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Pipeline{
		cfg:   cfg,
		eng:   eng,
		store: store,
		out: &kafka.Writer{
			Addr:         kafka.TCP(cfg.Brokers...),
			Balancer:     &kafka.Hash{}, // by account: one account's outputs stay in order
			RequiredAcks: kafka.RequireAll,
			BatchSize:    cfg.BatchSize,
			// Brokers refuse requests over message.max.bytes (1 MiB by
			// default); a larger batch would be retried forever.
			BatchBytes:   1_000_000,
			BatchTimeout: time.Millisecond, // WriteMessages is called with whole batches
			MaxAttempts:  3,
		},
		m:       m,
		log:     cfg.Logger,
		slots:   make(chan struct{}, cfg.MaxInFlight),
		result:  make(chan result, cfg.BatchSize),
		outDone: make(chan struct{}),
	}
}

// Run consumes until ctx ends, then stops fetching, waits (up to
// DrainTimeout) for what was fetched to become durable, commits, and
// returns. The engine must keep running until Run returns.
func (p *Pipeline) Run(ctx context.Context) error {
	defer p.out.Close()
	// The output stage outlives intake so a shutdown can drain; it ends when
	// the drain is over or, on a hard stop, when DrainTimeout runs out.
	outCtx, stopOut := context.WithCancel(context.WithoutCancel(ctx))
	defer stopOut()
	var outWG sync.WaitGroup
	outWG.Add(1)
	go func() {
		defer outWG.Done()
		defer close(p.outDone)
		p.runOutput(outCtx)
	}()
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
		Logger:            kafka.LoggerFunc(func(string, ...any) {}),
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
	if n := len(p.slots); n > 0 {
		return fmt.Errorf("%w: %d messages", ErrNotDrained, n)
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
	type assigned struct {
		topic     string
		partition int
		offsets   *partitionOffsets
		reader    *kafka.Reader
	}
	var parts []*assigned
	for topic, as := range gen.Assignments {
		for _, a := range as {
			start := a.Offset
			if start < 0 {
				start = kafka.FirstOffset
			}
			r := kafka.NewReader(kafka.ReaderConfig{
				Brokers:   p.cfg.Brokers,
				Topic:     topic,
				Partition: a.ID,
				MinBytes:  1,
				MaxBytes:  8 << 20,
				MaxWait:   100 * time.Millisecond,
			})
			if err := r.SetOffset(start); err != nil {
				p.log.Error("set offset", "topic", topic, "partition", a.ID, "err", err)
			}
			parts = append(parts, &assigned{topic: topic, partition: a.ID, offsets: newPartitionOffsets(), reader: r})
		}
	}
	p.log.Info("consumer group generation", "generation", gen.ID, "member", gen.MemberID, "partitions", len(parts))

	genEnded := make(chan struct{})
	gen.Start(func(genCtx context.Context) {
		<-genCtx.Done()
		close(genEnded)
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
	for _, a := range parts {
		readers.Add(1)
		go func() {
			defer readers.Done()
			p.readPartition(readCtx, outCtx, a.reader, a.offsets)
		}()
	}

	var lastWarn time.Time
	var failed int
	commit := func() {
		offsets := map[string]map[int]int64{}
		for _, a := range parts {
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
		for _, a := range parts {
			if next, ok := offsets[a.topic][a.partition]; ok {
				p.m.Committed.WithLabelValues(a.topic, itoa(a.partition)).Set(float64(next))
			}
		}
	}
	tick := time.NewTicker(p.cfg.CommitInterval)
	defer tick.Stop()
	for readCtx.Err() == nil {
		select {
		case <-tick.C:
			commit()
			for _, a := range parts {
				p.m.Lag.WithLabelValues(a.topic, itoa(a.partition)).Set(float64(a.reader.Stats().Lag))
			}
		case <-readCtx.Done():
		}
	}
	readers.Wait()
	// Drain: wait until every fetched message is durable (or the output
	// stage gives up), then make the last commit of this generation.
	for outCtx.Err() == nil && inFlight(parts, func(a *assigned) *partitionOffsets { return a.offsets }) > 0 {
		select {
		case <-tick.C:
			commit()
		case <-outCtx.Done():
		}
	}
	commit()
	for _, a := range parts {
		a.reader.Close()
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

// readPartition fetches one partition in order and submits each message to
// the engine. It waits for an in-flight slot first, so a slow output stage
// slows fetching instead of piling up memory.
func (p *Pipeline) readPartition(ctx, outCtx context.Context, r *kafka.Reader, offsets *partitionOffsets) {
	consumed := p.m.Consumed.WithLabelValues(r.Config().Topic) // one lookup, not one per message
	for {
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		m, err := r.FetchMessage(ctx)
		if err != nil {
			<-p.slots
			if ctx.Err() != nil {
				return
			}
			p.m.Errors.WithLabelValues("fetch").Inc()
			p.log.Warn("fetch failed; retrying", "topic", r.Config().Topic, "partition", r.Config().Partition, "err", err)
			sleepCtx(ctx, p.cfg.RetryMin)
			continue
		}
		consumed.Inc()
		p.m.InFlight.Inc()
		ticket := offsets.add(m.Offset)
		msg := m
		// Submit with the output stage's context: a message already fetched
		// is handed over even while intake is stopping, so the drain covers it.
		err = p.eng.Submit(outCtx, engine.Message{
			Value:  m.Value,
			Key:    m.Key,
			Source: engine.Source{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset},
			Done: func(d *engine.Decision, err error) {
				if err == nil && !msg.Time.IsZero() {
					p.m.KafkaToDecision.Observe(d.DecidedAt.Sub(msg.Time).Seconds())
				}
				select {
				case p.result <- result{d: d, err: err, msg: msg, part: offsets, ticket: ticket}:
				case <-outCtx.Done():
				}
			},
		})
		if err != nil {
			// Not accepted: never finished, so never committed past; the
			// message is read again after a restart.
			p.log.Warn("engine refused a message; it stays uncommitted", "err", err)
			return
		}
	}
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
	batch := make([]result, 0, p.cfg.BatchSize)
	tick := time.NewTicker(p.cfg.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case r := <-p.result:
			batch = append(batch, r)
			if len(batch) < p.cfg.BatchSize {
				continue
			}
		case <-tick.C:
			if len(batch) == 0 {
				continue
			}
		case <-ctx.Done():
			return
		}
		out, err := p.publishBatch(ctx, batch)
		if err != nil {
			return // only when ctx ended: these offsets stay uncommitted
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		stores.Add(1)
		go func(batch []result) {
			defer stores.Done()
			defer func() { <-slots }()
			if err := p.storeBatch(ctx, batch, out); err != nil {
				return
			}
			p.finish(batch)
		}(batch)
		batch = make([]result, 0, p.cfg.BatchSize) // the store goroutine owns the old one
	}
}

// finish marks a durable batch's messages done and frees their slots.
func (p *Pipeline) finish(batch []result) {
	for _, r := range batch {
		if r.part == nil {
			continue // decided through the API: no offset, no slot
		}
		r.part.finish(r.ticket)
		<-p.slots
		p.m.InFlight.Dec()
	}
}

// batchOutputs is what a batch writes besides its Kafka messages.
type batchOutputs struct {
	decisions []*engine.Decision
}

// publishBatch writes a batch's Kafka outputs (decisions, alerts, lock
// commands, dead letters), retried until they succeed or ctx ends, then
// hands its notifications to the notifier in order.
func (p *Pipeline) publishBatch(ctx context.Context, batch []result) (batchOutputs, error) {
	p.m.BatchSize.Observe(float64(len(batch)))
	var out batchOutputs
	msgs := make([]kafka.Message, 0, len(batch)+len(batch)/8)
	var notes []notify.Notification
	now := time.Now()
	for _, r := range batch {
		switch {
		case r.err != nil:
			msgs = append(msgs, p.cfg.Topics.deadLetter(r.msg, r.err, now))
		case r.d.Duplicate:
			// Decided before (the decide API, or a replay after a restart
			// that restored state): its outputs already exist.
		default:
			out.decisions = append(out.decisions, r.d)
			first := len(msgs)
			var err error
			if msgs, err = p.cfg.Topics.outputMessages(msgs, r.d); err != nil {
				return out, fmt.Errorf("streams: encode decision %s: %w", r.d.EventID, err)
			}
			if p.cfg.Notify != nil {
				notes = appendNotes(notes, r.d, msgs[first+1:])
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
			return err
		}
		p.m.SinkSeconds.WithLabelValues("clickhouse").Observe(time.Since(start).Seconds())
	}
	for _, r := range batch {
		switch {
		case r.err != nil:
			p.m.DeadLettered.WithLabelValues(r.msg.Topic).Inc()
			p.log.Info("message sent to the dead-letter topic", "topic", r.msg.Topic,
				"partition", r.msg.Partition, "offset", r.msg.Offset, "reason", r.err.Error())
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

// publish writes msgs to Kafka, retrying the ones that failed with backoff
// until all are written or ctx ends.
func (p *Pipeline) publish(ctx context.Context, msgs []kafka.Message) error {
	for attempt := 0; len(msgs) > 0; attempt++ {
		err := p.out.WriteMessages(ctx, msgs...)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("streams: publish: %w", ctx.Err())
		}
		p.m.Errors.WithLabelValues("kafka_out").Inc()
		var perMsg kafka.WriteErrors
		if errors.As(err, &perMsg) && len(perMsg) == len(msgs) {
			failed := msgs[:0:0]
			for i, e := range perMsg {
				if e != nil {
					failed = append(failed, msgs[i])
				}
			}
			msgs = failed
		}
		p.log.Warn("publishing outputs failed; retrying", "messages", len(msgs), "attempt", attempt+1, "err", err)
		sleepCtx(ctx, backoff.Delay(p.cfg.RetryMin, p.cfg.RetryMax, attempt+1))
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
