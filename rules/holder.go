package rules

import (
	"context"
	"os"
	"sync/atomic"
	"time"
)

// Holder holds the current rule set; shards Load it once per event.
type Holder struct {
	p atomic.Pointer[RuleSet]
}

// Load returns the current rule set, or nil before the first Swap.
func (h *Holder) Load() *RuleSet { return h.p.Load() }

// Swap installs rs with Version.Seq one more than the current set's and
// returns the previous set. rs must not be in use elsewhere yet.
func (h *Holder) Swap(rs *RuleSet) *RuleSet {
	for {
		old := h.p.Load()
		var seq uint64
		if old != nil {
			seq = old.Version.Seq
		}
		rs.Version.Seq = seq + 1
		if h.p.CompareAndSwap(old, rs) {
			return old
		}
	}
}

// Watcher polls a rule directory and swaps in a new rule set when the
// files change. A bad new set is reported and the old one kept.
type Watcher struct {
	// Dir is the rule directory.
	Dir string
	// Features resolves window feature names.
	Features FeatureIndex
	// Holder receives the new sets.
	Holder *Holder
	// Interval between polls; zero means 5s.
	Interval time.Duration
	// OnError, if set, is called when reading or compiling fails.
	OnError func(error)
	// OnReload, if set, is called after a new set is swapped in.
	OnReload func(*RuleSet)

	failures atomic.Uint64
	lastHash string
}

// settleDelay is how long a changed directory must stay unchanged before
// it is loaded.
const settleDelay = 50 * time.Millisecond

// Failures counts failed reloads.
func (w *Watcher) Failures() uint64 { return w.failures.Load() }

// Run checks the directory at once and then every Interval until ctx ends;
// it returns ctx.Err().
func (w *Watcher) Run(ctx context.Context) error {
	interval := w.Interval
	if interval <= 0 {
		interval = 5 * time.Second
	}
	if rs := w.Holder.Load(); rs != nil {
		w.lastHash = rs.Version.Hash
	}
	w.poll()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			w.poll()
		}
	}
}

func (w *Watcher) poll() {
	files, err := ReadFiles(os.DirFS(w.Dir))
	if err != nil {
		w.fail(err)
		return
	}
	hash := HashFiles(files)
	if hash == w.lastHash {
		return
	}
	// An editor or copy may be half-way through writing a file: accept the
	// change only when a second read a moment later sees the same content,
	// otherwise look again at the next poll.
	time.Sleep(settleDelay)
	again, err := ReadFiles(os.DirFS(w.Dir))
	if err != nil || HashFiles(again) != hash {
		return
	}
	w.lastHash = hash // report a bad version once, not every poll
	rs, err := compile(files, w.Dir, w.Features)
	if err != nil {
		w.fail(err)
		return
	}
	w.Holder.Swap(rs)
	if w.OnReload != nil {
		w.OnReload(rs)
	}
}

func (w *Watcher) fail(err error) {
	w.failures.Add(1)
	if w.OnError != nil {
		w.OnError(err)
	}
}
