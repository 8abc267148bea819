// DOM helpers. Every piece of text goes in through textContent or a text node,
// never innerHTML: titles, prompts, file names and model output are untrusted.

/** h("div", {class: "x", onclick: f}, child, "text", ...) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

let ids = 0;
/** A unique id for label/for pairs. */
export function uid(prefix = "f") {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** A labelled control: label + element, the label tied by id. */
export function field(label, control, hint) {
  if (!control.id) control.id = uid();
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control,
    hint ? h("small", { class: "muted" }, hint) : null);
}
