package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"riskd/api"
	"riskd/engine"
	"riskd/features"
	"riskd/internal/chtest"
	"riskd/internal/kafkatest"
	"riskd/rules"
	"riskd/streams"
	"riskd/streams/chstore"
)

var accountTestBase = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

// accountTestRiskd serves the account view over a fresh ClickHouse
// database holding a brute-force lock of acct-bf (stored through
// chstore's writer) and a running engine in which acct-bf is locked by
// support until lockedUntil, and points RISKCTL_URL and RISKCTL_TOKEN at it.
func accountTestRiskd(t *testing.T, lockedUntil time.Time) {
	t.Helper()
	store := chtest.Open(t)
	var ds []*engine.Decision
	for i := range 3 {
		ts := accountTestBase.Add(time.Duration(i) * time.Second)
		d := &engine.Decision{EventID: "bf-" + string(rune('1'+i)), AccountID: "acct-bf", EventType: "login",
			EventTS: ts.UnixMilli(), DecidedAt: ts, Action: rules.Allow, RuleSetVersion: "1-aaaaaaaa",
			Features: []engine.FeatureValue{{Name: "failed_logins_10m", Value: float64(i + 1)}}}
		if i == 2 {
			d.Action, d.Score, d.Reason, d.LockUntil = rules.Lock, 100, "rule", ts.Add(time.Hour)
			d.Matched = []engine.RuleHit{{RuleID: "brute-force-lock", Action: rules.Lock, Score: 100}}
			d.Alerts = []engine.AlertMessage{{RuleID: "brute-force-lock", Message: "Your account is locked"}}
		}
		ds = append(ds, d)
	}
	if err := store.WriteDecisions(t.Context(), ds); err != nil {
		t.Fatal(err)
	}
	err := store.WriteLock(t.Context(), chstore.LockRow{AccountID: "acct-bf", Action: "unlock", Reason: "owner verified\nby video",
		Actor: "api:carla", At: accountTestBase.Add(5 * time.Minute), RequestID: "unlock-1"})
	if err != nil {
		t.Fatal(err)
	}

	set, err := features.LoadFile("../../bench/reference/features.yaml", features.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Load("../../bench/reference/rules", set)
	if err != nil {
		t.Fatal(err)
	}
	holder := &rules.Holder{}
	holder.Swap(rs)
	eng := engine.New(engine.Config{Shards: 1}, set, holder)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); eng.Run(ctx) }()
	t.Cleanup(func() { stop(); wg.Wait() })
	if !lockedUntil.IsZero() {
		if err := eng.Do(t.Context(), "acct-bf", func(s *engine.Scorer) { s.Lock("acct-bf", lockedUntil.UnixMilli(), "support:carla") }); err != nil {
			t.Fatal(err)
		}
	}

	tokens, err := api.ParseTokens([]string{"carla:support:support-secret-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	srv := api.NewServer(tokens, slog.New(slog.NewTextHandler(t.Output(), nil)), nil)
	now := func() time.Time { return accountTestBase.Add(time.Hour) }
	// Support's locks are published on the actions topic, as in riskd.
	brokers := []string{kafkatest.Embedded(t).Addr()}
	topics := streams.DefaultTopics()
	if err := streams.EnsureTopics(t.Context(), brokers, 1, topics.All()...); err != nil {
		t.Fatal(err)
	}
	pipe := streams.New(streams.Config{Brokers: brokers, Group: "riskd", Topics: topics}, eng, store, streams.NewMetrics(prometheus.NewRegistry()))
	locks := api.NewLockService(eng, store, pipe, time.Now)
	srv.Handle(api.TimelineRoutes(store, locks, now)...)
	srv.Handle(api.AccountRoutes(locks)...)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	t.Setenv(envURL, hs.URL)
	t.Setenv(envToken, "support-secret-0123456789")
}

func TestAccountShowPrintsTheLiveLockAndTheTimeline(t *testing.T) {
	until := time.Now().UTC().Add(2 * time.Hour).Truncate(time.Second) // the engine's locks run on the real clock
	accountTestRiskd(t, until)
	var out, errOut bytes.Buffer
	if err := runAccount(t.Context(), []string{"show", "acct-bf"}, &out, &errOut); err != nil {
		t.Fatalf("account show: %v\n%s", err, errOut.String())
	}
	want := "account acct-bf: LOCKED now, until " + until.Format(time.DateTime) + " UTC, by support:carla\n" +
		`period 2026-10-21 11:00:00 to 2026-11-20 11:00:00 UTC, 6 entries, newest first

TIME (UTC)               KIND      EVENT     SUMMARY
2026-11-20 10:05:00.000  unlock    unlock-1  by api:carla: owner verified by video
2026-11-20 10:00:02.000  lock      bf-3      until 2026-11-20 11:00:02 by engine: rule:brute-force-lock
2026-11-20 10:00:02.000  alert     bf-3      brute-force-lock: "Your account is locked"
2026-11-20 10:00:02.000  decision  bf-3      login lock score 100; reason rule; rules brute-force-lock; locked until 2026-11-20 11:00:02; failed_logins_10m=3
2026-11-20 10:00:01.000  decision  bf-2      login allow score 0; failed_logins_10m=2
2026-11-20 10:00:00.000  decision  bf-1      login allow score 0; failed_logins_10m=1
`
	if out.String() != want {
		t.Errorf("account show =\n%s\nwant\n%s", out.String(), want)
	}

	// A page of 2, then the rest through the printed cursor; flags may
	// follow the id.
	out.Reset()
	if err := runAccount(t.Context(), []string{"show", "acct-bf", "--limit", "2"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	_, more, ok := strings.Cut(out.String(), "more: riskctl account show --before ")
	if !ok || strings.Count(out.String(), "\n2026-") != 2 {
		t.Fatalf("first page of 2:\n%s", out.String())
	}
	cursor, _, _ := strings.Cut(more, " ")
	out.Reset()
	if err := runAccount(t.Context(), []string{"show", "--before", cursor, "--limit", "10", "acct-bf"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(out.String(), "\n2026-"); got != 4 || strings.Contains(out.String(), "more:") {
		t.Errorf("second page: %d rows\n%s", got, out.String())
	}

	out.Reset()
	if err := runAccount(t.Context(), []string{"show", "--json", "acct-bf"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"live":{"locked":true,`) || !strings.Contains(out.String(), `"matched_rules":["brute-force-lock"]`) {
		t.Errorf("--json: %s", out.String())
	}
}

func TestAccountShowRefusesBadArguments(t *testing.T) {
	accountTestRiskd(t, time.Time{})
	for _, c := range []struct {
		args []string
		want string
		code int
	}{
		{[]string{"show"}, "account show: give one account id, got 0 arguments", 2},
		{[]string{"show", "a", "b"}, "account show: give one account id, got 2 arguments", 2},
		{[]string{"show", "--limit", "1001", "a"}, "account show: --limit 1001: want 1 to 1000", 2},
		{[]string{"show", "--from", "last week", "acct-bf"},
			`account show acct-bf: riskd answered 400 Bad Request: from: "last week": want an RFC 3339 time (2026-11-24T12:00:00Z) or a date (2026-11-24)`, 1},
		{[]string{"show", "acct-nobody"}, "account show acct-nobody: riskd answered 404 Not Found: account acct-nobody: nothing stored and not locked", 1},
	} {
		var out, errOut bytes.Buffer
		err := runAccount(t.Context(), c.args, &out, &errOut)
		if err == nil || err.Error() != c.want || exitCode(err) != c.code {
			t.Errorf("%v: %v (exit %d)\nwant %s (exit %d)", c.args, err, exitCode(err), c.want, c.code)
		}
	}
	// Not locked now: said so on top.
	var out, errOut bytes.Buffer
	if err := runAccount(t.Context(), []string{"show", "acct-bf"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if first, _, _ := strings.Cut(out.String(), "\n"); first != "account acct-bf: not locked now" {
		t.Errorf("first line %q", first)
	}
}

// Support's lock and unlock through riskctl reach the engine: account show
// reads the lock back from it, then no lock after the unlock.
func TestAccountLockAndUnlockReachTheEngine(t *testing.T) {
	accountTestRiskd(t, time.Time{})
	var out, errOut bytes.Buffer
	if err := runAccount(t.Context(), []string{"lock", "--for", "2h", "--reason", "caller could not answer the questions", "acct-x"}, &out, &errOut); err != nil {
		t.Fatalf("account lock: %v\n%s", err, errOut.String())
	}
	if !strings.HasPrefix(out.String(), "acct-x locked until ") || !strings.HasSuffix(out.String(), " UTC by api:carla: caller could not answer the questions\n") {
		t.Errorf("lock printed %q", out.String())
	}
	out.Reset()
	if err := runAccount(t.Context(), []string{"show", "acct-x"}, &out, &errOut); err != nil {
		t.Fatalf("account show: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "account acct-x: LOCKED now") {
		t.Errorf("after the lock, show printed:\n%s", out.String())
	}
	out.Reset()
	if err := runAccount(t.Context(), []string{"unlock", "acct-x", "--reason", "owner verified by video call", "--verified-by", "video_call"}, &out, &errOut); err != nil {
		t.Fatalf("account unlock: %v\n%s", err, errOut.String())
	}
	if want := "acct-x unlocked by api:carla (verified: video_call; lock by support:carla; nothing reset): owner verified by video call\n"; out.String() != want {
		t.Errorf("unlock printed %q, want %q", out.String(), want)
	}
	out.Reset()
	if err := runAccount(t.Context(), []string{"show", "acct-x"}, &out, &errOut); err != nil {
		t.Fatalf("account show: %v\n%s", err, errOut.String())
	}
	if strings.Contains(out.String(), "LOCKED now") {
		t.Errorf("after the unlock, show printed:\n%s", out.String())
	}
	for _, args := range [][]string{{"lock", "--reason", "r", "acct-x"}, {"lock", "--for", "2h", "acct-x"}, {"unlock", "--reason", "r"},
		{"unlock", "--reason", "r", "acct-x"}, {"lock", "--for", "2h", "--indefinite", "--reason", "r", "acct-x"}} {
		if err := runAccount(t.Context(), args, &out, &errOut); codeOf(err) != 2 {
			t.Errorf("%v: %v, want exit 2", args, err)
		}
	}
	// Not locked any more: exit 4; never seen: exit 3; a method riskd
	// does not know: its 400, exit 1.
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"unlock", "--reason", "r", "--verified-by", "video_call", "acct-x"}, 4, "account unlock acct-x: not locked now, nothing to unlock: riskd answered 409 Conflict: account acct-x: account is not locked"},
		{[]string{"unlock", "--reason", "r", "--verified-by", "video_call", "acct-nobody"}, 3, "account unlock acct-nobody: no such account (riskd has stored nothing of it): riskd answered 404 Not Found: account acct-nobody: unknown account: nothing stored and not locked"},
		{[]string{"unlock", "--reason", "r", "--verified-by", "a_hunch", "acct-x"}, 1, "account unlock acct-x: riskd answered 400 Bad Request: verification: required, how the owner's identity was verified: one of id_document, video_call, security_questions, in_branch, sms_otp"},
	} {
		err := runAccount(t.Context(), c.args, &out, &errOut)
		if codeOf(err) != c.code || err.Error() != c.want {
			t.Errorf("%v: %v (exit %d)\nwant %s (exit %d)", c.args, err, codeOf(err), c.want, c.code)
		}
	}
	// An indefinite lock: no end, shown as such.
	out.Reset()
	if err := runAccount(t.Context(), []string{"lock", "--indefinite", "--reason", "account takeover under investigation", "acct-x"}, &out, &errOut); err != nil {
		t.Fatalf("account lock --indefinite: %v\n%s", err, errOut.String())
	}
	if want := "acct-x locked until unlocked (no end) by api:carla: account takeover under investigation\n"; out.String() != want {
		t.Errorf("indefinite lock printed %q, want %q", out.String(), want)
	}
	out.Reset()
	if err := runAccount(t.Context(), []string{"show", "acct-x"}, &out, &errOut); err != nil {
		t.Fatalf("account show: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "account acct-x: LOCKED now, without end, by support:carla") {
		t.Errorf("after the indefinite lock, show printed:\n%s", out.String())
	}
}
