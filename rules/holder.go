package rules

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Holder holds the current rule set; shards Load it once per event.
//
// A set gets its Version.Seq from the Holder: Swap numbers local reloads
// one past the current set, Install takes the number a fleet-wide publish
// assigned, so every instance shows the same seq for the same version.
type Holder struct {
	p atomic.Pointer[RuleSet]
	// candidate is a set evaluated beside the live one and never acted on
	// (a shadow publish); nil, the usual case, costs a shard one load.
	candidate atomic.Pointer[RuleSet]
	// dir serialises writes of a rule directory (WriteDir) with the
	// Watcher's reads of it, so a watcher never loads a half-written one.
	dir sync.Mutex
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

// Install installs rs with Version.Seq = seq and returns the previous set.
// It is how a version published to the fleet goes live: the publisher
// chose seq, and every instance installs the same one. rs must not be in
// use elsewhere yet.
func (h *Holder) Install(rs *RuleSet, seq uint64) *RuleSet {
	rs.Version.Seq = seq
	return h.p.Swap(rs)
}

// LoadCandidate returns the candidate set, or nil when none is installed.
func (h *Holder) LoadCandidate() *RuleSet { return h.candidate.Load() }

// InstallCandidate makes rs, numbered seq, the candidate that shards
// evaluate beside the live set, replacing any previous one, and returns
// the previous candidate. rs must not be in use elsewhere yet.
func (h *Holder) InstallCandidate(rs *RuleSet, seq uint64) *RuleSet {
	rs.Version.Seq = seq
	return h.candidate.Swap(rs)
}

// ClearCandidate removes the candidate and returns it (nil if none).
func (h *Holder) ClearCandidate() *RuleSet { return h.candidate.Swap(nil) }

// WriteDir replaces the rule files of dir (top-level *.yaml and *.yml,
// settings.yaml, lists/*.txt) with files, keyed by slash path as ReadFiles
// returns them; other files in dir are left alone. Each file is written to
// a temporary directory inside dir and renamed into place, so a reader
// never sees a torn file, and files the new set lacks are removed. A
// Watcher on the same Holder does not read dir while WriteDir runs.
//
// riskd itself never writes the directory it started from; WriteDir is
// for exporting a version to a directory of the caller's choosing.
func (h *Holder) WriteDir(dir string, files map[string][]byte) error {
	h.dir.Lock()
	defer h.dir.Unlock()
	for name := range files {
		if !ruleFileName(name) {
			return fmt.Errorf("write rules %s: %q is not a rule file name (NAME.yaml, NAME.yml or lists/NAME.txt)", dir, name)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "lists"), 0o755); err != nil {
		return fmt.Errorf("write rules %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp(dir, ".riskd-write-")
	if err != nil {
		return fmt.Errorf("write rules %s: %w", dir, err)
	}
	defer os.RemoveAll(tmp)
	for _, name := range sortedNames(files) {
		t := filepath.Join(tmp, filepath.FromSlash(path.Base(name)))
		if err := os.WriteFile(t, files[name], 0o644); err != nil {
			return fmt.Errorf("write rules %s: %w", dir, err)
		}
		if err := os.Rename(t, filepath.Join(dir, filepath.FromSlash(name))); err != nil {
			return fmt.Errorf("write rules %s: %w", dir, err)
		}
	}
	old, err := ReadFiles(os.DirFS(dir))
	if err != nil {
		return fmt.Errorf("write rules %s: %w", dir, err)
	}
	for name := range old {
		if _, keep := files[name]; !keep {
			if err := os.Remove(filepath.Join(dir, filepath.FromSlash(name))); err != nil {
				return fmt.Errorf("write rules %s: %w", dir, err)
			}
		}
	}
	return nil
}

// ruleFileName reports whether name is a path ReadFiles could return: a
// top-level NAME.yaml or NAME.yml, or lists/NAME.txt, with no other
// directory part, no leading dot and nothing that climbs out of the
// directory.
func ruleFileName(name string) bool {
	dir, base := path.Split(name)
	if base == "" || base[0] == '.' || path.Clean(name) != name {
		return false
	}
	for _, r := range base {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	switch dir {
	case "":
		return path.Ext(base) == ".yaml" || path.Ext(base) == ".yml"
	case "lists/":
		return path.Ext(base) == ".txt"
	}
	return false
}

// Watcher polls a rule directory and hands a changed directory that
// compiles to Publish (riskd publishes it through the fleet's rule topic,
// so it is a version in the history and every instance installs it), or,
// without Publish, swaps it into Holder. A directory that does not compile
// is reported once (OnError) and the running set stays. A directory whose
// hash is Known, or the running set's, is not handed on again.
type Watcher struct {
	// Dir is the rule directory.
	Dir string
	// Features resolves window feature names; CurrentFeatures, when set,
	// is asked at every poll instead (the features change while riskd runs).
	Features        FeatureIndex
	CurrentFeatures func() FeatureIndex
	// Holder is read for the running set, and receives new sets when
	// Publish is nil.
	Holder *Holder
	// Interval between polls; zero means 5s.
	Interval time.Duration
	// Known is the hash of the directory as it was already dealt with
	// before Run (published at start, or found in the rule topic): only a
	// different hash is a change. Empty means the running set's hash.
	Known string
	// Publish, if set, receives the files of a changed directory and the
	// set they compile to, instead of the Holder. An error is reported
	// (OnError) and the change is tried again at the next poll.
	Publish func(files map[string][]byte, rs *RuleSet) error
	// OnError, if set, is called when reading, compiling or publishing
	// fails.
	OnError func(error)
	// OnReload, if set, is called after a new set is swapped in or
	// published.
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
	w.lastHash = w.Known
	if rs := w.Holder.Load(); rs != nil && w.lastHash == "" {
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
	// A WriteDir in progress: look again at the next poll.
	if !w.Holder.dir.TryLock() {
		return
	}
	defer w.Holder.dir.Unlock()
	files, err := ReadFiles(os.DirFS(w.Dir))
	if err != nil {
		w.fail(err)
		return
	}
	hash := HashFiles(files)
	if hash == w.lastHash {
		return
	}
	if rs := w.Holder.Load(); rs != nil && rs.Version.Hash == hash {
		w.lastHash = hash // already running, e.g. installed from the fleet topic
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
	feats := w.Features
	if w.CurrentFeatures != nil {
		feats = w.CurrentFeatures()
	}
	rs, err := compile(files, w.Dir, feats)
	if err != nil {
		w.lastHash = hash // report a bad version once, not every poll
		w.fail(err)
		return
	}
	if w.Publish != nil {
		if err := w.Publish(files, rs); err != nil {
			w.fail(fmt.Errorf("publish rules %s: %w", w.Dir, err))
			return
		}
	} else {
		w.Holder.Swap(rs)
	}
	w.lastHash = hash
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
