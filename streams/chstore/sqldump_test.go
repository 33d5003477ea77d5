package chstore

import (
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestSQLDumpCoversEveryTableAndMethod keeps chstore.SQLDump complete, so
// scripts/chdb-check keeps checking all of riskd's SQL: every table the
// migrations create gets a sample insert, and every exported Store method
// (all of which send SQL, except the few listed) is exercised by a sample.
func TestSQLDumpCoversEveryTableAndMethod(t *testing.T) {
	stmts, err := SQLDump("riskd_sqlcheck")
	if err != nil {
		t.Fatal(err)
	}
	created := regexp.MustCompile("^CREATE TABLE IF NOT EXISTS `riskd_sqlcheck`\\.(\\w+)")
	inserted := map[string]bool{}
	for _, st := range stmts {
		if st.Kind == "insert" {
			table, _, _ := strings.Cut(strings.TrimPrefix(st.SQL, "INSERT INTO `riskd_sqlcheck`."), " ")
			inserted[table] = true
		}
		if st.Kind == "query" && st.Expect == nil && !strings.Contains(st.Name, "fresh database") {
			t.Errorf("query %s has no expected result", st.Name)
		}
	}
	var tables int
	for _, st := range stmts {
		if m := created.FindStringSubmatch(st.SQL); m != nil {
			tables++
			if !inserted[m[1]] {
				t.Errorf("table %s has no sample insert: add a write to sampleWrites in sqldump.go", m[1])
			}
		}
	}
	if tables < 7 {
		t.Fatalf("only %d CREATE TABLE statements in the dump", tables)
	}

	noSQL := []string{"Close", "Database", "Ping", "Recover", "Recovering", "Retries", "SkippedRows"}
	var sampled []string
	for _, w := range sampleWrites {
		sampled = append(sampled, w.name)
	}
	for _, r := range sampleReads {
		name, _, _ := strings.Cut(r.name, " ")
		sampled = append(sampled, name)
	}
	st := reflect.TypeOf(&Store{})
	for i := range st.NumMethod() {
		m := st.Method(i).Name
		if !slices.Contains(noSQL, m) && !slices.Contains(sampled, m) {
			t.Errorf("Store.%s has no sample in sqldump.go, so scripts/chdb-check does not check its SQL", m)
		}
	}
}

func TestBindArgsWritesLiteralsOutsideQuotes(t *testing.T) {
	got, err := bindArgs("SELECT '?', x FROM t WHERE a = ? AND b IN ? LIMIT ?",
		[]any{"it's", []string{"a", `b\c`}, uint64(5)})
	if err != nil {
		t.Fatal(err)
	}
	want := `SELECT '?', x FROM t WHERE a = 'it\'s' AND b IN ['a', 'b\\c'] LIMIT 5`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if _, err := bindArgs("SELECT ?", nil); err == nil {
		t.Fatal("a placeholder without an argument was accepted")
	}
}
