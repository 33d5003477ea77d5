// Alerts: a placeholder until the page is written.
import { h } from "../lib.js";

export default {
  title: "Alerts",
  path: "alerts",
  roles: [],
  render(root) {
    root.append(h("h1", null, "Alerts"), h("p", { class: "muted" }, "Coming soon."));
  },
};
