package streams

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"riskd/engine"
	"riskd/rules"
)

// texts are strings encoding/json treats specially: HTML characters,
// control characters, quotes, invalid UTF-8, the line separators, and
// plain multibyte text.
var texts = []string{"", "plain", "<script>&amp;</script>", "tab\there\nnew\rline\b\f", "quote\" back\\slash",
	"\x00\x01\x1f\x7f", "bad \xff\xfe utf8 \xc3", "sep\u2028para\u2029", "ÄÖÜ 日本 🙂", "a/b"}

var floats = []float64{0, -0.0, 1, -1, 0.5, 1e-6, 9.99e-7, 1e-7, 1.5e-300, 1e20, 1e21, 123456789012345678901234.0,
	math.MaxFloat64, math.SmallestNonzeroFloat64, 3.141592653589793, -2.5e-8, 86400, 1e300}

func randomDecision(r *rand.Rand) *engine.Decision {
	pick := func() string { return texts[r.IntN(len(texts))] }
	hits := func() []engine.RuleHit {
		var hs []engine.RuleHit
		for range r.IntN(4) {
			hs = append(hs, engine.RuleHit{RuleID: pick(), Action: rules.Action(r.IntN(7)), Score: r.IntN(100)})
		}
		return hs
	}
	strs := func() []string {
		var ss []string
		for range r.IntN(3) {
			ss = append(ss, pick())
		}
		return ss
	}
	d := &engine.Decision{EventID: pick(), AccountID: pick(), EventType: pick(), EventTS: r.Int64() - r.Int64(),
		DecidedAt: time.Unix(r.Int64N(4e9), r.Int64N(1e9)).In(time.FixedZone("x", 3600*r.IntN(5))),
		Action:    rules.Action(r.IntN(8)), Score: r.IntN(300) - 100, Reason: pick(),
		Matched: hits(), Shadow: hits(), Errored: hits(), RuleSetVersion: pick(),
		Latency: time.Duration(r.Int64N(1e10)), Late: r.IntN(2) == 0,
		LateFor: strs(), Warming: strs(), WarmingSkipped: strs()}
	for range r.IntN(6) {
		name := []string{"a", "b", "velocity_1h", "z", "amount", "<f>"}[r.IntN(6)]
		d.Features = append(d.Features, engine.FeatureValue{Name: name, Value: floats[r.IntN(len(floats))]})
	}
	if r.IntN(3) == 0 {
		d.LockUntil = time.UnixMilli(r.Int64N(4e12))
	}
	for range r.IntN(3) {
		d.ThrottledAlerts = append(d.ThrottledAlerts, engine.ThrottledAlert{RuleID: pick(), SentTS: r.Int64N(1e13), UntilTS: r.Int64N(1e13)})
	}
	if r.IntN(2) == 0 {
		d.Candidate = engine.CandidateOutcome{Version: pick(), Action: rules.Action(r.IntN(7)), Score: r.IntN(100), Matched: strs()}
	}
	return d
}

// The hand-written record is byte for byte what encoding/json made of
// the DecisionRecord before.
func TestDecisionRecordJSONIsEncodingJSONs(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20_000 {
		d := randomDecision(r)
		want, wantErr := json.Marshal(newDecisionRecord(d))
		got, err := appendDecisionRecord(nil, d)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("decision %d: error %v, encoding/json's %v", i, err, wantErr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("decision %d:\n got %s\nwant %s", i, got, want)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		d := &engine.Decision{EventID: "e", Features: []engine.FeatureValue{{Name: "x", Value: f}}}
		if _, err := appendDecisionRecord(nil, d); err == nil {
			t.Errorf("feature value %v: no error (encoding/json refuses it)", f)
		}
	}
}

func TestAlertRecordJSONIsEncodingJSONs(t *testing.T) {
	for i, s := range texts {
		a := AlertRecord{EventID: s, AccountID: texts[(i+1)%len(texts)], RuleID: s, Action: rules.Action(i % 8),
			Message: texts[(i+3)%len(texts)], EventTS: int64(i) * 1e12}
		want, _ := json.Marshal(a)
		if got := appendAlertRecord(nil, &a); !bytes.Equal(got, want) {
			t.Fatalf("alert %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

func FuzzDecisionRecordJSON(f *testing.F) {
	for _, s := range texts {
		f.Add(s, 1.5)
	}
	f.Fuzz(func(t *testing.T, s string, v float64) {
		d := &engine.Decision{EventID: s, AccountID: s, Reason: s, RuleSetVersion: s,
			Matched:  []engine.RuleHit{{RuleID: s}},
			Features: []engine.FeatureValue{{Name: s, Value: v}, {Name: "k", Value: v}}}
		want, wantErr := json.Marshal(newDecisionRecord(d))
		got, err := appendDecisionRecord(nil, d)
		if (err != nil) != (wantErr != nil) || (err == nil && !bytes.Equal(got, want)) {
			t.Fatalf("%q %v:\n got %s (%v)\nwant %s (%v)", s, v, got, err, want, wantErr)
		}
	})
}

// BenchmarkDecisionRecord compares the record's two encodings on a
// decision of the reference rules' usual shape.
func BenchmarkDecisionRecord(b *testing.B) {
	d := &engine.Decision{EventID: "evt-00000001234567", AccountID: "acct-0001234", EventType: "payment",
		EventTS: 1764547200123, DecidedAt: time.UnixMilli(1764547200456), Action: rules.Challenge, Score: 50,
		Reason: "rule:new-device-large-payment", RuleSetVersion: "1-d46e6053",
		Matched:  []engine.RuleHit{{RuleID: "new-device-large-payment", Action: rules.Challenge, Score: 50}},
		Features: []engine.FeatureValue{{Name: "payments_1h", Value: 3}, {Name: "amount_sum_24h", Value: 125000}, {Name: "new_device", Value: 1}},
		Latency:  23 * time.Microsecond}
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(newDecisionRecord(d)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("appended", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for b.Loop() {
			var err error
			if buf, err = appendDecisionRecord(buf[:0], d); err != nil {
				b.Fatal(err)
			}
		}
	})
}
