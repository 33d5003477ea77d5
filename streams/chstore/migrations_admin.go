package chstore

// The analysts' admin tables: rule-set history and the audit log. They are
// numbered from 101 so that they never collide with the core schema's
// migrations (migrations.go), which grow from 1; migrate applies the core
// list first, then this one. The same rules hold as in migrations.go:
// one idempotent statement each, SQL that runs on ClickHouse 18.16 and
// current releases, append only.

// migrationRuleSetVersions: ruleset_versions holds each published rule-set
// version with its files (a JSON object of path to content), so any version
// can be shown or rolled back to. seq is unique per publish, so the table
// is keyed by seq alone and a retried write collapses; history reads go by
// seq. The table stays small (one row per publish), hence no partitions.
const migrationRuleSetVersions = `CREATE TABLE IF NOT EXISTS {db}.ruleset_versions (
	seq             UInt64,
	hash            String,
	files           String,
	author          String,
	message         String,
	published_at    DateTime,
	published_at_ms Int64,
	rule_count      UInt32
) ENGINE = ReplacingMergeTree()
ORDER BY seq`

// migrationAuditLog: audit_log holds one row per change an analyst or
// support agent made, or tried to make (a refused publish is audited too).
// Reads are "what happened lately", so the key starts with time; actor,
// action, object and the versions follow so that distinct changes within a
// millisecond stay distinct rows while a retried write collapses.
const migrationAuditLog = `CREATE TABLE IF NOT EXISTS {db}.audit_log (
	at          DateTime,
	at_ms       Int64,
	actor       String,
	role        String,
	action      String,
	object      String,
	old_version String,
	new_version String,
	detail      String
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(at)
ORDER BY (at, at_ms, actor, action, object, old_version, new_version)`

// migrationWebhookSubscribers: webhook_subscribers holds the alert
// subscribers managed through the API (those of the config file are not
// stored), one row per change, the highest version of a name winning; a
// removal is a row with deleted = 1 (a tombstone), so a restart loads what
// the API last said. secret is the HMAC key riskd signs with: it has to be
// readable by riskd, so it is stored as is and protected like the
// database's other contents; the API never shows it after creation or
// rotation. Small (at most a few hundred rows), hence no partitions.
const migrationWebhookSubscribers = `CREATE TABLE IF NOT EXISTS {db}.webhook_subscribers (
	name       String,
	url        String,
	kinds      Array(String),
	secret     String,
	paused     UInt8,
	deleted    UInt8,
	version    UInt64,
	updated_at DateTime,
	updated_by String
) ENGINE = ReplacingMergeTree(version)
ORDER BY name`

// adminMigrations run after migrations; Version starts at 101.
var adminMigrations = []migration{
	{101, "create ruleset_versions", migrationRuleSetVersions},
	{102, "create audit_log", migrationAuditLog},
	{103, "create webhook_subscribers", migrationWebhookSubscribers},
}
