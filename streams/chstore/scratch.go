package chstore

import (
	"sync"
	"time"
)

// columnScratch holds the typed slices a batch's columns are built in
// (appendEventColumns, appendDecisionColumns). The driver copies a
// column's values when they are appended, so the slices serve batch after
// batch: an output batch of 5,000 decisions built them afresh for 2.4 MB.
type columnScratch struct {
	strings []string
	times   []time.Time
	int64s  []int64
	int32s  []int32
	uint64s []uint64
	uint8s  []uint8
	lists   [][]string
	floats  [][]float64
	// elems and values back the array columns' rows (see
	// appendDecisionColumns).
	elems  []string
	values []float64
}

var columnScratches = sync.Pool{New: func() any { return new(columnScratch) }}

// getColumnScratch returns an empty scratch; give it back with
// putColumnScratch once the columns are appended.
func getColumnScratch() *columnScratch { return columnScratches.Get().(*columnScratch) }

// putColumnScratch empties s, dropping its references to the batch's
// decisions so they can be collected, and pools it.
func putColumnScratch(s *columnScratch) {
	s.strings = clearTo0(s.strings)
	s.times = s.times[:0] // holds no reference (a time.Time's location is shared)
	s.int64s, s.int32s, s.uint64s, s.uint8s = s.int64s[:0], s.int32s[:0], s.uint64s[:0], s.uint8s[:0]
	s.lists, s.floats = clearTo0(s.lists), clearTo0(s.floats)
	s.elems, s.values = clearTo0(s.elems), s.values[:0]
	columnScratches.Put(s)
}

// clearTo0 zeroes s's elements and returns it emptied.
func clearTo0[T any](s []T) []T {
	clear(s)
	return s[:0]
}

// take returns n zeroed elements at the end of *buf, as a slice of their
// own (capped: appending to it never writes over the next one's).
func take[T any](buf *[]T, n int) []T {
	at := len(*buf)
	*buf = append(*buf, make([]T, n)...)
	return (*buf)[at : at+n : at+n]
}

// room returns *buf emptied, non-nil and with room for n elements.
func room[T any](buf *[]T, n int) []T {
	if *buf == nil || cap(*buf) < n {
		*buf = make([]T, 0, n)
	}
	return (*buf)[:0]
}
