package backtest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"riskd/engine"
	"riskd/features"
	"riskd/rules"
	"riskd/streams/chstore"
)

// Bounds of one backtest.
const (
	// DefaultMaxPeriod bounds To-From when Limits.MaxPeriod is 0.
	DefaultMaxPeriod = 31 * 24 * time.Hour
	// DefaultMaxEvents bounds the stored events a backtest replays,
	// warm-up included, when Limits.MaxEvents is 0: about eight minutes
	// at the measured rate on the 2-core benchmark machine.
	DefaultMaxEvents = 50_000_000
	// MaxSupportLocks bounds the support locks and unlocks applied.
	MaxSupportLocks = 100_000
	// MaxSuppressions bounds support's rule suppressions and lifts applied.
	MaxSuppressions = 100_000
	// MaxRowsPerMs bounds the recorded decisions (or labels) of one
	// millisecond held while joining them to the events.
	MaxRowsPerMs = 100_000
	// MaxExamples is how many event ids a report lists per change.
	MaxExamples = 10
	// MaxVersions bounds the recorded rule-set versions listed; more are
	// counted under "other".
	MaxVersions = 100
	// Buckets is the number of time buckets of RuleStats.Series.
	Buckets = 48
	// sliceRows bounds the stored events one ClickHouse query reads and
	// sorts (see split), and firstSliceRows is the first query's share.
	// The events table is keyed by account first, so each query reads the
	// whole of every part it touches: few large queries cost ClickHouse
	// less CPU than many small ones (1M events: 5.8 s of server CPU in one
	// query, 9.8 s in 250k-row spans), while a small first query lets the
	// replay start before the rest is sorted. 2M rows of ~300-byte events
	// keep a sort under about a gigabyte.
	sliceRows      = 2_000_000
	firstSliceRows = 100_000
	// maxReservedAccounts bounds the account table sized up front (about
	// 200 bytes an account, 2 GB at the bound): past it the table grows
	// as accounts come.
	maxReservedAccounts = 10_000_000
	// progressEvery is how many events pass between Progress calls.
	progressEvery = 8192
)

// Errors a caller may branch on (the API maps them to statuses).
var (
	// ErrBadRequest wraps every problem with the request itself: the
	// period, the limits, a missing part.
	ErrBadRequest = errors.New("bad backtest request")
	// ErrTooManyEvents is returned when the period and warm-up hold more
	// stored events than Limits.MaxEvents.
	ErrTooManyEvents = errors.New("too many events to replay")
)

// Limits bound a backtest; zero fields take the defaults.
type Limits struct {
	MaxPeriod time.Duration
	MaxEvents int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxPeriod <= 0 {
		l.MaxPeriod = DefaultMaxPeriod
	}
	if l.MaxEvents <= 0 {
		l.MaxEvents = DefaultMaxEvents
	}
	return l
}

// Progress is how far a running backtest is.
type Progress struct {
	// Done counts the events replayed so far, Total the stored event rows
	// to replay (duplicates included, so Done may end below it).
	Done, Total int64
	Elapsed     time.Duration
}

// Config is one backtest.
type Config struct {
	// Store is where the events, decisions, labels, locks and the
	// rule-set versions the baseline replays are read.
	Store *chstore.Store
	// Features are the window features, as the live engine has them.
	Features *features.Set
	// Rules is the candidate rule set. It is installed in Holders of the
	// backtest's own (the baseline's too, until a recorded version can be
	// replayed): it must not be in use elsewhere.
	Rules *rules.RuleSet
	// KnownFiles are rule sets the caller has the files of (the running
	// set's, the candidate's own), as rules.ReadFiles keys them: a
	// recorded version with the hash of one of them is replayed from them
	// rather than from the version history, which may not hold it (the
	// set riskd started with is in none). Optional.
	KnownFiles []map[string][]byte
	// Engine is the live engine's configuration (alert throttle, dedupe
	// capacity, event size bound); its clock and future-skew check are
	// replaced by the simulated clock.
	Engine engine.Config
	// From and To bound the period (event time; To excluded).
	From, To time.Time
	// Warmup is how much history before From is replayed to rebuild the
	// state; 0 means all stored history.
	Warmup time.Duration
	Limits Limits
	// Progress, if set, is called every few thousand events and once at
	// the end, on the backtest's goroutine.
	Progress func(Progress)
	// Now is the wall clock, for Report.Seconds only; nil means time.Now.
	Now func() time.Time
}

func (c Config) validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("no ClickHouse store"))
	}
	if c.Features == nil {
		errs = append(errs, errors.New("no feature set"))
	}
	if c.Rules == nil {
		errs = append(errs, errors.New("no candidate rule set"))
	}
	lim := c.Limits.withDefaults()
	switch {
	case c.From.IsZero() || c.To.IsZero():
		errs = append(errs, errors.New("from and to are both required"))
	case !c.From.Before(c.To):
		errs = append(errs, fmt.Errorf("from %s is not before to %s", stamp(c.From), stamp(c.To)))
	case c.To.Sub(c.From) > lim.MaxPeriod:
		errs = append(errs, fmt.Errorf("period from %s to %s is %v, longer than the limit of %v: backtest a shorter period",
			stamp(c.From), stamp(c.To), c.To.Sub(c.From), lim.MaxPeriod))
	}
	if c.Warmup < 0 {
		errs = append(errs, fmt.Errorf("warmup %v is negative", c.Warmup))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// Run replays the stored events of the period (after the warm-up) through
// the candidate rules and, beside them, through the rule sets that were
// live (the baseline), and reports what the candidate would have decided
// against the baseline and what was decided, and how exactly the baseline
// reproduces the record. It reads ClickHouse only and touches no live
// state.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	lim := cfg.Limits.withDefaults()
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	start := now()
	fromMs, toMs := cfg.From.UnixMilli(), cfg.To.UnixMilli()

	var warnings []string
	earliest, any, err := cfg.Store.EarliestEvent(ctx)
	if err != nil {
		return nil, fmt.Errorf("backtest: %w", err)
	}
	warmFrom, warmup := fromMs, "all stored history"
	if cfg.Warmup == 0 {
		if any && earliest < fromMs {
			warmFrom = earliest
		}
	} else {
		warmFrom, warmup = fromMs-cfg.Warmup.Milliseconds(), cfg.Warmup.String()
		if any && earliest < warmFrom {
			warnings = append(warnings, fmt.Sprintf("the warm-up (%v) starts at %s, after the oldest stored event (%s): "+
				"profile features (events_seen, new_device, ...) and long windows may not be as they were live, "+
				"so their reproduction is not guaranteed", cfg.Warmup, stamp(time.UnixMilli(warmFrom)), stamp(time.UnixMilli(earliest))))
		}
	}
	// Steps of a minute, or coarser for a long warm-up: at most ~100,000 rows.
	counts, err := cfg.Store.CountEvents(ctx, warmFrom, toMs, max(60_000, (toMs-warmFrom)/100_000))
	if err != nil {
		return nil, fmt.Errorf("backtest: %w", err)
	}
	var total uint64
	for _, c := range counts {
		total += c.Rows
	}
	if int64(total) > lim.MaxEvents {
		return nil, fmt.Errorf("backtest: %w: %d stored events from %s to %s (warm-up included), the limit is %d: "+
			"shorten the period or the warm-up", ErrTooManyEvents, total, stamp(time.UnixMilli(warmFrom)), stamp(cfg.To), lim.MaxEvents)
	}
	// Support's locks are dated on the wall clock, like decided_at: read
	// those of the span the replayed decisions were made in, or of the
	// event-time span when that is wider (events with no decision run on
	// their own time).
	lockFrom, lockTo := warmFrom, toMs
	if first, last, ok, err := cfg.Store.DecisionTimes(ctx, warmFrom, toMs); err != nil {
		return nil, fmt.Errorf("backtest: %w", err)
	} else if ok {
		lockFrom, lockTo = min(lockFrom, first), max(lockTo, last+1)
	}
	locks, err := cfg.Store.SupportLocks(ctx, lockFrom, lockTo, MaxSupportLocks)
	if err != nil {
		return nil, fmt.Errorf("backtest: %w", err)
	}
	// Support's rule suppressions, on the wall clock like its locks.
	sups, err := cfg.Store.SupportSuppressions(ctx, lockFrom, lockTo, MaxSuppressions)
	if err != nil {
		return nil, fmt.Errorf("backtest: %w", err)
	}

	// The events table holds each event id once (a repeat was decided as a
	// duplicate live, with no outputs and no row), so the replay meets no
	// repeats and keeps no duplicate memory: remembering a million ids
	// cost about a tenth of the scorer's time in cache misses.
	ecfg := cfg.Engine
	ecfg.MaxFutureSkew = -1 // the clock is simulated: no event is ahead of it
	ecfg.DedupeCapacity = engine.NoDedupe
	ecfg.Shards = 1

	// Room for every account up front: growing the state's account table
	// step by step copies it each time (a second of the lead's time on a
	// million events).
	accounts, err := cfg.Store.CountAccounts(ctx, warmFrom, toMs)
	if err != nil {
		return nil, fmt.Errorf("backtest: %w", err)
	}
	accounts = min(accounts+accounts/16, total, maxReservedAccounts) // uniq is an estimate

	a := newAccumulator(cfg, fromMs, toMs)
	a.rep.WarmupFrom, a.rep.Warmup = time.UnixMilli(warmFrom).UTC(), warmup

	rctx, cancel := context.WithCancel(ctx)
	spans := split(warmFrom, toMs, counts)
	var evErr, decErr, labErr error
	evCh := feed(rctx, spans, func(sp span, fn func(chstore.ReplayEvent) error) error {
		var mem arena
		return cfg.Store.ReplayEvents(rctx, sp.from, sp.to, func(ev *chstore.ReplayEvent) error {
			c := *ev
			c.Raw = mem.copy(ev.Raw) // ev.Raw is the driver's, valid only now
			return fn(c)
		})
	}, &evErr)
	decCh := feed(rctx, spans, func(sp span, fn func(chstore.ReplayDecision) error) error {
		return cfg.Store.ReplayDecisions(rctx, sp.from, sp.to, fn)
	}, &decErr)
	labCh := feed(rctx, split(fromMs, toMs, nil), func(sp span, fn func(chstore.ReplayLabel) error) error {
		return cfg.Store.ReplayLabels(rctx, sp.from, sp.to, fn)
	}, &labErr)
	var pl *pipeline
	defer func() {
		cancel()
		if pl != nil {
			pl.stop() // the scorers and the accumulator end with their inputs
		}
		drain(evCh) // the feeders end once ctx is cancelled
		drain(decCh)
		drain(labCh)
	}()
	decs := newCursor(decCh, "decisions", func(d *chstore.ReplayDecision) (int64, string) { return d.TS, d.EventID },
		func(d *chstore.ReplayDecision) {
			if d.TS >= fromMs {
				a.orphanDecisions++ // the accumulator's goroutine never touches this field
			}
		})
	labels := newCursor(labCh, "labels", func(l *chstore.ReplayLabel) (int64, string) { return l.TS, l.EventID },
		func(*chstore.ReplayLabel) {})

	// The baseline starts with the version of the first recorded decision
	// (events before it have none to name one), or the candidate's rules
	// when there is none that can be replayed: installed here, before the
	// scorers' goroutines start, so that sharing the candidate's set is
	// safe (Install writes its Version.Seq).
	vers := newVersions(cfg.Store, cfg.Features, cfg.KnownFiles)
	var base *baseSet
	if first, ok := decs.peek(); ok {
		if base, err = vers.get(rctx, first.RuleSetVersion); err != nil {
			return nil, fmt.Errorf("backtest: %w", err)
		}
	}
	candHolder, baseHolder := &rules.Holder{}, &rules.Holder{}
	candHolder.Install(cfg.Rules, cfg.Rules.Version.Seq)
	if base != nil && base.rs != nil {
		baseHolder.Install(base.rs, base.seq)
	} else {
		baseHolder.Install(cfg.Rules, cfg.Rules.Version.Seq)
	}
	pl = startPipeline(rctx, ecfg, cfg.Features, candHolder, baseHolder, base, int(accounts), a)

	var done int64
	nextLock, nextSup := 0, 0
	b := pl.get()
	read := func(ev *chstore.ReplayEvent) error {
		if done++; done > lim.MaxEvents {
			return fmt.Errorf("%w: more than %d events replayed (rows arrived during the backtest?)", ErrTooManyEvents, lim.MaxEvents)
		}
		if done%progressEvery == 0 && cfg.Progress != nil {
			cfg.Progress(Progress{Done: done, Total: int64(total), Elapsed: now().Sub(start)})
		}
		it := b.next()
		it.ev = *ev
		it.decErr = it.decoded.Decode(ev.Raw)
		rec, hasRec, err := decs.take(ev.TS, ev.EventID)
		if err != nil {
			return err
		}
		it.rec, it.hasRec, it.clock = rec, hasRec, ev.TS
		if hasRec {
			it.clock = rec.DecidedAtMs
			if base == nil || rec.RuleSetVersion != base.version {
				if base, err = vers.get(rctx, rec.RuleSetVersion); err != nil {
					return err
				}
			}
		}
		it.base = base
		// Support's locks apply between events on both scorers; which
		// ones precede this event is decided here, once.
		lo := nextLock
		for nextLock < len(locks) && locks[nextLock].At.UnixMilli() <= it.clock {
			nextLock++
		}
		it.locks = locks[lo:nextLock]
		lo = nextSup
		for nextSup < len(sups) && sups[nextSup].At.UnixMilli() <= it.clock {
			nextSup++
		}
		it.suppressions = sups[lo:nextSup]
		it.period = ev.TS >= fromMs
		it.label = ""
		if it.period {
			label, _, err := labels.take(ev.TS, ev.EventID)
			if err != nil {
				return err
			}
			it.label = label.Label
		}
		if b.full() {
			pl.send(b)
			b = pl.get()
		}
		return nil
	}
	for batch := range evCh {
		if err = ctx.Err(); err != nil { // batches in flight are not worth finishing
			break
		}
		for i := range batch {
			if err = read(&batch[i]); err != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	if err == nil {
		err = evErr // evCh is closed: final
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("backtest: %w", err)
	}
	pl.send(b)
	pl.stop() // every event is scored for both worlds and accumulated
	if err = ctx.Err(); err != nil {
		return nil, fmt.Errorf("backtest: %w", err)
	}
	if pl.err != nil {
		return nil, fmt.Errorf("backtest: %w", pl.err)
	}
	decs.finish()
	labels.finish()
	// The feeders have closed their channels: their errors are final.
	if err := errors.Join(decErr, labErr); err != nil {
		return nil, fmt.Errorf("backtest: %w", err)
	}
	if cfg.Progress != nil {
		cfg.Progress(Progress{Done: done, Total: int64(total), Elapsed: now().Sub(start)})
	}
	rep := a.finish(warnings, vers.order)
	rep.SharedState = pl.shared
	rep.Seconds = now().Sub(start).Seconds()
	if rep.Seconds > 0 {
		rep.EventsPerSecond = float64(rep.EventsWarmup+rep.EventsPeriod+rep.Refused) / rep.Seconds
	}
	return rep, nil
}

// applyLock does what support or the API did to the account, as the live
// LockService did it through the account's shard.
func applyLock(s *engine.Scorer, l chstore.LockRow) {
	switch l.Action {
	case "lock":
		until := l.Until.UnixMilli()
		if l.Until.IsZero() {
			until = 1<<63 - 1 // open-ended
		}
		s.Lock(l.AccountID, until, "support:"+l.Actor)
	case "unlock":
		s.Unlock(l.AccountID)
	}
}

// applySuppression does what support did to the account's rule, as the
// live SuppressionService did it through the account's shard. A row the
// engine refuses (its per-account bound, which live refused too) changes
// nothing.
func applySuppression(s *engine.Scorer, r chstore.SuppressionRow) {
	switch r.Action {
	case chstore.SuppressionSuppress:
		_ = s.Suppress(r.AccountID, r.RuleID, r.Until.UnixMilli(), "support:"+r.Actor)
	case chstore.SuppressionLift:
		s.Unsuppress(r.AccountID, r.RuleID)
	}
}

// drain reads ch until its feeder closes it.
func drain[T any](ch <-chan []T) {
	for range ch {
	}
}
