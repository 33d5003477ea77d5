// app.js: the console's shell: sign-in, the nav of the pages the caller's
// role may open, and the hash router (#/<page>/<params...>).
import { api, can, caller, errorBox, h, sessionCall, setSession, toast } from "./lib.js";
import pages from "./pages/index.js";

const app = document.getElementById("app");
let cleanup = null;

async function boot() {
  try {
    setSession(await sessionCall("GET"));
    shell();
  } catch (err) {
    if (err.status === 401) signIn();
    else app.replaceChildren(errorBox(err));
  }
}

function signIn(message) {
  if (cleanup) { cleanup(); cleanup = null; }
  setSession(null);
  const token = h("input", { id: "token", type: "password", name: "token", autocomplete: "current-password",
    required: true, "data-test": "signin-token" });
  const error = h("p", { class: "error", "data-test": "signin-error" }, message || "");
  const form = h("form", { class: "signin", "data-test": "signin-form", onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    try {
      setSession(await sessionCall("POST", { token: token.value }));
      token.value = "";
      shell();
    } catch (err) {
      error.textContent = err.status === 401 ? "Unknown token." : err.message;
    }
  } },
    h("h1", null, "riskd console"),
    h("label", { for: "token" }, "API token"),
    token,
    h("button", { type: "submit", "data-test": "signin-submit" }, "Sign in"),
    error);
  app.replaceChildren(form);
  token.focus();
}

function visible(page) {
  return can(...page.roles);
}

function shell() {
  const nav = h("nav", { "data-test": "nav", "aria-label": "Pages" },
    pages.filter(visible).map((p) => h("a", { href: "#/" + p.path, "data-test": "nav-" + p.path, "data-path": p.path }, p.title)));
  const out = h("button", { type: "button", class: "link", "data-test": "signout", onclick: async () => {
    try { await sessionCall("DELETE"); } catch (err) { if (err.status !== 401) { toast(err.message, "error"); return; } }
    location.hash = "";
    signIn("Signed out.");
  } }, "Sign out");
  const header = h("header", { class: "top" },
    h("span", { class: "brand" }, "riskd"), nav,
    h("span", { class: "who", "data-test": "whoami" }, `${caller.name} (${caller.role})`), out);
  const main = h("main", { id: "page", "data-test": "page", tabindex: "-1" });
  app.replaceChildren(header, main);
  route();
}

function route() {
  const main = document.getElementById("page");
  if (!main || !caller) return;
  if (cleanup) { cleanup(); cleanup = null; }
  const [path, search] = location.hash.replace(/^#\/?/, "").split("?", 2);
  const segs = path.split("/").filter(Boolean).map(decodeURIComponent);
  let page = pages.find((p) => p.path === segs[0]);
  if (!page) {
    page = pages.find(visible);
    if (!page) { main.replaceChildren(h("p", null, "Your role opens no page.")); return; }
    history.replaceState(null, "", "#/" + page.path);
  }
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.path === page.path) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = page.title + " · riskd";
  const root = h("section", { class: "page", "data-test": "page-" + page.path });
  main.replaceChildren(root);
  if (!visible(page)) {
    root.append(h("p", { class: "error", "data-test": "forbidden" }, `Your role (${caller.role}) may not open ${page.title}.`));
    return;
  }
  // query holds what follows "?" in the hash (#/decisions?action=block).
  const ctx = { params: segs.slice(1), query: new URLSearchParams(search || ""), api, caller, can,
    navigate: (hash) => { location.hash = hash; } };
  try {
    const done = page.render(root, ctx);
    if (typeof done === "function") cleanup = done;
  } catch (err) {
    root.append(errorBox(err));
  }
}

// "/" jumps to the account search, unless the user is typing.
window.addEventListener("keydown", (e) => {
  if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey || !caller) return;
  if (e.target.closest && e.target.closest("input, textarea, select, [contenteditable]")) return;
  e.preventDefault();
  const search = document.querySelector('[data-test="account-search"]');
  if (search) search.focus();
  else location.hash = "#/accounts";
});
window.addEventListener("hashchange", route);
window.addEventListener("console:signed-out", () => signIn("Your session ended; sign in again."));
boot();
