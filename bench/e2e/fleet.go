package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"riskd/streams"
	"riskd/streams/chstore"
)

// fleetFlags are the knobs of the fleet mode (-fleet). They live apart
// from settings so that the default run's record keeps its shape.
type fleetFlags struct {
	Sizes    string  `json:"sizes"`
	CPUQuota float64 `json:"cpu_quota_cores"`
	MoveSize int     `json:"move_fleet_size"`
	Moves    string  `json:"moves"`
	MoveAt   float64 `json:"move_at_fraction"`
	Standby  bool    `json:"standby"`
}

func (f *fleetFlags) register() {
	flag.StringVar(&f.Sizes, "fleet", "", "fleet mode: comma-separated fleet sizes to measure (e.g. 1,2,3) instead of the default run")
	flag.Float64Var(&f.CPUQuota, "cpu-quota", 0.5, "fleet mode: CPU quota of each riskd in cores (cgroup v1); 0 runs without cgroups")
	flag.IntVar(&f.MoveSize, "move-fleet", 2, "fleet mode: fleet size of the partition-move runs")
	flag.StringVar(&f.Moves, "moves", "term,kill", "fleet mode: partition-move runs, one per signal (term, kill); empty for none")
	flag.Float64Var(&f.MoveAt, "move-at", 0.4, "fleet mode: stop one instance when this fraction of the backlog is settled")
	flag.BoolVar(&f.Standby, "standby", false, "fleet mode: run every riskd with kafka.standby (each decides every partition, no replay on a move)")
}

// fleetResult is a fleet run's record, bench/results/fleet-<stamp>.json.
type fleetResult struct {
	Stamp    string        `json:"stamp"`
	Command  string        `json:"command"`
	Machine  machineInfo   `json:"machine"`
	Settings settings      `json:"settings"`
	Fleet    fleetFlags    `json:"fleet"`
	Produce  produceResult `json:"produce"`
	Sizes    []fleetRun    `json:"throughput"`
	Moves    []moveRun     `json:"moves"`
	Note     string        `json:"note"`
}

// fleetRun is one fleet size draining the whole backlog.
type fleetRun struct {
	Size       int     `json:"size"`
	Database   string  `json:"database"`
	Group      string  `json:"group"`
	LoadAvg    string  `json:"loadavg_before"`
	Events     int     `json:"events"`
	StoredInCH uint64  `json:"stored_in_clickhouse"`
	FirstS     float64 `json:"first_consumed_s"`
	AllS       float64 `json:"all_settled_s"`
	// SettledAtReady is what the fleet had settled when the last member
	// was ready: the first ones decide alone until then.
	SettledAtReady float64 `json:"settled_when_all_ready"`
	// StableS is when every input partition was assigned and none was
	// restoring (the start-up rebalance over).
	StableS float64 `json:"group_stable_s"`
	// EventsPerSec is the fleet's steady rate: the backlog settled
	// (decisions durable in ClickHouse and Kafka), summed over the
	// instances, from SteadyFromS (10% of the backlog, or StableS if
	// later) to SteadyToS (90%), as the default run measures one instance.
	EventsPerSec    float64 `json:"events_per_sec"`
	SteadyFromS     float64 `json:"steady_from_s"`
	SteadyToS       float64 `json:"steady_to_s"`
	AvgEventsPerSec float64 `json:"avg_events_per_sec"`
	// Replayed counts events decided again without outputs: partitions
	// that moved at start-up while the members joined one by one.
	Replayed     float64         `json:"replayed_events"`
	DecidedTwice int64           `json:"decided_twice"`
	Instances    []fleetInstance `json:"instances"`
	HarnessCores float64         `json:"harness_cores"` // embedded broker + sampling, same window
	CHCores      float64         `json:"clickhouse_cores"`
	Timeline     []fleetSample   `json:"timeline"`
}

// fleetInstance is one member's share of the steady window.
type fleetInstance struct {
	Name         string        `json:"name"`
	Settled      float64       `json:"settled"`
	EventsPerSec float64       `json:"events_per_sec"`
	CPUMicros    float64       `json:"cpu_us_per_event"`
	Cores        float64       `json:"cores"`
	CPUTotal     time.Duration `json:"cpu_total_ns"`
	NrThrottled  uint64        `json:"nr_throttled"`
	Throttled    time.Duration `json:"throttled_ns"`
	Replayed     float64       `json:"replayed_events"`
	Partitions   float64       `json:"partitions_at_end"`
	// MeanBatch is the mean output batch over the run: every instance
	// writes its own batches to ClickHouse, so more instances make
	// smaller, more numerous inserts of the same events.
	MeanBatch float64 `json:"mean_output_batch"`
}

// moveRun is one instance stopped mid-backlog and the fleet taking its
// partitions over.
type moveRun struct {
	Size     int    `json:"size"`
	Signal   string `json:"signal"`
	Database string `json:"database"`
	LoadAvg  string `json:"loadavg_before"`
	// SettledAtStop is the backlog settled fleet-wide when the signal
	// was sent; VictimPartitions what the stopped instance held.
	SettledAtStop    float64 `json:"settled_at_stop"`
	VictimPartitions float64 `json:"victim_partitions"`
	// VictimExitS is when the stopped process exited; AssignedS when the
	// survivors held every input partition again; RestoredS when, in
	// addition, none was restoring. All from the signal.
	VictimExitS    float64 `json:"victim_exit_s"`
	AssignedS      float64 `json:"all_assigned_s"`
	RestoredS      float64 `json:"restored_s"`
	MaxRestoreLeft float64 `json:"max_restore_left"`
	// Replayed is riskd_replayed_events_total of the survivors from the
	// signal to the end of the restore.
	Replayed float64 `json:"replayed_events"`
	// PartsRestored is the partitions the survivors restored from a
	// snapshot of the group in that time (the others were rebuilt from
	// their logs, or held by a standby).
	PartsRestored float64 `json:"partitions_restored"`
	// DecidedTwice is the decision records published in the run less
	// the backlog: events the stopped instance had decided but not
	// committed, decided again with outputs (ClickHouse keeps one row
	// per event).
	DecidedTwice int64   `json:"decided_twice"`
	DrainedS     float64 `json:"drained_s"` // from the signal to the whole backlog settled
	StoredInCH   uint64  `json:"stored_in_clickhouse"`
}

// fleetSample is one scrape of every member.
type fleetSample struct {
	T          float64        `json:"t_s"`
	Settled    float64        `json:"settled"`
	HarnessCPU float64        `json:"harness_cpu_s"`
	CHCPU      float64        `json:"clickhouse_cpu_s"`
	Members    []memberSample `json:"members"`
}

type memberSample struct {
	Settled     float64 `json:"settled"`
	Lag         float64 `json:"lag"`
	CPUSec      float64 `json:"cpu_s"`
	Assigned    float64 `json:"assigned"`
	Restoring   float64 `json:"restoring"`
	RestoreLeft float64 `json:"restore_left"`
	Replayed    float64 `json:"replayed"`
	// PartsRestored counts the partitions whose accounts' state was
	// restored from a snapshot of the group (riskd_partition_state_restores_total{result="restored"}).
	PartsRestored float64 `json:"partitions_restored"`
	Batches       float64 `json:"output_batches"`
	BatchEvents   float64 `json:"output_batch_events"`
	Up            bool    `json:"up"`
}

// fleetEnv is what every fleet run shares: one broker, one backlog.
type fleetEnv struct {
	s       settings
	f       fleetFlags
	bin     string
	scratch string
	broker  string
	stamp   string
	ch      *chConn
	n       int
	chPID   int
}

// member is one riskd of a fleet.
type member struct {
	name string
	proc *riskdProc
	cg   *cpuCgroup
}

// runFleet measures fleets of each size on one pre-produced backlog,
// each size with its own consumer group and database, then stops one
// instance mid-backlog to time a partition move.
func runFleet(ctx context.Context, s settings, f fleetFlags) error {
	sizes, err := parseSizes(f.Sizes)
	if err != nil {
		return err
	}
	stamp := time.Now().UTC().Format("20060102T150405Z")
	r := &fleetResult{Stamp: stamp, Command: "go run ./bench/e2e " + strings.Join(os.Args[1:], " "),
		Machine: readMachine(), Settings: s, Fleet: f, Note: fleetNote}
	r.Machine.GitCommit = gitCommit()
	r.Machine.GoVersion = runtime.Version()
	if err := os.MkdirAll(s.OutDir, 0o755); err != nil {
		return fmt.Errorf("results dir: %w", err)
	}
	scratch, err := os.MkdirTemp("", "riskd-fleet-")
	if err != nil {
		return fmt.Errorf("scratch dir: %w", err)
	}
	defer os.RemoveAll(scratch)
	if f.CPUQuota > 0 {
		// Fail before the long setup when the cgroups cannot be made.
		g, err := newCPUCgroup("riskd-fleet-check", f.CPUQuota)
		if err != nil {
			return err
		}
		g.remove()
	}

	logf("building riskd")
	bin, err := buildRiskd(ctx, scratch)
	if err != nil {
		return err
	}
	ch, err := openClickHouse(ctx, s.ClickHouse, "")
	if err != nil {
		return err
	}
	defer ch.close()
	broker, err := streams.StartEmbedded("127.0.0.1:0", "")
	if err != nil {
		return err
	}
	defer broker.Close()
	brokers := []string{broker.Addr()}
	if err := createTopics(ctx, brokers, s.Partitions, s.OutputMaxBytes, streams.DefaultTopics()); err != nil {
		return err
	}
	logf("embedded broker on %s; producing %d events over %d accounts once for every fleet", broker.Addr(), s.Events, s.Accounts)
	st, genSetup, err := preProduce(ctx, s, brokers, "fleet-"+stamp+"-")
	if err != nil {
		return err
	}
	r.Produce = produceResult{Events: st.Events, Fraud: st.Fraud, GenSetup: genSetup, Duration: st.Duration,
		EventsPerSec: float64(st.Events) / st.Duration.Seconds()}
	logf("produced %d events in %.1fs", st.Events, st.Duration.Seconds())

	env := &fleetEnv{s: s, f: f, bin: bin, scratch: scratch, broker: broker.Addr(), stamp: stamp, ch: ch,
		n: st.Events}
	env.chPID, _ = clickHouseServer(s.ClickHouse)
	for _, k := range sizes {
		fr, err := env.throughput(ctx, k)
		if err != nil {
			return err
		}
		r.Sizes = append(r.Sizes, fr)
	}
	for _, sig := range strings.Split(f.Moves, ",") {
		if sig = strings.TrimSpace(sig); sig == "" {
			continue
		}
		mr, err := env.move(ctx, f.MoveSize, sig)
		if err != nil {
			return err
		}
		r.Moves = append(r.Moves, mr)
	}
	path, err := r.write(s.OutDir)
	if err != nil {
		return err
	}
	printFleetSummary(r, path)
	return nil
}

const fleetNote = "every riskd runs with GOMAXPROCS=1 in its own cgroup (cpu.cfs_quota_us = cpu_quota_cores x 100 ms); " +
	"the embedded broker runs in the harness process and ClickHouse beside them on the same cores, unconstrained"

func parseSizes(v string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(v, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || k < 1 {
			return nil, fmt.Errorf("-fleet %q: want sizes such as 1,2,3", v)
		}
		out = append(out, k)
	}
	return out, nil
}

// start launches k riskd processes in one consumer group, all at once so
// that they join the group together rather than one deciding alone
// first, and waits until each is ready. stop ends every one of them and
// removes their cgroups; call it on every path.
func (e *fleetEnv) start(ctx context.Context, name string, k int) (members []*member, db string, stop func(), err error) {
	db = "riskd_fleet_" + name
	if err := e.ch.reset(ctx, db); err != nil {
		return nil, "", nil, err
	}
	members = make([]*member, k)
	stop = func() {
		var wg sync.WaitGroup
		for _, m := range members {
			if m != nil && m.proc != nil {
				wg.Go(func() {
					if err := m.proc.stop(15 * time.Second); err != nil {
						logf("warning: %s: %v", m.name, err)
					}
				})
			}
		}
		wg.Wait()
		for _, m := range members {
			if m != nil && m.cg != nil {
				m.cg.remove()
			}
		}
	}
	opts := make([]riskdOptions, k)
	for i := range k {
		m := &member{name: fmt.Sprintf("fleet-%d", i)}
		members[i] = m
		if e.f.CPUQuota > 0 {
			if m.cg, err = newCPUCgroup(fmt.Sprintf("riskd-fleet-%d", i), e.f.CPUQuota); err != nil {
				stop()
				return nil, "", nil, err
			}
		}
		dir := filepath.Join(e.scratch, name, m.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			stop()
			return nil, "", nil, fmt.Errorf("fleet dir: %w", err)
		}
		opts[i] = riskdOptions{Binary: e.bin, Dir: dir, Brokers: e.broker, Group: "riskd-fleet-" + e.stamp + "-" + name,
			Partitions: e.s.Partitions, ClickHouse: e.s.ClickHouse, DB: db, StateKafka: e.s.StateKafka,
			SnapshotInterval: e.s.SnapshotInterval, Instance: m.name, Env: []string{"GOMAXPROCS=1"}, Standby: e.f.Standby,
			DecidePublish: e.s.DecidePublish, GCPercent: e.s.GCPercent, MemoryLimit: e.s.MemoryLimit}
		if m.cg != nil {
			opts[i].Started = m.cg.add
		}
	}
	errs := make([]error, k)
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() { m.proc, errs[i] = startRiskd(ctx, opts[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		stop()
		return nil, "", nil, err
	}
	return members, db, stop, nil
}

// fleetSampler scrapes every member of a fleet each interval; a member
// that stopped keeps its last values, marked down.
type fleetSampler struct {
	members  []*member
	chPID    int
	interval time.Duration
	t0       time.Time
	client   *http.Client

	mu      sync.Mutex
	samples []fleetSample
	last    []memberSample
}

func newFleetSampler(members []*member, chPID int, interval time.Duration) *fleetSampler {
	return &fleetSampler{members: members, chPID: chPID, interval: interval, t0: time.Now(),
		client: &http.Client{Timeout: 2 * time.Second}, last: make([]memberSample, len(members))}
}

func (s *fleetSampler) run(ctx context.Context) {
	everyTick(ctx, s.interval, func(ctx context.Context) { s.once(ctx) })
}

func (s *fleetSampler) once(ctx context.Context) fleetSample {
	s.mu.Lock()
	prev := append([]memberSample(nil), s.last...)
	s.mu.Unlock()
	x := fleetSample{Members: make([]memberSample, len(s.members))}
	for i, m := range s.members {
		ms := prev[i]
		ms.Up = false
		if met, err := scrape(ctx, s.client, m.proc.httpURL+"/metrics"); err == nil {
			ms = memberSample{Settled: met.settled(), Lag: met["riskd_consumer_lag"],
				Assigned: met["riskd_assigned_partitions"], Restoring: met["riskd_restoring_partitions"],
				RestoreLeft: met["riskd_restore_remaining_messages"], Replayed: met["riskd_replayed_events_total"],
				PartsRestored: met[`riskd_partition_state_restores_total{result="restored"}`],
				Batches:       met["riskd_output_batch_size_count"], BatchEvents: met["riskd_output_batch_size_sum"], Up: true}
			if p, err := readProc(m.proc.pid()); err == nil {
				ms.CPUSec = p.CPU.Seconds()
			} else {
				ms.CPUSec = prev[i].CPUSec
			}
		}
		x.Members[i] = ms
		x.Settled += ms.Settled
	}
	if p, err := readProc(os.Getpid()); err == nil {
		x.HarnessCPU = p.CPU.Seconds()
	}
	if p, err := readProc(s.chPID); err == nil && s.chPID > 0 {
		x.CHCPU = p.CPU.Seconds()
	}
	x.T = time.Since(s.t0).Seconds()
	s.mu.Lock()
	s.last = x.Members
	s.samples = append(s.samples, x)
	s.mu.Unlock()
	return x
}

func (s *fleetSampler) latest() fleetSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) == 0 {
		return fleetSample{Members: make([]memberSample, len(s.members))}
	}
	return s.samples[len(s.samples)-1]
}

func (s *fleetSampler) timeline() []fleetSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]fleetSample(nil), s.samples...)
}

// waitDrained blocks until the fleet has settled n messages and every
// running member has no lag: settled alone can pass n early when a move
// decided some events twice.
func (s *fleetSampler) waitDrained(ctx context.Context, n float64) error {
	next := time.Now().Add(5 * time.Second)
	for {
		x := s.latest()
		done := x.Settled >= n
		lag := 0.0
		for _, m := range x.Members {
			if m.Up {
				lag += m.Lag
			}
		}
		if done && lag == 0 {
			return nil
		}
		if time.Now().After(next) {
			next = next.Add(5 * time.Second)
			logf("  fleet: settled %.0f of %.0f, lag %.0f", x.Settled, n, lag)
		}
		if err := sleepCtx(ctx, s.interval/2); err != nil {
			return err
		}
	}
}

// sampleCtx runs a sampler under its own context; the returned stop ends
// it and waits for its goroutine.
func sampleCtx(ctx context.Context, smp *fleetSampler) (stop func()) {
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { smp.run(sctx) })
	return func() {
		cancel()
		wg.Wait()
	}
}

// throughput drains the backlog with k instances.
func (e *fleetEnv) throughput(ctx context.Context, k int) (fleetRun, error) {
	name := fmt.Sprintf("k%d", k)
	fr := fleetRun{Size: k, Database: "riskd_fleet_" + name, Group: "riskd-fleet-" + e.stamp + "-" + name,
		LoadAvg: loadAvg(), Events: e.n}
	logf("fleet of %d (load average %s): starting", k, fr.LoadAvg)
	pub0, err := e.published(ctx)
	if err != nil {
		return fr, err
	}
	members, _, stop, err := e.start(ctx, name, k)
	if err != nil {
		return fr, err
	}
	defer stop()
	smp := newFleetSampler(members, e.chPID, e.s.SampleEvery)
	stopSampling := sampleCtx(ctx, smp)
	defer stopSampling()
	if err := smp.waitDrained(ctx, float64(e.n)); err != nil {
		return fr, fmt.Errorf("fleet of %d: %w", k, err)
	}
	stopSampling()
	tl := smp.timeline()
	fr.Timeline = tl
	n := float64(e.n)
	settled := func(x fleetSample) float64 { return x.Settled }
	fr.SettledAtReady = tl[0].Settled
	fr.FirstS = crossingF(tl, settled, 1)
	fr.AllS = crossingF(tl, settled, n)
	fr.AvgEventsPerSec = n / (fr.AllS - fr.FirstS)
	// The members become ready one after another and the first decides
	// alone until the others join; the window starts once the group is
	// whole and nothing restores, or at 10% of the backlog if later.
	fr.StableS = stableAt(tl, float64(2*e.s.Partitions))
	t10, t90 := crossingF(tl, settled, 0.1*n), crossingF(tl, settled, 0.9*n)
	if fr.StableS < 0 || fr.StableS >= t90 {
		return fr, fmt.Errorf("fleet of %d: the group was not whole and restored before 90%% of the backlog; use more -events", k)
	}
	from := max(t10, fr.StableS)
	fr.SteadyFromS, fr.SteadyToS = from, t90
	w := t90 - from
	fr.EventsPerSec = (at(tl, t90, settled) - at(tl, from, settled)) / w
	fr.HarnessCores = (at(tl, t90, func(x fleetSample) float64 { return x.HarnessCPU }) -
		at(tl, from, func(x fleetSample) float64 { return x.HarnessCPU })) / w
	fr.CHCores = (at(tl, t90, func(x fleetSample) float64 { return x.CHCPU }) -
		at(tl, from, func(x fleetSample) float64 { return x.CHCPU })) / w
	end := tl[len(tl)-1]
	for i, m := range members {
		v := func(f func(memberSample) float64) func(fleetSample) float64 {
			return func(x fleetSample) float64 { return f(x.Members[i]) }
		}
		dSettled := at(tl, t90, v(func(s memberSample) float64 { return s.Settled })) -
			at(tl, from, v(func(s memberSample) float64 { return s.Settled }))
		dCPU := at(tl, t90, v(func(s memberSample) float64 { return s.CPUSec })) -
			at(tl, from, v(func(s memberSample) float64 { return s.CPUSec }))
		inst := fleetInstance{Name: m.name, Settled: end.Members[i].Settled, EventsPerSec: dSettled / w,
			CPUMicros: 1e6 * ratio(dCPU, dSettled), Cores: dCPU / w,
			CPUTotal: time.Duration(end.Members[i].CPUSec * float64(time.Second)), Replayed: end.Members[i].Replayed, Partitions: end.Members[i].Assigned,
			MeanBatch: ratio(end.Members[i].BatchEvents, end.Members[i].Batches)}
		if m.cg != nil {
			inst.NrThrottled, inst.Throttled = m.cg.throttled()
		}
		fr.Replayed += inst.Replayed
		fr.Instances = append(fr.Instances, inst)
	}
	if fr.StoredInCH, err = waitStored(ctx, e.s.ClickHouse, fr.Database, e.n); err != nil {
		return fr, err
	}
	pub1, err := e.published(ctx)
	if err != nil {
		return fr, err
	}
	fr.DecidedTwice = pub1 - pub0 - int64(e.n)
	logf("fleet of %d: steady %.0f events/s (%.1fs..%.1fs), average %.0f/s, %d stored in ClickHouse (want %d); %.0f settled when all were ready, group whole at %.1fs, %.0f replayed, %d decided twice",
		k, fr.EventsPerSec, fr.SteadyFromS, fr.SteadyToS, fr.AvgEventsPerSec, fr.StoredInCH, e.n, fr.SettledAtReady, fr.StableS, fr.Replayed, fr.DecidedTwice)
	for _, in := range fr.Instances {
		logf("  %s: %.0f events/s, %.1f µs CPU per event, %.2f cores, throttled %d periods (%.1fs), %.0f partitions at the end, mean output batch %.0f",
			in.Name, in.EventsPerSec, in.CPUMicros, in.Cores, in.NrThrottled, in.Throttled.Seconds(), in.Partitions, in.MeanBatch)
	}
	logf("  harness (broker) %.2f cores, ClickHouse %.2f cores", fr.HarnessCores, fr.CHCores)
	return fr, nil
}

// move starts k instances on the backlog, stops the last one with sig
// once MoveAt of the backlog is settled, and times the survivors taking
// its partitions over.
func (e *fleetEnv) move(ctx context.Context, k int, sig string) (moveRun, error) {
	if k < 2 {
		return moveRun{}, fmt.Errorf("-move-fleet %d: a move needs two instances or more", k)
	}
	signal := map[string]syscall.Signal{"term": syscall.SIGTERM, "kill": syscall.SIGKILL}[sig]
	if signal == 0 {
		return moveRun{}, fmt.Errorf("-moves: %q is neither term nor kill", sig)
	}
	name := fmt.Sprintf("move%d_%s", k, sig)
	mr := moveRun{Size: k, Signal: sig, Database: "riskd_fleet_" + name, LoadAvg: loadAvg()}
	logf("move (%d instances, SIG%s at %.0f%% of the backlog; load average %s)", k, strings.ToUpper(sig),
		100*e.f.MoveAt, mr.LoadAvg)
	pub0, err := e.published(ctx)
	if err != nil {
		return mr, err
	}
	members, _, stop, err := e.start(ctx, name, k)
	if err != nil {
		return mr, err
	}
	defer stop()
	// A finer interval than the throughput runs': the restore is timed
	// from these scrapes.
	smp := newFleetSampler(members, e.chPID, 100*time.Millisecond)
	stopSampling := sampleCtx(ctx, smp)
	defer stopSampling()
	n := float64(e.n)
	// Stop the instance once the start-up rebalance is over, so the
	// move timed is this one alone.
	for x := smp.latest(); x.Settled < e.f.MoveAt*n || stableAt([]fleetSample{x}, float64(2*e.s.Partitions)) < 0; x = smp.latest() {
		if x.Settled >= n {
			return mr, fmt.Errorf("move %s: the backlog was decided before the group was whole; use more -events", sig)
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return mr, err
		}
	}
	victim := members[k-1]
	before := smp.latest()
	mr.SettledAtStop = before.Settled
	mr.VictimPartitions = before.Members[k-1].Assigned
	t0 := time.Now()
	if err := victim.proc.cmd.Process.Signal(signal); err != nil {
		return mr, fmt.Errorf("signal %s: %w", victim.name, err)
	}
	total := float64(2 * e.s.Partitions) // both input topics
	var replayed0, parts0 float64
	for i := range k - 1 {
		replayed0 += before.Members[i].Replayed
		parts0 += before.Members[i].PartsRestored
	}
	for mr.RestoredS == 0 {
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return mr, err
		}
		if mr.VictimExitS == 0 {
			select {
			case err := <-victim.proc.exited:
				victim.proc.exited <- err
				mr.VictimExitS = time.Since(t0).Seconds()
			default:
			}
		}
		x := smp.latest()
		var assigned, restoring, replayed, parts float64
		for i := range k - 1 {
			assigned += x.Members[i].Assigned
			restoring += x.Members[i].Restoring
			replayed += x.Members[i].Replayed
			parts += x.Members[i].PartsRestored
			mr.MaxRestoreLeft = max(mr.MaxRestoreLeft, x.Members[i].RestoreLeft)
		}
		if assigned == total && mr.AssignedS == 0 {
			mr.AssignedS = time.Since(t0).Seconds()
		}
		if assigned == total && restoring == 0 {
			mr.RestoredS = time.Since(t0).Seconds()
			mr.Replayed, mr.PartsRestored = replayed-replayed0, parts-parts0
		}
		if time.Since(t0) > 5*time.Minute {
			return mr, fmt.Errorf("move %s: survivors hold %.0f of %.0f partitions, %.0f restoring, after 5 min", sig, assigned, total, restoring)
		}
	}
	logf("move %s: victim held %.0f partitions, exited after %.2fs; all assigned after %.2fs, restored after %.2fs, %.0f partitions' state from a snapshot, %.0f events replayed (max %.0f left at once)",
		sig, mr.VictimPartitions, mr.VictimExitS, mr.AssignedS, mr.RestoredS, mr.PartsRestored, mr.Replayed, mr.MaxRestoreLeft)
	// The stopped instance's last scrape may miss what it made durable
	// while it drained, so the fleet's settled sum can stay below n:
	// ClickHouse's count says when the backlog is all stored.
	if mr.StoredInCH, err = waitStored(ctx, e.s.ClickHouse, mr.Database, e.n); err != nil {
		return mr, fmt.Errorf("move %s: %w", sig, err)
	}
	mr.DrainedS = time.Since(t0).Seconds()
	pub1, err := e.published(ctx)
	if err != nil {
		return mr, err
	}
	mr.DecidedTwice = pub1 - pub0 - int64(e.n)
	logf("move %s: backlog settled %.1fs after the signal, %d decided twice, %d stored in ClickHouse (want %d)",
		sig, mr.DrainedS, mr.DecidedTwice, mr.StoredInCH, e.n)
	return mr, nil
}

// published is how many decision records the decisions topic holds: one
// per decision made with outputs, so its growth over a run less the
// backlog is the events decided twice.
func (e *fleetEnv) published(ctx context.Context) (int64, error) {
	t := streams.DefaultTopics().Decisions
	ends, err := endOffsets(ctx, []string{e.broker}, []string{t}, e.s.Partitions)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, v := range ends[t] {
		n += v
	}
	return n, nil
}

// waitStored polls ClickHouse until db holds a decision for each of the
// n events, or until the count has not grown for 30 s (it returns the
// count then, and the caller reports the shortfall).
func waitStored(ctx context.Context, addr, db string, n int) (uint64, error) {
	store, err := chstore.Open(ctx, chstore.Config{Addr: addr, Database: db})
	if err != nil {
		return 0, err
	}
	defer store.Close()
	var last uint64
	grew := time.Now()
	for {
		c, err := store.CountDecisions(ctx, time.Time{})
		if err != nil {
			return 0, err
		}
		if c >= uint64(n) || time.Since(grew) > 30*time.Second {
			return c, nil
		}
		if c > last {
			last, grew = c, time.Now()
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return c, err
		}
	}
}

// stableAt is the time of the first sample at which the members hold
// all the partitions between them, each at least one, none restoring;
// -1 if none.
func stableAt(tl []fleetSample, partitions float64) float64 {
	for _, x := range tl {
		var assigned float64
		ok := true
		for _, m := range x.Members {
			assigned += m.Assigned
			ok = ok && m.Up && m.Assigned > 0 && m.Restoring == 0
		}
		if ok && assigned == partitions {
			return x.T
		}
	}
	return -1
}

// crossingF is crossing over a fleet timeline.
func crossingF(tl []fleetSample, v func(fleetSample) float64, level float64) float64 {
	return crossingAt(tl, func(x fleetSample) float64 { return x.T }, v, level)
}

// at interpolates v at time t.
func at(tl []fleetSample, t float64, v func(fleetSample) float64) float64 {
	for i, x := range tl {
		if x.T < t {
			continue
		}
		if i == 0 || x.T == t {
			return v(x)
		}
		a := tl[i-1]
		return v(a) + (v(x)-v(a))*(t-a.T)/(x.T-a.T)
	}
	if len(tl) == 0 {
		return 0
	}
	return v(tl[len(tl)-1])
}

// loadAvg is /proc/loadavg's first three fields: how busy the shared
// machine was before a run.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// write saves the record as <dir>/fleet-<stamp>.json; latest.json is the
// default run's and stays untouched.
func (r *fleetResult) write(dir string) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return "", fmt.Errorf("results: %w", err)
	}
	path := filepath.Join(dir, "fleet-"+r.Stamp+".json")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("results: %w", err)
	}
	return path, nil
}

func printFleetSummary(r *fleetResult, path string) {
	logf("results written to %s", path)
	fmt.Printf("\n%-4s %12s %28s %22s %18s %8s %8s %8s\n", "k", "fleet ev/s", "per instance ev/s", "µs CPU/event", "cores",
		"broker", "CH", "replayed")
	for _, fr := range r.Sizes {
		var per, us, cores []string
		for _, in := range fr.Instances {
			per = append(per, fmt.Sprintf("%.0f", in.EventsPerSec))
			us = append(us, fmt.Sprintf("%.1f", in.CPUMicros))
			cores = append(cores, fmt.Sprintf("%.2f", in.Cores))
		}
		fmt.Printf("%-4d %12.0f %28s %22s %18s %8.2f %8.2f %8.0f\n", fr.Size, fr.EventsPerSec, strings.Join(per, " / "),
			strings.Join(us, " / "), strings.Join(cores, " / "), fr.HarnessCores, fr.CHCores, fr.Replayed)
	}
	fmt.Println()
	for _, m := range r.Moves {
		fmt.Printf("move SIG%-4s k=%d: victim held %.0f partitions; exit %.2fs, all assigned %.2fs, restored %.2fs; %.0f partitions' state from a snapshot, %.0f replayed, %d decided twice; drained %.1fs; %d stored\n",
			strings.ToUpper(m.Signal), m.Size, m.VictimPartitions, m.VictimExitS, m.AssignedS, m.RestoredS, m.PartsRestored, m.Replayed,
			m.DecidedTwice, m.DrainedS, m.StoredInCH)
	}
}
