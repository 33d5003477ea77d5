// Review queue: the cases opened by review decisions (GET /v1/cases);
// take one, look at it and its account, close it with an outcome.
import { api, caller, fmtTime, h, toast } from "../lib.js";

const OUTCOMES = [["fraud", "Fraud"], ["not_fraud", "Not fraud"], ["inconclusive", "Inconclusive"]];

export default {
  title: "Review queue",
  path: "review",
  roles: ["support", "analyst"],
  render(root, ctx) {
    const id = ctx.params[0];
    if (id) {
      root.append(h("p", null, h("a", { href: "#/review" }, "← Review queue")));
      const box = h("div", { "data-test": "case-view" }, h("p", { class: "muted" }, "Loading…"));
      root.append(box);
      showCase(box, id);
      return;
    }
    const status = ctx.query.get("status") || "open";
    const pick = h("select", { "data-test": "cases-status", "aria-label": "Status", onchange: () => ctx.navigate("#/review?status=" + pick.value) },
      ["open", "taken", "closed"].map((s) => h("option", { value: s, selected: s === status }, s)));
    const list = h("div", { "data-test": "cases" }, h("p", { class: "muted" }, "Loading…"));
    root.append(h("h1", null, "Review queue"), h("div", { class: "inline" }, h("label", null, "Status ", pick)), list);
    load();
    async function load() {
      try {
        const res = await api("GET", "/v1/cases?status=" + encodeURIComponent(status) + "&limit=100");
        list.replaceChildren(casesTable(res.cases, load));
      } catch (err) {
        list.replaceChildren(h("p", { class: "error", "data-test": "error" }, err.message));
      }
    }
  },
};

function casesTable(cases, reload) {
  if (!cases.length) return h("p", { class: "muted", "data-test": "cases-empty" }, "No case here.");
  return h("table", null,
    h("thead", null, h("tr", null, ["Opened", "Account", "Event", "Score", "Rules", "Status", ""].map((c) => h("th", null, c)))),
    h("tbody", null, cases.map((c) => h("tr", { "data-test": "case-row", "data-case": c.id },
      h("td", null, h("a", { href: "#/review/" + c.id, "data-test": "case-open" }, fmtTime(Date.parse(c.opened_at)))),
      h("td", null, h("a", { href: "#/accounts/" + encodeURIComponent(c.account_id) }, c.account_id)),
      h("td", null, h("code", null, c.event_id), " ", h("span", { class: "muted" }, c.event_type)),
      h("td", { class: "num" }, String(c.score)),
      h("td", null, (c.rules || []).map((r) => h("a", { href: "#/rules/" + encodeURIComponent(r) }, r, " "))),
      h("td", null, c.status, c.assignee ? h("span", { class: "muted" }, " · " + c.assignee) : null),
      h("td", null, caseActions(c, reload))))));
}

function caseActions(c, reload) {
  const out = [];
  if (c.status === "open") {
    out.push(h("button", { type: "button", class: "primary small", "data-test": "case-take", onclick: async () => {
      // Taken, the case is worked on its own view.
      try { await api("POST", `/v1/cases/${c.id}/take`, {}); toast("Took the case"); location.hash = "#/review/" + c.id; } catch (err) { toast(err.message, "error"); reload(); }
    } }, "Take"));
  }
  if (c.status === "taken" && c.assignee === caller.name) {
    out.push(h("a", { class: "button small", href: "#/review/" + c.id, "data-test": "case-work" }, "Close…"));
  }
  return out;
}

async function showCase(box, id) {
  let c;
  try {
    c = await api("GET", "/v1/cases/" + encodeURIComponent(id));
  } catch (err) {
    box.replaceChildren(h("p", { class: "error", "data-test": "error" }, err.message));
    return;
  }
  const reload = () => showCase(box, id);
  const dl = (rows) => h("dl", { class: "facts" }, rows.filter(([, v]) => v !== "" && v !== undefined && v !== null)
    .flatMap(([k, v]) => [h("dt", null, k), h("dd", null, v)]));
  box.replaceChildren(
    h("h1", null, "Case ", h("code", null, c.id)),
    h("p", { "data-test": "case-status" }, h("span", { class: "badge" }, c.status), c.assignee ? " taken by " + c.assignee : "",
      c.outcome ? " · outcome " + c.outcome : ""),
    dl([["Account", h("a", { href: "#/accounts/" + encodeURIComponent(c.account_id), "data-test": "case-account" }, c.account_id)],
      ["Event", h("code", null, c.event_id)], ["Type", c.event_type], ["Event time", fmtTime(c.event_ts)],
      ["Opened", fmtTime(Date.parse(c.opened_at))], ["Score", String(c.score)], ["Reason", c.reason || ""],
      ["Rules", (c.rules || []).map((r) => h("a", { href: "#/rules/" + encodeURIComponent(r) }, r, " "))],
      ["Rule set", c.ruleset_version], ["Note", c.note || ""], ["Closed by", c.closed_by || ""]]));
  if (c.status === "open") {
    box.append(h("button", { type: "button", class: "primary", "data-test": "case-take", onclick: async () => {
      try { await api("POST", `/v1/cases/${c.id}/take`, {}); toast("Took the case"); reload(); } catch (err) { toast(err.message, "error"); }
    } }, "Take"));
  }
  if (c.status === "taken" && c.assignee === caller.name) {
    const outcome = h("select", { required: true, "data-test": "case-outcome" }, h("option", { value: "" }, "outcome…"),
      OUTCOMES.map(([v, l]) => h("option", { value: v }, l)));
    const note = h("input", { maxlength: 1000, size: 50, placeholder: "note", "data-test": "case-note" });
    box.append(h("form", { class: "inline", "data-test": "case-close-form", onsubmit: async (e) => {
      e.preventDefault();
      try {
        await api("POST", `/v1/cases/${c.id}/close`, { outcome: outcome.value, note: note.value });
        toast("Closed the case");
        reload();
      } catch (err) { toast(err.message, "error"); }
    } }, h("label", null, "Outcome ", outcome), note, h("button", { type: "submit", class: "primary", "data-test": "case-close" }, "Close case")));
  }
}
