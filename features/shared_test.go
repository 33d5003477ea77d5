package features

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"riskd/event"
	"riskd/internal/keyhash"
)

// crowdEvents returns n events of 40 accounts crowding onto 7 devices, 5
// IPs and 11 payees, mostly in time order with some jitter, a few events
// late enough to be refused, and a few gaps long enough for windows to
// empty.
func crowdEvents(n int) []event.Event {
	r := rand.New(rand.NewPCG(1, 2))
	types := [...]string{"payment", "payment", "login", "payee_add", "topup", "login_failed"}
	evs := make([]event.Event, n)
	ts := t0
	for i := range evs {
		ts += int64(r.IntN(20_000))
		if r.IntN(500) == 0 {
			ts += 2 * 3600_000 // a quiet spell: every 1h window empties
		}
		at := ts - int64(r.IntN(60_000))
		if r.IntN(50) == 0 {
			at = ts - 10*60_000 // behind the 5m late tolerance
		}
		evs[i] = event.Event{
			Type:      types[r.IntN(len(types))],
			AccountID: fmt.Sprintf("acct-%d", r.IntN(40)),
			TS:        at,
			Amount:    int64(100 + r.IntN(50_000)),
			Channel:   [...]string{"qr", "online", "nfc"}[r.IntN(3)],
			PayeeID:   fmt.Sprintf("payee-%d", r.IntN(11)),
			Device:    event.Device{ID: fmt.Sprintf("dev-%d", r.IntN(7))},
			IP:        fmt.Sprintf("10.0.0.%d", r.IntN(5)),
		}
	}
	return evs
}

func TestSharedStoresMatchOneStore(t *testing.T) {
	s := mustSet(t, benchYAML)
	one := s.NewStore()
	sh := s.NewShared()
	shards := make([]*Store, 4)
	for i := range shards {
		shards[i] = sh.NewStore()
	}
	evs := crowdEvents(6000)
	lates, crowded := 0, 0
	dev, _ := s.Index("accounts_per_device_1h")
	for i := range evs {
		ev := &evs[i]
		var want, got Values
		wl := one.Observe(ev, &want)
		gl := shards[keyhash.String(ev.AccountID)%uint64(len(shards))].Observe(ev, &got)
		if want != got || wl != gl {
			t.Fatalf("event %d: one Store gave late=%v %v\nfour sharing a Shared gave late=%v %v", i, wl, want, gl, got)
		}
		if wl != 0 {
			lates++
		}
		if want.Windows[dev] > 20 {
			crowded++
		}
	}
	if lates == 0 || crowded == 0 {
		t.Fatalf("the traffic tests too little: %d late events, %d with over 20 accounts on a device", lates, crowded)
	}

	sum := func() int {
		n := 0
		for _, st := range shards {
			n += st.Len()
		}
		return n
	}
	if one.Len() != sum() {
		t.Fatalf("Len: one Store %d, four sharing a Shared %d", one.Len(), sum())
	}
	// One Expire per shard sweeps every stripe once.
	now := evs[len(evs)-1].TS + 3600_000 + 5*60_000
	want := one.Expire(now)
	got := 0
	for _, st := range shards {
		got += st.Expire(now)
	}
	if want == 0 || got != want || one.Len() != sum() {
		t.Fatalf("Expire removed %d from one Store and %d from four (Len %d and %d)", want, got, one.Len(), sum())
	}
}

func TestSharedSnapshotRoundTrip(t *testing.T) {
	s := mustSet(t, benchYAML)
	sh := s.NewShared()
	stores := []*Store{sh.NewStore(), sh.NewStore(), sh.NewStore()}
	of := func(ev *event.Event) int { return int(keyhash.String(ev.AccountID) % 3) }
	evs := crowdEvents(4000)
	var v Values
	for i := range evs[:3000] {
		stores[of(&evs[i])].Observe(&evs[i], &v)
	}
	snap := func(t *testing.T, w interface{ Snapshot(io.Writer) error }) []byte {
		t.Helper()
		var buf bytes.Buffer
		if err := w.Snapshot(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	shSnap := snap(t, sh)
	stSnaps := make([][]byte, len(stores))
	for i, st := range stores {
		stSnaps[i] = snap(t, st)
	}

	sh2, err := s.RestoreShared(bytes.NewReader(shSnap))
	if err != nil {
		t.Fatal(err)
	}
	stores2 := make([]*Store, len(stores))
	for i := range stores {
		if stores2[i], err = sh2.Restore(bytes.NewReader(stSnaps[i])); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(snap(t, stores2[i]), stSnaps[i]) {
			t.Fatalf("snapshot of restored store %d differs", i)
		}
	}
	if !bytes.Equal(snap(t, sh2), shSnap) {
		t.Fatal("snapshot of the restored Shared differs")
	}
	for i := 3000; i < len(evs); i++ {
		var v1, v2 Values
		l1 := stores[of(&evs[i])].Observe(&evs[i], &v1)
		l2 := stores2[of(&evs[i])].Observe(&evs[i], &v2)
		if v1 != v2 || l1 != l2 {
			t.Fatalf("event %d: values differ after restore\n%+v\n%+v", i, v1, v2)
		}
	}

	t.Run("a shard's snapshot is not a whole Store's", func(t *testing.T) {
		_, err := s.Restore(bytes.NewReader(stSnaps[0]))
		if !errors.Is(err, ErrSnapshot) || !strings.Contains(err.Error(), "restore it with Shared.Restore after Set.RestoreShared") {
			t.Fatal(err)
		}
	})
	t.Run("a whole Store's snapshot does not join a Shared", func(t *testing.T) {
		whole := snap(t, s.NewStore())
		_, err := sh2.Restore(bytes.NewReader(whole))
		if !errors.Is(err, ErrSnapshot) || !strings.Contains(err.Error(), "restore it with Set.Restore") {
			t.Fatal(err)
		}
	})
	t.Run("a Store's snapshot is not a Shared's", func(t *testing.T) {
		_, err := s.RestoreShared(bytes.NewReader(stSnaps[0]))
		if !errors.Is(err, ErrSnapshot) || err.Error() != `features snapshot: bad magic "RSKF", not a shared entities snapshot` {
			t.Fatal(err)
		}
	})
	t.Run("a truncated Shared is refused", func(t *testing.T) {
		_, err := s.RestoreShared(bytes.NewReader(shSnap[:len(shSnap)/2]))
		if !errors.Is(err, ErrSnapshot) {
			t.Fatal(err)
		}
	})
}

// TestSharedStoresRace runs Stores of one Shared on their own goroutines
// over the same devices, IP and payees, with Expire, Len and Snapshot
// running alongside; -race checks the locking, and the counts at the end
// check that no update was lost.
func TestSharedStoresRace(t *testing.T) {
	s := mustSet(t, benchYAML)
	sh := s.NewShared()
	const workers, perWorker, accounts, devices = 4, 2000, 8, 3
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range workers {
		st := sh.NewStore()
		wg.Add(1)
		go func() {
			defer wg.Done()
			var v Values
			for i := range perWorker {
				ev := event.Event{Type: "payment", TS: t0 + int64(i)*10, Amount: 100,
					AccountID: fmt.Sprintf("w%d-a%d", w, i%accounts),
					Device:    event.Device{ID: fmt.Sprintf("dev-%d", i%devices)},
					IP:        "10.0.0.1", PayeeID: fmt.Sprintf("payee-%d", i%2)}
				st.Observe(&ev, &v)
				if i%500 == 0 {
					st.Expire(ev.TS)
					_ = st.Len()
				}
			}
		}()
	}
	var side sync.WaitGroup
	side.Add(1)
	go func() {
		defer side.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := sh.Snapshot(io.Discard); err != nil {
				t.Error(err)
				return
			}
			_ = sh.Len()
		}
	}()
	wg.Wait()
	close(stop)
	side.Wait()

	var v Values
	ev := event.Event{Type: "payment", TS: t0 + perWorker*10, AccountID: "late-comer",
		Device: event.Device{ID: "dev-0"}, IP: "10.0.0.1", PayeeID: "payee-0"}
	if sh.NewStore().Observe(&ev, &v) != 0 {
		t.Fatal("the last event was late")
	}
	check := func(name string, want float64) {
		t.Helper()
		i, _ := s.Index(name)
		if v.Windows[i] != want {
			t.Errorf("%s = %v, want %v", name, v.Windows[i], want)
		}
	}
	// dev-0 took every third event of each worker, which cycles through
	// all its accounts; payee-0 every other.
	check("accounts_per_device_1h", workers*accounts+1)
	check("accounts_per_ip_1h", workers*accounts+1)
	check("device_events_10m", workers*((perWorker+devices-1)/devices)+1)
	check("payee_payments_1h", workers*perWorker/2+1)
}
