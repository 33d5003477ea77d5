// Package backtest replays the events stored in ClickHouse for a period
// through candidate rules, with the live engine's own code path (an
// engine.Scorer) and features rebuilt as they were at each event, and
// reports what the candidate would have decided against what the rules
// that were live decide on the same replay, against what was recorded,
// and against the labels. It reads ClickHouse only; no live state is
// touched.
//
// # Two replays: candidate and baseline
//
// A replay cannot always reproduce the recorded decisions (see Order
// below: a live engine that decided in arrival order saw other entity
// windows than a replay in event-time order). Compared with the record,
// a candidate would then show "changed" decisions for rules that did not
// change, and the analyst could not tell the effect of their change from
// the replay's noise. So the same events go, in the same order and on the
// same simulated clock, through a second Scorer, the baseline, running the
// rule sets that were live: for each event the version its recorded
// decision names ("SEQ-HASH8"), read from the version history
// (chstore.Store.RuleSetVersion), compiled once with today's features,
// checked against the recorded hash, and switched where the record
// switches (an event with no recorded decision keeps the version before;
// the first events, the version of the first recorded decision). The
// changed decisions and each rule's new and lost hits compare the
// candidate with the baseline: the rule change alone. The reproduction
// compares the baseline with the record: how far the replay can be
// trusted, with a warning that says why when it is not exact.
//
// A version that cannot be replayed (not in the history, other files
// under its number, or one that no longer compiles with today's features)
// is listed with its reason; for the events it decided the candidate is
// compared with the recorded decision instead, as before the baseline
// existed, and a warning says so. The baseline keeps running the set it
// had over those events, so that its state goes on.
//
// The two replays share one feature state as long as they can: the
// features of an event depend on the events alone, except that an event
// of a locked account is not observed. So one twin Scorer
// (engine.NewTwinScorer) observes each event once and runs both sets on
// its features, each set with its own locks, alert throttle and decided
// ids; while both sets have the same content (a backtest of the live set)
// the baseline's decision is a copy. The first time one set has the
// event's account locked and the other not, the Scorer is split in two
// (a copy of the state) and each replay goes on alone, on a goroutine of
// its own; Report.SharedState says how many events were decided on one
// state. Beside the scorer run the reader, which joins events to
// decisions, labels and locks and decodes each event (off the scorer's
// goroutine, the replay's bottleneck), and an accumulator that counts
// each event once both replays have decided it (see pipeline.go).
//
// # How the replay matches the live engine
//
// Order. The live merger (streams/merge.go) hands the engine the buffered
// message with the smallest event time across all input partitions,
// breaking ties by topic, then partition (its inputs are sorted so), and
// reads each partition in offset order; the engine's turnstile makes its
// shards update the shared entity windows in that submission order, which
// one Scorer reproduces. The replay reads events ordered by event time,
// topic, partition, offset, then event id (chstore.ReplayOrder): the
// merger's order whenever each partition's events are in event-time order,
// which producers keying by account and stamping events as they happen
// give. Events that reached a partition out of time order, decided live
// while caught up (no backlog to merge), or sent through the decide API
// can have been decided in arrival order instead; features then may
// differ, and the report says so (see Warnings below).
//
// Clock. Locks, lock expiry and decision time run on the engine's wall
// clock (engine.Config.Now). The replay sets it, per event, to the
// recorded decided_at of that event's decision, or to the event's own time
// when none is stored, and turns the future-skew check off. Locks and
// unlocks by support or the API (account_locks rows whose actor is not the
// engine) are applied at their time, between events, as the live lock
// service applied them on the account's shard.
//
// Warm-up. By default every stored event before the period is replayed
// first (counted, not reported), so profiles (events_seen, new_device;
// kept 90 days) and windows are what they were live. A shorter warm-up
// (Config.Warmup) is faster; the report then warns that reproduction is
// not guaranteed when older events are stored.
//
// Idle state. The live engine sweeps idle feature state on each shard
// every 65,536 of that shard's events, each replay Scorer every
// 65,536 events; sweeps drop only state no window can read any more, but
// an account profile idle for about profile_ttl can be kept by one and
// dropped by the other.
//
// Duplicates. An event stored twice (a replay after a restart writes it
// again) is replayed once, and its original decision is the one compared
// (told apart among the rows of one millisecond as they are read: faster
// than FINAL or LIMIT 1 BY event_id in the query, see chstore.ReplayEvents).
//
// # Joining decisions and labels
//
// Events, recorded decisions and labels are three streams read from
// ClickHouse concurrently, each ordered by event time. Decisions and
// labels are held per millisecond of event time (at most MaxRowsPerMs)
// and matched to the events by id, so memory does not grow with the
// period. ClickHouse is asked for spans of up to two million events,
// the first one small so scoring starts early, the next one sorted while
// the replay works through the one before (the events table is keyed by
// account, so each query scans what it touches: few large queries cost
// the server less than many small ones).
//
// # The report
//
// Per rule: hits as an active and as a shadow rule, split by label (fraud,
// not_fraud, unlabelled: chstore.LabelIsFraud), precision (fraud over all
// hits, unlabelled counted as good: a lower bound; and over labelled hits
// only), first and last hit, hits in Buckets time buckets, hits in the
// recorded decisions and in the baseline replay, and hits new or lost
// against the baseline. In total: decisions by action, candidate against
// baseline and recorded; the changed decisions (candidate against
// baseline) as a from->to matrix with up to MaxExamples event ids each;
// the events whose matched rules differ; fraud caught (challenge, block
// or lock) and good events hit (review or stronger) per event; attacks;
// and the fraudulent amount stopped. Reproduction: the baseline's
// decisions against the recorded ones (compared, identical, differing by
// recorded->replayed action with examples, whether exact) and the versions
// that could not be replayed.
//
// An attack is the fraud-labelled events of one account with one label,
// each less than 24 hours after the previous one; it is caught when any of
// its events got challenge, block or lock. The fraudulent amount is the
// sum of the amounts of fraud-labelled money-out events (payments, in any
// channel including transfer, and withdrawals), per currency; stopped is
// the part whose candidate action was challenge, block or lock.
//
// Warnings say why decisions can differ for reasons other than the rules:
// a baseline that does not reproduce the record (events decided in
// arrival order, state from before the period missing), versions that
// could not be replayed, events with no recorded decision or decisions
// with no stored event (outside retention), recorded rule-set versions
// other than the candidate's hash, a warm-up shorter than the stored
// history, recorded feature values that differ from the replayed ones (a
// feature definition, or the events before, changed), and events that
// could not be decided. A backtest of the rule set that was live over the
// period, with the full warm-up and decisions made in event-time order,
// reproduces the recorded decisions exactly: zero changed decisions, an
// exact reproduction and no warnings
// (TestTheLiveSetReproducesTheRecordedDecisions); when the live engine
// decided in arrival order the reproduction says so, and a candidate that
// only adds a shadow rule still changes nothing but that rule's hits
// (TestArrivalOrderNoiseIsNotAChange).
//
// # Example
//
//	rep, err := backtest.Run(ctx, backtest.Config{
//		Store: store, Features: set, Rules: candidate, Engine: liveEngineConfig,
//		From: from, To: to,
//	})
//	if err != nil { ... }
//	backtest.WriteText(os.Stdout, rep) // or WriteHTML, or encoding/json
package backtest
