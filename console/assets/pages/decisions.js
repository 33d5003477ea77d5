// Decisions: search the stored decisions by action, rule, account and
// lateness (GET /v1/decisions): the list behind the overview's figures.
import { api, fmtTime, h } from "../lib.js";

export default {
  title: "Decisions",
  path: "decisions",
  roles: ["viewer", "analyst", "support"],
  render(root, ctx) {
    const q = ctx.query;
    const action = h("select", { name: "action", "data-test": "decisions-action" },
      ["", "allow", "review", "challenge", "block", "lock"].map((a) =>
        h("option", { value: a, selected: q.get("action") === a }, a || "any action")));
    const rule = h("input", { name: "rule", placeholder: "rule id", value: q.get("rule") || "", "data-test": "decisions-rule" });
    const account = h("input", { name: "account", placeholder: "account id", value: q.get("account") || "", "data-test": "decisions-account" });
    const late = h("input", { type: "checkbox", name: "late", checked: q.get("late") === "true", "data-test": "decisions-late" });
    const list = h("div", { "data-test": "decisions-list" });
    const form = h("form", { class: "inline", onsubmit: (e) => {
      e.preventDefault();
      const p = new URLSearchParams();
      for (const [k, el] of [["action", action], ["rule", rule], ["account", account]]) if (el.value.trim()) p.set(k, el.value.trim());
      if (late.checked) p.set("late", "true");
      ctx.navigate("#/decisions" + (p.size ? "?" + p : ""));
    } }, action, rule, account, h("label", null, late, " late only"), h("button", { type: "submit", class: "primary", "data-test": "decisions-search" }, "Search"));
    root.append(h("h1", null, "Decisions"), form, list);
    load();

    async function load(before) {
      const p = new URLSearchParams();
      for (const k of ["action", "rule", "account"]) if (q.get(k)) p.set(k, q.get(k));
      if (q.get("late") === "true") p.set("late", "true");
      p.set("limit", "100");
      if (before) p.set("before", before);
      list.append(h("p", { class: "muted loading" }, "Loading…"));
      try {
        const res = await api("GET", "/v1/decisions?" + p);
        list.querySelector(".loading")?.remove();
        if (!res.decisions.length && !before) { list.append(h("p", { class: "muted" }, "No decision matches.")); return; }
        list.append(table(res.decisions));
        if (res.next) {
          const more = h("button", { type: "button", "data-test": "decisions-more", onclick: () => { more.remove(); load(res.next); } }, "More");
          list.append(more);
        }
      } catch (err) {
        list.querySelector(".loading")?.remove();
        list.append(h("p", { class: "error", "data-test": "error" }, err.message));
      }
    }
  },
};

function table(rows) {
  return h("table", null,
    h("thead", null, h("tr", null, ["Event time", "Account", "Event", "Action", "Score", "Rules"].map((c) => h("th", null, c)))),
    h("tbody", null, rows.map((d) => h("tr", { "data-test": "decision-row" },
      h("td", null, fmtTime(Date.parse(d.time))),
      h("td", null, h("a", { href: "#/accounts/" + encodeURIComponent(d.account_id) }, d.account_id)),
      h("td", null, h("code", null, d.event_id), " ", h("span", { class: "muted" }, d.event_type),
        d.late ? h("span", { class: "badge late", "data-test": "decision-late", title: "late for " + (d.late_for || []).join(", ") }, "late") : null),
      h("td", null, h("span", { class: "badge " + d.action }, d.action)),
      h("td", { class: "num" }, String(d.score)),
      h("td", null, (d.matched_rules || []).map((r) => h("a", { href: "#/rules/" + encodeURIComponent(r), class: "rule" }, r, " ")))))));
}
