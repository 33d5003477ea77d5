package chstore

import (
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
)

// TestReserveTextKeepsTheRows: the rows appended after a reservation are
// the texts, in order, with nothing of the placeholder left; a column
// that already holds rows is left as it is.
func TestReserveTextKeepsTheRows(t *testing.T) {
	texts := []string{"", `{"id":"e1"}`, strings.Repeat("ß", 300), "x"}
	for _, held := range []int{0, 1} {
		c, err := column.Type("String").Column("raw", nil)
		if err != nil {
			t.Fatal(err)
		}
		for range held {
			if err := c.AppendRow("before"); err != nil {
				t.Fatal(err)
			}
		}
		if err := reserveText(c, texts); err != nil {
			t.Fatal(err)
		}
		if c.Rows() != held {
			t.Fatalf("holding %d rows, %d after the reservation", held, c.Rows())
		}
		if _, err := c.Append(texts); err != nil {
			t.Fatal(err)
		}
		for i, want := range texts {
			if got := c.Row(held+i, false).(string); got != want {
				t.Fatalf("row %d = %q, want %q", held+i, got, want)
			}
		}
	}
	if z := zeroText(10); z != strings.Repeat("\x00", 10) {
		t.Fatalf("zeroText(10) = %q", z)
	}
}
