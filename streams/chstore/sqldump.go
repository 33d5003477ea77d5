package chstore

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"riskd/engine"
	"riskd/rules"
)

// Statement is one SQL statement riskd sends to ClickHouse, as the server
// receives it, for checking the SQL against other ClickHouse releases
// (scripts/chdb-check runs every one on a current engine).
type Statement struct {
	// Kind is "ddl" (database and migrations), "insert" or "query".
	Kind string `json:"kind"`
	// Name says which code sends it: "migration 2 (create decisions)",
	// "insert decisions", "CountDecisions".
	Name string `json:"name"`
	// SQL is the statement with its arguments bound. An insert, which
	// riskd sends as a native-protocol batch (PrepareBatch with the column
	// list, then rows), is written as the equivalent
	// INSERT INTO t (columns) VALUES (...) with the rows the code built.
	SQL string `json:"sql"`
	// Expect, for a query, is the result the sample rows imply, in
	// ClickHouse's TabSeparated format with DateTime in UTC: one line per
	// row, sorted unless Ordered. Empty for statements with no result.
	Expect []string `json:"expect,omitempty"`
	// Ordered says the query fixes its row order (ORDER BY).
	Ordered bool `json:"ordered,omitempty"`
}

// SQLDump returns every statement riskd sends to ClickHouse for database
// db, in the order a fresh database sees them: the migrations, one insert
// per table with sample rows, then each read with sample arguments and the
// result those rows imply. Nothing is sent anywhere: the real code paths
// (migrate, WriteDecisions, the read methods...) run against a connection
// that records what they send, so the dump cannot drift from the code.
func SQLDump(db string) ([]Statement, error) {
	if !identRE.MatchString(db) {
		return nil, fmt.Errorf("chstore: sql dump: database name %q is not a plain identifier", db)
	}
	ctx := context.Background()
	rec := &recorder{}
	cfg := Config{Database: db, RetryMin: time.Millisecond, RetryMax: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}.withDefaults()
	s := &Store{conn: rec, cfg: cfg, log: cfg.Logger}

	if err := migrate(ctx, rec, db); err != nil {
		return nil, fmt.Errorf("chstore: sql dump: migrate: %w", err)
	}
	rec.name("ddl", "create database", "create schema_migrations")
	rec.name("query", "read applied migrations (fresh database)")
	rec.expect(nil, false)
	versions := make([]string, 0, len(migrations)+len(adminMigrations))
	for _, m := range append(migrations[:len(migrations):len(migrations)], adminMigrations...) {
		rec.name("ddl", fmt.Sprintf("migration %d (%s)", m.Version, m.Name))
		rec.name("insert", fmt.Sprintf("record migration %d", m.Version))
		versions = append(versions, strconv.FormatUint(uint64(m.Version), 10))
	}

	for _, w := range sampleWrites {
		if err := w.write(ctx, s); err != nil {
			return nil, fmt.Errorf("chstore: sql dump: %s: %w", w.name, err)
		}
		rec.nameInserts(w.name)
	}

	// The migrations query again, now that the sample database has them all.
	if _, err := appliedMigrations(ctx, rec, db); err != nil {
		return nil, err
	}
	rec.name("query", "read applied migrations")
	rec.expect(versions, false)
	for _, r := range sampleReads {
		if err := r.read(ctx, s); err != nil {
			return nil, fmt.Errorf("chstore: sql dump: %s: %w", r.name, err)
		}
		rec.name("query", r.name)
		rec.expect(r.expect, r.ordered)
	}
	return rec.statements()
}

// The sample: one payment decided "lock" at a fixed time, with an alert,
// a lock, a label, features, late for its device, and every array column
// non-empty; one honest (unlabelled) payment of another account sent to
// review by a score threshold, with no rule matched, decided at the same
// time; plus one rule-set load, one manual unlock, one published rule-set
// version with its audit row, and one parked webhook notification. Every
// table gets a row (sqldump_test checks that), so every query has
// something to find.
var (
	sampleEventTS = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC) // event time
	sampleDecided = sampleEventTS.Add(1500 * time.Millisecond)     // 12:00:01.5
	sampleLockEnd = sampleEventTS.Add(30 * time.Minute)
	sampleUnlock  = sampleEventTS.Add(10 * time.Minute)
	// sampleSuppress and sampleLift are support's suppression of a rule
	// for acct-1 and its lift.
	sampleSuppress = sampleEventTS.Add(15 * time.Minute)
	sampleLift     = sampleEventTS.Add(20 * time.Minute)
	// sampleSpanFrom and sampleSpanTo bound the backtest reads: an hour
	// either side of the sample's event time, in Unix ms.
	sampleSpanFrom = sampleEventTS.Add(-time.Hour).UnixMilli()
	sampleSpanTo   = sampleEventTS.Add(time.Hour).UnixMilli()
)

func sampleDecision() *engine.Decision {
	return &engine.Decision{
		EventID: "ev-1", AccountID: "acct-1", EventType: "payment",
		EventTS: sampleEventTS.UnixMilli(), DecidedAt: sampleDecided,
		Action: rules.Lock, Score: 70, Reason: "rule",
		Matched: []engine.RuleHit{{RuleID: "scam-payee", Action: rules.Block, Score: 30},
			{RuleID: "brute-force-lock", Action: rules.Lock, Score: 40}},
		Shadow:         []engine.RuleHit{{RuleID: "new-device", Action: rules.Review}},
		Errored:        []engine.RuleHit{{RuleID: "bad-rule", Error: "division by zero"}},
		RuleSetVersion: "3-abcdef12",
		Features:       []engine.FeatureValue{{Name: "payments_1h", Value: 2}, {Name: "amount_24h", Value: 250.5}},
		Latency:        42 * time.Microsecond,
		LockUntil:      sampleLockEnd,
		Late:           true,
		LateFor:        []string{"device.id"},
		Alerts:         []engine.AlertMessage{{RuleID: "scam-payee", Message: "It's a scam: don't pay."}},
		Label:          "fraud",
		Raw:            []byte(`{"event_id":"ev-1","type":"payment","ts":1795521600000,"account_id":"acct-1"}`),
		Source:         engine.Source{Topic: "payments", Partition: 3, Offset: 1234},
		Candidate:      engine.CandidateOutcome{Version: "4-12345678", Action: rules.Block, Score: 30, Matched: []string{"scam-payee"}},
	}
}

func sampleHonestDecision() *engine.Decision {
	return &engine.Decision{
		EventID: "ev-2", AccountID: "acct-2", EventType: "payment",
		EventTS: sampleEventTS.UnixMilli(), DecidedAt: sampleDecided,
		Action: rules.Review, Score: 40, Reason: engine.ReasonScoreThreshold,
		RuleSetVersion: "3-abcdef12",
		Features:       []engine.FeatureValue{{Name: "payments_1h", Value: 1}},
		Latency:        17 * time.Microsecond,
		Raw:            []byte(`{"event_id":"ev-2","type":"payment","ts":1795521600000,"account_id":"acct-2"}`),
		Source:         engine.Source{Topic: "payments", Partition: 1, Offset: 99},
		Candidate:      engine.CandidateOutcome{Version: "4-12345678", Action: rules.Review, Score: 40},
	}
}

// sampleWrites are the write paths, each sending its tables' inserts.
var sampleWrites = []struct {
	name  string
	write func(context.Context, *Store) error
}{
	{"WriteDecisions", func(ctx context.Context, s *Store) error {
		return s.WriteDecisions(ctx, []*engine.Decision{sampleDecision(), sampleHonestDecision()})
	}},
	{"WriteRuleSet", func(ctx context.Context, s *Store) error {
		return s.WriteRuleSet(ctx, RuleSetRow{Version: "3-abcdef12", Seq: 3, Hash: "abcdef1234567890",
			LoadedAt: sampleEventTS, RuleCount: 12, Source: "dir:rules"})
	}},
	{"WriteLock", func(ctx context.Context, s *Store) error {
		return s.WriteLock(ctx, LockRow{AccountID: "acct-1", Action: "unlock", Reason: "owner verified",
			Actor: "support:agent-17", At: sampleUnlock, RequestID: "req-9"})
	}},
	// Support suppresses scam-payee for acct-1 for 72h, then lifts it.
	{"WriteSuppression", func(ctx context.Context, s *Store) error {
		return s.WriteSuppression(ctx, SuppressionRow{AccountID: "acct-1", RuleID: "scam-payee", Action: SuppressionSuppress,
			Until: sampleSuppress.Add(72 * time.Hour), Reason: "known payee of the customer", Actor: "api:alice",
			At: sampleSuppress, RequestID: "suppress-1"})
	}},
	{"WriteSuppression lift", func(ctx context.Context, s *Store) error {
		return s.WriteSuppression(ctx, SuppressionRow{AccountID: "acct-1", RuleID: "scam-payee", Action: SuppressionLift,
			Reason: "payee reported again", Actor: "api:bob", At: sampleLift, RequestID: "unsuppress-2"})
	}},
	{"WriteRuleSetVersion", func(ctx context.Context, s *Store) error {
		return s.WriteRuleSetVersion(ctx, RuleSetVersionRow{Seq: 3, Hash: "abcdef1234567890",
			Files: map[string]string{"auth.yaml": "- id: brute-force-lock"}, Author: "alice",
			Message: "block scam payees", PublishedAt: sampleEventTS, RuleCount: 12})
	}},
	{"WriteAudit", func(ctx context.Context, s *Store) error {
		return s.WriteAudit(ctx, AuditRow{At: sampleUnlock, Actor: "alice", Role: "analyst", Action: "publish",
			Object: "ruleset", OldVersion: "2-00000000", NewVersion: "3-abcdef12", Detail: "block scam payees"})
	}},
	{"WriteWebhookDeadLetter", func(ctx context.Context, s *Store) error {
		return s.WriteWebhookDeadLetter(ctx, WebhookDeadLetter{Subscriber: "sms", NotificationID: 7, Kind: "alert",
			AccountID: "acct-1", EventID: "ev-1", RuleID: "scam-payee", Body: `{"event_id":"ev-1"}`, Attempts: 5,
			LastError: "HTTP 503: busy", ParkedAt: sampleUnlock})
	}},
	// A second parked notification of sms, then resent: the marker row
	// replaces it, so the dead-letter reads below still find only id 7.
	{"WriteWebhookDeadLetter to be resent", func(ctx context.Context, s *Store) error {
		return s.WriteWebhookDeadLetter(ctx, sampleResent)
	}},
	{"MarkWebhookDeadLetterResent", func(ctx context.Context, s *Store) error {
		return s.MarkWebhookDeadLetterResent(ctx, sampleResent, sampleUnlock.Add(time.Minute), "admin-token")
	}},
	// The API-managed subscriber crm, paused at version 2 (its version 1
	// is written after it, and loses), and old, removed.
	{"WriteWebhookSubscriber", func(ctx context.Context, s *Store) error {
		return s.WriteWebhookSubscriber(ctx, WebhookSubscriberRow{Name: "crm", URL: "https://crm.internal/riskd",
			Kinds: []string{"alert", "lock"}, Secret: "00ff", Paused: true, Version: 2, UpdatedAt: sampleUnlock, UpdatedBy: "admin-token"})
	}},
	{"WriteWebhookSubscriber older version", func(ctx context.Context, s *Store) error {
		return s.WriteWebhookSubscriber(ctx, WebhookSubscriberRow{Name: "crm", URL: "https://old.internal/riskd",
			Secret: "00ff", Version: 1, UpdatedAt: sampleEventTS, UpdatedBy: "admin-token"})
	}},
	{"WriteWebhookSubscriber removal", func(ctx context.Context, s *Store) error {
		return s.WriteWebhookSubscriber(ctx, WebhookSubscriberRow{Name: "old", URL: "https://old.internal/riskd",
			Secret: "00ff", Deleted: true, Version: 5, UpdatedAt: sampleUnlock, UpdatedBy: "admin-token"})
	}},
	// WriteLabels' insert (its look-ups are reads, below): an analyst's
	// label of ev-1, later than the engine's, so it replaces it.
	{"WriteLabels", func(ctx context.Context, s *Store) error {
		return s.insertLabels(ctx, insert{table: "labels", columns: labelWriteColumns, rows: [][]any{{
			"ev-1", "acct-1", sampleEventTS, sampleEventTS.UnixMilli(), LabelFraud, "chargeback", sampleUnlock,
			"alice", "card holder disputed"}}})
	}},
	// The review case ev-2 opened (WriteDecisions): taken by bob, then
	// closed inconclusive, which writes no label (a fraud or not_fraud
	// close adds the label row WriteLabels' insert shows).
	{"TakeCase", func(ctx context.Context, s *Store) error { return s.writeCase(ctx, sampleCase(2)) }},
	{"CloseCase", func(ctx context.Context, s *Store) error { return s.writeCase(ctx, sampleCase(3)) }},
}

// sampleCase is ev-2's review case at version 2 (taken) or 3 (closed).
func sampleCase(version uint64) Case {
	c := openCase(sampleHonestDecision())
	c.Status, c.Assignee, c.TakenAt, c.Version = CaseTaken, "bob", sampleUnlock, version
	if version > 2 {
		c.Status, c.Outcome, c.Note, c.ClosedBy, c.ClosedAt = CaseClosed, CaseInconclusive, "owner not reachable", "bob", sampleUnlock.Add(time.Minute)
	}
	return c
}

// sampleStoredCase is sampleCase(3) as the case reads return it.
var sampleStoredCase = strings.Join([]string{
	CaseID("acct-2", "ev-2"), "ev-2", "acct-2", "payment", "1795521600000", "1795521601500", "40", "score_threshold", "[]",
	"3-abcdef12", "closed", "bob", "1795522200000", "inconclusive", "owner not reachable", "bob", "1795522260000", "3",
}, "\t")

// sampleResent is a parked notification of sms that a resend delivered.
var sampleResent = WebhookDeadLetter{Subscriber: "sms", NotificationID: 8, Kind: "lock", AccountID: "acct-1",
	EventID: "ev-1", RuleID: "brute-force-lock", Body: `{"event_id":"ev-1"}`, Attempts: 10,
	LastError: "HTTP 500", ParkedAt: sampleUnlock}

// sampleReads are the read paths with the rows the sample implies.
var sampleReads = []struct {
	name    string
	read    func(context.Context, *Store) error
	expect  []string
	ordered bool
}{
	{name: "CountDecisions", expect: []string{"2"},
		read: func(ctx context.Context, s *Store) error { _, err := s.CountDecisions(ctx, time.Time{}); return err }},
	{name: "CountDecisions since after the decision", expect: []string{"0"},
		read: func(ctx context.Context, s *Store) error {
			_, err := s.CountDecisions(ctx, sampleDecided.Add(time.Millisecond))
			return err
		}},
	{name: "ActionCounts", expect: []string{"lock\t1", "review\t1"},
		read: func(ctx context.Context, s *Store) error { _, err := s.ActionCounts(ctx, sampleEventTS); return err }},
	// ev-1 was late for its device: once under "" (late events), once by reason.
	{name: "LateCounts", expect: []string{"\t1", "device.id\t1"},
		read: func(ctx context.Context, s *Store) error { _, err := s.LateCounts(ctx, time.Time{}); return err }},
	{name: "TopRules", expect: []string{"brute-force-lock\t1", "scam-payee\t1"}, ordered: true,
		read: func(ctx context.Context, s *Store) error { _, err := s.TopRules(ctx, time.Time{}, 10); return err }},
	{name: "DecisionsPerMinute", ordered: true, expect: []string{"1795521600000\tlock\t1\t1", "1795521600000\treview\t1\t0"},
		read: func(ctx context.Context, s *Store) error {
			_, err := s.DecisionsPerMinute(ctx, sampleEventTS)
			return err
		}},
	{name: "RecentTopRules", expect: []string{"brute-force-lock\t1", "scam-payee\t1"}, ordered: true,
		read: func(ctx context.Context, s *Store) error {
			_, err := s.RecentTopRules(ctx, sampleEventTS, 10)
			return err
		}},
	{name: "RecentAlerts", expect: []string{"1"},
		read: func(ctx context.Context, s *Store) error { _, err := s.RecentAlerts(ctx, sampleEventTS); return err }},
	{name: "AlertList", ordered: true, expect: []string{"acct-1\tev-1\tscam-payee\tlock\tIt\\'s a scam: don\\'t pay.\t1795521600000\t2026-11-24 12:00:01"},
		read: func(ctx context.Context, s *Store) error { _, err := s.AlertList(ctx, sampleEventTS, 10); return err }},
	{name: "DecisionByEvent", expect: []string{sampleStoredDecision},
		read: func(ctx context.Context, s *Store) error { _, _, err := s.DecisionByEvent(ctx, "ev-1"); return err }},
	// ev-2 is a review with no rule matched, so the lock ev-1 is the example.
	{name: "ExampleDecision", expect: []string{sampleStoredDecision},
		read: func(ctx context.Context, s *Store) error { _, _, err := s.ExampleDecision(ctx, "ev-"); return err }},
	// The honest review (label '', from the join's default) is a false alarm.
	{name: "Detection", ordered: true, expect: []string{"\t1\t1\t1\t1", "fraud\t1\t1\t1\t1"},
		read: func(ctx context.Context, s *Store) error { _, err := s.Detection(ctx, "ev-"); return err }},
	{name: "DuplicateDecisionRows", expect: []string{"0"},
		read: func(ctx context.Context, s *Store) error { _, err := s.DuplicateDecisionRows(ctx); return err }},
	{name: "LockHistory", ordered: true, expect: []string{
		"unlock\towner verified\t1970-01-01 00:00:00\tsupport:agent-17\t1795522200000\treq-9",
		"lock\trule:brute-force-lock\t2026-11-24 12:30:00\tengine\t1795521600000\tev-1",
	}, read: func(ctx context.Context, s *Store) error { _, err := s.LockHistory(ctx, "acct-1", 10); return err }},
	{name: "RuleSetVersions", ordered: true, expect: []string{"3\tabcdef1234567890\talice\tblock scam payees\t1795521600000\t12"},
		read: func(ctx context.Context, s *Store) error { _, err := s.RuleSetVersions(ctx, 10); return err }},
	{name: "RuleSetVersion", expect: []string{
		`3	abcdef1234567890	{"auth.yaml":"- id: brute-force-lock"}	alice	block scam payees	1795521600000	12`},
		read: func(ctx context.Context, s *Store) error { _, _, err := s.RuleSetVersion(ctx, 3); return err }},
	{name: "AuditLog", ordered: true, expect: []string{
		"1795522200000\talice\tanalyst\tpublish\truleset\t2-00000000\t3-abcdef12\tblock scam payees"},
		read: func(ctx context.Context, s *Store) error { _, err := s.AuditLog(ctx, sampleEventTS, 10); return err }},
	{name: "CountWebhookDeadLetters", expect: []string{"1"},
		read: func(ctx context.Context, s *Store) error { _, err := s.CountWebhookDeadLetters(ctx, "sms"); return err }},
	{name: "CountWebhookDeadLetters of all subscribers", expect: []string{"1"},
		read: func(ctx context.Context, s *Store) error { _, err := s.CountWebhookDeadLetters(ctx, ""); return err }},
	// WriteDecisions' look-up of stored rows (recovery.go), one per table,
	// for both sample decisions and an id that was never stored.
	{name: "storedIDs events", expect: []string{"ev-1", "ev-2"}, read: sampleLookup(0)},
	{name: "storedIDs decisions", expect: []string{"ev-1", "ev-2"}, read: sampleLookup(1)},
	{name: "storedIDs alerts", expect: []string{"ev-1"}, read: sampleLookup(2)},
	{name: "storedIDs account_locks", expect: []string{"ev-1"}, read: sampleLookup(3)},
	{name: "storedIDs labels", expect: []string{"ev-1"}, read: sampleLookup(4)},
	{name: "WebhookDeadLetters", ordered: true, expect: []string{
		`sms	7	alert	acct-1	ev-1	scam-payee	{"event_id":"ev-1"}	5	HTTP 503: busy	2026-11-24 12:10:00`},
		read: func(ctx context.Context, s *Store) error { _, err := s.WebhookDeadLetters(ctx, "sms", 10); return err }},
	{name: "WebhookDeadLetter", expect: []string{
		`sms	7	alert	acct-1	ev-1	scam-payee	{"event_id":"ev-1"}	5	HTTP 503: busy	2026-11-24 12:10:00`},
		read: func(ctx context.Context, s *Store) error { _, _, err := s.WebhookDeadLetter(ctx, "sms", 7); return err }},
	{name: "WebhookDeadLetterCounts", ordered: true, expect: []string{"sms\t1"},
		read: func(ctx context.Context, s *Store) error { _, err := s.WebhookDeadLetterCounts(ctx); return err }},
	{name: "WebhookSubscribers", ordered: true, expect: []string{
		"crm\thttps://crm.internal/riskd\t['alert','lock']\t00ff\t1\t2\t2026-11-24 12:10:00\tadmin-token"},
		read: func(ctx context.Context, s *Store) error { _, err := s.WebhookSubscribers(ctx); return err }},
	// Backtest reads (backtest.go), over the hour around the sample.
	{name: "CountEvents", ordered: true, expect: []string{"60\t2"},
		read: func(ctx context.Context, s *Store) error {
			_, err := s.CountEvents(ctx, sampleSpanFrom, sampleSpanTo, 60_000)
			return err
		}},
	{name: "CountAccounts", expect: []string{"2"},
		read: func(ctx context.Context, s *Store) error {
			_, err := s.CountAccounts(ctx, sampleSpanFrom, sampleSpanTo)
			return err
		}},
	{name: "EarliestEvent", expect: []string{"2\t1795521600000"},
		read: func(ctx context.Context, s *Store) error { _, _, err := s.EarliestEvent(ctx); return err }},
	{name: "DecisionTimes", expect: []string{"2\t1795521601500\t1795521601500"},
		read: func(ctx context.Context, s *Store) error {
			_, _, _, err := s.DecisionTimes(ctx, sampleSpanFrom, sampleSpanTo)
			return err
		}},
	{name: "RecentEvents", ordered: true, expect: []string{
		`ev-1	1795521600000	{"event_id":"ev-1","type":"payment","ts":1795521600000,"account_id":"acct-1"}`},
		read: func(ctx context.Context, s *Store) error { _, err := s.RecentEvents(ctx, "acct-1", 10); return err }},
	{name: "ReplayEvents", ordered: true, expect: []string{
		`ev-2	1795521600000	{"event_id":"ev-2","type":"payment","ts":1795521600000,"account_id":"acct-2"}`,
		`ev-1	1795521600000	{"event_id":"ev-1","type":"payment","ts":1795521600000,"account_id":"acct-1"}`},
		read: func(ctx context.Context, s *Store) error {
			return s.ReplayEvents(ctx, sampleSpanFrom, sampleSpanTo, func(*ReplayEvent) error { return nil })
		}},
	// The text columns as one length-prefixed string, the values as the
	// hex of their bytes (see recordedText, recordedValues).
	{name: "ReplayDecisions", ordered: true, expect: []string{
		"ev-1\t1795521600000\t1795521601500\t4:lock10:3-abcdef122:10:scam-payee16:brute-force-lock1:10:new-device2:11:payments_1h10:amount_24h\t2:0000000000000040,0000000000506F40",
		"ev-2\t1795521600000\t1795521601500\t6:review10:3-abcdef120:0:1:11:payments_1h\t1:000000000000F03F"},
		read: func(ctx context.Context, s *Store) error {
			return s.ReplayDecisions(ctx, sampleSpanFrom, sampleSpanTo, func(ReplayDecision) error { return nil })
		}},
	{name: "ReplayLabels", ordered: true, expect: []string{"ev-1\t1795521600000\tfraud"},
		read: func(ctx context.Context, s *Store) error {
			return s.ReplayLabels(ctx, sampleSpanFrom, sampleSpanTo, func(ReplayLabel) error { return nil })
		}},
	// The engine's lock of ev-1 is not support's: only the unlock.
	{name: "SupportLocks", ordered: true, expect: []string{
		"acct-1\tunlock\towner verified\t1970-01-01 00:00:00\tsupport:agent-17\t1795522200000\treq-9"},
		read: func(ctx context.Context, s *Store) error {
			_, err := s.SupportLocks(ctx, sampleSpanFrom, sampleSpanTo, 10)
			return err
		}},
	{name: "SupportSuppressions", ordered: true, expect: []string{
		"acct-1\tscam-payee\tsuppress\t1795781700000\tknown payee of the customer\tapi:alice\t1795522500000\tsuppress-1",
		"acct-1\tscam-payee\tlift\t0\tpayee reported again\tapi:bob\t1795522800000\tunsuppress-2"},
		read: func(ctx context.Context, s *Store) error {
			_, err := s.SupportSuppressions(ctx, sampleSpanFrom, sampleSpanTo, 10)
			return err
		}},
	{name: "SuppressionHistory", ordered: true, expect: []string{
		"scam-payee\tlift\t0\tpayee reported again\tapi:bob\t1795522800000\tunsuppress-2",
		"scam-payee\tsuppress\t1795781700000\tknown payee of the customer\tapi:alice\t1795522500000\tsuppress-1"},
		read: func(ctx context.Context, s *Store) error {
			_, err := s.SuppressionHistory(ctx, "acct-1", 10)
			return err
		}},
	// Labels (labels.go): WriteLabels' look-ups of events by id and by
	// account range, and the label read back.
	{name: "WriteLabels look-up by event id", expect: []string{
		"ev-1\tacct-1\t2026-11-24 12:00:00\t1795521600000", "ev-2\tacct-2\t2026-11-24 12:00:00\t1795521600000"},
		read: func(ctx context.Context, s *Store) error {
			_, err := s.labelTargetsByID(ctx, []string{"ev-1", "ev-2", `ev-it's\3`})
			return err
		}},
	{name: "WriteLabels look-up of an account range", ordered: true, expect: []string{
		"ev-1\tacct-1\t2026-11-24 12:00:00\t1795521600000"},
		read: func(ctx context.Context, s *Store) error {
			_, err := s.labelTargetsInRange(ctx, "acct-1", sampleEventTS, sampleEventTS.Add(time.Minute), MaxLabelledEvents+1)
			return err
		}},
	{name: "LabelsByEvent", ordered: true, expect: []string{
		"ev-1\tacct-1\t1795521600000\tfraud\tchargeback\talice\tcard holder disputed\t2026-11-24 12:10:00"},
		read: func(ctx context.Context, s *Store) error {
			_, err := s.LabelsByEvent(ctx, []string{"ev-1", "ev-2"})
			return err
		}},
	// The review queue (cases.go): ev-2's case, closed at version 3, so
	// no open case is left (FINAL keeps the latest row only).
	{name: "Cases open", ordered: true, expect: []string{},
		read: func(ctx context.Context, s *Store) error {
			_, err := s.Cases(ctx, CaseFilter{Status: CaseOpen})
			return err
		}},
	{name: "Cases closed of an account after a cursor", ordered: true, expect: []string{sampleStoredCase},
		read: func(ctx context.Context, s *Store) error {
			_, err := s.Cases(ctx, CaseFilter{Status: CaseClosed, AccountID: "acct-2", Limit: 10,
				Before: CaseCursor{EventTS: sampleEventTS.UnixMilli() + 1, ID: CaseID("acct-9", "ev-9")}})
			return err
		}},
	{name: "Case", ordered: true, expect: []string{sampleStoredCase},
		read: func(ctx context.Context, s *Store) error {
			_, _, err := s.Case(ctx, CaseID("acct-2", "ev-2"))
			return err
		}},
	// Rule statistics (stats.go) over the hour either side of the sample,
	// in 30-minute buckets: ev-1 (labelled fraud) is in bucket 2.
	{name: "RuleHitBuckets", ordered: true, expect: []string{
		"brute-force-lock\t0\t3-abcdef12\t2\t1\t1\t0\t1795521600000\t1795521600000",
		"new-device\t1\t3-abcdef12\t2\t1\t1\t0\t1795521600000\t1795521600000",
		"scam-payee\t0\t3-abcdef12\t2\t1\t1\t0\t1795521600000\t1795521600000"},
		read: func(ctx context.Context, s *Store) error {
			_, err := s.RuleHitBuckets(ctx, sampleStatsPeriod)
			return err
		}},
	{name: "DecisionMixes", ordered: true, expect: []string{"3-abcdef12\tpayment\tlock\t1\t1\t0", "3-abcdef12\tpayment\treview\t1\t0\t0"},
		read: func(ctx context.Context, s *Store) error {
			_, err := s.DecisionMixes(ctx, sampleStatsPeriod)
			return err
		}},
	// The candidate (candidate.go): ev-1 locked live, blocked by the
	// candidate; ev-2 sent to review by both.
	{name: "CandidateReport matrix", ordered: true, expect: []string{"lock\tblock\t1\t['ev-1']", "review\treview\t1\t['ev-2']"},
		read: func(ctx context.Context, s *Store) error {
			_, err := s.candidateCells(ctx, "4-12345678", sampleEventTS)
			return err
		}},
	{name: "CandidateReport rule counts", ordered: true, expect: []string{"scam-payee\t1"},
		read: func(ctx context.Context, s *Store) error {
			_, err := s.candidateRules(ctx, "4-12345678", sampleEventTS)
			return err
		}},
	{name: "ShadowHitMixes", ordered: true, expect: []string{"new-device\t3-abcdef12\tpayment\tlock\t1"},
		read: func(ctx context.Context, s *Store) error {
			_, err := s.ShadowHitMixes(ctx, sampleStatsPeriod)
			return err
		}},
	// The account timeline and decision search (timeline.go), over the
	// hour either side of the sample: acct-1's decision, alert, the
	// engine's lock and support's unlock, and the analyst's label.
	{name: "Timeline decisions", ordered: true, expect: []string{sampleStoredDecision},
		read: func(ctx context.Context, s *Store) error {
			_, err := s.searchDecisions(ctx, DecisionQuery{AccountID: "acct-1", From: sampleSpanStart, To: sampleSpanEnd}, 11)
			return err
		}},
	{name: "Timeline alerts", ordered: true, expect: []string{"ev-1\t1795521600000\tscam-payee\tIt\\'s a scam: don\\'t pay.\tlock"},
		read: func(ctx context.Context, s *Store) error {
			_, err := s.timelineAlerts(ctx, sampleTimeline(Cursor{}), 11)
			return err
		}},
	{name: "Timeline locks", ordered: true, expect: []string{
		"unlock\treq-9\t1795522200000\towner verified\t1970-01-01 00:00:00\tsupport:agent-17",
		"lock\tev-1\t1795521600000\trule:brute-force-lock\t2026-11-24 12:30:00\tengine"},
		read: func(ctx context.Context, s *Store) error {
			_, err := s.timelineLocks(ctx, sampleTimeline(Cursor{}), 11)
			return err
		}},
	{name: "Timeline locks after the unlock", ordered: true, expect: []string{
		"lock\tev-1\t1795521600000\trule:brute-force-lock\t2026-11-24 12:30:00\tengine"},
		read: func(ctx context.Context, s *Store) error {
			_, err := s.timelineLocks(ctx, sampleTimeline(Cursor{TS: sampleUnlock.UnixMilli(), Kind: KindUnlock, A: "req-9"}), 11)
			return err
		}},
	{name: "Timeline labels", ordered: true, expect: []string{
		"ev-1\t1795521600000\tfraud\tchargeback\talice\tcard holder disputed\t2026-11-24 12:10:00"},
		read: func(ctx context.Context, s *Store) error {
			_, err := s.timelineLabels(ctx, sampleTimeline(Cursor{}), 11)
			return err
		}},
	{name: "Timeline suppressions", ordered: true, expect: []string{
		"lift\tunsuppress-2\t1795522800000\tscam-payee\tpayee reported again\t0\tapi:bob",
		"suppress\tsuppress-1\t1795522500000\tscam-payee\tknown payee of the customer\t1795781700000\tapi:alice"},
		read: func(ctx context.Context, s *Store) error {
			_, err := s.timelineSuppressions(ctx, sampleTimeline(Cursor{}), 11)
			return err
		}},
	{name: "Timeline suppressions after the lift", ordered: true, expect: []string{
		"suppress\tsuppress-1\t1795522500000\tscam-payee\tknown payee of the customer\t1795781700000\tapi:alice"},
		read: func(ctx context.Context, s *Store) error {
			_, err := s.timelineSuppressions(ctx, sampleTimeline(Cursor{TS: sampleLift.UnixMilli(), Kind: KindLift, A: "unsuppress-2"}), 11)
			return err
		}},
	// ev-1 is the lock that a shadow rule also matched.
	{name: "SearchDecisions by rule and action", ordered: true, expect: []string{sampleStoredDecision},
		read: func(ctx context.Context, s *Store) error {
			_, err := s.SearchDecisions(ctx, DecisionQuery{Rule: "new-device", Action: "lock", From: sampleSpanStart, To: sampleSpanEnd, Limit: 10})
			return err
		}},
	// ev-1 is late for device.id; ev-2 is not.
	{name: "SearchDecisions of late events", ordered: true, expect: []string{sampleStoredDecision},
		read: func(ctx context.Context, s *Store) error {
			_, err := s.SearchDecisions(ctx, DecisionQuery{Late: true, From: sampleSpanStart, To: sampleSpanEnd, Limit: 10})
			return err
		}},
	// ev-1 and ev-2 share a millisecond; acct-2's comes first, so after it, ev-1.
	{name: "SearchDecisions after a cursor", ordered: true, expect: []string{sampleStoredDecision},
		read: func(ctx context.Context, s *Store) error {
			_, err := s.SearchDecisions(ctx, DecisionQuery{From: sampleSpanStart, To: sampleSpanEnd, Limit: 10,
				Before: Cursor{TS: sampleEventTS.UnixMilli(), Kind: KindDecision, A: "acct-2", B: "ev-2"}})
			return err
		}},
	// One decision and one lock row of acct-1, each read by key, one row at most.
	{name: "AccountKnown", expect: []string{"2"},
		read: func(ctx context.Context, s *Store) error { _, err := s.AccountKnown(ctx, "acct-1"); return err }},
}

// sampleSpanStart and sampleSpanEnd bound the timeline reads: the hour
// either side of the sample events.
var sampleSpanStart, sampleSpanEnd = sampleEventTS.Add(-time.Hour), sampleEventTS.Add(time.Hour)

// sampleTimeline is acct-1's timeline over the sample span, after c.
func sampleTimeline(c Cursor) TimelineQuery {
	return TimelineQuery{AccountID: "acct-1", From: sampleSpanStart, To: sampleSpanEnd, Before: c}
}

// sampleStatsPeriod is the hour either side of the sample events, in
// 30-minute buckets.
var sampleStatsPeriod = StatsPeriod{From: sampleEventTS.Add(-time.Hour), To: sampleEventTS.Add(time.Hour), Bucket: 30 * time.Minute}

// sampleLookup asks table decisionTables[i] for the sample decisions' ids
// and one never stored, whose quote and backslash must arrive escaped.
func sampleLookup(i int) func(context.Context, *Store) error {
	return func(ctx context.Context, s *Store) error {
		never := sampleDecision()
		never.EventID = `ev-it's\3`
		var keys []rowKey
		for _, d := range []*engine.Decision{sampleDecision(), sampleHonestDecision(), never} {
			keys = append(keys, keyOf(d))
		}
		_, err := s.storedIDs(ctx, decisionTables[i].name, decisionTables[i].timeColumn, keys)
		return err
	}
}

// sampleStoredDecision is sampleDecision as DecisionByEvent reads it back.
var sampleStoredDecision = strings.Join([]string{
	"ev-1", "acct-1", "payment", "2026-11-24 12:00:00", "1795521600000", "1795521601500", "lock", "70", "rule",
	"['scam-payee','brute-force-lock']", "['new-device']", "['bad-rule']", "['division by zero']", "3-abcdef12",
	"['payments_1h','amount_24h']", "[2,250.5]", "42", "2026-11-24 12:30:00", "1", "['device.id']", "1", "payments", "3", "1234",
}, "\t")

// recorder is a driver.Conn that records statements instead of sending
// them. Reads return no rows; inserts are rendered as VALUES.
type recorder struct {
	driver.Conn // nil: any method not below panics, so a new kind of call is noticed

	mu    sync.Mutex
	stmts []Statement
	named int // stmts[:named] have their Kind and Name
	err   error
}

func (r *recorder) add(sql string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stmts = append(r.stmts, Statement{SQL: sql})
}

func (r *recorder) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
	}
}

// name labels the next unlabelled statements, in order; too few is an
// error, reported by statements, as are statements left unlabelled.
func (r *recorder) name(kind string, names ...string) {
	if got := len(r.stmts) - r.named; got < len(names) {
		r.fail(fmt.Errorf("chstore: sql dump: %d statements left where %v expected %d", got, names, len(names)))
		return
	}
	for _, n := range names {
		r.stmts[r.named].Kind, r.stmts[r.named].Name = kind, n
		r.named++
	}
}

// nameInserts labels the inserts one write sent; they ran concurrently,
// so they are put in table order first.
func (r *recorder) nameInserts(write string) {
	fresh := r.stmts[r.named:]
	slices.SortFunc(fresh, func(a, b Statement) int { return strings.Compare(a.SQL, b.SQL) })
	for i := range fresh {
		table, _, _ := strings.Cut(strings.TrimPrefix(fresh[i].SQL, "INSERT INTO "), " ")
		fresh[i].Kind, fresh[i].Name = "insert", write+": insert "+table[strings.LastIndex(table, ".")+1:]
	}
	r.named = len(r.stmts)
}

func (r *recorder) expect(rows []string, ordered bool) {
	if r.named > 0 {
		r.stmts[r.named-1].Expect, r.stmts[r.named-1].Ordered = rows, ordered
	}
}

func (r *recorder) statements() ([]Statement, error) {
	if r.err == nil && r.named != len(r.stmts) {
		r.err = fmt.Errorf("chstore: sql dump: %d statements not accounted for", len(r.stmts)-r.named)
	}
	return r.stmts, r.err
}

func (r *recorder) Exec(_ context.Context, query string, args ...any) error {
	sql, err := bindArgs(query, args)
	if err != nil {
		return err
	}
	r.add(sql)
	return nil
}

func (r *recorder) Query(_ context.Context, query string, args ...any) (driver.Rows, error) {
	sql, err := bindArgs(query, args)
	if err != nil {
		return nil, err
	}
	r.add(sql)
	return noRows{}, nil
}

func (r *recorder) QueryRow(_ context.Context, query string, args ...any) driver.Row {
	sql, err := bindArgs(query, args)
	if err == nil {
		r.add(sql)
	}
	return zeroRow{err: err}
}

func (r *recorder) PrepareBatch(_ context.Context, query string, _ ...driver.PrepareBatchOption) (driver.Batch, error) {
	return &recordedBatch{rec: r, query: query}, nil
}

// noRows is an empty result.
type noRows struct{ driver.Rows }

func (noRows) Next() bool   { return false }
func (noRows) Err() error   { return nil }
func (noRows) Close() error { return nil }

// zeroRow leaves the scan destinations as they are (zero).
type zeroRow struct {
	driver.Row
	err error
}

func (z zeroRow) Err() error        { return z.err }
func (z zeroRow) Scan(...any) error { return z.err }

// recordedBatch collects rows and records one INSERT ... VALUES on Send.
// Rows come whole (Append) or a column at a time (Column); the columns
// are turned into rows at Send.
type recordedBatch struct {
	driver.Batch
	rec   *recorder
	query string
	rows  []string
	cols  [][]any
	sent  bool
}

func (b *recordedBatch) Column(i int) driver.BatchColumn {
	for len(b.cols) <= i {
		b.cols = append(b.cols, nil)
	}
	return recordedColumn{b: b, i: i}
}

// recordedColumn collects one column's values.
type recordedColumn struct {
	b *recordedBatch
	i int
}

// Append takes a slice of the column's values.
func (c recordedColumn) Append(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice {
		return fmt.Errorf("chstore: sql dump: column %d: want a slice, got %T", c.i, v)
	}
	for k := range rv.Len() {
		c.b.cols[c.i] = append(c.b.cols[c.i], rv.Index(k).Interface())
	}
	return nil
}

func (c recordedColumn) AppendRow(v any) error {
	c.b.cols[c.i] = append(c.b.cols[c.i], v)
	return nil
}

func (b *recordedBatch) Append(v ...any) error {
	vals := make([]string, len(v))
	for i, x := range v {
		lit, err := literal(x)
		if err != nil {
			return err
		}
		vals[i] = lit
	}
	b.rows = append(b.rows, "("+strings.Join(vals, ", ")+")")
	return nil
}

func (b *recordedBatch) Send() error {
	if len(b.cols) > 0 {
		for r := range b.cols[0] {
			row := make([]any, len(b.cols))
			for i, col := range b.cols {
				if len(col) != len(b.cols[0]) {
					return fmt.Errorf("chstore: sql dump: column %d holds %d values, column 0 %d", i, len(col), len(b.cols[0]))
				}
				row[i] = col[r]
			}
			if err := b.Append(row...); err != nil {
				return err
			}
		}
		b.cols = nil
	}
	b.sent = true
	b.rec.add(b.query + " VALUES " + strings.Join(b.rows, ", "))
	return nil
}

// Columns has none: the dump records values, not the driver's columns.
func (b *recordedBatch) Columns() []column.Interface { return nil }

func (b *recordedBatch) IsSent() bool { return b.sent }
func (b *recordedBatch) Abort() error { b.sent = true; return nil }
func (b *recordedBatch) Close() error { return nil }

// bindArgs substitutes positional ? placeholders (outside quotes) with
// literals, as clickhouse-go's client-side binding does for these types.
func bindArgs(query string, args []any) (string, error) {
	var out strings.Builder
	var quote byte
	n := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == '\\' && i+1 < len(query) {
				out.WriteByte(c)
				i++
				c = query[i]
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '`' || c == '"':
			quote = c
		case c == '?':
			if n >= len(args) {
				return "", fmt.Errorf("chstore: sql dump: more placeholders than arguments in %q", query)
			}
			lit, err := literal(args[n])
			if err != nil {
				return "", err
			}
			out.WriteString(lit)
			n++
			continue
		}
		out.WriteByte(c)
	}
	if n != len(args) {
		return "", fmt.Errorf("chstore: sql dump: %d arguments for %d placeholders in %q", len(args), n, query)
	}
	return out.String(), nil
}

// literal writes a Go value as a ClickHouse SQL literal. time.Time is
// DateTime, whose wire form is Unix seconds, so it is written as that
// number: the same instant whatever the server's time zone.
func literal(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return quoteString(x), nil
	case int:
		return strconv.Itoa(x), nil
	case int32:
		return strconv.FormatInt(int64(x), 10), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint8:
		return strconv.FormatUint(uint64(x), 10), nil
	case uint32:
		return strconv.FormatUint(uint64(x), 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case float64:
		switch {
		case math.IsNaN(x):
			return "nan", nil
		case math.IsInf(x, 1):
			return "inf", nil
		case math.IsInf(x, -1):
			return "-inf", nil
		}
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case time.Time:
		return strconv.FormatInt(x.Unix(), 10), nil
	case []string:
		parts := make([]string, len(x))
		for i, s := range x {
			parts[i] = quoteString(s)
		}
		return "[" + strings.Join(parts, ", ") + "]", nil
	case clickhouse.GroupSet: // a tuple, as the driver writes it
		parts := make([]string, len(x.Value))
		for i, v := range x.Value {
			var err error
			if parts[i], err = literal(v); err != nil {
				return "", err
			}
		}
		return "(" + strings.Join(parts, ", ") + ")", nil
	case []float64:
		parts := make([]string, len(x))
		for i, f := range x {
			parts[i], _ = literal(f)
		}
		return "[" + strings.Join(parts, ", ") + "]", nil
	}
	return "", fmt.Errorf("chstore: sql dump: no literal for %T", v)
}

// quoteString quotes s as clickhouse-go does.
func quoteString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`).Replace(s) + "'"
}
