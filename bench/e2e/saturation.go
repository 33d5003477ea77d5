package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// saturation times riskd draining the pre-produced workload into
// ClickHouse and reads its CPU and memory.
func saturation(ctx context.Context, r *results, smp *sampler, proc *riskdProc, ch *chConn, s settings, n int) error {
	p0, err := readProc(proc.pid())
	if err != nil {
		return err
	}
	m0, m0Err := smp.scrapeNow(ctx)
	work0, work0Err := ch.work(ctx)
	sat := &r.Saturation
	chPID := sat.ClickHousePID
	ch0, ch0Err := readProc(chPID)
	// Other clients of the ClickHouse server while its CPU is read: their
	// work is in the figure too.
	others := map[int]string{}
	watchCtx, stopWatch := context.WithCancel(ctx)
	var watch sync.WaitGroup
	if chPID > 0 {
		ours := map[int]bool{proc.pid(): true, os.Getpid(): true}
		watch.Go(func() {
			everyTick(watchCtx, time.Second, func(context.Context) {
				maps.Copy(others, otherClients(chPID, ours))
			})
		})
	}
	defer func() {
		stopWatch()
		watch.Wait()
	}()
	logf("riskd ready (pid %d); waiting for %d decisions to be stored", proc.pid(), n)
	var profiled sync.WaitGroup
	var profErr error
	if s.RiskdCPU > 0 {
		profiled.Go(func() { profErr = proc.cpu(ctx, s.RiskdCPU, filepath.Join(s.OutDir, "riskd-cpu.pprof")) })
	}
	if err := smp.waitSettled(ctx, float64(n)); err != nil {
		return fmt.Errorf("saturation: %w", err)
	}
	p1, err := readProc(proc.pid())
	if err != nil {
		return err
	}
	m1, m1Err := smp.scrapeNow(ctx)
	ch1, ch1Err := readProc(chPID)
	profiled.Wait() // after the phase's figures: the profile may outlast it
	if profErr != nil {
		return profErr
	}
	chSeen := chPID > 0 && ch0Err == nil && ch1Err == nil
	if chSeen {
		sat.ClickHouseCPU = ch1.CPU - ch0.CPU
	}
	m := smp.latest()
	sat.OutputBatches = m["riskd_output_batch_size_count"]
	sat.MeanBatchSize = ratio(m["riskd_output_batch_size_sum"], sat.OutputBatches)
	sat.ClickHouseMeanS = ratio(m[`riskd_sink_seconds_sum{sink="clickhouse"}`], m[`riskd_sink_seconds_count{sink="clickhouse"}`])
	sat.KafkaMeanS = ratio(m[`riskd_sink_seconds_sum{sink="kafka"}`], m[`riskd_sink_seconds_count{sink="kafka"}`])
	sat.Events = n
	sat.SteadyFrom, sat.SteadyTo = 0.1, 0.9
	tl := smp.timeline()
	sat.FirstConsumedS = crossing(tl, func(x sample) float64 { return x.Consumed }, 1)
	sat.AllStoredS = crossing(tl, func(x sample) float64 { return x.Settled }, float64(n))
	sat.AvgEventsPerSec = float64(n) / (sat.AllStoredS - sat.FirstConsumedS)
	t10 := crossing(tl, func(x sample) float64 { return x.Settled }, sat.SteadyFrom*float64(n))
	t90 := crossing(tl, func(x sample) float64 { return x.Settled }, sat.SteadyTo*float64(n))
	r.E2EEventsPerSec = (sat.SteadyTo - sat.SteadyFrom) * float64(n) / (t90 - t10)
	sat.Load1 = load1()
	sat.CPU = p1.CPU - p0.CPU
	sat.CPUCoresUsed = sat.CPU.Seconds() / (sat.AllStoredS - sat.FirstConsumedS)
	r.CPUMicrosPerEvent = float64(sat.CPU.Microseconds()) / float64(n)
	if m0Err == nil && m1Err == nil {
		sat.GCCPU = m1.gcCPU() - m0.gcCPU()
		logf("riskd's runtime estimates its garbage collector took %.1fs of the %.1fs (%.1f us per event)",
			sat.GCCPU.Seconds(), sat.CPU.Seconds(), float64(sat.GCCPU.Microseconds())/float64(n))
	} else {
		logf("warning: riskd's collector CPU not read: %v", errors.Join(m0Err, m1Err))
	}
	logf("all %d stored %.1fs after riskd was ready: steady %.0f/s (10%%..90%%), average %.0f/s, %.1f us CPU per event (%.2f cores); load %.2f",
		n, sat.AllStoredS, r.E2EEventsPerSec, sat.AvgEventsPerSec, r.CPUMicrosPerEvent, sat.CPUCoresUsed, sat.Load1)
	logf("%.0f output batches of %.0f on average; mean flush: ClickHouse %.3fs, Kafka %.3fs; ClickHouse server CPU %.1fs",
		sat.OutputBatches, sat.MeanBatchSize, sat.ClickHouseMeanS, sat.KafkaMeanS, sat.ClickHouseCPU.Seconds())

	// riskd_active_accounts is refreshed every 5 s; wait for a value taken
	// after the last event.
	smp.setPhase("idle")
	idleFrom := time.Now()
	if err := sleepCtx(ctx, 6*time.Second+2*s.SampleEvery); err != nil {
		return err
	}
	sat.IdleAfter = time.Since(idleFrom)
	stopWatch()
	watch.Wait()
	for pid, cmd := range others {
		sat.ClickHouseOtherClients = append(sat.ClickHouseOtherClients, fmt.Sprintf("pid %d: %s", pid, cmd))
	}
	slices.Sort(sat.ClickHouseOtherClients)
	if len(others) > 0 {
		logf("warning: %d other processes were connected to the ClickHouse server while its CPU was read; "+
			"the server figure includes their work: %s", len(others), strings.Join(sat.ClickHouseOtherClients, "; "))
	}
	if work1, err := ch.work(ctx); err == nil && work0Err == nil {
		w := work1.minus(work0)
		sat.ClickHouseWork = &w
		logf("ClickHouse counted while storing and after: %d inserts, %d rows (%.0f MB); %d merges of %d rows (%.0f MB uncompressed)",
			w.InsertQueries, w.InsertedRows, float64(w.InsertedBytes)/1e6, w.Merges, w.MergedRows, float64(w.MergedRawBytes)/1e6)
	} else {
		logf("warning: ClickHouse's system.events not read: %v", errors.Join(work0Err, err))
	}
	if ch2, err := readProc(chPID); chSeen && err == nil {
		sat.ClickHouseCPUAfter = ch2.CPU - ch1.CPU
		us := float64((sat.ClickHouseCPU + sat.ClickHouseCPUAfter).Microseconds()) / float64(n)
		r.ClickHouseMicrosPerEvent = &us
		logf("ClickHouse server (pid %d, %s) CPU: %.1fs while storing + %.1fs in the %.1fs after = %.1f us per stored event "+
			"(riskd %.1f us); it used %.3f cores before riskd started",
			chPID, sat.ClickHouseFoundBy, sat.ClickHouseCPU.Seconds(), sat.ClickHouseCPUAfter.Seconds(), sat.IdleAfter.Seconds(),
			us, r.CPUMicrosPerEvent, sat.ClickHouseBackground)
	} else {
		logf("warning: ClickHouse server CPU not measured (%s)", sat.ClickHouseFoundBy)
	}
	m = smp.latest()
	sat.HeapInuse, sat.HeapLive, sat.ActiveAccounts, sat.StateEntities =
		m["go_memstats_heap_inuse_bytes"], m["riskd_heap_live_bytes"], m["riskd_active_accounts"], m["riskd_state_entities"]
	r.HeapBytesPerAccount = ratio(sat.HeapLive, sat.ActiveAccounts)
	p2, err := readProc(proc.pid())
	if err != nil {
		return err
	}
	sat.RSSBytes, sat.HWMBytes = p2.RSSBytes, p2.HWMBytes
	r.RSSBytes = p2.RSSBytes
	logf("live heap %.0f MiB over %.0f active accounts = %.0f B/account (heap in use %.0f MiB = %.0f B/account); RSS %d MiB (peak %d MiB)",
		sat.HeapLive/(1<<20), sat.ActiveAccounts, r.HeapBytesPerAccount, sat.HeapInuse/(1<<20),
		ratio(sat.HeapInuse, sat.ActiveAccounts), p2.RSSBytes>>20, p2.HWMBytes>>20)
	return nil
}

// crossing returns the time at which v(sample) first reaches level,
// interpolating linearly between the two samples around it; the last
// sample's time when it never does.
func crossing(tl []sample, v func(sample) float64, level float64) float64 {
	return crossingAt(tl, func(x sample) float64 { return x.T }, v, level)
}

// crossingAt is crossing over any timeline whose samples say their time
// (t) and value (v): a single riskd's or a fleet's.
func crossingAt[S any](tl []S, t, v func(S) float64, level float64) float64 {
	for i, x := range tl {
		if v(x) < level {
			continue
		}
		if i == 0 {
			return t(x)
		}
		a := tl[i-1]
		return t(a) + (t(x)-t(a))*(level-v(a))/(v(x)-v(a))
	}
	if len(tl) == 0 {
		return 0
	}
	return t(tl[len(tl)-1])
}
