// Accounts: a placeholder until the page is written.
import { h } from "../lib.js";

export default {
  title: "Accounts",
  path: "accounts",
  roles: ["support", "analyst", "viewer"],
  render(root) {
    root.append(h("h1", null, "Accounts"), h("p", { class: "muted" }, "Coming soon."));
  },
};
