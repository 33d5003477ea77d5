// Raised alerts: the alerts the rules raised, newest first (GET
// /v1/alerts), each linked to its account: the list behind the
// overview's alerts figure. The admin's subscribers are on #/alerts.
import { api, can, fmtTime, h } from "../lib.js";

export default {
  title: "Raised alerts",
  path: "raised",
  roles: ["viewer", "analyst", "support"],
  render(root, ctx) {
    const minutes = Number(ctx.query.get("minutes")) || 60;
    const since = new Date(Date.now() - minutes * 60000).toISOString();
    const list = h("div", { "data-test": "raised-list" }, h("p", { class: "muted" }, "Loading…"));
    root.append(h("h1", null, "Raised alerts ", h("span", { class: "muted" }, `· last ${minutes} minutes, newest first`)),
      can() ? h("p", null, h("a", { href: "#/alerts", "data-test": "raised-subscribers" }, "The subscribers that receive them →")) : null,
      list);
    load();
    async function load() {
      try {
        const res = await api("GET", "/v1/alerts?limit=200&since=" + encodeURIComponent(since));
        if (!res.alerts.length) { list.replaceChildren(h("p", { class: "muted" }, "No alert was raised in this period.")); return; }
        list.replaceChildren(h("table", null,
          h("thead", null, h("tr", null, ["Decided", "Account", "Rule", "Action", "Message", "Event"].map((c) => h("th", null, c)))),
          h("tbody", null, res.alerts.map((a) => h("tr", { "data-test": "raised-row" },
            h("td", null, fmtTime(Date.parse(a.decided_at))),
            h("td", null, h("a", { href: "#/accounts/" + encodeURIComponent(a.account_id) }, a.account_id)),
            h("td", null, h("a", { href: "#/rules/" + encodeURIComponent(a.rule_id), class: "rule" }, a.rule_id)),
            h("td", null, h("span", { class: "badge " + a.action }, a.action)),
            h("td", null, a.message),
            h("td", null, h("code", null, a.event_id), " ", h("span", { class: "muted" }, fmtTime(Date.parse(a.time)))))))));
      } catch (err) {
        list.replaceChildren(h("p", { class: "error", "data-test": "error" }, err.message));
      }
    }
  },
};
