// Overview: a placeholder until the page is written.
import { h } from "../lib.js";

export default {
  title: "Overview",
  path: "overview",
  roles: ["viewer", "analyst", "support"],
  render(root) {
    root.append(h("h1", null, "Overview"), h("p", { class: "muted" }, "Coming soon."));
  },
};
