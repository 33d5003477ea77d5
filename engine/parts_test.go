package engine

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fastjson"

	"riskd/bench/traffic"
	"riskd/features"
	"riskd/internal/keyhash"
	"riskd/rules"
)

// submitPart submits raw as a stream message of the given part and waits
// for it; for PartShared it returns nil (nothing is decided).
func submitPart(t *testing.T, ctx context.Context, e *Engine, raw []byte, part Part) *Decision {
	t.Helper()
	type answer struct {
		d   *Decision
		err error
	}
	got := make(chan answer, 1)
	err := e.Submit(ctx, Message{Value: raw, Part: part, Done: func(d *Decision, err error) {
		if d != nil && d.SharedOnly {
			d = nil
		}
		got <- answer{d, err}
	}})
	if err != nil {
		t.Fatal(err)
	}
	a := <-got
	if a.err != nil {
		t.Fatal(a.err)
	}
	if part != PartShared && a.d == nil {
		t.Fatal("a decided part answered without a decision")
	}
	return a.d
}

// TestFleetPartsDecideAsOneEngine splits a stream the way a fleet of three
// instances does: each event is decided (PartAll) by the instance that
// owns its account's partition and added to the shared entity windows
// only (PartShared) by the other two. Every decision must equal a single
// engine's, entity windows included. Halfway, one partition moves: its
// new owner rebuilds the accounts' state by deciding the partition's
// earlier events again with PartAccount (its shared windows hold them
// already), and goes on deciding them as the single engine does.
func TestFleetPartsDecideAsOneEngine(t *testing.T) {
	evs, one, oneCtx, fleet, ctxs, partitionOf := threeEngineFleet(t, 11)
	owner := []int{0, 1, 2} // by partition
	moveAt := len(evs) / 2
	var compared, crowded, locked int
	for n, raw := range evs {
		if n == moveAt {
			// Partition 2 moves to instance 0, which decides its history
			// again, account state only, outputs dropped.
			owner[2] = 0
			for _, old := range evs[:n] {
				if partitionOf(old) == 2 {
					submitPart(t, ctxs[0], fleet[0], old, PartAccount)
				}
			}
		}
		want := mustDecideStream(t, oneCtx, one, raw)
		p := partitionOf(raw)
		var got *Decision
		for i, e := range fleet {
			if i == owner[p] {
				got = submitPart(t, ctxs[i], e, raw, PartAll)
				continue
			}
			// After the move the old owner reads partition 2 as any other
			// instance does; its accounts' state stays, unused.
			submitPart(t, ctxs[i], e, raw, PartShared)
		}
		if !slices.Equal(want.Features, got.Features) {
			t.Fatalf("event %d (%s, partition %d): features differ\none engine: %v\nfleet:      %v",
				n, want.EventID, p, want.Features, got.Features)
		}
		if want.Action != got.Action || want.Score != got.Score || want.Reason != got.Reason || want.Late != got.Late ||
			!slices.Equal(ruleIDs(want.Matched), ruleIDs(got.Matched)) {
			t.Fatalf("event %d (%s, partition %d): one engine %v %d %q %v, fleet %v %d %q %v", n, want.EventID, p,
				want.Action, want.Score, want.Reason, ruleIDs(want.Matched), got.Action, got.Score, got.Reason, ruleIDs(got.Matched))
		}
		compared++
		if want.Reason == "" && feature(t, want, "accounts_per_device_1h") >= 5 {
			crowded++
		}
		if want.Reason == ReasonAccountLocked {
			locked++
		}
	}
	if crowded == 0 {
		t.Fatal("no event saw five accounts on a device: the traffic does not test entity windows")
	}
	if locked == 0 {
		t.Fatal("no event met a locked account: the traffic does not test that locked accounts' events count for their entities")
	}
	t.Logf("%d decisions equal; %d read a device of five accounts or more; %d met a locked account", compared, crowded, locked)
}

// threeEngineFleet generates 6,000 events of 300 accounts (traffic seed
// seed) and starts one engine and a fleet of three on the reference
// features, with partitionOf splitting the accounts in three partitions.
func threeEngineFleet(t *testing.T, seed uint64) (evs [][]byte, one *Engine, oneCtx context.Context,
	fleet []*Engine, ctxs []context.Context, partitionOf func([]byte) int) {
	t.Helper()
	set, holder := loadReferenceProbed(t)
	g := traffic.New(traffic.Config{Accounts: 300, Seed: seed, FraudRate: 0.4,
		Start: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)})
	evs = generate(g, 6000)
	cfg := Config{Shards: 2, Now: fixedClock(), MaxFutureSkew: -1}
	one = New(cfg, set, holder)
	oneCtx = startEngine(t, one)
	const instances = 3
	fleet = make([]*Engine, instances)
	ctxs = make([]context.Context, instances)
	for i := range fleet {
		fleet[i] = New(cfg, set, holder)
		ctxs[i] = startEngine(t, fleet[i])
	}
	partitionOf = func(raw []byte) int {
		return int(keyhash.String(fastjson.GetString(raw, "account_id")) % instances)
	}
	return evs, one, oneCtx, fleet, ctxs, partitionOf
}

// mustDecideStream decides raw as a stream message (PartAll).
func mustDecideStream(t *testing.T, ctx context.Context, e *Engine, raw []byte) *Decision {
	t.Helper()
	return submitPart(t, ctx, e, raw, PartAll)
}

// TestLockedAccountsEventsCountForTheirEntities: a locked account's event
// is refused and leaves its account's state alone, but its device counts
// it, as an instance that does not hold the lock would.
func TestLockedAccountsEventsCountForTheirEntities(t *testing.T) {
	set, holder := loadReferenceProbed(t)
	e := New(Config{Shards: 2, Now: fixedClock()}, set, holder)
	ctx := startEngine(t, e)
	logins := farmLogins("lk", 6, t0)
	if err := e.Do(ctx, "lk-acct-2", func(s *Scorer) { s.Lock("lk-acct-2", IndefiniteMs, "test") }); err != nil {
		t.Fatal(err)
	}
	var d *Decision
	for i, raw := range logins {
		d = mustDecideStream(t, ctx, e, raw)
		if i == 2 && d.Action != rules.Lock {
			t.Fatalf("the locked account's login was decided %v, want lock", d.Action)
		}
	}
	if got := feature(t, d, "accounts_per_device_1h"); got != 6 {
		t.Errorf("accounts_per_device_1h = %v after 6 accounts (one locked) on one device, want 6", got)
	}
}

// TestPartitionStateMovesWithItsPartition moves a partition between the
// instances of a fleet by its saved state instead of by replaying its
// history: the old owner's checkpoint, cut a third of the way in, gives
// the new owner the partition's accounts (profiles, windows, rule locks,
// decided ids), which then decides the partition's events after the cut
// again for their accounts' part and goes on; the old owner drops them.
// Three quarters of the way in the partition moves back the same way,
// from a checkpoint cut at the move. Every decision must equal a single
// engine's.
func TestPartitionStateMovesWithItsPartition(t *testing.T) {
	evs, one, oneCtx, fleet, ctxs, partitionOf := threeEngineFleet(t, 12)
	submit := func(i int, raw []byte, part Part) *Decision {
		t.Helper()
		got := make(chan *Decision, 1)
		err := fleet[i].Submit(ctxs[i], Message{Value: raw, Part: part, Source: Source{Topic: "payments", Partition: partitionOf(raw)},
			Done: func(d *Decision, err error) {
				if err != nil {
					t.Error(err)
				}
				got <- d
			}})
		if err != nil {
			t.Fatal(err)
		}
		return <-got
	}
	checkpoint := func(i int) []byte {
		var buf bytes.Buffer
		if err := fleet[i].Checkpoint(ctxs[i], &buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	accounts := func(i int) int {
		n := 0
		for _, sh := range fleet[i].shards {
			n += sh.scorer.store.Accounts()
		}
		return n
	}
	// move hands partition 2 from instance from to instance to with the
	// state in cut, taken after event cutAt, at event n.
	owner := []int{0, 1, 2}
	move := func(from, to int, cut []byte, cutAt, n int) {
		t.Helper()
		before := accounts(from)
		dropped, err := fleet[from].DropPartitions(ctxs[from], []int{2})
		if err != nil {
			t.Fatal(err)
		}
		if dropped.Accounts == 0 || accounts(from) != before-dropped.Accounts {
			t.Fatalf("the old owner dropped %+v of its %d accounts, now holds %d", dropped, before, accounts(from))
		}
		took, err := fleet[to].RestorePartitions(ctxs[to], bytes.NewReader(cut), []int{2}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if took.Accounts == 0 || took.EventIDs == 0 {
			t.Fatalf("the new owner took over %+v", took)
		}
		for _, old := range evs[cutAt:n] {
			if partitionOf(old) == 2 {
				submit(to, old, PartAccount)
			}
		}
		owner[2] = to
		t.Logf("partition 2 moved from instance %d to %d at event %d, with the state cut at event %d: dropped %+v, took over %+v",
			from, to, n, cutAt, dropped, took)
	}
	cutAt, moveAt, backAt := len(evs)/3, len(evs)/2, len(evs)*3/4
	var cut []byte
	var compared, locked int
	for n, raw := range evs {
		switch n {
		case cutAt:
			cut = checkpoint(2)
		case moveAt:
			move(2, 0, cut, cutAt, n)
		case backAt:
			move(0, 2, checkpoint(0), n, n)
		}
		want := mustDecideStream(t, oneCtx, one, raw)
		p := partitionOf(raw)
		var got *Decision
		for i := range fleet {
			if i == owner[p] {
				got = submit(i, raw, PartAll)
				continue
			}
			submit(i, raw, PartShared)
		}
		if !slices.Equal(want.Features, got.Features) {
			t.Fatalf("event %d (%s, partition %d): features differ\none engine: %v\nfleet:      %v",
				n, want.EventID, p, want.Features, got.Features)
		}
		if want.Action != got.Action || want.Score != got.Score || want.Reason != got.Reason ||
			!slices.Equal(ruleIDs(want.Matched), ruleIDs(got.Matched)) || len(want.Alerts) != len(got.Alerts) {
			t.Fatalf("event %d (%s, partition %d): one engine %v %d %q %v %d alerts, fleet %v %d %q %v %d alerts", n, want.EventID, p,
				want.Action, want.Score, want.Reason, ruleIDs(want.Matched), len(want.Alerts),
				got.Action, got.Score, got.Reason, ruleIDs(got.Matched), len(got.Alerts))
		}
		compared++
		if p == 2 && n > moveAt && want.Reason == ReasonAccountLocked {
			locked++
		}
	}
	if locked == 0 {
		t.Fatal("no event of the moved partition met a locked account after the move: the traffic does not test that locks move")
	}
	// A redelivered event of the moved partition, decided before the cut
	// by its first owner, is a duplicate for the owner now.
	for _, raw := range evs[:cutAt] {
		if partitionOf(raw) == 2 {
			if d := submit(2, raw, PartAll); !d.Duplicate {
				t.Fatalf("event %s redelivered after two moves was decided again", d.EventID)
			}
			break
		}
	}
	t.Logf("%d decisions equal; %d events of the moved partition met a locked account after the move", compared, locked)
}

// TestPartitionStateRefused: a checkpoint that cannot give a partition's
// accounts to a running engine (damaged, of another shard count, of other
// window features) is refused with the reason, and the engine's state is
// what it was.
func TestPartitionStateRefused(t *testing.T) {
	before, holderBefore := loadInline(t, featuresBefore, rulesBefore)
	after, holderAfter := loadInline(t, featuresAfter, rulesAfter)
	g := traffic.New(traffic.Config{Accounts: 100, Seed: 5, Start: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)})
	evs := generate(g, 1000)
	cfg := Config{Shards: 2, Now: fixedClock(), MaxFutureSkew: -1}
	cut := func(set *features.Set, holder *rules.Holder, shards int) []byte {
		c := cfg
		c.Shards = shards
		e := New(c, set, holder)
		ctx := startEngine(t, e)
		for _, raw := range evs {
			if err := e.Submit(ctx, Message{Value: raw, Source: Source{Topic: "payments", Partition: 1}, Done: func(*Decision, error) {}}); err != nil {
				t.Fatal(err)
			}
		}
		var buf bytes.Buffer
		if err := e.Checkpoint(ctx, &buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	good := cut(before, holderBefore, 2)
	live := New(cfg, before, holderBefore)
	ctx := startEngine(t, live)
	if _, err := live.RestorePartitions(ctx, bytes.NewReader(good), []int{1}, time.Now()); err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := live.Checkpoint(ctx, &want); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, data, want string
	}{
		{"damaged", string(good[:len(good)/2]), "unreadable engine checkpoint"},
		{"another shard count", string(cut(before, holderBefore, 3)), "checkpoint has 3 shards but engine.shards is 2"},
		{"other window features", string(cut(after, holderAfter, 2)), "window features are not this engine's"},
	} {
		_, err := live.RestorePartitions(ctx, strings.NewReader(tc.data), []int{1}, time.Now())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: RestorePartitions = %v, want an error saying %q", tc.name, err, tc.want)
		}
		var got bytes.Buffer
		if err := live.Checkpoint(ctx, &got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("%s: the refused restore changed the engine's state", tc.name)
		}
	}
}

// TestRestoredLockLiftedSinceTheCut: support unlocked an account after the
// checkpoint its partition is restored from was cut. Every instance
// applied the unlock already (this one found no lock to lift), so the
// rule lock in the checkpoint must not come back; without the unlock it
// does.
func TestRestoredLockLiftedSinceTheCut(t *testing.T) {
	set, holder := loadInline(t, featuresBefore, rulesBefore)
	now := fixedClock()
	cfg := Config{Shards: 2, Now: now, MaxFutureSkew: -1}
	const account = "lifted-acct"
	src := Source{Topic: "account-events", Partition: 4}
	owner := New(cfg, set, holder)
	ownerCtx := startEngine(t, owner)
	for i := range 3 {
		raw := fmt.Appendf(nil, `{"event_id":"lifted-%d","type":"login_failed","ts":%d,"account_id":%q}`, i, now().UnixMilli()-int64(3-i)*1000, account)
		d := decideFrom(t, ownerCtx, owner, raw, src)
		if i == 2 && d.Action != rules.Lock {
			t.Fatalf("the third failed login was decided %v, want lock", d.Action)
		}
	}
	var cut bytes.Buffer
	if err := owner.Checkpoint(ownerCtx, &cut); err != nil {
		t.Fatal(err)
	}
	cutAt := now().Add(-time.Second)
	locked := func(e *Engine, ctx context.Context) bool {
		var ok bool
		if err := e.Do(ctx, account, func(s *Scorer) { _, ok = s.locks.lockedUntil(keyhash.String(account), now().UnixMilli()) }); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, unlocked := range []bool{false, true} {
		taker := New(cfg, set, holder)
		ctx := startEngine(t, taker)
		if unlocked {
			if err := taker.Do(ctx, account, func(s *Scorer) { s.UnlockAccount(account) }); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := taker.RestorePartitions(ctx, bytes.NewReader(cut.Bytes()), []int{4}, cutAt); err != nil {
			t.Fatal(err)
		}
		if got := locked(taker, ctx); got == unlocked {
			t.Errorf("unlocked by support since the cut: %v; after the restore the account is locked: %v", unlocked, got)
		}
	}
}

// decideFrom submits raw as a stream message from src and waits for its
// decision.
func decideFrom(t *testing.T, ctx context.Context, e *Engine, raw []byte, src Source) *Decision {
	t.Helper()
	got := make(chan *Decision, 1)
	if err := e.Submit(ctx, Message{Value: raw, Source: src, Done: func(d *Decision, err error) {
		if err != nil {
			t.Error(err)
		}
		got <- d
	}}); err != nil {
		t.Fatal(err)
	}
	return <-got
}
