package chstore_test

import (
	"context"
	"slices"
	"testing"

	"riskd/internal/chtest"
	"riskd/streams/chstore"
)

func TestMigrationsRunTwiceAreHarmlessAndRecorded(t *testing.T) {
	cfg := chtest.Config(t)
	for range 2 {
		st, err := chstore.Open(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		st.Close()
	}
	conn := rawConn(t, cfg.Addr)
	rows, err := conn.Query(context.Background(), "SELECT version, name FROM `"+cfg.Database+"`.schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var versions []uint32
	for rows.Next() {
		var v uint32
		var name string
		if err := rows.Scan(&v, &name); err != nil {
			t.Fatal(err)
		}
		versions = append(versions, v)
	}
	// Without FINAL: a second run that re-recorded a migration would show
	// up here as a repeated version.
	if want := []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 101, 102, 103}; !slices.Equal(versions, want) {
		t.Errorf("schema_migrations versions = %v, want %v", versions, want)
	}
	for _, table := range []string{"events", "decisions", "alerts", "account_locks", "rulesets", "labels", "ruleset_versions", "audit_log", "webhook_dead_letters", "cases", "account_suppressions"} {
		countFinal(t, conn, cfg.Database, table) // fails the test if missing
	}
}

// TestMigrationsRunAgainBeforeRecordedAreHarmless: an instance that reads
// schema_migrations before another one records what it applied runs every
// migration again, the ALTER TABLE ... ADD COLUMN ones included (no IF NOT
// EXISTS on ClickHouse 18.16). Losing the records makes Open do just that.
func TestMigrationsRunAgainBeforeRecordedAreHarmless(t *testing.T) {
	cfg := chtest.Config(t)
	st, err := chstore.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	conn := rawConn(t, cfg.Addr)
	if err := conn.Exec(t.Context(), "DROP TABLE `"+cfg.Database+"`.schema_migrations"); err != nil {
		t.Fatal(err)
	}
	st, err = chstore.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("migrations run again: %v", err)
	}
	st.Close()
	if n := countFinal(t, conn, cfg.Database, "schema_migrations"); n != 15 {
		t.Fatalf("%d migrations recorded after the second run, want 15", n)
	}
}

func TestOpenRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  chstore.Config
		want string
	}{
		{"an empty address is refused", chstore.Config{}, "chstore: config: clickhouse.addr: empty; want host:port of the native protocol, e.g. 127.0.0.1:9000"},
		{"a database name that is not an identifier is refused", chstore.Config{Addr: "x:9000", Database: "a-b; DROP"},
			`chstore: config: clickhouse.database: "a-b; DROP" is not a plain identifier (letters, digits, _)`},
		{"retry_min above retry_max is refused", chstore.Config{Addr: "x:9000", RetryMin: 2, RetryMax: 1},
			"chstore: config: clickhouse.retry_min: 2ns is above retry_max 1ns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := chstore.Open(t.Context(), tt.cfg)
			if err == nil || err.Error() != tt.want {
				t.Errorf("Open error = %v\nwant %s", err, tt.want)
			}
		})
	}
}
