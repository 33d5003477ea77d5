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

	rules map[string]*RuleStats
	order []string // rule ids in report order
	// actions counts decisions by action: candidate, baseline, recorded.
	actions      [rules.Lock + 1][3]int64
	changes      map[[2]string]*Change // candidate against the reference
	reproChanges map[[2]string]*Change // recorded -> baseline
	versions     map[string]int64
	// notReplayed and notReplayedWarmup count the recorded decisions, of
	// the period and of the warm-up, per version the baseline could not
	// replay.
	notReplayed, notReplayedWarmup map[string]int64
	refM, refS                     []string // reused for the baseline's rule ids

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
		reproChanges:   map[[2]string]*Change{},
		versions:       map[string]int64{},
		notReplayed:    map[string]int64{},

		notReplayedWarmup: map[string]int64{},
		features:          map[string]*featureDiff{},
		attacks:           map[attackKey]*attack{},
		byLabel:           map[string]*LabelAttack{},
		amounts:           map[string]*AmountStopped{},
		dec:               event.Decoder{MaxBytes: cfg.Engine.MaxEventBytes},
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

// take counts one scored event (warm-up or period).
func (a *accumulator) take(it *item) {
	if it.candErr != nil {
		a.refused(it.ev.EventID, it.candErr)
		return
	}
	if !it.period {
		a.rep.EventsWarmup++
		if it.hasRec && (it.base == nil || it.base.rs == nil) {
			a.notReplayedWarmup[it.rec.RuleSetVersion]++
		}
		return
	}
	var rec *chstore.ReplayDecision
	if it.hasRec {
		rec = &it.rec
	}
	a.add(it.ev.EventID, it.ev.Raw, &it.cand, it.baseline(), rec, it.label)
}

// ref is the decision the candidate is compared with: the baseline
// replay's or, where there is none, the recorded one.
type ref struct {
	action         rules.Action
	matched        []string
	shadow         []string
	baseline, some bool
}

// add counts one decision of the period: d the candidate's, b the baseline
// replay's (nil when its version could not be replayed), rec the recorded
// one (nil when none is stored), label the event's stored label or "".
func (a *accumulator) add(id string, raw []byte, d, b *engine.Decision, rec *chstore.ReplayDecision, label string) {
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
	if rec != nil {
		var err error
		if recAction, err = rules.ParseAction(rec.Action); err != nil {
			recAction = rules.Allow
		}
		a.actions[recAction][2]++
		if len(a.versions) < MaxVersions || a.versions[rec.RuleSetVersion] > 0 {
			a.versions[rec.RuleSetVersion]++
		} else {
			a.versions["other"]++
		}
		for _, r := range rec.MatchedRules {
			a.rule(r).RecordedHits++
		}
		for _, r := range rec.ShadowRules {
			a.rule(r).RecordedHits++
		}
	}
	if b != nil {
		a.actions[min(b.Action, rules.Lock)][1]++
		for i := range b.Matched {
			a.rule(b.Matched[i].RuleID).BaselineHits++
		}
		for i := range b.Shadow {
			a.rule(b.Shadow[i].RuleID).BaselineHits++
		}
	}

	// The candidate against the baseline: the rule change alone; against
	// the record only where the baseline could not be replayed.
	var r ref
	switch {
	case b != nil:
		r = ref{action: b.Action, matched: ruleIDs(a.refM[:0], b.Matched), shadow: ruleIDs(a.refS[:0], b.Shadow), baseline: true, some: true}
		a.refM, a.refS = r.matched, r.shadow
	case rec != nil:
		r = ref{action: recAction, matched: rec.MatchedRules, shadow: rec.ShadowRules, some: true}
		a.rep.Totals.ComparedWithRecorded++
	}
	if r.some {
		a.rep.Totals.Compared++
		if r.action != d.Action {
			a.change(a.changes, &a.rep.Totals.Changed, r.action.String(), d.Action.String(), id)
		}
		a.compareRules(id, d, r)
	} else {
		if a.noDecision == 0 {
			a.noDecisionEx = strings.Clone(id)
		}
		a.noDecision++
	}

	// The baseline against the record: the replay itself.
	if rec != nil {
		a.reproduce(id, b, rec, recAction)
		if b != nil {
			a.compareFeatures(id, b, rec)
		} else {
			a.compareFeatures(id, d, rec)
		}
	}

	ev := &a.rep.Totals.Events
	if fraud {
		// The decision's account and type alias a buffer the scorer has
		// reused since: decode the event again (fraud is rare).
		if err := a.dec.Decode(raw, &a.ev); err != nil {
			return // the engine decoded it a moment ago; cannot happen
		}
		ev.Fraud++
		if caught(d.Action) {
			ev.Caught++
		}
		if rec != nil && caught(recAction) {
			ev.CaughtRecorded++
		}
		a.attack(d.EventTS, label, caught(d.Action), rec != nil && caught(recAction))
		a.amount(caught(d.Action), rec != nil && caught(recAction))
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

func ruleIDs(dst []string, hits []engine.RuleHit) []string {
	for i := range hits {
		dst = append(dst, hits[i].RuleID)
	}
	return dst
}

// reproduce compares the baseline's decision of an event with the recorded
// one (b nil: its version could not be replayed).
func (a *accumulator) reproduce(id string, b *engine.Decision, rec *chstore.ReplayDecision, recAction rules.Action) {
	rp := &a.rep.Reproduction
	if b == nil {
		rp.NotReplayed++
		a.notReplayed[rec.RuleSetVersion]++
		return
	}
	rp.Compared++
	if b.Action != recAction {
		rp.Differing++
		a.change(a.reproChanges, nil, recAction.String(), b.Action.String(), id)
		return
	}
	if sameRules(b.Matched, rec.MatchedRules) && sameRules(b.Shadow, rec.ShadowRules) {
		rp.Identical++
		return
	}
	rp.Differing++
	rp.RulesDiffer++
	if len(rp.RulesDifferExamples) < MaxExamples {
		rp.RulesDifferExamples = append(rp.RulesDifferExamples, strings.Clone(id))
	}
}

// sameRules reports whether hits and ids name the same rules (a rule
// matches at most once per decision).
func sameRules(hits []engine.RuleHit, ids []string) bool {
	if len(hits) != len(ids) {
		return false
	}
	for i := range hits {
		if !slices.Contains(ids, hits[i].RuleID) {
			return false
		}
	}
	return true
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

// change counts an event whose action changed from -> to in changes (and
// in *total, when given).
func (a *accumulator) change(changes map[[2]string]*Change, total *int64, from, to, id string) {
	k := [2]string{from, to}
	c := changes[k]
	if c == nil {
		c = &Change{From: from, To: to}
		changes[k] = c
	}
	c.Count++
	if len(c.Examples) < MaxExamples {
		c.Examples = append(c.Examples, strings.Clone(id))
	}
	if total != nil {
		*total++
	}
}

// compareRules counts, per rule, hits new in the candidate and hits lost
// against the reference decision (active and shadow alike).
func (a *accumulator) compareRules(id string, d *engine.Decision, r ref) {
	differ := false
	for _, ids := range [2][]string{r.matched, r.shadow} {
		for _, rid := range ids {
			if !hasHit(d.Matched, rid) && !hasHit(d.Shadow, rid) {
				a.rule(rid).LostHits++
				differ = true
			}
		}
	}
	for _, hits := range [2][]engine.RuleHit{d.Matched, d.Shadow} {
		for i := range hits {
			rid := hits[i].RuleID
			if !slices.Contains(r.matched, rid) && !slices.Contains(r.shadow, rid) {
				a.rule(rid).NewHits++
				differ = true
			}
		}
	}
	// A rule moved between active and shadow also changes the decision.
	if !differ && (len(r.matched) != len(d.Matched) || len(r.shadow) != len(d.Shadow)) {
		differ = true
	}
	if differ {
		t := &a.rep.Totals
		t.RulesDiffer++
		if len(t.RulesDifferExamples) < MaxExamples {
			t.RulesDifferExamples = append(t.RulesDifferExamples, strings.Clone(id))
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

// compareFeatures compares the values the replayed rules read (the
// baseline's, else the candidate's) with the recorded values of the same
// names.
func (a *accumulator) compareFeatures(id string, d *engine.Decision, rec *chstore.ReplayDecision) {
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
			fd = &featureDiff{eventID: strings.Clone(id), recorded: r, recomputed: f.Value}
			a.features[strings.Clone(f.Name)] = fd
		}
		fd.events++
	}
}

// attack records a fraud-labelled event in its attack: the fraud events of
// one account with one label, each less than attackGap after the last.
// The event is a.ev, decoded by add.
func (a *accumulator) attack(ts int64, label string, c, cr bool) {
	k := attackKey{account: a.ev.AccountID, label: label}
	at := a.attacks[k]
	if at != nil && ts-at.lastTS >= attackGap.Milliseconds() {
		a.closeAttack(label, at)
		at = nil
	}
	if at == nil {
		k.account, k.label = strings.Clone(k.account), strings.Clone(k.label)
		at = &attack{}
		a.attacks[k] = at
	}
	at.lastTS = ts
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
// including transfer, or a withdrawal) to the fraudulent amount. The
// event is a.ev, decoded by add.
func (a *accumulator) amount(c, cr bool) {
	if a.ev.Type != event.TypePayment && a.ev.Type != event.TypeWithdrawal {
		return
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

// finish completes the report; vers are the recorded versions the
// baseline looked up, in order of first use.
func (a *accumulator) finish(warnings []string, vers []*baseSet) *Report {
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
		t.Actions = append(t.Actions, ActionCount{Action: x.String(), Candidate: a.actions[x][0], Baseline: a.actions[x][1],
			Recorded: a.actions[x][2]})
	}
	t.Changes = sortedChanges(a.changes)
	rp := &rep.Reproduction
	rp.Changes = sortedChanges(a.reproChanges)
	rp.MissingVersions = []MissingVersion{}
	for _, v := range vers {
		if v.rs == nil {
			rp.MissingVersions = append(rp.MissingVersions, MissingVersion{Version: v.version, Reason: v.missing,
				Decisions: a.notReplayed[v.version], WarmupDecisions: a.notReplayedWarmup[v.version]})
		}
	}
	rp.Exact = rp.Compared > 0 && rp.Differing == 0 && rp.NotReplayed == 0
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

// sortedChanges lists changes, most events first.
func sortedChanges(m map[[2]string]*Change) []Change {
	out := make([]Change, 0, len(m))
	for _, c := range m {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool {
		ci, cj := out[i], out[j]
		if ci.Count != cj.Count {
			return ci.Count > cj.Count
		}
		return ci.From+"\x00"+ci.To < cj.From+"\x00"+cj.To
	})
	return out
}

// warnings say why the candidate's decisions can differ from the recorded
// ones other than by its rules.
func (a *accumulator) warnings() []string {
	var w []string
	rp := &a.rep.Reproduction
	if len(rp.MissingVersions) > 0 {
		var vs []string
		for _, m := range rp.MissingVersions {
			warm := ""
			if m.WarmupDecisions > 0 {
				warm = fmt.Sprintf(", %d in the warm-up", m.WarmupDecisions)
			}
			vs = append(vs, fmt.Sprintf("%s (%s; %d decisions in the period%s)", m.Version, m.Reason, m.Decisions, warm))
		}
		w = append(w, fmt.Sprintf("the rule sets that made some recorded decisions could not be replayed: %s. "+
			"For the period's events they decided the candidate is compared with the recorded decisions instead (%d events), "+
			"so their changed decisions mix the rule change with differences of the replay itself; the replay of the "+
			"live rule sets ran another set over them, so its state after them may differ from the live state",
			strings.Join(vs, ", "), a.rep.Totals.ComparedWithRecorded))
	}
	if rp.Differing > 0 {
		ex := rp.RulesDifferExamples
		if len(rp.Changes) > 0 {
			ex = rp.Changes[0].Examples
		}
		w = append(w, fmt.Sprintf("the replay of the rule sets that were live differs from the recorded decisions on %d of %d events "+
			"(e.g. %s): the live engine decided some events in arrival order rather than in event-time order "+
			"(partitions caught up with kafka.max_idle 0, or events sent through the decide API), or state from before "+
			"the period is missing (a short warm-up, or events outside retention). The comparison with the recorded "+
			"decisions is approximate; the changed decisions (candidate against that replay) are not affected",
			rp.Differing, rp.Compared, strings.Join(ex[:min(3, len(ex))], ", ")))
	}
	if a.noDecision > 0 {
		w = append(w, fmt.Sprintf("%d events of the period have no recorded decision (e.g. %s: outside the decisions' "+
			"retention, or not stored) and no replayed rule set to compare with: they are replayed but not compared",
			a.noDecision, a.noDecisionEx))
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
			"(e.g. %s: recorded %g, recomputed %g): its definition changed, or the events before it were decided "+
			"in another order or are missing",
			n, fd.events, fd.eventID, fd.recorded, fd.recomputed))
	}
	return w
}
