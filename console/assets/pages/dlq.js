// DLQ: the newest dead letters (GET /v1/dlq): why each message was not
// decided, where it was read, and the start of its payload, shown as
// text. The list behind the overview's DLQ figure.
import { api, fmtTime, h } from "../lib.js";

export default {
  title: "DLQ",
  path: "dlq",
  roles: ["viewer", "analyst", "support"],
  render(root) {
    const list = h("div", { "data-test": "dlq-list" }, h("p", { class: "muted" }, "Loading…"));
    root.append(h("h1", null, "Dead letters ", h("span", { class: "muted" }, "· the newest 100, all partitions")), list);
    load();
    async function load() {
      try {
        const res = await api("GET", "/v1/dlq?limit=100");
        if (!res.dead_letters.length) { list.replaceChildren(h("p", { class: "muted" }, "The dead-letter topic is empty.")); return; }
        list.replaceChildren(h("table", null,
          h("thead", null, h("tr", null, ["Time", "Reason", "Source", "Event", "Payload"].map((c) => h("th", null, c)))),
          h("tbody", null, res.dead_letters.map((d) => h("tr", { "data-test": "dlq-row" },
            h("td", null, fmtTime(Date.parse(d.time)), h("div", { class: "muted" }, `dlq ${d.partition}@${d.offset}`)),
            h("td", { "data-test": "dlq-reason" }, d.reason || "?"),
            h("td", null, d.parked_topic ? ["parked output of ", h("code", null, d.parked_topic)]
              : h("code", null, `${d.source_topic || "?"}/${d.source_partition || "?"}@${d.source_offset || "?"}`)),
            h("td", null, d.event_id ? h("code", null, d.event_id) : null),
            h("td", null, h("code", { class: "payload", "data-test": "dlq-payload" }, d.payload),
              d.payload_bytes > d.payload.length ? h("span", { class: "muted" }, ` … ${d.payload_bytes} bytes`) : null))))));
      } catch (err) {
        list.replaceChildren(h("p", { class: "error", "data-test": "error" }, err.message));
      }
    }
  },
};
