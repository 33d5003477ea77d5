// Review queue: a placeholder until the page is written.
import { h } from "../lib.js";

export default {
  title: "Review queue",
  path: "review",
  roles: ["support", "analyst"],
  render(root) {
    root.append(h("h1", null, "Review queue"), h("p", { class: "muted" }, "Coming soon."));
  },
};
