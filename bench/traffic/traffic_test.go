package traffic

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"riskd/event"
)

func testConfig(seed uint64, rate float64) Config {
	return Config{
		Accounts:        500,
		Seed:            seed,
		FraudRate:       rate,
		Start:           time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC),
		EventsPerSecond: 200,
	}
}

func TestSameSeedSameEvents(t *testing.T) {
	a, b := New(testConfig(7, 0.05)), New(testConfig(7, 0.05))
	var ba, bb []byte
	for i := 0; i < 5000; i++ {
		ba = a.AppendJSON(ba[:0])
		bb = b.AppendJSON(bb[:0])
		if !bytes.Equal(ba, bb) {
			t.Fatalf("event %d differs:\n%s\n%s", i, ba, bb)
		}
	}
	c := New(testConfig(8, 0.05))
	a = New(testConfig(7, 0.05))
	same := 0
	for i := 0; i < 100; i++ {
		if bytes.Equal(a.AppendJSON(nil), c.AppendJSON(nil)) {
			same++
		}
	}
	if same == 100 {
		t.Error("different seeds gave the same stream")
	}
}

func TestFraudRate(t *testing.T) {
	for _, rate := range []float64{0, 0.01, 0.05, 0.2} {
		g := New(testConfig(42, rate))
		const n = 300000
		labelled := 0
		seen := map[string]int{}
		var ev event.Event
		for i := 0; i < n; i++ {
			g.Next(&ev)
			if ev.Label != "" {
				labelled++
				seen[ev.Label]++
			}
		}
		got := float64(labelled) / n
		if rate == 0 {
			if labelled != 0 {
				t.Errorf("rate 0: %d labelled events", labelled)
			}
			continue
		}
		// Scenarios come in bursts of about eight events, so the share
		// varies more than a coin flip per event would; 20% is over three
		// standard deviations at the lowest rate tested.
		if math.Abs(got-rate)/rate > 0.2 {
			t.Errorf("rate %v: labelled fraction %.4f", rate, got)
		}
		for _, s := range Scenarios {
			if seen[s] == 0 {
				t.Errorf("rate %v: scenario %s never appeared", rate, s)
			}
		}
		t.Logf("rate %v: labelled %.4f %v", rate, got, seen)
	}
}

// TestScenarioScripts checks each scenario plays its whole script on
// successive events.
func TestScenarioScripts(t *testing.T) {
	g := New(testConfig(4, 0.05))
	var ev event.Event
	var run []string // types of the current burst
	label := ""
	check := func() {
		if label == AccountTakeover && len(run) >= 5 {
			want := []string{"password_reset", "login", "device_bind", "payee_add", "payment"}
			for i, w := range want {
				if run[i] != w {
					t.Fatalf("account_takeover script %v", run)
				}
			}
		}
		if label == BruteForce && len(run) < 6 {
			t.Fatalf("brute_force burst of %d login_failed", len(run))
		}
	}
	for i := 0; i < 50000; i++ {
		g.Next(&ev)
		if ev.Label != label {
			check()
			label, run = ev.Label, run[:0]
		}
		run = append(run, ev.Type)
	}
}

func TestEventsDecodeAndOrder(t *testing.T) {
	g := New(testConfig(1, 0.1))
	var dec event.Decoder
	var got event.Event
	var buf []byte
	ids := map[string]bool{}
	var lastTS int64
	types := map[string]int{}
	for i := 0; i < 20000; i++ {
		buf = g.AppendJSON(buf[:0])
		if err := dec.Decode(buf, &got); err != nil {
			t.Fatalf("event %d: %v\n%s", i, err, buf)
		}
		want := &g.jsonEv
		if got.ID != want.ID || got.Type != want.Type || got.TS != want.TS ||
			got.AccountID != want.AccountID || got.Amount != want.Amount ||
			got.Label != want.Label || got.Device != want.Device || got.Geo != want.Geo {
			t.Fatalf("event %d does not round-trip:\n%+v\n%+v", i, got, *want)
		}
		if ids[got.ID] {
			t.Fatalf("duplicate id %s", got.ID)
		}
		ids[strings.Clone(got.ID)] = true
		if got.TS <= lastTS {
			t.Fatalf("event %d: ts %d not after %d", i, got.TS, lastTS)
		}
		lastTS = got.TS
		types[strings.Clone(got.Type)]++
	}
	for _, typ := range event.KnownTypes {
		if types[typ] == 0 {
			t.Errorf("type %s never generated", typ)
		}
	}
	if types[event.TypePayment] < 10000 {
		t.Errorf("only %d payments in 20000 events", types[event.TypePayment])
	}
}

func TestEventRate(t *testing.T) {
	cfg := testConfig(3, 0.01)
	cfg.FlatRate = true
	g := New(cfg)
	var ev event.Event
	const n = 20000
	for i := 0; i < n; i++ {
		g.Next(&ev)
	}
	secs := float64(ev.TS-cfg.Start.UnixMilli()) / 1000
	if rate := n / secs; rate < 0.9*cfg.EventsPerSecond || rate > 1.1*cfg.EventsPerSecond {
		t.Errorf("event-time rate %.1f/s, want about %v", rate, cfg.EventsPerSecond)
	}
}

// TestStringsOutliveNext checks events may be kept without Clone.
func TestStringsOutliveNext(t *testing.T) {
	g := New(testConfig(5, 0.1))
	kept := make([]event.Event, 100)
	var enc [][]byte
	for i := range kept {
		g.Next(&kept[i])
		enc = append(enc, kept[i].AppendJSON(nil))
	}
	for i := 0; i < 1000; i++ {
		g.AppendJSON(nil)
	}
	for i := range kept {
		if b := kept[i].AppendJSON(nil); !bytes.Equal(b, enc[i]) {
			t.Fatalf("event %d changed after later calls", i)
		}
	}
}

func TestScamPayeesInReferenceList(t *testing.T) {
	f, err := os.Open("../reference/rules/lists/scam_payees.txt")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	list := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line != "" {
			list[line] = true
		}
	}
	for _, id := range ScamPayees {
		if !list[id] {
			t.Errorf("%s is not in the reference scam_payees list", id)
		}
	}
}

func TestNextAllocations(t *testing.T) {
	g := New(testConfig(9, 0.02))
	var ev event.Event
	allocs := testing.AllocsPerRun(10000, func() { g.Next(&ev) })
	if allocs > 1.5 {
		t.Errorf("Next allocates %.2f times per event, want about 1 (the id)", allocs)
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	g := New(Config{Accounts: 100000, Seed: 1, FraudRate: 0.01, EventsPerSecond: 1000})
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = g.AppendJSON(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

// TestDailyRhythm: over whole days the mean rate is the configured one, and
// night hours see far fewer events than the busy hours of the day.
func TestDailyRhythm(t *testing.T) {
	cfg := testConfig(5, 0.01)
	cfg.Start = time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	cfg.EventsPerSecond = 0.5 // 43,200 a day
	g := New(cfg)
	var ev event.Event
	var byHour [24]int
	const days = 3
	end := cfg.Start.Add(days * 24 * time.Hour).UnixMilli()
	n := 0
	for g.Next(&ev); ev.TS < end; g.Next(&ev) {
		byHour[hourOfDay(ev.TS)]++
		n++
	}
	if perSec := float64(n) / (days * 86400); perSec < 0.45 || perSec > 0.55 {
		t.Errorf("mean rate over %d days %.3f/s, want about 0.5", days, perSec)
	}
	if night, lunch := byHour[3], byHour[12]; night*5 > lunch {
		t.Errorf("events at 03h %d, at 12h %d: want the night far quieter", night, lunch)
	}
}
