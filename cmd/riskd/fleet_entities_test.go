package main

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"riskd/internal/apitest"
	"riskd/internal/kafkatest"
)

// TestDeviceFarmSpreadOverTheFleet runs two instances in one group and a
// device farm whose accounts are split between them: eight accounts log
// in on one phone, a second apart, alternating between accounts instance
// a decides and accounts b decides. Each login reads the phone's window
// whole, whichever instance decides it (each reads the other's partitions
// into its shared entity windows), so the device-farm rule fires from the
// fifth login on, with the count one instance would read. Then both
// instances take two thousand events at 200 a second, and the test logs
// riskd_shared_window_delay_seconds: how long after an event was produced
// the other instance's windows counted it (for bench/RESULTS.md, not
// checked). On both brokers (kafkatest.Run).
func TestDeviceFarmSpreadOverTheFleet(t *testing.T) {
	kafkatest.Run(t, testDeviceFarmSpreadOverTheFleet)
}

func testDeviceFarmSpreadOverTheFleet(t *testing.T, b kafkatest.Broker) {
	p := startPair(t, b)
	defer mustStop(t, p.stopA)
	defer mustStop(t, p.stopB)
	e := p.e
	ofA, ofB := accountsOwnedBy(t, p, "a", "farm-", 4), accountsOwnedBy(t, p, "b", "farm-", 4)

	const spacing = time.Second // longer than the stated staleness bound
	var ids []string
	for i := range 8 {
		account := ofA[i/2]
		if i%2 == 1 {
			account = ofB[i/2]
		}
		id := fmt.Sprintf("farm-login-%d", i)
		ids = append(ids, id)
		kafkatest.Produce(t, e.addr, e.accountEvents, ev(id, "login", account, time.Now().UnixMilli(),
			`,"ip":"203.0.113.50","device":{"id":"farm-phone-fleet"}`))
		time.Sleep(spacing)
	}
	e.waitStored(t, 8)
	checkFarm(t, e, ids)

	// Live traffic over many accounts, for the delay of the shared windows.
	const total, perBatch = 2000, 20
	start := time.Now()
	for n := 0; n < total; n += perBatch {
		var batch []kafka.Message
		for i := range perBatch {
			batch = append(batch, ev(fmt.Sprintf("live-%d", n+i), "login", fmt.Sprintf("live-acct-%d", (n+i)%300),
				time.Now().UnixMilli(), fmt.Sprintf(`,"device":{"id":"live-dev-%d"}`, (n+i)%40)))
		}
		kafkatest.Produce(t, e.addr, e.accountEvents, batch...)
		time.Sleep(time.Until(start.Add(time.Duration(n+perBatch) * time.Second / 200)))
	}
	e.waitStored(t, 8+total)
	for _, d := range []*daemon{p.a, p.b} {
		count, p50, p99 := histogramQuantiles(t, d, "riskd_shared_window_delay_seconds")
		t.Logf("instance %s: %d events of the other instance's partitions; shared-window delay p50 <= %.1f ms, p99 <= %.1f ms (bucket upper bounds)",
			d.pipe.Instance(), count, p50*1000, p99*1000)
	}
}

// checkFarm checks the stored decisions of the farm's eight logins, ids in
// order: the device-farm rule fires from the fifth on, each time reading
// the phone's whole window.
func checkFarm(t *testing.T, e *testEnv, ids []string) {
	t.Helper()
	for i, id := range ids {
		d := e.decision(t, id)
		fired := false
		for _, r := range d.MatchedRules {
			fired = fired || r == "device-farm"
		}
		if want := i >= 4; fired != want {
			t.Fatalf("login %d (%s): device-farm matched %v, want %v (matched %v)", i+1, id, fired, want, d.MatchedRules)
		}
		if !fired {
			continue
		}
		for _, f := range d.Features {
			if f.Name == "accounts_per_device_1h" && f.Value != float64(i+1) {
				t.Fatalf("login %d (%s): accounts_per_device_1h = %v, want %d: the phone's window is not whole", i+1, id, f.Value, i+1)
			}
		}
	}
}

// TestDeviceFarmThroughTheDecideAPI is the same farm with its logins
// decided through the decide API of instance a, which forwards those of
// b's accounts to b. Each decided login is appended to its input topic
// (decide.publish_events), so the instance that did not decide it counts
// it in its shared windows as it counts the stream's, and the instance
// that did reads it back as already decided.
func TestDeviceFarmThroughTheDecideAPI(t *testing.T) {
	kafkatest.Run(t, testDeviceFarmThroughTheDecideAPI)
}

func testDeviceFarmThroughTheDecideAPI(t *testing.T, b kafkatest.Broker) {
	p := startPair(t, b)
	defer mustStop(t, p.stopA)
	defer mustStop(t, p.stopB)
	ofA, ofB := accountsOwnedBy(t, p, "a", "apifarm-", 4), accountsOwnedBy(t, p, "b", "apifarm-", 4)
	onA := apitest.Client{T: t, Base: "http://" + p.a.httpAddr}
	var ids []string
	for i := range 8 {
		account := ofA[i/2]
		if i%2 == 1 {
			account = ofB[i/2]
		}
		id := fmt.Sprintf("apifarm-login-%d", i)
		ids = append(ids, id)
		onA.Decide(string(ev(id, "login", account, time.Now().UnixMilli(),
			`,"ip":"203.0.113.51","device":{"id":"api-farm-phone"}`).Value))
		time.Sleep(time.Second) // longer than the stated staleness bound
	}
	p.e.waitStored(t, 8)
	checkFarm(t, p.e, ids)
	deadline := time.Now().Add(time.Minute)
	for {
		back := 0.0
		for _, d := range []*daemon{p.a, p.b} {
			back += testutil.ToFloat64(d.metrics.DecideReadBack)
		}
		if back == 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%.0f of the 8 decided logins read back from the input topic by their deciders", back)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// histogramQuantiles reads histogram name from d's registry and returns its
// count and the upper bounds of the buckets holding the median and the
// 99th percentile.
func histogramQuantiles(t *testing.T, d *daemon, name string) (count uint64, p50, p99 float64) {
	t.Helper()
	mfs, err := d.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		count = h.GetSampleCount()
		p50, p99 = math.Inf(1), math.Inf(1)
		for _, b := range h.GetBucket() {
			c := float64(b.GetCumulativeCount())
			if c >= 0.5*float64(count) && math.IsInf(p50, 1) {
				p50 = b.GetUpperBound()
			}
			if c >= 0.99*float64(count) && math.IsInf(p99, 1) {
				p99 = b.GetUpperBound()
			}
		}
		return count, p50, p99
	}
	t.Fatalf("no %s in the registry", name)
	return 0, 0, 0
}
