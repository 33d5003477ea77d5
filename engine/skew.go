package engine

import (
	"fmt"
	"time"

	"riskd/event"
)

// DefaultMaxFutureSkew is Config.MaxFutureSkew's default: an event may be
// dated at most 5 minutes ahead of the wall clock, room enough for the
// clock drift of honest phones and producers.
const DefaultMaxFutureSkew = 5 * time.Minute

// ErrFutureEvent is Score's error for an event whose ts is more than
// Config.MaxFutureSkew ahead of the wall clock. It is refused, not clamped:
// its ts would otherwise push the windows' event time forward (making the
// account's honest events late) and put the event where it did not happen.
// It unwraps to an *event.Error whose one problem names ts and says how far
// ahead it is, so it is handled like any invalid event: the stream sends
// it to the dead-letter topic with that reason. The decide API answers it
// with 422, not the 400 of an event it cannot read: the event is well
// formed, only its date is refused. Nothing of the Scorer's state is
// touched, so the same event id can be sent again with a sane ts.
type ErrFutureEvent struct {
	// Err is the *event.Error (Field "ts") that Error and Unwrap return.
	Err *event.Error
	// TS is the refused event time; Ahead is how far it is ahead of the
	// clock, MaxSkew the bound it broke.
	TS             time.Time
	Ahead, MaxSkew time.Duration
}

func (e *ErrFutureEvent) Error() string { return e.Err.Error() }

func (e *ErrFutureEvent) Unwrap() error { return e.Err }

// checkFutureSkew refuses tsMs when it is more than maxSkew ahead of now;
// a negative maxSkew turns the check off.
func checkFutureSkew(tsMs int64, now time.Time, maxSkew time.Duration) error {
	if maxSkew < 0 {
		return nil
	}
	ts := time.UnixMilli(tsMs).UTC()
	ahead := ts.Sub(now)
	if ahead <= maxSkew {
		return nil
	}
	ahead = ahead.Round(time.Millisecond)
	reason := fmt.Sprintf("%s is %s ahead of the clock; at most %s is allowed (engine.max_future_skew)",
		ts.Format(time.RFC3339Nano), ahead, maxSkew)
	return &ErrFutureEvent{
		Err: &event.Error{Problems: []event.Problem{{Field: "ts", Reason: reason}}},
		TS:  ts, Ahead: ahead, MaxSkew: maxSkew,
	}
}
