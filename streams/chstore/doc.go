// Package chstore is riskd's ClickHouse store: it writes every decision,
// the raw event behind it, alerts, account locks, review cases, rule-set
// versions and ground-truth labels, and answers the reads of the analysts'
// and support's tools (backtest, rule statistics, account timeline,
// decision search, review queue, candidate report) and of the demo summary.
//
// It speaks ClickHouse's native protocol (port 9000) through
// github.com/ClickHouse/clickhouse-go/v2, and its SQL runs on ClickHouse 18.16
// (Debian's package) as well as on current releases: inserts name their
// columns, and the schema uses DateTime plus an Int64 millisecond column
// instead of DateTime64, and Array pairs instead of Map.
//
// Writes are idempotent by event_id. Every table is a ReplacingMergeTree whose
// sorting key starts with the account and the event time and ends with the
// event id, so a replayed event (same account, same time, same id) collapses
// into one row, and every read uses FINAL. That is what lets WriteDecisions
// retry a batch without bookkeeping: resending rows that already landed is
// harmless.
//
// So that a row is also stored once as read without FINAL, a Store opens in
// a recovery window (recovery.go): until Config.RecoveryWindow decisions in
// a row turned out new, WriteDecisions first asks each table which of the
// batch's event ids it holds and leaves those rows out, which is what an
// earlier run stored but did not commit before it crashed. A retry asks the
// same of the tables it resends.
//
// WriteDecisions never drops a decision: it retries with exponential backoff
// until the batch is stored or the caller's context ends, so an unreachable
// ClickHouse slows the pipeline (and with it the Kafka offset commits)
// instead of losing data.
//
//	st, err := chstore.Open(ctx, chstore.Config{Addr: "127.0.0.1:9000", Database: "riskd"})
//	if err != nil {
//		return err
//	}
//	defer st.Close()
//	err = st.WriteDecisions(ctx, decisions) // blocks while ClickHouse is down
//
// The schema is created by numbered migrations (migrations.go) recorded in the
// schema_migrations table; append new ones, never edit applied ones.
//
// The Store is also package notify's dead-letter store: WebhookDeadLetter
// is notify.DeadLetter, so the dependency points from the store to the
// notifier, never back.
package chstore
