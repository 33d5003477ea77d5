// Accounts: look an account up; its live lock state and timeline (events,
// decisions with the rules that matched and the feature values they read,
// alerts, locks, labels, suppressions); lock and unlock (support), suppress
// a rule for the account, label an event (support, analyst).
import { api, can, fmtTime, h, toast } from "../lib.js";

const VERIFICATIONS = ["id_document", "video_call", "security_questions", "in_branch", "sms_otp"];

export default {
  title: "Accounts",
  path: "accounts",
  roles: ["support", "analyst", "viewer"],
  render(root, ctx) {
    const id = ctx.params[0] || "";
    const input = h("input", { type: "search", name: "account", placeholder: "account id", value: id,
      "aria-label": "Account id", "data-test": "account-search", required: true, maxlength: 128 });
    root.append(h("h1", null, "Accounts"),
      h("form", { class: "inline", role: "search", onsubmit: (e) => {
        e.preventDefault();
        if (input.value.trim()) ctx.navigate("#/accounts/" + encodeURIComponent(input.value.trim()));
      } }, input, h("button", { type: "submit", class: "primary", "data-test": "account-go" }, "Look up")));
    if (!id) { input.focus(); return; }
    const view = h("div", { "data-test": "account-view" }, h("p", { class: "muted" }, "Loading…"));
    root.append(view);
    show(view, id);
  },
};

async function show(view, id) {
  let tl;
  try {
    tl = await api("GET", `/v1/accounts/${encodeURIComponent(id)}/timeline?limit=200`);
  } catch (err) {
    view.replaceChildren(h("p", { class: err.status === 404 ? "muted" : "error", "data-test": "error" }, err.message));
    return;
  }
  const reload = () => show(view, id);
  view.replaceChildren(
    h("h2", null, "Account ", h("code", { "data-test": "account-id" }, id)),
    lockState(tl.live),
    controls(id, tl, reload),
    suppressions(id, tl.suppressions || [], reload),
    h("h2", null, "Timeline"),
    timeline(id, tl.entries, reload));
}

function lockState(live) {
  if (!live.locked) return h("p", { "data-test": "lock-state" }, h("span", { class: "badge unlocked" }, "not locked"));
  return h("p", { "data-test": "lock-state" }, h("span", { class: "badge locked" }, "locked"),
    " by ", h("code", null, live.by || "?"), " ",
    live.indefinite ? "until unlocked" : "until " + fmtTime(Date.parse(live.until)));
}

// controls are the lock, unlock and suppress forms the caller's role may use.
function controls(id, tl, reload) {
  const box = h("div", { class: "actions", "data-test": "account-controls" });
  const panel = h("div");
  const open = (form) => { panel.replaceChildren(form); form.querySelector("input,select")?.focus(); };
  const post = async (method, path, body, done) => {
    try {
      await api(method, path, body);
      toast(done);
      reload();
    } catch (err) {
      toast(err.message, "error");
    }
  };
  const acct = encodeURIComponent(id);
  if (can("support") && tl.live.locked) {
    box.append(h("button", { type: "button", class: "primary", "data-test": "unlock", onclick: () => {
      const reason = h("input", { name: "reason", required: true, maxlength: 500, placeholder: "why (ticket, call…)", "data-test": "unlock-reason" });
      const how = h("select", { name: "verification", required: true, "data-test": "unlock-verification" },
        h("option", { value: "" }, "identity checked by…"), VERIFICATIONS.map((v) => h("option", { value: v }, v.replaceAll("_", " "))));
      open(h("form", { class: "inline", "data-test": "unlock-form", onsubmit: (e) => {
        e.preventDefault();
        post("POST", `/v1/accounts/${acct}/unlock`, { reason: reason.value, verification: how.value }, "Unlocked " + id);
      } }, h("label", null, "Reason ", reason), h("label", null, "Identity check ", how),
      h("button", { type: "submit", class: "primary", "data-test": "unlock-submit" }, "Unlock")));
    } }, "Unlock…"));
  }
  if (can("support") && !tl.live.locked) {
    box.append(h("button", { type: "button", class: "danger", "data-test": "lock", onclick: () => {
      const reason = h("input", { name: "reason", required: true, maxlength: 500, placeholder: "why", "data-test": "lock-reason" });
      const dur = h("select", { name: "duration", "data-test": "lock-duration" },
        [["1h", "1 hour"], ["24h", "24 hours"], ["168h", "7 days"], ["", "until unlocked"]].map(([v, l]) => h("option", { value: v }, l)));
      open(h("form", { class: "inline", "data-test": "lock-form", onsubmit: (e) => {
        e.preventDefault();
        const body = dur.value ? { reason: reason.value, duration: dur.value } : { reason: reason.value, indefinite: true };
        post("POST", `/v1/accounts/${acct}/lock`, body, "Locked " + id);
      } }, h("label", null, "Reason ", reason), h("label", null, "For ", dur),
      h("button", { type: "submit", class: "danger", "data-test": "lock-submit" }, "Lock")));
    } }, "Lock…"));
  }
  if (can("support", "analyst")) {
    box.append(h("button", { type: "button", "data-test": "suppress", onclick: () => {
      const rule = h("input", { name: "rule", required: true, maxlength: 128, placeholder: "rule id", "data-test": "suppress-rule" });
      const dur = h("select", { name: "duration", "data-test": "suppress-duration" },
        [["24h", "24 hours"], ["72h", "3 days"], ["168h", "7 days"], ["720h", "30 days"]].map(([v, l]) => h("option", { value: v }, l)));
      const reason = h("input", { name: "reason", required: true, maxlength: 500, placeholder: "why", "data-test": "suppress-reason" });
      open(h("form", { class: "inline", "data-test": "suppress-form", onsubmit: (e) => {
        e.preventDefault();
        post("POST", `/v1/accounts/${acct}/suppressions`, { rule: rule.value, duration: dur.value, reason: reason.value },
          `Suppressed ${rule.value} for ${id}`);
      } }, h("label", null, "Rule ", rule), h("label", null, "For ", dur), h("label", null, "Reason ", reason),
      h("button", { type: "submit", class: "primary", "data-test": "suppress-submit" }, "Suppress")));
    } }, "Suppress a rule…"));
  }
  return h("div", null, box, panel);
}

function suppressions(id, active, reload) {
  if (!active.length) return h("div", { "data-test": "suppressions" });
  return h("div", { "data-test": "suppressions" }, h("h2", null, "Suppressed rules"),
    h("ul", null, active.map((s) => h("li", null, h("code", null, s.rule_id), ` until ${fmtTime(Date.parse(s.until))} by ${s.by} `,
      can("support", "analyst") ? h("button", { type: "button", "data-test": "lift-" + s.rule_id, onclick: async () => {
        try {
          await api("DELETE", `/v1/accounts/${encodeURIComponent(id)}/suppressions/${encodeURIComponent(s.rule_id)}`);
          toast("Lifted " + s.rule_id);
          reload();
        } catch (err) { toast(err.message, "error"); }
      } }, "Lift") : null))));
}

function timeline(id, entries, reload) {
  if (!entries.length) return h("p", { class: "muted", "data-test": "timeline" }, "Nothing stored in the last 30 days.");
  return h("ul", { class: "timeline", "data-test": "timeline" }, entries.map((e) => entry(id, e, reload)));
}

function entry(id, e, reload) {
  const when = h("span", { class: "when" }, fmtTime(Date.parse(e.time)));
  const attrs = { "data-test": "timeline-entry", "data-kind": e.kind, "data-event": e.event_id || "" };
  switch (e.kind) {
    case "decision":
      return h("li", attrs, when,
        h("span", { class: "badge " + e.action }, e.action), " ", h("code", null, e.event_id), " ",
        h("span", null, e.event_type), " · score ", String(e.score), e.reason ? " · " + e.reason : "",
        e.late ? h("span", { class: "muted" }, " · late") : null,
        (e.matched_rules || []).length ? h("div", { class: "detail" }, "rules: ",
          e.matched_rules.map((r) => h("a", { href: "#/rules/" + encodeURIComponent(r), "data-test": "matched-rule" }, r, " "))) : null,
        (e.features || []).length ? h("div", { class: "detail" }, "read: ",
          e.features.map((f) => h("code", { "data-test": "feature" }, `${f.name}=${fmtNum(f.value)} `))) : null,
        can("support", "analyst") ? h("div", { class: "detail" },
          h("button", { type: "button", class: "small", "data-test": "label-fraud", onclick: () => label(e.event_id, "fraud", reload) }, "Fraud"), " ",
          h("button", { type: "button", class: "small", "data-test": "label-not-fraud", onclick: () => label(e.event_id, "not_fraud", reload) }, "Not fraud")) : null);
    case "alert":
      return h("li", attrs, when, h("span", { class: "badge alert" }, "alert"), " ", h("code", null, e.rule_id), " ", e.message);
    case "lock":
    case "unlock":
      return h("li", attrs, when, h("span", { class: "badge " + e.kind }, e.kind), " ", e.reason,
        e.until ? " until " + fmtTime(Date.parse(e.until)) : "", h("span", { class: "muted" }, " · " + (e.actor || "")));
    case "label":
      return h("li", attrs, when, h("span", { class: "badge label" }, "label"), " ", h("code", null, e.event_id), " ",
        e.label, h("span", { class: "muted" }, ` · ${e.source}${e.labelled_by ? " by " + e.labelled_by : ""}`));
    default: // suppress, lift
      return h("li", attrs, when, h("span", { class: "badge" }, e.kind), " ", h("code", null, e.rule_id || ""), " ",
        e.reason || "", h("span", { class: "muted" }, " · " + (e.actor || "")));
  }
}

async function label(eventID, verdict, reload) {
  try {
    await api("POST", "/v1/labels", { labels: [{ event_id: eventID, label: verdict, source: can("support") ? "support" : "analyst" }] });
    toast(`Labelled ${eventID} ${verdict.replace("_", " ")}`);
    reload();
  } catch (err) {
    toast(err.message, "error");
  }
}

function fmtNum(v) {
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}
