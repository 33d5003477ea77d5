package rulesapi_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"riskd/engine"
	"riskd/rules"
)

// scamReview is baseFiles' scam-payee sent to review instead of blocked.
var scamReview = strings.Replace(baseFiles["payments.yaml"], "action: block", "action: review", 1)

// A shadow publish installs a candidate on every instance without making
// a version; the report counts agreement over decisions stored through
// the real writer; promote makes it live and clears it; drop clears it.
func TestACandidateRunsInShadowIsReportedAndIsPromotedOrDropped(t *testing.T) {
	f := newFleet(t)
	in := f.startInstance(t)
	other := f.startInstance(t)
	live := in.holder.Load().Version

	// A candidate that does not compile is refused with its position.
	status, out := in.call(t, analystToken, "POST", "/v1/rules/publish", map[string]any{"shadow": true, "message": "broken",
		"patch": map[string]string{"payments.yaml": "- id: broken\n  when: event.amount >\n  action: block\n"}})
	if d, _ := out["details"].(map[string]any); status != http.StatusUnprocessableEntity || d["rule_id"] != "broken" || d["line"] != 2.0 || d["column"] != 22.0 {
		t.Fatalf("a candidate that does not compile: %d %v, want 422 naming rule broken at 2:22", status, out)
	}
	if status, _ := in.call(t, analystToken, "POST", "/v1/rules/publish", map[string]any{"shadow": true,
		"patch": map[string]string{"payments.yaml": scamReview}}); status != http.StatusBadRequest {
		t.Errorf("a shadow publish without a message: %d, want 400", status)
	}
	if status, _ := in.call(t, analystToken, "GET", "/v1/rules/candidate", nil); status != http.StatusNotFound {
		t.Errorf("report with no candidate: %d, want 404", status)
	}

	pub := in.mustCall(t, "POST", "/v1/rules/publish", map[string]any{"shadow": true, "message": "review scam payees instead",
		"patch": map[string]string{"payments.yaml": scamReview}})
	cand := in.holder.LoadCandidate()
	if cand == nil || pub["candidate_version"] != cand.Version.String() || pub["live_version"] != live.String() {
		t.Fatalf("shadow publish answered %v; candidate installed %v", pub, cand)
	}
	if got := in.holder.Load().Version; got != live {
		t.Fatalf("the live set is %v after a shadow publish, want %v still", got, live)
	}
	if running := in.mustCall(t, "GET", "/v1/rules", nil); running["version"] != live.String() {
		t.Errorf("GET /v1/rules shows %v, want the live %s", running["version"], live)
	}
	if hist := in.mustCall(t, "GET", "/v1/rules/versions", nil)["versions"].([]any); len(hist) != 1 {
		t.Errorf("history has %d versions after a shadow publish, want the start-up one only", len(hist))
	}
	waitFor(t, "the other instance installs the candidate", func() bool {
		c := other.holder.LoadCandidate()
		return c != nil && c.Version == cand.Version
	})

	// Decisions as the engine records them, through the real writer: one
	// disagreement, two agreements, one without the candidate and one of
	// another candidate version (neither counts).
	now := time.Now()
	ver := cand.Version.String()
	mk := func(id string, live, c rules.Action, version string, matched ...string) *engine.Decision {
		return &engine.Decision{EventID: id, AccountID: "a-" + id, EventType: "payment", EventTS: now.UnixMilli(),
			DecidedAt: now, Action: live, RuleSetVersion: live.String(), Raw: []byte(`{}`),
			Candidate: engine.CandidateOutcome{Version: version, Action: c, Matched: matched}}
	}
	if err := f.store.WriteDecisions(t.Context(), []*engine.Decision{
		mk("e1", rules.Block, rules.Review, ver, "scam-payee"),
		mk("e2", rules.Allow, rules.Allow, ver),
		mk("e3", rules.Allow, rules.Allow, ver),
		mk("e4", rules.Allow, rules.Allow, ""),
		mk("e5", rules.Allow, rules.Block, "9-00000000"),
	}); err != nil {
		t.Fatal(err)
	}
	status, rep := in.call(t, viewerToken, "GET", "/v1/rules/candidate", nil)
	matrix, _ := json.Marshal(rep["matrix"])
	counts, _ := json.Marshal(rep["rule_counts"])
	if status != http.StatusOK || rep["version"] != ver || rep["author"] != "alice" || rep["message"] != "review scam payees instead" ||
		rep["compared"] != 3.0 || rep["agreed"] != 2.0 ||
		string(matrix) != `[{"candidate":"allow","count":2,"live":"allow"},{"candidate":"review","count":1,"examples":["e1"],"live":"block"}]` ||
		string(counts) != `[{"count":1,"rule_id":"scam-payee"}]` {
		t.Fatalf("report: %d %v\nmatrix %s\nrule counts %s", status, rep, matrix, counts)
	}

	// Roles: a viewer reads, only an analyst promotes or drops.
	if status, _ := in.call(t, viewerToken, "POST", "/v1/rules/candidate/promote", map[string]any{"message": "go"}); status != http.StatusForbidden {
		t.Errorf("viewer promote: %d, want 403", status)
	}
	if status, _ := in.call(t, viewerToken, "DELETE", "/v1/rules/candidate", nil); status != http.StatusForbidden {
		t.Errorf("viewer drop: %d, want 403", status)
	}
	if status, _ := in.call(t, analystToken, "POST", "/v1/rules/candidate/promote", map[string]any{}); status != http.StatusBadRequest {
		t.Errorf("promote without a message: %d, want 400", status)
	}

	prom := in.mustCall(t, "POST", "/v1/rules/candidate/promote", map[string]any{"message": "reviews are enough"})
	if rs := in.holder.Load(); rs.Version.Hash != cand.Version.Hash || prom["hash"] != cand.Version.Hash || prom["warnings"] != nil {
		t.Fatalf("after promote: live %v, answer %v; want the candidate's files %s live", rs.Version, prom, cand.Version.Hash)
	}
	if in.holder.LoadCandidate() != nil {
		t.Error("the candidate is still installed after promote")
	}
	waitFor(t, "the other instance runs the promoted set without a candidate", func() bool {
		return other.holder.LoadCandidate() == nil && other.holder.Load().Version.Hash == cand.Version.Hash
	})
	if status, _ := in.call(t, analystToken, "GET", "/v1/rules/candidate", nil); status != http.StatusNotFound {
		t.Errorf("report after promote: %d, want 404", status)
	}
	if got := decide(in.holder, "p-bad"); len(got) != 1 || in.holder.Load().Rule("scam-payee").Action != rules.Review {
		t.Errorf("after promote scam-payee matched %v with action %v, want review", got, in.holder.Load().Rule("scam-payee").Action)
	}

	// A candidate equal to the live set promotes to 409 and stays; drop clears it.
	in.mustCall(t, "POST", "/v1/rules/publish", map[string]any{"shadow": true, "message": "same again",
		"patch": map[string]string{"payments.yaml": scamReview}})
	if status, _ := in.call(t, analystToken, "POST", "/v1/rules/candidate/promote", map[string]any{"message": "no-op"}); status != http.StatusConflict ||
		in.holder.LoadCandidate() == nil {
		t.Errorf("promoting a candidate that changes nothing: %d (candidate %v), want 409 and the candidate kept", status, in.holder.LoadCandidate())
	}
	in.mustCall(t, "DELETE", "/v1/rules/candidate", nil)
	if in.holder.LoadCandidate() != nil {
		t.Error("the candidate is still installed after drop")
	}
	if status, _ := in.call(t, analystToken, "DELETE", "/v1/rules/candidate", nil); status != http.StatusNotFound {
		t.Errorf("dropping no candidate: %d, want 404", status)
	}

	var got []string
	for _, a := range auditActions(t, f) {
		got = append(got, strings.SplitN(a, " ", 2)[0])
	}
	want := []string{"rules.publish_shadow_refused", "rules.publish_shadow", "rules.promote", "rules.publish_shadow",
		"rules.promote_unchanged", "rules.candidate_drop"}
	if !slices.Equal(got, want) {
		t.Errorf("audit = %q, want %q", got, want)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
