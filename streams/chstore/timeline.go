package chstore

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"riskd/engine"
)

// An account's timeline and the decision search: what support reads to
// see why an account was locked. Every read is FINAL (a row written twice
// is one entry), newest first, and paged by a cursor that names the last
// entry shown, so the next page starts exactly after it even when many
// entries share a millisecond: entries are ordered by (time in ms, kind,
// key A, key B), all descending, and that order is total because the keys
// are each table's own key within the account and time.

// Bounds of one timeline or search page.
const (
	// DefaultPageLimit is the page size when none is asked for.
	DefaultPageLimit = 100
	// MaxPageLimit bounds a page: each kind reads up to limit+1 rows.
	MaxPageLimit = 1000
	// MaxTimelinePeriod bounds To - From of one account's timeline.
	MaxTimelinePeriod = 366 * 24 * time.Hour
	// MaxSearchPeriod bounds To - From of a decision search over all
	// accounts (no account given): it scans every partition of the period.
	MaxSearchPeriod = 31 * 24 * time.Hour
	// maxCursorBytes bounds an encoded cursor (two ids of at most
	// MaxLabelIDBytes each, plus numbers).
	maxCursorBytes = 4 * MaxLabelIDBytes
)

// Timeline entry kinds, in the order entries of one millisecond are listed
// newest first: a label, an unlock or a lock a decision caused are shown
// above the decision; support's suppressions and lifts (account_suppressions)
// above all.
const (
	KindDecision = "decision"
	KindAlert    = "alert"
	KindLock     = "lock"
	KindUnlock   = "unlock"
	KindLabel    = "label"
	KindSuppress = SuppressionSuppress
	KindLift     = SuppressionLift
)

// kindRank orders kinds within one millisecond (higher first).
var kindRank = map[string]int{KindDecision: 1, KindAlert: 2, KindLock: 3, KindUnlock: 4, KindLabel: 5,
	KindSuppress: 6, KindLift: 7}

// ErrBadCursor is returned (wrapped) for a Before cursor that no page gave.
var ErrBadCursor = &QueryError{Msg: "before: not a cursor from a previous page's next"}

// QueryError is a timeline or search refused for its parameters (a bound
// or a bad cursor), before anything was read: the caller's fault, not the
// store's.
type QueryError struct{ Msg string }

func (e *QueryError) Error() string { return e.Msg }

// Cursor names an entry in the timeline order; a page lists the entries
// strictly after it. The zero Cursor starts at the newest entry.
type Cursor struct {
	TS   int64  // entry time, Unix ms
	Kind string // one of the Kind* names
	A, B string // the entry's key within the kind and time (see Entry)
}

// IsZero says whether c is the start.
func (c Cursor) IsZero() bool { return c.Kind == "" }

// String encodes c for an API's next/before parameter.
func (c Cursor) String() string {
	if c.IsZero() {
		return ""
	}
	raw := strconv.FormatInt(c.TS, 10) + "\n" + c.Kind + "\n" + c.A + "\n" + c.B
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// ParseCursor decodes what Cursor.String wrote; "" is the zero Cursor.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	if len(s) > maxCursorBytes {
		return Cursor{}, ErrBadCursor
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, ErrBadCursor
	}
	parts := strings.SplitN(string(raw), "\n", 4)
	if len(parts) != 4 || kindRank[parts[1]] == 0 {
		return Cursor{}, ErrBadCursor
	}
	ts, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return Cursor{}, ErrBadCursor
	}
	return Cursor{TS: ts, Kind: parts[1], A: parts[2], B: parts[3]}, nil
}

// Entry is one item of a timeline: a decision (with its event), an alert
// sent, a lock or unlock, a label, or a suppression or its lift. Fields a
// kind does not use are zero.
type Entry struct {
	Kind string
	// TS is the entry's time, Unix ms: the event's time for decisions,
	// alerts, labels and the engine's locks; when support acted for
	// support's locks and unlocks.
	TS int64
	// Decision is set for KindDecision.
	Decision *StoredDecision
	// AccountID and EventID name the account and the event the entry is
	// about (for support's locks and for suppressions, EventID is the
	// request id).
	AccountID string
	EventID   string
	// RuleID (alerts) is the rule that raised the alert, (suppressions)
	// the rule suppressed or lifted; Message the text the user was sent;
	// Action the decision's action.
	RuleID  string
	Message string
	Action  string
	// Reason, Until and Actor describe a lock or unlock, or a suppression
	// or lift: Until is zero when it has no end (and for unlocks and
	// lifts); Actor is "engine" or who.
	Reason string
	Until  time.Time
	Actor  string
	// Label, Source, LabelledBy, Note and LabelledAt describe a label.
	Label      string
	Source     string
	LabelledBy string
	Note       string
	LabelledAt time.Time
}

// Cursor is the position of e, for the next page.
func (e Entry) Cursor() Cursor {
	switch e.Kind {
	case KindDecision:
		return Cursor{TS: e.TS, Kind: e.Kind, A: e.AccountID, B: e.EventID}
	case KindAlert:
		return Cursor{TS: e.TS, Kind: e.Kind, A: e.EventID, B: e.RuleID}
	}
	return Cursor{TS: e.TS, Kind: e.Kind, A: e.EventID}
}

// after says whether e comes after o in the timeline order (is older).
func (e Entry) after(o Entry) bool { return cursorBefore(o.Cursor(), e.Cursor()) }

// cursorBefore says whether a comes before b in the timeline order (newest
// first): a is newer, or of a higher kind, or of a greater key.
func cursorBefore(a, b Cursor) bool {
	if a.TS != b.TS {
		return a.TS > b.TS
	}
	if ra, rb := kindRank[a.Kind], kindRank[b.Kind]; ra != rb {
		return ra > rb
	}
	if a.A != b.A {
		return a.A > b.A
	}
	return a.B > b.B
}

// Page is one page of a timeline or search, newest first; Next is the
// cursor of the page's last entry when more may follow, else zero.
type Page struct {
	Entries []Entry
	Next    Cursor
}

// TimelineQuery selects one account's entries with From <= time < To.
type TimelineQuery struct {
	AccountID string
	From, To  time.Time
	// Limit is the page size, 1..MaxPageLimit; 0 means DefaultPageLimit.
	Limit  int
	Before Cursor
}

// DecisionQuery selects stored decisions with From <= event time < To;
// each non-empty filter must hold. Rule matches matched or shadow rules.
type DecisionQuery struct {
	AccountID string
	Rule      string
	Action    string
	// Late keeps only the decisions of late events (too old for one of
	// their windows): the list behind the overview's late-events figure.
	Late     bool
	From, To time.Time
	Limit    int
	Before   Cursor
}

// pageLimit checks and defaults a page size.
func pageLimit(n int) (int, error) {
	switch {
	case n == 0:
		return DefaultPageLimit, nil
	case n < 0 || n > MaxPageLimit:
		return 0, &QueryError{Msg: fmt.Sprintf("limit %d: want 1 to %d", n, MaxPageLimit)}
	}
	return n, nil
}

// checkPeriod checks From < To and the span's bound.
func checkPeriod(from, to time.Time, bound time.Duration) error {
	if !from.Before(to) {
		return &QueryError{Msg: fmt.Sprintf("period: from %s is not before to %s", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))}
	}
	if to.Sub(from) > bound {
		return &QueryError{Msg: fmt.Sprintf("period: %s to %s is longer than %s", from.UTC().Format(time.RFC3339),
			to.UTC().Format(time.RFC3339), strings.TrimSuffix(bound.String(), "0m0s"))}
	}
	return nil
}

// Timeline reads one page of an account's timeline: its decisions (each
// with its event type), the alerts it was sent, its locks and unlocks, its
// labels and its rule suppressions and lifts, merged newest first. Each
// table is one query reading at most Limit+1 rows after the cursor, so a
// page costs five bounded reads.
func (s *Store) Timeline(ctx context.Context, q TimelineQuery) (Page, error) {
	limit, err := pageLimit(q.Limit)
	if err != nil {
		return Page{}, fmt.Errorf("chstore: timeline %s: %w", q.AccountID, err)
	}
	if err := checkPeriod(q.From, q.To, MaxTimelinePeriod); err != nil {
		return Page{}, fmt.Errorf("chstore: timeline %s: %w", q.AccountID, err)
	}
	if q.AccountID == "" {
		return Page{}, fmt.Errorf("chstore: timeline: %w", &QueryError{Msg: "empty account id"})
	}
	var all []Entry
	reads := []func(context.Context, TimelineQuery, int) ([]Entry, error){
		func(ctx context.Context, q TimelineQuery, n int) ([]Entry, error) {
			return s.searchDecisions(ctx, DecisionQuery{AccountID: q.AccountID, From: q.From, To: q.To, Before: q.Before}, n)
		},
		s.timelineAlerts, s.timelineLocks, s.timelineLabels, s.timelineSuppressions,
	}
	for _, read := range reads {
		es, err := read(ctx, q, limit+1)
		if err != nil {
			return Page{}, fmt.Errorf("chstore: timeline %s: %w", q.AccountID, err)
		}
		all = append(all, es...)
	}
	return page(all, limit), nil
}

// SearchDecisions reads one page of stored decisions matching q, newest
// first. Without an account the period may span MaxSearchPeriod at most.
func (s *Store) SearchDecisions(ctx context.Context, q DecisionQuery) (Page, error) {
	limit, err := pageLimit(q.Limit)
	if err != nil {
		return Page{}, fmt.Errorf("chstore: search decisions: %w", err)
	}
	bound := MaxTimelinePeriod
	if q.AccountID == "" {
		bound = MaxSearchPeriod
	}
	if err := checkPeriod(q.From, q.To, bound); err != nil {
		return Page{}, fmt.Errorf("chstore: search decisions: %w", err)
	}
	es, err := s.searchDecisions(ctx, q, limit+1)
	if err != nil {
		return Page{}, fmt.Errorf("chstore: search decisions: %w", err)
	}
	return page(es, limit), nil
}

// page sorts entries into the timeline order and keeps limit of them;
// Next is set when some were left.
func page(all []Entry, limit int) Page {
	slices.SortFunc(all, func(a, b Entry) int {
		switch {
		case a.after(b):
			return 1
		case b.after(a):
			return -1
		}
		return 0
	})
	if len(all) <= limit {
		return Page{Entries: all}
	}
	all = all[:limit]
	return Page{Entries: all, Next: all[limit-1].Cursor()}
}

// timelineSpan selects rows of the period on the DateTime column (for
// partition pruning and the key) and, to the millisecond, on the ms column.
func timelineSpan(secCol, msCol string, from, to time.Time) (string, []any) {
	return " AND " + secCol + " >= toDateTime(?) AND " + secCol + " <= toDateTime(?) AND " +
			msCol + " >= ? AND " + msCol + " < ?",
		[]any{dateTime(from).Unix(), dateTime(to).Unix(), from.UnixMilli(), to.UnixMilli()}
}

// afterFilter selects the rows of one kind that come after cursor c in
// the timeline order, given the kind's ms column and key columns (b may be
// "" for a kind keyed by one column). Rows of a lower kind than c's at
// c's millisecond come after it; of a higher kind, before.
func afterFilter(kind string, c Cursor, msCol, a, b string) (string, []any) {
	if c.IsZero() {
		return "", nil
	}
	rk, rc := kindRank[kind], kindRank[c.Kind]
	switch {
	case rk < rc:
		return " AND " + msCol + " <= ?", []any{c.TS}
	case rk > rc:
		return " AND " + msCol + " < ?", []any{c.TS}
	case b == "":
		return " AND (" + msCol + " < ? OR (" + msCol + " = ? AND " + a + " < ?))", []any{c.TS, c.TS, c.A}
	}
	return " AND (" + msCol + " < ? OR (" + msCol + " = ? AND (" + a + " < ? OR (" + a + " = ? AND " + b + " < ?))))",
		[]any{c.TS, c.TS, c.A, c.A, c.B}
}

// searchDecisions reads up to n decisions matching q after q.Before.
func (s *Store) searchDecisions(ctx context.Context, q DecisionQuery, n int) ([]Entry, error) {
	where, args := " WHERE 1", []any{}
	if q.AccountID != "" {
		where, args = " WHERE account_id = ?", append(args, q.AccountID)
	}
	f, fa := timelineSpan("event_time", "event_ts_ms", q.From, q.To)
	where, args = where+f, append(args, fa...)
	if q.Action != "" {
		where, args = where+" AND action = ?", append(args, q.Action)
	}
	if q.Rule != "" {
		where, args = where+" AND (has(matched_rules, ?) OR has(shadow_rules, ?))", append(args, q.Rule, q.Rule)
	}
	if q.Late {
		where += " AND late = 1"
	}
	f, fa = afterFilter(KindDecision, q.Before, "event_ts_ms", "account_id", "event_id")
	where, args = where+f, append(args, fa...)
	sql := "SELECT " + storedDecisionColumns + " FROM " + s.table("decisions") + " FINAL" + where +
		" ORDER BY event_ts_ms DESC, account_id DESC, event_id DESC LIMIT ?"
	rows, err := s.conn.Query(ctx, sql, append(args, uint64(n))...)
	if err != nil {
		return nil, fmt.Errorf("decisions: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		d, err := scanDecision(rows)
		if err != nil {
			return nil, fmt.Errorf("decisions: %w", err)
		}
		out = append(out, Entry{Kind: KindDecision, TS: d.EventTS, Decision: &d, AccountID: d.AccountID,
			EventID: d.EventID, Action: d.Action, Reason: d.Reason})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("decisions: %w", err)
	}
	return out, nil
}

// timelineAlerts reads up to n of the account's alerts after q.Before.
func (s *Store) timelineAlerts(ctx context.Context, q TimelineQuery, n int) ([]Entry, error) {
	f, args := timelineSpan("event_time", "event_ts_ms", q.From, q.To)
	c, ca := afterFilter(KindAlert, q.Before, "event_ts_ms", "event_id", "rule_id")
	sql := "SELECT event_id, event_ts_ms, rule_id, message, action FROM " + s.table("alerts") +
		" FINAL WHERE account_id = ?" + f + c + " ORDER BY event_ts_ms DESC, event_id DESC, rule_id DESC LIMIT ?"
	rows, err := s.conn.Query(ctx, sql, append(append(append([]any{q.AccountID}, args...), ca...), uint64(n))...)
	if err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		e := Entry{Kind: KindAlert, AccountID: q.AccountID}
		if err := rows.Scan(&e.EventID, &e.TS, &e.RuleID, &e.Message, &e.Action); err != nil {
			return nil, fmt.Errorf("alerts: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	return out, nil
}

// timelineLocks reads up to n of the account's locks and unlocks after
// q.Before. The two kinds rank apart, so each gets its own cursor filter.
func (s *Store) timelineLocks(ctx context.Context, q TimelineQuery, n int) ([]Entry, error) {
	f, args := timelineSpan("time", "ts_ms", q.From, q.To)
	lf, la := afterFilter(KindLock, q.Before, "ts_ms", "event_id", "")
	uf, ua := afterFilter(KindUnlock, q.Before, "ts_ms", "event_id", "")
	// Unlocks rank above locks within a millisecond, hence action DESC.
	sql := "SELECT action, event_id, ts_ms, reason, until, actor FROM " + s.table("account_locks") +
		" FINAL WHERE account_id = ?" + f + " AND ((action = 'lock'" + lf + ") OR (action = 'unlock'" + uf + "))" +
		" ORDER BY ts_ms DESC, action DESC, event_id DESC LIMIT ?"
	all := append(append(append(append([]any{q.AccountID}, args...), la...), ua...), uint64(n))
	rows, err := s.conn.Query(ctx, sql, all...)
	if err != nil {
		return nil, fmt.Errorf("locks: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		e := Entry{AccountID: q.AccountID}
		var until time.Time
		if err := rows.Scan(&e.Kind, &e.EventID, &e.TS, &e.Reason, &until, &e.Actor); err != nil {
			return nil, fmt.Errorf("locks: %w", err)
		}
		if t := fromDateTime(until); !t.IsZero() {
			e.Until = t.UTC()
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("locks: %w", err)
	}
	return out, nil
}

// timelineLabels reads up to n of the account's labels after q.Before,
// each at its event's time.
func (s *Store) timelineLabels(ctx context.Context, q TimelineQuery, n int) ([]Entry, error) {
	f, args := timelineSpan("event_time", "event_ts_ms", q.From, q.To)
	c, ca := afterFilter(KindLabel, q.Before, "event_ts_ms", "event_id", "")
	sql := "SELECT event_id, event_ts_ms, label, source, labelled_by, note, labelled_at FROM " + s.table("labels") +
		" FINAL WHERE account_id = ?" + f + c + " ORDER BY event_ts_ms DESC, event_id DESC LIMIT ?"
	rows, err := s.conn.Query(ctx, sql, append(append(append([]any{q.AccountID}, args...), ca...), uint64(n))...)
	if err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		e := Entry{Kind: KindLabel, AccountID: q.AccountID}
		var at time.Time
		if err := rows.Scan(&e.EventID, &e.TS, &e.Label, &e.Source, &e.LabelledBy, &e.Note, &at); err != nil {
			return nil, fmt.Errorf("labels: %w", err)
		}
		e.LabelledAt = at.UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	return out, nil
}

// timelineSuppressions reads up to n of the account's suppressions and
// lifts after q.Before, at the time support acted. Like timelineLocks,
// each kind gets its own cursor filter.
func (s *Store) timelineSuppressions(ctx context.Context, q TimelineQuery, n int) ([]Entry, error) {
	f, args := timelineSpan("time", "ts_ms", q.From, q.To)
	sf, sa := afterFilter(KindSuppress, q.Before, "ts_ms", "request_id", "")
	lf, la := afterFilter(KindLift, q.Before, "ts_ms", "request_id", "")
	// Lifts rank above suppressions within a millisecond: 'lift' < 'suppress'.
	sql := "SELECT action, request_id, ts_ms, rule_id, reason, until_ms, actor FROM " + s.table("account_suppressions") +
		" FINAL WHERE account_id = ?" + f + " AND ((action = 'suppress'" + sf + ") OR (action = 'lift'" + lf + "))" +
		" ORDER BY ts_ms DESC, action, request_id DESC LIMIT ?"
	all := append(append(append(append([]any{q.AccountID}, args...), sa...), la...), uint64(n))
	rows, err := s.conn.Query(ctx, sql, all...)
	if err != nil {
		return nil, fmt.Errorf("suppressions: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		e := Entry{AccountID: q.AccountID}
		var untilMs int64
		if err := rows.Scan(&e.Kind, &e.EventID, &e.TS, &e.RuleID, &e.Reason, &untilMs, &e.Actor); err != nil {
			return nil, fmt.Errorf("suppressions: %w", err)
		}
		e.Until = msTime(untilMs)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("suppressions: %w", err)
	}
	return out, nil
}

// AccountKnown says whether anything was ever stored for the account: a
// decision or a lock or unlock (a label needs a stored event, so a
// decision). Each table is read by its key prefix, one row at most.
func (s *Store) AccountKnown(ctx context.Context, accountID string) (bool, error) {
	var n uint64
	q := "SELECT count() FROM (SELECT account_id FROM " + s.table("decisions") + " WHERE account_id = ? LIMIT 1" +
		" UNION ALL SELECT account_id FROM " + s.table("account_locks") + " WHERE account_id = ? LIMIT 1)"
	if err := s.conn.QueryRow(ctx, q, accountID, accountID).Scan(&n); err != nil {
		return false, fmt.Errorf("chstore: account %s known: %w", accountID, err)
	}
	return n > 0, nil
}

// scanDecision scans one row of storedDecisionColumns.
func scanDecision(rows interface{ Scan(...any) error }) (StoredDecision, error) {
	var (
		d                  StoredDecision
		decidedMS          int64
		score, partition   int32
		latency            uint64
		late, original     uint8
		names              []string
		values             []float64
		eventTime, lockEnd time.Time
	)
	err := rows.Scan(&d.EventID, &d.AccountID, &d.EventType, &eventTime, &d.EventTS, &decidedMS, &d.Action, &score, &d.Reason,
		&d.MatchedRules, &d.ShadowRules, &d.ErroredRules, &d.RuleErrors, &d.RuleSetVersion, &names, &values,
		&latency, &lockEnd, &late, &d.LateFor, &original, &d.Source.Topic, &partition, &d.Source.Offset)
	if err != nil {
		return StoredDecision{}, err
	}
	d.EventTime = eventTime.UTC()
	d.DecidedAt = time.UnixMilli(decidedMS).UTC()
	d.Score = int(score)
	d.Latency = time.Duration(latency) * time.Microsecond
	if t := fromDateTime(lockEnd); !t.IsZero() {
		d.LockUntil = t.UTC()
	}
	d.Late = late != 0
	d.Duplicate = original == 0
	d.Source.Partition = int(partition)
	if len(names) == len(values) {
		d.Features = make([]engine.FeatureValue, len(names))
		for i := range names {
			d.Features[i] = engine.FeatureValue{Name: names[i], Value: values[i]}
		}
	}
	return d, nil
}
