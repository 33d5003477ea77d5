package engine

import (
	"time"

	"riskd/rules"
)

// Reasons a decision carries besides matched rules.
const (
	// ReasonAccountLocked: the account is locked; the event was refused
	// without evaluating rules.
	ReasonAccountLocked = "account_locked"
	// ReasonDuplicate: the event_id was already decided; features were not
	// updated again and the original action is repeated.
	ReasonDuplicate = "duplicate"
	// ReasonScoreThreshold: the action was raised by a score threshold.
	ReasonScoreThreshold = "score_threshold"
)

// Source says where a message came from: a Kafka position, or the decide API
// (Topic "api", Offset -1, Partition the input partition of the event's
// account when the caller knows it, else -1). Partition tags the state the
// message leaves (see partitions.go).
type Source struct {
	Topic     string
	Partition int
	Offset    int64
}

// Decision is the outcome for one event. The copy handed to a Message's Done
// callback is owned by the receiver: it aliases no engine buffer.
type Decision struct {
	EventID   string
	AccountID string
	EventType string
	// EventTS is the event time in Unix milliseconds.
	EventTS int64
	// DecidedAt is wall-clock time when the decision was made.
	DecidedAt time.Time
	// Action is the most severe action of matched active rules, possibly
	// raised by score thresholds; Allow when nothing matched.
	Action rules.Action
	// Score is the sum of the scores of matched active rules.
	Score int
	// Reason is empty for ordinary decisions, or one of the Reason constants.
	Reason string
	// Matched are active rules that matched; Shadow are shadow-mode rules
	// that matched (recorded, never acted on); Errored are rules whose
	// expression failed at run time (counted as not matched).
	Matched []RuleHit
	Shadow  []RuleHit
	Errored []RuleHit
	// RuleSetVersion identifies the rule set that decided ("42-1a2b3c4d").
	RuleSetVersion string
	// Features are the values of the features read by matched and shadow
	// rules, as the rules saw them.
	Features []FeatureValue
	// Latency is the time from the engine receiving the message to the decision.
	Latency time.Duration
	// LockUntil is set when the account is (now) locked: by this decision's
	// lock action or by an earlier lock that refused this event.
	LockUntil time.Time
	// LockedBy, on an event refused because its account was locked
	// (ReasonAccountLocked), is who set that lock: a rule id, or
	// "support:<name>"; the decide answer tells the user the locking
	// rule's message.
	LockedBy string
	// Alerts are the user-facing messages of matched active rules that carry
	// one and that the alert throttle let through: the alerts every output
	// sends (alerts topic and table, webhooks, live stream).
	Alerts []AlertMessage
	// ThrottledAlerts are the messages of matched active rules that the
	// alert throttle held back, because the same rule alerted the account
	// less than Config.AlertThrottle earlier in event time. They are part
	// of the decision's record, never sent to the user.
	ThrottledAlerts []ThrottledAlert
	// Late marks an event more than the feature windows' late tolerance
	// behind the latest event of its account or of another entity it
	// belongs to (device, IP, payee, ...): it was decided, but not added to
	// that entity's windows. LateFor names those groups (see
	// features.Set.GroupName: "account", "device.id", "ip", ...), in group
	// order; the event was added to the windows of every other entity.
	Late    bool
	LateFor []string
	// Warming names the window features read by the matched and shadow
	// rules that are warming at the event's time: they started empty when
	// the state was restored from a snapshot taken with other feature
	// definitions, and their window has not filled since (see
	// features.Shared.Warming), so they count fewer events than the rule
	// expects. In the order the rules read them; empty almost always.
	Warming []string
	// WarmingSkipped are the ids of matched active or shadow rules left
	// out because they declare when_warming: skip and read a warming
	// feature (see Warming): they gave no action, score, alert or lock.
	// Empty almost always.
	WarmingSkipped []string
	// Suppressed are the ids of matched active or shadow rules that
	// support suppressed for the account (Scorer.Suppress) and that
	// therefore did not count: they are in neither Matched nor Shadow and
	// gave no action, score, alert or lock. Active ones first, in rule
	// order; empty almost always.
	Suppressed []string
	// Duplicate marks an event_id seen before; outputs for it were already made.
	Duplicate bool
	// SharedOnly marks a message of Part PartShared: added to the shared
	// entity windows (unless Duplicate), not decided.
	SharedOnly bool
	// Label is the generator's ground-truth label, carried for scoring
	// detection only.
	Label string
	// Raw is the event as received, for the events table and replay: the
	// message's Value itself (see Message.Value), never written.
	Raw []byte
	// Source is where the event came from.
	Source Source
	// Candidate is what the candidate rule set (a shadow publish, see
	// rules.Holder.InstallCandidate) decided on the same event, features
	// and state, recorded to compare and never acted on. Its Version is
	// empty when no candidate is installed, and for events refused before
	// the rules ran (a locked account, a duplicate).
	Candidate CandidateOutcome
}

// CandidateOutcome is the candidate rule set's decision on an event.
type CandidateOutcome struct {
	// Version identifies the candidate set ("43-9f8e7d6c").
	Version string
	// Action and Score are what the candidate's policy gave, thresholds
	// included; the live decision's Action is what happened.
	Action rules.Action
	Score  int
	// Matched are the ids of the candidate's active rules that matched.
	Matched []string
}

// RuleHit is one rule's result in a decision.
type RuleHit struct {
	RuleID string
	Action rules.Action
	Score  int
	// Error is the run-time error text for an errored rule.
	Error string `json:",omitempty"`
}

// FeatureValue is a feature name and the value a rule read.
type FeatureValue struct {
	Name  string
	Value float64
}

// AlertMessage is a user-facing alert produced by a matched rule.
type AlertMessage struct {
	RuleID  string
	Message string
}

// ThrottledAlert is an alert the throttle held back, with why: the alert
// of the same rule to the same account that went out at SentTS, whose
// window lasts until UntilTS.
type ThrottledAlert struct {
	RuleID  string
	Message string
	// SentTS is the event time (Unix ms) of the alert that went out and
	// opened the window.
	SentTS int64
	// UntilTS is the event time (Unix ms) at which that window ends: the
	// rule's next alert for the account dated UntilTS or later goes out.
	UntilTS int64
}
