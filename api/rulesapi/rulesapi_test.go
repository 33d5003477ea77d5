package rulesapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"riskd/api"
	"riskd/api/rulesapi"
	"riskd/event"
	"riskd/internal/chtest"
	"riskd/rules"
	"riskd/streams"
	"riskd/streams/chstore"
	"riskd/streams/rulesync"
)

// windows is a FeatureIndex with fixed slots.
type windows map[string]int

func (w windows) Index(name string) (int, bool) { i, ok := w[name]; return i, ok }

var feats = windows{"payments_1h": 0}

const (
	analystToken = "analyst-secret-0123456789"
	viewerToken  = "viewer-secret-0123456789"
)

var baseFiles = map[string]string{
	"payments.yaml": `- id: scam-payee
  when: event.type == "payment" && in_list("scam_payees", event.payee_id)
  action: block
  examples:
    - event: {payee_id: p-bad}
      expect: match
    - event: {payee_id: p-good}
      expect: no_match
- id: velocity
  when: f.payments_1h > 5
  score: 40
  mode: shadow
`,
	"lists/scam_payees.txt": "# reported payees\np-bad\n",
	"settings.yaml":         "thresholds:\n  - {score: 100, action: review}\n",
}

// instance is one riskd instance's rule side: holder, rule directory,
// the service following the shared topic, behind a real HTTP server.
type instance struct {
	holder *rules.Holder
	dir    string
	svc    *rulesapi.Service
	url    string
	// store is the instance's ClickHouse store, where trialInstance sets it.
	store *chstore.Store
}

// fleet is the shared broker and ClickHouse of the instances of a test.
type fleet struct {
	brokers []string
	store   *chstore.Store
	start   time.Time
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	store := chtest.Open(t)
	b, err := streams.StartEmbedded("127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return &fleet{brokers: []string{b.Addr()}, store: store, start: time.Now().Add(-time.Second)}
}

// writeDir writes files into a fresh rule directory.
func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// startInstance starts from a fresh rule directory holding baseFiles, as
// the daemon does (Start), and follows the rule topic.
func (f *fleet) startInstance(t *testing.T) *instance {
	t.Helper()
	return f.startInstanceFrom(t, writeDir(t, baseFiles))
}

// startInstanceFrom starts an instance from the rule directory dir.
func (f *fleet) startInstanceFrom(t *testing.T, dir string) *instance {
	t.Helper()
	return f.startInstanceWith(t, dir, nil)
}

// startInstanceWith starts an instance from the rule directory dir with
// the config edit applies (nil: none).
func (f *fleet) startInstanceWith(t *testing.T, dir string, edit func(*rulesapi.Config)) *instance {
	t.Helper()
	holder := &rules.Holder{}
	sync, err := rulesync.New(rulesync.Config{Brokers: f.brokers, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	cfg := rulesapi.Config{Holder: holder, Features: feats, Dir: dir, Sync: sync, Store: f.store,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)), InstallTimeout: time.Minute}
	if edit != nil {
		edit(&cfg)
	}
	svc, err := rulesapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
	tokens, err := api.ParseTokens([]string{"alice:analyst:" + analystToken, "vera:viewer:" + viewerToken})
	if err != nil {
		t.Fatal(err)
	}
	srv := api.NewServer(tokens, slog.New(slog.NewTextHandler(t.Output(), nil)), nil)
	srv.Handle(svc.Routes()...)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &instance{holder: holder, dir: dir, svc: svc, url: hs.URL}
}

// call sends a request and decodes the JSON answer into a map.
func (in *instance) call(t *testing.T, token, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, in.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: %d, body not JSON: %s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

func (in *instance) mustCall(t *testing.T, method, path string, body any) map[string]any {
	t.Helper()
	status, out := in.call(t, analystToken, method, path, body)
	if status != http.StatusOK {
		t.Fatalf("%s %s: %d %v", method, path, status, out)
	}
	return out
}

// decide evaluates a payment to payee through the holder's current set and
// returns the ids of the active rules that matched.
func decide(h *rules.Holder, payee string) []string {
	ev := rules.NewEvaluator()
	env := ev.Env()
	env.Event = event.Event{ID: "e1", Type: "payment", AccountID: "a1", PayeeID: payee}
	var out rules.Outcome
	ev.Eval(h.Load(), &out)
	ids := []string{}
	for _, r := range out.Matched {
		ids = append(ids, r.ID)
	}
	return ids
}

func withFile(name, content string) map[string]string {
	files := map[string]string{}
	for k, v := range baseFiles {
		files[k] = v
	}
	files[name] = content
	return files
}

func auditActions(t *testing.T, f *fleet) []string {
	t.Helper()
	rows, err := f.store.AuditLog(t.Context(), f.start, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rows {
		out = append(out, r.Action+" by "+r.Actor+" "+r.Object+" "+r.OldVersion+" -> "+r.NewVersion)
	}
	return out
}

func TestABadRuleIsRefusedWithItsPositionAndTheOldSetKeepsDeciding(t *testing.T) {
	f := newFleet(t)
	in := f.startInstance(t)
	before := in.holder.Load().Version
	if got := decide(in.holder, "p-bad"); !slices.Equal(got, []string{"scam-payee"}) {
		t.Fatalf("before: matched %v, want [scam-payee]", got)
	}
	bad := withFile("auth.yaml", "- id: big-amount\n  when: event.amout > 100\n  action: review\n")
	for _, route := range []string{"/v1/rules/validate", "/v1/rules/publish"} {
		status, out := in.call(t, analystToken, "POST", route, map[string]any{"files": bad, "message": "add big-amount"})
		if status != http.StatusUnprocessableEntity {
			t.Fatalf("%s: status %d %v, want 422", route, status, out)
		}
		d, _ := out["details"].(map[string]any)
		if d["rule_id"] != "big-amount" || d["file"] != "auth.yaml" || d["line"] != 2.0 || d["column"] != 15.0 {
			t.Errorf("%s: details %v, want rule big-amount at auth.yaml:2:15", route, d)
		}
		if msg, _ := d["message"].(string); !strings.Contains(msg, "amout") {
			t.Errorf("%s: message %q does not name the misspelt field", route, msg)
		}
	}
	if v := in.holder.Load().Version; v != before {
		t.Errorf("version after a refused publish = %v, want %v", v, before)
	}
	if got := decide(in.holder, "p-bad"); !slices.Equal(got, []string{"scam-payee"}) {
		t.Errorf("after: matched %v, want [scam-payee]", got)
	}
	got := auditActions(t, f)
	if want := []string{"rules.publish_refused by alice ruleset " + before.String() + " -> "}; !slices.Equal(got, want) {
		t.Errorf("audit = %q, want %q", got, want)
	}
	// A valid set validates to its hash without being published.
	out := in.mustCall(t, "POST", "/v1/rules/validate", map[string]any{"patch": map[string]string{"auth.yaml": "[]"}})
	if out["valid"] != true || out["hash"] == before.Hash {
		t.Errorf("validate = %v", out)
	}
}

func TestAnExpressionOverTheCompileLimitsIsRefusedAndRiskdKeepsDeciding(t *testing.T) {
	f := newFleet(t)
	in := f.startInstance(t)
	// 500000 parentheses crashed riskd with a stack overflow in the
	// expression parser; the set is refused before parsing.
	deep := strings.Repeat("(", 500000) + "true" + strings.Repeat(")", 500000)
	status, out := in.call(t, analystToken, "POST", "/v1/rules/validate", map[string]any{
		"patch": map[string]string{"deep.yaml": "- id: deep\n  when: " + deep + "\n  action: review\n"}})
	if status != http.StatusUnprocessableEntity {
		t.Fatalf("validate: status %d, want 422", status)
	}
	d, _ := out["details"].(map[string]any)
	want := map[string]any{"rule_id": "deep", "file": "deep.yaml", "line": 2.0, "column": 9.0,
		"message": "expression nests 500000 deep, limit is 64"}
	for k, v := range want {
		if d[k] != v {
			t.Errorf("details[%s] = %v, want %v", k, d[k], v)
		}
	}
	// A shadow rule whose loop would cost every decision is refused too.
	status, out = in.call(t, analystToken, "POST", "/v1/rules/validate", map[string]any{
		"patch": map[string]string{"slow.yaml": "- id: slow\n  when: 'all(1..900000, # >= 0)'\n  mode: shadow\n"}})
	if d, _ := out["details"].(map[string]any); status != http.StatusUnprocessableEntity ||
		d["message"] != "range 1..900000 has 900000 elements, limit is 1000" {
		t.Errorf("validate slow: %d %v, want 422 naming the range limit", status, out)
	}
	if got := decide(in.holder, "p-bad"); !slices.Equal(got, []string{"scam-payee"}) {
		t.Errorf("after: matched %v, want [scam-payee]", got)
	}
}

func TestTheStartUpSetIsVersionOneAndARollbackReachesIt(t *testing.T) {
	f := newFleet(t)
	in := f.startInstance(t)
	dirBefore, err := rules.ReadFiles(os.DirFS(in.dir))
	if err != nil {
		t.Fatal(err)
	}
	start := in.holder.Load().Version
	if start.Seq != 1 || start.Hash != rules.HashFiles(dirBefore) {
		t.Fatalf("start-up set runs as %v, want version 1 with the directory's hash %s", start, rules.HashFiles(dirBefore))
	}
	second := in.mustCall(t, "POST", "/v1/rules/publish", map[string]any{
		"patch": map[string]string{"lists/scam_payees.txt": "p-bad\np-worse\n"}, "message": "add p-worse"})
	if rs := in.holder.Load(); rs.Version.Hash != second["hash"] || float64(rs.Version.Seq) != second["seq"] {
		t.Fatalf("holder at %v after publish, want %v", rs.Version, second["version"])
	}
	back := in.mustCall(t, "POST", "/v1/rules/rollback", map[string]any{"seq": 1, "message": "p-worse was a mistake"})
	rs := in.holder.Load()
	if back["hash"] != start.Hash || rs.Version.Hash != start.Hash || float64(rs.Version.Seq) != back["seq"] ||
		back["seq"].(float64) <= second["seq"].(float64) {
		t.Errorf("after rollback: holder %v, answer %v; want hash %v with a seq above %v", rs.Version, back, start.Hash, second["seq"])
	}
	if got := decide(in.holder, "p-worse"); len(got) != 0 {
		t.Errorf("p-worse after rollback matched %v, want nothing", got)
	}
	if running := in.mustCall(t, "GET", "/v1/rules", nil); running["hash"] != start.Hash {
		t.Errorf("GET /v1/rules hash %v, want the start-up set's %s", running["hash"], start.Hash)
	}
	// riskd never writes into the directory it started from.
	dirAfter, err := rules.ReadFiles(os.DirFS(in.dir))
	if err != nil {
		t.Fatal(err)
	}
	if h := rules.HashFiles(dirAfter); h != rules.HashFiles(dirBefore) {
		t.Errorf("rule directory hashes to %s after publishes, want it untouched (%s)", h, rules.HashFiles(dirBefore))
	}

	hist := in.mustCall(t, "GET", "/v1/rules/versions", nil)["versions"].([]any)
	var got []string
	for _, v := range hist {
		m := v.(map[string]any)
		got = append(got, jsonNumber(m["seq"])+" "+m["author"].(string)+": "+m["message"].(string))
	}
	want := []string{"3 alice: p-worse was a mistake", "2 alice: add p-worse", "1 riskd: start-up set from " + in.dir}
	if !slices.Equal(got, want) {
		t.Errorf("history = %q, want %q", got, want)
	}
	if m := hist[0].(map[string]any); m["running"] != true || m["rule_count"] != 2.0 {
		t.Errorf("newest history entry %v: want running with 2 rules", m)
	}
	v := in.mustCall(t, "GET", "/v1/rules/versions/"+jsonNumber(second["seq"]), nil)
	if fs, _ := v["files"].(map[string]any); fs["lists/scam_payees.txt"] != "p-bad\np-worse\n" {
		t.Errorf("version %v files = %v", second["seq"], v["files"])
	}
	actions := auditActions(t, f)
	if len(actions) != 2 || !strings.HasPrefix(actions[0], "rules.publish by alice") ||
		!strings.HasPrefix(actions[1], "rules.rollback by alice ruleset "+second["version"].(string)+" -> "+back["version"].(string)) {
		t.Errorf("audit = %q", actions)
	}
	if status, _ := in.call(t, analystToken, "POST", "/v1/rules/rollback", map[string]any{"seq": 999}); status != http.StatusNotFound {
		t.Errorf("rollback to an unknown version: %d, want 404", status)
	}
}

func TestAPublishOrRollbackThatChangesNothingIsRefusedWith409(t *testing.T) {
	f := newFleet(t)
	in := f.startInstance(t)
	v1 := in.holder.Load().Version
	status, out := in.call(t, analystToken, "POST", "/v1/rules/publish", map[string]any{"files": baseFiles, "message": "same again"})
	wantMsg := "nothing changed: the files hash to " + v1.Hash + ", the running version " + v1.String() + "; it keeps running"
	if status != http.StatusConflict || out["error"] != wantMsg {
		t.Fatalf("publish of the running files: %d %v, want 409 %q", status, out, wantMsg)
	}
	status, out = in.call(t, analystToken, "POST", "/v1/rules/rollback", map[string]any{"seq": 1})
	if status != http.StatusConflict || out["error"] != wantMsg {
		t.Fatalf("rollback to the running version: %d %v, want 409 %q", status, out, wantMsg)
	}
	// A list edit that leaves the list as it is changes nothing either.
	status, _ = in.call(t, analystToken, "PUT", "/v1/lists/scam_payees", map[string]any{"entries": []string{"p-bad"}})
	if status != http.StatusOK {
		// "# reported payees" is dropped by PUT, so this one is a change.
		t.Fatalf("PUT list: %d, want 200", status)
	}
	v2 := in.holder.Load().Version
	status, _ = in.call(t, analystToken, "PUT", "/v1/lists/scam_payees", map[string]any{"entries": []string{"p-bad"}})
	if status != http.StatusConflict {
		t.Errorf("PUT of the same list again: %d, want 409", status)
	}
	if v := in.holder.Load().Version; v != v2 {
		t.Errorf("running %v after refused changes, want %v", v, v2)
	}
	got := auditActions(t, f)
	want := []string{
		"rules.publish_unchanged by alice ruleset " + v1.String() + " -> ",
		"rules.rollback_unchanged by alice ruleset " + v1.String() + " -> ",
		"lists.put by alice list:scam_payees " + v1.String() + " -> " + v2.String(),
		"lists.put_unchanged by alice list:scam_payees " + v2.String() + " -> ",
	}
	if !slices.Equal(got, want) {
		t.Errorf("audit = %q\nwant %q", got, want)
	}
	hist := in.mustCall(t, "GET", "/v1/rules/versions", nil)["versions"].([]any)
	if len(hist) != 2 {
		t.Errorf("history has %d versions, want 2 (start-up and the list edit): %v", len(hist), hist)
	}
}

func TestDiffBetweenVersions(t *testing.T) {
	f := newFleet(t)
	in := f.startInstance(t)
	changed := withFile("payments.yaml", strings.Replace(baseFiles["payments.yaml"], "action: block", "action: review\n  score: 30", 1))
	changed["auth.yaml"] = "- id: new-device-login\n  when: event.type == \"login\"\n  action: alert\n"
	changed["lists/scam_payees.txt"] = "p-bad\np-new\n"
	changed["lists/vip.txt"] = "a1\na2\n"
	delete(changed, "settings.yaml")
	in.mustCall(t, "POST", "/v1/rules/publish", map[string]any{"files": changed, "message": "rework"})
	out := in.mustCall(t, "GET", "/v1/rules/versions/1/diff/2", nil)
	if out["from"].(map[string]any)["seq"] != 1.0 || out["to"].(map[string]any)["seq"] != 2.0 {
		t.Errorf("from/to = %v / %v", out["from"], out["to"])
	}
	d, err := json.Marshal(out["diff"])
	if err != nil {
		t.Fatal(err)
	}
	want := `{"features":[],"lists":{"added":[{"entries":2,"name":"vip","sample":["a1","a2"]}],"changed":[{"added":1,"added_sample":["p-new"],"name":"scam_payees","new_entries":2,"old_entries":1,"removed":0,"removed_sample":[]}],"removed":[]},` +
		`"rules":{"added":[{"action":"alert","file":"auth.yaml","id":"new-device-login","line":1,"mode":"active"}],"changed":[{"fields":[{"field":"action","new":"review","old":"block"},{"field":"score","new":"30","old":"","old_absent":true}],"file":"payments.yaml","id":"scam-payee","line":1}],"removed":[]},` +
		`"settings":[{"field":"thresholds","new":"","new_absent":true,"old":"[{\"action\":\"review\",\"score\":100}]"}]}`
	if string(d) != want {
		t.Errorf("diff =\n%s\nwant\n%s", d, want)
	}
	for path, status := range map[string]int{"/v1/rules/versions/1/diff/9": 404, "/v1/rules/versions/0/diff/1": 400, "/v1/rules/versions/x/diff/1": 400} {
		if got, body := in.call(t, viewerToken, "GET", path, nil); got != status {
			t.Errorf("%s: %d %v, want %d", path, got, body, status)
		}
	}
	if got, _ := in.call(t, viewerToken, "GET", "/v1/rules/versions/2/diff/1", nil); got != http.StatusOK {
		t.Errorf("viewer diff: %d, want 200", got)
	}
}

func TestARestartRunsTheLatestVersionUnlessTheDirectoryChanged(t *testing.T) {
	f := newFleet(t)
	dir := writeDir(t, baseFiles)
	first := f.startInstanceFrom(t, dir)
	pub := first.mustCall(t, "POST", "/v1/rules/publish", map[string]any{
		"patch": map[string]string{"lists/scam_payees.txt": "p-bad\np-api\n"}, "message": "add p-api"})
	// Same directory: the published version survives the restart.
	again := f.startInstanceFrom(t, dir)
	if v := again.holder.Load().Version; v.Hash != pub["hash"] || float64(v.Seq) != pub["seq"] {
		t.Fatalf("restart from the same directory runs %v, want the published %v", v, pub["version"])
	}
	// Two instances starting together from one edited directory publish it once.
	if err := os.WriteFile(filepath.Join(dir, "lists", "scam_payees.txt"), []byte("p-bad\np-dir\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := f.startInstanceFrom(t, dir)
	b := f.startInstanceFrom(t, dir)
	va, vb := a.holder.Load().Version, b.holder.Load().Version
	if va != vb || va.Seq != 3 {
		t.Fatalf("instances started from the edited directory run %v and %v, want both version 3", va, vb)
	}
	hist := a.mustCall(t, "GET", "/v1/rules/versions", nil)["versions"].([]any)
	if m := hist[0].(map[string]any); len(hist) != 3 || m["author"] != "riskd" ||
		m["message"] != "the rule directory "+dir+" changed while riskd was stopped" {
		t.Errorf("history = %v, want 3 versions, the newest the edited directory", hist)
	}
	if got := decide(a.holder, "p-dir"); !slices.Equal(got, []string{"scam-payee"}) {
		t.Errorf("p-dir matched %v", got)
	}
}

func jsonNumber(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestEveryInstanceFollowingTheTopicInstallsAPublishedVersion(t *testing.T) {
	f := newFleet(t)
	a := f.startInstance(t)
	b := f.startInstance(t)
	out := a.mustCall(t, "POST", "/v1/rules/publish", map[string]any{
		"patch": map[string]string{"lists/scam_payees.txt": "p-bad\np-new\n"}, "message": "add p-new"})
	deadline := time.Now().Add(time.Minute)
	for b.holder.Load().Version.Hash != out["hash"] {
		if time.Now().After(deadline) {
			t.Fatalf("instance b still runs %v, want %v", b.holder.Load().Version, out["version"])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if va, vb := a.holder.Load().Version, b.holder.Load().Version; va != vb {
		t.Errorf("instances run %v and %v, want the same version", va, vb)
	}
	if got := decide(b.holder, "p-new"); !slices.Equal(got, []string{"scam-payee"}) {
		t.Errorf("instance b: p-new matched %v, want [scam-payee]", got)
	}
	// b's list view serves the same version.
	lists := b.mustCall(t, "GET", "/v1/lists/scam_payees", nil)
	if lists["version"] != out["version"] {
		t.Errorf("b lists version %v, want %v", lists["version"], out["version"])
	}
}

func TestListEditsChangeInListResultsAndAreAudited(t *testing.T) {
	f := newFleet(t)
	in := f.startInstance(t)
	in.mustCall(t, "PUT", "/v1/lists/scam_payees", map[string]any{"entries": []string{"p1", "p-bad", "p2", "p1"}})
	if got := decide(in.holder, "p-other"); len(got) != 0 {
		t.Errorf("p-other after PUT matched %v, want nothing", got)
	}
	if got := decide(in.holder, "p2"); !slices.Equal(got, []string{"scam-payee"}) {
		t.Errorf("p2 after PUT matched %v", got)
	}
	in.mustCall(t, "POST", "/v1/lists/scam_payees/entries", map[string]any{"entries": []string{"p3"}})
	in.mustCall(t, "DELETE", "/v1/lists/scam_payees/entries/p1", nil)
	got := in.mustCall(t, "GET", "/v1/lists/scam_payees", nil)["list"].(map[string]any)["entries"]
	if want := []any{"p-bad", "p2", "p3"}; !slices.Equal(got.([]any), want) {
		t.Errorf("entries = %v, want %v", got, want)
	}
	if m := decide(in.holder, "p3"); !slices.Equal(m, []string{"scam-payee"}) {
		t.Errorf("p3 matched %v", m)
	}
	if m := decide(in.holder, "p1"); len(m) != 0 {
		t.Errorf("p1 after delete matched %v", m)
	}
	if status, _ := in.call(t, analystToken, "DELETE", "/v1/lists/scam_payees/entries/p1", nil); status != http.StatusNotFound {
		t.Errorf("deleting a missing entry: %d, want 404", status)
	}
	// The rule's own example needs p-bad listed, so removing it is refused.
	status, out := in.call(t, analystToken, "DELETE", "/v1/lists/scam_payees/entries/p-bad", nil)
	if d, _ := out["details"].(map[string]any); status != http.StatusUnprocessableEntity || d["message"] != "example 1: expected match, got no_match" {
		t.Errorf("removing p-bad: %d %v, want 422 from the failing example", status, out)
	}
	// A rule reads the list, so deleting it is refused with the rule's position.
	status, out = in.call(t, analystToken, "DELETE", "/v1/lists/scam_payees", nil)
	if d, _ := out["details"].(map[string]any); status != http.StatusUnprocessableEntity || d["rule_id"] != "scam-payee" {
		t.Errorf("deleting a used list: %d %v, want 422 naming scam-payee", status, out)
	}
	in.mustCall(t, "PUT", "/v1/lists/vip", map[string]any{"entries": []string{"a1"}})
	in.mustCall(t, "DELETE", "/v1/lists/vip", nil)
	names := []string{}
	for _, l := range in.mustCall(t, "GET", "/v1/lists", nil)["lists"].([]any) {
		names = append(names, l.(map[string]any)["name"].(string))
	}
	if !slices.Equal(names, []string{"scam_payees"}) {
		t.Errorf("lists = %v", names)
	}
	var actions []string
	for _, a := range auditActions(t, f) {
		actions = append(actions, strings.Fields(a)[0]+" "+strings.Fields(a)[3])
	}
	want := []string{"lists.put list:scam_payees", "lists.add list:scam_payees", "lists.remove list:scam_payees",
		"lists.remove_refused list:scam_payees", "lists.delete_refused list:scam_payees", "lists.put list:vip", "lists.delete list:vip"}
	if !slices.Equal(actions, want) {
		t.Errorf("audit = %q\nwant %q", actions, want)
	}
}

func TestTestRunsEventsAndTheSetsExamples(t *testing.T) {
	f := newFleet(t)
	in := f.startInstance(t)
	out := in.mustCall(t, "POST", "/v1/rules/test", map[string]any{"events": []any{
		map[string]any{"event": map[string]any{"payee_id": "p-bad", "amount": 500}, "f": map[string]any{"payments_1h": 7}},
		map[string]any{"event": map[string]any{"type": "login"}, "account": map[string]any{"age_days": 3}},
	}})
	evs := out["events"].([]any)
	e0 := evs[0].(map[string]any)
	if e0["action"] != "block" || e0["score"] != 0.0 {
		t.Errorf("event 0: %v, want block with score 0 (velocity is shadow)", e0)
	}
	byID := map[string]map[string]any{}
	for _, r := range e0["rules"].([]any) {
		byID[r.(map[string]any)["id"].(string)] = r.(map[string]any)
	}
	if r := byID["scam-payee"]; r["result"] != "match" || r["mode"] != "active" {
		t.Errorf("scam-payee: %v", r)
	}
	if r := byID["velocity"]; r["result"] != "match" || r["mode"] != "shadow" || r["features"].(map[string]any)["payments_1h"] != 7.0 {
		t.Errorf("velocity: %v, want a shadow match reading payments_1h = 7", r)
	}
	if e1 := evs[1].(map[string]any); e1["action"] != "allow" {
		t.Errorf("event 1: %v, want allow", e1)
	}
	exs := out["examples"].([]any)
	if len(exs) != 2 || out["examples_passed"] != true {
		t.Errorf("examples = %v passed=%v, want 2 passing", exs, out["examples_passed"])
	}
	status, bad := in.call(t, analystToken, "POST", "/v1/rules/test", map[string]any{"events": []any{
		map[string]any{"event": map[string]any{}, "f": map[string]any{"no_such": 1}}}})
	if status != http.StatusBadRequest || bad["error"] != "events[0]: unknown feature f.no_such" {
		t.Errorf("unknown feature: %d %v", status, bad)
	}
}

func TestRefusals(t *testing.T) {
	f := newFleet(t)
	in := f.startInstance(t)
	if status, _ := in.call(t, viewerToken, "POST", "/v1/rules/publish", map[string]any{"files": baseFiles, "message": "x"}); status != http.StatusForbidden {
		t.Errorf("viewer publish: %d, want 403", status)
	}
	if status, _ := in.call(t, viewerToken, "GET", "/v1/rules", nil); status != http.StatusOK {
		t.Errorf("viewer list rules: %d, want 200", status)
	}
	big := []byte(`{"files": {"a.yaml": "` + strings.Repeat("x", 3<<20) + `"}, "message": "big"}`)
	if status, _ := in.call(t, analystToken, "POST", "/v1/rules/publish", big); status != http.StatusRequestEntityTooLarge {
		t.Errorf("3 MiB body: %d, want 413", status)
	}
	for _, name := range []string{"../evil.yaml", "lists/../../evil.txt", "/etc/evil.yaml", "sub/evil.yaml", "lists/evil.yaml", ".hidden.yaml", `lists\evil.txt`} {
		status, out := in.call(t, analystToken, "POST", "/v1/rules/publish", map[string]any{"files": withFile(name, "[]"), "message": "x"})
		if status != http.StatusBadRequest || !strings.Contains(out["error"].(string), "want NAME.yaml") {
			t.Errorf("file %q: %d %v, want 400", name, status, out)
		}
	}
	if status, _ := in.call(t, analystToken, "PUT", "/v1/lists/..%2Fevil", map[string]any{"entries": []string{"a"}}); status != http.StatusBadRequest {
		t.Errorf("list name ../evil: %d, want 400", status)
	}
	if status, _ := in.call(t, analystToken, "POST", "/v1/rules/publish", map[string]any{"files": baseFiles}); status != http.StatusBadRequest {
		t.Errorf("publish without message: %d, want 400", status)
	}
	if status, _ := in.call(t, analystToken, "GET", "/v1/rules/no-such", nil); status != http.StatusNotFound {
		t.Errorf("unknown rule: %d, want 404", status)
	}
	out := in.mustCall(t, "GET", "/v1/rules/scam-payee", nil)
	if r := out["rule"].(map[string]any); r["action"] != "block" || r["file"] == "" {
		t.Errorf("rule = %v", r)
	}
	// What the decide answer tells the wallet when it matches: declared or
	// the action's defaults (block: declined).
	if w, _ := out["rule"].(map[string]any)["wallet"].(map[string]any); w == nil || w["code"] == "" || w["category"] == "" {
		t.Errorf("rule's wallet = %v", out["rule"])
	}
	entries, err := os.ReadDir(filepath.Dir(in.dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), "evil") {
			t.Errorf("%s was written outside the rule directory", e.Name())
		}
	}
}
