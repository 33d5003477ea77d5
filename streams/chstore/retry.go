package chstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"riskd/internal/backoff"
)

// errEncode marks an error from building a batch in memory (a value the
// column cannot hold). Sending the same rows again would fail the same way,
// so it is the one error that is not retried.
var errEncode = errors.New("encode row")

// retryable decides which write errors are worth another attempt. Network
// errors, timeouts and server exceptions all are: the server may be
// restarting, out of disk, or missing a table an operator is restoring, and
// giving up would drop decisions. Only encoding errors (errEncode) are not.
func retryable(err error) bool {
	return !errors.Is(err, errEncode)
}

// retry runs attempt until it succeeds, fails with a non-retryable error,
// or ctx ends. Each failed attempt is counted and logged; the wait between
// attempts grows exponentially from RetryMin to RetryMax with jitter so
// that many writers do not hammer a recovering server in step.
func (s *Store) retry(ctx context.Context, op string, attempt func(ctx context.Context) error) error {
	for n := 1; ; n++ {
		actx, cancel := context.WithTimeout(ctx, s.cfg.AttemptTimeout)
		err := attempt(actx)
		cancel()
		if err == nil {
			return nil
		}
		err = redact(err, s.cfg.Password)
		if ctx.Err() != nil {
			return fmt.Errorf("chstore: %s: gave up after %d attempts: %w (last error: %w)", op, n, context.Cause(ctx), err)
		}
		if !retryable(err) {
			return fmt.Errorf("chstore: %s: %w", op, err)
		}
		s.retries.Add(1)
		if s.cfg.OnRetry != nil {
			s.cfg.OnRetry(op, err)
		}
		wait := backoff.Delay(s.cfg.RetryMin, s.cfg.RetryMax, n)
		s.log.Warn("chstore: write failed, will retry",
			"op", op, "addr", s.cfg.Addr, "database", s.cfg.Database,
			"attempt", n, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("chstore: %s: gave up after %d attempts: %w (last error: %w)", op, n, context.Cause(ctx), err)
		case <-t.C:
		}
	}
}

// Ping checks once, without retrying, that the server answers, within ctx
// and at most AttemptTimeout: for a caller that watches the store's health
// on its own schedule while no write tells it (streams' readiness). The
// error names the address, never the password.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.AttemptTimeout)
	defer cancel()
	if err := s.conn.Ping(ctx); err != nil {
		return fmt.Errorf("chstore: ping %s: %w", s.cfg.Addr, redact(err, s.cfg.Password))
	}
	return nil
}
