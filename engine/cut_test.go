package engine

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"riskd/bench/traffic"
	"riskd/features"
	"riskd/rules"
)

// TestCutResumesExactly cuts a running engine's state in the middle of a
// pipelined stream (submissions go on while the cut is taken), restores the
// cut into a new engine and decides the rest of the stream there: every
// decision after the cut must equal the uninterrupted engine's, window
// values, locks and duplicates included.
func TestCutResumesExactly(t *testing.T) {
	set, holder := loadReferenceProbed(t)
	g := traffic.New(traffic.Config{Accounts: 300, Seed: 17, FraudRate: 0.4,
		Start: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)})
	evs := generate(g, 12000)
	evs = append(evs, evs[100:400]...) // replayed ids: duplicates on both sides of the cut
	const at = 6000
	after := func() time.Time { return time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC) }
	cfg := Config{Shards: 4, QueueSize: 32, Now: after}

	var c collector
	whole := New(cfg, set, holder)
	ctx := startEngine(t, whole)
	want := map[string]*Decision{}
	c.submit(t, whole, ctx, evs[:at], want)
	cutc, err := whole.StartCut(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.submit(t, whole, ctx, evs[at:], want) // intake goes on during the cut
	res := <-cutc
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	c.wg.Wait()

	if dups := resumeMatches(t, cfg, set, holder, res.Data, evs[at:], want); dups == 0 {
		t.Fatal("no duplicate was decided after the cut: the test shows less than it says")
	}
}

// TestCutsBackToBackWhileEventsFlow takes two cuts of a state of many
// chunks of the copy (thousands of accounts a shard) in quick succession,
// without waiting for the first's result, while events flow before,
// between and after them: the second waits for the first's copy to
// complete (one copy guards the tables at a time), and each cut restores
// to an engine that decides the rest of the stream as the uninterrupted
// one did. The shards write to the frozen tables while the cut's
// goroutine completes their copies (run with -race).
func TestCutsBackToBackWhileEventsFlow(t *testing.T) {
	set, holder := loadReferenceProbed(t)
	g := traffic.New(traffic.Config{Accounts: 12_000, Seed: 29, FraudRate: 0.2,
		Start: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)})
	evs := generate(g, 40_000)
	const first, second = 24_000, 25_000
	cfg := Config{Shards: 2, QueueSize: 64, Now: func() time.Time { return time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC) }}

	var c collector
	whole := New(cfg, set, holder)
	ctx := startEngine(t, whole)
	want := map[string]*Decision{}
	c.submit(t, whole, ctx, evs[:first], want)
	cut1, err := whole.StartCut(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.submit(t, whole, ctx, evs[first:second], want)
	cut2, err := whole.StartCut(ctx) // waits for the first's copy, not its encoding
	if err != nil {
		t.Fatal(err)
	}
	c.submit(t, whole, ctx, evs[second:], want)
	res1, res2 := <-cut1, <-cut2
	for _, res := range []CutResult{res1, res2} {
		if res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	c.wg.Wait()
	resumeMatches(t, cfg, set, holder, res1.Data, evs[first:], want)
	resumeMatches(t, cfg, set, holder, res2.Data, evs[second:], want)
}

// resumeMatches restores the cut data into a new engine, decides rest
// there and checks every decision against want, the uninterrupted
// engine's: window values, locks and duplicates included. It returns how
// many duplicates it compared.
func resumeMatches(t *testing.T, cfg Config, set *features.Set, holder *rules.Holder, data []byte, rest [][]byte, want map[string]*Decision) (dups int) {
	t.Helper()
	var c collector
	resumed, err := Restore(cfg, set, holder, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	rctx := startEngine(t, resumed)
	got := map[string]*Decision{}
	c.submit(t, resumed, rctx, rest, got)
	c.wg.Wait()

	compared := 0
	for id, d := range got {
		w, ok := want[id]
		if !ok {
			t.Fatalf("resumed engine decided %s, the uninterrupted one did not", id)
		}
		if !slices.Equal(w.Features, d.Features) || w.Action != d.Action || w.Reason != d.Reason ||
			w.Duplicate != d.Duplicate || !slices.Equal(ruleIDs(w.Matched), ruleIDs(d.Matched)) ||
			!slices.Equal(w.LateFor, d.LateFor) || !w.LockUntil.Equal(d.LockUntil) {
			t.Fatalf("event %s after the cut:\nuninterrupted %v %q dup=%v %v %v\nresumed       %v %q dup=%v %v %v", id,
				w.Action, w.Reason, w.Duplicate, ruleIDs(w.Matched), w.Features,
				d.Action, d.Reason, d.Duplicate, ruleIDs(d.Matched), d.Features)
		}
		compared++
		if d.Duplicate {
			dups++
		}
	}
	if compared < len(rest)-10 {
		t.Fatalf("compared %d decisions of %d after the cut", compared, len(rest))
	}
	return dups
}

// collector submits events to an engine without waiting, as the stream
// does, and keeps their decisions by event id (a duplicate's apart, see
// dupSuffix); wg.Wait waits for every decision submitted so far.
type collector struct {
	mu sync.Mutex
	wg sync.WaitGroup
}

func (c *collector) submit(t *testing.T, e *Engine, ctx context.Context, batch [][]byte, out map[string]*Decision) {
	t.Helper()
	for _, raw := range batch {
		c.wg.Add(1)
		if err := e.Submit(ctx, Message{Value: raw, Done: func(d *Decision, err error) {
			defer c.wg.Done()
			if err != nil {
				t.Error(err)
				return
			}
			c.mu.Lock()
			out[d.EventID+dupSuffix(d)] = d
			c.mu.Unlock()
		}}); err != nil {
			t.Fatal(err)
		}
	}
}

// dupSuffix keeps a duplicate's decision apart from the original's.
func dupSuffix(d *Decision) string {
	if d.Duplicate {
		return "#dup"
	}
	return ""
}

// TestRestoreSizesTheFirstCut: an engine restored from a checkpoint sizes
// its first cut's buffer from the checkpoint, as later cuts size theirs
// from the cut before, instead of growing it from nothing.
func TestRestoreSizesTheFirstCut(t *testing.T) {
	set, holder := loadReferenceProbed(t)
	g := traffic.New(traffic.Config{Accounts: 2_000, Seed: 31, Start: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)})
	cfg := Config{Shards: 2, Now: func() time.Time { return time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC) }}
	e := New(cfg, set, holder)
	ctx := startEngine(t, e)
	var c collector
	c.submit(t, e, ctx, generate(g, 5_000), map[string]*Decision{})
	c.wg.Wait()
	if got := e.lastCutSize.Load(); got != 0 {
		t.Fatalf("a new engine's size hint is %d, want 0", got)
	}
	cut, err := e.StartCut(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res := <-cut
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	restored, err := Restore(cfg, set, holder, bytes.NewReader(res.Data))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := restored.lastCutSize.Load(), int64(len(res.Data)); got != want {
		t.Fatalf("restored engine's size hint is %d, want the checkpoint's %d bytes", got, want)
	}
}
