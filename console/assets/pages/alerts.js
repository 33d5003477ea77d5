// Alerts and subscribers (admin): the webhooks that receive alerts, locks
// and unlocks, with their delivery health; the notifications parked for
// each (after every attempt failed, or while paused) and their re-send.
import { api, fmtTime, h, toast } from "../lib.js";

const KINDS = ["alert", "lock", "unlock"];

export default {
  title: "Alerts",
  path: "alerts",
  roles: [],
  render(root, ctx) {
    const name = ctx.params[0];
    if (name) {
      root.append(h("p", null, h("a", { href: "#/alerts" }, "← Subscribers")));
      const box = h("div", { "data-test": "parked-view" });
      root.append(box);
      showParked(box, name);
      return;
    }
    const list = h("div", { "data-test": "webhooks" }, h("p", { class: "muted" }, "Loading…"));
    root.append(h("h1", null, "Alerts and subscribers"),
      h("p", { class: "muted" }, "Live alerts are on the overview; here are the webhooks that receive them."),
      list, h("h2", null, "Add a subscriber"), addForm(load));
    load();
    async function load() {
      try {
        const res = await api("GET", "/v1/webhooks");
        list.replaceChildren(table(res.webhooks, load));
      } catch (err) {
        list.replaceChildren(h("p", { class: "error", "data-test": "error" }, err.message));
      }
    }
  },
};

// health summarises a subscriber's deliveries since start.
function health(w) {
  if (w.paused) return ["paused", "review"];
  if (w.abandoned > 0 || w.dropped_overflow > 0) return ["failing", "block"];
  if (w.parked > 0) return ["parked", "review"];
  if (w.retried > 0) return ["retrying", "challenge"];
  return ["healthy", "allow"];
}

function table(hooks, reload) {
  if (!hooks.length) return h("p", { class: "muted", "data-test": "webhooks-empty" }, "No subscriber.");
  return h("table", null,
    h("thead", null, h("tr", null, ["Name", "URL", "Kinds", "Health", "Delivered", "Retried", "Abandoned", "Parked", ""]
      .map((c) => h("th", { class: /Deliv|Retr|Aband|Park/.test(c) ? "num" : null }, c)))),
    h("tbody", null, hooks.map((w) => {
      const [state, cls] = health(w);
      return h("tr", { "data-test": "webhook-row", "data-name": w.name },
        h("td", null, w.name, h("div", { class: "muted" }, w.source)),
        h("td", null, h("code", null, w.url)),
        h("td", null, w.kinds.length ? w.kinds.join(", ") : "all"),
        h("td", null, h("span", { class: "badge " + cls, "data-test": "webhook-health" }, state)),
        h("td", { class: "num" }, String(w.delivered)),
        h("td", { class: "num" }, String(w.retried)),
        h("td", { class: "num" }, String(w.abandoned + w.dropped_overflow)),
        h("td", { class: "num" }, h("a", { href: "#/alerts/" + encodeURIComponent(w.name), "data-test": "webhook-parked" }, String(w.parked))),
        h("td", null, w.source === "api" ? h("button", { type: "button", class: "small", "data-test": "webhook-pause", onclick: async () => {
          try {
            await api("PATCH", "/v1/webhooks/" + encodeURIComponent(w.name), { paused: !w.paused });
            toast((w.paused ? "Resumed " : "Paused ") + w.name);
            reload();
          } catch (err) { toast(err.message, "error"); }
        } }, w.paused ? "Resume" : "Pause") : null));
    })));
}

function addForm(reload) {
  const name = h("input", { required: true, pattern: "[a-z0-9\\-]{1,64}", placeholder: "name (a-z, 0-9, -)", "data-test": "webhook-name" });
  const url = h("input", { required: true, type: "url", placeholder: "https://…", size: 40, "data-test": "webhook-url" });
  const kinds = KINDS.map((k) => h("input", { type: "checkbox", value: k, checked: true, "data-test": "webhook-kind-" + k }));
  const paused = h("input", { type: "checkbox", "data-test": "webhook-paused" });
  const secret = h("p", { "data-test": "webhook-secret" });
  return h("div", null, h("form", { class: "inline", "data-test": "webhook-form", onsubmit: async (e) => {
    e.preventDefault();
    try {
      const res = await api("POST", "/v1/webhooks", { name: name.value, url: url.value,
        kinds: kinds.filter((k) => k.checked).map((k) => k.value), paused: paused.checked });
      secret.replaceChildren("Signing secret of ", h("code", null, res.name), " (shown once): ", h("code", { class: "secret" }, res.secret));
      name.value = ""; url.value = "";
      reload();
    } catch (err) { toast(err.message, "error"); }
  } }, name, url, kinds.map((k) => h("label", null, k, " ", k.value)), h("label", null, paused, " paused"),
  h("button", { type: "submit", class: "primary", "data-test": "webhook-add" }, "Add")), secret);
}

async function showParked(box, name) {
  box.replaceChildren(h("h1", null, "Parked deliveries of ", h("code", null, name)), h("p", { class: "muted" }, "Loading…"));
  const reload = () => showParked(box, name);
  let res;
  try {
    res = await api("GET", `/v1/webhooks/${encodeURIComponent(name)}/parked?limit=200`);
  } catch (err) {
    box.lastChild.replaceWith(h("p", { class: "error", "data-test": "error" }, err.message));
    return;
  }
  const resend = async (path, what) => {
    try {
      const out = await api("POST", path, {});
      if (out.failed) toast(`Re-send of ${out.failed.id} failed: ${out.failed.error}`, "error");
      else toast(`Re-sent ${out.resent.length} ${what}`);
    } catch (err) { toast(err.message, "error"); }
    reload();
  };
  const base = `/v1/webhooks/${encodeURIComponent(name)}/parked`;
  if (!res.parked.length) {
    box.lastChild.replaceWith(h("p", { class: "muted", "data-test": "parked-empty" }, "Nothing parked."));
    return;
  }
  box.lastChild.replaceWith(h("div", null,
    h("div", { class: "actions" }, h("button", { type: "button", class: "primary", "data-test": "resend-all",
      onclick: () => resend(base + "/resend", "notifications") }, "Re-send all")),
    h("table", null,
      h("thead", null, h("tr", null, ["Parked", "Kind", "Account", "Rule", "Attempts", "Last error", ""].map((c) => h("th", null, c)))),
      h("tbody", null, res.parked.map((p) => h("tr", { "data-test": "parked-row", "data-id": p.id },
        h("td", null, fmtTime(Date.parse(p.parked_at))),
        h("td", null, p.kind),
        h("td", null, h("a", { href: "#/accounts/" + encodeURIComponent(p.account_id) }, p.account_id)),
        h("td", null, p.rule_id ? h("code", null, p.rule_id) : ""),
        h("td", { class: "num" }, String(p.attempts)),
        h("td", null, p.last_error),
        h("td", null, h("button", { type: "button", class: "small", "data-test": "resend",
          onclick: () => resend(`${base}/${p.id}/resend`, "notification") }, "Re-send"))))))));
}
