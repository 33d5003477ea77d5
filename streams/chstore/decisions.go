package chstore

import (
	"context"
	"strings"
	"time"
	"unsafe"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"riskd/engine"
	"riskd/rules"
)

// Column lists, in the order the row builders below emit values.
const (
	eventColumns = "event_id, account_id, type, event_time, event_ts_ms, raw, " +
		"source_topic, source_partition, source_offset"
	decisionColumns = "event_id, account_id, event_type, event_time, event_ts_ms, decided_at, decided_at_ms, " +
		"action, score, reason, matched_rules, shadow_rules, errored_rules, rule_errors, ruleset_version, " +
		"feature_names, feature_values, latency_us, lock_until, late, late_for, " +
		"candidate_version, candidate_action, candidate_score, candidate_rules, original, " +
		"source_topic, source_partition, source_offset"
	alertColumns = "event_id, account_id, event_time, event_ts_ms, rule_id, message, action, decided_at, ruleset_version"
	lockColumns  = "account_id, time, ts_ms, action, reason, until, actor, event_id, ruleset_version"
	labelColumns = "event_id, account_id, event_time, event_ts_ms, label, source, labelled_at"
	caseColumns  = "case_id, event_id, account_id, event_type, event_time, event_ts_ms, opened_at_ms, " +
		"score, reason, matched_rules, ruleset_version, status, assignee, taken_at_ms, outcome, note, " +
		"closed_by, closed_at_ms, version"
)

// Actor and label source recorded for rows the engine produces itself.
const (
	engineActor       = "engine"
	decisionLabelFrom = "event"
)

// WriteDecisions stores one batch: per decision a row in decisions and the
// raw event in events, a row in alerts per alert the engine let through
// (d.Alerts; an alert its throttle held back, in d.ThrottledAlerts, gets
// no row: the table holds what the user was sent), a row in
// account_locks when the decision newly locked the account (action lock,
// not a refusal of an already locked account), a row in labels when the
// decision carries a label, and an open case in cases when the action is
// review (not for a duplicate: its original opened the case). Each table
// gets one batch insert; the six are sent concurrently, and the call
// returns once all are stored.
//
// While the store is recovering (Recovering: from Open until
// Config.RecoveryWindow consecutive decisions were found not stored yet),
// each table is first asked which of the batch's event ids it holds, and
// those rows are left out (counted in SkippedRows and Config.OnSkip), so
// that the decisions an earlier run stored but did not commit are not
// stored twice when it is replayed. A retry asks the same of the tables
// still to send, in or out of the window (unless RecoveryWindow is
// negative): the failed attempt may have stored them before its
// connection broke. A look-up the server refuses is not waited on: that
// table's rows are sent unchecked, with a warning (see skipStored). Cases
// are not looked up (they are not among DecisionTables): a case's open
// row sent again has version 1, so it collapses with its first copy and
// never undoes a later change.
//
// It retries until everything is stored or ctx ends, then returns ctx's
// error wrapped: an unreachable ClickHouse slows the caller but never drops
// a decision. A retry resends only the tables not yet stored; resending is
// idempotent anyway (under FINAL). The only error returned without
// retrying is one where a row cannot be encoded (it would fail every
// time).
func (s *Store) WriteDecisions(ctx context.Context, ds []*engine.Decision) error {
	if len(ds) == 0 {
		return nil
	}
	ins := decisionInserts(ds)
	done := make([]bool, len(ins))
	recovering := s.Recovering()
	observed := !recovering
	stored := map[string]bool{} // ids found stored, over the attempts
	unchecked := false          // a table refused the look-up
	attempts := 0
	return s.retry(ctx, "write decisions", func(ctx context.Context) error {
		attempts++
		if recovering || attempts > 1 && s.rec.window >= 0 {
			n := len(decisionTables) // the looked-up inserts lead ins
			refused, err := s.skipStored(ctx, ds, ins[:n], done[:n], stored)
			unchecked = unchecked || refused
			if err != nil {
				return err
			}
			if !observed { // once per batch, when every table has answered
				s.observe(ds, stored, unchecked)
				observed = true
			}
		}
		return s.sendAll(ctx, ins, done)
	})
}

// decisionInserts turns a batch of decisions into rows for each table.
func decisionInserts(ds []*engine.Decision) []insert {
	events := insert{table: "events", columns: eventColumns, src: make([]int, 0, len(ds)),
		appendColumns: func(b driver.Batch, src []int) error { return appendEventColumns(b, ds, src) }}
	decisions := insert{table: "decisions", columns: decisionColumns, src: make([]int, 0, len(ds)),
		appendColumns: func(b driver.Batch, src []int) error { return appendDecisionColumns(b, ds, src) }}
	alerts := insert{table: "alerts", columns: alertColumns}
	locks := insert{table: "account_locks", columns: lockColumns}
	labels := insert{table: "labels", columns: labelColumns}
	cases := insert{table: "cases", columns: caseColumns}
	for i, d := range ds {
		if d == nil {
			continue
		}
		evTime := eventTime(d)
		decided := dateTime(d.DecidedAt)
		events.src = append(events.src, i)
		decisions.src = append(decisions.src, i)
		for _, a := range d.Alerts { // never d.ThrottledAlerts
			alerts.src = append(alerts.src, i)
			alerts.rows = append(alerts.rows, []any{
				d.EventID, d.AccountID, evTime, d.EventTS, a.RuleID, a.Message,
				d.Action.String(), decided, d.RuleSetVersion,
			})
		}
		if d.Action == rules.Lock && d.Reason != engine.ReasonAccountLocked {
			locks.src = append(locks.src, i)
			locks.rows = append(locks.rows, []any{
				d.AccountID, evTime, d.EventTS, "lock", lockReason(d), dateTime(d.LockUntil),
				engineActor, d.EventID, d.RuleSetVersion,
			})
		}
		if d.Label != "" {
			labels.src = append(labels.src, i)
			labels.rows = append(labels.rows, []any{
				d.EventID, d.AccountID, evTime, d.EventTS, d.Label, decisionLabelFrom, decided,
			})
		}
		if d.Action == rules.Review && !d.Duplicate {
			cases.src = append(cases.src, i)
			cases.rows = append(cases.rows, caseRow(openCase(d)))
		}
	}
	// The order of decisionTables, then cases (not looked up).
	return []insert{events, decisions, alerts, locks, labels, cases}
}

// eventTime is a decision's event time as its rows store it.
func eventTime(d *engine.Decision) time.Time {
	return dateTime(time.UnixMilli(d.EventTS))
}

// appendEventColumns appends the events rows of ds[src[j]], in the order
// of eventColumns.
func appendEventColumns(b driver.Batch, ds []*engine.Decision, src []int) error {
	n := len(src)
	sc := getColumnScratch()
	defer putColumnScratch(sc)
	ids, accounts, types, raws, topics := take(&sc.strings, n), take(&sc.strings, n), take(&sc.strings, n), take(&sc.strings, n), take(&sc.strings, n)
	times, tss, parts, offsets := take(&sc.times, n), take(&sc.int64s, n), take(&sc.int32s, n), take(&sc.int64s, n)
	for j, k := range src {
		d := ds[k]
		ids[j], accounts[j], types[j], times[j], tss[j] = d.EventID, d.AccountID, d.EventType, eventTime(d), d.EventTS
		raws[j] = bytesAsString(d.Raw)
		topics[j], parts[j], offsets[j] = d.Source.Topic, int32(d.Source.Partition), d.Source.Offset
	}
	return appendColumns(b, ids, accounts, types, times, tss, raws, topics, parts, offsets)
}

// bytesAsString views b as a string without copying it: the column copies
// it into its own buffer at once, and a decision's Raw is never changed.
func bytesAsString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// appendDecisionColumns appends the decisions rows of ds[src[j]], in the
// order of decisionColumns. The array columns of all rows share one
// backing slice each (flat), so a batch allocates per column, not per row.
func appendDecisionColumns(b driver.Batch, ds []*engine.Decision, src []int) error {
	n := len(src)
	sc := getColumnScratch()
	defer putColumnScratch(sc)
	str, list := func() []string { return take(&sc.strings, n) }, func() [][]string { return take(&sc.lists, n) }
	var (
		ids, accounts, types, actions, reasons  = str(), str(), str(), str(), str()
		versions, candVersions, candActions     = str(), str(), str()
		topics                                  = str()
		times, decided, lockUntil               = take(&sc.times, n), take(&sc.times, n), take(&sc.times, n)
		tss, decidedMs, offsets                 = take(&sc.int64s, n), take(&sc.int64s, n), take(&sc.int64s, n)
		scores, candScores, parts               = take(&sc.int32s, n), take(&sc.int32s, n), take(&sc.int32s, n)
		latency                                 = take(&sc.uint64s, n)
		late, original                          = take(&sc.uint8s, n), take(&sc.uint8s, n)
		matched, shadow, errored, errs, lateFor = list(), list(), list(), list(), list()
		names, candRules                        = list(), list()
		values                                  = take(&sc.floats, n)
		nRules, nFeatures, nLate, nCand         int
	)
	for _, k := range src {
		d := ds[k]
		nRules += len(d.Matched) + len(d.Shadow) + 2*len(d.Errored)
		nFeatures += len(d.Features)
		nLate += len(d.LateFor)
		if d.Candidate.Version != "" {
			nCand += len(d.Candidate.Matched)
		}
	}
	strs := room(&sc.elems, nRules+nFeatures+nLate+nCand)
	floats := room(&sc.values, nFeatures)
	// take appends ss to the shared backing slice and returns their part
	// of it ([]string{}, never nil, for none: an empty array).
	take := func(ss ...string) []string {
		at := len(strs)
		strs = append(strs, ss...)
		return strs[at:len(strs):len(strs)]
	}
	// takeHits does the same with one text of each rule hit.
	takeHits := func(hs []engine.RuleHit, text func(*engine.RuleHit) string) []string {
		at := len(strs)
		for i := range hs {
			strs = append(strs, text(&hs[i]))
		}
		return strs[at:len(strs):len(strs)]
	}
	ruleID := func(h *engine.RuleHit) string { return h.RuleID }
	ruleError := func(h *engine.RuleHit) string { return h.Error }
	for j, k := range src {
		d := ds[k]
		ids[j], accounts[j], types[j], times[j], tss[j] = d.EventID, d.AccountID, d.EventType, eventTime(d), d.EventTS
		decided[j], decidedMs[j] = dateTime(d.DecidedAt), d.DecidedAt.UnixMilli()
		actions[j], scores[j], reasons[j] = d.Action.String(), int32(d.Score), d.Reason
		matched[j], shadow[j] = takeHits(d.Matched, ruleID), takeHits(d.Shadow, ruleID)
		errored[j], errs[j] = takeHits(d.Errored, ruleID), takeHits(d.Errored, ruleError)
		versions[j] = d.RuleSetVersion
		at, fat := len(strs), len(floats)
		for _, f := range d.Features {
			strs, floats = append(strs, f.Name), append(floats, f.Value)
		}
		names[j], values[j] = strs[at:len(strs):len(strs)], floats[fat:len(floats):len(floats)]
		latency[j] = uint64(max(d.Latency.Microseconds(), 0))
		lockUntil[j], late[j] = dateTime(d.LockUntil), boolU8(d.Late)
		lateFor[j] = take(d.LateFor...)
		candVersions[j], candScores[j], candRules[j] = d.Candidate.Version, int32(d.Candidate.Score), take()
		if d.Candidate.Version != "" {
			candActions[j] = d.Candidate.Action.String()
			candRules[j] = take(d.Candidate.Matched...)
		}
		original[j] = boolU8(!d.Duplicate)
		topics[j], parts[j], offsets[j] = d.Source.Topic, int32(d.Source.Partition), d.Source.Offset
	}
	return appendColumns(b, ids, accounts, types, times, tss, decided, decidedMs,
		actions, scores, reasons, matched, shadow, errored, errs, versions,
		names, values, latency, lockUntil, late, lateFor,
		candVersions, candActions, candScores, candRules, original,
		topics, parts, offsets)
}

// ruleIDs splits hits into parallel slices of rule ids and error texts.
func ruleIDs(hs []engine.RuleHit) (ids, errs []string) {
	ids = make([]string, len(hs))
	errs = make([]string, len(hs))
	for i, h := range hs {
		ids[i], errs[i] = h.RuleID, h.Error
	}
	return ids, errs
}

// lockReason names what locked the account: the matched rules whose action
// is lock, else the decision's reason (a score threshold).
func lockReason(d *engine.Decision) string {
	var ids []string
	for _, h := range d.Matched {
		if h.Action == rules.Lock {
			ids = append(ids, h.RuleID)
		}
	}
	if len(ids) > 0 {
		return "rule:" + strings.Join(ids, ",")
	}
	if d.Reason != "" {
		return d.Reason
	}
	return "lock"
}
