package chstore

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// Bounds of one WriteLabels call. They keep a request's work and the rows
// it can add bounded: the ids go into IN lists (max_query_size), each range
// is one query, and every labelled event is one row of one insert.
const (
	// MaxLabelItems bounds the items of one call.
	MaxLabelItems = 10000
	// MaxLabelRanges bounds the account-range items of one call: each is
	// one query on the events table.
	MaxLabelRanges = 1000
	// MaxLabelledEvents bounds the events one call labels, all items
	// together; a call that would label more is refused whole.
	MaxLabelledEvents = 100000
	// MaxLabelRange bounds one range item's To - From.
	MaxLabelRange = 366 * 24 * time.Hour
	// MaxLabelNameBytes bounds a label and a source.
	MaxLabelNameBytes = 64
	// MaxLabelNoteBytes bounds a note.
	MaxLabelNoteBytes = 1000
	// MaxLabelIDBytes bounds an event id and an account id; the decoder's
	// default is 128 (event.DefaultMaxIDBytes), this leaves room for a
	// deployment that raised it.
	MaxLabelIDBytes = 256
)

// LabelItem is one labelling: one event by id, or every stored event of an
// account with From <= event time < To. Label is LabelFraud, LabelNotFraud
// or a fraud scenario's name (see LabelIsFraud); Source says where the
// verdict came from ("chargeback", "support", "analyst"); Note is free text.
type LabelItem struct {
	EventID   string
	AccountID string
	From, To  time.Time
	Label     string
	Source    string
	Note      string
}

// IsRange says whether the item names an account range, not one event.
func (it LabelItem) IsRange() bool { return it.EventID == "" }

// LabelFieldError is a labelling refused before anything was written:
// Index is the item's position in the call (-1 for the call as a whole),
// Field the JSON name of the offending field.
type LabelFieldError struct {
	Index int
	Field string
	Msg   string
	err   error // a sentinel the error wraps, if any
}

func (e *LabelFieldError) Unwrap() error { return e.err }

func (e *LabelFieldError) Error() string {
	switch {
	case e.Index < 0:
		return e.Msg
	case e.Field == "":
		return fmt.Sprintf("labels[%d]: %s", e.Index, e.Msg)
	}
	return fmt.Sprintf("labels[%d].%s: %s", e.Index, e.Field, e.Msg)
}

// ErrTooManyLabelled is wrapped by the *LabelFieldError WriteLabels returns
// when the items would label more than MaxLabelledEvents events.
var ErrTooManyLabelled = errors.New("too many events")

// Validate checks one item; a problem is a *LabelFieldError with Index -1
// for the caller to set.
func (it LabelItem) Validate() error {
	bad := func(field, msg string) error { return &LabelFieldError{Index: -1, Field: field, Msg: msg} }
	switch {
	case it.EventID != "" && (it.AccountID != "" || !it.From.IsZero() || !it.To.IsZero()):
		return bad("event_id", "give event_id alone, or account_id with from and to, not both")
	case it.EventID != "":
		if msg := idProblem(it.EventID); msg != "" {
			return bad("event_id", msg)
		}
	case it.AccountID == "":
		return bad("event_id", "missing: give event_id, or account_id with from and to")
	default:
		if msg := idProblem(it.AccountID); msg != "" {
			return bad("account_id", msg)
		}
		switch {
		case it.From.IsZero():
			return bad("from", "missing: an account range needs from and to")
		case it.To.IsZero():
			return bad("to", "missing: an account range needs from and to")
		case !it.To.After(it.From):
			return bad("to", fmt.Sprintf("%s is not after from (%s)", it.To.UTC().Format(time.RFC3339), it.From.UTC().Format(time.RFC3339)))
		case it.To.Sub(it.From) > MaxLabelRange:
			return bad("to", fmt.Sprintf("the range is %v long, over the %v limit", it.To.Sub(it.From), MaxLabelRange))
		}
	}
	if msg := nameProblem(it.Label); msg != "" {
		return bad("label", msg+` (want "fraud", "not_fraud" or a fraud scenario name)`)
	}
	if msg := nameProblem(it.Source); msg != "" {
		return bad("source", msg+` (e.g. "chargeback", "support", "analyst")`)
	}
	if len(it.Note) > MaxLabelNoteBytes {
		return bad("note", fmt.Sprintf("%d bytes, over the %d-byte limit", len(it.Note), MaxLabelNoteBytes))
	}
	if !utf8.ValidString(it.Note) {
		return bad("note", "not valid UTF-8")
	}
	return nil
}

// idProblem says what is wrong with an event or account id, or "".
func idProblem(id string) string {
	if len(id) > MaxLabelIDBytes {
		return fmt.Sprintf("%d bytes, over the %d-byte limit", len(id), MaxLabelIDBytes)
	}
	for _, c := range []byte(id) {
		if c < 0x21 || c == 0x7f {
			return fmt.Sprintf("contains the byte 0x%02x: ids are printable text without spaces", c)
		}
	}
	return ""
}

// nameProblem says what is wrong with a label or source, or "": they are
// short identifiers that reports group by.
func nameProblem(s string) string {
	if s == "" {
		return "missing"
	}
	if len(s) > MaxLabelNameBytes {
		return fmt.Sprintf("%d bytes, over the %d-byte limit", len(s), MaxLabelNameBytes)
	}
	for i, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-', c == '.', c == ':':
		default:
			return fmt.Sprintf("%q has %q at byte %d: use letters, digits and _ - . :", s, rune(c), i)
		}
	}
	return ""
}

// LabelResult is what a WriteLabels call did.
type LabelResult struct {
	// Labelled counts the events labelled (a label row each); an event
	// named by two items counts once, with the later item's label.
	Labelled int
	// Fraud and NotFraud split Labelled by LabelIsFraud.
	Fraud, NotFraud int
	// UnknownEventIDs lists the event_id items with no stored event, in
	// item order.
	UnknownEventIDs []string
	// EmptyRanges lists the indexes of the range items with no stored
	// event in their range.
	EmptyRanges []int
}

// labelTarget is one stored event to label: the events row's key.
type labelTarget struct {
	eventID, accountID string
	eventTime          time.Time
	eventTS            int64
}

// WriteLabels labels the stored events the items name, as By (the API
// token name) at At (labelled_at, to the second: a later label of the same
// event replaces an earlier one under FINAL). It looks the events up in
// the events table, because a label row carries its event's account and
// time (the table's key), then inserts every label in one batch, retrying
// like WriteDecisions. Nothing is written when an item is invalid or the
// items name more than MaxLabelledEvents events (a *LabelFieldError).
// Unknown event ids and empty ranges are reported in the result.
func (s *Store) WriteLabels(ctx context.Context, items []LabelItem, by string, at time.Time) (LabelResult, error) {
	return s.writeLabels(ctx, items, by, at, MaxLabelledEvents)
}

// writeLabels is WriteLabels with the bound on labelled events as a
// parameter, so a test can reach it without storing 100,000 events.
func (s *Store) writeLabels(ctx context.Context, items []LabelItem, by string, at time.Time, maxEvents int) (LabelResult, error) {
	var res LabelResult
	if len(items) == 0 {
		return res, &LabelFieldError{Index: -1, Msg: "no labels given"}
	}
	if len(items) > MaxLabelItems {
		return res, &LabelFieldError{Index: -1, Msg: fmt.Sprintf("%d labels, over the %d-per-request limit: send them in batches", len(items), MaxLabelItems)}
	}
	ranges := 0
	for i, it := range items {
		if err := it.Validate(); err != nil {
			var fe *LabelFieldError
			if errors.As(err, &fe) {
				fe.Index = i
			}
			return res, err
		}
		if it.IsRange() {
			ranges++
		}
	}
	if ranges > MaxLabelRanges {
		return res, &LabelFieldError{Index: -1, Msg: fmt.Sprintf("%d account ranges, over the %d-per-request limit: send them in batches", ranges, MaxLabelRanges)}
	}
	if at.IsZero() {
		at = time.Now()
	}

	var ids []string
	for _, it := range items {
		if !it.IsRange() {
			ids = append(ids, it.EventID)
		}
	}
	byID, err := s.labelTargetsByID(ctx, ids)
	if err != nil {
		return res, err
	}
	// Rows by event id: a later item replaces an earlier one's label, so
	// the request's own order decides, not the merge.
	type row struct {
		t  labelTarget
		it int
	}
	rows := map[string]row{}
	var order []string
	put := func(t labelTarget, i int) {
		key := t.eventID + "\x00" + t.accountID
		if _, ok := rows[key]; !ok {
			order = append(order, key)
		}
		rows[key] = row{t, i}
	}
	for i, it := range items {
		var targets []labelTarget
		if it.IsRange() {
			// One more than the bound: enough to see it crossed whatever
			// the earlier items already named.
			targets, err = s.labelTargetsInRange(ctx, it.AccountID, it.From, it.To, maxEvents+1)
			if err != nil {
				return res, fmt.Errorf("chstore: labels[%d]: %w", i, err)
			}
			if len(targets) == 0 {
				res.EmptyRanges = append(res.EmptyRanges, i)
			}
		} else {
			targets = byID[it.EventID]
			if len(targets) == 0 {
				res.UnknownEventIDs = append(res.UnknownEventIDs, it.EventID)
			}
		}
		for _, t := range targets {
			put(t, i)
		}
		if len(order) > maxEvents {
			return LabelResult{}, &LabelFieldError{Index: i, Msg: fmt.Sprintf("%v: the labels up to this one name more than %d events; "+
				"send fewer or shorter ranges per request", ErrTooManyLabelled, maxEvents), err: ErrTooManyLabelled}
		}
	}

	in := insert{table: "labels", columns: labelWriteColumns, rows: make([][]any, 0, len(order))}
	labelledAt := dateTime(at)
	for _, key := range order {
		r := rows[key]
		it := items[r.it]
		in.rows = append(in.rows, []any{r.t.eventID, r.t.accountID, dateTime(r.t.eventTime), r.t.eventTS,
			it.Label, it.Source, labelledAt, by, it.Note})
		if LabelIsFraud(it.Label) {
			res.Fraud++
		} else {
			res.NotFraud++
		}
	}
	res.Labelled = len(in.rows)
	if len(in.rows) == 0 {
		return res, nil
	}
	if err := s.insertLabels(ctx, in); err != nil {
		return LabelResult{}, err
	}
	return res, nil
}

// labelWriteColumns are the columns of a label row written by WriteLabels:
// labelColumns plus who labelled and the note (migration 9).
const labelWriteColumns = labelColumns + ", labelled_by, note"

// insertLabels sends the label rows, retrying like WriteDecisions.
func (s *Store) insertLabels(ctx context.Context, in insert) error {
	return s.retry(ctx, fmt.Sprintf("write %d labels", len(in.rows)), func(ctx context.Context) error { return s.send(ctx, in) })
}

// labelTargetsByID looks the events up by id, in chunks whose IN lists
// stay within lookupBytes. event_id is not a key prefix, so each chunk
// scans the events table's id column. An id stored under two accounts
// names both events.
func (s *Store) labelTargetsByID(ctx context.Context, ids []string) (map[string][]labelTarget, error) {
	out := map[string][]labelTarget{}
	q := "SELECT DISTINCT event_id, account_id, event_time, event_ts_ms FROM " + s.table("events") + " WHERE event_id IN ?"
	for _, chunk := range idChunks(ids) {
		ts, err := s.readLabelTargets(ctx, q, clickhouse.GroupSet{Value: chunk})
		if err != nil {
			return nil, fmt.Errorf("chstore: look up events to label: %w", err)
		}
		for _, t := range ts {
			out[t.eventID] = append(out[t.eventID], t)
		}
	}
	return out, nil
}

// labelTargetsInRange reads at most limit events of one account with
// from <= event time < to (to the millisecond), in time order. The
// DateTime bounds use the key for the account and prune partitions.
func (s *Store) labelTargetsInRange(ctx context.Context, account string, from, to time.Time, limit int) ([]labelTarget, error) {
	q := "SELECT DISTINCT event_id, account_id, event_time, event_ts_ms FROM " + s.table("events") +
		" WHERE account_id = ? AND event_time >= toDateTime(?) AND event_time <= toDateTime(?)" +
		" AND event_ts_ms >= ? AND event_ts_ms < ? ORDER BY event_ts_ms, event_id LIMIT ?"
	ts, err := s.readLabelTargets(ctx, q, account, dateTime(from).Unix(), dateTime(to).Unix(), from.UnixMilli(), to.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("look up the events of %s: %w", account, err)
	}
	return ts, nil
}

func (s *Store) readLabelTargets(ctx context.Context, q string, args ...any) ([]labelTarget, error) {
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []labelTarget
	for rows.Next() {
		var t labelTarget
		if err := rows.Scan(&t.eventID, &t.accountID, &t.eventTime, &t.eventTS); err != nil {
			return nil, err
		}
		t.eventTime = t.eventTime.UTC()
		out = append(out, t)
	}
	return out, rows.Err()
}

// idChunks splits distinct ids into lists that stay within lookupBytes
// once written as quoted literals.
func idChunks(ids []string) [][]any {
	var chunks [][]any
	var cur []any
	size := 0
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		cost := len(id) + 4 + escapes(id)
		if len(cur) > 0 && size+cost > lookupBytes {
			chunks = append(chunks, cur)
			cur, size = nil, 0
		}
		cur = append(cur, id)
		size += cost
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	return chunks
}

// StoredLabel is an event's label as read back (the latest, under FINAL).
type StoredLabel struct {
	EventID, AccountID string
	// EventTS is the event's time in Unix ms.
	EventTS int64
	Label   string
	Source  string
	// LabelledBy is the API token name; empty for the engine's own labels
	// (source "event") and rows stored before the column existed.
	LabelledBy string
	Note       string
	// LabelledAt is to the second.
	LabelledAt time.Time
}

// LabelsByEvent reads the current label of each of the events named by id
// that has one. Like DecisionByEvent it scans the table (event_id is not a
// key prefix); it serves tests and look-ups, not a hot path.
func (s *Store) LabelsByEvent(ctx context.Context, ids []string) (map[string]StoredLabel, error) {
	q := "SELECT event_id, account_id, event_ts_ms, label, source, labelled_by, note, labelled_at FROM " +
		s.table("labels") + " FINAL WHERE event_id IN ? ORDER BY event_id, account_id"
	out := map[string]StoredLabel{}
	for _, chunk := range idChunks(ids) {
		err := func() error {
			rows, err := s.conn.Query(ctx, q, clickhouse.GroupSet{Value: chunk})
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var l StoredLabel
				if err := rows.Scan(&l.EventID, &l.AccountID, &l.EventTS, &l.Label, &l.Source, &l.LabelledBy, &l.Note, &l.LabelledAt); err != nil {
					return err
				}
				l.LabelledAt = l.LabelledAt.UTC()
				out[l.EventID] = l
			}
			return rows.Err()
		}()
		if err != nil {
			return nil, fmt.Errorf("chstore: labels of events: %w", err)
		}
	}
	return out, nil
}
