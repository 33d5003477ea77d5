package backtest

import "time"

// Report is the outcome of a backtest. Every field encodes to JSON as the
// API and `riskctl rules backtest --json` show it.
type Report struct {
	// From and To bound the period (event time, To excluded).
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// WarmupFrom is where the replay started: the oldest stored event
	// when the whole history warmed up, else From less the warm-up.
	WarmupFrom time.Time `json:"warmup_from"`
	// Warmup is "all stored history" or the duration asked for.
	Warmup string `json:"warmup"`
	// Candidate is the candidate set's version ("SEQ-HASH8") and
	// CandidateHash its full content hash.
	Candidate     string `json:"candidate"`
	CandidateHash string `json:"candidate_hash"`
	// Recorded lists the rule-set versions of the recorded decisions of
	// the period, with how many decisions each made.
	Recorded []VersionCount `json:"recorded_versions"`
	// EventsWarmup and EventsPeriod count the events replayed before From
	// (state only, no outputs counted) and in the period.
	EventsWarmup int64 `json:"events_warmup"`
	EventsPeriod int64 `json:"events_period"`
	// Refused counts stored events the engine could not decide (not
	// decodable, say); they are in no other count.
	Refused int64 `json:"events_refused"`
	// Seconds is the wall time the backtest took, and EventsPerSecond the
	// events replayed (warm-up included) per second of it.
	Seconds         float64 `json:"seconds"`
	EventsPerSecond float64 `json:"events_per_second"`
	// SharedState counts the events decided for candidate and baseline
	// on one feature state: all of them unless the candidate locked an
	// account the baseline did not (or the other way round), from which
	// event on each keeps its own state, and the replay is slower.
	SharedState int64 `json:"shared_state_events"`
	// BucketStart and BucketWidth place RuleStats.Series in time: bucket i
	// covers [BucketStart + i*BucketWidth, + BucketWidth).
	BucketStart time.Time `json:"bucket_start"`
	BucketWidth Duration  `json:"bucket_width"`
	// Rules are the candidate's rules in set order, then rules only the
	// recorded decisions matched (removed or renamed since).
	Rules []RuleStats `json:"rules"`
	// Totals compare the candidate's decisions with the baseline replay's
	// (see Reproduction), or with the recorded ones where the baseline
	// could not be replayed.
	Totals Totals `json:"totals"`
	// Reproduction compares the baseline replay (the rule sets that were
	// live, replayed beside the candidate) with the recorded decisions:
	// how far the replay itself can be trusted.
	Reproduction Reproduction `json:"reproduction"`
	// Warnings say why the candidate's decisions may differ from the
	// recorded ones for reasons other than rule changes.
	Warnings []string `json:"warnings"`
}

// Reproduction is the baseline replay against the recorded decisions of
// the period. The baseline replays each event with the rule-set version
// its recorded decision names (events with none keep the version before),
// so wherever the engine is deterministic the two agree; where they do
// not, the live engine saw a different state (events decided in arrival
// order, state from before the period missing), and that difference is
// in the recorded comparison but not in Totals.Changed.
type Reproduction struct {
	// Compared counts the period's recorded decisions the baseline
	// replayed with the version that made them; Identical those it
	// reproduced (same action, same matched and shadow rules) and
	// Differing the others.
	Compared  int64 `json:"compared"`
	Identical int64 `json:"identical"`
	Differing int64 `json:"differing"`
	// Changes splits the differing decisions whose action differs as
	// recorded (From) -> replayed (To), with up to MaxExamples event ids
	// each; RulesDiffer counts those whose action is the same but whose
	// matched rules differ, with examples.
	Changes             []Change `json:"changes"`
	RulesDiffer         int64    `json:"rules_differ"`
	RulesDifferExamples []string `json:"rules_differ_examples,omitempty"`
	// NotReplayed counts the period's recorded decisions made by a version
	// that could not be replayed (MissingVersions): the candidate is
	// compared with the recorded decision there instead.
	NotReplayed     int64            `json:"not_replayed"`
	MissingVersions []MissingVersion `json:"missing_versions"`
	// Exact is true when every recorded decision of the period was
	// replayed and reproduced.
	Exact bool `json:"exact"`
}

// MissingVersion is a recorded rule-set version the baseline could not
// replay, and why.
type MissingVersion struct {
	Version string `json:"version"`
	// Reason is "not in the version history", "the history's version N
	// has hash H", "no longer compiles with today's features: ...", or
	// "its files hash to H".
	Reason string `json:"reason"`
	// Decisions and WarmupDecisions count the recorded decisions it made
	// in the period and in the warm-up.
	Decisions       int64 `json:"decisions"`
	WarmupDecisions int64 `json:"warmup_decisions"`
}

// VersionCount is one recorded rule-set version and its decisions.
type VersionCount struct {
	Version   string `json:"version"`
	Decisions int64  `json:"decisions"`
}

// RuleStats is one rule's hits in the period.
type RuleStats struct {
	ID string `json:"id"`
	// Mode is "active" or "shadow" in the candidate, "absent" for a rule
	// only the recorded decisions have.
	Mode   string `json:"mode"`
	Action string `json:"action,omitempty"`
	// Hits counts the events it matched as an active rule, ShadowHits as a
	// shadow rule.
	Hits       int64 `json:"hits"`
	ShadowHits int64 `json:"shadow_hits"`
	// Fraud, NotFraud and Unlabelled split Hits+ShadowHits by the event's
	// label (see chstore.LabelIsFraud).
	Fraud      int64 `json:"fraud"`
	NotFraud   int64 `json:"not_fraud"`
	Unlabelled int64 `json:"unlabelled"`
	// Precision is Fraud over all hits, unlabelled events counted as not
	// fraud (a lower bound where labels are incomplete);
	// LabelledPrecision is Fraud over Fraud+NotFraud. Nil without hits
	// (without labelled hits).
	Precision         *float64 `json:"precision"`
	LabelledPrecision *float64 `json:"labelled_precision"`
	// FirstHit and LastHit are the event times of its first and last hit.
	FirstHit *time.Time `json:"first_hit,omitempty"`
	LastHit  *time.Time `json:"last_hit,omitempty"`
	// RecordedHits counts the recorded decisions it matched (active or
	// shadow) and BaselineHits the baseline replay's; NewHits the events it
	// matches in the candidate and not in the baseline (or, where the
	// baseline could not be replayed, in the recorded decision), and
	// LostHits the reverse. Changed is NewHits+LostHits.
	RecordedHits int64 `json:"recorded_hits"`
	BaselineHits int64 `json:"baseline_hits"`
	NewHits      int64 `json:"new_hits"`
	LostHits     int64 `json:"lost_hits"`
	Changed      int64 `json:"changed"`
	// Series is Hits+ShadowHits per bucket (see Report.BucketStart).
	Series []int64 `json:"series"`
}

// Totals are the period's decisions as a whole.
type Totals struct {
	// Actions counts decisions by action, candidate against baseline and
	// recorded, allow to lock.
	Actions []ActionCount `json:"actions"`
	// Changed counts the events whose action differs from the baseline
	// replay's (the effect of the rule change alone), or from the recorded
	// one where the baseline could not be replayed; Changes splits them by
	// from->to with up to MaxExamples event ids each.
	Changed int64    `json:"changed"`
	Changes []Change `json:"changes"`
	// RulesDiffer counts the events whose matched rules (active and
	// shadow) differ from the baseline's (or recorded) ones, action
	// changed or not, with examples.
	RulesDiffer         int64    `json:"rules_differ"`
	RulesDifferExamples []string `json:"rules_differ_examples,omitempty"`
	// Compared counts the period's events the comparisons above cover:
	// those the baseline replayed with a known version, and those with a
	// recorded decision where it could not; ComparedWithRecorded counts
	// the latter.
	Compared             int64 `json:"compared"`
	ComparedWithRecorded int64 `json:"compared_with_recorded"`
	// Events: fraud caught and good events hit, per event.
	Events Detection `json:"events"`
	// Attacks: fraud caught per attack (see the package doc).
	Attacks AttackDetection `json:"attacks"`
	// Amount: fraudulent money-out stopped, per currency.
	Amount []AmountStopped `json:"amount"`
}

// ActionCount is one action's decisions: candidate, baseline replay and
// recorded.
type ActionCount struct {
	Action    string `json:"action"`
	Candidate int64  `json:"candidate"`
	Baseline  int64  `json:"baseline"`
	Recorded  int64  `json:"recorded"`
}

// Change is one from->to pair of changed decisions.
type Change struct {
	From     string   `json:"from"`
	To       string   `json:"to"`
	Count    int64    `json:"count"`
	Examples []string `json:"examples"`
}

// Detection counts fraud caught and good events hit. Caught means
// challenge, block or lock; hit means review or stronger.
type Detection struct {
	Fraud          int64 `json:"fraud"`
	Caught         int64 `json:"caught"`
	CaughtRecorded int64 `json:"caught_recorded"`
	// Good counts not_fraud and unlabelled events.
	Good        int64 `json:"good"`
	GoodHit     int64 `json:"good_hit"`
	GoodHitRec  int64 `json:"good_hit_recorded"`
	NotFraud    int64 `json:"not_fraud"`
	NotFraudHit int64 `json:"not_fraud_hit"`
}

// AttackDetection counts attacks and those caught, in total and by label.
type AttackDetection struct {
	Attacks        int64         `json:"attacks"`
	Caught         int64         `json:"caught"`
	CaughtRecorded int64         `json:"caught_recorded"`
	ByLabel        []LabelAttack `json:"by_label"`
}

// LabelAttack is the attacks of one fraud label.
type LabelAttack struct {
	Label          string `json:"label"`
	Attacks        int64  `json:"attacks"`
	Caught         int64  `json:"caught"`
	CaughtRecorded int64  `json:"caught_recorded"`
}

// AmountStopped is fraudulent money-out in one currency, in minor units.
type AmountStopped struct {
	Currency        string `json:"currency"`
	Total           int64  `json:"total"`
	Stopped         int64  `json:"stopped"`
	StoppedRecorded int64  `json:"stopped_recorded"`
}

// Duration is a time.Duration that encodes to JSON as its string ("1h0m0s").
type Duration time.Duration

// MarshalText writes the duration as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads what MarshalText wrote.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}
