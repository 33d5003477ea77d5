package engine

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"riskd/bench/traffic"
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

	resumed, err := Restore(cfg, set, holder, bytes.NewReader(res.Data))
	if err != nil {
		t.Fatal(err)
	}
	rctx := startEngine(t, resumed)
	got := map[string]*Decision{}
	c.submit(t, resumed, rctx, evs[at:], got)
	c.wg.Wait()

	compared, dups := 0, 0
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
	if compared < len(evs)-at-10 || dups == 0 {
		t.Fatalf("compared %d decisions (%d duplicates) of %d after the cut", compared, dups, len(evs)-at)
	}
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
