package features

import (
	"bytes"
	"io"
	"sync"
	"testing"

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
