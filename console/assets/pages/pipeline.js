// Pipeline: the input partitions assigned to this instance, where each
// stands (the next offset to decide, a restore in progress) and its lag
// (GET /v1/pipeline/partitions): the list behind the overview's lag figure.
import { api, h } from "../lib.js";

export default {
  title: "Pipeline",
  path: "pipeline",
  roles: ["viewer", "analyst", "support"],
  render(root) {
    const state = h("p", { "data-test": "pipeline-ready" });
    const list = h("div", { "data-test": "pipeline-list" }, h("p", { class: "muted" }, "Loading…"));
    root.append(h("h1", null, "Pipeline ", h("span", { class: "muted" }, "· this instance's input partitions")), state, list);
    load();
    async function load() {
      try {
        const res = await api("GET", "/v1/pipeline/partitions");
        state.replaceChildren(res.ready ? h("span", { class: "badge allow" }, "ready")
          : [h("span", { class: "badge block" }, "not ready"), " ", res.failing.join("; ")]);
        if (!res.partitions.length) { list.replaceChildren(h("p", { class: "muted" }, "No partition is assigned (between generations, or not started).")); return; }
        list.replaceChildren(h("table", null,
          h("thead", null, h("tr", null, h("th", null, "Topic"), h("th", { class: "num" }, "Partition"),
            h("th", { class: "num" }, "Next offset"), h("th", { class: "num", title: "messages between the group's committed offset and the partition's end (riskd_consumer_lag, asked of the broker every few seconds)" }, "Lag"), h("th", null, "State"))),
          h("tbody", null, res.partitions.map((p) => h("tr", { "data-test": "pipeline-row" },
            h("td", null, h("code", null, p.topic)),
            h("td", { class: "num" }, String(p.partition)),
            h("td", { class: "num" }, p.next === -2 ? "start" : String(p.next)),
            h("td", { class: "num", "data-test": "pipeline-lag" }, p.lag === undefined ? "?" : String(p.lag)),
            h("td", null, p.restoring ? `restoring to ${p.restore_until}` + (p.restore_left >= 0 ? `, ${p.restore_left} left` : "") : "deciding"))))));
      } catch (err) {
        list.replaceChildren(h("p", { class: "error", "data-test": "error" }, err.message));
      }
    }
  },
};
