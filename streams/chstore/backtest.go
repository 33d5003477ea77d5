package chstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// Reads for a backtest (package backtest): the stored events of a span in
// the order the live engine decided them, streamed, and beside them the
// recorded decisions, labels and support locks of the same span, each in
// an order a reader can join to the events without holding the span in
// memory. Like the other reads they run once, without retry.
//
// A span is [fromMs, toMs) of event time in Unix milliseconds. Each filter
// tests the DateTime column too (whole seconds, covering the span), so
// ClickHouse prunes monthly partitions and uses the primary index.

// ReplayEvent is one stored event, as ReplayEvents hands it over.
type ReplayEvent struct {
	EventID string
	// TS is the event time in Unix milliseconds.
	TS int64
	// Raw is the event as received. It aliases the driver's buffer and is
	// valid only during the callback.
	Raw []byte
}

// ReplayDecision is the part of a recorded decision a backtest compares.
type ReplayDecision struct {
	EventID string
	// TS is the event time in Unix milliseconds.
	TS int64
	// DecidedAtMs is the wall-clock time of the decision (Unix ms): the
	// clock the live engine's locks ran on for this event.
	DecidedAtMs    int64
	Action         string
	MatchedRules   []string
	ShadowRules    []string
	RuleSetVersion string
	FeatureNames   []string
	FeatureValues  []float64
}

// ReplayLabel is the stored label of one event.
type ReplayLabel struct {
	EventID string
	TS      int64
	Label   string
}

// spanFilter selects rows of [fromMs, toMs) of event time; spanArgs are
// its arguments.
const spanFilter = " WHERE event_time >= toDateTime(?) AND event_time <= toDateTime(?) AND event_ts_ms >= ? AND event_ts_ms < ?"

func spanArgs(fromMs, toMs int64) []any {
	// DateTime is whole seconds from the epoch; earlier times clamp to 0.
	fromSec := max(floorDiv(fromMs, 1000), 0)
	toSec := min(max(floorDiv(toMs, 1000), 0), maxDateTime.Unix())
	return []any{fromSec, toSec, fromMs, toMs}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// ReplayOrder is the order of ReplayEvents: event time, then the Kafka
// position (topic, partition, offset), then event id. The live merger
// hands the engine the smallest event time across partitions, breaking
// ties by topic and partition, and reads each partition in offset order;
// this is that order whenever each partition's events are in time order.
const ReplayOrder = "event_ts_ms, source_topic, source_partition, source_offset, event_id"

// EventCount is how many event rows are stored in [StartMs, StartMs+step).
type EventCount struct {
	StartMs int64
	Rows    uint64
}

// CountEvents counts the stored event rows of [fromMs, toMs) per step of
// event time (stepMs, at least 1), duplicates included: a cheap upper
// bound, for progress and limits, and where to cut the replay into
// queries of even size. Steps without events are left out.
func (s *Store) CountEvents(ctx context.Context, fromMs, toMs, stepMs int64) ([]EventCount, error) {
	stepMs = max(stepMs, 1)
	q := "SELECT intDiv(event_ts_ms - ?, ?) AS step, count() FROM " + s.table("events") + spanFilter + " GROUP BY step ORDER BY step"
	rows, err := s.conn.Query(ctx, q, append([]any{fromMs, stepMs}, spanArgs(fromMs, toMs)...)...)
	if err != nil {
		return nil, fmt.Errorf("chstore: count events: %w", err)
	}
	defer rows.Close()
	var out []EventCount
	for rows.Next() {
		var step int64
		var n uint64
		if err := rows.Scan(&step, &n); err != nil {
			return nil, fmt.Errorf("chstore: count events: %w", err)
		}
		out = append(out, EventCount{StartMs: fromMs + step*stepMs, Rows: n})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chstore: count events: %w", err)
	}
	return out, nil
}

// CountAccounts estimates how many accounts have stored events in
// [fromMs, toMs) (uniq: within a few percent), for a replay that sizes its
// state up front.
func (s *Store) CountAccounts(ctx context.Context, fromMs, toMs int64) (uint64, error) {
	var n uint64
	q := "SELECT uniq(account_id) FROM " + s.table("events") + spanFilter
	if err := s.conn.QueryRow(ctx, q, spanArgs(fromMs, toMs)...).Scan(&n); err != nil {
		return 0, fmt.Errorf("chstore: count accounts: %w", err)
	}
	return n, nil
}

// EarliestEvent returns the event time (Unix ms) of the oldest stored
// event; false when the table is empty.
func (s *Store) EarliestEvent(ctx context.Context) (int64, bool, error) {
	var n uint64
	var ts int64
	q := "SELECT count(), min(event_ts_ms) FROM " + s.table("events")
	if err := s.conn.QueryRow(ctx, q).Scan(&n, &ts); err != nil {
		return 0, false, fmt.Errorf("chstore: earliest event: %w", err)
	}
	return ts, n > 0, nil
}

// ReplayEvents calls fn with each stored event of [fromMs, toMs) in
// ReplayOrder, each event once: an event stored twice (a replay after a
// restart writes it again) keeps its first row in that order. The copies
// share the event's time, so they are told apart here, among the rows of
// one millisecond, rather than by FINAL or LIMIT 1 BY event_id in the
// query: on 1M stored events the query took 2.0 s without, 2.7 s with
// LIMIT 1 BY, and FINAL is slower still. fn's event is reused for the
// next row. It stops at fn's first error and returns it.
func (s *Store) ReplayEvents(ctx context.Context, fromMs, toMs int64, fn func(*ReplayEvent) error) error {
	// The Kafka position orders the rows but is not read: the replay
	// does not need it, and every column read costs (String ones most).
	q := "SELECT event_id, event_ts_ms, raw FROM " + s.table("events") + spanFilter + " ORDER BY " + ReplayOrder
	rows, err := s.conn.Query(replayBlocks(ctx), q, spanArgs(fromMs, toMs)...)
	if err != nil {
		return fmt.Errorf("chstore: replay events: %w", err)
	}
	defer rows.Close()
	var ev ReplayEvent
	var seen msIDs
	for rows.Next() {
		ts := ev.TS
		if err := rows.Scan(&ev.EventID, &ev.TS, &ev.Raw); err != nil {
			return fmt.Errorf("chstore: replay events: %w", err)
		}
		if ev.TS != ts {
			seen.reset()
		}
		if !seen.add(ev.EventID) {
			continue
		}
		if err := fn(&ev); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("chstore: replay events: %w", err)
	}
	return nil
}

// replayBlocks asks for result blocks of replayBlockRows rows.
func replayBlocks(ctx context.Context) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_block_size": replayBlockRows}))
}

var replayBlockRows = 8192

// msIDs is the set of event ids of one millisecond: a slice while small
// (almost always one or two), a map beyond.
type msIDs struct {
	list []string
	set  map[string]struct{}
}

func (m *msIDs) reset() {
	m.list, m.set = m.list[:0], nil
}

// add adds id and reports whether it was new.
func (m *msIDs) add(id string) bool {
	if m.set != nil {
		if _, ok := m.set[id]; ok {
			return false
		}
		m.set[id] = struct{}{}
		return true
	}
	if slices.Contains(m.list, id) {
		return false
	}
	if m.list = append(m.list, id); len(m.list) > 32 {
		m.set = make(map[string]struct{}, 2*len(m.list))
		for _, x := range m.list {
			m.set[x] = struct{}{}
		}
	}
	return true
}

// ReplayDecisions calls fn with each recorded decision of [fromMs, toMs),
// ordered by event time, then event id. An event decided twice gives its
// original decision, not a duplicate's repeat (what FINAL keeps): the
// rows come ordered by original descending among one event's, and only
// the first is handed over (on 1M decisions 0.9 s against 1.4 s with
// LIMIT 1 BY event_id). Each call gets fresh slices; its strings are
// shared between calls (they are never changed).
//
// The text columns of a row come as one string (recordedText) and the
// feature values as their bits (recordedValues): the driver allocates
// each String it hands over and a slice for each Array, empty or not,
// which made this read about half of a backtest's allocations.
func (s *Store) ReplayDecisions(ctx context.Context, fromMs, toMs int64, fn func(ReplayDecision) error) error {
	q := "SELECT event_id, event_ts_ms, decided_at_ms, " + recordedText + ", " + recordedValues +
		" FROM " + s.table("decisions") + spanFilter +
		" ORDER BY event_ts_ms, event_id, original DESC"
	rows, err := s.conn.Query(replayBlocks(ctx), q, spanArgs(fromMs, toMs)...)
	if err != nil {
		return fmt.Errorf("chstore: replay decisions: %w", err)
	}
	defer rows.Close()
	var prevTS int64
	var prevID string
	var text, values []byte
	names := make(interned)
	for rows.Next() {
		var d ReplayDecision
		if err := rows.Scan(&d.EventID, &d.TS, &d.DecidedAtMs, &text, &values); err != nil {
			return fmt.Errorf("chstore: replay decisions: %w", err)
		}
		if d.TS == prevTS && d.EventID == prevID {
			continue
		}
		prevTS, prevID = d.TS, d.EventID
		if err := d.parse(text, values, names); err != nil {
			return fmt.Errorf("chstore: replay decisions: event %s: %w", d.EventID, err)
		}
		if err := fn(d); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("chstore: replay decisions: %w", err)
	}
	return nil
}

// recordedText is a decision's action, rule set version, matched rules,
// shadow rules and feature names as one string of length-prefixed
// fields: "<bytes>:<text>" for a string, "<n>:" and then n such strings
// for an array. Lengths make it safe for any content.
var recordedText = "concat(" + strings.Join([]string{
	prefixed("action"), prefixed("ruleset_version"),
	prefixedArray("matched_rules"), prefixedArray("shadow_rules"), prefixedArray("feature_names"),
}, ", ") + ")"

func prefixed(col string) string {
	return "toString(length(" + col + ")), ':', " + col
}

func prefixedArray(col string) string {
	return "toString(length(" + col + ")), ':', arrayStringConcat(arrayMap(x -> concat(toString(length(x)), ':', x), " + col + "))"
}

// recordedValues is a decision's feature values, "<n>:" and then the hex
// of each Float64's little-endian bytes, comma-separated: exact, NaN and
// signed zero included, where a decimal rendering would depend on the
// server's formatting. ClickHouse drops a value's trailing zero bytes
// (0 is the empty string), hence the count.
const recordedValues = "concat(toString(length(feature_values)), ':', arrayStringConcat(arrayMap(x -> hex(reinterpretAsString(x)), feature_values), ','))"

// interned keeps one copy of each action, version, rule id and feature
// name: a few hundred strings repeated over millions of rows.
type interned map[string]string

func (m interned) of(b []byte) string {
	if s, ok := m[string(b)]; ok {
		return s
	}
	s := string(b)
	m[s] = s
	return s
}

// parse fills d's text fields and values from recordedText and
// recordedValues.
func (d *ReplayDecision) parse(text, values []byte, names interned) error {
	p := prefixedReader{rest: text}
	d.Action = names.of(p.field())
	d.RuleSetVersion = names.of(p.field())
	d.MatchedRules = p.array(names)
	d.ShadowRules = p.array(names)
	d.FeatureNames = p.array(names)
	if p.err != nil {
		return fmt.Errorf("recorded text %q: %w", text, p.err)
	}
	if len(p.rest) > 0 {
		return fmt.Errorf("recorded text %q: %d bytes left over", text, len(p.rest))
	}
	vp := prefixedReader{rest: values}
	n := vp.count()
	if vp.err != nil {
		return fmt.Errorf("recorded values %q: %w", values, vp.err)
	}
	if n == 0 {
		return nil
	}
	if got := bytes.Count(vp.rest, []byte{','}) + 1; got != n {
		return fmt.Errorf("recorded values %q: %d values, the count says %d", values, got, n)
	}
	d.FeatureValues = make([]float64, 0, n)
	for v := range bytes.SplitSeq(vp.rest, []byte{','}) {
		var le [8]byte
		if len(v) > 2*len(le) {
			return fmt.Errorf("feature value %q: more than 8 bytes", v)
		}
		if _, err := hex.Decode(le[:], v); err != nil {
			return fmt.Errorf("feature value %q: %w", v, err)
		}
		d.FeatureValues = append(d.FeatureValues, math.Float64frombits(binary.LittleEndian.Uint64(le[:])))
	}
	return nil
}

// prefixedReader reads recordedText's fields; the first error sticks.
type prefixedReader struct {
	rest []byte
	err  error
}

func (p *prefixedReader) count() int {
	if p.err != nil {
		return 0
	}
	i := bytes.IndexByte(p.rest, ':')
	if i < 0 {
		p.err = errors.New("no length")
		return 0
	}
	n, err := strconv.Atoi(string(p.rest[:i]))
	if err != nil || n < 0 {
		p.err = fmt.Errorf("length %q", p.rest[:i])
		return 0
	}
	p.rest = p.rest[i+1:]
	return n
}

func (p *prefixedReader) field() []byte {
	n := p.count()
	if p.err != nil {
		return nil
	}
	if n > len(p.rest) {
		p.err = fmt.Errorf("length %d past the end", n)
		return nil
	}
	f := p.rest[:n]
	p.rest = p.rest[n:]
	return f
}

// array reads an array field; an empty one is nil.
func (p *prefixedReader) array(names interned) []string {
	n := p.count()
	if p.err != nil || n == 0 {
		return nil
	}
	if n > len(p.rest) { // each element takes at least two bytes ("0:")
		p.err = fmt.Errorf("%d elements past the end", n)
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = names.of(p.field())
	}
	return out
}

// ReplayLabels calls fn with each stored label of [fromMs, toMs) (FINAL:
// the latest label of an event), ordered by event time, then event id.
func (s *Store) ReplayLabels(ctx context.Context, fromMs, toMs int64, fn func(ReplayLabel) error) error {
	q := "SELECT event_id, event_ts_ms, label FROM " + s.table("labels") + " FINAL" + spanFilter + " ORDER BY event_ts_ms, event_id"
	rows, err := s.conn.Query(ctx, q, spanArgs(fromMs, toMs)...)
	if err != nil {
		return fmt.Errorf("chstore: replay labels: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var l ReplayLabel
		if err := rows.Scan(&l.EventID, &l.TS, &l.Label); err != nil {
			return fmt.Errorf("chstore: replay labels: %w", err)
		}
		if err := fn(l); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("chstore: replay labels: %w", err)
	}
	return nil
}

// DecisionTimes returns the earliest and latest decided_at_ms (wall
// clock, Unix ms) of the decisions of events in [fromMs, toMs); false when
// there are none. Support's locks are dated on the wall clock, so this is
// the span to read them for.
func (s *Store) DecisionTimes(ctx context.Context, fromMs, toMs int64) (first, last int64, ok bool, err error) {
	var n uint64
	q := "SELECT count(), min(decided_at_ms), max(decided_at_ms) FROM " + s.table("decisions") + spanFilter
	if err := s.conn.QueryRow(ctx, q, spanArgs(fromMs, toMs)...).Scan(&n, &first, &last); err != nil {
		return 0, 0, false, fmt.Errorf("chstore: decision times: %w", err)
	}
	return first, last, n > 0, nil
}

// ErrTooManyLocks is returned by SupportLocks when the span holds more
// support locks and unlocks than the limit asked for.
var ErrTooManyLocks = errors.New("too many support locks")

// SupportLocks returns the locks and unlocks made by support or the API
// (not by the engine: its rows have actor "engine") with ts_ms in
// [fromMs, toMs), oldest first, at most limit of them; more is
// ErrTooManyLocks. Until is the lock's end to the millisecond on the
// assumption that a lock lasts whole seconds (the table stores until in
// seconds, the start in ms); zero for an unlock.
func (s *Store) SupportLocks(ctx context.Context, fromMs, toMs int64, limit int) ([]LockRow, error) {
	q := "SELECT account_id, action, reason, until, actor, ts_ms, event_id FROM " + s.table("account_locks") +
		" FINAL WHERE time >= toDateTime(?) AND time <= toDateTime(?) AND ts_ms >= ? AND ts_ms < ? AND actor != ?" +
		" ORDER BY ts_ms, account_id, action, event_id LIMIT ?"
	rows, err := s.conn.Query(ctx, q, append(spanArgs(fromMs, toMs), engineActor, uint64(max(limit, 0))+1)...)
	if err != nil {
		return nil, fmt.Errorf("chstore: support locks: %w", err)
	}
	defer rows.Close()
	var out []LockRow
	for rows.Next() {
		if len(out) == limit {
			return nil, fmt.Errorf("chstore: support locks: %w: more than %d between %s and %s", ErrTooManyLocks, limit,
				time.UnixMilli(fromMs).UTC().Format(time.RFC3339), time.UnixMilli(toMs).UTC().Format(time.RFC3339))
		}
		var r LockRow
		var until time.Time
		var ms int64
		if err := rows.Scan(&r.AccountID, &r.Action, &r.Reason, &until, &r.Actor, &ms, &r.RequestID); err != nil {
			return nil, fmt.Errorf("chstore: support locks: %w", err)
		}
		r.At = time.UnixMilli(ms).UTC()
		if u := fromDateTime(until); !u.IsZero() {
			// The sub-second part of the start, which the DateTime lost.
			r.Until = time.UnixMilli(u.Unix()*1000 + ms%1000).UTC()
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chstore: support locks: %w", err)
	}
	return out, nil
}
