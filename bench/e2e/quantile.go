package main

import (
	"math"
	"slices"
	"time"
)

// quantile returns the q-quantile of sorted values by the nearest-rank
// method (the smallest value with at least q of the values at or below
// it); zero for no values.
func quantile[T int64 | time.Duration](sorted []T, q float64) T {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func sortDurations(d []time.Duration) { slices.Sort(d) }

// ms converts a duration to fractional milliseconds for the results.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
