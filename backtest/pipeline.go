package backtest

import (
	"context"
	"errors"
	"sync"
	"time"

	"riskd/engine"
	"riskd/features"
	"riskd/rules"
	"riskd/streams/chstore"
)

// The replay is a pipeline of four goroutines: Run's own reads the events
// and joins them to their recorded decisions, labels and support locks
// into batches; the lead scorer and the baseline's score them; the
// accumulator takes a batch once both are done and counts it into the
// report. The lead starts as a twin Scorer (engine.NewTwinScorer): one
// feature state, the candidate's world and the baseline's, so each event
// is observed once and both rule sets read its features. The baseline's
// goroutine has nothing to do until the worlds first disagree on a lock;
// the lead then splits the Scorer and hands the baseline's half over, and
// from that event on the two score side by side (one core each). A fixed
// number of batches circulates (inflight), so every channel has room for
// all of them and no send blocks: the reader waits for a free batch when
// the scorers are behind, and memory is bounded by inflight*batchItems
// events.

const (
	batchItems = 256
	inflight   = 8
)

// item is one event on its way through both scorers to the accumulator.
type item struct {
	ev chstore.ReplayEvent
	// decoded is ev decoded (the item slot's own, so that its strings
	// stay valid while the item is in flight), or decErr. Run's goroutine
	// decodes, so that the lead scorer, the bottleneck, does not have to.
	decoded *engine.Decoded
	decErr  error
	rec     chstore.ReplayDecision
	hasRec  bool
	// clock is the simulated wall clock for the event (Unix ms).
	clock int64
	// base is the rule-set version the baseline runs for the event: the
	// one its recorded decision names, else the one before. Its rs is nil
	// when the version cannot be replayed; the baseline then keeps the set
	// it has, and its decision is not compared.
	base *baseSet
	// locks are the support locks and unlocks to apply before the event.
	locks  []chstore.LockRow
	period bool // in [From, To): counted, not warm-up
	label  string

	// suppressions are support's rule suppressions and lifts to apply
	// before the event, after its locks.
	suppressions []chstore.SuppressionRow

	// cand and baseD are the two scorers' decisions. Strings in them that
	// come from the event alias a decoder buffer since reused: the
	// accumulator reads only actions, rule ids and feature values.
	cand, baseD      engine.Decision
	candErr, baseErr error
}

// baseline returns the baseline decision of the event, or nil when there
// is none to compare: its version could not be replayed, or the scorer
// refused the event.
func (it *item) baseline() *engine.Decision {
	if it.base == nil || it.base.rs == nil || it.baseErr != nil {
		return nil
	}
	return &it.baseD
}

type batch struct {
	items []item
	n     int
	// baseFrom is the first item the baseline's own Scorer decides: n
	// while the lead decides both worlds, 0 once they are split, and in
	// the batch of the split the item it happened at.
	baseFrom int
	// split, on the batch of the split only, is the baseline's half of
	// the Scorer, and splitBase the baseline set it holds.
	split     *engine.Scorer
	splitBase *baseSet
}

// next returns the batch's next item to fill; the caller checks full.
func (b *batch) next() *item {
	b.n++
	return &b.items[b.n-1]
}

func (b *batch) full() bool { return b.n == len(b.items) }

type pipeline struct {
	free             chan *batch
	leadIn, baseIn   chan *batch
	leadOut, baseOut chan *batch
	wg               sync.WaitGroup
	stopped          bool
	// shared counts the events the lead decided for both worlds on one
	// feature state; read after stop.
	shared    int64
	baseClock int64
	// err, read after stop, is why the lead stopped scoring.
	err error
}

// startPipeline starts the scorers and the accumulator on ctx. The
// baseline holder holds base0's set (or the candidate's, when base0 is
// nil or missing) already. stop joins them.
func startPipeline(ctx context.Context, ecfg engine.Config, feats *features.Set, candHolder, baseHolder *rules.Holder,
	base0 *baseSet, accounts int, a *accumulator) *pipeline {
	p := &pipeline{free: make(chan *batch, inflight),
		leadIn: make(chan *batch, inflight), baseIn: make(chan *batch, inflight),
		leadOut: make(chan *batch, inflight), baseOut: make(chan *batch, inflight)}
	for range inflight {
		b := &batch{items: make([]item, batchItems)}
		for i := range b.items {
			b.items[i].decoded = ecfg.NewDecoded()
		}
		p.free <- b
	}
	if base0 != nil && base0.rs == nil {
		base0 = nil
	}
	p.wg.Go(func() { p.lead(ctx, ecfg, feats, candHolder, baseHolder, base0, accounts) })
	p.wg.Go(func() { p.baseline(ctx) })
	p.wg.Go(func() {
		for b := range p.leadOut {
			<-p.baseOut // the same batch: both take them in the order sent
			if ctx.Err() == nil {
				for i := range b.n {
					a.take(&b.items[i])
				}
			}
			b.n, b.split, b.splitBase = 0, nil, nil
			p.free <- b
		}
	})
	return p
}

// lead scores every batch for the candidate, and for the baseline too
// until the twin is split. While twinned, a batch goes to the baseline's
// goroutine once scored (it has nothing to add); once split, before, so
// that both score it at once.
func (p *pipeline) lead(ctx context.Context, ecfg engine.Config, feats *features.Set, candHolder, baseHolder *rules.Holder,
	cur *baseSet, accounts int) {
	defer close(p.leadOut)
	defer close(p.baseIn)
	var clock int64 // the simulated wall clock, Unix ms
	c := ecfg
	c.Now = func() time.Time { return time.UnixMilli(clock) }
	sc := engine.NewTwinScorer(c, feats, candHolder, baseHolder)
	sc.Reserve(accounts)
	twinned := true
	for b := range p.leadIn {
		if ctx.Err() != nil || p.err != nil { // passed on unscored: the accumulator skips it too
			b.baseFrom = b.n
			p.baseIn <- b
			p.leadOut <- b
			continue
		}
		if !twinned {
			b.baseFrom = 0
			p.baseIn <- b
		}
		for i := range b.n {
			it := &b.items[i]
			clock = it.clock
			for _, l := range it.locks {
				applyLock(sc, l)
			}
			for _, r := range it.suppressions {
				applySuppression(sc, r)
			}
			if twinned {
				// Switch where the record switched; the baseline's
				// goroutine takes this over at the split.
				if it.base != nil && it.base.rs != nil && it.base != cur {
					baseHolder.Install(it.base.rs, it.base.seq)
					cur = it.base
				}
				err := it.decErr
				if err == nil {
					err = sc.ScoreTwinDecoded(it.decoded, it.ev.Raw, &it.cand, &it.baseD)
				}
				if !errors.Is(err, engine.ErrTwinsDiverge) {
					it.candErr, it.baseErr = err, err
					p.shared++
					continue
				}
				half, serr := sc.Split(p.baseNow())
				if serr != nil { // cannot copy the state: the backtest fails
					p.err = serr
					b.n = i
					break
				}
				twinned = false
				b.baseFrom, b.split, b.splitBase = i, half, cur
				p.baseIn <- b
			}
			it.candErr = it.decErr
			if it.decErr == nil {
				it.candErr = sc.ScoreDecoded(it.decoded, it.ev.Raw, &it.cand)
			}
		}
		if twinned {
			b.baseFrom = b.n
			p.baseIn <- b
		}
		p.leadOut <- b
	}
}

// baseClock is the baseline's simulated wall clock once split; only the
// baseline's goroutine touches it, after the split batch reached it.
func (p *pipeline) baseNow() func() time.Time {
	return func() time.Time { return time.UnixMilli(p.baseClock) }
}

// baseline scores the items of each batch from its baseFrom on, with the
// baseline's half of the Scorer from the split on.
func (p *pipeline) baseline(ctx context.Context) {
	defer close(p.baseOut)
	var sc *engine.Scorer
	var holder *rules.Holder
	var cur *baseSet
	for b := range p.baseIn {
		if b.split != nil {
			sc, cur = b.split, b.splitBase
			holder = sc.Holder()
		}
		if ctx.Err() != nil || sc == nil {
			p.baseOut <- b
			continue
		}
		for i := b.baseFrom; i < b.n; i++ {
			it := &b.items[i]
			p.baseClock = it.clock
			if b.split == nil || i > b.baseFrom { // the lead applied the split event's locks to both worlds
				for _, l := range it.locks {
					applyLock(sc, l)
				}
				for _, r := range it.suppressions {
					applySuppression(sc, r)
				}
			}
			if it.base != nil && it.base.rs != nil && it.base != cur {
				holder.Install(it.base.rs, it.base.seq)
				cur = it.base
			}
			it.baseErr = it.decErr
			if it.decErr == nil {
				it.baseErr = sc.ScoreDecoded(it.decoded, it.ev.Raw, &it.baseD)
			}
		}
		p.baseOut <- b
	}
}

// get returns an empty batch, waiting for the scorers to free one.
func (p *pipeline) get() *batch { return <-p.free }

// send hands a batch to the scorers.
func (p *pipeline) send(b *batch) {
	if b.n == 0 {
		p.free <- b
		return
	}
	p.leadIn <- b
}

// stop closes the scorers' inputs and waits until every batch sent is
// scored and accumulated (or skipped, once ctx has ended). It may be
// called more than once.
func (p *pipeline) stop() {
	if p.stopped {
		return
	}
	p.stopped = true
	close(p.leadIn)
	p.wg.Wait()
}
