package engine

import (
	"errors"
	"slices"
	"strings"
	"time"
	"unsafe"

	"riskd/event"
	"riskd/features"
	"riskd/internal/keyhash"
	"riskd/rules"
)

// ErrNoRules is returned by Score while no rule set has been loaded.
var ErrNoRules = errors.New("no rule set loaded")

// Scorer is one shard's state and the whole per-event path: decode, lock
// check, de-duplication, features, rules, alert throttle, policy. One
// goroutine owns it; nothing in it is safe for concurrent use.
type Scorer struct {
	// world is what the live rule set decides with; twin, set only on a
	// backtest's Scorer (see twin.go), is a second rule set's, deciding
	// every event on the same feature state.
	world
	twin *world
	// mirrored is set while the twin world's state is the live world's:
	// both have run rule sets of one content, so every decision was the
	// same; the twin's is then a copy, and its state is not kept until
	// the sets first differ (see unmirror).
	mirrored bool

	store       *features.Store
	set         *features.Set
	eval        *rules.Evaluator
	dec         event.Decoder
	fingerprint fingerprinter
	now         func() time.Time
	realClock   bool          // now is time.Now (Config.realClock)
	maxSkew     time.Duration // Config.MaxFutureSkew; negative: no check

	// candOf and candVersion cache the candidate's version string, as
	// world.versionOf does the live one's; candOutcome is its reused
	// outcome.
	candOf      *rules.RuleSet
	candVersion string
	candOutcome rules.Outcome

	values   features.Values
	observed uint64
	// borrowed is set while the Evaluator's event is a copy of one the
	// caller decoded (ScoreDecoded), whose slices must not be decoded into.
	borrowed bool

	// turns orders the shards' use of the shared entity windows; seq is
	// the current message's number in it, 0 once used (or for a message
	// without one), and shard this Scorer's index. Nil for a standalone
	// Scorer.
	turns *turnstile
	seq   uint64
	shard int
	// part is the Part of the message being scored (set by the shard).
	part Part

	// trial is set only on a Trial's Scorer: the feature values and
	// account given with the test event being scored (see trial.go).
	trial *trialOverride

	// suppressed holds the rules support suppressed per account (see
	// suppress.go): support's command, so one table for both worlds.
	suppressed *suppressTable
}

// world is the state one rule set decides with beside the feature state:
// the locks its rules set, the alerts it sent, the event ids it decided
// and what it decided them. Everything else about an event (its features
// above all) is a function of the events alone, as long as both worlds
// let the same events through their locks.
type world struct {
	rules    *rules.Holder
	locks    *lockTable
	throttle *alertThrottle
	dedupe   *dedupe
	// versionOf caches the formatted version of the set last loaded.
	versionOf *rules.RuleSet
	version   string
	outcome   rules.Outcome
	// tag is the input partition of the event being decided, plus one (0:
	// none), which the dedupe entry and a lock it makes are tagged with.
	tag uint16
}

func newWorld(cfg Config, holder *rules.Holder) world {
	return world{
		rules:    holder,
		locks:    newLockTable(),
		throttle: newAlertThrottle(cfg.AlertThrottle),
		dedupe:   newDedupe(cfg.DedupeCapacity),
	}
}

// load returns the world's rule set and its formatted version.
func (w *world) load() (*rules.RuleSet, string) {
	rs := w.rules.Load()
	if rs != nil && rs != w.versionOf { // format the version once per rule set, not per event
		w.versionOf, w.version = rs, rs.Version.String()
	}
	return rs, w.version
}

// expireEvery is how many events a shard scores between sweeps of idle
// feature state. A sweep walks the whole store, so it runs rarely; entities
// outlive their windows by at most this many events.
const expireEvery = 1 << 16

// newScorer returns a Scorer around store: an Engine's shard passes one
// made from the Engine's features.Shared; nil means a Store of its own.
func newScorer(cfg Config, set *features.Set, holder *rules.Holder, store *features.Store) *Scorer {
	if store == nil {
		store = set.NewStore()
	}
	return &Scorer{
		world:      newWorld(cfg, holder),
		store:      store,
		set:        set,
		eval:       rules.NewEvaluator(),
		dec:        event.Decoder{MaxBytes: cfg.MaxEventBytes},
		now:        cfg.Now,
		realClock:  cfg.realClock,
		maxSkew:    cfg.MaxFutureSkew,
		suppressed: newSuppressTable(),
	}
}

// NewScorer returns a standalone Scorer, for benchmarks, backtests and
// tools that score on one goroutine without an Engine.
func NewScorer(cfg Config, set *features.Set, holder *rules.Holder) *Scorer {
	cfg = cfg.withDefaults()
	return newScorer(cfg, set, holder, nil)
}

// Score decides one raw event into d, reusing d's slices. Strings in d alias
// the Scorer's buffers until the next call; use Decision.Clone to keep it.
// A message that cannot be decoded returns an *event.Error, and one dated
// more than Config.MaxFutureSkew ahead of the wall clock an
// *ErrFutureEvent (which unwraps to one); both leave the state untouched.
func (s *Scorer) Score(raw []byte, src Source, d *Decision) error {
	return s.score(raw, nil, src, d, nil)
}

// score is Score, deciding the event for the twin world too into td when
// td is not nil (see ScoreTwin), and taking the event decoded already
// from pre when it is not nil (see ScoreDecoded).
func (s *Scorer) score(raw []byte, pre *Decoded, src Source, d, td *Decision) error {
	start := s.now()
	rs, version := s.load() // once per event: a swap lands between two events
	if rs == nil {
		return ErrNoRules
	}
	var trs *rules.RuleSet
	var tversion string
	if td != nil {
		if trs, tversion = s.twin.load(); trs == nil {
			return ErrNoRules
		}
		if s.mirrored {
			if trs.Version.Hash == rs.Version.Hash {
				err := s.score(raw, pre, src, d, nil)
				if err == nil {
					td.mirror(d, tversion)
				}
				return err
			}
			s.unmirror()
		}
	}
	env := s.eval.Env()
	var account, eventKey uint64
	var sum uint32
	if pre != nil {
		env.Event, s.borrowed = pre.Event, true
		account, eventKey, sum = pre.account, pre.key, pre.sum
	} else {
		if s.borrowed { // its slices are the caller's: decode into fresh ones
			env.Event, s.borrowed = event.Event{}, false
		}
		if err := s.dec.Decode(raw, &env.Event); err != nil {
			return err
		}
		ev := &env.Event
		account, eventKey, sum = keyhash.String(ev.AccountID), keyhash.String(ev.ID), s.fingerprint.sum(ev)
	}
	ev := &env.Event
	// Before de-duplication, locks and features: a refused event leaves
	// no trace, so its id can come again with a sane ts.
	if err := checkFutureSkew(ev.TS, start, s.maxSkew); err != nil {
		return err
	}
	d.begin(ev, raw, src, version, start)
	defer func() { d.Latency = s.since(start) }()
	if td != nil {
		td.begin(ev, raw, src, tversion, start)
		defer func() { td.Latency = d.Latency }()
	}

	// The partition the event came from tags what it leaves in the state,
	// so that the partition's state can move to another instance.
	s.tag = partitionTag(src.Partition)
	if td != nil {
		s.twin.tag = s.tag
	}
	s.store.SetPartition(src.Partition)
	nowMs := start.UnixMilli()
	if s.part == PartShared {
		s.observeShared(ev, d, eventKey, sum)
		return nil
	}
	// scope is what observing the event updates: all of it, or only the
	// account's state when the shared entities hold the event already.
	scope := features.ScopeAll
	if s.part == PartAccount {
		scope = features.ScopeAccount
	}
	// Both worlds saw the same ids with the same bodies, so they agree on
	// whether this one is a repeat; they may differ on what it was decided.
	if action, was, dup := s.dedupe.seen(eventKey); dup && action == observedOnly {
		// Added to the shared entities as another instance's event (see
		// PartShared); its account's part is still to do.
		if was != 0 && was != sum {
			return &ErrEventIDConflict{EventID: strings.Clone(ev.ID)}
		}
		scope = features.ScopeAccount
	} else if dup {
		if was != 0 && was != sum {
			return &ErrEventIDConflict{EventID: strings.Clone(ev.ID)} // ev.ID aliases the decoder buffer, reused for the next event
		}
		d.Action, d.Reason, d.Duplicate = action, ReasonDuplicate, true
		if td != nil {
			td.Action, _, _ = s.twin.dedupe.seen(eventKey)
			td.Reason, td.Duplicate = ReasonDuplicate, true
		}
		return nil
	}
	// Locks run on the wall clock, not on ts: an event dated ahead must
	// not lift one (see lockTable).
	until, locked := s.locks.lockedUntil(account, nowMs)
	if td != nil {
		if _, tlocked := s.twin.locks.lockedUntil(account, nowMs); tlocked != locked {
			return ErrTwinsDiverge
		}
	}
	if locked {
		// The account's state does not learn from a locked account's
		// events (its attempts must not make a thief's device familiar),
		// but its devices, IPs and payees count them: that keeps the
		// shared entity windows a function of the stream alone, which
		// an instance that does not hold the account's locks can build
		// as well (PartShared).
		if scope == features.ScopeAll {
			s.observe(ev, d, features.ScopeShared)
		}
		s.refuseLocked(d, account, until, eventKey, sum)
		if td != nil {
			tuntil, _ := s.twin.locks.lockedUntil(account, nowMs)
			s.twin.refuseLocked(td, account, tuntil, eventKey, sum)
		}
		return nil
	}

	s.observe(ev, d, scope)
	if s.trial != nil { // a test run only: one predictable compare live
		s.trial.apply(&s.values, env)
	}
	env.F = s.values.Profile
	env.W = s.values.Windows
	warming := s.store.WarmingMask(ev.TS) // 0 unless a restore left features warming
	s.decide(&s.world, rs, d, account, eventKey, sum, start, warming)
	// The candidate reads the env the live set just read (same event,
	// features and state) and decides only on paper: it locks nothing,
	// alerts nothing and changes no state.
	if cand := s.rules.LoadCandidate(); cand != nil {
		s.decideCandidate(cand, d, account, start, warming)
	}
	if td != nil {
		td.Late, td.LateFor = d.Late, append(td.LateFor, d.LateFor...)
		s.decide(s.twin, trs, td, account, eventKey, sum, start, warming)
	}
	return nil
}

// begin resets d for the event ev about to be decided.
func (d *Decision) begin(ev *event.Event, raw []byte, src Source, version string, start time.Time) {
	d.reset()
	d.EventID, d.AccountID, d.EventType, d.EventTS = ev.ID, ev.AccountID, ev.Type, ev.TS
	d.Label, d.Raw, d.Source = ev.Label, raw, src
	d.RuleSetVersion = version
	d.DecidedAt = start
}

// refuseLocked decides an event of an account locked until untilMs.
func (w *world) refuseLocked(d *Decision, account uint64, untilMs int64, eventKey uint64, sum uint32) {
	d.Action, d.Reason = rules.Lock, ReasonAccountLocked
	d.LockUntil = lockTime(untilMs)
	d.LockedBy = w.locks.byAccount[account].ruleID
	w.dedupe.record(eventKey, rules.Lock, sum, w.tag)
}

// decide runs w's rule set rs on the Evaluator's env (the event and its
// features, observed already) and records the outcome in d and in w's
// state: the alerts sent, a lock, the event id.
func (s *Scorer) decide(w *world, rs *rules.RuleSet, d *Decision, account, eventKey uint64, sum uint32, start time.Time, warming uint64) {
	ts := d.EventTS
	s.eval.Eval(rs, &w.outcome)
	// Rules support suppressed for the account do not count (wall clock,
	// like locks): recorded in d.Suppressed, nothing more.
	s.suppressed.filter(&w.outcome, account, start.UnixMilli(), &d.Suppressed)
	if warming != 0 {
		w.outcome.Matched = s.skipWarming(w.outcome.Matched, warming, &d.WarmingSkipped)
		w.outcome.Shadow = s.skipWarming(w.outcome.Shadow, warming, &d.WarmingSkipped)
	}
	for _, r := range w.outcome.Matched {
		d.Matched = append(d.Matched, RuleHit{RuleID: r.ID, Action: r.Action, Score: r.Score})
		if r.Alert != "" {
			// Decided here, on the account's shard and on event time, so
			// every output sends the same alerts (see alertThrottle).
			if sent, ok := w.throttle.allow(account, keyhash.String(r.ID), ts); ok {
				d.Alerts = append(d.Alerts, AlertMessage{RuleID: r.ID, Message: r.Alert})
			} else {
				d.ThrottledAlerts = append(d.ThrottledAlerts, ThrottledAlert{RuleID: r.ID, Message: r.Alert,
					SentTS: sent, UntilTS: w.throttle.end(sent)})
			}
		}
		d.Features = s.appendReads(d.Features, r)
		if warming != 0 {
			d.Warming = s.appendWarming(d.Warming, r, warming)
		}
	}
	for _, r := range w.outcome.Shadow {
		d.Shadow = append(d.Shadow, RuleHit{RuleID: r.ID, Action: r.Action, Score: r.Score})
		d.Features = s.appendReads(d.Features, r)
		if warming != 0 {
			d.Warming = s.appendWarming(d.Warming, r, warming)
		}
	}
	for i, r := range w.outcome.Errored {
		hit := RuleHit{RuleID: r.ID, Action: r.Action}
		if i < len(w.outcome.ErrorTexts) {
			hit.Error = w.outcome.ErrorTexts[i]
		}
		d.Errored = append(d.Errored, hit)
	}
	v := rules.Decide(w.outcome.Matched, rs.Thresholds)
	d.Action, d.Score = v.Action, v.Score
	if v.Raised {
		d.Reason = ReasonScoreThreshold
	}
	if d.Action == rules.Lock {
		lockFor := v.LockFor
		if lockFor <= 0 {
			lockFor = DefaultLockFor
		}
		untilMs := IndefiniteMs // lock_for: indefinite, until support unlocks
		if lockFor != rules.LockIndefinite {
			untilMs = start.Add(lockFor).UnixMilli() // wall clock
		}
		d.LockUntil = lockTime(w.locks.lock(account, untilMs, v.LockRule, w.tag))
	}
	w.dedupe.record(eventKey, d.Action, sum, w.tag)
}

// decideCandidate evaluates the candidate set on the Evaluator's current
// env and records its verdict in d.Candidate. The account's suppressed
// rules do not count for the candidate either: it is compared with the
// live decision on the same state.
func (s *Scorer) decideCandidate(cand *rules.RuleSet, d *Decision, account uint64, start time.Time, warming uint64) {
	if cand != s.candOf {
		s.candOf, s.candVersion = cand, cand.Version.String()
	}
	s.eval.Eval(cand, &s.candOutcome)
	s.suppressed.filter(&s.candOutcome, account, start.UnixMilli(), nil)
	if warming != 0 {
		s.candOutcome.Matched = s.skipWarming(s.candOutcome.Matched, warming, nil)
	}
	v := rules.Decide(s.candOutcome.Matched, cand.Thresholds)
	d.Candidate.Version, d.Candidate.Action, d.Candidate.Score = s.candVersion, v.Action, v.Score
	for _, r := range s.candOutcome.Matched {
		d.Candidate.Matched = append(d.Candidate.Matched, r.ID)
	}
}

// observe adds ev to the feature state and reads its values, in the
// message's turn when it has one (see turnstile), so the shared entity
// windows change in the order the stream was submitted.
func (s *Scorer) observe(ev *event.Event, d *Decision, scope features.Scope) {
	seq := s.seq
	if seq != 0 {
		s.turns.enter(seq, s.shard)
	}
	late := s.store.ObserveIn(ev, &s.values, scope)
	d.Late = late != 0
	d.LateFor = s.set.AppendGroupNames(d.LateFor, late) // the Set's strings: no allocation
	if s.observed++; s.observed%expireEvery == 0 {
		s.store.Expire(ev.TS) // drop idle entities on event time; amortised
		s.throttle.expire(ev.TS)
		if s.twin != nil && !s.mirrored {
			s.twin.throttle.expire(ev.TS)
		}
	}
	if seq != 0 {
		s.seq = 0
		s.turns.leave(seq)
	}
}

// observeShared adds an event of an account another instance decides to
// the shared entity windows (PartShared): no rule runs, the account's own
// state is not touched, and the event id is remembered as observed only,
// so the same event decided here later (its partition moved here) adds
// its account's part alone. A repeated id changes nothing: where the
// event is decided it is a duplicate too, or refused for another body.
func (s *Scorer) observeShared(ev *event.Event, d *Decision, eventKey uint64, sum uint32) {
	d.SharedOnly = true
	if _, _, dup := s.dedupe.seen(eventKey); dup {
		d.Duplicate = true
		return
	}
	s.observe(ev, d, features.ScopeShared)
	s.dedupe.record(eventKey, observedOnly, sum, s.tag)
}

// DefaultLockFor is how long a lock lasts when the locking rule (or a score
// threshold) gives no lock_for.
const DefaultLockFor = 30 * time.Minute

// appendReads records the feature values rule r read, skipping names already
// recorded for this decision.
func (s *Scorer) appendReads(dst []FeatureValue, r *rules.Rule) []FeatureValue {
next:
	for _, name := range r.Features {
		for _, have := range dst {
			if have.Name == name {
				continue next
			}
		}
		v, _ := s.set.Value(&s.values, name)
		dst = append(dst, FeatureValue{Name: name, Value: v})
	}
	return dst
}

// skipWarming keeps the rules of rs that may decide while the window
// features in the warming mask fill (bit i: window feature i): all but
// those declaring when_warming: skip that read one. The ids of the others
// go to *dst (unless nil).
func (s *Scorer) skipWarming(rs []*rules.Rule, warming uint64, dst *[]string) []*rules.Rule {
	kept := rs[:0]
	for _, r := range rs {
		if r.SkipWhileWarming && s.readsWarming(r, warming) {
			if dst != nil {
				*dst = append(*dst, r.ID) // the rule set's string: no allocation
			}
			continue
		}
		kept = append(kept, r)
	}
	clear(rs[len(kept):])
	return kept
}

func (s *Scorer) readsWarming(r *rules.Rule, warming uint64) bool {
	for _, name := range r.Features {
		if i, ok := s.set.Index(name); ok && warming&(1<<i) != 0 {
			return true
		}
	}
	return false
}

// appendWarming records the window features rule r reads that are in
// the warming mask (bit i: window feature i), each once per decision.
// The names are the Set's, so recording them allocates nothing.
func (s *Scorer) appendWarming(dst []string, r *rules.Rule, warming uint64) []string {
	for _, name := range r.Features {
		i, ok := s.set.Index(name)
		if !ok || warming&(1<<i) == 0 || slices.Contains(dst, name) {
			continue
		}
		dst = append(dst, s.set.Name(i))
	}
	return dst
}

// Lock locks an account until untilMs (wall-clock Unix milliseconds, on
// the clock of Config.Now; IndefiniteMs for a lock only an unlock lifts),
// as support or an external system asks. On a
// Scorer with a twin it locks in both worlds: support acts on the account,
// whatever rule set decides it.
func (s *Scorer) Lock(accountID string, untilMs int64, by string) {
	h := keyhash.String(accountID)
	s.locks.lock(h, untilMs, by, 0)
	if s.twin != nil && !s.mirrored {
		s.twin.locks.lock(h, untilMs, by, 0)
	}
}

// Unlock lifts an account's lock as UnlockAccount does and reports
// whether there was one in force in the live world.
func (s *Scorer) Unlock(accountID string) bool {
	_, ok := s.UnlockAccount(accountID)
	return ok
}

// Unlocked is what an unlock did.
type Unlocked struct {
	// Was is the lock lifted.
	Was LockState
	// Cleared lists the window features reset for the account: the
	// locking rule's unlock_clears, in the rule's order; none for a
	// support lock, a threshold's lock or a rule no longer loaded.
	Cleared []string
}

// UnlockAccount lifts an account's lock (in both worlds, like Lock) and
// undoes what made it: it resets the account's window features the
// locking rule's unlock_clears names (in the live rule set), so that the
// next event does not lock again on the old counts, and forgets the
// locking rule's last alert to the account, so that the message of a
// later lock is not throttled away. false when no lock was in force in
// the live world; an expired entry is dropped then, and nothing reset.
//
// Feature state is one for both worlds, so it is reset as the live
// world's lock says; each world forgets its own locking rule's alert.
// Like Lock it runs on the owning shard (Engine.Do), between two events,
// so a replay that unlocks at the same place decides the same.
func (s *Scorer) UnlockAccount(accountID string) (Unlocked, bool) {
	h := keyhash.String(accountID)
	nowMs := s.now().UnixMilli()
	if s.twin != nil && !s.mirrored {
		s.twin.locks.noteLifted(h, nowMs)
		if e, ok := s.twin.locks.take(h); ok && nowMs < e.untilMs {
			s.twin.forgetAlert(h, e.ruleID)
		}
	}
	s.locks.noteLifted(h, nowMs)
	e, ok := s.locks.take(h)
	if !ok || nowMs >= e.untilMs {
		return Unlocked{}, false
	}
	return Unlocked{Was: stateOf(e), Cleared: s.clearAfterUnlock(h, e.ruleID)}, true
}

// clearAfterUnlock does what lifting a lock of ruleID does to the
// account whose id hashes to h besides removing it: the rule's alert may
// go out again, and the features its unlock_clears names start over. It
// returns the names of those features.
func (s *Scorer) clearAfterUnlock(h uint64, ruleID string) []string {
	s.forgetAlert(h, ruleID)
	rs := s.rules.Load()
	if rs == nil {
		return nil
	}
	r := rs.Rule(ruleID)
	if r == nil || r.Action != rules.Lock || len(r.UnlockClears) == 0 {
		return nil
	}
	idx := make([]int, 0, len(r.UnlockClears))
	var cleared []string
	for _, name := range r.UnlockClears {
		if i, ok := s.set.Index(name); ok {
			idx = append(idx, i)
			cleared = append(cleared, name)
		}
	}
	s.store.ResetAccountKey(h, idx)
	return cleared
}

// forgetAlert drops the alert throttle's entry of rule for account, so
// that the rule's next alert to it goes out.
func (w *world) forgetAlert(account uint64, ruleID string) {
	if ruleID != "" {
		delete(w.throttle.sent, alertKey{account, keyhash.String(ruleID)})
	}
}

func (d *Decision) reset() {
	*d = Decision{
		Matched:         d.Matched[:0],
		Shadow:          d.Shadow[:0],
		Errored:         d.Errored[:0],
		Features:        d.Features[:0],
		Alerts:          d.Alerts[:0],
		ThrottledAlerts: d.ThrottledAlerts[:0],
		LateFor:         d.LateFor[:0],
		Warming:         d.Warming[:0],
		WarmingSkipped:  d.WarmingSkipped[:0],
		Suppressed:      d.Suppressed[:0],
		Candidate:       CandidateOutcome{Matched: d.Candidate.Matched[:0]},
	}
}

// Clone returns a copy that shares no memory with the Scorer's buffers.
// Raw is not one of them: it is the message's Value, which its sender
// never changes (Message.Value), so the clone keeps it as it is. Copying
// it was half of the bytes the engine allocated per decision.
func (d *Decision) Clone() *Decision {
	c := *d
	// The texts share one allocation: they live and die with the clone,
	// and are never written after.
	text := make([]byte, 0, len(d.EventID)+len(d.AccountID)+len(d.EventType)+len(d.Label))
	c.EventID, text = cloneInto(text, d.EventID)
	c.AccountID, text = cloneInto(text, d.AccountID)
	c.EventType, text = cloneInto(text, d.EventType)
	c.Label, _ = cloneInto(text, d.Label)
	c.Matched = append([]RuleHit(nil), d.Matched...)
	c.Shadow = append([]RuleHit(nil), d.Shadow...)
	c.Errored = append([]RuleHit(nil), d.Errored...)
	c.Features = append([]FeatureValue(nil), d.Features...)
	c.Alerts = append([]AlertMessage(nil), d.Alerts...)
	c.ThrottledAlerts = append([]ThrottledAlert(nil), d.ThrottledAlerts...)
	c.LateFor = append([]string(nil), d.LateFor...)                     // the Set's names, not the Scorer's buffers
	c.Warming = append([]string(nil), d.Warming...)                     // likewise
	c.WarmingSkipped = append([]string(nil), d.WarmingSkipped...)       // rule ids of a rule set, which may be dropped
	c.Suppressed = append([]string(nil), d.Suppressed...)               // rule ids of a rule set, which may be dropped
	c.Candidate.Matched = append([]string(nil), d.Candidate.Matched...) // rule ids of a candidate set, which may be dropped
	return &c
}

// since is how long ago start was, read from s.now. With the real clock
// that is time.Since, which reads the monotonic clock alone: the second
// wall-clock read per decision had cost 0.17 µs in the harness's profile
// (bench/RESULTS.md), more than the first, and start carries a monotonic
// reading anyway.
func (s *Scorer) since(start time.Time) time.Duration {
	if s.realClock {
		return time.Since(start)
	}
	return s.now().Sub(start)
}

// cloneInto copies s to the end of buf, which has room for it, and returns
// the copy as a string.
func cloneInto(buf []byte, s string) (string, []byte) {
	if s == "" {
		return "", buf
	}
	at := len(buf)
	buf = append(buf, s...)
	return unsafe.String(&buf[at], len(s)), buf
}
