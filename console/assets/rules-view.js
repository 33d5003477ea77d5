// rules-view.js: the pieces of the rules page that only draw: the
// side-by-side diff of two versions' files and the chart of hits over time.
import { h } from "./lib.js";

// maxDiffCells bounds the line diff's table (old lines x new lines); past
// it a file is shown as removed and added whole.
const maxDiffCells = 4_000_000;

/**
 * lineDiff compares two texts line by line (longest common subsequence)
 * and returns rows [kind, oldLineNo, oldText, newLineNo, newText] with
 * kind "same", "del", "add" or "change" (a removed line beside an added one).
 */
export function lineDiff(a, b) {
  const x = lines(a);
  const y = lines(b);
  const n = x.length;
  const m = y.length;
  const ops = [];
  if (n * m > maxDiffCells) {
    x.forEach((_, i) => ops.push(["del", i]));
    y.forEach((_, j) => ops.push(["add", j]));
  } else {
    // lcs[i][j] is the LCS length of x[i:] and y[j:].
    const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
      }
    }
    let i = 0;
    let j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && x[i] === y[j]) ops.push(["same", i++, j++]);
      else if (j < m && (i === n || lcs[i][j + 1] >= lcs[i + 1][j])) ops.push(["add", j++]);
      else ops.push(["del", i++]);
    }
  }
  // Pair each run of removals with the run of additions next to it.
  const rows = [];
  for (let k = 0; k < ops.length;) {
    if (ops[k][0] === "same") {
      const [, i, j] = ops[k++];
      rows.push(["same", i + 1, x[i], j + 1, y[j]]);
      continue;
    }
    const dels = [];
    const adds = [];
    while (k < ops.length && ops[k][0] !== "same") {
      if (ops[k][0] === "del") dels.push(ops[k][1]);
      else adds.push(ops[k][1]);
      k++;
    }
    for (let r = 0; r < Math.max(dels.length, adds.length); r++) {
      const d = dels[r];
      const a2 = adds[r];
      const kind = d !== undefined && a2 !== undefined ? "change" : d !== undefined ? "del" : "add";
      rows.push([kind, d === undefined ? "" : d + 1, d === undefined ? "" : x[d], a2 === undefined ? "" : a2 + 1, a2 === undefined ? "" : y[a2]]);
    }
  }
  return rows;
}

// lines splits a text into lines; a final newline ends the last line
// rather than starting an empty one.
function lines(s) {
  return s === "" ? [] : s.replace(/\n$/, "").split("\n");
}

/**
 * sideBySide renders the files of two versions as a two-column table,
 * changed files only, unchanged stretches folded to 3 lines of context.
 */
export function sideBySide(oldFiles, newFiles, oldLabel, newLabel) {
  const names = [...new Set([...Object.keys(oldFiles || {}), ...Object.keys(newFiles || {})])].sort();
  const body = [];
  for (const name of names) {
    const a = (oldFiles || {})[name];
    const b = (newFiles || {})[name];
    if (a === b) continue;
    const state = a === undefined ? " (added)" : b === undefined ? " (removed)" : "";
    body.push(h("tr", { class: "file" }, h("td", { colspan: 4 }, name + state)));
    const rows = lineDiff(a || "", b || "");
    const keep = rows.map((r, i) => r[0] !== "same" || rows.slice(Math.max(0, i - 3), i + 4).some((s) => s[0] !== "same"));
    let folded = 0;
    rows.forEach((r, i) => {
      if (!keep[i]) {
        folded++;
        return;
      }
      if (folded) body.push(h("tr", { class: "gap" }, h("td", { colspan: 4 }, `… ${folded} unchanged lines`)));
      folded = 0;
      const [kind, ol, ot, nl, nt] = r;
      const left = kind === "del" || kind === "change" ? "del" : kind === "add" ? "empty" : "";
      const right = kind === "add" || kind === "change" ? "add" : kind === "del" ? "empty" : "";
      body.push(h("tr", { "data-test": kind === "same" ? null : "diff-line-" + kind },
        h("td", { class: "ln" }, ol), h("td", { class: left }, ot),
        h("td", { class: "ln" }, nl), h("td", { class: right }, nt)));
    });
    if (folded) body.push(h("tr", { class: "gap" }, h("td", { colspan: 4 }, `… ${folded} unchanged lines`)));
  }
  if (!body.length) return h("p", { class: "muted", "data-test": "diff" }, "The two versions have the same files.");
  return h("table", { class: "diff", "data-test": "diff" },
    h("thead", null, h("tr", null, h("th", { class: "ln" }), h("th", null, oldLabel), h("th", { class: "ln" }), h("th", null, newLabel))),
    h("tbody", null, body));
}

/**
 * hitsChart draws series ([{name, values}]) over buckets starting at
 * startMs, widthMs wide, as an SVG line chart with a legend: the top six
 * by total hits.
 */
export function hitsChart(series, startMs, widthMs) {
  const top = series.filter((s) => s.values.some((v) => v > 0))
    .sort((a, b) => sum(b.values) - sum(a.values)).slice(0, 6);
  if (!top.length) return h("p", { class: "muted", "data-test": "backtest-chart" }, "No rule hit in the period.");
  const W = 640;
  const H = 180;
  const pad = { l: 34, r: 8, t: 8, b: 20 };
  const n = Math.max(...top.map((s) => s.values.length));
  const ymax = Math.max(1, ...top.flatMap((s) => s.values));
  const x = (i) => pad.l + (n <= 1 ? 0 : (i * (W - pad.l - pad.r)) / (n - 1));
  const y = (v) => H - pad.b - (v * (H - pad.t - pad.b)) / ymax;
  const label = (ms) => new Date(ms).toISOString().slice(5, 16).replace("T", " ");
  const svg = h("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", "data-test": "backtest-chart", role: "img",
    "aria-label": "Rule hits over time" },
    h("line", { class: "axis", x1: pad.l, y1: H - pad.b, x2: W - pad.r, y2: H - pad.b }),
    h("line", { class: "axis", x1: pad.l, y1: pad.t, x2: pad.l, y2: H - pad.b }),
    h("text", { x: 2, y: pad.t + 8 }, String(ymax)),
    h("text", { x: 2, y: H - pad.b }, "0"),
    h("text", { x: pad.l, y: H - 4 }, label(startMs)),
    h("text", { x: W - pad.r - 70, y: H - 4 }, label(startMs + n * widthMs)),
    top.map((s, k) => h("polyline", { class: "s" + k, points: s.values.map((v, i) => `${x(i)},${y(v)}`).join(" ") },
      h("title", null, `${s.name}: ${sum(s.values)} hits`))));
  const legend = h("div", { class: "legend" }, top.map((s, k) =>
    h("span", null, h("span", { class: "swatch s" + k }), `${s.name} (${sum(s.values)})`)));
  return h("div", null, svg, legend);
}

function sum(a) {
  return a.reduce((t, v) => t + v, 0);
}

/** pct formats a share (0..1, or null) as a percentage. */
export function pct(v) {
  return v === null || v === undefined ? "–" : (v * 100).toFixed(v >= 0.995 || v === 0 ? 0 : 1) + "%";
}
