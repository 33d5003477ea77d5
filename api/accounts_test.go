package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"riskd/api"
	"riskd/engine"
	"riskd/internal/apitest"
	"riskd/internal/kafkatest"
	"riskd/streams"
)

// TestSupportLocksAndUnlocks: a support lock refuses the next payment, is
// in the history and on risk.actions; the unlock lets payments through.
func TestSupportLocksAndUnlocks(t *testing.T) {
	env := newRig(t, api.DecideConfig{})
	c := env.c
	pay := func(id string) api.DecideResponse {
		return c.Decide(fmt.Sprintf(`{"event_id":%q,"type":"payment","ts":%d,"account_id":"acct-sup","amount":700,"currency":"EUR","channel":"qr"}`,
			id, time.Now().UnixMilli()))
	}
	code, body := c.Do(api.RoleSupport, "POST", "/v1/accounts/acct-sup/lock", map[string]string{"reason": "owner reported a stolen phone", "duration": "2h"})
	if code != 200 {
		t.Fatalf("lock: %d %s", code, body)
	}
	if r := pay("sup-1"); r.Action.String() != "lock" || r.Reason != "account_locked" {
		t.Fatalf("payment on a support-locked account: %+v", r)
	}
	code, body = c.Do(api.RoleSupport, "POST", "/v1/accounts/acct-sup/unlock", map[string]string{"reason": "owner verified by video call",
		"verification": "video_call"})
	var unlocked api.LockEvent
	if code != 200 || json.Unmarshal(body, &unlocked) != nil || unlocked.LockedBy != "support:support-token" ||
		unlocked.Verification != "video_call" || unlocked.Cleared == nil || len(unlocked.Cleared) != 0 {
		t.Fatalf("unlock: %d %s, want the support lock lifted, verified by video_call, nothing cleared", code, body)
	}
	if r := pay("sup-2"); r.Action.String() == "lock" {
		t.Fatalf("payment after unlock: %+v", r)
	}
	code, body = c.Do(api.RoleViewer, "GET", "/v1/accounts/acct-sup/locks", nil)
	var hist struct{ Locks []api.LockEvent }
	if code != 200 || json.Unmarshal(body, &hist) != nil || len(hist.Locks) != 2 ||
		hist.Locks[0].Action != "unlock" || hist.Locks[1].Action != "lock" || hist.Locks[1].Actor != "api:support-token" ||
		hist.Locks[1].Reason != "owner reported a stolen phone" {
		t.Fatalf("lock history: %d %s", code, body)
	}
	actions := kafkatest.ReadAll(t, env.broker, "risk.actions", 2, waitLong)
	var kinds []string
	for _, m := range actions {
		var a streams.ActionRecord
		if err := json.Unmarshal(m.Value, &a); err == nil && a.AccountID == "acct-sup" {
			kinds = append(kinds, a.Type)
			if a.Actor != "api:support-token" || (a.Type == "unlock") != (a.Verification == "video_call") {
				t.Errorf("risk.actions %s record: %s, want actor and (unlock only) verification", a.Type, m.Value)
			}
		}
	}
	if !slices.Equal(kinds, []string{"lock", "unlock"}) {
		t.Fatalf("risk.actions for acct-sup: %v, want lock then unlock", kinds)
	}
	if code, _ := c.Do(api.RoleSupport, "POST", "/v1/accounts/acct-sup/lock", map[string]string{"reason": "", "duration": "2h"}); code != 400 {
		t.Fatalf("lock without a reason: %d, want 400", code)
	}
}

// TestUnlockAnswersAndAudit: an unlock needs a known verification method
// (400), answers 404 for an account riskd never saw and 409 for one not
// locked now; an indefinite lock has no until; both lock and unlock are
// in audit_log with actor, role and detail; the unlock notification (the
// webhook and live-stream body) says who unlocked and how the owner was
// verified.
func TestUnlockAnswersAndAudit(t *testing.T) {
	env := newRig(t, api.DecideConfig{})
	c := env.c
	for _, body := range []map[string]any{
		{"reason": "owner verified"},
		{"reason": "owner verified", "verification": "a_hunch"},
		{"reason": "", "verification": "id_document"},
	} {
		if code, resp := c.Do(api.RoleSupport, "POST", "/v1/accounts/acct-aud/unlock", body); code != 400 {
			t.Errorf("unlock %v: %d %s, want 400", body, code, resp)
		}
	}
	for _, body := range []map[string]any{
		{"reason": "r", "duration": "2h", "indefinite": true},
		{"reason": "r"},
		{"reason": "r", "duration": "800h"},
	} {
		if code, resp := c.Do(api.RoleSupport, "POST", "/v1/accounts/acct-aud/lock", body); code != 400 {
			t.Errorf("lock %v: %d %s, want 400", body, code, resp)
		}
	}
	unlock := map[string]any{"reason": "owner verified in branch", "verification": "in_branch"}
	if code, resp := c.Do(api.RoleSupport, "POST", "/v1/accounts/acct-never-seen/unlock", unlock); code != 404 {
		t.Errorf("unlock of an unknown account: %d %s, want 404", code, resp)
	}

	code, body := c.Do(api.RoleSupport, "POST", "/v1/accounts/acct-aud/lock", map[string]any{"reason": "takeover suspected", "indefinite": true})
	var locked api.LockEvent
	if code != 200 || json.Unmarshal(body, &locked) != nil || !locked.Indefinite || !locked.Until.IsZero() ||
		strings.Contains(string(body), `"until"`) {
		t.Fatalf("indefinite lock: %d %s", code, body)
	}
	var st engine.LockState
	if err := env.eng.Do(t.Context(), "acct-aud", func(s *engine.Scorer) { st, _ = s.LockState("acct-aud") }); err != nil ||
		!st.Indefinite || st.By != "support:support-token" {
		t.Errorf("the engine's lock: %+v %v, want an indefinite support lock", st, err)
	}
	if code, body = c.Do(api.RoleSupport, "POST", "/v1/accounts/acct-aud/unlock", unlock); code != 200 {
		t.Fatalf("unlock: %d %s", code, body)
	}
	// Known now (its lock is stored), and not locked.
	if code, resp := c.Do(api.RoleSupport, "POST", "/v1/accounts/acct-aud/unlock", unlock); code != 409 {
		t.Errorf("second unlock: %d %s, want 409", code, resp)
	}

	rows, err := env.store.AuditLog(t.Context(), epoch, 100)
	if err != nil {
		t.Fatal(err)
	}
	var audited []string
	for _, r := range rows {
		if r.Object != "acct-aud" {
			continue
		}
		audited = append(audited, r.Action)
		var d struct {
			Reason, Verification string
			Indefinite           bool
			LockedBy             string `json:"locked_by"`
		}
		if r.Actor != "support-token" || r.Role != "support" || json.Unmarshal([]byte(r.Detail), &d) != nil {
			t.Errorf("audit row %+v", r)
		}
		switch r.Action {
		case "account.lock":
			if d.Reason != "takeover suspected" || !d.Indefinite {
				t.Errorf("lock's audit detail: %s", r.Detail)
			}
		case "account.unlock":
			if d.Reason != "owner verified in branch" || d.Verification != "in_branch" || d.LockedBy != "support:support-token" {
				t.Errorf("unlock's audit detail: %s", r.Detail)
			}
		case "account.unlock_refused":
			if !strings.Contains(r.Detail, `"refused"`) {
				t.Errorf("refused unlock's audit detail: %s", r.Detail)
			}
		}
	}
	if !slices.Equal(audited, []string{"account.lock", "account.unlock", "account.unlock_refused"}) {
		t.Errorf("audit_log for acct-aud: %v, want account.lock, account.unlock, then the refused second unlock", audited)
	}
	var refusedUnknown int
	for _, r := range rows {
		if r.Object == "acct-never-seen" && r.Action == "account.unlock_refused" && strings.Contains(r.Detail, "in_branch") {
			refusedUnknown++
		}
	}
	if refusedUnknown != 1 {
		t.Errorf("the refused unlock of an unknown account is audited %d times, want once", refusedUnknown)
	}

	// The live stream replays its buffer to a client it does not know;
	// its data is the webhook body.
	ctx, cancel := context.WithTimeout(t.Context(), waitLong)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", c.Base+"/v1/alerts/stream?account=acct-aud", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apitest.Secrets[api.RoleViewer])
	req.Header.Set("Last-Event-ID", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	kind := ""
	for sc.Scan() {
		line := sc.Text()
		if k, ok := strings.CutPrefix(line, "event: "); ok {
			kind = k
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || kind != "unlock" {
			continue
		}
		var a streams.ActionRecord
		if err := json.Unmarshal([]byte(data), &a); err != nil || a.Actor != "api:support-token" || a.Verification != "in_branch" ||
			a.Reason != "owner verified in branch" {
			t.Errorf("unlock notification body: %s", data)
		}
		return
	}
	t.Fatalf("no unlock notification on the stream: %v", sc.Err())
}
