package streams

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"riskd/rules"
)

// The readiness conditions, in the order Ready reports them. Each is also
// the condition label of riskd_ready_condition.
const (
	// CondKafka: Run is consuming in a consumer-group generation with at
	// least one partition assigned, and every assigned partition has a
	// running reader.
	CondKafka = "kafka"
	// CondEngine: the engine (its state restored before it started) is
	// running, as RunEngine reports.
	CondEngine = "engine"
	// CondClickHouse: the store's last outcome, a write or a ping, was a
	// success, and one came within storeStale (see Config.StoreCheckInterval).
	CondClickHouse = "clickhouse"
	// CondOutput: no output batch has waited longer than Config.StallTimeout
	// to become durable (published to Kafka and stored).
	CondOutput = "output"
	// CondRules: a rule set is installed in Config.Rules.
	CondRules = "rules"
)

// Conditions lists every readiness condition in report order.
var Conditions = []string{CondKafka, CondEngine, CondClickHouse, CondOutput, CondRules}

// Condition is one readiness check and its state now.
type Condition struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Detail says what was found, in a sentence an operator can act on.
	Detail string `json:"detail"`
}

// String is "name: detail", the form of Readiness.Failing.
func (c Condition) String() string { return c.Name + ": " + c.Detail }

// Readiness is the answer to "should this instance get work": true only
// when every condition holds. It marshals to the body of /readyz.
type Readiness struct {
	Ready bool `json:"ready"`
	// Failing are the conditions that do not hold, as "name: detail"; empty
	// (not null) when ready.
	Failing    []string    `json:"failing"`
	Conditions []Condition `json:"conditions"`
	// Partitions are the input partitions assigned in the running
	// generation, with where each stands and its restore progress; empty
	// (not null) between generations.
	Partitions []PartitionStatus `json:"partitions"`
}

// Ready reports whether the pipeline is consuming with its partitions
// assigned, the engine is running, the store answers, the output stage is
// moving and a rule set is loaded, with every condition's state. It is
// cheap (a few locks, no I/O): /readyz and each metrics scrape call it.
func (p *Pipeline) Ready() Readiness {
	return p.health.snapshot(p.now(), p.cfg, p.engineUp.Load()).evaluate()
}

// RunEngine runs the pipeline's engine until ctx ends (engine.Run), and
// has Ready report the engine running meanwhile. The engine's state is
// restored before it is built, so running means restored.
func (p *Pipeline) RunEngine(ctx context.Context) error {
	p.engineUp.Store(true)
	defer p.engineUp.Store(false)
	return p.eng.Run(ctx)
}

// health is what the pipeline's goroutines report for Ready: the group
// membership, the store's last outcomes and the batches on their way to
// being durable. One mutex guards it; it is taken a few times per batch
// and per generation, never per message.
type health struct {
	mu sync.Mutex
	// running is set while Run runs; stopping once its context ended.
	running, stopping bool
	joinErr           error // the last failure to join the group, cleared by a generation
	joinErrAt         time.Time
	gen               *generation // nil between generations
	// assigned is signalled (without blocking) when gen changes, so the
	// lag monitor asks about the new partitions at once.
	assigned chan struct{}

	store storeHealth

	batches   map[uint64]*pendingBatch
	nextBatch uint64
}

// generation is one consumer-group generation's assignment.
type generation struct {
	id    int32
	parts []partitionState
}

type partitionState struct {
	topic     string
	partition int
	reading   bool               // its reader goroutine runs
	progress  *partitionProgress // where the merge stands; nil outside a generation's inputs
}

// partitionProgress is where an assigned partition's merge input stands:
// the merger stores next after each message it submits, Ready reads it.
type partitionProgress struct {
	next  atomic.Int64 // the offset of the next message to submit (kafka.FirstOffset: the log start)
	until int64        // messages below it are decided again to rebuild the state; -1: none
}

// PartitionStatus is one assigned partition as /readyz shows it.
type PartitionStatus struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	// Next is the offset of the next message to decide (-2: the start
	// of the log, nothing read yet).
	Next int64 `json:"next"`
	// Restoring is set while the messages before RestoreUntil, decided
	// before a restart or by the partition's previous owner, are decided
	// again without outputs to rebuild the state (Config.Resume), and
	// RestoreLeft says how many are left (-1: unknown until the first is
	// read).
	Restoring    bool  `json:"restoring"`
	RestoreUntil int64 `json:"restore_until,omitempty"`
	RestoreLeft  int64 `json:"restore_left,omitempty"`
}

// status is ps as /readyz shows it.
func (ps partitionState) status() PartitionStatus {
	st := PartitionStatus{Topic: ps.topic, Partition: ps.partition, Next: -2}
	if ps.progress == nil {
		return st
	}
	st.Next = ps.progress.next.Load()
	if until := ps.progress.until; until >= 0 && st.Next < until {
		st.Restoring, st.RestoreUntil, st.RestoreLeft = true, until, -1
		if st.Next >= 0 {
			st.RestoreLeft = until - st.Next
		}
	}
	return st
}

func (ps partitionState) String() string { return ps.topic + "/" + itoa(ps.partition) }

// storeHealth is the store's last outcomes (writes and pings).
type storeHealth struct {
	lastOK     time.Time
	lastFail   time.Time
	failOp     string // "write" or "ping"
	failErr    error
	canPing    bool // the store has a Ping; otherwise only writes tell
	configured bool // there is a store at all
}

// pendingBatch is an output batch from the moment it is cut until its
// results are durable.
type pendingBatch struct {
	cut   time.Time
	size  int
	phase string // what it waits for, said in the output condition
}

// The phases of a pendingBatch.
const (
	phasePublish   = "publishing to Kafka"
	phaseStoreSlot = "waiting for a store slot"
	phaseStore     = "writing to ClickHouse"
)

func newHealth(store DecisionStore) *health {
	_, canPing := store.(pinger)
	return &health{
		assigned: make(chan struct{}, 1),
		store:    storeHealth{configured: store != nil, canPing: canPing},
		batches:  map[uint64]*pendingBatch{},
	}
}

func (h *health) setRunning(running bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.running, h.stopping = running, false
	if !running {
		h.gen = nil
		clear(h.batches) // what the drain left is abandoned
	}
}

func (h *health) setStopping() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopping = true
}

func (h *health) joinFailed(err error, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.joinErr, h.joinErrAt = err, at
}

// startGeneration records a generation's assignment (no reader running
// yet); endGeneration clears it.
func (h *health) startGeneration(id int32, parts []partitionState) {
	h.mu.Lock()
	h.gen = &generation{id: id, parts: parts}
	h.joinErr = nil
	h.mu.Unlock()
	h.signalAssigned()
}

func (h *health) endGeneration() {
	h.mu.Lock()
	h.gen = nil
	h.mu.Unlock()
	h.signalAssigned()
}

func (h *health) signalAssigned() {
	select {
	case h.assigned <- struct{}{}:
	default: // one is pending already
	}
}

// setReading marks partition i of generation id as having (or no longer
// having) a running reader.
func (h *health) setReading(id int32, i int, reading bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gen != nil && h.gen.id == id && i < len(h.gen.parts) {
		h.gen.parts[i].reading = reading
	}
}

// assignment is the partitions of the current generation, nil between
// generations.
func (h *health) assignment() []partitionState {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gen == nil {
		return nil
	}
	return slices.Clone(h.gen.parts)
}

func (h *health) storeSucceeded(at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if at.After(h.store.lastOK) {
		h.store.lastOK = at
	}
}

func (h *health) storeFailed(op string, err error, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.store.lastFail, h.store.failOp, h.store.failErr = at, op, err
}

// lastStoreOK is when the store last succeeded (zero: never).
func (h *health) lastStoreOK() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.store.lastOK
}

// batchCut records a batch of size results cut at now and returns its id
// for batchPhase and batchDone.
func (h *health) batchCut(size int, now time.Time) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	id := h.nextBatch
	h.nextBatch++
	h.batches[id] = &pendingBatch{cut: now, size: size, phase: phasePublish}
	return id
}

func (h *health) batchPhase(id uint64, phase string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if b := h.batches[id]; b != nil {
		b.phase = phase
	}
}

// batchDone forgets a batch: durable, or abandoned on shutdown.
func (h *health) batchDone(id uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.batches, id)
}

// readySnapshot is everything Ready judges, copied out under the lock so
// that evaluate is a pure function (and tested as one).
type readySnapshot struct {
	now               time.Time
	group             string
	running, stopping bool
	joinErr           error
	joinErrAt         time.Time
	gen               *generation
	engine            bool
	store             storeHealth
	storeStale        time.Duration
	oldest            *pendingBatch // the longest-waiting batch, nil if none
	stallAfter        time.Duration
	rulesHolder       bool
	rules             *rules.RuleSet
}

func (h *health) snapshot(now time.Time, cfg Config, engine bool) readySnapshot {
	s := readySnapshot{now: now, group: cfg.Group, engine: engine, storeStale: storeStale(cfg),
		stallAfter: cfg.StallTimeout, rulesHolder: cfg.Rules != nil}
	if cfg.Rules != nil {
		s.rules = cfg.Rules.Load()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s.running, s.stopping, s.joinErr, s.joinErrAt, s.store = h.running, h.stopping, h.joinErr, h.joinErrAt, h.store
	if h.gen != nil {
		g := *h.gen
		g.parts = slices.Clone(g.parts)
		s.gen = &g
	}
	for _, b := range h.batches {
		if s.oldest == nil || b.cut.Before(s.oldest.cut) {
			c := *b
			s.oldest = &c
		}
	}
	return s
}

// storeStale is how long without a successful write or ping makes the
// store condition fail: three check intervals, so that one slow ping
// (bounded by the interval) is not enough.
func storeStale(cfg Config) time.Duration { return 3 * cfg.StoreCheckInterval }

// evaluate judges every condition.
func (s readySnapshot) evaluate() Readiness {
	conds := []Condition{s.kafka(), s.engineCond(), s.clickhouse(), s.output(), s.rulesCond()}
	r := Readiness{Ready: true, Failing: []string{}, Conditions: conds, Partitions: []PartitionStatus{}}
	if s.gen != nil {
		for _, ps := range s.gen.parts {
			r.Partitions = append(r.Partitions, ps.status())
		}
	}
	for _, c := range conds {
		if !c.OK {
			r.Ready = false
			r.Failing = append(r.Failing, c.String())
		}
	}
	return r
}

func (s readySnapshot) kafka() Condition {
	c := Condition{Name: CondKafka}
	switch {
	case !s.running:
		c.Detail = "not consuming: the pipeline is not running"
	case s.stopping:
		c.Detail = "not consuming: shutting down"
	case s.gen == nil && s.joinErr != nil:
		c.Detail = fmt.Sprintf("not in a consumer group generation: joining group %q failed %s ago: %v",
			s.group, ago(s.now, s.joinErrAt), s.joinErr)
	case s.gen == nil:
		c.Detail = fmt.Sprintf("not in a consumer group generation: joining group %q", s.group)
	case len(s.gen.parts) == 0:
		c.Detail = fmt.Sprintf("no partitions assigned (group %q, generation %d): the other members hold them all", s.group, s.gen.id)
	default:
		var idle []string
		for _, ps := range s.gen.parts {
			if !ps.reading {
				idle = append(idle, ps.String())
			}
		}
		if len(idle) > 0 {
			c.Detail = fmt.Sprintf("%d of %d assigned partitions have no reader: %s", len(idle), len(s.gen.parts), strings.Join(idle, ", "))
			break
		}
		c.OK = true
		c.Detail = fmt.Sprintf("consuming %d partitions (group %q, generation %d)", len(s.gen.parts), s.group, s.gen.id)
		restoring, left := 0, int64(0)
		for _, ps := range s.gen.parts {
			if st := ps.status(); st.Restoring {
				restoring++
				left += max(st.RestoreLeft, 0)
			}
		}
		if restoring > 0 {
			c.Detail += fmt.Sprintf("; restoring %d of them, %d messages left to decide again", restoring, left)
		}
	}
	return c
}

func (s readySnapshot) engineCond() Condition {
	if s.engine {
		return Condition{Name: CondEngine, OK: true, Detail: "running"}
	}
	return Condition{Name: CondEngine, Detail: "not running"}
}

func (s readySnapshot) clickhouse() Condition {
	c := Condition{Name: CondClickHouse}
	st := s.store
	switch {
	case !st.configured:
		c.OK, c.Detail = true, "no store configured"
	case !st.lastFail.IsZero() && !st.lastFail.Before(st.lastOK):
		c.Detail = fmt.Sprintf("last %s failed %s ago: %v", st.failOp, ago(s.now, st.lastFail), st.failErr)
		if !st.lastOK.IsZero() {
			c.Detail += fmt.Sprintf(" (last success %s ago)", ago(s.now, st.lastOK))
		}
	case st.lastOK.IsZero() && st.canPing:
		c.Detail = "not checked yet"
	case st.lastOK.IsZero():
		c.OK, c.Detail = true, "no write yet"
	case st.canPing && s.now.Sub(st.lastOK) > s.storeStale:
		c.Detail = fmt.Sprintf("no write or ping has succeeded for %s (bound %s)", ago(s.now, st.lastOK), s.storeStale)
	default:
		c.OK, c.Detail = true, fmt.Sprintf("last write or ping succeeded %s ago", ago(s.now, st.lastOK))
	}
	return c
}

func (s readySnapshot) output() Condition {
	c := Condition{Name: CondOutput}
	switch {
	case s.oldest == nil:
		c.OK, c.Detail = true, "no batch waiting"
	case s.now.Sub(s.oldest.cut) > s.stallAfter:
		c.Detail = fmt.Sprintf("stalled: a batch of %d results has waited %s to become durable (%s); the bound is %s",
			s.oldest.size, ago(s.now, s.oldest.cut), s.oldest.phase, s.stallAfter)
	default:
		c.OK, c.Detail = true, fmt.Sprintf("oldest batch waiting %s (%s); the bound is %s", ago(s.now, s.oldest.cut), s.oldest.phase, s.stallAfter)
	}
	return c
}

func (s readySnapshot) rulesCond() Condition {
	switch {
	case !s.rulesHolder:
		return Condition{Name: CondRules, Detail: "no rule holder configured (streams.Config.Rules)"}
	case s.rules == nil:
		return Condition{Name: CondRules, Detail: "no rule set loaded"}
	}
	return Condition{Name: CondRules, OK: true, Detail: fmt.Sprintf("rule set %s with %d rules", s.rules.Version, len(s.rules.Rules))}
}

// ago is how long before now t was, rounded for reading: to the
// millisecond under a second, else to a tenth of a second.
func ago(now, t time.Time) time.Duration {
	d := now.Sub(t)
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

// pinger is a DecisionStore that can check it is reachable without
// writing (chstore.Store). Ready relies on it while no write succeeds.
type pinger interface {
	Ping(ctx context.Context) error
}

// runStoreCheck keeps the clickhouse condition current while no write
// does: every StoreCheckInterval in which no write succeeded it pings the
// store (each ping bounded by the interval), and records the outcome. A
// failed ping counts in riskd_errors_total{stage="clickhouse"}. Stores
// without a Ping are judged by their writes alone. It returns when ctx
// ends.
func (p *Pipeline) runStoreCheck(ctx context.Context) {
	pg, ok := p.store.(pinger)
	if !ok {
		return
	}
	tick := time.NewTicker(p.cfg.StoreCheckInterval)
	defer tick.Stop()
	var warn warnEvery
	for {
		if p.now().Sub(p.health.lastStoreOK()) >= p.cfg.StoreCheckInterval {
			pctx, cancel := context.WithTimeout(ctx, p.cfg.StoreCheckInterval)
			err := pg.Ping(pctx)
			cancel()
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				p.health.storeFailed("ping", err, p.now())
				p.m.Errors.WithLabelValues("clickhouse").Inc()
				if n, ok := warn.due(time.Now()); ok {
					p.log.Warn("ClickHouse does not answer; not ready until a write or ping succeeds", "failures", n, "err", err)
				}
			default:
				p.health.storeSucceeded(p.now())
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}
