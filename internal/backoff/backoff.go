// Package backoff is the one retry delay riskd uses for every store, topic
// and subscriber it retries against, so that all of them back off alike.
package backoff

import (
	"context"
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

// Until calls try until it succeeds, waiting Delay(lo, hi, n) after the
// n-th failure, and gives up when ctx ends or limit has passed since the
// first call; it then returns the last failure. It serves the short waits
// after a start, such as a topic created a moment ago whose partition has
// no leader yet.
func Until(ctx context.Context, lo, hi, limit time.Duration, try func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for attempt := 1; ; attempt++ {
		err := try(ctx)
		if err == nil {
			return nil
		}
		t := time.NewTimer(Delay(lo, hi, attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}
