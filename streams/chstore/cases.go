package chstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"riskd/engine"
)

// The review queue. A decision with action review opens a case (a row of
// the cases table written with the decision, see WriteDecisions); support
// and analysts take it and close it with an outcome, which becomes the
// event's label (source CaseLabelSource). Every change is a new row of the
// whole case with the next version, read back as the latest (FINAL).

// Case statuses.
const (
	CaseOpen   = "open"
	CaseTaken  = "taken"
	CaseClosed = "closed"
)

// Case outcomes. CaseInconclusive closes a case without a label: every
// non-empty label other than LabelNotFraud counts as fraud (LabelIsFraud).
const (
	CaseFraud        = LabelFraud
	CaseNotFraud     = LabelNotFraud
	CaseInconclusive = "inconclusive"
)

// CaseLabelSource is the labels.source of a label written by closing a case.
const CaseLabelSource = "review"

// Bounds of the case reads and changes.
const (
	// MaxCaseList bounds the cases one Cases call returns.
	MaxCaseList = 500
	// DefaultCaseList is the page size when CaseFilter.Limit is 0.
	DefaultCaseList = 50
	// MaxCaseActorBytes bounds who takes or closes a case (a token name).
	MaxCaseActorBytes = 128
)

// Errors of TakeCase and CloseCase, wrapped with the case id (and who has
// the case, for ErrCaseTaken).
var (
	// ErrCaseNotFound: no case has the id.
	ErrCaseNotFound = errors.New("no such case")
	// ErrCaseTaken: someone else has taken the case and force was not set.
	ErrCaseTaken = errors.New("taken by someone else")
	// ErrCaseClosed: the case is closed already; a closed case stays closed.
	ErrCaseClosed = errors.New("already closed")
	// ErrCaseInput: an argument is invalid (the outcome, the note, the actor).
	ErrCaseInput = errors.New("invalid")
)

// Case is one review case in its latest state.
type Case struct {
	// ID is CaseID(AccountID, EventID): a replayed decision maps to the
	// same case.
	ID        string `json:"id"`
	EventID   string `json:"event_id"`
	AccountID string `json:"account_id"`
	EventType string `json:"event_type"`
	// EventTS is the event's time in Unix ms.
	EventTS int64 `json:"event_ts"`
	// OpenedAt is when the decision was made (ms precision).
	OpenedAt time.Time `json:"opened_at"`
	// Score, Reason, Rules (the matched rules) and RuleSetVersion are the
	// decision's, for the reviewer to start from.
	Score          int      `json:"score"`
	Reason         string   `json:"reason,omitempty"`
	Rules          []string `json:"rules"`
	RuleSetVersion string   `json:"ruleset_version"`
	// Status is CaseOpen, CaseTaken or CaseClosed.
	Status string `json:"status"`
	// Assignee is who took the case (an API token name); TakenAt when.
	Assignee string    `json:"assignee,omitempty"`
	TakenAt  time.Time `json:"taken_at,omitzero"`
	// Outcome is CaseFraud, CaseNotFraud or CaseInconclusive once closed;
	// Note the closer's text, ClosedBy who closed it and ClosedAt when.
	Outcome  string    `json:"outcome,omitempty"`
	Note     string    `json:"note,omitempty"`
	ClosedBy string    `json:"closed_by,omitempty"`
	ClosedAt time.Time `json:"closed_at,omitzero"`
	// Version counts the case's rows: 1 when opened, +1 per change.
	Version uint64 `json:"version"`
}

// CaseID is the id of the case a review of the event opens: "c" and 16
// hex digits of a hash of the account and event ids, stable across
// replays and safe in a URL path whatever bytes the ids hold.
func CaseID(accountID, eventID string) string {
	sum := sha256.Sum256([]byte(accountID + "\x00" + eventID))
	return "c" + hex.EncodeToString(sum[:8])
}

// ValidCaseID says whether id has the form CaseID returns.
func ValidCaseID(id string) bool {
	if len(id) != 17 || id[0] != 'c' {
		return false
	}
	for _, c := range []byte(id[1:]) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// openCase is the case a review decision opens.
func openCase(d *engine.Decision) Case {
	matched, _ := ruleIDs(d.Matched)
	return Case{
		ID: CaseID(d.AccountID, d.EventID), EventID: d.EventID, AccountID: d.AccountID, EventType: d.EventType,
		EventTS: d.EventTS, OpenedAt: d.DecidedAt, Score: d.Score, Reason: d.Reason, Rules: matched,
		RuleSetVersion: d.RuleSetVersion, Status: CaseOpen, Version: 1,
	}
}

// caseRow is a case as a row of caseColumns.
func caseRow(c Case) []any {
	matched := c.Rules
	if matched == nil {
		matched = []string{}
	}
	return []any{
		c.ID, c.EventID, c.AccountID, c.EventType, dateTime(time.UnixMilli(c.EventTS)), c.EventTS, unixMilli(c.OpenedAt),
		int32(c.Score), c.Reason, matched, c.RuleSetVersion, c.Status, c.Assignee, unixMilli(c.TakenAt), c.Outcome, c.Note,
		c.ClosedBy, unixMilli(c.ClosedAt), c.Version,
	}
}

// unixMilli is t in Unix ms, 0 for the zero time (the schema's "none").
func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromUnixMilli is the inverse for reads.
func fromUnixMilli(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// CaseFilter selects a page of cases, newest event first.
type CaseFilter struct {
	// Status is CaseOpen, CaseTaken, CaseClosed, or "" for all.
	Status string
	// AccountID, when set, keeps one account's cases.
	AccountID string
	// Before, when set, is the cursor of the last case of the previous
	// page (CaseCursor): only cases after it in the order are listed.
	Before CaseCursor
	// Limit is the page size, 0 for DefaultCaseList, at most MaxCaseList.
	Limit int
}

// CaseCursor is a position in the case order (event time, then case id,
// both descending).
type CaseCursor struct {
	EventTS int64
	ID      string
}

// IsZero says whether the cursor is unset (the first page).
func (c CaseCursor) IsZero() bool { return c.ID == "" }

// String is the cursor as the API passes it: "EVENT_TS_MS.CASE_ID".
func (c CaseCursor) String() string {
	if c.IsZero() {
		return ""
	}
	return fmt.Sprintf("%d.%s", c.EventTS, c.ID)
}

// Cursor is the position of c, for the next page.
func (c Case) Cursor() CaseCursor { return CaseCursor{EventTS: c.EventTS, ID: c.ID} }

// ParseCaseCursor reads a cursor written by CaseCursor.String.
func ParseCaseCursor(s string) (CaseCursor, error) {
	ms, id, ok := strings.Cut(s, ".")
	var ts int64
	if ok {
		_, err := fmt.Sscanf(ms, "%d", &ts)
		ok = err == nil && fmt.Sprint(ts) == ms && ValidCaseID(id)
	}
	if !ok {
		return CaseCursor{}, fmt.Errorf("%w cursor %q: want the \"next\" value of the previous page (EVENT_TS_MS.CASE_ID)", ErrCaseInput, s)
	}
	return CaseCursor{EventTS: ts, ID: id}, nil
}

// Validate checks the filter's values, naming the one that is wrong.
func (f CaseFilter) Validate() error {
	switch f.Status {
	case "", CaseOpen, CaseTaken, CaseClosed:
	default:
		return fmt.Errorf("%w status %q: want open, taken or closed", ErrCaseInput, f.Status)
	}
	if f.AccountID != "" {
		if msg := idProblem(f.AccountID); msg != "" {
			return fmt.Errorf("%w account: %s", ErrCaseInput, msg)
		}
	}
	if f.Limit < 0 || f.Limit > MaxCaseList {
		return fmt.Errorf("%w limit %d: want 1 to %d", ErrCaseInput, f.Limit, MaxCaseList)
	}
	if !f.Before.IsZero() && !ValidCaseID(f.Before.ID) {
		return fmt.Errorf("%w cursor: case id %q", ErrCaseInput, f.Before.ID)
	}
	return nil
}

// caseSelect reads every column of the latest row of each case. FINAL
// collapses a case's rows to the highest version before the WHERE
// filters them (ClickHouse does not move WHERE to PREWHERE under FINAL,
// which would filter the older rows first); TestCaseTakeCloseAndLabel
// pins that on the server.
const caseSelect = "SELECT case_id, event_id, account_id, event_type, event_ts_ms, opened_at_ms, score, reason, " +
	"matched_rules, ruleset_version, status, assignee, taken_at_ms, outcome, note, closed_by, closed_at_ms, version FROM "

// Cases lists a page of cases, newest event first (see CaseFilter).
func (s *Store) Cases(ctx context.Context, f CaseFilter) ([]Case, error) {
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("chstore: cases: %w", err)
	}
	limit := f.Limit
	if limit == 0 {
		limit = DefaultCaseList
	}
	var where []string
	var args []any
	if f.AccountID != "" {
		where, args = append(where, "account_id = ?"), append(args, f.AccountID)
	}
	if f.Status != "" {
		where, args = append(where, "status = ?"), append(args, f.Status)
	}
	if !f.Before.IsZero() {
		// The DateTime bound prunes partitions; the ms bound and the id
		// pick up exactly after the cursor.
		where = append(where, "event_time <= toDateTime(?)", "(event_ts_ms < ? OR event_ts_ms = ? AND case_id < ?)")
		args = append(args, dateTime(time.UnixMilli(f.Before.EventTS)).Unix(), f.Before.EventTS, f.Before.EventTS, f.Before.ID)
	}
	q := caseSelect + s.table("cases") + " FINAL"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY event_ts_ms DESC, case_id DESC LIMIT ?"
	args = append(args, limit)
	out, err := s.readCases(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("chstore: cases: %w", err)
	}
	return out, nil
}

// Case reads one case by id; false when there is none. case_id is not in
// the table's key, so this scans the (review-only) table's id column.
func (s *Store) Case(ctx context.Context, id string) (Case, bool, error) {
	if !ValidCaseID(id) {
		return Case{}, false, nil
	}
	cs, err := s.readCases(ctx, caseSelect+s.table("cases")+" FINAL WHERE case_id = ? ORDER BY version DESC LIMIT 1", id)
	if err != nil {
		return Case{}, false, fmt.Errorf("chstore: case %s: %w", id, err)
	}
	if len(cs) == 0 {
		return Case{}, false, nil
	}
	return cs[0], true, nil
}

func (s *Store) readCases(ctx context.Context, q string, args ...any) ([]Case, error) {
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Case
	for rows.Next() {
		var (
			c                         Case
			score                     int32
			opened, taken, closedAtMs int64
		)
		if err := rows.Scan(&c.ID, &c.EventID, &c.AccountID, &c.EventType, &c.EventTS, &opened, &score, &c.Reason,
			&c.Rules, &c.RuleSetVersion, &c.Status, &c.Assignee, &taken, &c.Outcome, &c.Note, &c.ClosedBy,
			&closedAtMs, &c.Version); err != nil {
			return nil, err
		}
		c.Score = int(score)
		c.OpenedAt, c.TakenAt, c.ClosedAt = fromUnixMilli(opened), fromUnixMilli(taken), fromUnixMilli(closedAtMs)
		out = append(out, c)
	}
	return out, rows.Err()
}

// CaseChange is what TakeCase or CloseCase did: the case before and after.
// Changed is false when nothing was written (a take by the assignee).
type CaseChange struct {
	Before, After Case
	Changed       bool
}

// TakeCase assigns the case to by at at. It is refused with ErrCaseClosed
// for a closed case and ErrCaseTaken when someone else has it, unless
// force. A take by the current assignee changes nothing.
//
// The read and the write are two statements: the caller serializes the
// changes of one riskd (the API does); two instances taking the same case
// at once both succeed, and the later row wins.
func (s *Store) TakeCase(ctx context.Context, id, by string, force bool, at time.Time) (CaseChange, error) {
	c, err := s.changeable(ctx, id, by, force)
	if err != nil {
		return CaseChange{}, err
	}
	if c.Status == CaseTaken && c.Assignee == by {
		return CaseChange{Before: c, After: c}, nil
	}
	next := c
	next.Status, next.Assignee, next.TakenAt, next.Version = CaseTaken, by, at.UTC().Truncate(time.Millisecond), c.Version+1
	if err := s.writeCase(ctx, next); err != nil {
		return CaseChange{}, err
	}
	return CaseChange{Before: c, After: next, Changed: true}, nil
}

// CloseCase closes the case with outcome (CaseFraud, CaseNotFraud or
// CaseInconclusive) and note, as by at at. Unless the outcome is
// CaseInconclusive it first labels the case's event with the outcome
// (source CaseLabelSource, labelled_by by, the note), so a closed case
// always has its label; a retry after a failed case write labels again,
// harmlessly. Refused like TakeCase when closed or someone else's (a case
// nobody took can be closed directly), and with ErrCaseInput for a bad
// outcome or note (MaxLabelNoteBytes, UTF-8).
func (s *Store) CloseCase(ctx context.Context, id, by, outcome, note string, force bool, at time.Time) (CaseChange, error) {
	switch outcome {
	case CaseFraud, CaseNotFraud, CaseInconclusive:
	default:
		return CaseChange{}, fmt.Errorf("chstore: close case %s: %w outcome %q: want fraud, not_fraud or inconclusive", id, ErrCaseInput, outcome)
	}
	if len(note) > MaxLabelNoteBytes {
		return CaseChange{}, fmt.Errorf("chstore: close case %s: %w note: %d bytes, over the %d-byte limit", id, ErrCaseInput, len(note), MaxLabelNoteBytes)
	}
	if !utf8.ValidString(note) {
		return CaseChange{}, fmt.Errorf("chstore: close case %s: %w note: not valid UTF-8", id, ErrCaseInput)
	}
	c, err := s.changeable(ctx, id, by, force)
	if err != nil {
		return CaseChange{}, err
	}
	at = at.UTC().Truncate(time.Millisecond)
	if outcome != CaseInconclusive {
		in := insert{table: "labels", columns: labelWriteColumns, rows: [][]any{{
			c.EventID, c.AccountID, dateTime(time.UnixMilli(c.EventTS)), c.EventTS, outcome, CaseLabelSource,
			dateTime(at), by, note}}}
		if err := s.insertLabels(ctx, in); err != nil {
			return CaseChange{}, fmt.Errorf("chstore: close case %s: label: %w", id, err)
		}
	}
	next := c
	next.Status, next.Outcome, next.Note, next.ClosedBy, next.ClosedAt, next.Version = CaseClosed, outcome, note, by, at, c.Version+1
	if err := s.writeCase(ctx, next); err != nil {
		return CaseChange{}, err
	}
	return CaseChange{Before: c, After: next, Changed: true}, nil
}

// changeable reads the case and checks that by may change it.
func (s *Store) changeable(ctx context.Context, id, by string, force bool) (Case, error) {
	if by == "" || len(by) > MaxCaseActorBytes {
		return Case{}, fmt.Errorf("chstore: case %s: %w actor %q: want a name of 1 to %d bytes", id, ErrCaseInput, by, MaxCaseActorBytes)
	}
	c, ok, err := s.Case(ctx, id)
	switch {
	case err != nil:
		return Case{}, err
	case !ok:
		return Case{}, fmt.Errorf("chstore: case %s: %w", id, ErrCaseNotFound)
	case c.Status == CaseClosed:
		return Case{}, fmt.Errorf("chstore: case %s: %w (%s by %s)", id, ErrCaseClosed, c.Outcome, c.ClosedBy)
	case c.Status == CaseTaken && c.Assignee != by && !force:
		return Case{}, fmt.Errorf("chstore: case %s: %w (%s); force to take it over", id, ErrCaseTaken, c.Assignee)
	}
	return c, nil
}

// writeCase stores one state of a case, retrying like WriteDecisions.
func (s *Store) writeCase(ctx context.Context, c Case) error {
	in := insert{table: "cases", columns: caseColumns, rows: [][]any{caseRow(c)}}
	if err := s.retry(ctx, "write case "+c.ID, func(ctx context.Context) error { return s.send(ctx, in) }); err != nil {
		return fmt.Errorf("chstore: case %s: %w", c.ID, err)
	}
	return nil
}
