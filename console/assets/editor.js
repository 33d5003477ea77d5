// editor.js: the rule-file editor. A plain <textarea> holds the text and
// the caret; under it a <pre> mirror shows the same text highlighted (YAML
// keys, and the when expressions token by token), the compile error's
// position and nothing else. Completion offers the rule keys, actions,
// fields of event/f/account, functions and list names the API names
// (GET /v1/rules/vocabulary). No dependencies: the text is short (one rule
// file), so every keystroke re-highlights the whole of it.
import { h } from "./lib.js";

let styled = false;

/** useStyles loads rules.css once, for the editor and the rules pages. */
export function useStyles() {
  if (styled) return;
  styled = true;
  document.head.append(h("link", { rel: "stylesheet", href: new URL("./rules.css", import.meta.url).href }));
}

const exprKeywords = new Set(["true", "false", "nil", "let", "in", "not", "and", "or", "matches", "contains",
  "startsWith", "endsWith", "if", "else"]);
const roots = ["event", "f", "account"];

/**
 * tokenizeExpr splits an expr-lang expression into [class, text] pairs:
 * strings, numbers, operators, roots (event, f, account), fields after a
 * dot, functions (a name before "("), keywords; "" for the rest.
 */
export function tokenizeExpr(src) {
  const out = [];
  const re = /("(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?)|(\d+(?:\.\d+)?(?:e[+-]?\d+)?)|([A-Za-z_$][\w$]*)|(&&|\|\||[=!<>]=|\.\.|[-+*/%<>!?:^])|(\s+)|(.)/gy;
  let m;
  let prev = "";
  while ((m = re.exec(src)) !== null) {
    const [text, str, num, ident, op] = m;
    let cls = "";
    if (str !== undefined) cls = "str";
    else if (num !== undefined) cls = "num";
    else if (ident !== undefined) {
      const rest = src.slice(re.lastIndex);
      if (prev === ".") cls = "field";
      else if (/^\s*\(/.test(rest)) cls = "fn";
      else if (roots.includes(ident)) cls = "var";
      else if (exprKeywords.has(ident)) cls = "kw";
    } else if (op !== undefined) cls = "op";
    out.push([cls, text]);
    if (!/^\s+$/.test(text)) prev = text;
  }
  return out;
}

/**
 * tokenizeRules splits a rule file into lines of [class, text] pairs: the
 * YAML keys, comments, strings and numbers, and the when expression (on
 * its line, or on the more indented lines under "when: |" or "when: >")
 * through tokenizeExpr.
 */
export function tokenizeRules(text) {
  const lines = text.split("\n");
  const out = [];
  let exprIndent = -1; // > -1 while inside a block when expression
  for (const line of lines) {
    const toks = [];
    const indent = line.length - line.trimStart().length;
    if (exprIndent >= 0 && (line.trim() === "" || indent > exprIndent) && !line.trimStart().startsWith("#")) {
      toks.push(...tokenizeExpr(line));
      out.push(toks);
      continue;
    }
    exprIndent = -1;
    const m = /^(\s*(?:-\s+)?)([A-Za-z_][\w-]*)(\s*:)(.*)$/.exec(line);
    if (!m) {
      toks.push(...yamlValue(line));
      out.push(toks);
      continue;
    }
    const [, lead, key, colon, rest] = m;
    toks.push(["", lead], ["key", key], ["", colon]);
    if (key === "when") {
      const v = rest.trim();
      if (v === "|" || v === ">" || v === "|-" || v === ">-" || v === "") {
        exprIndent = indent + (lead.includes("-") ? lead.length - indent : 0);
        toks.push(["op", rest]);
      } else {
        toks.push(...withComment(rest, tokenizeExpr));
      }
    } else if (key === "action" || key === "mode") {
      toks.push(...withComment(rest, (s) => [["kw", s]]));
    } else {
      toks.push(...yamlValue(rest));
    }
    out.push(toks);
  }
  return out;
}

// withComment tokenizes s up to a "#" comment outside quotes with fn.
function withComment(s, fn) {
  const i = commentStart(s);
  if (i < 0) return fn(s);
  return [...fn(s.slice(0, i)), ["comment", s.slice(i)]];
}

function commentStart(s) {
  let q = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (q) {
      if (c === "\\" && q === '"') i++;
      else if (c === q) q = "";
    } else if (c === '"' || c === "'") q = c;
    else if (c === "#" && (i === 0 || /\s/.test(s[i - 1]))) return i;
  }
  return -1;
}

// yamlValue tokenizes a plain YAML value: flow keys, strings, numbers.
function yamlValue(s) {
  const out = [];
  const re = /(#.*$)|("(?:[^"\\]|\\.)*"?|'[^']*'?)|([A-Za-z_][\w-]*)(?=\s*:\s)|(-?\d+(?:\.\d+)?[smhd]?\b)|(\s+|[^\s"'#\w-]+|[\w-]+|.)/gy;
  let m;
  while ((m = re.exec(s)) !== null) {
    const [text, comment, str, key, num] = m;
    out.push([comment !== undefined ? "comment" : str !== undefined ? "str" : key !== undefined ? "key" : num !== undefined ? "num" : "", text]);
  }
  return out;
}

/**
 * completionContext says what may be typed at the caret of line (the text
 * before the caret): {kind, chain, prefix} with kind "field" (after a
 * dot: chain is what comes before it), "list" (in in_list's first string),
 * "key" (a rule key at the start of a line), "action" or "name" (a root,
 * function or keyword); null where nothing is offered.
 */
export function completionContext(before) {
  let m = /in_list\(\s*["']([\w.-]*)$/.exec(before);
  if (m) return { kind: "list", prefix: m[1] };
  if (commentStart(before) >= 0) return null;
  m = /^\s*(?:-\s+)?([A-Za-z_]\w*)?$/.exec(before);
  if (m) return { kind: "key", prefix: m[1] || "" };
  m = /^\s*(?:-\s+)?(action|mode):\s*(\w*)$/.exec(before);
  if (m) return { kind: m[1], prefix: m[2] };
  // Inside a string there is nothing to complete.
  if (((before.match(/"/g) || []).length % 2) === 1) return null;
  m = /([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\.(\w*)$/.exec(before);
  if (m) return { kind: "field", chain: m[1], prefix: m[2] };
  m = /(?:^|[^\w.])([A-Za-z_]\w*)$/.exec(before);
  if (m) return { kind: "name", prefix: m[1] };
  return null;
}

/** candidates lists what vocab offers in ctx, those starting with its prefix first. */
export function candidates(ctx, vocab) {
  if (!ctx || !vocab) return [];
  let all = [];
  switch (ctx.kind) {
    case "list": all = vocab.lists || []; break;
    case "key": all = vocab.keys || []; break;
    case "action": all = vocab.actions || []; break;
    case "mode": all = ["active", "shadow"]; break;
    case "field": all = (vocab.fields || {})[ctx.chain] || []; break;
    case "name": all = [...roots, ...(vocab.functions || []), "true", "false", "nil"]; break;
  }
  const p = ctx.prefix.toLowerCase();
  const starts = all.filter((c) => c.toLowerCase().startsWith(p));
  const within = p ? all.filter((c) => !c.toLowerCase().startsWith(p) && c.toLowerCase().includes(p)) : [];
  return [...starts, ...within].filter((c) => c !== ctx.prefix).slice(0, 50);
}

/**
 * createEditor returns {el, value(), setValue(text), setError(err, text),
 * focus(), goToLine(n)}:
 * err is {line, column, message} (1-based, in this file) or null. onInput
 * is called with the text after each change; vocab() returns the
 * vocabulary (or null while it loads).
 */
export function createEditor({ value = "", onInput = () => {}, vocab = () => null, readOnly = false }) {
  useStyles();
  const code = h("code", null);
  const mirror = h("pre", { class: "ed-mirror", "aria-hidden": "true" }, code);
  const input = h("textarea", {
    class: "ed-input", "data-test": "editor-input", spellcheck: "false", autocapitalize: "off",
    autocomplete: "off", wrap: "off", "aria-label": "Rule file", readonly: readOnly || null,
  });
  input.value = value;
  const popup = h("ul", { class: "ed-popup", "data-test": "editor-completion", role: "listbox", hidden: true });
  const gutter = h("div", { class: "ed-gutter", "aria-hidden": "true" });
  const box = h("div", { class: "ed", "data-test": "editor" }, gutter, h("div", { class: "ed-body" }, mirror, input, popup));
  const message = h("div", { class: "ed-message", "data-test": "editor-error", role: "alert" });
  const el = h("div", { class: "ed-wrap" }, box, message);

  let error = null;
  let items = [];
  let active = 0;
  let ctx = null;

  function render() {
    const text = input.value;
    const lines = tokenizeRules(text);
    code.replaceChildren();
    lines.forEach((toks, i) => {
      const lineEl = h("span", { class: "ed-line" });
      const errHere = error && error.line === i + 1;
      let col = 1;
      for (const [cls, t] of toks) {
        if (errHere && error.column >= col && error.column < col + t.length) {
          // Split the token so the error's character carries the marker.
          const at = error.column - col;
          if (at > 0) lineEl.append(span(cls, t.slice(0, at)));
          lineEl.append(h("span", { class: "ed-errpos " + (cls ? "t-" + cls : ""), "data-test": "editor-error-marker",
            title: error.message }, t.slice(at, at + 1)));
          if (at + 1 < t.length) lineEl.append(span(cls, t.slice(at + 1)));
        } else {
          lineEl.append(span(cls, t));
        }
        col += t.length;
      }
      if (errHere && error.column >= col) {
        lineEl.append(h("span", { class: "ed-errpos", "data-test": "editor-error-marker", title: error.message }, " "));
      }
      if (errHere) lineEl.classList.add("ed-errline");
      code.append(lineEl, "\n");
    });
    gutter.replaceChildren(...lines.map((_, i) => h("div", { class: error && error.line === i + 1 ? "ed-errline" : null }, String(i + 1))));
    syncScroll();
  }

  function span(cls, t) {
    return cls ? h("span", { class: "t-" + cls }, t) : t;
  }

  function syncScroll() {
    mirror.scrollTop = input.scrollTop;
    mirror.scrollLeft = input.scrollLeft;
    gutter.scrollTop = input.scrollTop;
  }

  // caretXY places the caret in pixels within the body, for the popup.
  function caretXY() {
    const before = input.value.slice(0, input.selectionStart);
    const line = before.split("\n").length - 1;
    const col = before.length - before.lastIndexOf("\n") - 1;
    const cs = getComputedStyle(input);
    const lh = parseFloat(cs.lineHeight) || 18;
    const probe = h("span", { class: "ed-probe" }, "M".repeat(20));
    mirror.append(probe);
    const cw = probe.getBoundingClientRect().width / 20;
    probe.remove();
    return { x: parseFloat(cs.paddingLeft) + col * cw - input.scrollLeft, y: parseFloat(cs.paddingTop) + (line + 1) * lh - input.scrollTop };
  }

  function lineBefore() {
    const pos = input.selectionStart;
    return input.value.slice(input.value.lastIndexOf("\n", pos - 1) + 1, pos);
  }

  function openCompletion(force) {
    ctx = completionContext(lineBefore());
    items = candidates(ctx, vocab());
    if (!ctx || !items.length || (!force && ctx.prefix === "" && ctx.kind !== "field" && ctx.kind !== "list")) {
      closeCompletion();
      return;
    }
    active = 0;
    drawPopup();
    const { x, y } = caretXY();
    popup.style.left = Math.max(0, x) + "px";
    popup.style.top = y + "px";
    popup.hidden = false;
  }

  function drawPopup() {
    popup.replaceChildren(...items.map((c, i) => h("li", {
      role: "option", "aria-selected": i === active ? "true" : "false", "data-test": "completion-item",
      onmousedown: (e) => { e.preventDefault(); active = i; accept(); },
    }, c)));
    const sel = popup.children[active];
    if (sel) sel.scrollIntoView({ block: "nearest" });
  }

  function closeCompletion() {
    popup.hidden = true;
    items = [];
  }

  function accept() {
    const word = items[active];
    if (word === undefined || !ctx) return;
    const pos = input.selectionStart;
    const start = pos - ctx.prefix.length;
    let insert = word;
    if (ctx.kind === "key") insert += ": ";
    input.setRangeText(insert, start, pos, "end");
    closeCompletion();
    changed();
  }

  function changed() {
    render();
    onInput(input.value);
  }

  input.addEventListener("input", (e) => {
    changed();
    if (e.inputType && e.inputType.startsWith("insert") && /[\w."']$/.test(lineBefore())) openCompletion(false);
    else closeCompletion();
  });
  input.addEventListener("scroll", syncScroll);
  input.addEventListener("blur", () => setTimeout(closeCompletion, 100));
  input.addEventListener("keydown", (e) => {
    if (e.ctrlKey && (e.key === " " || e.code === "Space")) {
      e.preventDefault();
      openCompletion(true);
      return;
    }
    if (!popup.hidden) {
      switch (e.key) {
        case "ArrowDown": e.preventDefault(); active = (active + 1) % items.length; drawPopup(); return;
        case "ArrowUp": e.preventDefault(); active = (active + items.length - 1) % items.length; drawPopup(); return;
        case "Enter": case "Tab": e.preventDefault(); accept(); return;
        case "Escape": e.preventDefault(); closeCompletion(); return;
      }
    }
    if (e.key === "Tab" && !e.shiftKey && !readOnly) {
      // YAML indents with spaces: Tab inserts two instead of leaving the field.
      e.preventDefault();
      input.setRangeText("  ", input.selectionStart, input.selectionEnd, "end");
      changed();
    }
  });

  render();
  return {
    el,
    value: () => input.value,
    setValue(text) {
      input.value = text;
      error = null;
      message.textContent = "";
      render();
    },
    setError(err, text) {
      error = err && err.line ? err : null;
      message.textContent = text || "";
      render();
    },
    focus: () => input.focus(),
    goToLine(line) {
      // The caret at the line's start, the line a third down the view.
      const lines = input.value.split("\n");
      const at = lines.slice(0, Math.max(0, line - 1)).reduce((n, l) => n + l.length + 1, 0);
      input.focus();
      input.setSelectionRange(at, at);
      const lh = parseFloat(getComputedStyle(input).lineHeight) || 18;
      input.scrollTop = Math.max(0, (line - 1) * lh - input.clientHeight / 3);
      syncScroll();
    },
  };
}
