package backtest

import (
	"context"
	"sync"
	"time"

	"riskd/engine"
	"riskd/features"
	"riskd/rules"
	"riskd/streams/chstore"
)

// The replay is a pipeline of four goroutines: Run's own reads the events
// and joins them to their recorded decisions, labels and support locks
// into batches; the candidate's scorer and the baseline's each score every
// batch, concurrently (one core each); the accumulator takes a batch once
// both have scored it and counts it into the report. A fixed number of
// batches circulates (inflight), so every channel has room for all of
// them and no send blocks: the reader waits for a free batch when the
// scorers are behind, and memory is bounded by inflight*batchItems events.

const (
	batchItems = 256
	inflight   = 8
)

// item is one event on its way through both scorers to the accumulator.
type item struct {
	ev     chstore.ReplayEvent
	rec    chstore.ReplayDecision
	hasRec bool
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
}

// next returns the batch's next item to fill; the caller checks full.
func (b *batch) next() *item {
	b.n++
	return &b.items[b.n-1]
}

func (b *batch) full() bool { return b.n == len(b.items) }

type pipeline struct {
	free             chan *batch
	candIn, baseIn   chan *batch
	candOut, baseOut chan *batch
	wg               sync.WaitGroup
	stopped          bool
}

// startPipeline starts the two scorers and the accumulator on ctx. The
// baseline holder holds base0's set (or the candidate's, when base0 is
// nil or missing) already. stop joins them.
func startPipeline(ctx context.Context, ecfg engine.Config, feats *features.Set, candHolder, baseHolder *rules.Holder,
	base0 *baseSet, a *accumulator) *pipeline {
	p := &pipeline{free: make(chan *batch, inflight),
		candIn: make(chan *batch, inflight), baseIn: make(chan *batch, inflight),
		candOut: make(chan *batch, inflight), baseOut: make(chan *batch, inflight)}
	for range inflight {
		p.free <- &batch{items: make([]item, batchItems)}
	}
	if base0 != nil && base0.rs == nil {
		base0 = nil
	}
	score := func(in <-chan *batch, out chan<- *batch, holder *rules.Holder, cur *baseSet, baseline bool) {
		defer close(out)
		var clock int64 // this scorer's simulated wall clock, Unix ms
		c := ecfg
		c.Now = func() time.Time { return time.UnixMilli(clock) }
		sc := engine.NewScorer(c, feats, holder)
		for b := range in {
			if ctx.Err() != nil { // passed on unscored: the accumulator skips it too
				out <- b
				continue
			}
			for i := range b.n {
				it := &b.items[i]
				clock = it.clock
				for _, l := range it.locks {
					applyLock(sc, l)
				}
				if !baseline {
					it.candErr = sc.Score(it.ev.Raw, engine.Source{}, &it.cand)
					continue
				}
				// Switch where the record switched. Only this goroutine
				// uses the sets it installs (the candidate's, shared, was
				// installed before it started and is never again).
				if it.base != nil && it.base.rs != nil && it.base != cur {
					holder.Install(it.base.rs, it.base.seq)
					cur = it.base
				}
				it.baseErr = sc.Score(it.ev.Raw, engine.Source{}, &it.baseD)
			}
			out <- b
		}
	}
	p.wg.Go(func() { score(p.candIn, p.candOut, candHolder, nil, false) })
	p.wg.Go(func() { score(p.baseIn, p.baseOut, baseHolder, base0, true) })
	p.wg.Go(func() {
		for b := range p.candOut {
			<-p.baseOut // the same batch: both scorers take them in the order sent
			if ctx.Err() == nil {
				for i := range b.n {
					a.take(&b.items[i])
				}
			}
			b.n = 0
			p.free <- b
		}
	})
	return p
}

// get returns an empty batch, waiting for the scorers to free one.
func (p *pipeline) get() *batch { return <-p.free }

// send hands a batch to both scorers.
func (p *pipeline) send(b *batch) {
	if b.n == 0 {
		p.free <- b
		return
	}
	p.candIn <- b
	p.baseIn <- b
}

// stop closes the scorers' inputs and waits until every batch sent is
// scored and accumulated (or skipped, once ctx has ended). It may be
// called more than once.
func (p *pipeline) stop() {
	if p.stopped {
		return
	}
	p.stopped = true
	close(p.candIn)
	close(p.baseIn)
	p.wg.Wait()
}
