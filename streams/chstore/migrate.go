package chstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// sqlFor puts the database name into a statement. The name was checked
// against identRE, so splicing it is safe; backquotes keep reserved words
// usable as names.
func sqlFor(db, stmt string) string {
	stmt = strings.ReplaceAll(stmt, "{dbname}", "'"+db+"'")
	return strings.ReplaceAll(stmt, "{db}", "`"+db+"`")
}

// migrate creates the database if missing and applies, in order, every
// migration not yet recorded in schema_migrations. Running it again is a
// no-op; running it concurrently from two processes is safe because every
// migration is idempotent.
func migrate(ctx context.Context, conn driver.Conn, db string) error {
	if err := conn.Exec(ctx, sqlFor(db, "CREATE DATABASE IF NOT EXISTS {db}")); err != nil {
		return fmt.Errorf("create database %s: %w", db, err)
	}
	if err := conn.Exec(ctx, sqlFor(db, migrationSchemaMigrations)); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	applied, err := appliedMigrations(ctx, conn, db)
	if err != nil {
		return err
	}
	for _, m := range append(migrations[:len(migrations):len(migrations)], adminMigrations...) {
		if applied[m.Version] {
			continue
		}
		if err := applyMigration(ctx, conn, db, m); err != nil {
			return fmt.Errorf("migration %d (%s): %w", m.Version, m.Name, err)
		}
		if err := recordMigration(ctx, conn, db, m); err != nil {
			return fmt.Errorf("record migration %d (%s): %w", m.Version, m.Name, err)
		}
	}
	return nil
}

// applyMigration runs m. When m fails and has a migrationDone query that
// finds its change there (another instance applied it after this one read
// schema_migrations), that is success.
func applyMigration(ctx context.Context, conn driver.Conn, db string, m migration) error {
	err := conn.Exec(ctx, sqlFor(db, m.SQL))
	done, ok := migrationDone[m.Version]
	if err == nil || !ok || ctx.Err() != nil {
		return err
	}
	rows, qerr := conn.Query(ctx, sqlFor(db, done))
	if qerr != nil {
		return err
	}
	defer rows.Close()
	if rows.Next() {
		return nil
	}
	return err
}

// appliedMigrations reads the set of recorded migration numbers.
func appliedMigrations(ctx context.Context, conn driver.Conn, db string) (map[uint32]bool, error) {
	rows, err := conn.Query(ctx, sqlFor(db, "SELECT version FROM {db}.schema_migrations FINAL"))
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	applied := map[uint32]bool{}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		applied[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return applied, nil
}

// recordMigration inserts one schema_migrations row. It uses a batch, not
// Exec with INSERT ... VALUES: against ClickHouse 18.16, clickhouse-go's
// Exec of an INSERT with inline VALUES never returns (the old server waits
// for a data block the client does not send), so every insert in this
// package goes through PrepareBatch.
func recordMigration(ctx context.Context, conn driver.Conn, db string, m migration) error {
	b, err := conn.PrepareBatch(ctx, sqlFor(db, "INSERT INTO {db}.schema_migrations (version, name, applied_at)"))
	if err != nil {
		return err
	}
	if err := b.Append(m.Version, m.Name, time.Now()); err != nil {
		return err
	}
	return b.Send()
}
