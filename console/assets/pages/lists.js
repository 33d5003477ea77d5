// Lists: a placeholder until the page is written.
import { h } from "../lib.js";

export default {
  title: "Lists",
  path: "lists",
  roles: ["analyst", "viewer", "support"],
  render(root) {
    root.append(h("h1", null, "Lists"), h("p", { class: "muted" }, "Coming soon."));
  },
};
