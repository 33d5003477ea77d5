package backtest_test

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"riskd/backtest"
	"riskd/internal/chtest"
	"riskd/rules"
)

// shadowRule is one more rule for a candidate: a shadow rule with hits,
// which changes no action.
const shadowRule = `- id: zz-login-watch
  when: event.type == "login"
  action: review
  mode: shadow
`

// withFile returns files with one more file.
func withFile(files map[string][]byte, name, content string) map[string][]byte {
	out := maps.Clone(files)
	out[name] = []byte(content)
	return out
}

func compile(t *testing.T, files map[string][]byte, set rules.FeatureIndex) *rules.RuleSet {
	t.Helper()
	rs, err := rules.Compile(files, set)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func hasWarning(ws []string, part string) bool {
	return slices.ContainsFunc(ws, func(w string) bool { return strings.Contains(w, part) })
}

// Live decisions made in arrival order, not event-time order, cannot be
// reproduced by a replay; the report says so in its reproduction, and the
// changed decisions of a candidate that only adds a shadow rule are that
// rule's hits and nothing else.
func TestArrivalOrderNoiseIsNotAChange(t *testing.T) {
	set, rs := referenceSet(t)
	files := readReferenceFiles(t)
	st := chtest.Open(t)
	writeVersion(t, st, 1, files)
	const n = 20_000
	first, last := decideLive(t, st, set, rs, n, generated(n), liveOptions{shuffle: 64})
	candidate := compile(t, withFile(files, "zz-shadow.yaml", shadowRule), set)

	rep, err := backtest.Run(t.Context(), backtest.Config{Store: st, Features: set, Rules: candidate, From: first, To: last.Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	p := rep.Reproduction
	t.Logf("reproduction: %d identical of %d, %d differ (%d only in rules), changes %+v", p.Identical, p.Compared, p.Differing, p.RulesDiffer, p.Changes)
	if p.Exact || p.Differing == 0 || p.Compared != rep.EventsPeriod || p.Compared != n || p.NotReplayed != 0 {
		t.Errorf("reproduction %+v: want differences over all %d events compared", p, n)
	}
	if !hasWarning(rep.Warnings, "decided some events in arrival order") {
		t.Errorf("no arrival-order warning: %q", rep.Warnings)
	}
	if hasWarning(rep.Warnings, "could not be replayed") {
		t.Errorf("a missing-version warning: %q", rep.Warnings)
	}
	if rep.Totals.Changed != 0 || len(rep.Totals.Changes) != 0 || rep.Totals.ComparedWithRecorded != 0 {
		t.Errorf("changed %d %+v (%d against the record): want none, the candidate only adds a shadow rule",
			rep.Totals.Changed, rep.Totals.Changes, rep.Totals.ComparedWithRecorded)
	}
	var noise int64 // what comparing with the record would have shown
	for _, r := range rep.Rules {
		if r.ID == "zz-login-watch" {
			if r.ShadowHits == 0 || r.NewHits != r.ShadowHits || r.LostHits != 0 || r.Changed != r.ShadowHits || r.BaselineHits != 0 {
				t.Errorf("the new shadow rule: %+v", r)
			}
			if rep.Totals.RulesDiffer != r.ShadowHits {
				t.Errorf("matched rules differ on %d events, the new rule hit %d", rep.Totals.RulesDiffer, r.ShadowHits)
			}
			continue
		}
		if r.Changed != 0 || r.BaselineHits != r.Hits+r.ShadowHits {
			t.Errorf("rule %s: changed %d, baseline %d, hits %d: want no change", r.ID, r.Changed, r.BaselineHits, r.Hits+r.ShadowHits)
		}
		noise += max(r.RecordedHits-r.BaselineHits, r.BaselineHits-r.RecordedHits)
	}
	if noise == 0 {
		t.Errorf("the replay's rule hits equal the recorded ones: the shuffled arrival order made no difference, the test proves nothing")
	}
}

// When the rule set that made the recorded decisions is not in the version
// history (or the history holds other files under its number), the
// candidate is compared with the recorded decisions, and the report says
// which versions were missing and why.
func TestAMissingVersionFallsBackToTheRecord(t *testing.T) {
	set, rs := referenceSet(t)
	files := readReferenceFiles(t)
	st := chtest.Open(t)
	const n = 4_000
	first, last := decideLive(t, st, set, rs, n, generated(n), liveOptions{})
	candidate := compile(t, withFile(files, "zz-shadow.yaml", shadowRule), set)
	live := "1-" + rs.Version.Hash[:8]

	for _, c := range []struct {
		name, reason string
		history      map[string][]byte
	}{
		{"not in the history", "not in the version history", nil},
		{"other files in the history", "", candidateFiles(files)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.history != nil {
				writeVersion(t, st, 1, c.history)
				c.reason = "the history's version 1 has hash " + rules.HashFiles(c.history)[:8]
			}
			rep, err := backtest.Run(t.Context(), backtest.Config{Store: st, Features: set, Rules: candidate, From: first, To: last.Add(time.Second)})
			if err != nil {
				t.Fatal(err)
			}
			p := rep.Reproduction
			want := []backtest.MissingVersion{{Version: live, Reason: c.reason, Decisions: n}}
			if !slices.Equal(p.MissingVersions, want) || p.Exact || p.NotReplayed != n || p.Compared != 0 {
				t.Errorf("reproduction %+v, want not replayed: %+v", p, want)
			}
			if rep.Totals.Compared != n || rep.Totals.ComparedWithRecorded != n {
				t.Errorf("compared %d, %d with the record: want all %d", rep.Totals.Compared, rep.Totals.ComparedWithRecorded, n)
			}
			if !hasWarning(rep.Warnings, "could not be replayed: "+live+" ("+c.reason+"; 4000 decisions in the period)") {
				t.Errorf("no missing-version warning: %q", rep.Warnings)
			}
			// Against the record, as before the baseline: exact here, so
			// the new rule's hits are the only change.
			for _, r := range rep.Rules {
				want := int64(0)
				if r.ID == "zz-login-watch" {
					want = r.ShadowHits
				}
				if r.Changed != want || r.BaselineHits != 0 {
					t.Errorf("rule %s: changed %d, baseline %d; want %d, 0", r.ID, r.Changed, r.BaselineHits, want)
				}
			}
		})
	}

	// The caller's files of the live set (riskd's running set, say) stand
	// in for the history.
	rep, err := backtest.Run(t.Context(), backtest.Config{Store: st, Features: set, Rules: candidate, From: first, To: last.Add(time.Second),
		KnownFiles: []map[string][]byte{files}})
	if err != nil {
		t.Fatal(err)
	}
	if p := rep.Reproduction; !p.Exact || p.Compared != n || len(p.MissingVersions) != 0 || rep.Totals.ComparedWithRecorded != 0 {
		t.Errorf("with the live files known: reproduction %+v, %d compared with the record", p, rep.Totals.ComparedWithRecorded)
	}
}

// candidateFiles are other files than the live ones, for a history that
// holds another set under the live version's number.
func candidateFiles(files map[string][]byte) map[string][]byte {
	return withFile(files, "zz-other.yaml", shadowRule)
}

// A period over which the live rule set changed is replayed with each
// version where the record has it: the baseline switches at the recorded
// switch and reproduces both halves exactly.
func TestTheBaselineSwitchesWhereTheRecordSwitched(t *testing.T) {
	set, rs := referenceSet(t)
	files := readReferenceFiles(t)
	// Version 2 reviews every login: it decides many events differently.
	files2 := withFile(files, "zz-review.yaml", `- id: zz-login-review
  when: event.type == "login"
  action: review
`)
	rs2 := compile(t, files2, set)
	st := chtest.Open(t)
	writeVersion(t, st, 1, files)
	writeVersion(t, st, 2, files2)
	const n = 10_000
	tc := generated(n)
	first, last := decideLive(t, st, set, rs, n, tc, liveOptions{next: rs2, switchAt: n / 2})
	// Where version 2's decisions start in event time.
	var switchMs int64
	if err := sqlConn(t).QueryRow(t.Context(), "SELECT min(event_ts_ms) FROM `"+st.Database()+
		"`.decisions WHERE ruleset_version = ?", "2-"+rs2.Version.Hash[:8]).Scan(&switchMs); err != nil {
		t.Fatal(err)
	}
	switchTS := time.UnixMilli(switchMs).UTC()
	candidate := compile(t, files, set) // version 1 throughout

	for _, c := range []struct {
		name     string
		from, to time.Time
		versions int
		changed  bool
	}{
		{"before the switch", first, switchTS, 1, false},
		{"across the switch", first, last.Add(time.Second), 2, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			rep, err := backtest.Run(t.Context(), backtest.Config{Store: st, Features: set, Rules: candidate, From: c.from, To: c.to})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Recorded) != c.versions {
				t.Errorf("recorded versions %+v, want %d", rep.Recorded, c.versions)
			}
			if p := rep.Reproduction; !p.Exact || p.Compared != rep.EventsPeriod || p.Differing != 0 || len(p.MissingVersions) != 0 {
				t.Errorf("reproduction %+v: want exact over %d events", p, rep.EventsPeriod)
			}
			if hasWarning(rep.Warnings, "arrival order") || hasWarning(rep.Warnings, "could not be replayed") {
				t.Errorf("warnings: %q", rep.Warnings)
			}
			if (rep.Totals.Changed > 0) != c.changed {
				t.Errorf("changed %d (%+v): want changes %v", rep.Totals.Changed, rep.Totals.Changes, c.changed)
			}
			for _, r := range rep.Rules {
				if r.ID == "zz-login-review" {
					// Removed in the candidate: every baseline hit is lost.
					if r.Mode != "absent" || r.BaselineHits == 0 || r.LostHits != r.BaselineHits || r.RecordedHits != r.BaselineHits {
						t.Errorf("version 2's own rule: %+v", r)
					}
					continue
				}
				if r.Changed != 0 {
					t.Errorf("rule %s changed %d", r.ID, r.Changed)
				}
			}
		})
	}
}
