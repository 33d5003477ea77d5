package features

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"riskd/event"
	"riskd/internal/keyhash"
)

// beforeYAML and afterYAML are a feature file before and after an
// analyst's edit: after keeps some features as they were (one renamed,
// one declared twice), drops two (and with them every feature by ip),
// changes the window of one and the filter of another under the same
// names, and adds two, one in a new group (channel).
const beforeYAML = `
payments_1h: {count: payment, by: account, window: 1h}
amount_24h: {sum: amount, by: account, window: 24h, where: 'type == "payment"'}
avg_amount_1h: {avg: amount, by: account, window: 1h}
max_amount_1h: {max: amount, by: account, window: 1h}
min_amount_1h: {min: amount, by: account, window: 1h}
devices_24h: {distinct: device.id, by: account, window: 24h}
accounts_per_device_1h: {distinct: account_id, by: device.id, window: 1h}
accounts_per_ip_1h: {distinct: account_id, by: ip, window: 1h}
logins_ip_15m: {count: login, by: ip, window: 15m}
senders_per_payee_24h: {distinct: account_id, by: payee_id, window: 24h}
failed_logins_15m: {count: login_failed, by: account, window: 15m}
big_payments_1h: {count: payment, by: account, window: 1h, where: 'amount > 20000'}
`

const afterYAML = `
failed_logins_15m: {count: login_failed, by: account, window: 30m}
senders_to_payee_24h: {distinct: account_id, by: payee, window: 24h}
payments_1h: {count: payment, by: account, window: 1h}
payments_again_1h: {count: payment, by: account_id, window: 1h}
amount_24h: {sum: amount, by: account, window: 24h, where: ' type == "payment" '}
avg_amount_1h: {avg: amount, by: account, window: 1h}
max_amount_1h: {max: amount, by: account, window: 1h}
min_amount_1h: {min: amount, by: account, window: 1h}
devices_24h: {distinct: device, by: account, window: 24h}
accounts_per_device_1h: {distinct: account_id, by: device.id, window: 1h}
big_payments_1h: {count: payment, by: account, window: 1h, where: 'amount > 30000'}
payments_per_device_1h: {count: payment, by: device.id, window: 1h}
topups_per_channel_1h: {count: topup, by: channel, window: 1h}
`

// keptAs maps each kept feature of afterYAML to the feature of
// beforeYAML whose state it keeps.
var keptAs = map[string]string{
	"senders_to_payee_24h":   "senders_per_payee_24h",
	"payments_1h":            "payments_1h",
	"payments_again_1h":      "payments_1h",
	"amount_24h":             "amount_24h",
	"avg_amount_1h":          "avg_amount_1h",
	"max_amount_1h":          "max_amount_1h",
	"min_amount_1h":          "min_amount_1h",
	"devices_24h":            "devices_24h",
	"accounts_per_device_1h": "accounts_per_device_1h",
}

// storeRig is one Store with a Shared of its own (shards 0), or a Shared
// and its shards' Stores, as an engine has them.
type storeRig struct {
	set    *Set
	sh     *Shared
	stores []*Store
}

func newRig(set *Set, shards int) *storeRig {
	if shards == 0 {
		st := set.NewStore()
		return &storeRig{set: set, sh: st.shared, stores: []*Store{st}}
	}
	r := &storeRig{set: set, sh: set.NewShared()}
	for range shards {
		r.stores = append(r.stores, r.sh.NewStore())
	}
	return r
}

func (r *storeRig) store(ev *event.Event) *Store {
	return r.stores[keyhash.String(ev.AccountID)%uint64(len(r.stores))]
}

func (r *storeRig) observe(ev *event.Event, v *Values) LateMask { return r.store(ev).Observe(ev, v) }

// snapshot returns the Shared's snapshot (nil for one Store) and the
// Stores'.
func (r *storeRig) snapshot(t *testing.T) (shared []byte, stores [][]byte) {
	t.Helper()
	var buf bytes.Buffer
	if !r.stores[0].ownShared {
		if err := r.sh.Snapshot(&buf); err != nil {
			t.Fatal(err)
		}
		shared = bytes.Clone(buf.Bytes())
	}
	for _, st := range r.stores {
		buf.Reset()
		if err := st.Snapshot(&buf); err != nil {
			t.Fatal(err)
		}
		stores = append(stores, bytes.Clone(buf.Bytes()))
	}
	return shared, stores
}

// checkSharedMatchesOneStore checks that every event of evs reads the
// same values, and is late alike, on one Store of set as on four Stores
// sharing a Shared.
func checkSharedMatchesOneStore(t *testing.T, set *Set, evs []event.Event) {
	t.Helper()
	one, four := newRig(set, 0), newRig(set, 4)
	for i := range evs {
		var want, got Values
		wl, gl := one.observe(&evs[i], &want), four.observe(&evs[i], &got)
		if want != got || wl != gl {
			t.Fatalf("event %d: one Store gave late=%v %v\nfour sharing a Shared gave late=%v %v", i, wl, want.Windows, gl, got.Windows)
		}
	}
}

// roundTrip observes evs[:cut] in a rig of set (one Store, or a Shared
// and shards Stores), snapshots it, restores the snapshot into a second
// rig, and fails unless that one snapshots to the same bytes. It returns
// both rigs and the snapshot.
func roundTrip(t *testing.T, set *Set, shards int, evs []event.Event, cut int) (r, r2 *storeRig, shared []byte, stores [][]byte) {
	t.Helper()
	r = newRig(set, shards)
	var v Values
	for i := range evs[:cut] {
		r.observe(&evs[i], &v)
	}
	shared, stores = r.snapshot(t)
	r2 = restoreRig(t, set, shared, stores)
	shared2, stores2 := r2.snapshot(t)
	if !bytes.Equal(shared, shared2) || len(stores) != len(stores2) || !bytes.Equal(bytes.Join(stores, nil), bytes.Join(stores2, nil)) {
		t.Fatal("the restored state's snapshot differs")
	}
	return r, r2, shared, stores
}

// checkRoundTrip runs roundTrip with one Store and with a Shared and
// three Stores, and checks that the restored rig reads what the original
// does for every event after the cut.
func checkRoundTrip(t *testing.T, set *Set, evs []event.Event, cut int) {
	t.Helper()
	for _, shards := range []int{0, 3} {
		t.Run(fmt.Sprint(shards, " shards"), func(t *testing.T) {
			r, r2, _, _ := roundTrip(t, set, shards, evs, cut)
			for i := cut; i < len(evs); i++ {
				var v1, v2 Values
				l1, l2 := r.observe(&evs[i], &v1), r2.observe(&evs[i], &v2)
				if v1 != v2 || l1 != l2 {
					t.Fatalf("event %d: values differ after restore\n%v\n%v", i, v1.Windows, v2.Windows)
				}
			}
		})
	}
}

func restoreRig(t *testing.T, set *Set, shared []byte, stores [][]byte) *storeRig {
	t.Helper()
	if shared == nil {
		st, err := set.Restore(bytes.NewReader(stores[0]))
		if err != nil {
			t.Fatal(err)
		}
		return &storeRig{set: set, sh: st.shared, stores: []*Store{st}}
	}
	sh, err := set.RestoreShared(bytes.NewReader(shared))
	if err != nil {
		t.Fatal(err)
	}
	r := &storeRig{set: set, sh: sh}
	for _, b := range stores {
		st, err := sh.Restore(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		r.stores = append(r.stores, st)
	}
	return r
}

// TestRestoreAcrossAFeatureChange warms a store with beforeYAML's
// features, snapshots it and restores it with afterYAML's, then feeds
// both the same later events: every kept feature reads exactly what
// beforeYAML's store reads for the feature it keeps (profiles and
// lateness too), every new or changed one reads what a store that saw
// only the events after the restore reads, and is warming until the
// restored state's latest event time plus its window, not after.
func TestRestoreAcrossAFeatureChange(t *testing.T) {
	before, after := mustSet(t, beforeYAML), mustSet(t, afterYAML)
	evs := crowdEvents(6000)
	pre, post := evs[:3000], slices.Clone(evs[3000:])
	watermark := int64(never)
	for i := range pre {
		watermark = max(watermark, pre[i].TS)
	}
	// Dated after everything before the restore (the crowd's late events
	// are 10 minutes behind), so that a store that saw only these reads
	// the new features as the restored store does.
	for i := range post {
		post[i].TS += 15 * 60_000
	}
	fresh := []string{"failed_logins_15m", "big_payments_1h", "payments_per_device_1h", "topups_per_channel_1h"}
	commonGroups := []string{"account", "device.id", "payee_id"}

	for _, shards := range []int{0, 3} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) {
			old := newRig(before, shards)
			var v Values
			for i := range pre {
				old.observe(&pre[i], &v)
			}
			shared, stores := old.snapshot(t)
			restored := restoreRig(t, after, shared, stores)

			rep := restored.sh.Restored()
			if !rep.Restored || rep.Watermark != watermark || !rep.Changed() {
				t.Fatalf("report: restored=%v watermark %d (want %d) changed=%v", rep.Restored, rep.Watermark, watermark, rep.Changed())
			}
			var kept []string
			for _, k := range rep.Kept {
				if keptAs[k.Name] != k.Was || k.WarmingUntil != 0 {
					t.Errorf("kept %s from %s (warming until %d), want it from %s and not warming", k.Name, k.Was, k.WarmingUntil, keptAs[k.Name])
				}
				kept = append(kept, k.Name)
			}
			if len(kept) != len(keptAs) {
				t.Errorf("kept %v, want the %d of keptAs", kept, len(keptAs))
			}
			var gotFresh []string
			for _, f := range rep.Fresh {
				i, _ := after.Index(f.Name)
				if want := watermark + after.Definitions()[i].Window.Milliseconds(); f.Until != want {
					t.Errorf("%s warming until %d, want the watermark plus its window, %d", f.Name, f.Until, want)
				}
				gotFresh = append(gotFresh, f.Name)
			}
			if !slices.Equal(gotFresh, fresh) {
				t.Errorf("started empty: %v, want %v", gotFresh, fresh)
			}
			if want := []string{"accounts_per_ip_1h", "logins_ip_15m", "failed_logins_15m", "big_payments_1h"}; !slices.Equal(rep.Dropped, want) {
				t.Errorf("dropped %v, want %v", rep.Dropped, want)
			}
			if !slices.Equal(rep.DroppedGroups, []string{"ip"}) {
				t.Errorf("dropped groups %v, want [ip]", rep.DroppedGroups)
			}

			// Only the events after the restore, into the new features.
			only := newRig(after, shards)
			var warmedIn, warmedOut [MaxWindows]int
			for n := range post {
				ev := &post[n]
				var vo, vr, vf Values
				lo := old.observe(ev, &vo)
				lr := restored.observe(ev, &vr)
				only.observe(ev, &vf)
				if vo.Profile != vr.Profile {
					t.Fatalf("event %d: profile %+v after the restore, %+v uninterrupted", n, vr.Profile, vo.Profile)
				}
				lateOld, lateNew := before.AppendGroupNames(nil, lo), after.AppendGroupNames(nil, lr)
				for _, g := range commonGroups {
					if slices.Contains(lateOld, g) != slices.Contains(lateNew, g) {
						t.Fatalf("event %d: late for %v after the restore, %v uninterrupted", n, lateNew, lateOld)
					}
				}
				for name, was := range keptAs {
					i, _ := after.Index(name)
					j, _ := before.Index(was)
					if vr.Windows[i] != vo.Windows[j] {
						t.Fatalf("event %d: kept %s reads %v, the uninterrupted %s %v", n, name, vr.Windows[i], was, vo.Windows[j])
					}
				}
				mask := restored.store(ev).WarmingMask(ev.TS)
				var names []string
				for _, w := range restored.store(ev).Warming(ev.TS) {
					names = append(names, w.Name)
				}
				var wantNames []string
				for _, name := range fresh {
					i, _ := after.Index(name)
					if vr.Windows[i] != vf.Windows[i] {
						t.Fatalf("event %d: new %s reads %v, a store of the events since the restore %v", n, name, vr.Windows[i], vf.Windows[i])
					}
					warming := ev.TS < watermark+after.Definitions()[i].Window.Milliseconds()
					if mask&(1<<i) != 0 != warming {
						t.Fatalf("event %d at watermark%+dms: %s warming=%v, want %v", n, ev.TS-watermark, name, mask&(1<<i) != 0, warming)
					}
					if warming {
						warmedIn[i]++
						wantNames = append(wantNames, name)
					} else {
						warmedOut[i]++
					}
				}
				if mask&^freshMask(t, after, fresh) != 0 {
					t.Fatalf("event %d: warming mask %b names a kept feature", n, mask)
				}
				if !slices.Equal(names, wantNames) {
					t.Fatalf("event %d: Warming lists %v, want %v", n, names, wantNames)
				}
			}
			for _, name := range fresh {
				i, _ := after.Index(name)
				if warmedIn[i] == 0 || warmedOut[i] == 0 {
					t.Errorf("%s: %d events while warming, %d after; the test needs both", name, warmedIn[i], warmedOut[i])
				}
			}
		})
	}
}

func freshMask(t *testing.T, s *Set, names []string) uint64 {
	t.Helper()
	var m uint64
	for _, n := range names {
		i, ok := s.Index(n)
		if !ok {
			t.Fatalf("no feature %s", n)
		}
		m |= 1 << i
	}
	return m
}

// TestWarmingOutlivesTheNextRestore snapshots a store while features that
// started empty at its restore are still warming: restored again with the
// same definitions, they keep their state and stay warming until the same
// time, and the snapshot is the same bytes as the one it came from.
func TestWarmingOutlivesTheNextRestore(t *testing.T) {
	before, after := mustSet(t, beforeYAML), mustSet(t, afterYAML)
	evs := crowdEvents(2000)
	old := before.NewStore()
	var v Values
	for i := range evs[:1000] {
		old.Observe(&evs[i], &v)
	}
	var buf bytes.Buffer
	if err := old.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	st, err := after.Restore(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	first := st.shared.Restored()
	wm := first.Watermark
	for i := range evs[1000:1010] { // well within the shortest window
		st.Observe(&evs[1000+i], &v)
	}
	buf.Reset()
	if err := st.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	snap := bytes.Clone(buf.Bytes())
	again, err := after.Restore(bytes.NewReader(snap))
	if err != nil {
		t.Fatal(err)
	}
	rep := again.shared.Restored()
	if rep.Changed() || len(rep.Fresh) != 0 || rep.Watermark < wm {
		t.Fatalf("second restore with the same definitions: %+v", rep)
	}
	for _, f := range first.Fresh {
		i := slices.IndexFunc(rep.Kept, func(k KeptFeature) bool { return k.Name == f.Name })
		if i < 0 || rep.Kept[i].WarmingUntil != f.Until {
			t.Errorf("%s warmed until %d after the first restore; after the second: %+v", f.Name, f.Until, rep.Kept)
		}
	}
	if got := again.Warming(rep.Watermark); len(got) != len(first.Fresh) {
		t.Errorf("warming after the second restore: %v, want %v", got, first.Fresh)
	}
	buf.Reset()
	if err := again.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), snap) {
		t.Error("the snapshot of the twice-restored store differs from the one it was restored from")
	}
}

// TestRestoreWithoutAccountFeatures restores into a Set with no feature
// by account: the account windows are dropped, the profiles kept.
func TestRestoreWithoutAccountFeatures(t *testing.T) {
	before := mustSet(t, beforeYAML)
	after := mustSet(t, `accounts_per_device_1h: {distinct: account_id, by: device.id, window: 1h}`)
	evs := crowdEvents(3000)
	old := before.NewStore()
	var v Values
	for i := range evs[:1500] {
		old.Observe(&evs[i], &v)
	}
	var buf bytes.Buffer
	if err := old.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	st, err := after.Restore(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if st.nAccWin != 0 || st.nProf != old.nProf {
		t.Fatalf("restored %d account windows and %d profiles, want 0 and %d", st.nAccWin, st.nProf, old.nProf)
	}
	rep := st.shared.Restored()
	if !slices.Equal(rep.DroppedGroups, []string{"account", "ip", "payee_id"}) || len(rep.Fresh) != 0 {
		t.Errorf("report %+v", rep)
	}
	i, _ := before.Index("accounts_per_device_1h")
	for n := 1500; n < len(evs); n++ {
		var vo, vr Values
		old.Observe(&evs[n], &vo)
		st.Observe(&evs[n], &vr)
		if vo.Profile != vr.Profile || vo.Windows[i] != vr.Windows[0] {
			t.Fatalf("event %d: profile %+v / %v after the restore, %+v / %v uninterrupted", n, vr.Profile, vr.Windows[0], vo.Profile, vo.Windows[i])
		}
	}
}
