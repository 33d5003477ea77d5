package backtest

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"riskd/engine"
	"riskd/event"
	"riskd/rules"
	"riskd/streams/chstore"
)

// attackGap splits one account's fraud of one label into attacks: events
// this far apart or more belong to different attacks.
const attackGap = 24 * time.Hour

// accumulator builds a Report from the period's decisions, one at a time.
type accumulator struct {
	rep            *Report
	fromMs, width  int64
	buckets        int
	candidateHash8 string

	rules    map[string]*RuleStats
	order    []string // rule ids in report order
	actions  [rules.Lock + 1][2]int64
	changes  map[[2]string]*Change
	versions map[string]int64

	features map[string]*featureDiff
	attacks  map[attackKey]*attack
	byLabel  map[string]*LabelAttack
	amounts  map[string]*AmountStopped

	noDecision      int64
	noDecisionEx    string
	orphanDecisions int64
	refusedEx       string

	dec event.Decoder
	ev  event.Event
}

type featureDiff struct {
	events               int64
	eventID              string
	recorded, recomputed float64
}

type attackKey struct{ account, label string }

type attack struct {
	lastTS           int64
	caught, caughtRc bool
}

func newAccumulator(cfg Config, fromMs, toMs int64) *accumulator {
	width := (toMs - fromMs + Buckets - 1) / Buckets
	if width < 1000 {
		width = 1000
	} else if width%60_000 != 0 && width > 60_000 { // whole minutes read better
		width += 60_000 - width%60_000
	}
	nb := int((toMs - fromMs + width - 1) / width)
	a := &accumulator{
		rep: &Report{From: cfg.From.UTC(), To: cfg.To.UTC(), Candidate: cfg.Rules.Version.String(),
			CandidateHash: cfg.Rules.Version.Hash, BucketStart: cfg.From.UTC(), BucketWidth: Duration(time.Duration(width) * time.Millisecond)},
		fromMs: fromMs, width: width, buckets: nb,
		candidateHash8: hash8(cfg.Rules.Version.Hash),
		rules:          map[string]*RuleStats{},
		changes:        map[[2]string]*Change{},
		versions:       map[string]int64{},
		features:       map[string]*featureDiff{},
		attacks:        map[attackKey]*attack{},
		byLabel:        map[string]*LabelAttack{},
		amounts:        map[string]*AmountStopped{},
		dec:            event.Decoder{MaxBytes: cfg.Engine.MaxEventBytes},
	}
	for _, r := range cfg.Rules.Rules {
		mode := "active"
		if r.Mode == rules.Shadow {
			mode = "shadow"
		}
		a.rules[r.ID] = &RuleStats{ID: r.ID, Mode: mode, Action: r.Action.String(), Series: make([]int64, nb)}
		a.order = append(a.order, r.ID)
	}
	return a
}

func hash8(h string) string {
	if len(h) > 8 {
		return h[:8]
	}
	return h
}

func (a *accumulator) rule(id string) *RuleStats {
	if r, ok := a.rules[id]; ok {
		return r
	}
	r := &RuleStats{ID: strings.Clone(id), Mode: "absent", Series: make([]int64, a.buckets)}
	a.rules[r.ID] = r
	a.order = append(a.order, r.ID)
	return r
}

// refused counts an event the engine could not decide.
func (a *accumulator) refused(id string, err error) {
	if a.rep.Refused == 0 {
		a.refusedEx = fmt.Sprintf("%s: %v", id, err)
	}
	a.rep.Refused++
}

// caught: the candidate stopped the event; hit: it bothered someone.
func caught(x rules.Action) bool { return x >= rules.Challenge }
func hit(x rules.Action) bool    { return x >= rules.Review }

// add counts one decision of the period; rec is the recorded decision of
// the same event or nil, label its stored label or "".
func (a *accumulator) add(d *engine.Decision, rec *chstore.ReplayDecision, label string) {
	a.rep.EventsPeriod++
	fraud := chstore.LabelIsFraud(label)
	bucket := int((d.EventTS - a.fromMs) / a.width)
	a.actions[min(d.Action, rules.Lock)][0]++

	for i := range d.Matched {
		a.hitRule(a.rule(d.Matched[i].RuleID), false, d.EventTS, bucket, label, fraud)
	}
	for i := range d.Shadow {
		a.hitRule(a.rule(d.Shadow[i].RuleID), true, d.EventTS, bucket, label, fraud)
	}

	recAction := rules.Allow
	if rec == nil {
		if a.noDecision == 0 {
			a.noDecisionEx = d.EventID
		}
		a.noDecision++
	} else {
		a.rep.Totals.Compared++
		var err error
		if recAction, err = rules.ParseAction(rec.Action); err != nil {
			recAction = rules.Allow
		}
		a.actions[recAction][1]++
		if len(a.versions) < MaxVersions || a.versions[rec.RuleSetVersion] > 0 {
			a.versions[rec.RuleSetVersion]++
		} else {
			a.versions["other"]++
		}
		if recAction != d.Action {
			a.change(recAction.String(), d.Action.String(), d.EventID)
		}
		a.compareRules(d, rec)
		a.compareFeatures(d, rec)
	}

	ev := &a.rep.Totals.Events
	if fraud {
		ev.Fraud++
		if caught(d.Action) {
			ev.Caught++
		}
		if rec != nil && caught(recAction) {
			ev.CaughtRecorded++
		}
		a.attack(d, label, caught(d.Action), rec != nil && caught(recAction))
		a.amount(d, caught(d.Action), rec != nil && caught(recAction))
	} else {
		ev.Good++
		if hit(d.Action) {
			ev.GoodHit++
		}
		if rec != nil && hit(recAction) {
			ev.GoodHitRec++
		}
		if label == chstore.LabelNotFraud {
			ev.NotFraud++
			if hit(d.Action) {
				ev.NotFraudHit++
			}
		}
	}
}

func (a *accumulator) hitRule(r *RuleStats, shadow bool, ts int64, bucket int, label string, fraud bool) {
	if shadow {
		r.ShadowHits++
	} else {
		r.Hits++
	}
	switch {
	case fraud:
		r.Fraud++
	case label == chstore.LabelNotFraud:
		r.NotFraud++
	default:
		r.Unlabelled++
	}
	t := time.UnixMilli(ts).UTC()
	if r.FirstHit == nil {
		r.FirstHit = &t
	}
	r.LastHit = &t
	if bucket >= 0 && bucket < len(r.Series) {
		r.Series[bucket]++
	}
}

func (a *accumulator) change(from, to, id string) {
	k := [2]string{from, to}
	c := a.changes[k]
	if c == nil {
		c = &Change{From: from, To: to}
		a.changes[k] = c
	}
	c.Count++
	if len(c.Examples) < MaxExamples {
		c.Examples = append(c.Examples, strings.Clone(id))
	}
	a.rep.Totals.Changed++
}

// compareRules counts, per rule, hits new in the candidate and hits lost
// against the recorded decision (active and shadow alike).
func (a *accumulator) compareRules(d *engine.Decision, rec *chstore.ReplayDecision) {
	differ := false
	for _, id := range rec.MatchedRules {
		a.rule(id).RecordedHits++
		if !hasHit(d.Matched, id) && !hasHit(d.Shadow, id) {
			a.rule(id).LostHits++
			differ = true
		}
	}
	for _, id := range rec.ShadowRules {
		a.rule(id).RecordedHits++
		if !hasHit(d.Matched, id) && !hasHit(d.Shadow, id) {
			a.rule(id).LostHits++
			differ = true
		}
	}
	for _, hits := range [2][]engine.RuleHit{d.Matched, d.Shadow} {
		for i := range hits {
			id := hits[i].RuleID
			if !slices.Contains(rec.MatchedRules, id) && !slices.Contains(rec.ShadowRules, id) {
				a.rule(id).NewHits++
				differ = true
			}
		}
	}
	// A rule moved between active and shadow also changes the decision.
	if !differ && (len(rec.MatchedRules) != len(d.Matched) || len(rec.ShadowRules) != len(d.Shadow)) {
		differ = true
	}
	if differ {
		t := &a.rep.Totals
		t.RulesDiffer++
		if len(t.RulesDifferExamples) < MaxExamples {
			t.RulesDifferExamples = append(t.RulesDifferExamples, strings.Clone(d.EventID))
		}
	}
}

func hasHit(hs []engine.RuleHit, id string) bool {
	for i := range hs {
		if hs[i].RuleID == id {
			return true
		}
	}
	return false
}

// compareFeatures compares the values the candidate's rules read with the
// recorded values of the same names.
func (a *accumulator) compareFeatures(d *engine.Decision, rec *chstore.ReplayDecision) {
	for _, f := range d.Features {
		i := slices.Index(rec.FeatureNames, f.Name)
		if i < 0 || i >= len(rec.FeatureValues) {
			continue
		}
		r := rec.FeatureValues[i]
		if r == f.Value || math.IsNaN(r) && math.IsNaN(f.Value) {
			continue
		}
		fd := a.features[f.Name]
		if fd == nil {
			fd = &featureDiff{eventID: strings.Clone(d.EventID), recorded: r, recomputed: f.Value}
			a.features[strings.Clone(f.Name)] = fd
		}
		fd.events++
	}
}

// attack records a fraud-labelled event in its attack: the fraud events of
// one account with one label, each less than attackGap after the last.
func (a *accumulator) attack(d *engine.Decision, label string, c, cr bool) {
	k := attackKey{account: d.AccountID, label: label}
	at := a.attacks[k]
	if at != nil && d.EventTS-at.lastTS >= attackGap.Milliseconds() {
		a.closeAttack(label, at)
		at = nil
	}
	if at == nil {
		k.account, k.label = strings.Clone(k.account), strings.Clone(k.label)
		at = &attack{}
		a.attacks[k] = at
	}
	at.lastTS = d.EventTS
	at.caught = at.caught || c
	at.caughtRc = at.caughtRc || cr
}

func (a *accumulator) closeAttack(label string, at *attack) {
	la := a.byLabel[label]
	if la == nil {
		la = &LabelAttack{Label: strings.Clone(label)}
		a.byLabel[la.Label] = la
	}
	la.Attacks++
	if at.caught {
		la.Caught++
	}
	if at.caughtRc {
		la.CaughtRecorded++
	}
}

// amount adds a fraud-labelled money-out event (a payment, any channel
// including transfer, or a withdrawal) to the fraudulent amount.
func (a *accumulator) amount(d *engine.Decision, c, cr bool) {
	if d.EventType != event.TypePayment && d.EventType != event.TypeWithdrawal {
		return
	}
	if err := a.dec.Decode(d.Raw, &a.ev); err != nil {
		return // the engine decoded it a moment ago; cannot happen
	}
	am := a.amounts[a.ev.Currency]
	if am == nil {
		am = &AmountStopped{Currency: strings.Clone(a.ev.Currency)}
		a.amounts[am.Currency] = am
	}
	am.Total += a.ev.Amount
	if c {
		am.Stopped += a.ev.Amount
	}
	if cr {
		am.StoppedRecorded += a.ev.Amount
	}
}

// finish completes the report.
func (a *accumulator) finish(warnings []string) *Report {
	rep := a.rep
	for _, id := range a.order {
		r := a.rules[id]
		r.Changed = r.NewHits + r.LostHits
		if n := r.Hits + r.ShadowHits; n > 0 {
			p := float64(r.Fraud) / float64(n)
			r.Precision = &p
		}
		if n := r.Fraud + r.NotFraud; n > 0 {
			p := float64(r.Fraud) / float64(n)
			r.LabelledPrecision = &p
		}
		rep.Rules = append(rep.Rules, *r)
	}
	t := &rep.Totals
	for x := rules.Allow; x <= rules.Lock; x++ {
		t.Actions = append(t.Actions, ActionCount{Action: x.String(), Candidate: a.actions[x][0], Recorded: a.actions[x][1]})
	}
	for _, c := range a.changes {
		t.Changes = append(t.Changes, *c)
	}
	sort.Slice(t.Changes, func(i, j int) bool {
		ci, cj := t.Changes[i], t.Changes[j]
		if ci.Count != cj.Count {
			return ci.Count > cj.Count
		}
		return ci.From+"\x00"+ci.To < cj.From+"\x00"+cj.To
	})
	for k, at := range a.attacks {
		a.closeAttack(k.label, at)
	}
	for _, la := range a.byLabel {
		t.Attacks.ByLabel = append(t.Attacks.ByLabel, *la)
		t.Attacks.Attacks += la.Attacks
		t.Attacks.Caught += la.Caught
		t.Attacks.CaughtRecorded += la.CaughtRecorded
	}
	sort.Slice(t.Attacks.ByLabel, func(i, j int) bool { return t.Attacks.ByLabel[i].Label < t.Attacks.ByLabel[j].Label })
	for _, am := range a.amounts {
		t.Amount = append(t.Amount, *am)
	}
	sort.Slice(t.Amount, func(i, j int) bool { return t.Amount[i].Currency < t.Amount[j].Currency })
	for v, n := range a.versions {
		rep.Recorded = append(rep.Recorded, VersionCount{Version: v, Decisions: n})
	}
	sort.Slice(rep.Recorded, func(i, j int) bool { return rep.Recorded[i].Version < rep.Recorded[j].Version })

	rep.Warnings = append(warnings, a.warnings()...)
	if rep.Warnings == nil {
		rep.Warnings = []string{}
	}
	return rep
}

// warnings say why the candidate's decisions can differ from the recorded
// ones other than by its rules.
func (a *accumulator) warnings() []string {
	var w []string
	if a.noDecision > 0 {
		w = append(w, fmt.Sprintf("%d events of the period have no recorded decision (e.g. %s: outside the decisions' "+
			"retention, or not stored): they are replayed but not compared", a.noDecision, a.noDecisionEx))
	}
	if a.orphanDecisions > 0 {
		w = append(w, fmt.Sprintf("%d recorded decisions of the period have no stored event (outside the events' retention): "+
			"they are not replayed, so the state after them may differ from the live state", a.orphanDecisions))
	}
	if a.rep.Refused > 0 {
		w = append(w, fmt.Sprintf("%d stored events could not be decided and were skipped (first: %s)", a.rep.Refused, a.refusedEx))
	}
	var other []string
	for v := range a.versions {
		if v == "other" {
			other = append(other, v)
			continue
		}
		_, h, _ := strings.Cut(v, "-")
		if h != a.candidateHash8 {
			other = append(other, v)
		}
	}
	if len(other) > 0 {
		slices.Sort(other)
		w = append(w, fmt.Sprintf("the recorded decisions were made by rule set %s, not the candidate (%s): "+
			"changed decisions are the rule changes' doing", strings.Join(other, ", "), a.rep.Candidate))
	}
	names := make([]string, 0, len(a.features))
	for n := range a.features {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fd := a.features[n]
		w = append(w, fmt.Sprintf("feature %s: the recomputed value differs from the recorded one on %d events "+
			"(e.g. %s: recorded %g, recomputed %g): its definition or the events before it changed",
			n, fd.events, fd.eventID, fd.recorded, fd.recomputed))
	}
	return w
}
