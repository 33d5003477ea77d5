package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/segmentio/kafka-go"

	"riskd/api"
	"riskd/internal/apitest"
	"riskd/internal/browsertest"
	"riskd/internal/kafkatest"
)

// consoleRuleFile is the rule an analyst writes in the browser tests.
const consoleRuleFile = "console-test.yaml"

// consoleRule is a review rule on payments over 500.00, with typo in
// place of its field name.
func consoleRule(field string) string {
	return "# Big payments open a case.\n" +
		"- id: console-big-payment\n" +
		"  when: event.type == \"payment\" && event." + field + " > 50000\n" +
		"  action: review\n" +
		"  score: 10\n"
}

// waitEditor waits until the editor has the running files and the
// vocabulary it completes from.
func waitEditor(tab *browsertest.Tab) {
	tab.WaitTrue(`!!document.querySelector('[data-test="rules-editor"][data-ready]')`, "the editor loaded")
}

// openNewRuleFile waits for the editor and opens consoleRuleFile, empty,
// in it.
func openNewRuleFile(tab *browsertest.Tab) {
	waitEditor(tab)
	tab.Fill("new-file-name", consoleRuleFile)
	tab.Click("new-file")
	tab.WaitTrue(fmt.Sprintf("document.querySelector(%q).value === %q", browsertest.Sel("file-select"), consoleRuleFile), "the new file open")
}

// setEditor replaces the editor's text as typing does: the page hears an
// input event and validates.
func setEditor(tab *browsertest.Tab, text string) {
	js := fmt.Sprintf(`(() => { const t = document.querySelector(%q); t.value = %q; t.focus();
		t.dispatchEvent(new Event("input", {bubbles: true})); return true; })()`, browsertest.Sel("editor-input"), text)
	browsertest.Eval[bool](tab, js)
}

// An analyst writes a rule with a typo and sees the error at its line and
// column as they type, fixes it, backtests it over stored events, publishes
// it, finds it in the history with its diff, and rolls it back.
func TestConsoleRuleWriteBacktestPublishRollBack(t *testing.T) {
	e, d, b := consoleEnv(t)
	// Payments of the last hour for the backtest to replay: two over 500.00.
	now := time.Now().Add(-time.Hour).UnixMilli()
	var msgs []kafka.Message
	for i, amount := range []int{1200, 90000, 4500, 75000} {
		msgs = append(msgs, ev(fmt.Sprintf("con-%d", i), "payment", "acct-con", now+int64(i)*60_000,
			fmt.Sprintf(`,"amount":%d,"currency":"EUR","channel":"nfc","merchant_id":"m-%d"`, amount, i)))
	}
	kafkatest.Produce(t, e.addr, e.payments, msgs...)
	e.waitStored(t, uint64(len(msgs)))

	tab := b.Tab(t, "http://"+d.httpAddr)
	tab.SignIn(apitest.Secrets[api.RoleAnalyst])
	tab.Go("#/rules")
	tab.WaitFor("rule-table")
	tab.WaitTrue(fmt.Sprintf("document.querySelectorAll(%q).length > 20", browsertest.Sel("rule-row")), "the reference rules listed")
	tab.Screenshot("rules")

	// A new file with a misspelt field: the error is marked where it is.
	tab.Click("tab-edit")
	openNewRuleFile(tab)
	bad := consoleRule("amout")
	setEditor(tab, bad)
	tab.WaitFor("editor-error-marker")
	line := 3
	col := strings.Index(strings.Split(bad, "\n")[line-1], "amout") + 1
	where := fmt.Sprintf("rule console-big-payment at %s:%d:%d", consoleRuleFile, line, col)
	if msg := tab.WaitText("editor-error", where); !strings.Contains(msg, "amout") {
		t.Errorf("editor error %q does not name the misspelt field", msg)
	}
	marked := browsertest.Eval[string](tab, fmt.Sprintf(`(() => { const m = document.querySelector(%q);
		const line = [...m.closest("code").children].indexOf(m.closest(".ed-line")) + 1;
		const before = [...m.closest(".ed-line").childNodes].slice(0, [...m.closest(".ed-line").childNodes].indexOf(m)).map(n => n.textContent).join("");
		return line + ":" + (before.length + 1) + ":" + m.textContent; })()`, browsertest.Sel("editor-error-marker")))
	if want := fmt.Sprintf("%d:%d:a", line, col); marked != want {
		t.Errorf("marker at %s, want %s (line:column:character)", marked, want)
	}
	tab.Screenshot("rules-editor-error")

	// Fixed: the marker goes and the set compiles.
	setEditor(tab, consoleRule("amount"))
	tab.WaitGone("editor-error-marker")
	tab.WaitText("validate-status", "Compiles")

	// Test on an example event and on the account's stored payments: the
	// rule matches the big example and the account's two big payments.
	tab.SetValue("test-events", `[{"event": {"event_id": "example-1", "type": "payment", "amount": 60000, "account_id": "a-new"}}]`)
	tab.SetValue("test-account", "acct-con")
	tab.Click("run-test")
	tab.WaitTrue(`document.querySelectorAll('[data-test="test-event"]').length === 5`, "the account's 4 payments and the example decided")
	matched := browsertest.Eval[string](tab, `[...document.querySelectorAll('[data-test="test-event"]')]
		.filter((tr) => tr.innerText.includes("console-big-payment")).map((tr) => tr.children[1].innerText).join(" ")`)
	if matched != "con-1 con-3 example-1" {
		t.Errorf("test: console-big-payment matched %q, want con-1 con-3 example-1", matched)
	}

	// Backtest over the hour of stored payments: the rule hits the two big ones.
	tab.SetValue("backtest-from", time.UnixMilli(now).Add(-time.Minute).UTC().Format(time.RFC3339))
	tab.SetValue("backtest-to", time.UnixMilli(now).Add(10*time.Minute).UTC().Format(time.RFC3339))
	tab.Click("run-backtest")
	tab.WaitTrue(`!!document.querySelector('[data-test="backtest-rules"], [data-test="backtest-result"] [data-test="error"]')`, "the backtest's answer")
	if tab.Present("error") {
		t.Fatalf("backtest: %s", tab.Text("error"))
	}
	row := browsertest.Eval[string](tab, `[...document.querySelectorAll('[data-test="backtest-rule"][data-rule="console-big-payment"] td')].map(td => td.innerText).join("|")`)
	if !strings.HasPrefix(row, "console-big-payment|active|2|") {
		t.Errorf("backtest row %q, want console-big-payment active with 2 hits", row)
	}
	tab.WaitFor("backtest-chart")
	tab.WaitText("backtest-changes", "review")
	scrollTo(tab, "backtest-result")
	tab.Screenshot("rules-backtest")

	// Publish: live on the daemon, first in the history.
	before := d.holder.Load().Version.Seq
	tab.Fill("publish-message", "review payments over 500.00")
	tab.Click("publish")
	tab.WaitText("toast", "is live")
	if rs := d.holder.Load(); rs.Rule("console-big-payment") == nil {
		t.Fatalf("version %s runs without the published rule", rs.Version)
	}
	tab.Click("tab-history")
	tab.WaitText("versions", "review payments over 500.00")
	seq := browsertest.Eval[string](tab, `document.querySelector('[data-test="version-row"]').dataset.seq`)
	if running := browsertest.Eval[bool](tab, `!!document.querySelector('[data-test="version-row"] [data-test="running"]')`); !running {
		t.Error("the newest version is not marked running")
	}

	// Its diff against the version before: the rule added, side by side.
	tab.Click("diff-" + seq)
	tab.WaitText("diff-summary", "rule console-big-payment added")
	tab.WaitText("diff", consoleRuleFile+" (added)")
	if added := browsertest.Eval[int](tab, `document.querySelectorAll('[data-test="diff-line-add"]').length`); added != 5 {
		t.Errorf("%d added lines in the diff, want the file's 5", added)
	}
	tab.Screenshot("rules-history-diff")

	// Roll back to the version before: the rule is gone from the daemon.
	tab.Go("#/rules/history")
	tab.Click("rollback-" + strconv.FormatUint(before, 10))
	tab.Click("rollback-confirm")
	tab.WaitText("toast", "Rolled back")
	if rs := d.holder.Load(); rs.Rule("console-big-payment") != nil {
		t.Fatalf("version %s still runs the rolled-back rule", rs.Version)
	}
	tab.WaitText("versions", fmt.Sprintf("rollback to version %d", before))
}

// scrollTo scrolls the element with data-test id to the top of the view.
func scrollTo(tab *browsertest.Tab, id string) {
	browsertest.Eval[bool](tab, fmt.Sprintf(`(() => { document.querySelector(%q).scrollIntoView(); return true; })()`, browsertest.Sel(id)))
}

// A viewer reads the rules and their history but sees no control that
// changes them, and the API refuses a publish sent with the viewer's
// session anyway.
func TestConsoleViewerSeesNoPublishControl(t *testing.T) {
	_, d, b := consoleEnv(t)
	tab := b.Tab(t, "http://"+d.httpAddr)
	tab.SignIn(apitest.Secrets[api.RoleViewer])
	tab.Go("#/rules")
	tab.WaitFor("rule-table")
	if tab.Present("tab-edit") {
		t.Error("a viewer sees the editor tab")
	}
	tab.Go("#/rules/edit")
	tab.WaitFor("error")
	for _, id := range []string{"publish", "publish-shadow", "editor-input"} {
		if tab.Present(id) {
			t.Errorf("a viewer sees %s on the editor's page", id)
		}
	}
	tab.Go("#/rules/history")
	tab.WaitFor("versions")
	if n := browsertest.Eval[int](tab, `document.querySelectorAll('[data-test^="rollback-"]').length`); n != 0 {
		t.Errorf("a viewer sees %d rollback buttons", n)
	}
	status := browsertest.Eval[int](tab, `import("/console/assets/lib.js").then((m) => m.api("POST", "/v1/rules/publish",
		{patch: {"viewer.yaml": "[]"}, message: "a viewer tries"})).then(() => 200, (err) => err.status)`)
	if status != http.StatusForbidden {
		t.Errorf("a viewer's publish through the console: %d, want 403", status)
	}
	if d.holder.Load().Rule("viewer") != nil {
		t.Error("the viewer's publish went through")
	}

	// Support reads the rules too (not the candidate, which is not theirs
	// to see), without an error on the page.
	support := b.Tab(t, "http://"+d.httpAddr)
	support.SignIn(apitest.Secrets[api.RoleSupport])
	support.Go("#/rules")
	support.WaitFor("rule-table")
	if support.Present("error") || support.Present("tab-edit") {
		t.Errorf("support's rules page: error shown %v, editor tab shown %v", support.Present("error"), support.Present("tab-edit"))
	}
}

// An analyst finds a list, searches it, adds an entry and removes it; the
// running set follows each change.
func TestConsoleListsSearchAddAndRemove(t *testing.T) {
	_, d, b := consoleEnv(t)
	tab := b.Tab(t, "http://"+d.httpAddr)
	tab.SignIn(apitest.Secrets[api.RoleAnalyst])
	tab.Go("#/lists")
	tab.WaitFor("lists")
	tab.WaitText("lists", "scam_payees")
	tab.Go("#/lists/scam_payees")
	tab.WaitFor("list-entries")
	total := len(d.holder.Load().Lists["scam_payees"])
	tab.WaitText("list-count", fmt.Sprintf("%d entries", total))
	tab.SetValue("list-search", "0003")
	tab.WaitText("list-count", fmt.Sprintf("1 of %d entries match", total))

	tab.SetValue("list-add-entries", "payee-console-1")
	tab.Fill("list-message", "reported by a customer")
	tab.Click("list-add")
	tab.WaitText("toast", "Added 1")
	if _, ok := d.holder.Load().Lists["scam_payees"]["payee-console-1"]; !ok {
		t.Fatal("the added entry is not in the running set")
	}
	tab.SetValue("list-search", "console")
	tab.WaitText("list-count", fmt.Sprintf("1 of %d entries match", total+1))
	tab.Screenshot("lists")

	tab.Click("remove-entry")
	tab.WaitText("toast", "Removed payee-console-1")
	tab.WaitText("list-count", fmt.Sprintf("0 of %d entries match", total))
	if _, ok := d.holder.Load().Lists["scam_payees"]["payee-console-1"]; ok {
		t.Fatal("the removed entry is still in the running set")
	}

	// A new list, created with its first entries.
	tab.Fill("new-list-name", "console_watch")
	tab.Click("new-list")
	tab.WaitFor("list-add-entries")
	tab.SetValue("list-add-entries", "acct-1\nacct-2")
	tab.Click("list-add")
	tab.WaitText("list-count", "2 entries")
	tab.WaitText("lists", "console_watch")
	if got := len(d.holder.Load().Lists["console_watch"]); got != 2 {
		t.Fatalf("the new list runs with %d entries, want 2", got)
	}
}

// The editor completes event fields, features and list names as one types
// (arrows to choose, Enter or Tab to take, Esc to close) and on Ctrl+Space.
func TestConsoleEditorCompletes(t *testing.T) {
	_, d, b := consoleEnv(t)
	tab := b.Tab(t, "http://"+d.httpAddr)
	tab.SignIn(apitest.Secrets[api.RoleAnalyst])
	tab.Go("#/rules/edit")
	openNewRuleFile(tab)
	setEditor(tab, "- id: typed\n  action: review\n  when: ")
	editor := browsertest.Sel("editor-input")
	value := func() string {
		return browsertest.Eval[string](tab, fmt.Sprintf("document.querySelector(%q).value", editor))
	}
	popup := func() string {
		return browsertest.Eval[string](tab, `(() => { const p = document.querySelector('[data-test="editor-completion"]');
			return p.hidden ? "" : [...p.children].map((li) => (li.getAttribute("aria-selected") === "true" ? "*" : "") + li.textContent).join(" "); })()`)
	}
	waitPopup := func(want string) {
		t.Helper()
		tab.WaitTrue(`(() => { const p = document.querySelector('[data-test="editor-completion"]');
			return !p.hidden && [...p.children].some((li) => li.textContent === `+strconv.Quote(want)+`); })()`, "completion offering "+want)
	}

	// An event field: typed, offered, taken with Enter.
	tab.Run(chromedp.SendKeys(editor, "event.amo"))
	waitPopup("amount")
	if got := popup(); !strings.HasPrefix(got, "*amount") {
		t.Errorf("completion for event.amo: %q, want amount first and chosen", got)
	}
	press(tab, '\r')
	if got := value(); !strings.HasSuffix(got, "when: event.amount") {
		t.Fatalf("after Enter: %q", got)
	}

	// A profile feature: arrows move the choice, Tab takes it.
	tab.Run(chromedp.KeyEvent(" > 100 && f.new_"))
	waitPopup("new_device")
	tab.Run(chromedp.KeyEvent(kb.Escape))
	tab.WaitTrue(`document.querySelector('[data-test="editor-completion"]').hidden`, "Esc closes the completion")
	tab.Run(chromedp.KeyEvent(" ", chromedp.KeyModifiers(chromedp.ModifierCtrl)))
	waitPopup("new_device")
	before := popup()
	tab.Run(chromedp.KeyEvent(kb.ArrowDown))
	after := popup()
	if before == after || strings.Count(after, "*") != 1 {
		t.Errorf("ArrowDown did not move the choice: %q then %q", before, after)
	}
	chosen := after[strings.Index(after, "*")+1:]
	chosen, _, _ = strings.Cut(chosen, " ")
	press(tab, '\t')
	if got := value(); !strings.HasSuffix(got, "f."+chosen) {
		t.Fatalf("after Tab: %q, want it to end in f.%s", got, chosen)
	}

	// A list name inside in_list's first argument.
	tab.Run(chromedp.KeyEvent(` && in_list("scam`))
	waitPopup("scam_payees")
	press(tab, '\r')
	if got := value(); !strings.HasSuffix(got, `in_list("scam_payees`) {
		t.Fatalf("after taking the list: %q", got)
	}
	tab.Run(chromedp.KeyEvent(`", event.payee_id)`))
	tab.WaitText("validate-status", "Compiles")
}

// press presses the key r as a keyboard does: one keyDown carrying its
// text, so a handler that prevents the keyDown's default also stops the
// text (chromedp.KeyEvent sends the text as a separate char event, which
// a page cannot prevent), then keyUp.
func press(tab *browsertest.Tab, r rune) {
	tab.Run(chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
		events := kb.Encode(r)
		down, up := *events[0], *events[len(events)-1]
		if len(events) == 3 {
			down.Text, down.UnmodifiedText = events[1].Text, events[1].UnmodifiedText
		}
		for _, e := range []*input.DispatchKeyEventParams{&down, &up} {
			if _, err := cdp.Call(ctx, target, input.DispatchKeyEvent, *e); err != nil {
				return err
			}
		}
		return nil
	}))
}

// An analyst publishes a change in shadow: it shows as the candidate
// beside the live set, and promoting it makes it the live version.
func TestConsoleShadowPublishAndPromote(t *testing.T) {
	_, d, b := consoleEnv(t)
	tab := b.Tab(t, "http://"+d.httpAddr)
	tab.SignIn(apitest.Secrets[api.RoleAnalyst])
	tab.Go("#/rules/edit")
	openNewRuleFile(tab)
	setEditor(tab, consoleRule("amount"))
	tab.WaitText("validate-status", "Compiles")
	// Unpublished edits survive a look at another tab.
	tab.Click("tab-history")
	tab.WaitFor("versions")
	tab.Go("#/rules/edit/" + consoleRuleFile)
	tab.WaitTrue(fmt.Sprintf("document.querySelector(%q).value === %q", browsertest.Sel("editor-input"), consoleRule("amount")),
		"the edit kept while away")
	tab.Fill("publish-message", "try big payments in shadow")
	tab.Click("publish-shadow")
	tab.WaitText("candidate", "try big payments in shadow")
	if d.holder.Load().Rule("console-big-payment") != nil {
		t.Fatal("a shadow publish changed the live set")
	}
	if cs := d.holder.LoadCandidate(); cs == nil || cs.Rule("console-big-payment") == nil {
		t.Fatal("the candidate does not run the rule")
	}
	tab.Fill("promote-message", "agrees with the live set")
	tab.Click("promote")
	tab.WaitText("toast", "is live")
	if d.holder.Load().Rule("console-big-payment") == nil {
		t.Fatal("the promoted rule is not live")
	}
	tab.WaitText("versions", "agrees with the live set")
}

// The editor's tokenizer, completion contexts and the diff, run in the
// browser on the reference rule files: highlighting never changes the
// text, and each piece classes what it should.
func TestConsoleRuleScriptsInTheBrowser(t *testing.T) {
	_, d, b := consoleEnv(t)
	tab := b.Tab(t, "http://"+d.httpAddr)
	tab.SignIn(apitest.Secrets[api.RoleAnalyst])
	files := map[string]string{}
	entries, err := os.ReadDir("../../bench/reference/rules")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".yaml") {
			b, err := os.ReadFile(filepath.Join("../../bench/reference/rules", e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			files[e.Name()] = string(b)
		}
	}
	js, err := json.Marshal(files)
	if err != nil {
		t.Fatal(err)
	}
	// Every file's tokens join back into the file.
	broken := browsertest.Eval[[]string](tab, `import("/console/assets/editor.js").then((m) => {
		const files = `+string(js)+`;
		return Object.keys(files).filter((n) => m.tokenizeRules(files[n]).map((l) => l.map((t) => t[1]).join("")).join("\n") !== files[n]);
	})`)
	if len(broken) > 0 {
		t.Errorf("highlighting changes the text of %v", broken)
	}
	for _, c := range []struct{ line, want string }{
		{`  when: event.type == "payment" && f.payments_1h > 5 # note`,
			`key:when var:event field:type op:== str:"payment" op:&& var:f field:payments_1h op:> num:5 comment:# note`},
		{`  when: in_list("scam_payees", event.payee_id) and not account.locked`,
			`key:when fn:in_list str:"scam_payees" var:event field:payee_id kw:and kw:not var:account field:locked`},
		{`  action: block`, `key:action kw: block`},
		{`  lock_for: 30m`, `key:lock_for num:30m`},
	} {
		got := browsertest.Eval[string](tab, `import("/console/assets/editor.js").then((m) =>
			m.tokenizeRules(`+strconv.Quote(c.line)+`)[0].filter((t) => t[0] && t[1].trim()).map((t) => t[0] + ":" + t[1]).join(" "))`)
		if got != c.want {
			t.Errorf("tokens of %q:\n got %s\nwant %s", c.line, got, c.want)
		}
	}
	for _, c := range []struct{ before, want string }{
		{`  when: event.amo`, `field event amo`},
		{`  when: event.device.`, `field event.device `},
		{`  when: in_list("sc`, `list  sc`},
		{`  acti`, `key  acti`},
		{`  action: bl`, `action  bl`},
		{`  when: hav`, `name  hav`},
		{`  when: event.type == "pay`, `none`},
		{`  # a comment about event.`, `none`},
	} {
		got := browsertest.Eval[string](tab, `import("/console/assets/editor.js").then((m) => {
			const c = m.completionContext(`+strconv.Quote(c.before)+`);
			return c ? [c.kind, c.chain || "", c.prefix].join(" ") : "none"; })`)
		if got != c.want {
			t.Errorf("completion context of %q: %q, want %q", c.before, got, c.want)
		}
	}
	diff := browsertest.Eval[string](tab, `import("/console/assets/rules-view.js").then((m) =>
		m.lineDiff("a\nb\nc\n", "a\nB\nc\nd\n").map((r) => r[0] + r[1] + r[3]).join(" "))`)
	if want := "same11 change22 same33 add4"; diff != want {
		t.Errorf("line diff: %s, want %s", diff, want)
	}
}
