package detection

import (
	"strings"
	"testing"

	"riskd/bench/traffic"
)

const (
	first = traffic.RoleFirst
	loss  = traffic.RoleLoss
	last  = traffic.RoleLast
)

// handMade is a stream with one attack of each outcome and honest
// accounts disturbed, reviewed and left alone.
var handMade = []Event{
	// Attack 1 is stopped on its loss event: counts as before loss.
	{ID: "1", Account: "a", Scenario: "account_takeover", Attack: 1, Role: first, TS: 1000, Action: "allow"},
	{ID: "2", Account: "h1", TS: 1500, Action: "challenge"},
	{ID: "3", Account: "a", Scenario: "account_takeover", Attack: 1, TS: 2000, Action: "alert"},
	{ID: "4", Account: "a", Scenario: "account_takeover", Attack: 1, Role: loss, TS: 5000, Amount: 30000, Action: "block"},
	{ID: "5", Account: "a", Scenario: "account_takeover", Attack: 1, Role: loss | last, TS: 6000, Amount: 10000, Action: "lock"},
	// Attack 2 is stopped after its first loss event: late.
	{ID: "6", Account: "b", Scenario: "account_takeover", Attack: 2, Role: first, TS: 10000, Action: "allow"},
	{ID: "7", Account: "b", Scenario: "account_takeover", Attack: 2, Role: loss, TS: 11000, Amount: 20000, Action: "review"},
	{ID: "8", Account: "h1", TS: 11500, Action: "block"}, // h1 again: counts once
	{ID: "9", Account: "b", Scenario: "account_takeover", Attack: 2, Role: loss | last, TS: 14000, Amount: 20000, Action: "challenge"},
	// Attack 3 is never flagged.
	{ID: "10", Account: "c", Scenario: "scam_payee", Attack: 3, Role: first, TS: 20000, Action: "allow"},
	{ID: "11", Account: "h2", TS: 20500, Action: "review"},
	{ID: "12", Account: "c", Scenario: "scam_payee", Attack: 3, Role: loss | last, TS: 21000, Amount: 50000, Action: "allow"},
	// Attack 4 has no loss event and is stopped: before loss.
	{ID: "13", Account: "d", Scenario: "brute_force", Attack: 4, Role: first, TS: 30000, Action: "allow"},
	{ID: "14", Account: "d", Scenario: "brute_force", Attack: 4, TS: 31000, Action: "allow"},
	{ID: "15", Account: "d", Scenario: "brute_force", Attack: 4, Role: last, TS: 34000, Action: "lock"},
	// Attack 5 is cut off by the end of the stream.
	{ID: "16", Account: "e", Scenario: "brute_force", Attack: 5, Role: first, TS: 40000, Action: "block"},
	{ID: "17", Account: "h3", TS: 41000, Action: "alert"},
	{ID: "18", Account: "h4", TS: 42000, Action: "allow"},
	// The owners of attacked accounts a and d: a's stepped up after the
	// takeover (counted apart, not as a false alarm), d's let through.
	{ID: "19", Account: "a", TS: 43000, Action: "challenge"},
	{ID: "20", Account: "d", TS: 44000, Action: "allow"},
}

func TestReportArithmetic(t *testing.T) {
	tally := NewTally()
	for _, e := range handMade {
		if err := tally.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	r := tally.Report()
	if len(r.Scenarios) != 3 || r.Scenarios[0].Name != "brute_force" || r.Scenarios[1].Name != "account_takeover" ||
		r.Scenarios[2].Name != "scam_payee" {
		t.Fatalf("scenarios %+v, want brute_force, account_takeover, scam_payee", r.Scenarios)
	}
	bf, ato, scam := r.Scenarios[0], r.Scenarios[1], r.Scenarios[2]
	want := []struct {
		name      string
		got, want any
	}{
		{"takeover attacks", ato.Attacks, 2},
		{"takeover stopped on its loss event counts before loss", ato.StoppedBeforeLoss, 1},
		{"takeover stopped after its first loss event is late", ato.StoppedLate, 1},
		{"takeover missed", ato.Missed, 0},
		{"takeover share stopped before loss", ato.StoppedBeforeLossShare, 0.5},
		{"takeover loss amount", ato.LossAmount, int64(80000)},
		{"takeover amount kept: blocked, locked and challenged, not reviewed", ato.KeptAmount, int64(60000)},
		{"takeover kept share", ato.KeptShare, 0.75},
		{"takeover flagged: alert and review count", ato.Flagged, 2},
		{"takeover time to flag p50", ato.FlagP50MS, int64(1000)},
		{"takeover time to flag p90", ato.FlagP90MS, int64(1000)},
		{"takeover events", ato.Events, 7},
		{"takeover events flagged", ato.FlaggedEvents, 5},
		{"scam never flagged is missed", scam.Missed, 1},
		{"scam flagged", scam.Flagged, 0},
		{"scam kept", scam.KeptAmount, int64(0)},
		{"brute force without loss stopped counts before loss", bf.StoppedBeforeLoss, 1},
		{"brute force cut off is not an attack", bf.Attacks, 1},
		{"brute force cut off", bf.Incomplete, 1},
		{"brute force time to flag", bf.FlagP90MS, int64(4000)},
		{"brute force events include the cut-off attack's", bf.Events, 4},
		{"total attacks", r.Total.Attacks, 4},
		{"total stopped before loss", r.Total.StoppedBeforeLoss, 2},
		{"total time to flag p50 over 1000, 1000, 4000", r.Total.FlagP50MS, int64(1000)},
		{"total time to flag p90", r.Total.FlagP90MS, int64(4000)},
		{"honest accounts: the attacked ones apart", r.Honest.Accounts, 4},
		{"victims with honest events", r.Honest.Victims, 2},
		{"victims' owners disturbed", r.Honest.VictimsDisturbed, 1},
		{"honest account challenged then blocked counts once", r.Honest.Disturbed, 1},
		{"honest reviewed only", r.Honest.Reviewed, 1},
		{"disturbed per 10k", r.Honest.DisturbedPer10k, 2500.0},
		{"honest events flagged", r.Honest.FlaggedEvents, 5},
		{"precision: 7 fraud of 12 flagged", r.Precision, 7.0 / 12},
		{"recall: 7 of 13 fraud events", r.Recall, 7.0 / 13},
	}
	for _, w := range want {
		if w.got != w.want {
			t.Errorf("%s: got %v, want %v", w.name, w.got, w.want)
		}
	}
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"account_takeover           2        1   50.0%      1      0         75.0%      1.0s      1.0s            5/7\n",
		"scam_payee                 1        0    0.0%      0      1          0.0%         -         -            0/2\n",
		"brute_force                1        1  100.0%      0      0             -      4.0s      4.0s            2/4  (+1 cut off)\n",
		"honest accounts disturbed (challenge, block or lock): 1 of 4 = 2500.0 per 10,000; reviewed only: 1; victims' owners disturbed: 1 of 2\n",
	} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("table lacks %q:\n%s", line, b.String())
		}
	}
}

func TestNearestRank(t *testing.T) {
	xs := []int64{50, 10, 40, 20, 30, 60, 70, 80, 90, 100}
	for _, c := range []struct {
		q    float64
		want int64
	}{{0.5, 50}, {0.9, 90}, {0.91, 100}, {1, 100}, {0, 10}} {
		if got := nearestRank(xs, c.q); got != c.want {
			t.Errorf("q %v: %d, want %d", c.q, got, c.want)
		}
	}
	if got := nearestRank(nil, 0.5); got != 0 {
		t.Errorf("no values: %d", got)
	}
}

func TestBadInput(t *testing.T) {
	for _, c := range []struct {
		name string
		ev   Event
		want string
	}{
		{"an unknown action", Event{ID: "x1", Action: "deny"},
			`detection: event x1: unknown action "deny" (want allow, alert, review, challenge, block or lock)`},
		{"an attack without a scenario", Event{ID: "x2", Attack: 7, Action: "allow"},
			"detection: event x2: attack 7 but no scenario label"},
		{"a scenario without an attack", Event{ID: "x3", Scenario: "scam_payee", Action: "allow"},
			`detection: event x3: scenario "scam_payee" but no attack id`},
		{"an attack changing scenario", Event{ID: "x4", Scenario: "scam_payee", Attack: 1, Action: "allow"},
			"detection: event x4: attack 1 is brute_force, not scam_payee"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tally := NewTally()
			if err := tally.Add(Event{ID: "x0", Scenario: "brute_force", Attack: 1, Role: first, Action: "allow"}); err != nil {
				t.Fatal(err)
			}
			err := tally.Add(c.ev)
			if err == nil || err.Error() != c.want {
				t.Fatalf("got %v, want %s", err, c.want)
			}
		})
	}
}

func TestBounds(t *testing.T) {
	if tally := NewTally(); tally.maxAttacks != MaxAttacks || tally.maxAccounts != MaxAccounts {
		t.Fatalf("NewTally bounds %d attacks, %d accounts", tally.maxAttacks, tally.maxAccounts)
	}
	tally := NewTally()
	tally.maxAttacks, tally.maxAccounts = 2, 2
	for i, e := range []Event{
		{ID: "a1", Scenario: "brute_force", Attack: 1, Action: "allow"},
		{ID: "a2", Scenario: "brute_force", Attack: 2, Action: "allow"},
		{ID: "a2-again", Scenario: "brute_force", Attack: 2, Action: "allow"},
		{ID: "h1", Account: "acct-1", Action: "allow"},
		{ID: "h2", Account: "acct-2", Action: "allow"},
		{ID: "h2-again", Account: "acct-2", Action: "block"},
	} {
		if err := tally.Add(e); err != nil {
			t.Fatalf("event %d within the bounds: %v", i, err)
		}
	}
	err := tally.Add(Event{ID: "a3", Scenario: "brute_force", Attack: 3, Action: "allow"})
	if want := "detection: event a3: more than 2 attacks"; err == nil || err.Error() != want {
		t.Errorf("attack past the bound: %v, want %s", err, want)
	}
	err = tally.Add(Event{ID: "h3", Account: "acct-3", Action: "allow"})
	if want := "detection: event h3: more than 2 honest accounts"; err == nil || err.Error() != want {
		t.Errorf("account past the bound: %v, want %s", err, want)
	}
	if r := tally.Report(); r.Scenarios[0].Events != 3 || r.Honest.Events != 3 {
		t.Errorf("events past a bound were counted: %+v", r)
	}
}

// TestCardOwnerIsAVictim: a device farm pays from its own accounts with a
// card stolen from an honest owner; the owner's payments stopped because
// of it are the engine protecting a victim, not a false alarm.
func TestCardOwnerIsAVictim(t *testing.T) {
	tally := NewTally()
	for _, e := range []Event{
		{ID: "1", Account: "owner", TS: 1000, Action: "allow"},
		{ID: "2", Account: "farm-1", Victim: "owner", Scenario: "device_farm", Attack: 1, Role: first | loss | last,
			TS: 2000, Amount: 900, Action: "allow"},
		{ID: "3", Account: "owner", TS: 3000, Action: "block"},
		{ID: "4", Account: "bystander", TS: 4000, Action: "challenge"},
	} {
		if err := tally.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	h := tally.Report().Honest
	if h.Accounts != 1 || h.Disturbed != 1 || h.Victims != 1 || h.VictimsDisturbed != 1 {
		t.Errorf("honest %+v, want the bystander disturbed and the card owner a disturbed victim", h)
	}
}
