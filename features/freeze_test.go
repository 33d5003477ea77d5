package features

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"riskd/event"
	"riskd/internal/keyhash"
)

// A frozen copy snapshots to the bytes the state had at the freeze, while
// the original goes on observing on another goroutine (run with -race).
func TestFreezeKeepsTheStateOfItsMoment(t *testing.T) {
	snap := func(t *testing.T, w interface{ Snapshot(io.Writer) error }) []byte {
		t.Helper()
		var buf bytes.Buffer
		if err := w.Snapshot(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	s := mustSet(t, benchYAML)

	t.Run("a Store with its own Shared", func(t *testing.T) {
		st := s.NewStore()
		var v Values
		evs := make([]event.Event, 6000)
		for i := range evs {
			evs[i] = genEvent(i, 50)
		}
		for i := range evs[:3000] {
			st.Observe(&evs[i], &v)
		}
		want := snap(t, st)
		frozen := st.Freeze()
		var got []byte
		var wg sync.WaitGroup
		wg.Go(func() { got = snap(t, frozen) })
		for i := range evs[3000:] {
			st.Observe(&evs[3000+i], &v)
		}
		wg.Wait()
		if !bytes.Equal(got, want) {
			t.Fatal("the frozen Store's snapshot differs from the Store's at the freeze")
		}
		if bytes.Equal(snap(t, st), want) {
			t.Fatal("the Store did not change after the freeze: the test shows nothing")
		}
	})

	t.Run("stores of one Shared", func(t *testing.T) {
		sh := s.NewShared()
		stores := []*Store{sh.NewStore(), sh.NewStore(), sh.NewStore()}
		of := func(ev *event.Event) int { return int(keyhash.String(ev.AccountID) % 3) }
		evs := crowdEvents(6000)
		var v Values
		for i := range evs[:3000] {
			stores[of(&evs[i])].Observe(&evs[i], &v)
		}
		wantShared := snap(t, sh)
		want := make([][]byte, len(stores))
		frozen := make([]*Store, len(stores))
		for i, st := range stores {
			want[i] = snap(t, st)
			frozen[i] = st.Freeze()
		}
		frozenShared := sh.Freeze()
		var got [][]byte
		var gotShared []byte
		var wg sync.WaitGroup
		wg.Go(func() {
			gotShared = snap(t, frozenShared)
			for _, f := range frozen {
				got = append(got, snap(t, f))
			}
		})
		for i := range evs[3000:] {
			ev := &evs[3000+i]
			stores[of(ev)].Observe(ev, &v)
		}
		wg.Wait()
		if !bytes.Equal(gotShared, wantShared) {
			t.Fatal("the frozen Shared's snapshot differs from the Shared's at the freeze")
		}
		for i := range stores {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("store %d: the frozen snapshot differs from the one at the freeze", i)
			}
		}
		if bytes.Equal(snap(t, sh), wantShared) {
			t.Fatal("the Shared did not change after the freeze: the test shows nothing")
		}
	})
}

// TestLazyFreezeOfATable freezes an account table, writes to it in every
// way the Store does (an update of a value not copied yet and of one
// copied already, a write through getForWrite, an insert into a slot a
// delete freed below the frozen count, inserts that reallocate the slab,
// a delete that moves a value from far away before and after the
// reallocation, a delete of the last value, a sweep that changes and
// deletes as it walks), then completes the copy: the copy equals a deep
// copy taken eagerly at the freeze, value by value with its items and
// seen set, and shares no memory with the table; the table equals one
// that saw the same writes without a freeze. The completion runs after
// the writes, and again on another goroutine while they run (-race).
func TestLazyFreezeOfATable(t *testing.T) {
	for _, concurrent := range []bool{false, true} {
		name := "completed after the writes"
		if concurrent {
			name = "completed while the writes run"
		}
		t.Run(name, func(t *testing.T) {
			const n0 = 5*1024 + 300
			liveSt, plainSt := accountStore(n0), accountStore(n0)
			live := &liveSt.accounts
			eagerSt := &Store{}
			eager := make([]account, n0)
			eagerSt.cloneAccounts(eager, live.vals, liveSt)

			frozenSt := &Store{}
			g := live.freeze(func(dst, src []account) { frozenSt.cloneAccounts(dst, src, liveSt) })
			var frozen []account
			var wg sync.WaitGroup
			if concurrent {
				wg.Go(func() { frozen = g.complete() })
			}
			grew := writeEveryWay(t, liveSt)
			writeEveryWay(t, plainSt)
			if !concurrent {
				frozen = g.complete()
			}
			wg.Wait()
			if !grew {
				t.Fatal("the inserts did not reallocate the slab: the test shows less than it says")
			}
			if live.guard.Load() != nil {
				t.Fatal("the guard is still installed after the copy completed")
			}
			want := withLists(eagerSt, eager)
			if got := withLists(frozenSt, frozen); !reflect.DeepEqual(got, want) {
				t.Fatal(firstDifference(got, want))
			}
			if got, want := withLists(liveSt, live.vals), withLists(plainSt, plainSt.accounts.vals); !reflect.DeepEqual(got, want) || !slices.Equal(live.slots, plainSt.accounts.slots) {
				t.Fatalf("the table after the writes differs from one written without a freeze: %s", firstDifference(got, want))
			}
			for i := range live.vals { // the copy shares nothing the table writes
				a := &live.vals[i]
				for j, items := 0, liveSt.accItems.view(a.win.items); j < len(items); j++ {
					items[j].x++
				}
				for j, seen := 0, liveSt.accSeen.view(a.p.seen); j < len(seen); j++ {
					seen[j]++
				}
			}
			if got := withLists(frozenSt, frozen); !reflect.DeepEqual(got, want) {
				t.Fatalf("the copy changed with the table: %s", firstDifference(got, want))
			}
		})
	}
}

// accountStore returns a Store of n accounts, each with a few items (with
// room to append in place) and a seen set, and no Set: only its account
// table and arenas are used.
func accountStore(n int) *Store {
	st := &Store{}
	tb := &st.accounts
	for i := range n {
		k := keyhash.String(fmt.Sprintf("acct-%d", i))
		a, _ := tb.upsert(k)
		a.win.key, a.hasWin, a.hasProfile = k, true, true
		a.p.events = uint32(i)
		var items []item
		a.win.items, items = st.accItems.alloc(i%7 + 2)
		a.win.items.setLen(i % 7)
		for j := range i % 7 {
			items[j] = item{x: uint64(i*10 + j), b: uint32(j), fn: 1}
		}
		if i%3 != 0 {
			st.accSeen.set(&a.p.seen, []uint64{uint64(i), uint64(i) << 8})
		}
	}
	return st
}

// accountLists is an account with its lists as slices: what two accounts
// of different arenas are compared by.
type accountLists struct {
	a     account // its lists zeroed
	items []item
	seen  []uint64
}

// withLists returns the accounts vals, whose lists are in st's arenas,
// with their lists.
func withLists(st *Store, vals []account) []accountLists {
	out := make([]accountLists, len(vals))
	for i, a := range vals {
		out[i] = accountLists{a: a, items: slices.Clone(st.accItems.view(a.win.items)), seen: slices.Clone(st.accSeen.view(a.p.seen))}
		out[i].a.win.items, out[i].a.p.seen = list{}, list{}
		if len(out[i].items) == 0 {
			out[i].items = nil
		}
		if len(out[i].seen) == 0 {
			out[i].seen = nil
		}
	}
	return out
}

// writeEveryWay writes to tb in every way the Store does (see
// TestLazyFreezeOfATable) and reports whether its inserts reallocated the
// slab. The writes depend on the table's content alone, so two equal
// tables end equal.
func writeEveryWay(t *testing.T, st *Store) (grew bool) {
	t.Helper()
	tb := &st.accounts
	change := func(a *account) {
		a.p.events++
		items := st.accItems.view(a.win.items)
		for j := range items {
			items[j].x += 3
		}
		st.accItems.appendTo(&a.win.items, items, item{x: 7, fn: 1}) // in place while there is room
		if seen := st.accSeen.view(a.p.seen); len(seen) > 0 {
			seen[0] ^= 0xff
		}
	}
	keyAt := func(p int) uint64 { return tb.vals[p].win.key }
	upsert := func(k uint64) *account {
		a, fresh := tb.upsert(k)
		if fresh {
			a.win.key = k
		}
		return a
	}
	insert := func(i int) {
		k := keyhash.String(fmt.Sprintf("new-%d", i))
		if a := upsert(k); a.win.items != (list{}) {
			t.Fatalf("insert of new-%d found a value", i)
		}
	}

	change(upsert(keyAt(1500)))         // a value not copied yet
	change(upsert(keyAt(1500)))         // the same value, copied now
	change(tb.getForWrite(keyAt(3000))) // another, through getForWrite
	tb.del(tb.find(keyAt(100)))         // the last value moves from far away into 100
	change(&tb.vals[100])               // (copied: the del did it)
	tb.del(len(tb.vals) - 1)            // the last value itself
	insert(0)                           // into the slot the delete freed, below the frozen count
	slab := &tb.vals[0]
	for i := 1; i < 2048 && &tb.vals[0] == slab; i++ {
		insert(i)
	}
	grew = &tb.vals[0] != slab
	change(upsert(keyAt(4200))) // a value not copied, after the reallocation
	tb.del(3500)                // a value inserted after the freeze moves into 3500
	change(&tb.vals[3500])
	for j := 0; j < len(tb.vals); { // a sweep, as Expire does
		a := &tb.vals[j]
		switch {
		case a.win.key%11 == 0:
			tb.del(j)
			continue
		case a.win.key%5 == 0:
			tb.willWrite(j)
			a.hasProfile = false
			st.accSeen.release(&a.p.seen)
		}
		j++
	}
	return grew
}

// firstDifference describes the first value where got and want differ.
func firstDifference(got, want []accountLists) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d values, want %d", len(got), len(want))
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], want[i]) {
			return fmt.Sprintf("value %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	return "no difference"
}

// TestLazyCutIsTheStateAtTheCut observes one stream with a freeze at
// event k and the copy completed on another goroutine while the stream
// goes on, and again without a freeze, snapshotting at event k: the
// frozen copy's snapshot is the bytes of the state at k, and the state
// after the stream is the bytes of the state without a cut. The stream
// has thousands of accounts coming and going, so it inserts, updates,
// resets, drops partitions, observes in the fleet's two scopes and
// expires idle state (deleting and moving values) while the copy is in
// progress. The completion starts at the
// freeze, halfway through the rest of the stream, or after it (when the
// stream's writes have copied what they touched).
func TestLazyCutIsTheStateAtTheCut(t *testing.T) {
	s := mustSet(t, driftYAML, func(c *Config) { c.ProfileTTL = time.Hour })
	evs := driftEvents(40_000)
	const k = 20_000
	for _, own := range []bool{true, false} {
		layout := "stores of one Shared"
		if own {
			layout = "a Store with its own Shared"
		}
		for _, from := range []int{k, (k + len(evs)) / 2, len(evs)} {
			t.Run(fmt.Sprintf("%s, completed from event %d", layout, from), func(t *testing.T) {
				eager := newDriftRig(s, own)
				var want []byte
				for i := range evs {
					if i == k {
						want = eager.snapshot(t)
					}
					eager.observe(i, evs)
				}
				wantEnd := eager.snapshot(t)

				lazy := newDriftRig(s, own)
				var frozen *driftRig
				var got []byte
				var wg sync.WaitGroup
				for i := range evs {
					if i == k {
						frozen = lazy.freeze()
						if frozen.stores[0].accGuard.n0 < 2000 {
							t.Fatalf("%d accounts at the cut: too few to show anything", frozen.stores[0].accGuard.n0)
						}
					}
					if i == from {
						wg.Go(func() { got = frozen.snapshot(t) })
					}
					lazy.observe(i, evs)
				}
				if from == len(evs) {
					wg.Go(func() { got = frozen.snapshot(t) })
				}
				wg.Wait()
				if !bytes.Equal(got, want) {
					t.Fatal("the lazily frozen state's snapshot differs from the state's at the cut")
				}
				if !bytes.Equal(lazy.snapshot(t), wantEnd) {
					t.Fatal("the state after the stream differs from the state without a cut")
				}
				if bytes.Equal(want, wantEnd) {
					t.Fatal("the state did not change after the cut: the test shows nothing")
				}
			})
		}
	}
}

// driftMoveLag is how many events after its shared part an event of a
// moving partition is decided for its account (driftRig.observe).
const driftMoveLag = 5 * 37

// driftYAML are window features by account and by three shared groups,
// with windows short enough that accounts go idle and expire within a
// stream.
const driftYAML = `
card_payments_1h: {count: payment, by: card_id, window: 1h}
payments_10m: {count: payment, by: account, window: 10m}
amount_15m: {sum: amount, by: account, window: 15m, where: 'type == "payment"'}
devices_15m: {distinct: device.id, by: account, window: 15m}
accounts_per_device_10m: {distinct: account_id, by: device.id, window: 10m}
device_events_5m: {count: "*", by: device.id, window: 5m}
ip_payments_10m: {count: payment, by: ip, window: 10m}
`

// driftEvents returns n events a quarter second apart of accounts that
// come and go: event i is of one of the 6,000 accounts after i/4, so an
// account is active for less than two hours, then idle until it expires.
func driftEvents(n int) []event.Event {
	r := rand.New(rand.NewPCG(3, 4))
	types := [...]string{"payment", "payment", "login", "payee_add", "topup", "login_failed"}
	evs := make([]event.Event, n)
	for i := range evs {
		a := i/4 + r.IntN(6000)
		evs[i] = event.Event{
			ID:        fmt.Sprintf("e-%d", i),
			Type:      types[r.IntN(len(types))],
			AccountID: fmt.Sprintf("acct-%d", a),
			TS:        t0 + int64(i)*250 - int64(r.IntN(30_000)),
			Amount:    int64(100 + r.IntN(50_000)),
			Device:    event.Device{ID: fmt.Sprintf("dev-%d", a%700)},
			IP:        fmt.Sprintf("10.1.%d.%d", a%5, a%90),
			PayeeID:   fmt.Sprintf("payee-%d", r.IntN(50)),
		}
		if i%37 == 0 {
			evs[i].CardID = fmt.Sprintf("card-%d", i)
		}
	}
	return evs
}

// driftRig is the state of an engine of two shards (Stores of one
// Shared), or of one Store with its own Shared, fed as the engine feeds
// it.
type driftRig struct {
	shared *Shared // nil when the Store owns it
	stores []*Store
	v      Values
}

func newDriftRig(s *Set, own bool) *driftRig {
	if own {
		return &driftRig{stores: []*Store{s.NewStore()}}
	}
	sh := s.NewShared()
	return &driftRig{shared: sh, stores: []*Store{sh.NewStore(), sh.NewStore()}}
}

// observe feeds event i of evs to its account's Store, with the other
// writes a stream makes now and then.
func (r *driftRig) observe(i int, evs []event.Event) {
	of := func(ev *event.Event) *Store {
		h := keyhash.String(ev.AccountID)
		st := r.stores[h%uint64(len(r.stores))]
		st.SetPartition(int(h % 4))
		return st
	}
	ev := &evs[i]
	st := of(ev)
	// Every 37th event is of a partition that moves here, as in a fleet:
	// added to the shared windows at its turn, decided for its account
	// later (reading its card, which no other event has, as of itself).
	if i%37 == 0 {
		st.ObserveIn(ev, &r.v, ScopeShared)
	} else {
		st.Observe(ev, &r.v)
	}
	if j := i - driftMoveLag; j >= 0 && j%37 == 0 {
		of(&evs[j]).ObserveIn(&evs[j], &r.v, ScopeAccount)
	}
	switch {
	case i%500 == 0:
		for _, st := range r.stores {
			st.Expire(ev.TS)
		}
	case i%300 == 7 && i > 1500: // an account not written lately
		of(&evs[i-1500]).ResetAccount(evs[i-1500].AccountID, []int{0, 1})
	case i == 27_000:
		for _, st := range r.stores {
			st.DropPartitions(func(p int) bool { return p == 1 })
		}
	}
}

// freeze freezes the rig as an engine's cut does.
func (r *driftRig) freeze() *driftRig {
	f := &driftRig{}
	for _, st := range r.stores {
		f.stores = append(f.stores, st.Freeze())
	}
	if r.shared != nil {
		f.shared = r.shared.Freeze()
	}
	return f
}

// snapshot returns the rig's snapshots: the Shared's, then each Store's.
func (r *driftRig) snapshot(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	if r.shared != nil {
		if err := r.shared.Snapshot(&buf); err != nil {
			t.Error(err)
		}
	}
	for _, st := range r.stores {
		if err := st.Snapshot(&buf); err != nil {
			t.Error(err)
		}
	}
	return buf.Bytes()
}
