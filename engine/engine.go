package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fastjson"

	"riskd/features"
	"riskd/internal/keyhash"
	"riskd/rules"
)

// ErrStopped is passed to Done, and returned by Submit, once the engine's
// context has ended.
var ErrStopped = errors.New("engine stopped")

// DefaultDedupeCapacity is Config.DedupeCapacity's default.
const DefaultDedupeCapacity = 100_000

// NoDedupe as Config.DedupeCapacity turns the duplicate memory off.
const NoDedupe = -1

// Config sets up an Engine.
type Config struct {
	// Shards is the number of shard goroutines; 0 means GOMAXPROCS.
	Shards int
	// QueueSize bounds each shard's queue. When a queue is full Submit
	// blocks, which slows the Kafka fetcher: backpressure, not loss.
	QueueSize int
	// DedupeCapacity is how many recent event ids each shard remembers
	// (at least this many, at most twice); NoDedupe remembers none, for a
	// replay whose input holds each event id once (a backtest of stored
	// events), where the memory would be pure cost.
	DedupeCapacity int
	// MaxEventBytes is the largest message accepted; 0 means event.DefaultMaxBytes.
	MaxEventBytes int
	// AlertThrottle is the shortest event-time interval between two alerts
	// of one rule to one account; the repeats inside it are throttled (see
	// Decision.ThrottledAlerts). 0 means DefaultAlertThrottle (10m);
	// negative turns throttling off, so every matching event alerts.
	AlertThrottle time.Duration
	// MaxFutureSkew is how far ahead of the wall clock (Now) an event's ts
	// may be. An event dated further ahead is refused before it touches
	// any state, with an *event.Error naming ts (see ErrFutureEvent): a
	// clock that far off cannot be trusted to place the event in the
	// windows, and refusing it, not clamping its ts, keeps the producer's
	// mistake visible on the dead-letter topic. Events dated in the past
	// are not refused (the windows' lateness rule applies to them). 0
	// means DefaultMaxFutureSkew (5m); negative turns the check off.
	MaxFutureSkew time.Duration
	// Now is the wall clock, for latency and decision times, lock expiry
	// and the future-skew check; nil means time.Now.
	Now func() time.Time
	// realClock: Now was nil, so a decision's latency can be read off
	// the monotonic clock alone (see Scorer.score).
	realClock bool
}

func (c Config) withDefaults() Config {
	if c.Shards <= 0 {
		c.Shards = runtime.GOMAXPROCS(0)
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 1024
	}
	if c.DedupeCapacity == 0 || c.DedupeCapacity < 0 && c.DedupeCapacity != NoDedupe {
		c.DedupeCapacity = DefaultDedupeCapacity
	}
	if c.AlertThrottle == 0 {
		c.AlertThrottle = DefaultAlertThrottle
	}
	if c.MaxFutureSkew == 0 {
		c.MaxFutureSkew = DefaultMaxFutureSkew
	}
	if c.Now == nil {
		c.Now, c.realClock = time.Now, true
	}
	return c
}

// Message is one event handed to the engine.
type Message struct {
	// Value is the raw event JSON. The caller must never change it after
	// Submit: the decision keeps it as its Raw, without a copy (Kafka's
	// and the decide API's messages are never written after they arrive).
	Value []byte
	// Key is the account id (the Kafka key); when empty the engine reads
	// account_id from Value to pick the shard.
	Key []byte
	// Source is where the message came from.
	Source Source
	// Urgent messages (the synchronous decide API) go ahead of the shard's
	// stream backlog, so a payment waiting for an answer is not queued
	// behind thousands of Kafka events, nor behind a stream message waiting
	// for its turn at the shared windows (see turnstile). Per-account order
	// across the two lanes is by arrival at the shard's scorer: an urgent
	// message is decided before the stream messages still waiting there.
	Urgent bool
	// Part is what the message updates: PartAll (the default) decides it.
	Part Part
	// Done receives the decision (owned by the callee) or the error: an
	// *event.Error for a message that cannot be decoded, ErrStopped on
	// shutdown. It runs on the shard goroutine, so it must be quick.
	Done func(*Decision, error)

	// seq is the message's place in the turnstile (0: urgent, none).
	seq uint64
	// cut marks a StartCut marker instead of an event.
	cut *cut
	// command is a SubmitCommand's function instead of an event.
	command func(*Scorer)
	// pause marks a SwapFeatures marker instead of an event.
	pause *pause
}

// Part is what a stream message updates. An instance of a fleet reads
// every partition of the inputs: it decides the events of the partitions
// the consumer group assigns it (PartAll) and adds every other event to
// the windows of the shared entities only (PartShared), so each instance's
// device, IP and payee windows count the whole stream, as one instance's
// would. When a partition moves here, its events that the shared windows
// hold already are decided with PartAccount.
type Part uint8

const (
	// PartAll decides the event: its account's state and the shared
	// entity windows are updated, the rules run.
	PartAll Part = iota
	// PartShared adds the event to the shared entity windows only. Its
	// Done receives a Decision with SharedOnly set, valid during the call.
	PartShared
	// PartAccount decides the event without adding it to the shared
	// entity windows, which hold it already; they are read as of it.
	PartAccount
)

// Engine runs N Scorers, each on its own goroutine, and routes every event of
// an account to the same shard so per-account order holds.
//
// Each shard owns its accounts' state (profiles, account windows, locks,
// recent event ids, alert throttle). The windows of other entities
// (devices, IPs, payees, cards...) see the events of every shard, so they
// live in one features.Shared the shards' Stores use under per-entity
// stripe locks.
type Engine struct {
	shards []*shard
	// ents is replaced by SwapFeatures (under swapMu, with every shard
	// held); readers on other goroutines load it.
	ents   atomic.Pointer[features.Shared]
	swapMu sync.Mutex
	// lastCutSize is the size of the last cut's data, or of the checkpoint
	// the engine was restored from (see cut.sizeHint).
	lastCutSize atomic.Int64
	// cutting holds a token while a cut's copy is in progress (StartCut).
	cutting chan struct{}
	// turns orders the stream messages' use of ents (see turnstile).
	turns *turnstile
	// maxSkew and now are Config.MaxFutureSkew and Config.Now (AheadOfClock).
	maxSkew time.Duration
	now     func() time.Time

	// untagged is set when the state was restored from a checkpoint
	// written before partition tags (version 7): see PartitionTagged.
	untagged bool

	// gate closes intake on shutdown without losing a message: Submit
	// holds it for reading while it enqueues, and Run takes it for writing
	// to set stopped before the shards drain, so nothing can be queued
	// behind a shard that has already exited.
	gate    sync.RWMutex
	stopped bool
}

type shard struct {
	index  int
	scorer *Scorer
	queue  chan Message
	urgent chan Message
	cmds   chan func(*Scorer)
	// pre holds the stream message about to wait for its turn, decoded
	// (see awaitTurn), apart from the Scorer's own decoding buffers, which
	// the urgent messages decided meanwhile use.
	pre *Decoded
	// lastRest is the size of what follows the features in this shard's
	// part at the last cut (writeCut), its goroutine's own.
	lastRest int
}

// New builds an Engine; call Run to start its shards.
func New(cfg Config, set *features.Set, holder *rules.Holder) *Engine {
	cfg = cfg.withDefaults()
	e := newEngine(cfg)
	e.ents.Store(set.NewShared())
	for range cfg.Shards {
		e.addShard(cfg, newScorer(cfg, set, holder, e.shared().NewStore()))
	}
	return e
}

// newEngine returns an Engine of no shards yet for cfg (with defaults).
func newEngine(cfg Config) *Engine {
	return &Engine{turns: newTurnstile(cfg.Shards, cfg.QueueSize), maxSkew: cfg.MaxFutureSkew, now: cfg.Now,
		cutting: make(chan struct{}, 1)}
}

// shared returns the entity windows the shards share.
func (e *Engine) shared() *features.Shared { return e.ents.Load() }

// addShard adds a shard around s, whose Store must use e.shared().
func (e *Engine) addShard(cfg Config, s *Scorer) {
	s.turns, s.shard = e.turns, len(e.shards)
	e.shards = append(e.shards, &shard{
		index:  len(e.shards),
		scorer: s,
		queue:  make(chan Message, cfg.QueueSize),
		urgent: make(chan Message, cfg.QueueSize),
		cmds:   make(chan func(*Scorer)),
		pre:    cfg.NewDecoded(),
	})
}

// AheadOfClock reports whether the shards would refuse an event dated tsMs
// as too far ahead of the clock (Config.MaxFutureSkew): callers that order
// events by time (the stream's merge) let such an event through at once
// instead of holding its partition back behind a date that never comes.
func (e *Engine) AheadOfClock(tsMs int64) bool {
	return checkFutureSkew(tsMs, e.now(), e.maxSkew) != nil
}

// FeatureRestore reports what Restore did with the window features of
// the checkpoint: which kept their state (and under which name they had
// it), which started empty and are warming until when, and which were
// dropped. Zero for an Engine made with New.
func (e *Engine) FeatureRestore() features.RestoreReport { return e.shared().Restored() }

// Warming lists the window features warming at event time nowMs (Unix
// ms): they started empty at Restore and their window has not filled.
func (e *Engine) Warming(nowMs int64) []features.WarmingFeature { return e.shared().Warming(nowMs) }

// Shards returns the number of shards.
func (e *Engine) Shards() int { return len(e.shards) }

// Run runs the shards until ctx ends. Then it closes intake (Submit returns
// ErrStopped), and the shards fail what is still queued with ErrStopped, so
// every accepted message gets exactly one Done. Callers that want a clean
// drain stop submitting and wait for their Done callbacks before cancelling.
func (e *Engine) Run(ctx context.Context) error {
	shardCtx, stopShards := context.WithCancel(context.Background())
	defer stopShards()
	var wg sync.WaitGroup
	for _, sh := range e.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sh.run(shardCtx)
		}()
	}
	<-ctx.Done()
	// Submits blocked on a full queue finish first: the shards still run.
	e.gate.Lock()
	e.stopped = true
	e.gate.Unlock()
	stopShards()
	wg.Wait()
	return nil
}

func (sh *shard) run(ctx context.Context) {
	var d Decision
	stop := ctx.Done()
	for {
		select { // urgent first, without waiting
		case m := <-sh.urgent:
			sh.score(m, &d)
			continue
		default:
		}
		// Then, while the stream keeps the queue full, the next message
		// without the select below, which locks all four channels for
		// every message: each look waits for nothing and locks nothing
		// when its channel is empty. Stopping and commands are looked at
		// first, so they wait for one message at most.
		if !closed(stop) {
			select {
			case cmd := <-sh.cmds:
				cmd(sh.scorer)
				continue
			default:
			}
			select {
			case m := <-sh.queue:
				sh.score(m, &d)
				continue
			default:
			}
		}
		select {
		case <-stop:
			for _, q := range []chan Message{sh.urgent, sh.queue} {
				for len(q) > 0 {
					m := <-q
					if m.seq != 0 { // let the shards still scoring go on
						sh.scorer.turns.leave(m.seq)
					}
					m.Done(nil, ErrStopped)
				}
			}
			return
		case cmd := <-sh.cmds:
			cmd(sh.scorer)
		case m := <-sh.urgent:
			sh.score(m, &d)
		case m := <-sh.queue:
			sh.score(m, &d)
		}
	}
}

// closed reports whether c, a Done channel, is closed, without waiting.
func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (sh *shard) score(m Message, d *Decision) {
	if m.cut != nil {
		sh.writeCut(m)
		return
	}
	if m.command != nil {
		m.command(sh.scorer)
		m.Done(nil, nil)
		return
	}
	if m.pause != nil {
		sh.hold(m.pause)
		return
	}
	var pre *Decoded
	if m.seq != 0 {
		// Decoded before the turn, as other shards' turns go on: only
		// what reads or changes the features waits for it.
		if err := sh.pre.Decode(m.Value); err != nil {
			sh.scorer.turns.leave(m.seq) // it never reaches the features
			m.Done(nil, err)
			return
		}
		pre = sh.pre
		// Already its turn (the shards keep pace): nothing to wait for,
		// so no need to look ahead at what scoring will do.
		if sh.scorer.turns.next.Load() != m.seq && !sh.scorer.skipsFeatures(pre, m.Part) {
			sh.awaitTurn(m.seq, d)
		}
	}
	sh.scorer.seq, sh.scorer.part = m.seq, m.Part
	err := sh.scorer.score(m.Value, pre, m.Source, d, nil)
	sh.scorer.part = PartAll
	if s := sh.scorer.seq; s != 0 { // it never reached the features
		sh.scorer.seq = 0
		sh.scorer.turns.leave(s)
	}
	if err != nil {
		m.Done(nil, err)
		return
	}
	if d.SharedOnly { // nothing decided: nothing for the receiver to keep
		m.Done(d, nil)
		return
	}
	// The clone is the one allocation per decision the engine makes:
	// the receiver keeps it past the next event (batches, sinks).
	m.Done(d.Clone(), nil)
}

// awaitTurn returns once it is stream message s's turn (see turnstile),
// deciding the shard's urgent messages while it waits: the turn waits for
// the other shards' earlier stream messages, and a decide call must not
// wait behind another shard's backlog. s waits decoded (sh.pre) but not
// yet scored, because the Scorer decides one event at a time; it is
// scored after the urgent messages decided meanwhile, as if they had come
// before it.
func (sh *shard) awaitTurn(s uint64, d *Decision) {
	t := sh.scorer.turns
	for t.next.Load() != s {
		select {
		case <-t.wake[sh.index]:
		case u := <-sh.urgent:
			sh.score(u, d)
		}
	}
}

// skipsFeatures reports whether scoring the stream message decoded in pre
// (with part) ends before the features, as score's early returns do: dated
// too far ahead, or an event id seen before (the decide API's events read
// back, a replay). Such a message passes the turnstile without waiting for
// its turn, so it never holds the other shards up. It is a hint only: a
// message that reaches the features after all waits for its turn in
// observe (turnstile.enter), without deciding urgent messages meanwhile.
func (s *Scorer) skipsFeatures(pre *Decoded, part Part) bool {
	if checkFutureSkew(pre.Event.TS, s.now(), s.maxSkew) != nil {
		return true
	}
	action, was, dup := s.dedupe.seen(pre.key)
	switch {
	case !dup:
		return false
	case part == PartShared || action != observedOnly:
		return true
	default: // observed as another instance's event: its account's part is to do, unless its body differs
		return was != 0 && was != pre.sum
	}
}

// Submit queues m on its account's shard, blocking while that queue is
// full: backpressure for the caller, never a dropped message. It returns
// ErrStopped once the engine is shutting down, and ctx's error if ctx ends
// first; in both cases m was not queued and Done will not be called.
func (e *Engine) Submit(ctx context.Context, m Message) error {
	key := m.Key
	if len(key) == 0 {
		key = fastjson.GetBytes(m.Value, "account_id")
	}
	sh := e.shards[keyhash.String(key)%uint64(len(e.shards))]
	e.gate.RLock()
	defer e.gate.RUnlock()
	if e.stopped {
		return ErrStopped
	}
	if m.Urgent {
		return enqueue(ctx, sh.urgent, m)
	}
	// Numbered and queued in one step, so every shard's queue holds its
	// numbers in ascending order (the turnstile relies on it).
	t := e.turns
	t.seqMu.Lock()
	defer t.seqMu.Unlock()
	m.seq = t.number(sh.index)
	if err := enqueue(ctx, sh.queue, m); err != nil {
		return err
	}
	t.commit(m.seq)
	return nil
}

func enqueue(ctx context.Context, q chan<- Message, m Message) error {
	select { // the queue has room most of the time: try without the select's locks
	case q <- m:
		return nil
	default:
	}
	select {
	case q <- m:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("submit: %w", ctx.Err())
	}
}

// SubmitCommand queues fn on the shard that owns accountID behind the
// stream messages submitted before it, as if it were one: it runs after
// every earlier Submit of that shard and before every later one, so a
// support command has a place in the stream that a replay can give it
// again (Do runs between whichever two events the shard is at). done runs
// on the shard goroutine after fn, or with ErrStopped if the engine stopped
// first. fn may touch only accountID's own state (locks, suppressions,
// account features): it takes no turn at the shared entity windows.
func (e *Engine) SubmitCommand(ctx context.Context, accountID string, fn func(*Scorer), done func(error)) error {
	sh := e.shards[keyhash.String(accountID)%uint64(len(e.shards))]
	e.gate.RLock()
	defer e.gate.RUnlock()
	if e.stopped {
		return ErrStopped
	}
	return enqueue(ctx, sh.queue, Message{command: fn, Done: func(_ *Decision, err error) { done(err) }})
}

// Do runs fn on the shard that owns accountID, between two events, and
// waits for it. Lock, unlock and checkpoints go through here so the shard
// stays the only goroutine touching its state.
func (e *Engine) Do(ctx context.Context, accountID string, fn func(*Scorer)) error {
	sh := e.shards[keyhash.String(accountID)%uint64(len(e.shards))]
	return sh.do(ctx, fn)
}

func (sh *shard) do(ctx context.Context, fn func(*Scorer)) error {
	done := make(chan struct{})
	select {
	case sh.cmds <- func(s *Scorer) { fn(s); close(done) }:
	case <-ctx.Done():
		return fmt.Errorf("shard command: %w", ErrStopped)
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("shard command: %w", ErrStopped)
	}
}
