package chstore

// The schema, as numbered migrations. Each is one statement (the native
// protocol runs one per query) with {db} standing for the database name.
// ClickHouse has no transactional DDL, so every migration must be safe to
// run twice (IF NOT EXISTS): two instances starting together may both apply
// it before either records it. Where ClickHouse 18.16 has no IF NOT EXISTS
// (ALTER TABLE ... ADD COLUMN), migrationDone says how to see that the
// migration's change is there, and migrate takes a failure for success
// when it is. Append new migrations; never edit or reorder applied ones.
//
// Rules every table follows, for ClickHouse 18.16 and current releases alike:
// DateTime (seconds) plus an Int64 *_ms column where milliseconds matter,
// Array(String)/Array(Float64) pairs instead of Map, no TTL, no
// LowCardinality, monthly partitions on the row's time so old months can be
// dropped whole, and ReplacingMergeTree keyed so that writing the same fact
// twice leaves one row after FINAL.

// migrationSchemaMigrations records which migrations ran. It is created
// before the others and is itself not numbered.
const migrationSchemaMigrations = `CREATE TABLE IF NOT EXISTS {db}.schema_migrations (
	version    UInt32,
	name       String,
	applied_at DateTime
) ENGINE = ReplacingMergeTree() ORDER BY version`

// migrationEvents: events holds each raw event as received, for replay and
// backtest. Keyed (account_id, event_time, event_id) because analysts and
// backtests read one account's history in time order, and a replayed event
// carries the same account and time, so it lands next to its first copy and
// collapses with it.
const migrationEvents = `CREATE TABLE IF NOT EXISTS {db}.events (
	event_id         String,
	account_id       String,
	type             String,
	event_time       DateTime,
	event_ts_ms      Int64,
	raw              String,
	source_topic     String,
	source_partition Int32,
	source_offset    Int64
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(event_time)
ORDER BY (account_id, event_time, event_id)`

// migrationDecisions: decisions holds one row per decided event. Same key as
// events, for the same reasons. The version column `original` is 1 for a
// real decision and 0 for a repeat the engine marked duplicate, so when both
// reach the table the original decision survives the merge; among equal
// versions the last insert wins, which makes a plain retry harmless.
// lock_until is 1970-01-01 00:00:00 when there is no lock.
const migrationDecisions = `CREATE TABLE IF NOT EXISTS {db}.decisions (
	event_id         String,
	account_id       String,
	event_type       String,
	event_time       DateTime,
	event_ts_ms      Int64,
	decided_at       DateTime,
	decided_at_ms    Int64,
	action           String,
	score            Int32,
	reason           String,
	matched_rules    Array(String),
	shadow_rules     Array(String),
	errored_rules    Array(String),
	rule_errors      Array(String),
	ruleset_version  String,
	feature_names    Array(String),
	feature_values   Array(Float64),
	latency_us       UInt64,
	lock_until       DateTime,
	late             UInt8,
	original         UInt8,
	source_topic     String,
	source_partition Int32,
	source_offset    Int64
) ENGINE = ReplacingMergeTree(original)
PARTITION BY toYYYYMM(event_time)
ORDER BY (account_id, event_time, event_id)`

// migrationAlerts: alerts holds one row per user-facing message of a
// decision. rule_id sits before event_id in the key because one event can
// raise alerts from several rules; each (event, rule) pair is one alert.
const migrationAlerts = `CREATE TABLE IF NOT EXISTS {db}.alerts (
	event_id        String,
	account_id      String,
	event_time      DateTime,
	event_ts_ms     Int64,
	rule_id         String,
	message         String,
	action          String,
	decided_at      DateTime,
	ruleset_version String
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(event_time)
ORDER BY (account_id, event_time, rule_id, event_id)`

// migrationAccountLocks: account_locks is the audit trail of locks and
// unlocks, by the engine (a decision that newly locked an account; time is
// the event's time, event_id the deciding event) or by support and the API
// (time is when it was done, event_id a request id). ts_ms and action are in
// the key so that two different actions on one account within a second stay
// two rows, while a retried write of the same action collapses.
const migrationAccountLocks = `CREATE TABLE IF NOT EXISTS {db}.account_locks (
	account_id      String,
	time            DateTime,
	ts_ms           Int64,
	action          String,
	reason          String,
	until           DateTime,
	actor           String,
	event_id        String,
	ruleset_version String
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(time)
ORDER BY (account_id, time, ts_ms, action, event_id)`

// migrationRulesets: rulesets records each load of a rule-set version (a
// restart that loads the same version again adds a row: the load history
// says which version was live when). Keyed by seq and hash, then the load
// time in ms, so a retried write of one load collapses.
const migrationRulesets = `CREATE TABLE IF NOT EXISTS {db}.rulesets (
	version      String,
	seq          UInt64,
	hash         String,
	loaded_at    DateTime,
	loaded_at_ms Int64,
	rule_count   UInt32,
	source       String
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(loaded_at)
ORDER BY (seq, hash, loaded_at_ms)`

// migrationLabels: labels holds ground truth per event (confirmed fraud,
// false positive, or the traffic generator's label) for backtest precision.
// Keyed like events so a label joins its event and decision on the same key;
// the version column labelled_at lets a later label replace an earlier one.
const migrationLabels = `CREATE TABLE IF NOT EXISTS {db}.labels (
	event_id    String,
	account_id  String,
	event_time  DateTime,
	event_ts_ms Int64,
	label       String,
	source      String,
	labelled_at DateTime
) ENGINE = ReplacingMergeTree(labelled_at)
PARTITION BY toYYYYMM(event_time)
ORDER BY (account_id, event_time, event_id)`

// migration is one numbered schema step.
type migration struct {
	Version uint32
	Name    string
	SQL     string
}

// migrations run in order; Version is the position, starting at 1.
var migrations = []migration{
	{1, "create events", migrationEvents},
	{2, "create decisions", migrationDecisions},
	{3, "create alerts", migrationAlerts},
	{4, "create account_locks", migrationAccountLocks},
	{5, "create rulesets", migrationRulesets},
	{6, "create labels", migrationLabels},
	{7, "create webhook_dead_letters", migrationWebhookDeadLetters},
	{8, "add decisions.late_for", migrationDecisionsLateFor},
	{9, "add labels.labelled_by and note", migrationLabelsByNote},
	{10, "add decisions.candidate_*", migrationDecisionsCandidate},
	{11, "create cases", migrationCases},
	{12, "create account_suppressions", migrationAccountSuppressions},
}

// migrationDone holds, by version, for each migration whose statement
// cannot say IF NOT EXISTS on ClickHouse 18.16, a query (with {db}, and
// {dbname} for the name as a string literal) that returns a row once the
// migration's change is there: when the statement fails (another
// instance applied it first), migrate asks, and a row means done.
var migrationDone = map[uint32]string{
	8:  columnExists("decisions", "late_for"),
	9:  columnExists("labels", "note"),
	10: columnExists("decisions", "candidate_rules"),
}

// migrationDecisionsLateFor: late_for names the entity groups a late
// decision's event was too late for (engine.Decision.LateFor: "account",
// "device.id", ...), next to late. Rows written before it read [].
// ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS, hence migrationDone.
const migrationDecisionsLateFor = `ALTER TABLE {db}.decisions ADD COLUMN late_for Array(String) AFTER late`

// columnExists is a migrationDone query: the column is in the table.
func columnExists(table, column string) string {
	return "SELECT name FROM system.columns WHERE database = {dbname} AND table = '" + table + "' AND name = '" + column + "'"
}

// migrationWebhookDeadLetters: webhook_dead_letters holds each notification
// a webhook subscriber could not take after the last attempt (or refused for
// good), with the body exactly as it would have been signed, so an operator
// can look at it and redeliver. Keyed by subscriber and account first
// because that is how parked notifications are read ("what did subscriber X
// miss for account Y"), then parked_at and the notification id, so a retried
// write of the same parking collapses.
const migrationWebhookDeadLetters = `CREATE TABLE IF NOT EXISTS {db}.webhook_dead_letters (
	subscriber      String,
	notification_id UInt64,
	kind            String,
	account_id      String,
	event_id        String,
	rule_id         String,
	body            String,
	attempts        UInt32,
	last_error      String,
	parked_at       DateTime
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(parked_at)
ORDER BY (subscriber, account_id, parked_at, notification_id)`

// migrationLabelsByNote: labelled_by is the API token name of who labelled
// an event (empty for the engine's own labels, source "event"), note the
// labeller's free text, for labels recorded through POST /v1/labels. Rows
// written before it read empty strings. One ALTER adds both, so both are there once
// note is (migrationDone).
const migrationLabelsByNote = `ALTER TABLE {db}.labels ADD COLUMN labelled_by String AFTER labelled_at, ADD COLUMN note String AFTER labelled_by`

// migrationDecisionsCandidate: what the candidate rule set (a shadow
// publish) decided beside the live one (engine.Decision.Candidate): its
// version, action, score and matched active rules, so the candidate report
// compares the two over stored decisions. Rows written before it, and
// decisions made with no candidate, read ”, ”, 0 and []. One ALTER adds
// all four, so all are there once candidate_rules is (migrationDone).
const migrationDecisionsCandidate = `ALTER TABLE {db}.decisions ADD COLUMN candidate_version String AFTER late_for, ` +
	`ADD COLUMN candidate_action String AFTER candidate_version, ADD COLUMN candidate_score Int32 AFTER candidate_action, ` +
	`ADD COLUMN candidate_rules Array(String) AFTER candidate_score`

// migrationCases: cases is the review queue, one case per decision with
// action review (opened by WriteDecisions with the decision), and each
// change of its state (taken, closed) as a new row of the whole case with
// a higher version. ReplacingMergeTree(version) keeps the latest state
// under FINAL, and a replayed decision's open row (version 1) never undoes
// a later change. Keyed like decisions, so the open row and its changes
// collapse (they carry the event's account and time) and a case lands next
// to its decision; case_id (derived from account and event id, CaseID) is
// not in the key: reads by id scan the table, which holds reviews only.
// The *_ms times are 0 until set; status is open, taken or closed.
const migrationCases = `CREATE TABLE IF NOT EXISTS {db}.cases (
	case_id         String,
	event_id        String,
	account_id      String,
	event_type      String,
	event_time      DateTime,
	event_ts_ms     Int64,
	opened_at_ms    Int64,
	score           Int32,
	reason          String,
	matched_rules   Array(String),
	ruleset_version String,
	status          String,
	assignee        String,
	taken_at_ms     Int64,
	outcome         String,
	note            String,
	closed_by       String,
	closed_at_ms    Int64,
	version         UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(event_time)
ORDER BY (account_id, event_time, event_id)`

// migrationAccountSuppressions: account_suppressions is the audit trail
// of support's per-account rule suppressions (suppress a rule for one
// account until a time) and their early lifts. time and ts_ms are when
// support acted; until and until_ms when a suppression ends (the epoch
// for a lift). Keyed like account_locks: two actions on one account and
// rule within a second stay two rows, a retried write (same request id)
// collapses.
const migrationAccountSuppressions = `CREATE TABLE IF NOT EXISTS {db}.account_suppressions (
	account_id String,
	time       DateTime,
	ts_ms      Int64,
	rule_id    String,
	action     String,
	until      DateTime,
	until_ms   Int64,
	reason     String,
	actor      String,
	request_id String
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(time)
ORDER BY (account_id, time, ts_ms, rule_id, action, request_id)`
