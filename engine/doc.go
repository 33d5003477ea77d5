// Package engine turns raw events into decisions. A Scorer is one shard: it
// owns a decoder, the shard's feature store, a rule evaluator, the account
// locks, the alert throttle and a bounded memory of recent event ids, and
// runs the whole per-event path on one goroutine. An Engine runs N Scorers
// and routes each account to one of them by hash, so an account's events
// are decided in the order they arrive and every path (stream or decide
// API) sees the same state.
//
// The decision policy: the most severe action among matched active rules,
// raised by the rule set's score thresholds; shadow rules are recorded,
// never acted on; a rule that fails at run time counts as not matched. A
// locked account's events are refused with reason account_locked until the
// lock ends on the wall clock (Config.Now, never the events' ts) or support
// lifts it. An event dated more than Config.MaxFutureSkew ahead of the wall
// clock is refused (ErrFutureEvent) before it touches any state; events
// dated in the past are not. A rule alerts an account at most once per
// Config.AlertThrottle of event time; the repeats are kept in the decision
// as ThrottledAlerts and sent nowhere.
package engine
