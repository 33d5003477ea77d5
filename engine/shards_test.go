package engine

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"riskd/bench/reference"
	"riskd/bench/traffic"
	"riskd/event"
	"riskd/features"
	"riskd/internal/keyhash"
	"riskd/rules"
)

// loadReferenceProbed loads the reference workload plus a shadow rule
// that always matches and reads every window feature, so every decision
// that runs the rules records the value of each.
func loadReferenceProbed(t *testing.T) (*features.Set, *rules.Holder) {
	t.Helper()
	set, err := features.LoadFile(filepath.Join(referenceDir, "features.yaml"), features.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(referenceDir, "rules"))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "zz_probe.yaml"), reference.ProbeRule(set.Names()), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Load(dir, set)
	if err != nil {
		t.Fatal(err)
	}
	holder := &rules.Holder{}
	holder.Swap(rs)
	return set, holder
}

// runEngine starts an Engine and returns a function that decides one
// event and waits for the decision, so events are decided in the order
// given whatever the shard count.
func runEngine(t *testing.T, e *Engine) func(raw []byte) *Decision {
	t.Helper()
	ctx := startEngine(t, e)
	return func(raw []byte) *Decision {
		t.Helper()
		return mustDecide(t, ctx, e, raw)
	}
}

// feature returns the value d records for name.
func feature(t *testing.T, d *Decision, name string) float64 {
	t.Helper()
	for _, f := range d.Features {
		if f.Name == name {
			return f.Value
		}
	}
	t.Fatalf("decision %s records no %s: %v", d.EventID, name, d.Features)
	return 0
}

// TestShardCountDoesNotChangeDecisions decides the same device-farm-heavy
// traffic with one shard and with four and requires the same window
// values in every decision and the same actions: entity windows (by
// device, IP, payee, card) see the events of every shard.
func TestShardCountDoesNotChangeDecisions(t *testing.T) {
	set, holder := loadReferenceProbed(t)
	g := traffic.New(traffic.Config{Accounts: 300, Seed: 5, FraudRate: 0.4,
		Start: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)})
	evs := generate(g, 6000)
	// The traffic's hours run ahead of the fixed wall clock: no skew bound.
	decideOne := runEngine(t, New(Config{Shards: 1, Now: fixedClock(), MaxFutureSkew: -1}, set, holder))
	decideFour := runEngine(t, New(Config{Shards: 4, Now: fixedClock(), MaxFutureSkew: -1}, set, holder))
	names := set.Names()
	crowded := 0
	for i, raw := range evs {
		d1, d4 := decideOne(raw), decideFour(raw)
		if d1.Reason == "" && len(d1.Features) < len(names) {
			t.Fatalf("event %d: the probe rule recorded %d features, want all %d", i, len(d1.Features), len(names))
		}
		if !slices.Equal(d1.Features, d4.Features) {
			t.Fatalf("event %d (%s): features differ\n1 shard:  %v\n4 shards: %v", i, d1.EventID, d1.Features, d4.Features)
		}
		if d1.Action != d4.Action || d1.Score != d4.Score || d1.Reason != d4.Reason || d1.Late != d4.Late ||
			!slices.Equal(ruleIDs(d1.Matched), ruleIDs(d4.Matched)) {
			t.Fatalf("event %d (%s): 1 shard %v %d %q %v, 4 shards %v %d %q %v", i, d1.EventID,
				d1.Action, d1.Score, d1.Reason, ruleIDs(d1.Matched), d4.Action, d4.Score, d4.Reason, ruleIDs(d4.Matched))
		}
		if d1.Reason == "" && feature(t, d1, "accounts_per_device_1h") >= 5 {
			crowded++
		}
	}
	if crowded == 0 {
		t.Fatal("no event saw five accounts on a device: the traffic does not test entity windows")
	}
}

// farmLogins returns logins of n accounts, one a second, on one device
// and one IP, starting at ts.
func farmLogins(prefix string, n int, ts int64) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = msg(event.Event{ID: prefix + "-" + strconv.Itoa(i), Type: event.TypeLogin, TS: ts + int64(i)*1000,
			AccountID: prefix + "-acct-" + strconv.Itoa(i), Device: event.Device{ID: "farm-phone"}, IP: "203.0.113.7"})
	}
	return out
}

func TestDeviceFarmAcrossShards(t *testing.T) {
	set, holder := loadReferenceProbed(t)
	const shards = 4
	logins := farmLogins("df", 20, t0)
	owners := map[uint64]bool{}
	for i := range logins {
		owners[keyhash.String("df-acct-"+strconv.Itoa(i))%shards] = true
	}
	if len(owners) < 2 {
		t.Fatal("the farm's accounts all live on one shard; pick other names")
	}
	decide := runEngine(t, New(Config{Shards: shards, Now: fixedClock()}, set, holder))
	var d *Decision
	for _, raw := range logins {
		d = decide(raw)
	}
	if got := feature(t, d, "accounts_per_device_1h"); got != 20 {
		t.Errorf("accounts_per_device_1h = %v after 20 accounts on %d shards, want 20", got, shards)
	}
	if got := feature(t, d, "accounts_per_ip_1h"); got != 20 {
		t.Errorf("accounts_per_ip_1h = %v after 20 accounts on %d shards, want 20", got, shards)
	}
	if !slices.Contains(ruleIDs(d.Matched), "device-farm") {
		t.Errorf("the 20th account on one device matched %v, want device-farm", ruleIDs(d.Matched))
	}
}

// TestShardsShareEntitiesConcurrently has several submitters drive four
// shards over the same device and IP at once; -race checks the shared
// state, and a last event checks that no account was lost.
func TestShardsShareEntitiesConcurrently(t *testing.T) {
	set, holder := loadReferenceProbed(t)
	e := New(Config{Shards: 4, Now: fixedClock()}, set, holder)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan struct{})
	go func() { e.Run(ctx); close(ran) }()
	const submitters, perSubmitter, accounts = 4, 300, 10
	var wg, done sync.WaitGroup
	for w := range submitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perSubmitter {
				acct := "w" + strconv.Itoa(w) + "-acct-" + strconv.Itoa(i%accounts)
				raw := msg(event.Event{ID: "w" + strconv.Itoa(w) + "-" + strconv.Itoa(i), Type: event.TypeLogin,
					TS: t0 + int64(i)*100, AccountID: acct, Device: event.Device{ID: "farm-phone"}, IP: "203.0.113.7"})
				done.Add(1)
				if err := e.Submit(ctx, Message{Value: raw, Done: func(_ *Decision, err error) {
					if err != nil {
						t.Error(err)
					}
					done.Done()
				}}); err != nil {
					t.Error(err)
					done.Done()
					return
				}
			}
		}()
	}
	wg.Wait()
	done.Wait()
	last := msg(event.Event{ID: "last", Type: event.TypeLogin, TS: t0 + perSubmitter*100, AccountID: "late-comer",
		Device: event.Device{ID: "farm-phone"}, IP: "203.0.113.7"})
	d := mustDecide(t, ctx, e, last)
	want := float64(submitters*accounts + 1)
	for _, name := range []string{"accounts_per_device_1h", "accounts_per_device_24h", "accounts_per_ip_1h"} {
		if got := feature(t, d, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	cancel()
	<-ran
}

func TestCheckpointKeepsSharedEntities(t *testing.T) {
	set, holder := loadReferenceProbed(t)
	cfg := Config{Shards: 4, Now: fixedClock()}
	e := New(cfg, set, holder)
	decide := runEngine(t, e)
	logins := farmLogins("ck", 21, t0)
	for _, raw := range logins[:20] {
		decide(raw)
	}
	var buf bytes.Buffer
	if err := e.Checkpoint(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	r, err := Restore(cfg, set, holder, bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	d := runEngine(t, r)(logins[20])
	if got := feature(t, d, "accounts_per_device_1h"); got != 21 {
		t.Errorf("after restore accounts_per_device_1h = %v, want 21", got)
	}
	st, err := r.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// 21 accounts (profile and window state in one entry each), one
	// device, one IP.
	if st.Accounts != 21 || st.Entities != 2*21+2 {
		t.Errorf("Stats after restore = %+v, want 21 accounts and 44 entities", st)
	}
}
