package rules

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr/vm"

	"riskd/event"
	"riskd/features"
)

// FeatureIndex resolves a declared window feature name to its slot in
// features.Values.Windows. *features.Set implements it.
type FeatureIndex interface {
	Index(name string) (int, bool)
}

// Mode says whether a matched rule acts.
type Mode uint8

const (
	// Active rules take part in the decision.
	Active Mode = iota
	// Shadow rules are evaluated and recorded but never act.
	Shadow
)

func (m Mode) String() string {
	if m == Shadow {
		return "shadow"
	}
	return "active"
}

// AccountInfo is what rules see as account.
type AccountInfo struct {
	// ID is the wallet account id.
	ID string `expr:"id" yaml:"id"`
	// AgeDays is the age of the account in days, as known to the engine.
	AgeDays float64 `expr:"age_days" yaml:"age_days"`
	// LockedBefore counts earlier locks of the account.
	LockedBefore int `expr:"locked_before" yaml:"locked_before"`
	// Locked tells whether the account is locked right now.
	Locked bool `expr:"locked" yaml:"locked"`
}

// Env is the environment rule expressions run against. A shard fills the
// Env returned by Evaluator.Env in place before each Eval.
type Env struct {
	// Event is the event being scored.
	Event event.Event `expr:"event"`
	// F holds the per-account profile features (f.new_device, ...).
	F features.Profile `expr:"f"`
	// W holds the window features by slot (features.Values.Windows). Rules
	// never name it: the compiler rewrites f.<window feature> to __w[slot].
	// It is an array held by value so that reading a slot from the boxed,
	// non-addressable Env does not allocate.
	W [features.MaxWindows]float64 `expr:"__w"`
	// Account describes the account the event belongs to.
	Account AccountInfo `expr:"account"`
	// InList is in_list(name, value). It is a typed func field rather than
	// an expr.Function so the VM calls it without boxing its arguments into a
	// []any; the Evaluator points it at the lists of the rule set it runs.
	InList func(list, value string) bool `expr:"in_list"`
	// Tick counts one loop iteration against RunStepBudget. Rules never
	// name it: the compiler adds a call of __tick to each loop body (see
	// addTicks), and the Evaluator points it at its own counter.
	Tick func() bool `expr:"__tick"`
}

// inList reports whether value is in the named list of rs.
func (rs *RuleSet) inList(list, value string) bool {
	_, ok := rs.Lists[list][value]
	return ok
}

// inListFunc returns rs.inList as a func value, made once per rule set
// (a method value allocates each time it is formed).
func (rs *RuleSet) inListFunc() func(string, string) bool {
	if f := rs.inListFn.Load(); f != nil {
		return *f
	}
	f := rs.inList
	rs.inListFn.CompareAndSwap(nil, &f)
	return *rs.inListFn.Load()
}

// Rule is one compiled rule.
type Rule struct {
	// ID names the rule; unique in a RuleSet.
	ID string
	// File and Line say where the rule was defined.
	File string
	Line int
	// When is the expression source.
	When string
	// Action is what a match asks for (Allow if the rule only scores).
	Action Action
	// Score is added to the decision's score on a match.
	Score int
	// LockFor is how long a lock action locks the account; LockIndefinite
	// (lock_for: indefinite) when the lock lasts until support unlocks.
	LockFor time.Duration
	// UnlockClears lists the window features grouped by account that an
	// unlock of this rule's lock resets (unlock_clears), so that the
	// account is not locked again by the next event that the old counts
	// would push over the line. When the rule does not declare it: the
	// window features grouped by account its when reads. Empty for rules
	// other than lock rules, and when declared as [].
	UnlockClears []string
	// SkipWhileWarming (when_warming: skip) leaves the rule out of an
	// event's decision while a window feature its when reads is warming:
	// it started empty after a change of the feature definitions and its
	// window has not filled, so it undercounts. The default (when_warming:
	// allow) decides with the partial counts and marks the decision.
	SkipWhileWarming bool
	// Alert is the notification sent to the user out of band on a match
	// (alerts topic, webhooks, live stream), subject to the alert
	// throttle. It is not what the wallet shows on its own screen: that is
	// Wallet.UserMessage.
	Alert string
	// Wallet is what the decide answer tells the wallet about a match: the
	// rule's code, user_message, category and step_up, each the default
	// of the rule's action (WalletDefault) when the rule does not declare
	// it. Strings of the compiled set: reading them allocates nothing.
	Wallet Wallet
	// Mode is Active or Shadow.
	Mode Mode
	// Description is free text for people.
	Description string
	// Features lists the feature names (f.<name>) the expression reads, in
	// order of first use, for decision records.
	Features []string
	// Types lists the event types the rule can match, or nil for any type.
	Types []string

	program *vm.Program
	// native is the expression compiled to Go closures when every part of
	// it is one compileNative knows; nil means run program in the VM.
	native predicate
	// nativeTyped is native without its event.type test, for events whose
	// type is one of Types; nil if the rule has no such test.
	nativeTyped predicate
	// examples are the rule's examples, checked when the set compiles and
	// run again by RunTest.
	examples []example
	errors   atomic.Uint64
}

// Errors counts run-time errors of the rule's expression since load.
func (r *Rule) Errors() uint64 { return r.errors.Load() }

// ErrorCounts returns Rule.Errors of every rule of the set, zeros
// included, by rule id: what a metrics collector exports as a per-rule
// error counter. The counts start from zero in each compiled set, so such
// a counter resets when the rules are reloaded.
func (rs *RuleSet) ErrorCounts() map[string]uint64 {
	m := make(map[string]uint64, len(rs.Rules))
	for _, r := range rs.Rules {
		m[r.ID] = r.Errors()
	}
	return m
}

// Wallet is the part of a decision the wallet app maps to a screen and
// a text for its user. It is a contract with the wallet's developers
// (docs/WALLET.md, docs/decide-response.v1.schema.json): codes are stable
// names analysts choose, categories and step-ups are closed sets.
type Wallet struct {
	// Code is a stable reason code ([a-z0-9_.-], at most MaxCodeLen
	// bytes). Several rules may share one: a code names a reason the
	// wallet handles, not a rule (the answer carries the rule id too).
	Code string
	// Category is one of Categories: which screen the wallet shows.
	Category string
	// StepUp is one of StepUps for a challenge, empty otherwise.
	StepUp string
	// UserMessage is the short text the wallet shows its user on that
	// screen (at most MaxUserMessage characters, one line); empty for
	// answers that let the event through without a word.
	UserMessage string
}

// Bounds of a rule's wallet fields.
const (
	// MaxCodeLen bounds a code in bytes.
	MaxCodeLen = 64
	// MaxUserMessage bounds a user message in characters (runes): one
	// line on a phone screen, two at most.
	MaxUserMessage = 200
)

// Categories, the closed set the wallet maps to screens. Adding one is a
// new version of the decide answer's schema.
const (
	// CategoryAllowed: nothing to show. Review rules default to it too,
	// so that a fraudster is not told a case was opened.
	CategoryAllowed = "allowed"
	// CategorySecurityNotice: the event goes through; show a warning.
	CategorySecurityNotice = "security_notice"
	// CategoryVerifyIdentity: ask for the step-up in StepUp first.
	CategoryVerifyIdentity = "verify_identity"
	// CategorySuspectedScam: the payee or the pattern looks like a scam.
	CategorySuspectedScam = "suspected_scam"
	// CategoryLimitExceeded: a velocity or amount limit was reached.
	CategoryLimitExceeded = "limit_exceeded"
	// CategoryDeclined: refused (a payment, a sign-in, a payee), with no more
	// specific reason told.
	CategoryDeclined = "declined"
	// CategoryAccountLocked: the account is locked (until lock_until).
	CategoryAccountLocked = "account_locked"
)

// Categories lists every category, in the order of the docs.
var Categories = []string{CategoryAllowed, CategorySecurityNotice, CategoryVerifyIdentity,
	CategorySuspectedScam, CategoryLimitExceeded, CategoryDeclined, CategoryAccountLocked}

// Step-ups a challenge may ask for.
const (
	StepUpMFA             = "mfa"              // a one-time code or the app's second factor
	StepUpReenterPassword = "reenter_password" // the wallet password again
	StepUpCallSupport     = "call_support"     // the user must call support
)

// StepUps lists every step-up.
var StepUps = []string{StepUpMFA, StepUpReenterPassword, StepUpCallSupport}

// categoriesFor says which categories a rule of each action may declare,
// so that a refused payment never reads "allowed" and a lock always reads
// account_locked. The first is the action's default.
var categoriesFor = [...][]string{
	Allow:     {CategoryAllowed},
	Alert:     {CategorySecurityNotice, CategorySuspectedScam},
	Review:    {CategoryAllowed, CategorySecurityNotice},
	Challenge: {CategoryVerifyIdentity, CategorySuspectedScam, CategoryLimitExceeded},
	Block:     {CategoryDeclined, CategorySuspectedScam, CategoryLimitExceeded},
	Lock:      {CategoryAccountLocked},
}

// CategoriesFor returns the categories a rule with action a may declare,
// its default first.
func CategoriesFor(a Action) []string {
	if int(a) < len(categoriesFor) {
		return categoriesFor[a]
	}
	return nil
}

var walletDefaults = [...]Wallet{
	Allow: {Code: "risk_signal", Category: CategoryAllowed},
	Alert: {Code: "unusual_activity", Category: CategorySecurityNotice,
		UserMessage: "We noticed unusual activity on your wallet. If it wasn't you, change your password."},
	Review:    {Code: "under_review", Category: CategoryAllowed},
	Challenge: {Code: "verification_required", Category: CategoryVerifyIdentity, StepUp: StepUpMFA, UserMessage: "Please confirm it's you to continue."},
	Block:     {Code: "declined", Category: CategoryDeclined, UserMessage: "We stopped this to protect your wallet. Contact support if you need help."},
	Lock: {Code: "account_locked", Category: CategoryAccountLocked,
		UserMessage: "Your wallet is locked to protect it. Contact support to unlock it."},
}

// WalletDefault is what a rule of action a tells the wallet when it
// declares none of code, category, step_up and user_message. It is also
// the decision-level answer when no rule of the decision's action decided
// it (a score threshold, a duplicate, a timeout fallback).
func WalletDefault(a Action) Wallet {
	if int(a) < len(walletDefaults) {
		return walletDefaults[a]
	}
	return Wallet{}
}

// Threshold raises a decision to Action when its score reaches Score.
type Threshold struct {
	Score  int    `yaml:"score"`
	Action Action `yaml:"action"`
}

// Version identifies a rule set: Seq counts swaps in a Holder, Hash is a
// short hex sha256 of the sorted file names and contents.
type Version struct {
	Seq  uint64
	Hash string
}

// String formats the version as SEQ-HASH8.
func (v Version) String() string {
	h := v.Hash
	if len(h) > 8 {
		h = h[:8]
	}
	return fmt.Sprintf("%d-%s", v.Seq, h)
}

// RuleSet is an immutable compiled set of rules.
type RuleSet struct {
	Version Version
	// Rules in file-name order, then file order.
	Rules []*Rule
	// Thresholds sorted by ascending score.
	Thresholds []Threshold
	// Lists maps list name to its set of values.
	Lists map[string]map[string]struct{}

	byType  map[string][]*Rule // rules to run for a known event type
	anyType []*Rule            // rules to run for other types
	// feats resolves the window feature names the set was compiled
	// against, for test events' feature values.
	feats FeatureIndex
	// inListFn caches the in_list func bound to this set; evaluators on
	// several shards may form it at once, hence atomic.
	inListFn atomic.Pointer[func(string, string) bool]
}

// LockIndefinite is the LockFor of a rule with lock_for: indefinite: its
// lock has no end; support's unlock lifts it. It is the longest duration,
// so the policy's longest-lock choice prefers it to any other.
const LockIndefinite = time.Duration(math.MaxInt64)

// AccountFeatures is what a FeatureIndex also implements when it can tell
// which window features are grouped by account (*features.Set does): the
// only ones unlock_clears may name, since the others (by device, IP,
// payee) are shared with other accounts.
type AccountFeatures interface {
	ByAccount(name string) bool
}

// Rule returns the rule with the given id, or nil.
func (rs *RuleSet) Rule(id string) *Rule {
	for _, r := range rs.Rules {
		if r.ID == id {
			return r
		}
	}
	return nil
}

// CompileError is a problem in a rule file, with its position.
type CompileError struct {
	RuleID string
	File   string
	Line   int
	Col    int
	Msg    string
}

func (e *CompileError) Error() string {
	pos := e.File
	if e.Line > 0 {
		pos = fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Col)
	}
	if e.RuleID != "" {
		return fmt.Sprintf("%s: rule %s: %s", pos, e.RuleID, e.Msg)
	}
	return fmt.Sprintf("%s: %s", pos, e.Msg)
}
