// Lists: the named value lists rules read with in_list(name, value). View
// a list, search it, add and remove entries; each change publishes a new
// rule-set version (api/rulesapi lists routes), so it is in the history
// and can be rolled back like a rule change.
//
//   #/lists          the lists
//   #/lists/NAME     one list's entries
import { h, toast, errorBox } from "../lib.js";
import { useStyles } from "../editor.js";

// shownEntries bounds the entries drawn at once; search narrows the rest.
const shownEntries = 500;

export default {
  title: "Lists",
  path: "lists",
  roles: ["analyst", "viewer"],
  render(root, ctx) {
    useStyles();
    const name = ctx.params[0] ? decodeURIComponent(ctx.params[0]) : "";
    root.append(h("h1", null, "Lists"));
    const side = h("div", { class: "panel" });
    const main = h("div");
    root.append(h("div", { class: "lists-grid" }, side, main));
    drawLists(side, ctx, name);
    if (name) drawList(main, ctx, name, () => drawLists(side, ctx, name));
    else main.append(h("p", { class: "muted" }, "Pick a list to see its entries."));
  },
};

async function drawLists(root, ctx, current) {
  let out;
  try {
    out = await ctx.api("GET", "/v1/lists");
  } catch (err) {
    root.replaceChildren(errorBox(err));
    return;
  }
  const newName = h("input", { "data-test": "new-list-name", placeholder: "new_list", size: 14 });
  root.replaceChildren(
    h("p", { class: "muted" }, `Version ${out.version}`),
    h("table", { "data-test": "lists" }, h("tbody", null, out.lists.map((l) => h("tr", { "data-test": "list-row", "data-list": l.name },
      h("td", null, h("a", { href: "#/lists/" + encodeURIComponent(l.name), "aria-current": l.name === current ? "page" : null }, l.name)),
      h("td", { class: "num" }, l.count))))),
    ctx.can("analyst") ? h("form", { class: "inline", onsubmit: (e) => {
      e.preventDefault();
      if (newName.value.trim()) ctx.navigate("#/lists/" + encodeURIComponent(newName.value.trim()) + "/new");
    } }, newName, h("button", { "data-test": "new-list" }, "New list")) : null);
}

async function drawList(root, ctx, name, changed) {
  const isNew = ctx.params[1] === "new";
  let entries = [];
  let version = "";
  if (!isNew) {
    try {
      const out = await ctx.api("GET", "/v1/lists/" + encodeURIComponent(name));
      entries = out.list.entries || [];
      version = out.version;
    } catch (err) {
      root.replaceChildren(errorBox(err));
      return;
    }
  }
  const search = h("input", { type: "search", "data-test": "list-search", placeholder: "search", size: 24, oninput: () => draw() });
  const count = h("span", { class: "muted", "data-test": "list-count" });
  const list = h("ul", { class: "entries", "data-test": "list-entries" });
  const add = h("textarea", { "data-test": "list-add-entries", rows: 3, cols: 40, placeholder: "one value per line" });
  const message = h("input", { "data-test": "list-message", placeholder: "why (for the history)", size: 30 });

  const versionLine = h("p", { class: "muted", "data-test": "list-version" }, isNew ? "A new list: add its first entries." : `In version ${version}`);

  function draw() {
    const q = search.value.trim().toLowerCase();
    const found = q ? entries.filter((e) => e.toLowerCase().includes(q)) : entries;
    count.textContent = q ? `${found.length} of ${entries.length} entries match` : `${entries.length} entries`;
    list.replaceChildren(...found.slice(0, shownEntries).map((e) => h("li", { "data-test": "list-entry", "data-entry": e },
      h("span", null, e),
      ctx.can("analyst") ? h("button", { "data-test": "remove-entry", title: "Remove " + e, onclick: () => remove(e) }, "Remove") : null)));
    if (found.length > shownEntries) list.append(h("li", { class: "muted" }, `… ${found.length - shownEntries} more: narrow the search`));
  }

  async function addEntries() {
    const values = add.value.split("\n").map((v) => v.trim()).filter(Boolean);
    if (!values.length) {
      toast("Give at least one value to add", "error");
      return;
    }
    try {
      // A new list is created whole (PUT); an existing one gets entries added.
      const out = isNew ?
        await ctx.api("PUT", `/v1/lists/${encodeURIComponent(name)}`, { entries: values, message: message.value }) :
        await ctx.api("POST", `/v1/lists/${encodeURIComponent(name)}/entries`, { entries: values, message: message.value });
      toast(`Added ${values.length}: version ${out.version}`);
      if (isNew) {
        ctx.navigate("#/lists/" + encodeURIComponent(name));
        return;
      }
      entries = [...new Set([...entries, ...values])].sort();
      versionLine.textContent = `In version ${out.version}`;
      add.value = "";
      draw();
      changed();
    } catch (err) {
      toast(err.message, "error");
    }
  }

  async function remove(entry) {
    try {
      const out = await ctx.api("DELETE", `/v1/lists/${encodeURIComponent(name)}/entries/${encodeURIComponent(entry)}`, {});
      toast(`Removed ${entry}: version ${out.version}`);
      entries = entries.filter((e) => e !== entry);
      versionLine.textContent = `In version ${out.version}`;
      draw();
      changed();
    } catch (err) {
      toast(err.message, "error");
    }
  }

  root.replaceChildren(
    h("h2", null, name, " ", h("code", { class: "muted" }, `lists/${name}.txt`)),
    versionLine,
    h("div", { class: "toolbar" }, search, count),
    list,
    ctx.can("analyst") ? h("form", { class: "panel", onsubmit: (e) => { e.preventDefault(); addEntries(); } },
      h("h2", null, "Add entries"), add, h("div", { class: "toolbar" }, message, h("button", { class: "primary", "data-test": "list-add" }, "Add"))) : null);
  draw();
}
