package detection

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"riskd/bench/traffic"
)

// Bounds on what a Tally keeps: one small record per attack and per honest
// account. A benchmark of 10 million events at a 2% fraud rate has about
// 25,000 attacks; 1 million accounts is the largest generated population.
const (
	MaxAttacks  = 1 << 20
	MaxAccounts = 1 << 22
)

// Event is one generated event and the action decided for it.
type Event struct {
	// ID names the event in errors.
	ID string
	// Account is the event's account id.
	Account string
	// Victim is, for an attack's event, the account whose owner it harms
	// when that is not Account (traffic.Generator.Victim: the owner of the
	// card a device farm pays with); "" otherwise. Victims are counted
	// apart from honest accounts, so a stop of the owner's own payments
	// with their stolen card is not counted as a false alarm.
	Victim string
	// Scenario is the generator's label: the fraud scenario, "" for honest
	// traffic.
	Scenario string
	// Attack and Role are what traffic.Generator.Attack said of the event;
	// Attack is 0 for honest traffic.
	Attack uint64
	Role   traffic.Role
	// TS is the event time, Unix ms.
	TS int64
	// Amount is the event's amount in minor units; it matters on loss
	// events only.
	Amount int64
	// Action is the decision's action: allow, alert, review, challenge,
	// block or lock.
	Action string
}

// action ranks; stops reports whether a rank stops the event.
const (
	allow = iota
	alert
	review
	challenge
	block
	lock
)

var actionRanks = map[string]int{"allow": allow, "alert": alert, "review": review,
	"challenge": challenge, "block": block, "lock": lock}

func stops(rank int) bool { return rank >= challenge }

// attack is what a Tally keeps of one attack.
type attack struct {
	scenario    int // index in Tally.names
	firstTS     int64
	flagMS      int64 // first event time to first non-allow, -1 until then
	sawLoss     bool  // its first loss event has been seen
	stoppedPre  bool  // stopped at or before its first loss event
	stoppedLate bool
	done        bool // its RoleLast event has been seen
	hasLoss     bool
	lossAmount  int64
	keptAmount  int64
}

// Honest account flags.
const (
	disturbed = 1 << iota
	reviewed
)

// Tally accumulates events in stream order; it is not safe for concurrent
// use. The zero value is not ready: use NewTally.
type Tally struct {
	names   []string       // scenarios in first-seen order
	index   map[string]int // scenario name -> index in names
	events  []eventCounts  // per scenario, by index
	attacks map[uint64]*attack
	honest  map[string]uint8
	// victims are the accounts attacks acted on (their owners' own events
	// are counted apart, see Honest).
	victims  map[string]struct{}
	honestEv eventCounts
	// maxAttacks and maxAccounts are MaxAttacks and MaxAccounts; tests
	// lower them.
	maxAttacks, maxAccounts int
}

type eventCounts struct{ events, flagged int }

// NewTally returns an empty Tally.
func NewTally() *Tally {
	return &Tally{index: map[string]int{}, attacks: map[uint64]*attack{}, honest: map[string]uint8{}, victims: map[string]struct{}{},
		maxAttacks: MaxAttacks, maxAccounts: MaxAccounts}
}

// Add counts one event. Events must come in the order they were generated:
// "before the first loss event" is stream order. It returns an error,
// naming the event, for an unknown action, an attack id without a
// scenario or the reverse, an attack whose scenario changes, or an event
// past MaxAttacks or MaxAccounts; the event is then not counted.
func (t *Tally) Add(e Event) error {
	rank, ok := actionRanks[e.Action]
	if !ok {
		return fmt.Errorf("detection: event %s: unknown action %q (want allow, alert, review, challenge, block or lock)", e.ID, e.Action)
	}
	flagged := 0
	if rank != allow {
		flagged = 1
	}
	if e.Scenario == "" {
		if e.Attack != 0 {
			return fmt.Errorf("detection: event %s: attack %d but no scenario label", e.ID, e.Attack)
		}
		f, seen := t.honest[e.Account]
		if !seen && len(t.honest) >= t.maxAccounts {
			return fmt.Errorf("detection: event %s: more than %d honest accounts", e.ID, t.maxAccounts)
		}
		if stops(rank) {
			f |= disturbed
		} else if rank == review {
			f |= reviewed
		}
		t.honest[e.Account] = f
		t.honestEv.events++
		t.honestEv.flagged += flagged
		return nil
	}
	if e.Attack == 0 {
		return fmt.Errorf("detection: event %s: scenario %q but no attack id", e.ID, e.Scenario)
	}
	for _, acct := range [2]string{e.Account, e.Victim} {
		if _, seen := t.victims[acct]; !seen && acct != "" {
			if len(t.victims) >= t.maxAccounts {
				return fmt.Errorf("detection: event %s: more than %d accounts attacked", e.ID, t.maxAccounts)
			}
			t.victims[acct] = struct{}{}
		}
	}
	si, ok := t.index[e.Scenario]
	a := t.attacks[e.Attack]
	switch {
	case a == nil && len(t.attacks) >= t.maxAttacks:
		return fmt.Errorf("detection: event %s: more than %d attacks", e.ID, t.maxAttacks)
	case a != nil && t.names[a.scenario] != e.Scenario:
		return fmt.Errorf("detection: event %s: attack %d is %s, not %s", e.ID, e.Attack, t.names[a.scenario], e.Scenario)
	}
	if !ok {
		si = len(t.names)
		t.names = append(t.names, e.Scenario)
		t.events = append(t.events, eventCounts{})
		t.index[e.Scenario] = si
	}
	t.events[si].events++
	t.events[si].flagged += flagged
	if a == nil { // the first event seen, RoleFirst or not
		a = &attack{scenario: si, firstTS: e.TS, flagMS: -1}
		t.attacks[e.Attack] = a
	}
	if flagged == 1 && a.flagMS < 0 {
		a.flagMS = max(e.TS-a.firstTS, 0)
	}
	if stops(rank) {
		if !a.sawLoss {
			a.stoppedPre = true
		} else if !a.stoppedPre {
			a.stoppedLate = true
		}
	}
	if e.Role.Has(traffic.RoleLoss) {
		a.sawLoss, a.hasLoss = true, true
		a.lossAmount += e.Amount
		if stops(rank) {
			a.keptAmount += e.Amount
		}
	}
	if e.Role.Has(traffic.RoleLast) {
		a.done = true
	}
	return nil
}

// Scenario is the report of one fraud scenario.
type Scenario struct {
	Name string `json:"name"`
	// Attacks counts the complete attacks; every other attack figure is
	// over them. Incomplete counts those cut off by the end of the stream.
	Attacks    int `json:"attacks"`
	Incomplete int `json:"incomplete"`
	// StoppedBeforeLoss, StoppedLate and Missed split Attacks.
	StoppedBeforeLoss int `json:"stopped_before_loss"`
	StoppedLate       int `json:"stopped_late"`
	Missed            int `json:"missed"`
	// StoppedBeforeLossShare is StoppedBeforeLoss / Attacks.
	StoppedBeforeLossShare float64 `json:"stopped_before_loss_share"`
	// LossAmount is the amount of all loss events, KeptAmount that of loss
	// events whose decision stopped them, KeptShare the ratio (0 without
	// loss events). Amounts are minor units summed across currencies.
	LossAmount int64   `json:"loss_amount"`
	KeptAmount int64   `json:"kept_amount"`
	KeptShare  float64 `json:"kept_share"`
	// Flagged counts attacks with a decision other than allow; FlagP50MS
	// and FlagP90MS are the event time from their first event to that
	// decision.
	Flagged   int   `json:"flagged"`
	FlagP50MS int64 `json:"flag_p50_ms"`
	FlagP90MS int64 `json:"flag_p90_ms"`
	// Events, FlaggedEvents and Recall are per event (flagged: not allow).
	Events        int     `json:"events"`
	FlaggedEvents int     `json:"flagged_events"`
	Recall        float64 `json:"recall"`
}

// Honest is the report of honest traffic.
type Honest struct {
	// Accounts is the accounts with honest events in the tally that no
	// attack acted on; Disturbed those challenged, blocked or locked at
	// least once; Reviewed those with a review and no stopping decision.
	Accounts  int `json:"accounts"`
	Disturbed int `json:"disturbed"`
	Reviewed  int `json:"reviewed"`
	// DisturbedPer10k is Disturbed per 10,000 Accounts.
	DisturbedPer10k float64 `json:"disturbed_per_10k"`
	// Victims is the accounts with honest events that an attack acted on
	// too (the owner's own events), VictimsDisturbed those of them whose
	// owner got a stopping decision: a step-up after a takeover's
	// password reset is the engine working, not a false alarm, so they
	// are counted apart.
	Victims          int `json:"victims"`
	VictimsDisturbed int `json:"victims_disturbed"`
	Events           int `json:"events"`
	FlaggedEvents    int `json:"flagged_events"`
}

// Report is a Tally summed up.
type Report struct {
	// Scenarios come in traffic.Scenarios order, then any other label by
	// name; Total sums them (its FlagP50MS and FlagP90MS are over every
	// attack).
	Scenarios []Scenario `json:"scenarios"`
	Total     Scenario   `json:"total"`
	Honest    Honest     `json:"honest"`
	// Precision is the fraud share of flagged events, Recall the flagged
	// share of fraud events (flagged: not allow).
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
}

// Report sums up what was added so far.
func (t *Tally) Report() Report {
	var r Report
	order := func(name string) int {
		if i := slices.Index(traffic.Scenarios, name); i >= 0 {
			return i
		}
		return len(traffic.Scenarios)
	}
	names := slices.Clone(t.names)
	slices.SortFunc(names, func(a, b string) int {
		if oa, ob := order(a), order(b); oa != ob {
			return oa - ob
		}
		return strings.Compare(a, b)
	})
	flagTimes := make([][]int64, len(t.names))
	byIndex := make([]Scenario, len(t.names))
	for _, a := range t.attacks {
		s := &byIndex[a.scenario]
		if !a.done {
			s.Incomplete++
			continue
		}
		s.Attacks++
		switch {
		case a.stoppedPre:
			s.StoppedBeforeLoss++
		case a.stoppedLate:
			s.StoppedLate++
		default:
			s.Missed++
		}
		s.LossAmount += a.lossAmount
		s.KeptAmount += a.keptAmount
		if a.flagMS >= 0 {
			s.Flagged++
			flagTimes[a.scenario] = append(flagTimes[a.scenario], a.flagMS)
		}
	}
	var all []int64
	tot := &r.Total
	tot.Name = "total"
	for _, name := range names {
		i := t.index[name]
		s := byIndex[i]
		s.Name = name
		s.Events, s.FlaggedEvents = t.events[i].events, t.events[i].flagged
		s.FlagP50MS, s.FlagP90MS = nearestRank(flagTimes[i], 0.5), nearestRank(flagTimes[i], 0.9)
		all = append(all, flagTimes[i]...)
		s.finish()
		r.Scenarios = append(r.Scenarios, s)
		tot.Attacks += s.Attacks
		tot.Incomplete += s.Incomplete
		tot.StoppedBeforeLoss += s.StoppedBeforeLoss
		tot.StoppedLate += s.StoppedLate
		tot.Missed += s.Missed
		tot.LossAmount += s.LossAmount
		tot.KeptAmount += s.KeptAmount
		tot.Flagged += s.Flagged
		tot.Events += s.Events
		tot.FlaggedEvents += s.FlaggedEvents
	}
	tot.FlagP50MS, tot.FlagP90MS = nearestRank(all, 0.5), nearestRank(all, 0.9)
	tot.finish()

	h := &r.Honest
	for acct, f := range t.honest {
		_, victim := t.victims[acct]
		switch {
		case victim:
			h.Victims++
			if f&disturbed != 0 {
				h.VictimsDisturbed++
			}
		case f&disturbed != 0:
			h.Accounts++
			h.Disturbed++
		case f&reviewed != 0:
			h.Accounts++
			h.Reviewed++
		default:
			h.Accounts++
		}
	}
	h.DisturbedPer10k = 10000 * ratio(float64(h.Disturbed), float64(h.Accounts))
	h.Events, h.FlaggedEvents = t.honestEv.events, t.honestEv.flagged
	r.Precision = ratio(float64(tot.FlaggedEvents), float64(tot.FlaggedEvents+h.FlaggedEvents))
	r.Recall = tot.Recall
	return r
}

func (s *Scenario) finish() {
	s.StoppedBeforeLossShare = ratio(float64(s.StoppedBeforeLoss), float64(s.Attacks))
	s.KeptShare = ratio(float64(s.KeptAmount), float64(s.LossAmount))
	s.Recall = ratio(float64(s.FlaggedEvents), float64(s.Events))
}

// nearestRank returns the q quantile of xs by nearest rank (the smallest
// value with at least q of xs at or below it), 0 for none; it sorts xs.
func nearestRank(xs []int64, q float64) int64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	k := int(q*float64(len(xs)) + 0.999999999)
	return xs[min(max(k, 1), len(xs))-1]
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// WriteTable writes r as a table, one line per scenario and a total, then
// the honest accounts and the per-event figures.
func (r Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%-20s %7s %16s %6s %6s %14s %9s %9s %14s\n", "scenario", "attacks", "stopped pre-loss",
		"late", "missed", "amount kept", "flag p50", "flag p90", "events flagged")
	row := func(s Scenario) {
		fmt.Fprintf(&b, "%-20s %7d %8d %6.1f%% %6d %6d %13s %9s %9s %14s", s.Name, s.Attacks, s.StoppedBeforeLoss,
			100*s.StoppedBeforeLossShare, s.StoppedLate, s.Missed, amountKept(s), seconds(s.FlagP50MS, s.Flagged),
			seconds(s.FlagP90MS, s.Flagged), fmt.Sprintf("%d/%d", s.FlaggedEvents, s.Events))
		if s.Incomplete > 0 {
			fmt.Fprintf(&b, "  (+%d cut off)", s.Incomplete)
		}
		b.WriteByte('\n')
	}
	for _, s := range r.Scenarios {
		row(s)
	}
	row(r.Total)
	h := r.Honest
	fmt.Fprintf(&b, "honest accounts disturbed (challenge, block or lock): %d of %d = %.1f per 10,000; reviewed only: %d; victims' owners disturbed: %d of %d\n",
		h.Disturbed, h.Accounts, h.DisturbedPer10k, h.Reviewed, h.VictimsDisturbed, h.Victims)
	fmt.Fprintf(&b, "per event (flagged = not allow): precision %.3f, recall %.3f; honest events flagged %d of %d\n",
		r.Precision, r.Recall, h.FlaggedEvents, h.Events)
	_, err := io.WriteString(w, b.String())
	return err
}

// amountKept is "kept%" of loss amounts, "-" without loss events.
func amountKept(s Scenario) string {
	if s.LossAmount == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*s.KeptShare)
}

// seconds formats a time to flag, "-" when no attack was flagged.
func seconds(ms int64, n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fs", float64(ms)/1000)
}
