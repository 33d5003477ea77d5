package engine

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"riskd/bench/traffic"
)

// TestPipelinedShardsDecideAsOne submits a device-farm-heavy backlog
// without waiting for decisions, as the stream does, to one shard and to
// eight shards with short queues, and requires every decision to be the
// same: action, score, matched rules, lateness and every window value.
// With several shards each running at its own pace, only the turnstile
// keeps the shared entity windows (device, IP, payee, card) changing in
// the submitted order.
func TestPipelinedShardsDecideAsOne(t *testing.T) {
	set, holder := loadReferenceProbed(t)
	g := traffic.New(traffic.Config{Accounts: 400, Seed: 11, FraudRate: 0.4,
		Start: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)})
	evs := generate(g, 20000)
	decideAll := func(cfg Config) map[string]*Decision {
		e := New(cfg, set, holder)
		ctx := startEngine(t, e)
		var mu sync.Mutex
		var wg sync.WaitGroup
		out := make(map[string]*Decision, len(evs))
		for _, raw := range evs {
			wg.Add(1)
			err := e.Submit(ctx, Message{Value: raw, Done: func(d *Decision, err error) {
				defer wg.Done()
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				out[d.EventID] = d
				mu.Unlock()
			}})
			if err != nil {
				t.Fatal(err)
			}
		}
		wg.Wait()
		return out
	}
	// The wall clock stands after the generated days, so no event is ahead of it.
	after := func() time.Time { return time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC) }
	one := decideAll(Config{Shards: 1, Now: after})
	eight := decideAll(Config{Shards: 8, QueueSize: 16, Now: after})
	if len(one) != len(evs) || len(eight) != len(evs) {
		t.Fatalf("decided %d and %d of %d events", len(one), len(eight), len(evs))
	}
	crowded := 0
	for id, d1 := range one {
		d8 := eight[id]
		if !slices.Equal(d1.Features, d8.Features) {
			t.Fatalf("event %s: features differ\n1 shard:  %v\n8 shards: %v", id, d1.Features, d8.Features)
		}
		if d1.Action != d8.Action || d1.Score != d8.Score || d1.Reason != d8.Reason || d1.Late != d8.Late ||
			!slices.Equal(ruleIDs(d1.Matched), ruleIDs(d8.Matched)) || !slices.Equal(ruleIDs(d1.Shadow), ruleIDs(d8.Shadow)) {
			t.Fatalf("event %s: 1 shard %v %d %q %v, 8 shards %v %d %q %v", id,
				d1.Action, d1.Score, d1.Reason, ruleIDs(d1.Matched), d8.Action, d8.Score, d8.Reason, ruleIDs(d8.Matched))
		}
		if d1.Reason == "" && feature(t, d1, "accounts_per_device_1h") >= 5 {
			crowded++
		}
	}
	if crowded == 0 {
		t.Fatal("no event saw five accounts on a device: the traffic does not test entity windows")
	}
}

// TestTurnstileLetsPassersThrough checks the turnstile's bookkeeping on its
// own: numbers leaving before their turn (passers) are skipped over, and
// the shard whose turn comes is woken.
func TestTurnstileLetsPassersThrough(t *testing.T) {
	tt := newTurnstile(2, 4)
	for i := range 6 { // numbers 1..6, odd ones on shard 0, even on shard 1
		tt.commit(tt.number(i % 2))
	}
	// 2, 3 and 5 pass before their turn; 1 takes it, so the turn jumps to 4.
	for _, s := range []uint64{2, 3, 5} {
		tt.leave(s)
	}
	tt.enter(1, 0)
	tt.leave(1)
	if got := tt.next.Load(); got != 4 {
		t.Fatalf("after 1 left with 2 and 3 passed, next = %d, want 4", got)
	}
	entered := make(chan struct{})
	go func() {
		tt.enter(6, 1)
		close(entered)
	}()
	select {
	case <-entered:
		t.Fatal("6 entered before 4 left")
	case <-time.After(20 * time.Millisecond):
	}
	tt.enter(4, 1) // its turn already: no wait
	tt.leave(4)    // 5 already passed: the turn goes to 6, whose shard wakes
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("6 was never woken")
	}
}
