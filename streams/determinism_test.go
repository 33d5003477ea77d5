package streams

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"riskd/bench/reference"
	"riskd/bench/traffic"
	"riskd/engine"
	"riskd/event"
	"riskd/features"
	"riskd/internal/kafkatest"
	"riskd/rules"
	"riskd/streams/snapshots"
)

// TestSameStreamSameDecisions decides one generated stream over both input
// topics seven ways and requires every event's decision to be the same:
// action, reason, score, matched, shadow and errored rules, lateness and
// every window value (a shadow probe rule reads them all):
//
//   - one partition per topic and one shard: the stream's own order;
//   - eight partitions and four shards, read as a backlog as fast as the
//     readers go;
//   - eight partitions and three shards, with one partition's reader held
//     back so far that, unmerged, its events would be hours of event time
//     behind the others (the old lateness bound was five minutes);
//   - a fleet of three instances in one group, each deciding its share;
//   - a fleet of one that two more join mid-stream, taking partitions
//     whose accounts they rebuild from the log;
//   - a fleet of three of which one leaves mid-stream;
//   - the same with standbys (Config.Standby): the partitions that move are
//     taken over with the standby's decisions;
//   - two instances joining a first mid-stream, with the members saving
//     their state to a state topic (Config.Snapshots) and moving it with
//     the partitions (Config.PartitionStates): the first drops the
//     accounts of the partitions it gives up, the others restore those of
//     theirs from its snapshot instead of replaying their logs.
//
// In the fleets without standbys, decisions made with shared windows ahead
// (riskd_decided_with_windows_ahead_total: a partition moved to a member
// whose windows had read it past its last commit) may differ, and no
// others; with standbys every decision must be equal.
//
// The merge of the partitions in event-time order, the engine's turnstile
// over the shared entity windows, and every instance reading every
// partition into its shared windows are what make them agree.
func TestSameStreamSameDecisions(t *testing.T) {
	kafkatest.Run(t, testSameStreamSameDecisions)
}

func testSameStreamSameDecisions(t *testing.T, b kafkatest.Broker) {
	const events = 12000
	start := time.Now().Add(-5 * 24 * time.Hour).Truncate(time.Hour)
	payments, account, last := generatedInputs(traffic.Config{Accounts: 400, Seed: 21, FraudRate: 0.3, Start: start}, events)
	if span := time.Duration(last-start.UnixMilli()) * time.Millisecond; span < 24*time.Hour {
		t.Fatalf("the stream spans %v of event time; a held-back reader would not fall far behind", span)
	}

	// decide decides a fresh copy of the stream as r says and returns
	// every event's decision, and how many events its members decided
	// with shared entity windows ahead (riskd_decided_with_windows_ahead_total).
	decide := func(name string, r fleetRun) (map[string]DecisionRecord, float64) {
		partitions, shards, instances, holdBack, lateJoin := r.partitions, r.shards, r.instances, r.holdBack, r.lateJoin
		t.Helper()
		topics := testTopics(t, b, partitions)
		kafkatest.Produce(t, b.Addr(), topics.Inputs[0], payments...)
		kafkatest.Produce(t, b.Addr(), topics.Inputs[1], account...)

		group := "determinism-" + kafkatest.Suffix()
		stateTopic := "riskd.state-" + kafkatest.Suffix()
		runCtx, stop := context.WithCancel(context.Background())
		// The member that leaves (r.leave) runs under a context of its own.
		lastCtx, stopLast := context.WithCancel(runCtx)
		defer stopLast()
		ran := make(chan error, instances)
		var stopEngines []func()
		metrics := make([]*Metrics, instances)
		pipes := make([]*Pipeline, instances)
		// gate holds a fleet's members until the group has split the
		// partitions among them; the members go slowly until fast is closed,
		// so that the stream is still flowing when one joins or leaves.
		gate, fast := make(chan struct{}), make(chan struct{})
		if instances == 1 || lateJoin {
			close(gate)
		}
		if !lateJoin && !r.leave {
			close(fast)
		}
		start := func(i int) {
			metrics[i] = NewMetrics(nil)
			set, holder := probedReferenceSet(t)
			eng := engine.New(engine.Config{Shards: shards, QueueSize: 64}, set, holder)
			engCtx, stopEngine := context.WithCancel(context.Background())
			engDone := make(chan struct{})
			go func() { defer close(engDone); eng.Run(engCtx) }()
			stopEngines = append(stopEngines, func() { stopEngine(); <-engDone })

			// A fleet's members rebuild the accounts of a partition that
			// moves to them from its log, as the daemon does.
			cfg := Config{Brokers: []string{b.Addr()}, Group: group, Topics: topics, Instance: fmt.Sprintf("i%d", i),
				FlushInterval: 20 * time.Millisecond, CommitInterval: 100 * time.Millisecond,
				RebuildUnknown: instances > 1, Standby: r.standby}
			if r.states {
				store, err := snapshots.New(snapshots.Config{Brokers: []string{b.Addr()}, Topic: stateTopic, Name: group + "/" + cfg.Instance})
				if err != nil {
					t.Fatal(err)
				}
				if err := store.Ensure(t.Context()); err != nil {
					t.Fatal(err)
				}
				cfg.Snapshots, cfg.SnapshotInterval = store, 100*time.Millisecond
				// The previous owner saves about five snapshots between
				// a new owner's listing and its load, which must still
				// hold the partitions moved: they linger for longer.
				cfg.PartitionStates = groupStates{brokers: []string{b.Addr()}, topic: stateTopic, group: group, own: store,
					loadAfter: 500 * time.Millisecond}
				cfg.PartitionLinger = 2 * time.Second
			}
			p := New(cfg, eng, nil, metrics[i])
			held := topics.Inputs[0]
			p.beforeFetch = func(ctx context.Context, topic string, partition int) {
				select {
				case <-gate:
				case <-ctx.Done(): // the generation ended
				}
				if holdBack && topic == held && partition == 3 {
					time.Sleep(3 * time.Millisecond)
				}
				select {
				case <-fast:
				case <-time.After(20 * time.Millisecond):
				case <-ctx.Done():
				}
			}
			pipes[i] = p
			ctx := runCtx
			if i == instances-1 {
				ctx = lastCtx
			}
			go func() { ran <- p.Run(ctx) }()
		}
		start(0)
		if lateJoin {
			kafkatest.ReadAll(t, b.Addr(), topics.Decisions, events/6, 3*time.Minute)
		}
		for i := 1; i < instances; i++ {
			start(i)
		}
		if instances > 1 {
			deadline := time.Now().Add(time.Minute)
			for {
				total, members := 0, 0
				for _, p := range pipes {
					if n := len(p.Ready().Partitions); n > 0 {
						total, members = total+n, members+1
					}
				}
				if total == 2*partitions && members == instances {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: the group did not split the partitions among %d members in a minute", name, instances)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if lateJoin {
				close(fast)
			} else {
				close(gate)
			}
		}
		if r.leave {
			kafkatest.ReadAll(t, b.Addr(), topics.Decisions, events/3, 3*time.Minute)
			stopLast() // it drains, commits and leaves the group
			close(fast)
		}
		defer func() {
			for _, stopEngine := range stopEngines {
				stopEngine()
			}
		}()
		// A member that leaves a generation drains and commits first, so
		// each event is normally decided once; one decided again must be
		// decided alike, and is read past.
		out := make(map[string]DecisionRecord, events)
		for want := events; len(out) < events; want += events - len(out) {
			out = map[string]DecisionRecord{}
			for _, m := range kafkatest.ReadAll(t, b.Addr(), topics.Decisions, want, 3*time.Minute) {
				var r DecisionRecord
				if err := json.Unmarshal(m.Value, &r); err != nil {
					t.Fatalf("%s: decision record: %v", name, err)
				}
				if first, dup := out[r.EventID]; dup {
					if instances == 1 {
						t.Fatalf("%s: event %s decided twice", name, r.EventID)
					}
					if diff := decisionDiff(first, r); diff != "" {
						t.Fatalf("%s: event %s decided twice, otherwise: %s", name, r.EventID, diff)
					}
				}
				out[r.EventID] = r
			}
		}
		if r.states {
			// The state of the partitions that moved lingers
			// (Config.PartitionLinger) before its old owner drops it.
			deadline := time.Now().Add(time.Minute)
			for dropped := 0.0; dropped == 0; time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%s: no member dropped the state of a partition moved away within a minute", name)
				}
				for _, m := range metrics {
					dropped += testutil.ToFloat64(m.PartitionDropped)
				}
			}
		}
		stop()
		for range instances {
			if err := <-ran; err != nil {
				t.Errorf("%s: pipeline: %v", name, err)
			}
		}
		var ahead, handed float64
		if instances > 1 {
			// At least two members must have read partitions they did not
			// decide, or the fleet never split the stream.
			split := 0
			for i, m := range metrics {
				n := testutil.ToFloat64(m.SharedOnly) + testutil.ToFloat64(m.StandbyDecided)
				ahead += testutil.ToFloat64(m.DecidedAhead)
				handed += testutil.ToFloat64(m.StandbyHandedOver)
				t.Logf("%s: instance %d read %.0f events of other members' partitions (%.0f decided as a standby), decided %.0f with shared windows ahead, handed over %.0f standby decisions, decided %.0f again to catch up",
					name, i, n, testutil.ToFloat64(m.StandbyDecided), testutil.ToFloat64(m.DecidedAhead), testutil.ToFloat64(m.StandbyHandedOver), testutil.ToFloat64(m.Replayed))
				if n > 0 {
					split++
				}
			}
			if split < 2 {
				t.Fatalf("%s: %d members read other members' partitions; the group never split the stream", name, split)
			}
			if r.states {
				var restored, dropped, replayed float64
				for _, m := range metrics {
					restored += testutil.ToFloat64(m.PartitionRestores.WithLabelValues("restored"))
					dropped += testutil.ToFloat64(m.PartitionDropped)
					replayed += testutil.ToFloat64(m.Replayed)
				}
				t.Logf("%s: %.0f partitions restored from a member's snapshot, %.0f accounts' state dropped, %.0f events decided again to catch up",
					name, restored, dropped, replayed)
				if restored == 0 || dropped == 0 {
					t.Fatalf("%s: %.0f partitions restored from a snapshot and %.0f accounts dropped; the partitions that moved did not take their state along",
						name, restored, dropped)
				}
			}
			if r.standby && r.leave && (handed == 0 || ahead > 0) {
				t.Fatalf("%s: %.0f standby decisions handed over, %.0f decided with shared windows ahead; a leave with standbys must hand over and decide nothing ahead",
					name, handed, ahead)
			}
		}
		return out, ahead
	}

	serial, _ := decide("1 partition, 1 shard", fleetRun{partitions: 1, shards: 1, instances: 1})
	if len(serial) != events {
		t.Fatalf("1 partition: %d decisions, want %d", len(serial), events)
	}
	others := []struct {
		name string
		run  fleetRun
	}{
		{"8 partitions, 4 shards", fleetRun{partitions: 8, shards: 4, instances: 1}},
		{"8 partitions, 3 shards, one reader held back", fleetRun{partitions: 8, shards: 3, instances: 1, holdBack: true}},
		{"8 partitions, 3 instances of 2 shards", fleetRun{partitions: 8, shards: 2, instances: 3}},
		{"8 partitions, 2 instances joining a first mid-stream", fleetRun{partitions: 8, shards: 2, instances: 3, lateJoin: true}},
		{"8 partitions, 3 instances, one leaving mid-stream", fleetRun{partitions: 8, shards: 2, instances: 3, leave: true}},
		{"8 partitions, 3 standby instances, one leaving mid-stream", fleetRun{partitions: 8, shards: 2, instances: 3, leave: true, standby: true}},
		{"8 partitions, 2 instances joining a first mid-stream, partition state from snapshots", fleetRun{partitions: 8, shards: 2, instances: 3, lateJoin: true, states: true}},
	}
	probed, crowded := 0, 0
	for _, want := range serial {
		if len(want.Features) > 0 {
			probed++
		}
		if want.Features["accounts_per_device_1h"] >= 3 {
			crowded++
		}
	}
	for _, other := range others {
		got, ahead := decide(other.name, other.run)
		differ := 0
		for id, want := range serial {
			g, ok := got[id]
			if !ok {
				t.Fatalf("%s: no decision for %s", other.name, id)
			}
			diff := decisionDiff(want, g)
			if diff == "" {
				continue
			}
			// A partition that moves to a member whose shared windows
			// stand ahead of its last commit (a member leaving, or the
			// group handing a partition back at a later join) has the
			// events between decided with windows that hold later events
			// (the bound in docs/ARCHITECTURE.md); only those may differ,
			// and with standbys none.
			if differ++; other.run.standby || float64(differ) > ahead {
				t.Fatalf("%s: event %s (%s, account %s) decided otherwise than with 1 partition (%d differ so far, %.0f decided with shared windows ahead): %s",
					other.name, id, want.EventType, want.AccountID, differ, ahead, diff)
			}
		}
		if other.run.instances > 1 {
			t.Logf("%s: %d of %d decisions differ from 1 partition's; %.0f were decided with shared windows ahead", other.name, differ, events, ahead)
		}
	}
	if probed < events/2 || crowded == 0 {
		t.Fatalf("the stream does not exercise the windows: %d of %d decisions record features, %d saw 3+ accounts on a device",
			probed, events, crowded)
	}
}

// fleetRun is how TestSameStreamSameDecisions decides the stream once:
// partitions per topic, shards per engine, instances in one group; one
// partition's reader held back; with lateJoin the first instance starts
// alone, slowed down, and the others join once it has decided a sixth of
// the stream; with leave the last instance leaves once a third of the
// stream is decided (all go slowly until then). A fleet's members otherwise read nothing until the group has
// split the partitions among all of them.
type fleetRun struct {
	partitions, shards, instances int
	holdBack, lateJoin, leave     bool
	standby                       bool // Config.Standby
	// states saves the members' state to a state topic and moves the
	// state of a partition's accounts with it (Config.PartitionStates).
	states bool
}

// groupStates is Config.PartitionStates over a state topic, as the daemon
// has it: every member's newest snapshot.
type groupStates struct {
	brokers      []string
	topic, group string
	own          *snapshots.Store
	// loadAfter delays each Load, so that the member whose snapshot was
	// listed saves more in between (see Config.PartitionLinger).
	loadAfter time.Duration
}

func (g groupStates) Saved(ctx context.Context) ([]snapshots.Saved, error) {
	return g.own.Names(ctx, g.group+"/")
}

func (g groupStates) Load(ctx context.Context, name string) (snapshots.Snapshot, error) {
	select {
	case <-time.After(g.loadAfter):
	case <-ctx.Done():
		return snapshots.Snapshot{}, ctx.Err()
	}
	st, err := snapshots.New(snapshots.Config{Brokers: g.brokers, Topic: g.topic, Name: name})
	if err != nil {
		return snapshots.Snapshot{}, err
	}
	snap, _, err := st.Load(ctx)
	return snap, err
}

// generatedInputs generates n events and routes them as riskd's producers
// do (bench/produce): money movements to the payments topic, the rest to
// account-events, keyed by account. last is the last event's time.
func generatedInputs(cfg traffic.Config, n int) (payments, account []kafka.Message, last int64) {
	g := traffic.New(cfg)
	for range n {
		var ev event.Event
		g.Next(&ev)
		last = ev.TS
		m := kafka.Message{Key: []byte(ev.AccountID), Value: ev.AppendJSON(nil)}
		switch ev.Type {
		case event.TypePayment, event.TypeTopup, event.TypeWithdrawal, event.TypeRefund, event.TypePointsRedeem:
			payments = append(payments, m)
		default:
			account = append(account, m)
		}
	}
	return payments, account, last
}

// decisionDiff says how two decision records of one event differ in what
// the events alone decide (not in wall-clock fields: decided_at, latency,
// lock_until), or "" when they do not.
func decisionDiff(a, b DecisionRecord) string {
	var d []string
	if a.Action != b.Action || a.Reason != b.Reason || a.Score != b.Score {
		d = append(d, fmt.Sprintf("action %v/%q/%d vs %v/%q/%d", a.Action, a.Reason, a.Score, b.Action, b.Reason, b.Score))
	}
	if !slices.Equal(a.Matched, b.Matched) || !slices.Equal(a.Shadow, b.Shadow) || !slices.Equal(a.Errored, b.Errored) {
		d = append(d, fmt.Sprintf("rules %v %v %v vs %v %v %v", a.Matched, a.Shadow, a.Errored, b.Matched, b.Shadow, b.Errored))
	}
	if !maps.Equal(a.Features, b.Features) {
		var diffs []string
		for k, v := range a.Features {
			if b.Features[k] != v {
				diffs = append(diffs, fmt.Sprintf("%s %v vs %v", k, v, b.Features[k]))
			}
		}
		slices.Sort(diffs)
		d = append(d, "features "+strings.Join(diffs, ", "))
	}
	if a.Late != b.Late || !slices.Equal(a.LateFor, b.LateFor) {
		d = append(d, fmt.Sprintf("late %v %v vs %v %v", a.Late, a.LateFor, b.Late, b.LateFor))
	}
	return strings.Join(d, "; ")
}

// probedReferenceSet is the reference workload plus a shadow rule that
// matches every event and reads every window feature, so every decision
// records the value of each.
func probedReferenceSet(t *testing.T) (*features.Set, *rules.Holder) {
	t.Helper()
	set, err := features.LoadFile("../bench/reference/features.yaml", features.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	files, err := rules.ReadFiles(os.DirFS("../bench/reference/rules"))
	if err != nil {
		t.Fatal(err)
	}
	files["zz_probe.yaml"] = reference.ProbeRule(set.Names())
	rs, err := rules.Compile(files, set)
	if err != nil {
		t.Fatal(err)
	}
	holder := &rules.Holder{}
	holder.Swap(rs)
	return set, holder
}
