package rulesapi

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"riskd/api"
	"riskd/rules"
	"riskd/streams/chstore"
)

// Bounds of GET /v1/rules/stats: a longer period or a finer bucket is
// refused with 400, so one request cannot scan months of decisions FINAL
// or build an answer of millions of numbers.
const (
	// MaxStatsPeriod bounds to - from.
	MaxStatsPeriod = 31 * 24 * time.Hour
	// MaxStatsBuckets bounds the buckets of the period.
	MaxStatsBuckets = 1000
	// DefaultStatsPeriod is the period when from is not given: the last
	// 24 hours before to.
	DefaultStatsPeriod = 24 * time.Hour
	// defaultStatsBuckets is the most buckets a default bucket width gives.
	defaultStatsBuckets = 48
)

// niceBuckets are the widths a default bucket is chosen from: the
// smallest that gives at most defaultStatsBuckets buckets.
var niceBuckets = []time.Duration{
	time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
}

// StatsReport is the answer of GET /v1/rules/stats: what the rules did to
// the stored decisions of events dated From <= t < To.
//
// Definitions:
//   - A hit is a stored decision (read FINAL: a decision stored twice counts
//     once) whose matched_rules (active) or shadow_rules (shadow) name the
//     rule. Hits are counted per rule and rule-set version, by event time.
//   - A hit's event is fraud when its label is "fraud" or a fraud scenario's
//     name, not_fraud when its label is "not_fraud", and unlabelled when it
//     has no label (chstore.LabelIsFraud).
//   - precision_labelled = fraud / (fraud + not_fraud): of the hits whose
//     event has a label, the share that were fraud; null when none has one.
//   - precision_all = fraud / hits: unlabelled hits count as not fraud, so
//     it is a lower bound when labelling is incomplete.
//   - never_fired lists the rules of the running set with no hit in the
//     period, under any version.
//   - shadow: for each rule of the running set with shadow hits in the
//     period, taking its action and event types from the running set:
//     live_at_least_as_strong counts its hits whose live decision's action
//     was at least as severe as the rule's (allow < alert < review <
//     challenge < block < lock), agreement is that over hits; and
//     live_non_allow_missed counts the live decisions other than allow, on
//     events of the types the rule covers (all types when it names none),
//     made by the versions under which it had hits, that it did not hit;
//     live_non_allow_covered counts those it did hit, and
//     live_non_allow_coverage is covered / (covered + missed), null when
//     both are 0.
type StatsReport struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Bucket is the bucket width (Go duration syntax) and BucketMS the
	// same in milliseconds; bucket i of a rule's hits_over_time covers
	// [From + i*Bucket, From + (i+1)*Bucket). Buckets is how many there
	// are; the last may end after To.
	Bucket   string `json:"bucket"`
	BucketMS int64  `json:"bucket_ms"`
	Buckets  int    `json:"buckets"`
	// RunningVersion is the running rule set's version ("" when none), the
	// one never_fired and shadow refer to.
	RunningVersion string         `json:"running_version"`
	Decisions      StatsDecisions `json:"decisions"`
	// Rules is one row per rule, mode and version with hits, ordered by
	// rule id, then version sequence.
	Rules      []RuleStats       `json:"rules"`
	NeverFired []NeverFiredRule  `json:"never_fired"`
	Shadow     []ShadowAgreement `json:"shadow"`
}

// StatsDecisions counts the period's stored decisions.
type StatsDecisions struct {
	Events     uint64 `json:"events"`
	Fraud      uint64 `json:"fraud"`
	NotFraud   uint64 `json:"not_fraud"`
	Unlabelled uint64 `json:"unlabelled"`
	// NonAllow counts decisions with an action other than allow.
	NonAllow uint64 `json:"non_allow"`
}

// RuleStats is one rule's hits under one rule-set version in one mode.
type RuleStats struct {
	RuleID  string `json:"rule_id"`
	Version string `json:"ruleset_version"`
	// Mode is "active" or "shadow", as the version ran the rule.
	Mode       string `json:"mode"`
	Hits       uint64 `json:"hits"`
	Fraud      uint64 `json:"fraud"`
	NotFraud   uint64 `json:"not_fraud"`
	Unlabelled uint64 `json:"unlabelled"`
	// PrecisionLabelled and PrecisionAll: see StatsReport.
	PrecisionLabelled *float64 `json:"precision_labelled"`
	PrecisionAll      float64  `json:"precision_all"`
	// FirstHit and LastHit are the event times of the earliest and latest
	// hit in the period.
	FirstHit time.Time `json:"first_hit"`
	LastHit  time.Time `json:"last_hit"`
	// HitsOverTime has one count per bucket.
	HitsOverTime []uint64 `json:"hits_over_time"`
}

// NeverFiredRule is a rule of the running set without a hit in the period.
type NeverFiredRule struct {
	RuleID string `json:"rule_id"`
	Mode   string `json:"mode"`
	Action string `json:"action"`
	File   string `json:"file"`
	Line   int    `json:"line"`
}

// ShadowAgreement compares a shadow rule with the live decisions; see
// StatsReport for the definitions.
type ShadowAgreement struct {
	RuleID string `json:"rule_id"`
	Action string `json:"action"`
	// EventTypes are the types the rule covers; empty means all.
	EventTypes []string `json:"event_types"`
	// Versions are the versions under which it had shadow hits.
	Versions             []string `json:"versions"`
	Hits                 uint64   `json:"hits"`
	LiveAtLeastAsStrong  uint64   `json:"live_at_least_as_strong"`
	Agreement            float64  `json:"agreement"`
	LiveNonAllowMissed   uint64   `json:"live_non_allow_missed"`
	LiveNonAllowCovered  uint64   `json:"live_non_allow_covered"`
	LiveNonAllowCoverage *float64 `json:"live_non_allow_coverage"`
}

// statsRoutes: GET /v1/rules/stats for everyone who reads rules, and
// support, who answer for false positives.
func (s *Service) statsRoutes() []api.Route {
	return []api.Route{{Pattern: "GET /v1/rules/stats", Roles: []api.Role{api.RoleViewer, api.RoleAnalyst, api.RoleSupport},
		Handler: http.HandlerFunc(s.ruleStats)}}
}

func (s *Service) ruleStats(w http.ResponseWriter, r *http.Request) {
	p, err := statsPeriod(r.URL.Query(), s.cfg.Now())
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	rep, err := s.statsReport(r, p)
	switch {
	case errors.Is(err, chstore.ErrStatsTooLarge):
		api.WriteError(w, http.StatusUnprocessableEntity, err.Error())
	case err != nil:
		api.WriteError(w, http.StatusServiceUnavailable, "reading rule statistics from ClickHouse failed: "+err.Error())
	default:
		api.WriteJSON(w, http.StatusOK, rep)
	}
}

// statsPeriod reads from, to and bucket, with their defaults and bounds.
func statsPeriod(q map[string][]string, now time.Time) (chstore.StatsPeriod, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return strings.TrimSpace(v[0])
		}
		return ""
	}
	to := now.UTC()
	if v := get("to"); v != "" {
		t, err := parseStatsTime(v, now)
		if err != nil {
			return chstore.StatsPeriod{}, fmt.Errorf("to: %w", err)
		}
		to = t
	}
	from := to.Add(-DefaultStatsPeriod)
	if v := get("from"); v != "" {
		t, err := parseStatsTime(v, now)
		if err != nil {
			return chstore.StatsPeriod{}, fmt.Errorf("from: %w", err)
		}
		from = t
	}
	period := to.Sub(from)
	switch {
	case period <= 0:
		return chstore.StatsPeriod{}, fmt.Errorf("to (%s) is not after from (%s)", to.Format(time.RFC3339Nano), from.Format(time.RFC3339Nano))
	case period > MaxStatsPeriod:
		return chstore.StatsPeriod{}, fmt.Errorf("the period from %s to %s is %v, over the %v limit: ask for a shorter one",
			from.Format(time.RFC3339), to.Format(time.RFC3339), period, MaxStatsPeriod)
	}
	var bucket time.Duration
	if v := get("bucket"); v != "" {
		b, err := parseDays(v)
		if err != nil || b < time.Second {
			return chstore.StatsPeriod{}, fmt.Errorf("bucket: %q is not a duration of at least 1s (e.g. 30m, 1h, 1d)", v)
		}
		if n := bucketCount(period, b); n > MaxStatsBuckets {
			return chstore.StatsPeriod{}, fmt.Errorf("bucket: %v over %v is %d buckets, over the %d limit: use a wider bucket", b, period, n, MaxStatsBuckets)
		}
		bucket = b.Truncate(time.Millisecond)
	} else {
		bucket = niceBuckets[len(niceBuckets)-1]
		for _, b := range niceBuckets {
			if bucketCount(period, b) <= defaultStatsBuckets {
				bucket = b
				break
			}
		}
	}
	return chstore.StatsPeriod{From: from, To: to, Bucket: bucket}, nil
}

func bucketCount(period, bucket time.Duration) int64 {
	return int64((period + bucket - 1) / bucket)
}

// parseStatsTime reads a time as ParseLabelTime does, or "-DURATION"
// before now ("-6h", "-7d").
func parseStatsTime(s string, now time.Time) (time.Time, error) {
	if strings.HasPrefix(s, "-") && !strings.ContainsAny(s, "T:") {
		if d, err := parseDays(s[1:]); err == nil {
			return now.Add(-d).UTC(), nil
		}
	}
	t, err := ParseLabelTime(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w, or -DURATION before now (-6h, -7d)", err)
	}
	return t, nil
}

// parseDays is time.ParseDuration that also reads whole days ("7d").
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > 3660 {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// statsReport reads the period's statistics and puts them beside the
// running rule set.
func (s *Service) statsReport(r *http.Request, p chstore.StatsPeriod) (*StatsReport, error) {
	ctx := r.Context()
	hits, err := s.cfg.Store.RuleHitBuckets(ctx, p)
	if err != nil {
		return nil, err
	}
	mixes, err := s.cfg.Store.DecisionMixes(ctx, p)
	if err != nil {
		return nil, err
	}
	shadowMixes, err := s.cfg.Store.ShadowHitMixes(ctx, p)
	if err != nil {
		return nil, err
	}
	return buildStatsReport(p, s.cfg.Holder.Load(), hits, mixes, shadowMixes), nil
}

// buildStatsReport combines the three reads; rs may be nil.
func buildStatsReport(p chstore.StatsPeriod, rs *rules.RuleSet, hits []chstore.RuleBucketHits,
	mixes []chstore.DecisionMix, shadowMixes []chstore.ShadowHitMix) *StatsReport {
	n := int(bucketCount(p.To.Sub(p.From), p.Bucket))
	rep := &StatsReport{From: p.From.UTC(), To: p.To.UTC(), Bucket: p.Bucket.String(), BucketMS: p.Bucket.Milliseconds(),
		Buckets: n, Rules: []RuleStats{}, NeverFired: []NeverFiredRule{}, Shadow: []ShadowAgreement{}}
	if rs != nil {
		rep.RunningVersion = rs.Version.String()
	}
	for _, m := range mixes {
		rep.Decisions.Events += m.Events
		rep.Decisions.Fraud += m.Fraud
		rep.Decisions.NotFraud += m.NotFraud
		if m.Action != rules.Allow.String() {
			rep.Decisions.NonAllow += m.Events
		}
	}
	rep.Decisions.Unlabelled = rep.Decisions.Events - rep.Decisions.Fraud - rep.Decisions.NotFraud

	// hits is ordered by rule, mode, version, bucket: one RuleStats per run.
	fired := map[string]bool{}
	for _, h := range hits {
		fired[h.RuleID] = true
		mode := rules.Active.String()
		if h.Shadow {
			mode = rules.Shadow.String()
		}
		last := len(rep.Rules) - 1
		if last < 0 || rep.Rules[last].RuleID != h.RuleID || rep.Rules[last].Version != h.Version || rep.Rules[last].Mode != mode {
			rep.Rules = append(rep.Rules, RuleStats{RuleID: h.RuleID, Version: h.Version, Mode: mode,
				FirstHit: time.UnixMilli(h.First).UTC(), HitsOverTime: make([]uint64, n)})
			last++
		}
		rs := &rep.Rules[last]
		rs.Hits += h.Hits
		rs.Fraud += h.Fraud
		rs.NotFraud += h.NotFraud
		rs.LastHit = time.UnixMilli(h.Last).UTC()
		if h.Bucket >= 0 && h.Bucket < n {
			rs.HitsOverTime[h.Bucket] += h.Hits
		}
	}
	for i := range rep.Rules {
		rs := &rep.Rules[i]
		rs.Unlabelled = rs.Hits - rs.Fraud - rs.NotFraud
		if l := rs.Fraud + rs.NotFraud; l > 0 {
			v := float64(rs.Fraud) / float64(l)
			rs.PrecisionLabelled = &v
		}
		if rs.Hits > 0 {
			rs.PrecisionAll = float64(rs.Fraud) / float64(rs.Hits)
		}
	}
	slices.SortStableFunc(rep.Rules, func(a, b RuleStats) int {
		return cmp.Or(strings.Compare(a.RuleID, b.RuleID), cmp.Compare(versionSeq(a.Version), versionSeq(b.Version)),
			strings.Compare(a.Version, b.Version), strings.Compare(a.Mode, b.Mode))
	})
	if rs == nil {
		return rep
	}
	for _, rule := range rs.Rules {
		if !fired[rule.ID] {
			rep.NeverFired = append(rep.NeverFired, NeverFiredRule{RuleID: rule.ID, Mode: rule.Mode.String(),
				Action: rule.Action.String(), File: rule.File, Line: rule.Line})
		}
	}
	rep.Shadow = shadowAgreements(rs, mixes, shadowMixes)
	return rep
}

// shadowAgreements compares each running rule that has shadow hits with
// the live decisions (definitions on StatsReport). A rule with shadow
// hits that is no longer in the running set is left out: its action and
// types are not known.
func shadowAgreements(rs *rules.RuleSet, mixes []chstore.DecisionMix, shadowMixes []chstore.ShadowHitMix) []ShadowAgreement {
	out := []ShadowAgreement{}
	byRule := map[string][]chstore.ShadowHitMix{}
	var ids []string
	for _, m := range shadowMixes {
		if _, ok := byRule[m.RuleID]; !ok {
			ids = append(ids, m.RuleID)
		}
		byRule[m.RuleID] = append(byRule[m.RuleID], m)
	}
	slices.Sort(ids)
	for _, id := range ids {
		rule := rs.Rule(id)
		if rule == nil {
			continue
		}
		covers := func(typ string) bool { return len(rule.Types) == 0 || slices.Contains(rule.Types, typ) }
		a := ShadowAgreement{RuleID: id, Action: rule.Action.String(), EventTypes: append([]string{}, rule.Types...), Versions: []string{}}
		var hitNonAllow uint64
		for _, m := range byRule[id] {
			if !slices.Contains(a.Versions, m.Version) {
				a.Versions = append(a.Versions, m.Version)
			}
			a.Hits += m.Hits
			if act, err := rules.ParseAction(m.Action); err == nil && act >= rule.Action {
				a.LiveAtLeastAsStrong += m.Hits
			}
			if m.Action != rules.Allow.String() && covers(m.EventType) {
				hitNonAllow += m.Hits
			}
		}
		var nonAllow uint64
		for _, m := range mixes {
			if m.Action != rules.Allow.String() && covers(m.EventType) && slices.Contains(a.Versions, m.Version) {
				nonAllow += m.Events
			}
		}
		if a.Hits > 0 {
			a.Agreement = float64(a.LiveAtLeastAsStrong) / float64(a.Hits)
		}
		a.LiveNonAllowCovered = hitNonAllow
		a.LiveNonAllowMissed = nonAllow - min(hitNonAllow, nonAllow)
		if nonAllow > 0 {
			v := float64(hitNonAllow) / float64(nonAllow)
			a.LiveNonAllowCoverage = &v
		}
		out = append(out, a)
	}
	return out
}

// versionSeq is the SEQ of a "SEQ-HASH8" version, or 0.
func versionSeq(v string) uint64 {
	seq, _, _ := strings.Cut(v, "-")
	n, _ := strconv.ParseUint(seq, 10, 64)
	return n
}
