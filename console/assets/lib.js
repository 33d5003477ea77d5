// lib.js: what every page needs: the API call, the element builder, the
// signed-in caller and what its role may do, toasts and time formatting.
// Pages import it; it imports nothing.

/** The signed-in caller, {name, role}; null before sign-in. */
export let caller = null;
let csrf = "";

/** setSession records who is signed in (the app shell calls it). */
export function setSession(s) {
  caller = s ? { name: s.name, role: s.role } : null;
  csrf = s ? s.csrf : "";
}

/** can reports whether the caller's role is one of roles (admin can everything). */
export function can(...roles) {
  return !!caller && (caller.role === "admin" || roles.includes(caller.role));
}

/**
 * api calls riskd's API as the signed-in caller: path is the API's own
 * ("/v1/accounts/a1/timeline"), sent through /console/api. It returns the
 * parsed JSON (null for an empty body) or throws an Error carrying the
 * API's message and the HTTP .status.
 */
export async function api(method, path, body) {
  const opts = { method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
  if (method !== "GET" && method !== "HEAD") opts.headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  const res = await fetch("/console/api" + path, opts);
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!res.ok) {
    const err = new Error((data && data.error) || `${method} ${path}: HTTP ${res.status}`);
    err.status = res.status;
    err.details = data && data.details;
    if (res.status === 401) window.dispatchEvent(new Event("console:signed-out"));
    throw err;
  }
  return data;
}

/** sessionCall calls /console/session (sign in, who am I, sign out). */
export async function sessionCall(method, body) {
  const opts = { method, headers: {}, credentials: "same-origin" };
  if (method === "DELETE") opts.headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch("/console/session", opts);
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) {
    const err = new Error((data && data.error) || `HTTP ${res.status}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

const SVG = "http://www.w3.org/2000/svg";
const svgTags = new Set(["svg", "g", "path", "rect", "line", "polyline", "text", "title", "circle"]);

/**
 * h builds an element: h("button", {"data-test": "unlock", onclick: fn}, "Unlock").
 * Attributes starting with "on" are listeners; false/null/undefined ones are
 * left out; children may be strings, numbers, nodes, arrays or null.
 * SVG tags are made in the SVG namespace.
 */
export function h(tag, attrs, ...children) {
  const el = svgTags.has(tag) ? document.createElementNS(SVG, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "value" && "value" in el) el.value = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** toast shows a short message for a few seconds. */
export function toast(msg, kind = "info") {
  const box = document.getElementById("toasts");
  if (!box) return;
  const t = h("div", { class: "toast " + kind, "data-test": "toast", role: "status" }, msg);
  box.append(t);
  setTimeout(() => t.remove(), 5000);
}

/** fmtTime formats Unix milliseconds as local "YYYY-MM-DD HH:MM:SS". */
export function fmtTime(ms) {
  if (!ms) return "";
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** errorBox is how a page shows a failed load. */
export function errorBox(err) {
  return h("p", { class: "error", "data-test": "error" }, err.message || String(err));
}
