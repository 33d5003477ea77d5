package engine

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"riskd/internal/keyhash"
	"riskd/rules"
)

// MaxSuppressionsPerAccount bounds the rules suppressed at once for one
// account. Each decision of a suppressed account scans its entries, and a
// support agent muting more than a few dozen rules for one account is
// better served by a rule change or a lock.
const MaxSuppressionsPerAccount = 64

// MaxSuppressionRuleBytes bounds a suppressed rule id, as the checkpoint
// stores it (u16 length) and as the API accepts it.
const MaxSuppressionRuleBytes = 256

// ErrTooManySuppressions is returned by Suppress when the account has
// MaxSuppressionsPerAccount rules suppressed already and the rule is not
// one of them.
var ErrTooManySuppressions = errors.New("too many suppressed rules for one account")

// suppressTable holds, per account, the rules support suppressed for it:
// a matched rule on the list does not count for that account (no action,
// score, alert or lock) until the entry ends. Support's command, like a
// lock, so it lives on the Scorer and holds for every world of a twin
// Scorer alike.
//
// Expiry runs on the wall clock (the Scorer's Config.Now), like locks and
// for the same reason (see lockTable): on event time one event dated ahead
// would end every suppression of its account. Entries past their end are
// dropped lazily when the account is next decided, and the whole table is
// swept every sweepEvery decisions of suppressed-table accounts, so an
// account that never comes back does not keep its entries for ever.
// Not safe for concurrent use: its Scorer's goroutine owns it.
type suppressTable struct {
	byAccount map[uint64][]suppression
	// checks counts the decisions that looked in the table, for the sweep.
	checks uint64
}

// suppression is one suppressed rule of an account.
type suppression struct {
	rule string
	// untilMs is the wall-clock time (Unix ms) at which it ends.
	untilMs int64
	// by is who suppressed it ("support:<token name>").
	by string
}

// sweepEvery is how many decisions that look in a non-empty table pass
// between sweeps of its expired entries.
const sweepEvery = 1 << 14

func newSuppressTable() *suppressTable {
	return &suppressTable{byAccount: make(map[uint64][]suppression)}
}

func (t *suppressTable) clone() *suppressTable {
	c := &suppressTable{byAccount: make(map[uint64][]suppression, len(t.byAccount)), checks: t.checks}
	for h, es := range t.byAccount {
		c.byAccount[h] = slices.Clone(es)
	}
	return c
}

// active returns the account's entries in force at nowMs, dropping the
// expired ones.
func (t *suppressTable) active(account uint64, nowMs int64) []suppression {
	es, ok := t.byAccount[account]
	if !ok {
		return nil
	}
	es = slices.DeleteFunc(es, func(e suppression) bool { return nowMs >= e.untilMs })
	if len(es) == 0 {
		delete(t.byAccount, account)
		return nil
	}
	t.byAccount[account] = es
	return es
}

// suppress sets rule's suppression for account to end at untilMs,
// replacing an earlier one of the same rule (the newest command wins, as
// it did when it was made: a restart applies the commands again in order).
func (t *suppressTable) suppress(account uint64, rule string, untilMs, nowMs int64, by string) error {
	es := t.active(account, nowMs)
	for i := range es {
		if es[i].rule == rule {
			es[i].untilMs, es[i].by = untilMs, by
			return nil
		}
	}
	if len(es) >= MaxSuppressionsPerAccount {
		return fmt.Errorf("suppress %s: %w (%d)", rule, ErrTooManySuppressions, MaxSuppressionsPerAccount)
	}
	if untilMs <= nowMs {
		return nil // over already: nothing to enforce
	}
	t.byAccount[account] = append(es, suppression{rule: rule, untilMs: untilMs, by: by})
	return nil
}

// unsuppress removes rule's suppression for account and reports whether
// one was in force at nowMs.
func (t *suppressTable) unsuppress(account uint64, rule string, nowMs int64) bool {
	es := t.active(account, nowMs)
	i := slices.IndexFunc(es, func(e suppression) bool { return e.rule == rule })
	if i < 0 {
		return false
	}
	es = slices.Delete(es, i, i+1)
	if len(es) == 0 {
		delete(t.byAccount, account)
	} else {
		t.byAccount[account] = es
	}
	return true
}

// sweep drops every expired entry.
func (t *suppressTable) sweep(nowMs int64) {
	for h := range t.byAccount {
		t.active(h, nowMs)
	}
}

// filter removes from o's matched and shadow rules those suppressed for
// account at nowMs, and appends their ids to *dst unless dst is nil. The hot path (no
// suppression anywhere on the shard) is one map length.
func (t *suppressTable) filter(o *rules.Outcome, account uint64, nowMs int64, dst *[]string) {
	if len(t.byAccount) == 0 {
		return
	}
	if t.checks++; t.checks%sweepEvery == 0 {
		t.sweep(nowMs)
	}
	es := t.active(account, nowMs)
	if len(es) == 0 {
		return
	}
	o.Matched = dropSuppressed(o.Matched, es, dst)
	o.Shadow = dropSuppressed(o.Shadow, es, dst)
}

// dropSuppressed keeps the rules of rs not in es, in order, and appends
// the ids of the others to *dst (unless nil).
func dropSuppressed(rs []*rules.Rule, es []suppression, dst *[]string) []*rules.Rule {
	kept := rs[:0]
	for _, r := range rs {
		if slices.ContainsFunc(es, func(e suppression) bool { return e.rule == r.ID }) {
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

// Suppression is a rule suppressed for an account, as the engine enforces it.
type Suppression struct {
	// RuleID is the suppressed rule.
	RuleID string
	// Until is when the suppression ends, on the wall clock.
	Until time.Time
	// By is who suppressed it ("support:<token name>").
	By string
}

// Suppress makes rule not count for accountID until untilMs (wall-clock
// Unix ms, on the clock of Config.Now): when it matches, the decision
// lists it in Suppressed instead of Matched (or Shadow), with no action,
// score, alert or lock from it. A second Suppress of the same rule
// replaces the first's end. It holds for both worlds of a twin Scorer:
// support acts on the account, whatever rule set decides it. Run it on
// the owning shard (Engine.Do). It returns ErrTooManySuppressions (wrapped)
// beyond MaxSuppressionsPerAccount, and an error for a rule id that is
// empty or longer than MaxSuppressionRuleBytes.
func (s *Scorer) Suppress(accountID, rule string, untilMs int64, by string) error {
	if rule == "" || len(rule) > MaxSuppressionRuleBytes || len(by) > 1<<16-1 {
		return fmt.Errorf("suppress %q: want a rule id of 1 to %d bytes", rule, MaxSuppressionRuleBytes)
	}
	return s.suppressed.suppress(keyhash.String(accountID), strings.Clone(rule), untilMs, s.now().UnixMilli(), strings.Clone(by))
}

// Unsuppress lifts rule's suppression for accountID early and reports
// whether one was in force.
func (s *Scorer) Unsuppress(accountID, rule string) bool {
	return s.suppressed.unsuppress(keyhash.String(accountID), rule, s.now().UnixMilli())
}

// Suppressions returns the account's suppressions in force now (the
// Scorer's wall clock), by rule id. Like Suppress it runs on the owning
// shard, and drops the expired ones.
func (s *Scorer) Suppressions(accountID string) []Suppression {
	es := s.suppressed.active(keyhash.String(accountID), s.now().UnixMilli())
	out := make([]Suppression, 0, len(es))
	for _, e := range es {
		out = append(out, Suppression{RuleID: e.rule, Until: time.UnixMilli(e.untilMs).UTC(), By: e.by})
	}
	slices.SortFunc(out, func(a, b Suppression) int { return strings.Compare(a.RuleID, b.RuleID) })
	return out
}
