// Rules: the running rule set with each rule's hits over the last day and
// its precision against labels, the shadow candidate, the editor (validate
// as you type, test, backtest, publish live or in shadow), the version
// history with rollback, and the side-by-side diff of two versions. Every
// call is riskd's own API (api/rulesapi), the one riskctl uses.
//
//   #/rules                 the rule set
//   #/rules/edit[/FILE]     the editor
//   #/rules/history         the versions
//   #/rules/diff/A/B        what changed from version A to B
import { h, fmtTime, toast, errorBox } from "../lib.js";
import { createEditor, useStyles } from "../editor.js";
import { sideBySide, hitsChart, pct } from "../rules-view.js";

// validateDelay is how long typing pauses before the set is validated.
const validateDelay = 350;

export default {
  title: "Rules",
  path: "rules",
  roles: ["analyst", "viewer", "support"],
  render(root, ctx) {
    useStyles();
    const [view = "", ...rest] = ctx.params;
    const tabs = [["", "Rule set"], ["history", "History"]];
    if (ctx.can("analyst")) tabs.splice(1, 0, ["edit", "Editor"]);
    root.append(h("h1", null, "Rules"), h("nav", { class: "tabs" }, tabs.map(([p, label]) =>
      h("a", { href: "#/rules" + (p ? "/" + p : ""), "data-test": "tab-" + (p || "set"), "aria-current": view === p ? "page" : null }, label))));
    const body = h("div");
    root.append(body);
    switch (view) {
      case "edit":
        return ctx.can("analyst") ? renderEditor(body, ctx, rest[0], Number(rest[1]) || 0) : body.append(errorBox(new Error("Only analysts edit rules.")));
      case "history":
        return renderHistory(body, ctx);
      case "diff":
        return renderDiff(body, ctx, rest[0], rest[1]);
      default:
        return renderSet(body, ctx);
    }
  },
};

// ---- The rule set ----

function renderSet(root, ctx) {
  const head = h("p", { class: "muted" }, "Loading…");
  const candidate = h("div");
  const table = h("div");
  root.append(head, candidate, table);
  (async () => {
    let set;
    try {
      set = await ctx.api("GET", "/v1/rules");
    } catch (err) {
      head.replaceWith(errorBox(err));
      return;
    }
    head.replaceChildren(`Running version `, h("code", { "data-test": "running-version" }, set.version),
      ` · ${set.rules.length} rules · hits and precision over the last 24 hours`);
    let stats = null;
    let statsErr = null;
    try {
      stats = await ctx.api("GET", "/v1/rules/stats");
    } catch (err) {
      statsErr = err;
    }
    table.replaceChildren(statsErr ? errorBox(statsErr) : "", ruleTable(set.rules, stats, ctx.can("analyst")));
    if (ctx.can("analyst", "viewer")) renderCandidate(candidate, ctx); // the candidate route is theirs, not support's
  })();
}

// ruleStats sums a rule's stats rows (one per version and mode).
function ruleStats(stats) {
  const by = new Map();
  for (const r of (stats && stats.rules) || []) {
    const s = by.get(r.rule_id) || { hits: 0, fraud: 0, notFraud: 0, unlabelled: 0 };
    s.hits += r.hits;
    s.fraud += r.fraud;
    s.notFraud += r.not_fraud;
    s.unlabelled += r.unlabelled;
    by.set(r.rule_id, s);
  }
  return by;
}

function ruleTable(rules, stats, canEdit) {
  const by = ruleStats(stats);
  return h("table", { "data-test": "rule-table" },
    h("thead", null, h("tr", null, h("th", null, "Rule"), h("th", null, "Action"), h("th", null, "Mode"), h("th", { class: "num" }, "Score"),
      h("th", { class: "num" }, "Hits 24h"), h("th", { class: "num", title: "fraud / labelled hits" }, "Precision (labelled)"),
      h("th", { class: "num", title: "fraud / all hits: unlabelled count as not fraud" }, "Precision (all)"),
      h("th", { class: "num" }, "Errors"), h("th", null, "File"))),
    h("tbody", null, rules.map((r) => {
      const s = by.get(r.id) || { hits: 0, fraud: 0, notFraud: 0 };
      const labelled = s.fraud + s.notFraud;
      return h("tr", { "data-test": "rule-row", "data-rule": r.id },
        h("td", null, h("strong", null, r.id), r.description ? h("div", { class: "muted" }, r.description) : null),
        h("td", null, h("span", { class: "badge " + r.action }, r.action)),
        h("td", { class: r.mode === "shadow" ? "mode-shadow" : null }, r.mode),
        h("td", { class: "num" }, r.score || ""),
        h("td", { class: "num", "data-test": "rule-hits" }, s.hits),
        h("td", { class: "num" }, labelled ? pct(s.fraud / labelled) : "–"),
        h("td", { class: "num" }, s.hits ? pct(s.fraud / s.hits) : "–"),
        h("td", { class: "num" }, r.runtime_errors || ""),
        h("td", null, canEdit ? h("a", { href: `#/rules/edit/${encodeURIComponent(r.file)}/${r.line}` }, `${r.file}:${r.line}`) : `${r.file}:${r.line}`));
    })));
}

async function renderCandidate(root, ctx) {
  let c;
  try {
    c = await ctx.api("GET", "/v1/rules/candidate");
  } catch (err) {
    if (err.status !== 404) root.replaceChildren(errorBox(err));
    return;
  }
  const msg = h("input", { "data-test": "promote-message", placeholder: "why it goes live", size: 40 });
  const agreed = c.compared ? pct(c.agreed / c.compared) : "–";
  root.replaceChildren(h("div", { class: "panel", "data-test": "candidate" },
    h("h2", null, "Shadow candidate ", h("code", null, c.version)),
    h("p", null, `${c.rules} rules by ${c.author}: ${c.message}. Running beside ${c.live_version || "the live set"} since ${fmtTime(Date.parse(c.installed_since))}; `,
      `${c.compared} decisions compared, ${agreed} the same.`),
    c.matrix && c.matrix.length ? h("table", null, h("thead", null, h("tr", null, h("th", null, "Live"), h("th", null, "Candidate"), h("th", { class: "num" }, "Decisions"))),
      h("tbody", null, c.matrix.map((m) => h("tr", null, h("td", null, m.live), h("td", null, m.candidate), h("td", { class: "num" }, m.count))))) : null,
    ctx.can("analyst") ? h("form", { class: "inline", onsubmit: (e) => e.preventDefault() }, msg,
      h("button", { class: "primary", "data-test": "promote", onclick: async () => {
        try {
          const out = await ctx.api("POST", "/v1/rules/candidate/promote", { message: msg.value });
          toast(`Version ${out.version} is live`);
          ctx.navigate("#/rules/history");
        } catch (err) { toast(err.message, "error"); }
      } }, "Promote"),
      h("button", { "data-test": "drop-candidate", onclick: async () => {
        try {
          await ctx.api("DELETE", "/v1/rules/candidate", {});
          toast("Candidate dropped");
          root.replaceChildren();
        } catch (err) { toast(err.message, "error"); }
      } }, "Drop")) : null));
}

// ---- The editor ----

// editsKey keeps the unpublished edits in the tab's sessionStorage, so
// they survive a look at the history or the rule set.
const editsKey = "riskd.rules.edits";

function savedEdits() {
  try {
    return JSON.parse(sessionStorage.getItem(editsKey) || "{}") || {};
  } catch {
    return {};
  }
}

function renderEditor(root, ctx, fileParam, lineParam) {
  let files = {}; // the running version's files
  const edits = savedEdits(); // files changed here, by name
  let current = fileParam ? decodeURIComponent(fileParam) : "";
  let vocab = null;
  let timer = 0;
  let seq = 0; // the validation in flight; older answers are dropped

  const status = h("span", { class: "muted", "data-test": "validate-status" });
  const picker = h("select", { "data-test": "file-select", onchange: () => open(picker.value) });
  const newName = h("input", { "data-test": "new-file-name", placeholder: "new-file.yaml", size: 16 });
  const editor = createEditor({ onInput: (text) => { edits[current] = text; keep(); scheduleValidate(); }, vocab: () => vocab });
  const keep = () => sessionStorage.setItem(editsKey, JSON.stringify(edits));
  const changedList = h("span", { class: "muted", "data-test": "changed-files" });

  const testPanel = testForm(ctx, () => edits);
  const backtestPanel = backtestForm(ctx, () => edits);
  let grid = null; // the editor and its panels; data-ready once files and vocabulary are in
  const discard = () => {
    for (const k of Object.keys(edits)) delete edits[k];
    sessionStorage.removeItem(editsKey);
    status.textContent = "";
  };
  const publishPanel = publishForm(ctx, () => edits, async () => {
    discard();
    await load();
  });
  root.append(
    h("div", { class: "toolbar" }, h("label", null, "File ", picker),
      h("form", { class: "inline", onsubmit: (e) => {
        e.preventDefault();
        const name = newName.value.trim();
        if (!/^[A-Za-z0-9][\w-]*\.ya?ml$/.test(name)) {
          toast("A rule file is NAME.yaml (letters, digits, _ and -)", "error");
          return;
        }
        if (!(name in files) && !(name in edits)) edits[name] = "# " + name + "\n";
        newName.value = "";
        open(name);
      } }, newName, h("button", { "data-test": "new-file" }, "New file")),
      h("button", { type: "button", "data-test": "discard-edits", onclick: () => { discard(); open(current in files ? current : firstFile()); } }, "Discard changes"),
      h("span", { class: "grow" }), status),
    grid = h("div", { class: "rules-editor", "data-test": "rules-editor" },
      h("div", null, editor.el, changedList),
      h("div", null, testPanel.el, backtestPanel.el, publishPanel)),
    h("div", { "data-test": "results" }, testPanel.results, backtestPanel.results));

  function firstFile() {
    return Object.keys(files).filter((n) => /\.ya?ml$/.test(n) && !n.includes("/") && n !== "settings.yaml" && n !== "features.yaml").sort()[0] || "rules.yaml";
  }

  function open(name, line = 0) {
    current = name;
    editor.setValue(name in edits ? edits[name] : files[name] || "");
    if (line) editor.goToLine(line);
    drawPicker();
    if (Object.keys(edits).length) validate();
    history.replaceState(null, "", "#/rules/edit/" + encodeURIComponent(name));
  }

  function drawPicker() {
    const names = [...new Set([...Object.keys(files), ...Object.keys(edits)])]
      .filter((n) => !n.startsWith("lists/") && n !== "features.yaml").sort();
    picker.replaceChildren(...names.map((n) => h("option", { value: n, selected: n === current || null }, n + (n in edits ? " •" : ""))));
    picker.value = current;
    const changed = Object.keys(edits).filter((n) => edits[n] !== files[n]);
    changedList.textContent = changed.length ? "Changed: " + changed.join(", ") : "No changes yet.";
  }

  function scheduleValidate() {
    clearTimeout(timer);
    status.textContent = "…";
    drawPicker();
    timer = setTimeout(validate, validateDelay);
  }

  async function validate() {
    const mine = ++seq;
    try {
      const out = await ctx.api("POST", "/v1/rules/validate", { patch: edits });
      if (mine !== seq) return;
      editor.setError(null, "");
      status.textContent = `Compiles: ${out.rules} rules`;
      status.className = "pass";
    } catch (err) {
      if (mine !== seq) return;
      const d = err.details || {};
      const where = d.file ? `${d.file}:${d.line}:${d.column}` : "";
      const text = d.rule_id ? `rule ${d.rule_id} at ${where}: ${d.message}` : where ? `${where}: ${d.message}` : err.message;
      editor.setError(d.file === current && d.line ? { line: d.line, column: d.column || 1, message: d.message } : null, text);
      status.textContent = err.status === 422 ? "Does not compile" : "Not checked";
      status.className = "fail";
    }
  }

  async function load() {
    try {
      const set = await ctx.api("GET", "/v1/rules");
      const [ver, voc] = await Promise.all([ctx.api("GET", "/v1/rules/versions/" + set.seq), ctx.api("GET", "/v1/rules/vocabulary")]);
      files = ver.files || {};
      vocab = voc;
    } catch (err) {
      root.prepend(errorBox(err));
      return;
    }
    if (!current || !(current in files || current in edits)) current = firstFile();
    open(current, lineParam);
    lineParam = 0;
    grid.dataset.ready = "true";
    status.textContent = "";
  }
  load();
  return () => clearTimeout(timer);
}

// testForm runs POST /v1/rules/test on example events and an account's
// stored events with the edited set.
function testForm(ctx, edits) {
  const events = h("textarea", { class: "events", "data-test": "test-events", spellcheck: "false",
    placeholder: '[{"event": {"type": "payment", "amount": 5000, "account_id": "a1"}, "f": {"new_device": true}}]' });
  const account = h("input", { "data-test": "test-account", placeholder: "account id (optional)", size: 18 });
  const results = h("div", { class: "results", "data-test": "test-result" });
  const run = async () => {
    const body = { patch: edits() };
    try {
      if (events.value.trim()) body.events = JSON.parse(events.value);
    } catch (err) {
      toast("Events: not JSON: " + err.message, "error");
      return;
    }
    if (account.value.trim()) body.account_events = { account_id: account.value.trim(), limit: 50 };
    results.replaceChildren(h("p", { class: "muted" }, "Testing…"));
    try {
      results.replaceChildren(trialReport(await ctx.api("POST", "/v1/rules/test", body)));
    } catch (err) {
      results.replaceChildren(errorBox(err));
    }
  };
  const el = h("fieldset", null, h("legend", null, "Test"),
    h("p", { class: "muted" }, "Events decided in order on a fresh state (features computed from the earlier ones), after the account's 50 newest stored events if one is named. The set's examples run too."),
    events, h("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); run(); } }, account,
      h("button", { "data-test": "run-test" }, "Run test")));
  return { el, results };
}

function trialReport(rep) {
  const failed = (rep.examples || []).filter((e) => !e.pass);
  return h("div", null, h("h2", null, "Test"),
    h("p", { class: failed.length ? "fail" : "pass" }, `Examples: ${(rep.examples || []).length - failed.length} of ${(rep.examples || []).length} passed`),
    failed.length ? h("ul", null, failed.map((e) => h("li", null, `${e.rule_id} example ${e.index}: expected ${e.expect}, got ${e.result}${e.error ? " (" + e.error + ")" : ""}`))) : null,
    (rep.events || []).length ? h("table", null,
      h("thead", null, h("tr", null, h("th", null, "#"), h("th", null, "Event"), h("th", null, "Type"), h("th", null, "Action"), h("th", { class: "num" }, "Score"), h("th", null, "Matched"), h("th", null, "Shadow"))),
      h("tbody", null, rep.events.map((e) => h("tr", { "data-test": "test-event" },
        h("td", null, e.index), h("td", { class: "mono" }, e.event_id), h("td", null, e.type),
        h("td", null, h("span", { class: "badge " + e.action }, e.action)), h("td", { class: "num" }, e.score),
        h("td", null, (e.matched || []).map((m) => m.rule_id).join(", ")), h("td", null, (e.shadow || []).map((m) => m.rule_id).join(", ")))))) : null);
}

// backtestForm runs POST /v1/rules/backtest with the edited set.
function backtestForm(ctx, edits) {
  const now = new Date();
  const iso = (d) => d.toISOString().slice(0, 19) + "Z";
  const from = h("input", { "data-test": "backtest-from", value: iso(new Date(now - 24 * 3600e3)), size: 21 });
  const to = h("input", { "data-test": "backtest-to", value: iso(now), size: 21 });
  const warmup = h("input", { "data-test": "backtest-warmup", placeholder: "all history", size: 9 });
  const results = h("div", { "data-test": "backtest-result" });
  const button = h("button", { "data-test": "run-backtest" }, "Run backtest");
  const run = async () => {
    button.disabled = true;
    results.replaceChildren(h("p", { class: "muted" }, "Replaying stored events…"));
    try {
      const rep = await ctx.api("POST", "/v1/rules/backtest", { patch: edits(), from: from.value.trim(), to: to.value.trim(), warmup: warmup.value.trim() });
      results.replaceChildren(backtestReport(rep));
    } catch (err) {
      results.replaceChildren(errorBox(err));
    } finally {
      button.disabled = false;
    }
  };
  const el = h("fieldset", null, h("legend", null, "Backtest"),
    h("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); run(); } },
      h("label", null, "From ", from), h("label", null, "to ", to), h("label", null, "warm-up ", warmup), button));
  return { el, results };
}

function backtestReport(rep) {
  const t = rep.totals || {};
  const width = parseDuration(rep.bucket_width);
  return h("div", { class: "panel" }, h("h2", null, "Backtest of ", h("code", null, rep.candidate)),
    h("p", { "data-test": "backtest-summary" }, `${rep.events_period} events from ${fmtTime(Date.parse(rep.from))} to ${fmtTime(Date.parse(rep.to))} `,
      `(warm-up: ${rep.warmup}, ${rep.events_warmup} events) in ${rep.seconds.toFixed(1)} s; `,
      h("strong", { "data-test": "backtest-changed" }, `${t.changed || 0} ${t.changed === 1 ? "decision" : "decisions"} changed`), ` of ${t.compared || 0} compared.`),
    (rep.warnings || []).length ? h("ul", { class: "muted" }, rep.warnings.map((w) => h("li", null, w))) : null,
    h("h2", null, "Hits over time"),
    hitsChart((rep.rules || []).map((r) => ({ name: r.id, values: r.series || [] })), Date.parse(rep.bucket_start), width),
    h("h2", null, "Rules"),
    h("table", { "data-test": "backtest-rules" },
      h("thead", null, h("tr", null, h("th", null, "Rule"), h("th", null, "Mode"), h("th", { class: "num" }, "Hits"), h("th", { class: "num" }, "Shadow hits"),
        h("th", { class: "num" }, "Fraud"), h("th", { class: "num" }, "Not fraud"), h("th", { class: "num" }, "Precision (labelled)"),
        h("th", { class: "num" }, "Recorded"), h("th", { class: "num" }, "New"), h("th", { class: "num" }, "Lost"))),
      h("tbody", null, byImpact(rep.rules || []).map((r) => h("tr", { "data-test": "backtest-rule", "data-rule": r.id },
        h("td", null, r.id), h("td", { class: r.mode === "shadow" ? "mode-shadow" : null }, r.mode),
        h("td", { class: "num" }, r.hits), h("td", { class: "num" }, r.shadow_hits), h("td", { class: "num" }, r.fraud), h("td", { class: "num" }, r.not_fraud),
        h("td", { class: "num" }, pct(r.labelled_precision)), h("td", { class: "num" }, r.recorded_hits),
        h("td", { class: "num" }, r.new_hits), h("td", { class: "num" }, r.lost_hits))))),
    h("h2", null, "Changed decisions"),
    (t.changes || []).length ? h("table", { "data-test": "backtest-changes" },
      h("thead", null, h("tr", null, h("th", null, "From"), h("th", null, "To"), h("th", { class: "num" }, "Events"), h("th", null, "Examples"))),
      h("tbody", null, t.changes.map((c) => h("tr", null, h("td", null, h("span", { class: "badge " + c.from }, c.from)),
        h("td", null, h("span", { class: "badge " + c.to }, c.to)), h("td", { class: "num" }, c.count),
        h("td", { class: "mono" }, (c.examples || []).join(" ")))))) :
      h("p", { class: "muted", "data-test": "backtest-changes" }, "No decision changes action."));
}

// byImpact orders a backtest's rules by what changed, then by hits: the
// rules being edited come first.
function byImpact(rules) {
  return [...rules].sort((a, b) => b.changed - a.changed || (b.hits + b.shadow_hits) - (a.hits + a.shadow_hits));
}

// parseDuration reads Go's time.Duration text ("1h0m0s", "5m0s") in ms.
function parseDuration(s) {
  let ms = 0;
  for (const [, n, u] of String(s || "").matchAll(/([\d.]+)(h|ms|m|s|µs|us|ns)/g)) {
    ms += parseFloat(n) * { h: 3600e3, m: 60e3, s: 1e3, ms: 1, "µs": 1e-3, us: 1e-3, ns: 1e-6 }[u];
  }
  return ms;
}

// publishForm publishes the edited set live or in shadow.
function publishForm(ctx, edits, done) {
  const message = h("input", { "data-test": "publish-message", placeholder: "what the change does", size: 30 });
  const go = async (shadow) => {
    const patch = edits();
    if (!Object.keys(patch).length) {
      toast("Nothing changed to publish", "error");
      return;
    }
    try {
      const out = await ctx.api("POST", "/v1/rules/publish", { patch, message: message.value, shadow });
      toast(shadow ? `Candidate ${out.candidate_version} runs in shadow` : `Version ${out.version} is live`);
      message.value = "";
      await done();
      if (shadow) ctx.navigate("#/rules");
    } catch (err) {
      toast(err.message, "error");
    }
  };
  return h("fieldset", { "data-test": "publish-panel" }, h("legend", null, "Publish"),
    h("form", { class: "inline", onsubmit: (e) => e.preventDefault() }, message,
      h("button", { class: "primary", "data-test": "publish", onclick: () => go(false) }, "Publish"),
      h("button", { "data-test": "publish-shadow", onclick: () => go(true) }, "Publish in shadow")),
    h("p", { class: "muted" }, "In shadow, the set runs beside the live one and is never acted on, until promoted on the Rule set tab."));
}

// ---- History and diff ----

function renderHistory(root, ctx) {
  const list = h("div", null, h("p", { class: "muted" }, "Loading…"));
  root.append(list);
  (async () => {
    let versions;
    try {
      versions = (await ctx.api("GET", "/v1/rules/versions?limit=200")).versions;
    } catch (err) {
      list.replaceChildren(errorBox(err));
      return;
    }
    const fromSel = h("select", { "data-test": "diff-from" }, versions.map((v, i) => h("option", { value: v.seq, selected: i === 1 || null }, v.version)));
    const toSel = h("select", { "data-test": "diff-to" }, versions.map((v, i) => h("option", { value: v.seq, selected: i === 0 || null }, v.version)));
    const confirmBox = h("div");
    list.replaceChildren(
      versions.length > 1 ? h("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); ctx.navigate(`#/rules/diff/${fromSel.value}/${toSel.value}`); } },
        "Compare ", fromSel, " with ", toSel, h("button", { "data-test": "compare" }, "Show diff")) : null,
      confirmBox,
      h("table", { "data-test": "versions" },
        h("thead", null, h("tr", null, h("th", null, "Version"), h("th", null, "Published"), h("th", null, "Author"), h("th", null, "Message"),
          h("th", { class: "num" }, "Rules"), h("th", null, ""))),
        h("tbody", null, versions.map((v, i) => {
          const prev = versions[i + 1];
          return h("tr", { "data-test": "version-row", "data-seq": v.seq, class: v.running ? "running" : null },
            h("td", null, h("code", null, v.version), v.running ? h("span", { class: "badge allow", "data-test": "running" }, " running ") : null),
            h("td", null, fmtTime(Date.parse(v.published_at))), h("td", null, v.author),
            h("td", { "data-test": "version-message" }, v.message), h("td", { class: "num" }, v.rule_count),
            h("td", null, prev ? h("a", { href: `#/rules/diff/${prev.seq}/${v.seq}`, "data-test": "diff-" + v.seq }, "diff") : null, " ",
              ctx.can("analyst") && !v.running ? h("button", { "data-test": "rollback-" + v.seq, onclick: () => askRollback(v) }, "Roll back to this") : null));
        }))));

    function askRollback(v) {
      const msg = h("input", { "data-test": "rollback-message", value: `rollback to version ${v.seq}`, size: 40 });
      confirmBox.replaceChildren(h("form", { class: "inline panel", onsubmit: async (e) => {
        e.preventDefault();
        try {
          const out = await ctx.api("POST", "/v1/rules/rollback", { seq: v.seq, message: msg.value });
          toast(`Rolled back: version ${out.version} is live`);
          root.replaceChildren();
          renderHistory(root, ctx);
        } catch (err) {
          toast(err.message, "error");
        }
      } }, `Publish the files of version ${v.version} as a new version: `, msg,
        h("button", { class: "danger", "data-test": "rollback-confirm" }, "Roll back"),
        h("button", { type: "button", onclick: () => confirmBox.replaceChildren() }, "Cancel")));
    }
  })();
}

function renderDiff(root, ctx, a, b) {
  const out = h("div", null, h("p", { class: "muted" }, "Loading…"));
  root.append(out);
  (async () => {
    try {
      const [d, va, vb] = await Promise.all([ctx.api("GET", `/v1/rules/versions/${a}/diff/${b}`),
        ctx.api("GET", `/v1/rules/versions/${a}`), ctx.api("GET", `/v1/rules/versions/${b}`)]);
      out.replaceChildren(h("h2", null, `From `, h("code", null, d.from.version), ` to `, h("code", null, d.to.version)),
        h("p", { class: "muted" }, `${d.to.author}: ${d.to.message}`),
        diffSummary(d.diff),
        sideBySide(va.files, vb.files, `${d.from.version} (${d.from.author})`, `${d.to.version} (${d.to.author})`));
    } catch (err) {
      out.replaceChildren(errorBox(err));
    }
  })();
}

function diffSummary(d) {
  const items = [];
  for (const r of d.rules.added || []) items.push(`rule ${r.id} added (${r.file}:${r.line}, ${r.action || ""} ${r.mode})`);
  for (const r of d.rules.removed || []) items.push(`rule ${r.id} removed`);
  for (const r of d.rules.changed || []) items.push(`rule ${r.id} changed: ${(r.fields || []).map((f) => f.field).join(", ")}`);
  for (const l of d.lists.added || []) items.push(`list ${l.name} added (${l.entries} entries)`);
  for (const l of d.lists.removed || []) items.push(`list ${l.name} removed`);
  for (const l of d.lists.changed || []) items.push(`list ${l.name}: +${l.added} −${l.removed}`);
  for (const s of d.settings || []) items.push(`setting ${s.field}: ${s.old} → ${s.new}`);
  for (const f of d.features || []) items.push(`feature ${f.field} changed`);
  return h("ul", { "data-test": "diff-summary" }, items.length ? items.map((t) => h("li", null, t)) : h("li", { class: "muted" }, "No rule, list or setting changed."));
}
