package engine

import (
	"encoding/json"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"riskd/bench/traffic"
	"riskd/features"
	"riskd/rules"
)

// referenceDir holds the reference workload: 20 features, 50 rules, lists.
const referenceDir = "../bench/reference"

// loadReference compiles the reference workload.
func loadReference(tb testing.TB) (*features.Set, *rules.Holder) {
	tb.Helper()
	return loadWorkload(tb, filepath.Join(referenceDir, "features.yaml"), filepath.Join(referenceDir, "rules"))
}

// generate returns n encoded events from g.
func generate(g *traffic.Generator, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = g.AppendJSON(nil)
	}
	return out
}

// BenchmarkScoreReference measures the whole per-event path (decode,
// lock and duplicate checks, 20 features, 50 rules, policy) on one shard
// whose state holds 100k warmed accounts, and, in the same run, the
// yardstick the target is set against: encoding/json.Unmarshal of one
// event alone.
func BenchmarkScoreReference(b *testing.B) {
	set, holder := loadReference(b)
	const accounts = 100_000
	g := traffic.New(traffic.Config{Accounts: accounts, Seed: 7, FraudRate: 0.02,
		Start: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)})
	s := NewScorer(Config{DedupeCapacity: 1 << 20}, set, holder)
	var d Decision
	for _, raw := range generate(g, 4*accounts) { // warm: ~4 events per account
		if err := s.Score(raw, Source{}, &d); err != nil {
			b.Fatal(err)
		}
	}
	pool := generate(g, 300_000)

	b.Run("score", func(b *testing.B) {
		b.ReportAllocs()
		decided := 0
		i := 0
		start := time.Now()
		for b.Loop() {
			if err := s.Score(pool[i%len(pool)], Source{}, &d); err != nil {
				b.Fatal(err)
			}
			if !d.Duplicate {
				decided++
			}
			i++
		}
		if decided == 0 {
			b.Fatal("nothing decided")
		}
		b.ReportMetric(float64(i)/time.Since(start).Seconds(), "events/s")
		if i > len(pool) {
			b.ReportMetric(float64(i-decided)/float64(i), "dup-fraction")
		}
	})
	b.Run("encoding_json_unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		var ev jsonEvent
		i := 0
		for b.Loop() {
			ev = jsonEvent{}
			if err := json.Unmarshal(pool[i%len(pool)], &ev); err != nil {
				b.Fatal(err)
			}
			i++
		}
		if ev.EventID == "" {
			b.Fatal("nothing decoded")
		}
	})
}

// jsonEvent mirrors the wire format for the encoding/json yardstick.
type jsonEvent struct {
	EventID    string `json:"event_id"`
	Type       string `json:"type"`
	TS         int64  `json:"ts"`
	AccountID  string `json:"account_id"`
	Amount     int64  `json:"amount"`
	Currency   string `json:"currency"`
	Channel    string `json:"channel"`
	MerchantID string `json:"merchant_id"`
	MCC        string `json:"mcc"`
	PayeeID    string `json:"payee_id"`
	CardID     string `json:"card_id"`
	Device     struct {
		ID         string `json:"id"`
		OS         string `json:"os"`
		AppVersion string `json:"app_version"`
		Rooted     bool   `json:"rooted"`
		Emulator   bool   `json:"emulator"`
	} `json:"device"`
	IP  string `json:"ip"`
	Geo struct {
		Country string  `json:"country"`
		Lat     float64 `json:"lat"`
		Lon     float64 `json:"lon"`
	} `json:"geo"`
	Attrs map[string]any `json:"attrs"`
	Label string         `json:"label"`
}

// BenchmarkReferenceHeapPerAccount measures the heap a shard holds per
// active account with the reference features: live heap after scoring
// warm-up traffic for 100k accounts, minus the heap before, over the number
// of accounts. Each iteration builds a fresh scorer.
func BenchmarkReferenceHeapPerAccount(b *testing.B) {
	set, holder := loadReference(b)
	const accounts = 100_000
	g := traffic.New(traffic.Config{Accounts: accounts, Seed: 11, FraudRate: 0.02,
		Start: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)})
	warm := generate(g, 4*accounts)
	var perAccount float64
	for b.Loop() {
		before := liveHeap()
		s := NewScorer(Config{DedupeCapacity: 1024}, set, holder)
		var d Decision
		for _, raw := range warm {
			if err := s.Score(raw, Source{}, &d); err != nil {
				b.Fatal(err)
			}
		}
		after := liveHeap()
		perAccount = float64(after-before) / float64(accounts)
		runtime.KeepAlive(s)
	}
	b.ReportMetric(perAccount, "heapB/account")
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
