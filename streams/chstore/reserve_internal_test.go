package chstore

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
)

// TestReserveTextKeepsTheRows: the rows appended after a reservation are
// the texts, in order, with nothing of the placeholder left; a column
// that already holds rows, or is not a String column, is left as it is.
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
	other, err := column.Type("Array(String)").Column("a", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := reserveText(other, texts); err != nil || other.Rows() != 0 {
		t.Fatalf("a column not of type String: reserveText = %v, %d rows", err, other.Rows())
	}
	if z := zeroText(10); z != strings.Repeat("\x00", 10) {
		t.Fatalf("zeroText(10) = %q", z)
	}
}

// TestReserveTextSizesTheRows: after the reservation, appending the
// texts grows neither the bytes nor the positions. What is left is the
// driver's own per call: the slice boxed into an interface, and its null
// flags. Without the reservation the same append grows both buffers a
// dozen times over.
func TestReserveTextSizesTheRows(t *testing.T) {
	texts := make([]string, 5000)
	for i := range texts {
		texts[i] = strings.Repeat("t", i%300)
	}
	appendAllocs := func(reserve bool) float64 {
		var err error
		n := testing.AllocsPerRun(5, func() {
			var c column.Interface
			if c, err = column.Type("String").Column("raw", nil); err != nil {
				return
			}
			if reserve {
				if err = reserveText(c, texts); err != nil {
					return
				}
			}
			_, err = c.Append(texts)
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if got := appendAllocs(true) - appendAllocs(false); got >= 0 {
		t.Fatalf("a reservation saved %.0f allocations, want some", -got)
	}
	// Each run appends to a column of its own, fresh and reserved: a
	// column appended to before keeps its capacity, so the first append
	// (AllocsPerRun's warm-up) must not size the ones measured.
	const runs = 5
	reserved := make([]column.Interface, runs+1)
	for i := range reserved {
		c, err := column.Type("String").Column("raw", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := reserveText(c, texts); err != nil {
			t.Fatal(err)
		}
		reserved[i] = c
	}
	var appendErr error
	next := 0
	grew := testing.AllocsPerRun(runs, func() {
		_, appendErr = reserved[next].Append(texts)
		next++
	})
	if appendErr != nil {
		t.Fatal(appendErr)
	}
	if grew > 2 {
		t.Fatalf("appending %d reserved texts allocated %.0f times, want at most 2", len(texts), grew)
	}
}

// TestNativeArraysMatchTheDriver: an array column decoded from the
// Native bytes appendNativeArrays writes holds, and sends, exactly what
// the driver's own Append makes of the same rows; a column that holds
// rows already, or of another type, is left to the driver.
func TestNativeArraysMatchTheDriver(t *testing.T) {
	long := strings.Repeat("ü", 200) // longer than 127 bytes: a two-byte length
	for _, tc := range []struct {
		typ  column.Type
		rows any
	}{
		{stringArrayType, [][]string{{"a", "b"}, {}, {""}, {long, "x", ""}, nil, {"velocity"}}},
		{stringArrayType, [][]string{{}}},
		{floatArrayType, [][]float64{{1.5, 0}, {}, {math.Inf(1), -0.0, math.NaN(), math.MaxFloat64}, {42}}},
	} {
		t.Run(string(tc.typ), func(t *testing.T) {
			driverCol, err := tc.typ.Column("a", nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := driverCol.Append(tc.rows); err != nil {
				t.Fatal(err)
			}
			for range 3 { // the pooled decoder, reused
				native, err := tc.typ.Column("a", nil)
				if err != nil {
					t.Fatal(err)
				}
				done, err := appendNativeArrays(native, tc.rows)
				if err != nil || !done {
					t.Fatalf("appendNativeArrays = %v, %v", done, err)
				}
				if native.Rows() != driverCol.Rows() {
					t.Fatalf("%d rows, the driver's %d", native.Rows(), driverCol.Rows())
				}
				var want, got proto.Buffer
				driverCol.Encode(&want)
				native.Encode(&got)
				if !bytes.Equal(got.Buf, want.Buf) {
					t.Fatalf("sends %x, the driver's column %x", got.Buf, want.Buf)
				}
			}
		})
	}
	t.Run("left to the driver", func(t *testing.T) {
		held, _ := column.Type(stringArrayType).Column("a", nil)
		if err := held.AppendRow([]string{"before"}); err != nil {
			t.Fatal(err)
		}
		other, _ := column.Type("Array(Int64)").Column("a", nil)
		for _, c := range []column.Interface{held, other} {
			if done, err := appendNativeArrays(c, [][]string{{"x"}}); done || err != nil {
				t.Fatalf("%s with %d rows: appendNativeArrays = %v, %v", c.Type(), c.Rows(), done, err)
			}
		}
		if held.Rows() != 1 || other.Rows() != 0 {
			t.Fatalf("rows changed: %d, %d", held.Rows(), other.Rows())
		}
	})
}

// TestReserveRowsSizesTheColumns: after reserveRows, appending the rows
// to a fixed-width column of the tables' types allocates nothing for its
// values, and the column holds exactly the rows appended.
func TestReserveRowsSizesTheColumns(t *testing.T) {
	const n = 5000
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	ints, int32s, uints, times := make([]int64, n), make([]int32, n), make([]uint64, n), make([]time.Time, n)
	for i := range n {
		ints[i], int32s[i], uints[i], times[i] = int64(i)*-7, int32(i), uint64(i)<<40, at.Add(time.Duration(i)*time.Second)
	}
	for _, tc := range []struct {
		typ  column.Type
		rows any
		last any
	}{
		{"Int64", ints, ints[n-1]},
		{"Int32", int32s, int32s[n-1]},
		{"UInt64", uints, uints[n-1]},
		{"DateTime", times, times[n-1]},
	} {
		t.Run(string(tc.typ), func(t *testing.T) {
			if !sizedFirst[tc.typ] {
				t.Fatalf("%s is not in sizedFirst", tc.typ)
			}
			const runs = 5
			reserved := make([]column.Interface, runs+1)
			for i := range reserved {
				c, err := tc.typ.Column("c", &column.ServerContext{Timezone: time.UTC})
				if err != nil {
					t.Fatal(err)
				}
				reserveRows(c, n)
				if c.Rows() != 0 {
					t.Fatalf("%d rows after the reservation, want 0", c.Rows())
				}
				reserved[i] = c
			}
			var appendErr error
			next := 0
			grew := testing.AllocsPerRun(runs, func() {
				_, appendErr = reserved[next].Append(tc.rows)
				next++
			})
			if appendErr != nil {
				t.Fatal(appendErr)
			}
			if grew > 2 {
				t.Fatalf("appending %d reserved rows allocated %.0f times, want at most 2", n, grew)
			}
			c := reserved[0]
			if c.Rows() != n {
				t.Fatalf("%d rows, want %d", c.Rows(), n)
			}
			got := c.Row(n-1, false)
			if tt, ok := got.(time.Time); ok {
				if !tt.Equal(tc.last.(time.Time)) {
					t.Fatalf("last row %v, want %v", got, tc.last)
				}
			} else if got != tc.last {
				t.Fatalf("last row %v, want %v", got, tc.last)
			}
		})
	}
}
