// Blind votes (keys 1–8 pick an answer, 0 is a tie), ratings of one answer,
// and the class leaderboard with its intervals drawn in SVG.

import { h, clear, field } from "./dom.js";
import * as api from "./api.js";
import { t } from "./i18n.js";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** Shows each column's model beside its label, in place. */
function reveal(container, labels) {
  for (const { label, model_name: model } of labels) {
    const col = container.querySelector(`.col[data-model="${label}"]`);
    const title = col?.querySelector("h3");
    if (title && !title.querySelector(".revealed")) {
      title.append(" ", h("span", { class: "revealed" }, `· ${model}`));
    }
  }
}

/**
 * The vote buttons of a blind turn: one per label, tie, all bad, skip. After
 * the vote the names appear on the columns of `container`.
 */
export function voteBar(container, sessionId, turnId, labels) {
  const status = h("p", { class: "vote-status", role: "status" });
  const bar = h("div", { class: "vote-bar", role: "group", "aria-label": t("vote_title") });
  const buttons = [];
  const send = async (body) => {
    for (const b of buttons) b.disabled = true;
    try {
      const res = await api.post(`/user/practice/sessions/${sessionId}/turns/${turnId}/vote`, body);
      bar.dataset.done = "true";
      reveal(container, res.labels);
      const names = res.labels.map((l) => `${l.label}: ${l.model_name}`).join(", ");
      status.textContent = `${t("vote_thanks")} ${names}` +
        (res.best_model ? ` — ${t("vote_best")} ${res.best_label} (${res.best_model})` : "");
    } catch (e) {
      for (const b of buttons) b.disabled = false;
      status.textContent = e.message;
    }
  };
  labels.forEach((label, i) => {
    const b = h("button", { type: "button", "data-key": String(i + 1), "aria-keyshortcuts": String(i + 1),
      onclick: () => send({ verdict: "best", label }) }, `${i + 1} · ${label} ${t("vote_is_best")}`);
    buttons.push(b);
  });
  const tie = h("button", { type: "button", "data-key": "0", "aria-keyshortcuts": "0",
    onclick: () => send({ verdict: "tie" }) }, `0 · ${t("vote_tie")}`);
  const bad = h("button", { type: "button", onclick: () => send({ verdict: "all_bad" }) }, t("vote_all_bad"));
  const skip = h("button", { type: "button", onclick: () => send({ verdict: "skip" }) }, t("vote_skip"));
  buttons.push(tie, bad, skip);
  bar.append(h("strong", {}, t("vote_title")), ...buttons, h("small", { class: "muted" }, t("vote_keys")));
  return h("div", { class: "vote" }, bar, status);
}

// Digits vote on the newest open vote bar, unless the user is typing.
document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || !/^[0-8]$/.test(e.key)) return;
  const target = e.target;
  if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
  const bars = document.querySelectorAll(".vote-bar:not([data-done])");
  const bar = bars[bars.length - 1];
  const button = bar?.querySelector(`button[data-key="${e.key}"]`);
  if (button && !button.disabled) {
    e.preventDefault();
    button.click();
  }
});

/** Up/down with a comment for one answer. */
export function ratingBox(responseId) {
  const comment = h("input", { type: "text", maxlength: "2000", class: "rating-comment" });
  const status = h("small", { class: "muted", role: "status" });
  const up = h("button", { type: "button", class: "small", "aria-pressed": "false" }, `▲ ${t("rate_up")}`);
  const down = h("button", { type: "button", class: "small", "aria-pressed": "false" }, `▼ ${t("rate_down")}`);
  const send = async (value) => {
    try {
      await api.post(`/user/practice/results/${responseId}/rating`, { value, comment: comment.value || null });
      up.setAttribute("aria-pressed", String(value === "up"));
      down.setAttribute("aria-pressed", String(value === "down"));
      status.textContent = t("rate_saved");
    } catch (e) {
      status.textContent = e.message;
    }
  };
  up.addEventListener("click", () => send("up"));
  down.addEventListener("click", () => send("down"));
  return h("div", { class: "rating" }, field(t("rate_comment"), comment), h("div", { class: "actions" }, up, down, status));
}

/** One row's interval on a shared axis: a line from lower to upper, a dot at the score. */
function intervalSvg(row, min, max) {
  const width = 240, height = 24, pad = 8;
  const x = (v) => pad + ((v - min) / (max - min || 1)) * (width - 2 * pad);
  const lo = row.lower ?? row.score, hi = row.upper ?? row.score;
  const label = `${t("lb_interval")} ${rating(lo)}–${rating(hi)}`;
  return svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, class: "interval" },
    svg("title", {}, label),
    svg("line", { x1: x(min), x2: x(max), y1: height / 2, y2: height / 2, class: "axis" }),
    svg("line", { x1: x(lo), x2: x(hi), y1: height / 2, y2: height / 2, class: "ci" }),
    svg("circle", { cx: x(row.score), cy: height / 2, r: 4, class: "point" }));
}

const rating = (score) => Math.round(1000 + (400 * score) / Math.LN10);

/** `#/leaderboard`: the class's models ranked, intervals, counts, win rates, export. */
export async function leaderboardPage(main, ctx) {
  clear(main).append(h("p", { class: "muted" }, t("loading")));
  if (!ctx.me.classes.length) {
    clear(main).append(h("h2", {}, t("nav_leaderboard")), h("p", {}, t("no_class")));
    return;
  }
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const classId = params.get("class_id") || String(ctx.me.classes[0].class.id);
  const membership = ctx.me.classes.find((c) => String(c.class.id) === classId) || ctx.me.classes[0];
  const query = new URLSearchParams();
  for (const k of ["domain", "agent_id", "style_preset"]) if (params.get(k) != null) query.set(k, params.get(k));
  const data = await api.get(`/user/practice/classes/${membership.class.id}/leaderboard?${query}`);

  const go = (changes) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(changes)) if (v === "" || v == null) next.delete(k); else next.set(k, v);
    location.hash = `#/leaderboard?${next}`;
  };
  const classSel = h("select", {}, ctx.me.classes.map((c) =>
    h("option", { value: c.class.id, selected: c.class.id === membership.class.id }, c.class.name)));
  classSel.addEventListener("change", () => go({ class_id: classSel.value, domain: "", agent_id: "", style_preset: "" }));
  const facet = (key, values, labelOf = (v) => v) => {
    const sel = h("select", {}, h("option", { value: "" }, t("lb_all")),
      values.map((v) => h("option", { value: v, selected: params.get(key) === String(v) }, labelOf(v))));
    sel.addEventListener("change", () => go({ [key]: sel.value }));
    return sel;
  };
  const filters = h("div", { class: "row" },
    field(t("class"), classSel),
    // "" (prompts with no domain) is a filter of the API, not of this select, whose "" means all.
    field(t("lb_domain"), facet("domain", data.facets.domains.filter(Boolean))),
    field(t("agent"), facet("agent_id", data.facets.agent_ids, (a) => `#${a}`)),
    field(t("style"), facet("style_preset", data.facets.style_presets)));

  const rows = data.rows;
  const bounds = rows.flatMap((r) => [r.lower ?? r.score, r.upper ?? r.score]);
  const min = Math.min(...bounds, 0), max = Math.max(...bounds, 0);
  const table = rows.length
    ? h("table", { class: "leaderboard" },
      h("caption", {}, `${t("lb_caption")} (${data.total_votes} ${t("lb_votes")}, ${data.skipped} ${t("lb_skipped")})`),
      h("thead", {}, h("tr", {}, ["#", t("lb_model"), t("lb_rating"), t("lb_interval"), t("lb_votes_col"), t("lb_wlt")]
        .map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.map((r, i) => h("tr", {},
        h("td", {}, String(i + 1)), h("th", { scope: "row" }, r.model_name), h("td", {}, String(rating(r.score))),
        h("td", {}, intervalSvg(r, min, max), h("span", { class: "sr-only" },
          r.lower == null ? "" : ` ${rating(r.lower)}–${rating(r.upper)}`)),
        h("td", {}, String(r.votes)), h("td", {}, `${r.wins} / ${r.losses} / ${r.ties}`)))))
    : h("p", { class: "muted" }, t("lb_empty"));

  const m = data.matrix;
  const matrix = m.models.length > 1
    ? h("table", { class: "matrix" }, h("caption", {}, t("lb_matrix")),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("lb_row_beats")), m.models.map((n) => h("th", { scope: "col" }, n)))),
      h("tbody", {}, m.models.map((name, i) => h("tr", {}, h("th", { scope: "row" }, name),
        m.win_rate[i].map((w, j) => h("td", { title: `${m.comparisons[i][j]} ${t("lb_comparisons")}` },
          w == null ? "—" : `${Math.round(w * 100)}%`))))))
    : null;

  let exports = null;
  if (membership.role === "instructor") {
    const base = `/user/practice/classes/${membership.class.id}/export`;
    exports = h("div", { class: "actions export" }, h("strong", {}, t("export")),
      h("a", { class: "button", href: `${base}?format=jsonl`, download: `class-${membership.class.id}.jsonl` }, "JSONL"),
      h("a", { class: "button", href: `${base}?format=csv`, download: `class-${membership.class.id}.csv` }, "CSV"));
  }
  clear(main).append(...[h("h2", {}, t("nav_leaderboard")), filters, h("div", { class: "table-scroll" }, table),
    h("p", { class: "muted" }, t("lb_method")), matrix && h("div", { class: "table-scroll" }, matrix), exports]
    .filter(Boolean));
}
