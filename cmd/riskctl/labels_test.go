package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"riskd/api"
	"riskd/api/rulesapi"
	"riskd/engine"
	"riskd/internal/chtest"
	"riskd/rules"
	"riskd/streams/chstore"
	"riskd/streams/rulesync"
)

var labelsTestBase = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// labelsTestRiskd serves the real rulesapi routes on a fresh ClickHouse
// database holding five decided events (l1..l5; l1 and l2 of acct-a, hit
// by r-block) and points RISKCTL_URL and RISKCTL_TOKEN at it. Its rule
// topic is never used (no publish), so no broker is started.
func labelsTestRiskd(t *testing.T) *chstore.Store {
	t.Helper()
	store := chtest.Open(t)
	var ds []*engine.Decision
	for i, acct := range []string{"acct-a", "acct-a", "acct-b", "acct-b", "acct-c"} {
		id := "l" + string(rune('1'+i))
		d := &engine.Decision{EventID: id, AccountID: acct, EventType: "payment",
			EventTS: labelsTestBase.Add(time.Duration(i) * time.Minute).UnixMilli(), DecidedAt: labelsTestBase,
			Action: rules.Allow, RuleSetVersion: "1-aaaaaaaa", Raw: []byte(`{}`)}
		if acct == "acct-a" {
			d.Action, d.Matched = rules.Block, []engine.RuleHit{{RuleID: "r-block", Action: rules.Block}}
		}
		ds = append(ds, d)
	}
	if err := store.WriteDecisions(t.Context(), ds); err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Compile(map[string][]byte{"a.yaml": []byte("- id: r-block\n  when: event.amount > 1000\n  action: block\n" +
		"- id: r-quiet\n  when: event.amount < 0\n  action: review\n")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	holder := &rules.Holder{}
	holder.Install(rs, 1)
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	sync, err := rulesync.New(rulesync.Config{Brokers: []string{"127.0.0.1:1"}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := rulesapi.New(rulesapi.Config{Holder: holder, Sync: sync, Store: store, Logger: log,
		Now: func() time.Time { return labelsTestBase.Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := api.ParseTokens([]string{"carla:support:support-secret-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	srv := api.NewServer(tokens, log, nil)
	srv.Handle(svc.Routes()...)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	t.Setenv(envURL, hs.URL)
	t.Setenv(envToken, "support-secret-0123456789")
	return store
}

func writeLabelsFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLabelsImportCSVAndJSONLines(t *testing.T) {
	store := labelsTestRiskd(t)
	csvFile := writeLabelsFile(t, "labels.csv", "event_id,account_id,from,to,label,source,note\n"+
		"l1,,,,fraud,chargeback,\"disputed, twice\"\n"+
		"missing-1,,,,fraud,chargeback,\n"+
		",acct-b,2026-03-01T10:00:00Z,2026-03-01T11:00:00Z,not_fraud,,\n"+
		",acct-z,2026-03-01,2026-03-02,fraud,,\n")
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"labels", "import", "--source", "support", csvFile}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	wantOut := csvFile + ": 4 items in 1 batch: 3 events labelled (fraud 1, not_fraud 2); 1 unknown event id; 1 empty range\n"
	wantErr := csvFile + ":3: no stored event \"missing-1\"\n" +
		csvFile + ":5: no stored event of acct-z from 2026-03-01T00:00:00Z to 2026-03-02T00:00:00Z\n"
	if stdout.String() != wantOut || stderr.String() != wantErr {
		t.Errorf("stdout\n%s\nstderr\n%s\nwant\n%s\n%s", stdout.String(), stderr.String(), wantOut, wantErr)
	}

	// JSON lines, the flag after the file, batches of two: l1 is
	// relabelled, l5 labelled by time in milliseconds.
	jsonFile := writeLabelsFile(t, "more.jsonl", `{"event_id": "l1", "label": "not_fraud", "source": "support", "note": "owner confirmed"}`+"\n\n"+
		`{"event_id": "l2", "label": "card_testing", "source": "analyst"}`+"\n"+
		`{"account_id": "acct-c", "from": 1772359200000, "to": "2026-03-01T10:05:00.001Z", "label": "fraud", "source": "analyst"}`+"\n")
	stdout.Reset()
	stderr.Reset()
	if err := run(t.Context(), []string{"labels", "import", jsonFile, "--batch", "2"}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if want := jsonFile + ": 3 items in 2 batches: 3 events labelled (fraud 2, not_fraud 1); 0 unknown event ids; 0 empty ranges\n"; stdout.String() != want || stderr.Len() != 0 {
		t.Errorf("stdout %q stderr %q, want %q", stdout.String(), stderr.String(), want)
	}
	got, err := store.LabelsByEvent(t.Context(), []string{"l1", "l2", "l3", "l4", "l5"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"l1": "not_fraud/support/carla/owner confirmed", "l2": "card_testing/analyst/carla/",
		"l3": "not_fraud/support/carla/", "l4": "not_fraud/support/carla/", "l5": "fraud/analyst/carla/"}
	for id, w := range want {
		l := got[id]
		if g := l.Label + "/" + l.Source + "/" + l.LabelledBy + "/" + l.Note; g != w {
			t.Errorf("%s = %s, want %s", id, g, w)
		}
	}

	// The stats see the labels: r-block hit l1 (now not_fraud) and l2 (fraud).
	stdout.Reset()
	if err := run(t.Context(), []string{"rules", "stats", "--from", "2026-03-01T10:00:00Z", "--to", "2026-03-01T11:00:00Z", "--json"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	var rep rulesapi.StatsReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Rules) != 1 || rep.Rules[0].Hits != 2 || rep.Rules[0].Fraud != 1 || rep.Rules[0].NotFraud != 1 ||
		len(rep.NeverFired) != 1 || rep.NeverFired[0].RuleID != "r-quiet" || rep.Decisions.Events != 5 {
		t.Errorf("stats --json = %s", stdout.String())
	}
}

func TestLabelsImportNamesTheLineOfABadRow(t *testing.T) {
	labelsTestRiskd(t)
	for _, c := range []struct{ name, content, want string }{
		{"bad.csv", "event_id,label,source\nl1,fraud,x\nl2,not fraud,x\n",
			`:3: column label: "not fraud" has ' ' at byte 3: use letters, digits and _ - . : (want "fraud", "not_fraud" or a fraud scenario name)`},
		{"nosource.csv", "event_id,label\nl1,fraud\n", `:2: column source: missing (e.g. "chargeback", "support", "analyst"); or give --source`},
		{"badtime.csv", "account_id,from,to,label,source\nacct-a,yesterday,2026-03-02,fraud,x\n",
			`:2: column from: "yesterday" is not a time: want RFC 3339 (2026-03-01T10:00:00Z), a date (2026-03-01) or Unix milliseconds`},
		{"header.csv", "event_id,verdict\nl1,fraud\n", `:1: column 2: unknown column "verdict" (want event_id, account_id, from, to, label, source, note)`},
		{"bad.jsonl", `{"event_id": "l1", "label": "fraud", "source": "x"}` + "\n" + `{"event_id": "l2", "label": "fraud", "source": "x", "why": 1}` + "\n",
			`:2: json: unknown field "why"`},
		{"array.json", `[{"event_id": "l1"}]`, `:1: a JSON array: want JSON lines, one item object per line`},
		{"long.jsonl", `{"event_id": "` + strings.Repeat("x", labelsMaxLine) + `"}`, `:1: line over 65536 bytes`},
		{"empty.csv", "", `: empty file: want a header row (event_id,account_id,from,to,label,source,note)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := writeLabelsFile(t, c.name, c.content)
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), []string{"labels", "import", p}, &stdout, &stderr)
			if want := "labels import: " + p + c.want; err == nil || err.Error() != want {
				t.Errorf("error %v\nwant %s", err, want)
			}
		})
	}
	t.Run("content tells JSON lines from CSV on stdin", func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		old := os.Stdin
		os.Stdin = r
		t.Cleanup(func() { os.Stdin = old })
		w.WriteString("\n  " + `{"event_id": "l3", "label": "fraud", "source": "x"}` + "\n")
		w.Close()
		var stdout, stderr bytes.Buffer
		if err := run(t.Context(), []string{"labels", "import", "-"}, &stdout, &stderr); err != nil || !strings.HasPrefix(stdout.String(), "stdin: 1 item in 1 batch: 1 event labelled") {
			t.Errorf("%v: %s", err, stdout.String())
		}
	})
}

func TestRulesStatsTable(t *testing.T) {
	labelsTestRiskd(t)
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"rules", "stats", "--from", "2026-03-01T10:00:00Z", "--to", "2026-03-01T10:05:00Z", "--bucket", "1m"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	want := `rule stats from 2026-03-01T10:00:00Z to 2026-03-01T10:05:00Z, 5 buckets of 1m0s; running version 1-` + "HASH" + `
decisions: 5 (fraud 0, not_fraud 0, unlabelled 5); not allowed 2

RULE     VERSION     MODE    HITS  FRAUD  NOT_FRAUD  UNLABELLED  PREC_LABELLED  PREC_ALL  FIRST                 LAST
r-block  1-aaaaaaaa  active  2     0      0          2           -              0.000     2026-03-01T10:00:00Z  2026-03-01T10:01:00Z

hits over time (1m0s per column):
r-block  1-aaaaaaaa  ██···

never fired in the period: 1
  r-quiet  active  review  a.yaml:4
`
	got := stdout.String()
	if i := strings.Index(got, "running version 1-"); i > 0 {
		got = got[:i+len("running version 1-")] + "HASH" + got[i+len("running version 1-")+8:]
	}
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if err := run(t.Context(), []string{"rules", "stats", "--bucket", "1s"}, &stdout, &stderr); err == nil ||
		err.Error() != "rules stats: riskd answered 400 Bad Request: bucket: 1s over 24h0m0s is 86400 buckets, over the 1000 limit: use a wider bucket" {
		t.Errorf("too many buckets: %v", err)
	}
}
