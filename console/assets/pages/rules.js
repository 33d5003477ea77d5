// Rules: a placeholder until the page is written.
import { h } from "../lib.js";

export default {
  title: "Rules",
  path: "rules",
  roles: ["analyst", "viewer", "support"],
  render(root) {
    root.append(h("h1", null, "Rules"), h("p", { class: "muted" }, "Coming soon."));
  },
};
