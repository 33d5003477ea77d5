// Overview: the last hour at a glance: decisions per minute by action,
// the top rules, the pipeline's counters, and alerts as they happen.
import { api, can, fmtTime, h } from "../lib.js";

const ACTIONS = ["allow", "review", "challenge", "block", "lock"];

export default {
  title: "Overview",
  path: "overview",
  roles: ["viewer", "analyst", "support"],
  render(root) {
    const figures = h("div", { class: "cards", "data-test": "overview-figures" }, h("p", { class: "muted" }, "Loading…"));
    const chart = h("div", { class: "panel", "data-test": "overview-chart" });
    const top = h("div", { class: "panel", "data-test": "overview-top-rules" });
    const feed = h("ul", { class: "feed", "data-test": "live-feed" });
    const status = h("span", { class: "muted", "data-test": "live-status" }, "connecting…");
    root.append(
      h("h1", null, "Overview ", h("span", { class: "muted" }, "· last 60 minutes")),
      figures,
      h("div", { class: "grid2" },
        h("div", null, h("h2", null, "Decisions per minute"), chart, h("h2", null, "Top rules"), top),
        h("div", null, h("h2", null, "Live alerts ", status),
          h("div", { class: "panel" }, feed, h("p", { class: "muted empty-feed" }, "Alerts appear here as they happen.")))));

    load();
    async function load() {
      try {
        const ov = await api("GET", "/v1/overview?minutes=60");
        figures.replaceChildren(...cards(ov));
        chart.replaceChildren(...drawChart(ov));
        top.replaceChildren(topRules(ov.top_rules));
      } catch (err) {
        figures.replaceChildren(h("p", { class: "error", "data-test": "error" }, err.message));
      }
    }

    // The live stream: the browser reconnects by itself (with
    // Last-Event-ID) when it drops.
    const es = new EventSource("/console/api/v1/alerts/stream");
    es.onopen = () => { status.textContent = "● live"; };
    es.onerror = () => { status.textContent = "reconnecting…"; };
    const show = (kind) => (msg) => {
      let body = {};
      try { body = JSON.parse(msg.data); } catch { /* a non-JSON body shows as is */ }
      const li = h("li", { "data-test": "live-item", "data-kind": kind },
        h("span", { class: "badge " + (kind === "alert" ? body.action || "alert" : kind) }, kind), " ",
        h("a", { href: "#/accounts/" + encodeURIComponent(body.account_id || "") }, body.account_id || "?"), " ",
        body.rule_id ? h("code", null, body.rule_id) : null, " ",
        h("span", null, body.message || body.reason || ""), " ",
        h("span", { class: "muted" }, fmtTime(body.ts || Date.parse(body.at) || Date.now())));
      feed.prepend(li);
      while (feed.children.length > 100) feed.lastChild.remove();
      root.querySelector(".empty-feed")?.remove();
    };
    for (const kind of ["alert", "lock", "unlock"]) es.addEventListener(kind, show(kind));
    return () => es.close();
  },
};

function cards(ov) {
  const card = (test, label, value, href, title) => {
    const attrs = { class: "card", "data-test": test, title: title || "" };
    const body = [h("div", { class: "figure" }, String(value)), h("div", { class: "label" }, label)];
    return href ? h("a", { ...attrs, href }, ...body) : h("div", attrs, ...body);
  };
  // Review decisions open cases: their list is the review queue, for
  // the roles that work it.
  const list = (a) => a === "review" && can("support", "analyst") ? "#/review" : "#/decisions?action=" + a;
  const out = ACTIONS.map((a) => card("figure-" + a, a, ov.actions[a] || 0, list(a),
    `${a} decisions in the last ${ov.minutes} minutes`));
  // Every figure leads to its list, for every role that sees it; the
  // admin's subscribers stay on the Alerts page, linked from the list.
  out.push(card("figure-alerts", "alerts", ov.alerts, "#/raised",
    "alerts raised in the last " + ov.minutes + " minutes; they appear live on the right"));
  out.push(card("figure-late", "late events", ov.late_events, "#/decisions?late=true",
    "decisions of events too old for one of their windows (riskd_late_events_total by entity)"));
  out.push(card("figure-dlq", "DLQ (since start)", ov.pipeline.dlq, "#/dlq",
    "messages this instance sent to the dead-letter topic (riskd_dlq_total)"));
  out.push(card("figure-lag", "consumer lag", ov.pipeline.lag, "#/pipeline",
    "messages not yet read on this instance's partitions (riskd_consumer_lag)"));
  return out;
}

// drawChart is one polyline per action over the minutes, as inline SVG.
function drawChart(ov) {
  const W = 600, H = 160, L = 36, B = 18;
  const from = Date.parse(ov.from);
  const n = ov.minutes;
  const series = {};
  let max = 1;
  for (const m of ov.per_minute) {
    const i = Math.round((m.minute - from) / 60000);
    if (i < 0 || i >= n) continue;
    (series[m.action] ||= new Array(n).fill(0))[i] = m.decisions;
    max = Math.max(max, m.decisions);
  }
  const x = (i) => L + (i * (W - L - 4)) / Math.max(1, n - 1);
  const y = (v) => H - B - (v * (H - B - 6)) / max;
  const svg = h("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": "decisions per minute by action", "data-test": "chart" },
    h("line", { class: "axis", x1: L, y1: H - B, x2: W, y2: H - B }),
    h("line", { class: "axis", x1: L, y1: 4, x2: L, y2: H - B }),
    h("text", { x: 2, y: 12 }, String(max)),
    h("text", { x: 2, y: H - B }, "0"),
    h("text", { x: L, y: H - 4 }, fmtTime(from).slice(11, 16)),
    h("text", { x: W - 34, y: H - 4 }, "now"));
  for (const a of Object.keys(series)) {
    const pts = series[a].map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    svg.append(h("polyline", { class: a, points: pts }, h("title", null, a)));
  }
  const legend = h("div", { class: "legend" },
    ACTIONS.filter((a) => series[a]).map((a) => h("span", null, h("span", { class: "swatch " + a }), a)));
  if (!ov.per_minute.length) legend.append(h("span", { class: "muted" }, "No decisions in this period."));
  return [svg, legend];
}

function topRules(rows) {
  if (!rows.length) return h("p", { class: "muted" }, "No rule matched in this period.");
  return h("table", null,
    h("thead", null, h("tr", null, h("th", null, "Rule"), h("th", { class: "num" }, "Decisions"))),
    h("tbody", null, rows.map((r) => h("tr", { "data-test": "top-rule" },
      h("td", null, h("a", { href: "#/rules/" + encodeURIComponent(r.rule_id) }, r.rule_id)),
      h("td", { class: "num" }, h("a", { href: "#/decisions?rule=" + encodeURIComponent(r.rule_id) }, String(r.hits)))))));
}
