package rulesapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"riskd/api"
	"riskd/api/rulesapi"
)

func TestPostLabelsRecordsByIDAndRangeAndAudits(t *testing.T) {
	now := statsBase.Add(48 * time.Hour)
	rig := newLabelsRig(t, now)
	storeStatsDecisions(t, rig.store)
	body := `{"labels": [
		{"event_id": "e3", "label": "fraud", "source": "chargeback", "note": "cardholder disputed"},
		{"event_id": "nope", "label": "fraud", "source": "chargeback"},
		{"account_id": "acct-e1", "from": "2026-03-01T10:00:00Z", "to": ` + fmt.Sprint(statsBase.Add(time.Hour).UnixMilli()) + `, "label": "not_fraud", "source": "support"},
		{"account_id": "acct-e1", "from": "2026-02-01", "to": "2026-02-02", "label": "not_fraud", "source": "support"}
	]}`
	status, out := rig.do(t, supportToken, "POST", "/v1/labels", body)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, out)
	}
	var res rulesapi.LabelsResponse
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	want := `{"items":4,"labelled":2,"fraud":1,"not_fraud":1,"unknown_event_ids":["nope"],` +
		`"empty_ranges":[{"index":3,"account_id":"acct-e1","from":"2026-02-01T00:00:00Z","to":"2026-02-02T00:00:00Z"}]}`
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("answer\n got %s\nwant %s", got, want)
	}
	labels, err := rig.store.LabelsByEvent(t.Context(), []string{"e1", "e3"})
	if err != nil {
		t.Fatal(err)
	}
	// e1 carried the generator's "ato": the support agent's verdict replaces it.
	if l := labels["e1"]; l.Label != "not_fraud" || l.Source != "support" || l.LabelledBy != "sam" || !l.LabelledAt.Equal(now) {
		t.Errorf("e1 = %+v", l)
	}
	if l := labels["e3"]; l.Label != "fraud" || l.Note != "cardholder disputed" || l.LabelledBy != "sam" {
		t.Errorf("e3 = %+v", l)
	}
	audit, err := rig.store.AuditLog(t.Context(), now.Add(-time.Minute), 10)
	if err != nil {
		t.Fatal(err)
	}
	wantDetail := "4 items: 2 events labelled (fraud 1, not_fraud 1); labels fraud, not_fraud; sources chargeback, support; " +
		"1 unknown event ids; 1 empty ranges (nope)"
	if len(audit) != 1 || audit[0].Actor != "sam" || audit[0].Role != "support" || audit[0].Action != "labels.import" ||
		audit[0].Object != "labels" || audit[0].Detail != wantDetail {
		t.Errorf("audit log = %+v, want one labels.import row by sam: %s", audit, wantDetail)
	}
}

func mustCompact(t *testing.T, b []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestPostLabelsRolesAndBounds(t *testing.T) {
	rig := newLabelsRig(t, statsBase.Add(48*time.Hour))
	one := `{"labels": [{"event_id": "e1", "label": "fraud", "source": "analyst"}]}`
	for _, c := range []struct {
		token string
		want  int
	}{{viewerToken, http.StatusForbidden}, {analystToken, http.StatusOK}, {supportToken, http.StatusOK}, {adminToken, http.StatusOK}} {
		if status, body := rig.do(t, c.token, "POST", "/v1/labels", one); status != c.want {
			t.Errorf("token %s: %d %s, want %d", c.token[:5], status, body, c.want)
		}
	}
	item := `{"event_id": "e1", "label": "fraud", "source": "analyst"}`
	many := func(n int) string { return `{"labels": [` + strings.Repeat(item+",", n-1) + item + `]}` }
	cases := []struct {
		name, body string
		status     int
		want       string
	}{
		{"no labels", `{"labels": []}`, 400, `no labels given: send {"labels": [{"event_id": ..., "label": "fraud", "source": ...}]}`},
		{"unknown field", `{"labels": [` + item + `, {"event_id": "e", "label": "fraud", "source": "x", "verdict": 1}]}`, 400,
			`labels[1]: json: unknown field "verdict"`},
		{"bad time", `{"labels": [{"account_id": "a", "from": "last week", "to": 5, "label": "fraud", "source": "x"}]}`, 400,
			`labels[0]: "last week" is not a time: want RFC 3339 (2026-03-01T10:00:00Z), a date (2026-03-01) or Unix milliseconds`},
		{"bad label", `{"labels": [` + item + `, ` + item + `, {"event_id": "e", "label": "fraud!", "source": "x"}]}`, 400,
			`labels[2].label: "fraud!" has '!' at byte 5: use letters, digits and _ - . : (want "fraud", "not_fraud" or a fraud scenario name)`},
		{"missing source", `{"labels": [{"event_id": "e", "label": "fraud"}]}`, 400,
			`labels[0].source: missing (e.g. "chargeback", "support", "analyst")`},
		{"too many items", many(10001), 400, "10001 labels, over the 10000-per-request limit: send them in batches"},
		{"body too large", `{"labels": ["` + strings.Repeat("x", rulesapi.LabelsMaxBody) + `"]}`, 413, "request body over 8388608 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := rig.do(t, analystToken, "POST", "/v1/labels", c.body)
			var e api.ErrorBody
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("%d %s: %v", status, body, err)
			}
			if status != c.status || e.Error != c.want {
				t.Errorf("%d %q, want %d %q", status, e.Error, c.status, c.want)
			}
		})
	}
	t.Run("the error names the item and field in details", func(t *testing.T) {
		_, body := rig.do(t, analystToken, "POST", "/v1/labels", `{"labels": [`+item+`, {"event_id": "e", "label": "fraud"}]}`)
		if got := mustCompact(t, body); !strings.Contains(got, `"details":{"field":"source","index":1}`) {
			t.Errorf("answer %s has no details naming labels[1].source", got)
		}
	})
	t.Run("10000 items are accepted", func(t *testing.T) {
		if status, body := rig.do(t, analystToken, "POST", "/v1/labels", many(10000)); status != http.StatusOK {
			t.Errorf("%d %s", status, body)
		}
	})
}
