package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"riskd/api"
	"riskd/engine"
	"riskd/features"
	"riskd/internal/apitest"
	"riskd/internal/chtest"
	"riskd/rules"
	"riskd/streams/chstore"
)

// viewNow is the timeline tests' wall clock: the default period ends here.
var viewNow = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// timelineRig serves the account view over a fresh ClickHouse database
// and a running engine (the live lock state), as the daemon wires them.
type timelineRig struct {
	store *chstore.Store
	eng   *engine.Engine
	c     apitest.Client
}

func newTimelineRig(t *testing.T) *timelineRig {
	t.Helper()
	r := &timelineRig{store: chtest.Open(t)}
	set, err := features.LoadFile("../bench/reference/features.yaml", features.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Load("../bench/reference/rules", set)
	if err != nil {
		t.Fatal(err)
	}
	holder := &rules.Holder{}
	holder.Swap(rs)
	r.eng = engine.New(engine.Config{Shards: 2}, set, holder)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.eng.Run(ctx) }()

	srv := api.NewServer(apitest.Tokens(t), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	live := api.NewLockService(r.eng, r.store, nil, time.Now) // LockState reads the engine only
	srv.Handle(api.TimelineRoutes(r.store, live, func() time.Time { return viewNow })...)
	hs := httptest.NewServer(srv)
	r.c = apitest.Client{T: t, Base: hs.URL}
	t.Cleanup(func() { hs.Close(); stop(); wg.Wait() })
	return r
}

// storeBruteForce stores, through chstore's writer, what the engine
// records for a brute-force attack on acct-view: four failed logins (the
// last one locked the account: a lock row, an alert and a label), then
// support's unlock; and one lock of another account.
func (r *timelineRig) storeBruteForce(t *testing.T) {
	t.Helper()
	base := viewNow.Add(-2 * time.Hour)
	var ds []*engine.Decision
	for i := range 4 {
		ts := base.Add(time.Duration(i) * time.Second)
		d := &engine.Decision{EventID: fmt.Sprintf("bf-%d", i), AccountID: "acct-view", EventType: "login",
			EventTS: ts.UnixMilli(), DecidedAt: ts.Add(time.Millisecond), Action: rules.Allow, RuleSetVersion: "1-aaaaaaaa",
			Features: []engine.FeatureValue{{Name: "failed_logins_10m", Value: float64(i + 1)}}}
		if i == 1 {
			d.Late, d.LateFor = true, []string{"account_id"}
		}
		if i == 3 {
			d.Action, d.Score, d.Reason, d.LockUntil = rules.Lock, 100, "rule", ts.Add(time.Hour)
			d.Matched = []engine.RuleHit{{RuleID: "brute-force-lock", Action: rules.Lock, Score: 100}}
			d.Shadow = []engine.RuleHit{{RuleID: "new-device", Action: rules.Review}}
			d.Alerts = []engine.AlertMessage{{RuleID: "brute-force-lock", Message: "Your account is locked"}}
			d.Label = "brute_force"
		}
		ds = append(ds, d)
	}
	other := *ds[3]
	other.EventID, other.AccountID = "ot-3", "acct-other"
	ds = append(ds, &other)
	if err := r.store.WriteDecisions(t.Context(), ds); err != nil {
		t.Fatal(err)
	}
	err := r.store.WriteLock(t.Context(), chstore.LockRow{AccountID: "acct-view", Action: "unlock",
		Reason: "owner verified by video call", Actor: "api:support-token", At: base.Add(10 * time.Minute), RequestID: "unlock-1"})
	if err != nil {
		t.Fatal(err)
	}
}

func (r *timelineRig) get(t *testing.T, role api.Role, path string, want int, out any) {
	t.Helper()
	code, body := r.c.Do(role, "GET", path, nil)
	if code != want {
		t.Fatalf("GET %s as %s: %d %s, want %d", path, role, code, body, want)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, body)
		}
	}
}

func TestTimelineShowsWhyAnAccountWasLockedAndTheLiveLock(t *testing.T) {
	r := newTimelineRig(t)
	r.storeBruteForce(t)
	// The engine's locks run on the real wall clock (engine.Config.Now).
	until := time.Now().UTC().Add(2 * time.Hour).Truncate(time.Millisecond)
	err := r.eng.Do(t.Context(), "acct-view", func(s *engine.Scorer) { s.Lock("acct-view", until.UnixMilli(), "support:support-token") })
	if err != nil {
		t.Fatal(err)
	}

	var tl api.TimelineResponse
	r.get(t, api.RoleSupport, "/v1/accounts/acct-view/timeline", 200, &tl) // the last 30 days
	if !tl.Live.Locked || !tl.Live.Until.Equal(until) || tl.Live.By != "support:support-token" {
		t.Errorf("live: %+v", tl.Live)
	}
	if !tl.To.Equal(viewNow) || !tl.From.Equal(viewNow.Add(-30*24*time.Hour)) || tl.Next != "" {
		t.Errorf("period %s to %s, next %q", tl.From, tl.To, tl.Next)
	}
	var kinds []string
	for _, e := range tl.Entries {
		kinds = append(kinds, e.Kind+":"+e.EventID)
	}
	want := []string{"unlock:unlock-1", "label:bf-3", "lock:bf-3", "alert:bf-3", "decision:bf-3",
		"decision:bf-2", "decision:bf-1", "decision:bf-0"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("entries %v\nwant    %v", kinds, want)
	}
	e := tl.Entries
	if e[0].Actor != "api:support-token" || e[0].Reason != "owner verified by video call" {
		t.Errorf("unlock %+v", e[0])
	}
	if e[1].Label != "brute_force" || e[1].Source != "event" {
		t.Errorf("label %+v", e[1])
	}
	if e[2].Reason != "rule:brute-force-lock" || e[2].Actor != "engine" || e[2].Until.IsZero() {
		t.Errorf("lock %+v", e[2])
	}
	if e[3].RuleID != "brute-force-lock" || e[3].Message != "Your account is locked" {
		t.Errorf("alert %+v", e[3])
	}
	d := e[4]
	if d.DecisionDetail == nil || d.Action != "lock" || !slices.Equal(d.MatchedRules, []string{"brute-force-lock"}) ||
		!slices.Equal(d.ShadowRules, []string{"new-device"}) ||
		!slices.Equal(d.Features, []api.FeatureValue{{Name: "failed_logins_10m", Value: 4}}) || d.EventType != "login" {
		t.Errorf("decision %+v %+v", d, d.DecisionDetail)
	}

	// Pages of 3 follow each other through next, losing and repeating nothing.
	var paged []string
	before := ""
	for range 10 {
		var p api.TimelineResponse
		r.get(t, api.RoleViewer, "/v1/accounts/acct-view/timeline?limit=3&before="+url.QueryEscape(before), 200, &p)
		for _, e := range p.Entries {
			paged = append(paged, e.Kind+":"+e.EventID)
		}
		if before = p.Next; before == "" {
			break
		}
	}
	if !slices.Equal(paged, want) {
		t.Errorf("paged %v", paged)
	}

	// An account locked in the engine with nothing stored is no 404.
	err = r.eng.Do(t.Context(), "acct-fresh", func(s *engine.Scorer) { s.Lock("acct-fresh", until.UnixMilli(), "brute-force-lock") })
	if err != nil {
		t.Fatal(err)
	}
	var fresh api.TimelineResponse
	r.get(t, api.RoleAnalyst, "/v1/accounts/acct-fresh/timeline", 200, &fresh)
	if !fresh.Live.Locked || fresh.Live.By != "brute-force-lock" || len(fresh.Entries) != 0 {
		t.Errorf("acct-fresh: %+v", fresh)
	}
	// Known, but not in the period asked: 200 and no entries.
	var old api.TimelineResponse
	r.get(t, api.RoleSupport, "/v1/accounts/acct-other/timeline?from=2026-01-01&to=2026-02-01", 200, &old)
	if len(old.Entries) != 0 || old.Live.Locked {
		t.Errorf("acct-other in January: %+v", old)
	}
	// A lock that has ended is not live: with nothing stored, 404.
	err = r.eng.Do(t.Context(), "acct-nobody", func(s *engine.Scorer) {
		s.Lock("acct-nobody", time.Now().Add(-time.Second).UnixMilli(), "brute-force-lock")
	})
	if err != nil {
		t.Fatal(err)
	}
	code, body := r.c.Do(api.RoleSupport, "GET", "/v1/accounts/acct-nobody/timeline", nil)
	if code != 404 || string(body) != `{"error":"account acct-nobody: nothing stored and not locked"}`+"\n" {
		t.Errorf("unknown account: %d %s", code, body)
	}
}

func TestDecisionSearch(t *testing.T) {
	r := newTimelineRig(t)
	r.storeBruteForce(t)
	ids := func(path string) []string {
		t.Helper()
		var got []string
		before := ""
		for range 10 {
			var p api.DecisionsResponse
			r.get(t, api.RoleSupport, path+"&limit=1&before="+url.QueryEscape(before), 200, &p)
			for _, e := range p.Decisions {
				got = append(got, e.AccountID+"/"+e.EventID)
			}
			if before = p.Next; before == "" {
				break
			}
		}
		return got
	}
	if got := ids("/v1/decisions?rule=new-device"); !slices.Equal(got, []string{"acct-view/bf-3", "acct-other/ot-3"}) {
		t.Errorf("shadow rule new-device: %v", got)
	}
	if got := ids("/v1/decisions?action=LOCK&account=acct-other"); !slices.Equal(got, []string{"acct-other/ot-3"}) {
		t.Errorf("locks of acct-other: %v", got)
	}
	if got := ids("/v1/decisions?account=acct-view&action=allow"); len(got) != 3 {
		t.Errorf("allowed of acct-view: %v", got)
	}
	if got := ids("/v1/decisions?late=true"); !slices.Equal(got, []string{"acct-view/bf-1"}) {
		t.Errorf("late: %v, want the one late event", got)
	}
	if got := ids("/v1/decisions?late=false&account=acct-view"); len(got) != 4 {
		t.Errorf("late=false of acct-view: %v, want all four", got)
	}
	if got := ids("/v1/decisions?rule=no-such-rule"); len(got) != 0 {
		t.Errorf("no-such-rule: %v", got)
	}
}

func TestAccountViewRefusesBadParameters(t *testing.T) {
	r := newTimelineRig(t)
	for _, tc := range []struct{ path, want string }{
		{"/v1/accounts/acct-1/timeline?limit=1001", `limit "1001": want a number from 1 to 1000`},
		{"/v1/accounts/acct-1/timeline?limit=0", `limit "0": want a number from 1 to 1000`},
		{"/v1/accounts/acct-1/timeline?from=2025-01-01&to=2026-01-03", "period: 2025-01-01T00:00:00Z to 2026-01-03T00:00:00Z is longer than 8784h"},
		{"/v1/accounts/acct-1/timeline?from=2026-01-02&to=2026-01-01", "period: from 2026-01-02T00:00:00Z is not before to 2026-01-01T00:00:00Z"},
		{"/v1/accounts/acct-1/timeline?from=yesterday", `from: "yesterday": want an RFC 3339 time (2026-11-24T12:00:00Z) or a date (2026-11-24)`},
		{"/v1/accounts/acct-1/timeline?form=2026-01-01", `unknown parameter "form": want from, to, limit, before`},
		{"/v1/accounts/acct-1/timeline?limit=1&limit=2", "limit: given 2 times"},
		{"/v1/accounts/acct-1/timeline?before=bm90LWEtY3Vyc29y", "before: not a cursor from a previous page's next"},
		{"/v1/decisions?from=2026-01-01&to=2026-02-02", "period: 2026-01-01T00:00:00Z to 2026-02-02T00:00:00Z is longer than 744h"},
		{"/v1/decisions?action=refund", `action: unknown action "refund": want one of allow, alert, review, challenge, block, lock`},
		{"/v1/decisions?late=yes", "late: want true or false"},
		{"/v1/decisions?account=a%20b", "account: want 1 to 128 printable characters without spaces"},
		{"/v1/decisions?rule=" + strings.Repeat("r", 257), "rule: longer than 256 bytes"},
		{"/v1/accounts/" + strings.Repeat("a", 129) + "/timeline", "invalid account id: want 1 to 128 printable characters without spaces"},
	} {
		code, body := r.c.Do(api.RoleViewer, "GET", tc.path, nil)
		var e api.ErrorBody
		if code != 400 || json.Unmarshal(body, &e) != nil || e.Error != tc.want {
			t.Errorf("GET %s: %d %s\nwant 400 %s", tc.path, code, body, tc.want)
		}
	}
	// One account may be searched over a year; all accounts over 31 days.
	r.get(t, api.RoleViewer, "/v1/decisions?account=acct-1&from=2026-01-01&to=2026-12-01", 200, nil)
	r.get(t, api.RoleViewer, "/v1/decisions?from=2026-01-01&to=2026-02-01", 200, nil)
}

func TestAccountViewRoles(t *testing.T) {
	r := newTimelineRig(t)
	r.storeBruteForce(t)
	for _, path := range []string{"/v1/accounts/acct-view/timeline", "/v1/decisions?account=acct-view"} {
		for _, role := range []api.Role{api.RoleSupport, api.RoleAnalyst, api.RoleViewer, api.RoleAdmin, api.RoleHook} {
			want := 200
			if role == api.RoleHook {
				want = 403
			}
			if code := r.c.Status(role, "GET", path, ""); code != want {
				t.Errorf("GET %s as %s: %d, want %d", path, role, code, want)
			}
		}
	}
	for _, pattern := range []string{"GET /v1/accounts/{id}/timeline", "GET /v1/decisions"} {
		if got := apitest.RouteRoles[pattern]; !slices.Equal(got, []api.Role{api.RoleAnalyst, api.RoleSupport, api.RoleViewer}) {
			t.Errorf("apitest.RouteRoles[%s] = %v", pattern, got)
		}
	}
}
