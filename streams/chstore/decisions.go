package chstore

import (
	"context"
	"strings"
	"time"

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
	events := insert{table: "events", columns: eventColumns, rows: make([][]any, 0, len(ds))}
	decisions := insert{table: "decisions", columns: decisionColumns, rows: make([][]any, 0, len(ds))}
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
		events.rows = append(events.rows, []any{
			d.EventID, d.AccountID, d.EventType, evTime, d.EventTS, string(d.Raw),
			d.Source.Topic, int32(d.Source.Partition), d.Source.Offset,
		})
		decisions.src = append(decisions.src, i)
		decisions.rows = append(decisions.rows, decisionRow(d, evTime, decided))
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

func decisionRow(d *engine.Decision, evTime, decided time.Time) []any {
	matched, _ := ruleIDs(d.Matched)
	shadow, _ := ruleIDs(d.Shadow)
	errored, errs := ruleIDs(d.Errored)
	names := make([]string, len(d.Features))
	values := make([]float64, len(d.Features))
	for i, f := range d.Features {
		names[i], values[i] = f.Name, f.Value
	}
	lat := d.Latency.Microseconds()
	if lat < 0 {
		lat = 0
	}
	lateFor := d.LateFor
	if lateFor == nil {
		lateFor = []string{}
	}
	candAction, candRules := "", []string{}
	if d.Candidate.Version != "" {
		candAction = d.Candidate.Action.String()
		candRules = append(candRules, d.Candidate.Matched...)
	}
	return []any{
		d.EventID, d.AccountID, d.EventType, evTime, d.EventTS, decided, d.DecidedAt.UnixMilli(),
		d.Action.String(), int32(d.Score), d.Reason, matched, shadow, errored, errs, d.RuleSetVersion,
		names, values, uint64(lat), dateTime(d.LockUntil), boolU8(d.Late), lateFor,
		d.Candidate.Version, candAction, int32(d.Candidate.Score), candRules, boolU8(!d.Duplicate),
		d.Source.Topic, int32(d.Source.Partition), d.Source.Offset,
	}
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
