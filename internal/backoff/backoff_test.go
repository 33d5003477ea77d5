package backoff

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestDelayStaysWithinBoundsAndGrows(t *testing.T) {
	lo, hi := 10*time.Millisecond, 200*time.Millisecond
	for n := 1; n <= 20; n++ {
		ceil := min(lo<<min(n-1, 30), hi)
		for range 100 {
			if d := Delay(lo, hi, n); d < lo || d > ceil {
				t.Fatalf("Delay(attempt %d) = %v, want within [%v, %v]", n, d, lo, ceil)
			}
		}
	}
}

func TestDelayWithZeroOrInvertedBounds(t *testing.T) {
	if d := Delay(0, 0, 3); d != 0 {
		t.Errorf("Delay(0, 0) = %v, want 0", d)
	}
	if d := Delay(50*time.Millisecond, time.Millisecond, 5); d != 50*time.Millisecond {
		t.Errorf("Delay with hi < lo = %v, want lo", d)
	}
}

func TestUntilRetriesUntilSuccess(t *testing.T) {
	calls := 0
	err := Until(context.Background(), time.Millisecond, time.Millisecond, time.Minute, func(context.Context) error {
		calls++
		if calls < 4 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls != 4 {
		t.Fatalf("Until = %v after %d calls, want nil after 4", err, calls)
	}
}

func TestUntilGivesUpWithTheLastError(t *testing.T) {
	calls := 0
	err := Until(context.Background(), time.Millisecond, time.Millisecond, 20*time.Millisecond, func(context.Context) error {
		calls++
		return fmt.Errorf("attempt %d", calls)
	})
	if err == nil || err.Error() != fmt.Sprintf("attempt %d", calls) {
		t.Fatalf("Until = %v after %d calls, want the last attempt's error", err, calls)
	}
}
