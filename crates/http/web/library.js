// The libraries: agents, few-shot examples, projects and knowledge bases
// (upload .txt/.md/.jsonl, see the passages, try a search).

import { h, clear, field } from "./dom.js";
import * as api from "./api.js";
import { t } from "./i18n.js";

async function items(path) {
  return (await api.get(`${path}?size=200`)).items || [];
}

function errorLine(e) {
  return h("p", { class: "banner", role: "alert" }, typeof e.body?.detail === "string" ? e.body.detail : e.message);
}

/** A section listing objects with a delete button and a create form. */
async function section(title, path, fields, label, onOpen) {
  const sec = h("section", { class: "library" }, h("h2", {}, title));
  const listEl = h("ul", { class: "items" });
  const inputs = fields.map(([key, name, multi]) => [key, multi ? h("textarea", { rows: 2 }) : h("input", { type: "text" }), name]);
  const status = h("div");
  const draw = async () => {
    clear(listEl);
    for (const item of await items(path)) {
      const li = h("li", {}, h("span", { class: "item-label" }, label(item)),
        onOpen ? h("button", { type: "button", class: "small", onclick: () => onOpen(item, li) }, t("open")) : null,
        h("button", {
          type: "button", class: "small", "aria-label": `${t("delete")} ${label(item)}`,
          onclick: async () => { await api.del(`${path}/${item.id}`); await draw(); },
        }, t("delete")));
      listEl.append(li);
    }
  };
  const form = h("form", { class: "create" }, inputs.map(([, el, name]) => field(name, el)),
    h("button", { type: "submit" }, t("create")), status);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = {};
    for (const [key, el] of inputs) if (el.value.trim()) body[key] = el.value;
    try {
      await api.post(path, body);
      form.reset();
      clear(status);
      await draw();
    } catch (err) {
      clear(status).append(errorLine(err));
    }
  });
  sec.append(listEl, form);
  await draw();
  return sec;
}

function knowledgeDetail(kb, li) {
  const old = li.querySelector(".kb-detail");
  if (old) { old.remove(); return; }
  const file = h("input", { type: "file", accept: ".txt,.md,.jsonl" });
  const docs = h("ul", { class: "docs" });
  const status = h("div", { role: "status" });
  const query = h("input", { type: "search" });
  const hits = h("ol", { class: "hits" });
  const drawDocs = async () => {
    const page = await api.get(`/user/practice/knowledge/${kb.id}/documents?size=200`);
    clear(docs).append(...(page.items || []).map((d) => h("li", {}, d.title, d.passages != null ? ` · ${d.passages} ${t("passages")}` : "")));
  };
  file.addEventListener("change", async () => {
    const f = file.files[0];
    if (!f) return;
    try {
      await api.call("POST", `/user/practice/knowledge/${kb.id}/documents?file_name=${encodeURIComponent(f.name)}`, f);
      clear(status);
      file.value = "";
      await drawDocs();
    } catch (err) {
      clear(status).append(errorLine(err));
    }
  });
  const search = h("form", { class: "row" }, field(t("try_search"), query), h("button", { type: "submit" }, t("search")));
  search.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const res = await api.post("/user/practice/knowledge/search", { knowledge_ids: [kb.id], query: query.value, k: 5 });
      clear(hits).append(...res.items.map((hit) => h("li", {},
        h("span", { class: "score" }, `${t("score")} ${Number(hit.score).toFixed(2)}`), " ", hit.passage.text)));
    } catch (err) {
      clear(hits).append(h("li", {}, errorLine(err)));
    }
  });
  li.append(h("div", { class: "kb-detail" }, field(t("upload"), file), status,
    h("h3", {}, t("documents")), docs, search, hits));
  drawDocs();
}

export async function libraryPage(main) {
  clear(main).append(h("p", { class: "muted" }, t("loading")));
  const parts = await Promise.all([
    section(t("knowledge"), "/user/practice/knowledge", [["name", t("name")], ["description", t("description")]], (k) => k.name, knowledgeDetail),
    section(t("agents"), "/user/practice/agents", [["name", t("name")], ["instructions", t("instructions"), true]], (a) => a.name),
    section(t("examples"), "/user/practice/few-shot-examples", [["input", t("input"), true], ["output", t("output"), true]], (s) => `${s.input} → ${s.output}`),
    section(t("projects"), "/user/practice/projects", [["name", t("name")], ["description", t("description")]], (p) => p.name),
  ]);
  clear(main).append(h("h2", { class: "sr-only" }, t("nav_library")), ...parts);
}
