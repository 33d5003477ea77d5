package features

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"riskd/bench/traffic"
	"riskd/event"
)

// BenchmarkObserveReference measures Observe alone on the reference
// workload (bench/reference: 20 features in 5 groups) with the state of
// BenchmarkScoreReference in package engine: 100k accounts warmed with
// 400k generated events, then generated events replayed in a loop, their
// time shifted on each pass so windows keep sliding.
func BenchmarkObserveReference(b *testing.B) {
	yml, err := os.ReadFile("../bench/reference/features.yaml")
	if err != nil {
		b.Fatal(err)
	}
	s := mustSet(b, string(yml))
	const accounts = 100_000
	g := traffic.New(traffic.Config{Accounts: accounts, Seed: 7, FraudRate: 0.02,
		Start: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)})
	st := s.NewStore()
	var v Values
	var ev event.Event
	for range 4 * accounts {
		g.Next(&ev)
		st.Observe(&ev, &v)
	}
	pool := make([]event.Event, 300_000)
	for i := range pool {
		g.Next(&pool[i])
	}
	span := pool[len(pool)-1].TS - pool[0].TS + 1000
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ev := &pool[i%len(pool)]
		if i > 0 && i%len(pool) == 0 {
			for j := range pool {
				pool[j].TS += span
			}
		}
		st.Observe(ev, &v)
		i++
	}
	if v.Profile.EventsSeen == 0 && st.Len() == 0 {
		b.Fatal("no state")
	}
	b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "events/s")
}

// newKindsYAML adds one feature of each kind added after count..distinct
// to the reference workload, as BenchmarkMemoryReference measures them.
const newKindsYAML = `
amount_sd_24h:        {stddev: amount, by: account, window: 24h, where: 'type == "payment"'}
last_payment_24h:     {last: amount, by: account, window: 24h, where: 'type == "payment"'}
since_login_24h:      {time_since: login, by: account, window: 24h}
device_first_seen_7d: {first_seen: "*", by: device.id, window: 7d}
`

// sequenceYAML is the takeover sequence of docs/FEATURES.md and one
// whose first step every event matches (the most state a 2-step
// sequence keeps), as BenchmarkMemoryReference measures them.
const sequenceYAML = `
reset_payee_transfer_30m: {sequence: [password_reset, payee_add, payment], by: account, within: 30m, link: payee_id, where: 'type != "payment" || channel == "transfer"'}
any_then_payment_30m: {sequence: ["*", payment], by: account, within: 30m}
`

// BenchmarkMemoryReference reports the live heap per active account of
// a Store after the warm-up of BenchmarkObserveReference (100k accounts,
// 400k generated events), for the reference features alone, with one
// feature of each new kind added, and with each of those alone added.
func BenchmarkMemoryReference(b *testing.B) {
	yml, err := os.ReadFile("../bench/reference/features.yaml")
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct{ name, yml string }{
		{"reference", string(yml)},
		{"reference+new-kinds", string(yml) + newKindsYAML},
	}
	for _, line := range strings.Split(strings.TrimSpace(newKindsYAML+sequenceYAML), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		name, _, _ := strings.Cut(line, ":")
		cases = append(cases, struct{ name, yml string }{"reference+" + name, string(yml) + line + "\n"})
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			s := mustSet(b, c.yml)
			evs := memoryTraffic()
			var perAccount float64
			for b.Loop() {
				perAccount, _ = heapPerAccount(s, evs)
			}
			b.ReportMetric(perAccount, "B/account")
		})
	}
}

// memoryTraffic is the generated stream the memory benchmarks observe:
// four events for each of 100,000 accounts.
func memoryTraffic() []event.Event {
	const accounts = 100_000
	g := traffic.New(traffic.Config{Accounts: accounts, Seed: 7, FraudRate: 0.02,
		Start: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)})
	evs := make([]event.Event, 4*accounts)
	for i := range evs {
		g.Next(&evs[i])
	}
	return evs
}

// heapPerAccount observes evs in a fresh Store of s and returns the live
// heap it grew by, per account, with the Store.
func heapPerAccount(s *Set, evs []event.Event) (float64, *Store) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	st := s.NewStore()
	var v Values
	for i := range evs {
		st.Observe(&evs[i], &v)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(st.Accounts()), st
}
