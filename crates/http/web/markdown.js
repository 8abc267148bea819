// Markdown to DOM nodes, safe by construction.
//
// Why not a library: model output is untrusted, and the common way (marked +
// DOMPurify) parses to an HTML string and then cleans it, so safety rests on
// the cleaner keeping up with browsers. Here no string is ever parsed as HTML:
// every node is made with createElement and every text goes in through
// textContent, so raw HTML, <script>, event attributes and the like come out
// as visible text. Links keep only http: and https: targets; images are shown
// as links (nothing is loaded from a model's answer). The subset: headings,
// paragraphs, fenced and indented code, block quotes, lists, tables, rules,
// and inline code, bold, italic, strike-through and links.

import { h } from "./dom.js";

/** Renders `text` into a new <div class="md">. */
export function render(text) {
  const root = h("div", { class: "md" });
  blocks(String(text || "").replace(/\r\n?/g, "\n").split("\n"), root);
  return root;
}

/** The URL if it is http(s), else null. */
export function safeUrl(raw) {
  try {
    const url = new URL(raw, "https://invalid.example/");
    if ((url.protocol === "http:" || url.protocol === "https:") && /^https?:\/\//i.test(raw.trim())) {
      return url.href;
    }
  } catch { /* not a URL */ }
  return null;
}

const FENCE = /^\s{0,3}(```|~~~)\s*([\w+-]*)\s*$/;
const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;
const BULLET = /^(\s*)([-*+])\s+(.*)$/;
const ORDERED = /^(\s*)(\d{1,9})[.)]\s+(.*)$/;
const QUOTE = /^\s{0,3}>\s?(.*)$/;
const TABLE_SEP = /^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$/;

function blocks(lines, parent) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) { i += 1; continue; }
    let m;
    if ((m = line.match(FENCE))) {
      const fence = m[1];
      const code = [];
      i += 1;
      while (i < lines.length && !lines[i].trim().startsWith(fence)) { code.push(lines[i]); i += 1; }
      i += 1;
      const el = h("code", {}, code.join("\n"));
      if (m[2]) el.className = `language-${m[2]}`;
      parent.append(h("pre", {}, el));
      continue;
    }
    if (/^( {4}|\t)/.test(line)) {
      const code = [];
      while (i < lines.length && (/^( {4}|\t)/.test(lines[i]) || !lines[i].trim())) {
        code.push(lines[i].replace(/^( {4}|\t)/, ""));
        i += 1;
      }
      parent.append(h("pre", {}, h("code", {}, code.join("\n").replace(/\n+$/, ""))));
      continue;
    }
    if ((m = line.match(HEADING))) {
      const level = Math.min(m[1].length + 2, 6); // page headings above stay in order
      parent.append(inline(m[2], h(`h${level}`)));
      i += 1;
      continue;
    }
    if (RULE.test(line)) { parent.append(h("hr")); i += 1; continue; }
    if (QUOTE.test(line)) {
      const inner = [];
      while (i < lines.length && (m = lines[i].match(QUOTE))) { inner.push(m[1]); i += 1; }
      const quote = h("blockquote");
      blocks(inner, quote);
      parent.append(quote);
      continue;
    }
    if (line.includes("|") && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1]) && lines[i + 1].includes("-")) {
      const rows = [];
      const head = cells(line);
      i += 2;
      while (i < lines.length && lines[i].includes("|") && lines[i].trim()) { rows.push(cells(lines[i])); i += 1; }
      const table = h("table", {},
        h("thead", {}, h("tr", {}, head.map((c) => inline(c, h("th", { scope: "col" }))))),
        h("tbody", {}, rows.map((r) => h("tr", {}, head.map((_, j) => inline(r[j] || "", h("td")))))));
      parent.append(h("div", { class: "table-wrap" }, table));
      continue;
    }
    if (BULLET.test(line) || ORDERED.test(line)) {
      i = list(lines, i, parent);
      continue;
    }
    const para = [];
    while (i < lines.length && lines[i].trim() && !FENCE.test(lines[i]) && !HEADING.test(lines[i])
      && !QUOTE.test(lines[i]) && !BULLET.test(lines[i]) && !ORDERED.test(lines[i]) && !RULE.test(lines[i])) {
      para.push(lines[i].trim());
      i += 1;
    }
    parent.append(inline(para.join("\n"), h("p")));
  }
}

function cells(line) {
  return line.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map((c) => c.trim());
}

function list(lines, start, parent) {
  const ordered = ORDERED.test(lines[start]);
  const indent = (lines[start].match(/^\s*/) || [""])[0].length;
  const el = h(ordered ? "ol" : "ul");
  let i = start;
  let item = null;
  while (i < lines.length) {
    const line = lines[i];
    const m = line.match(ordered ? ORDERED : BULLET);
    const depth = (line.match(/^\s*/) || [""])[0].length;
    if (m && depth === indent) {
      item = inline(m[3], h("li"));
      el.append(item);
      i += 1;
    } else if (line.trim() && depth > indent && item) {
      // A nested list or a continuation line.
      if (BULLET.test(line) || ORDERED.test(line)) i = list(lines, i, item);
      else { item.append(" "); inline(line.trim(), item); i += 1; }
    } else break;
  }
  parent.append(el);
  return i;
}

// Inline spans, longest-first; everything else is text.
const INLINE = /(`+)([\s\S]*?[^`])\1(?!`)|\*\*([\s\S]+?)\*\*|__([\s\S]+?)__|\*([^*\s][\s\S]*?)\*|_([^_\s][\s\S]*?)_|~~([\s\S]+?)~~|!?\[([^\]]*)\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)|(https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"])/;

/** Appends the inline markdown of `text` to `el` and returns `el`. */
export function inline(text, el) {
  let rest = text;
  while (rest) {
    const m = rest.match(INLINE);
    if (!m) { addText(el, rest); break; }
    addText(el, rest.slice(0, m.index));
    if (m[1]) el.append(h("code", {}, m[2]));
    else if (m[3] !== undefined || m[4] !== undefined) el.append(inline(m[3] ?? m[4], h("strong")));
    else if (m[5] !== undefined || m[6] !== undefined) el.append(inline(m[5] ?? m[6], h("em")));
    else if (m[7] !== undefined) el.append(inline(m[7], h("del")));
    else if (m[9] !== undefined) {
      const href = safeUrl(m[9]);
      const label = m[8] || m[9];
      if (href) el.append(link(href, label));
      else addText(el, m[0]); // javascript:, data: and the like stay as text
    } else if (m[10]) el.append(link(m[10], m[10]));
    rest = rest.slice(m.index + m[0].length);
  }
  return el;
}

function link(href, label) {
  const a = h("a", { href, rel: "noopener noreferrer nofollow", target: "_blank" });
  inline(label, a);
  return a;
}

function addText(el, text) {
  const parts = text.split("\n");
  parts.forEach((p, i) => {
    if (i > 0) el.append(h("br"));
    if (p) el.append(document.createTextNode(p));
  });
}
