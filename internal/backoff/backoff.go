// Package backoff is the one retry delay riskd uses for every store, topic
// and subscriber it retries against, so that all of them back off alike.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Delay is the wait after the attempt-th failed attempt (attempt >= 1): a
// ceiling of lo*2^(attempt-1) capped at hi, and a uniformly random wait
// between lo and that ceiling. The jitter spreads many writers retrying
// against one recovering server; the floor lo keeps a retry from hammering
// it at once.
func Delay(lo, hi time.Duration, attempt int) time.Duration {
	if hi < lo {
		hi = lo
	}
	ceil := lo
	for i := 1; i < attempt && ceil < hi; i++ {
		ceil *= 2
	}
	ceil = min(ceil, hi)
	if ceil <= lo {
		return max(lo, 0)
	}
	return lo + rand.N(ceil-lo+1)
}
