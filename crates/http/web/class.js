// The instructor's side: a class's dashboard (students, activity, usage with
// charts, budgets with what is left, the sessions of its students) and a
// student's session read-only; and, for everyone, who read their sessions.
// Charts are plain SVG built here; every piece of text goes in as text.

import { h, clear, field, append } from "./dom.js";
import * as api from "./api.js";
import { t, errorText } from "./i18n.js";

const SVG = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const num = (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString());
const money = (n) => (n === null || n === undefined ? "—" : Number(n).toFixed(4));
const limitValue = (kind, v) => (kind === "cost_per_month" ? money(v) : num(v));

/** A table that may scroll sideways: focusable, so a keyboard can scroll it too. */
const scroller = (label, table) => h("div", { class: "table-wrap", tabindex: 0, role: "region", "aria-label": label }, table);

/**
 * A bar chart: one bar per item, stacked from `series` ({key, label, cls}).
 * Labels under the bars, the values in each bar's <title>, and a table of the
 * same numbers for screen readers.
 */
function barChart(caption, items, labelOf, series) {
  const width = 480, height = 200, left = 52, bottom = 30, top = 10;
  const max = Math.max(1, ...items.map((it) => series.reduce((sum, se) => sum + (it[se.key] || 0), 0)));
  const step = (width - left - 8) / Math.max(1, items.length);
  const barW = Math.max(4, Math.min(48, step * 0.7));
  const y = (v) => top + (height - top - bottom) * (1 - v / max);
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": caption });
  for (const frac of [0, 0.5, 1]) {
    const v = max * frac;
    svg.append(s("line", { x1: left, x2: width, y1: y(v), y2: y(v), class: "grid" }),
      s("text", { x: left - 6, y: y(v) + 5, class: "axis", "text-anchor": "end" }, num(Math.round(v))));
  }
  items.forEach((it, i) => {
    const x = left + i * step + (step - barW) / 2;
    let base = 0;
    const parts = series.map((se) => `${se.label}: ${num(it[se.key] || 0)}`).join(", ");
    const g = s("g", { class: "bar" }, s("title", {}, `${labelOf(it)} — ${parts}`));
    for (const se of series) {
      const v = it[se.key] || 0;
      if (v > 0) g.append(s("rect", { x, width: barW, y: y(base + v), height: y(base) - y(base + v), class: se.cls }));
      base += v;
    }
    svg.append(g, s("text", { x: x + barW / 2, y: height - bottom + 18, class: "axis", "text-anchor": "middle" },
      labelOf(it).length > 12 ? `${labelOf(it).slice(0, 11)}…` : labelOf(it)));
  });
  const legend = h("div", { class: "legend" }, series.map((se) =>
    h("span", { class: "legend-item" }, h("span", { class: `swatch ${se.cls}` }), se.label)));
  const table = h("table", { class: "sr-only" }, h("caption", {}, caption),
    h("tr", {}, h("th", {}, ""), series.map((se) => h("th", {}, se.label))),
    items.map((it) => h("tr", {}, h("th", {}, labelOf(it)), series.map((se) => h("td", {}, num(it[se.key] || 0))))));
  return h("figure", { class: "chart-box" }, h("figcaption", {}, caption), svg, legend, table);
}

function statsTable(caption, rows, nameHeader, nameOf) {
  return scroller(caption, h("table", { class: "data" }, h("caption", {}, caption),
    h("thead", {}, h("tr", {}, [nameHeader, t("runs"), t("calls"), t("tokens_in"), t("tokens_out"), t("errors"),
      "p50", "p90", "p99", t("cost")].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, h("th", { scope: "row" }, nameOf(r)),
      [num(r.runs), num(r.calls), num(r.prompt_tokens), num(r.completion_tokens), num(r.errors),
        r.latency_p50_ms === null ? "—" : `${r.latency_p50_ms} ms`,
        r.latency_p90_ms === null ? "—" : `${r.latency_p90_ms} ms`,
        r.latency_p99_ms === null ? "—" : `${r.latency_p99_ms} ms`, money(r.cost)].map((c) => h("td", {}, c)))))));
}

/** One budget: each limit with a meter of what is used, and a form to change them (instructors). */
function budgetCard(classId, budget, onSaved) {
  const who = budget.user_name ? budget.user_name : t("whole_class");
  const rows = budget.status.map((st) => {
    const label = t(st.limit);
    const value = st.value === null ? t("no_limit") : limitValue(st.limit, st.value);
    const meter = st.value === null ? null : h("meter", { min: 0, max: Math.max(st.value, 1e-9), value: Math.min(st.used, st.value),
      low: st.value * 0.7, high: st.value * 0.9, optimum: 0, "aria-label": `${who}: ${label}` });
    return h("tr", {}, h("th", { scope: "row" }, label), h("td", {}, limitValue(st.limit, st.used)), h("td", {}, value),
      h("td", { class: st.remaining === 0 ? "error" : "" }, st.remaining === null ? "—" : limitValue(st.limit, st.remaining)),
      h("td", {}, meter), h("td", { class: "muted" }, st.resets_at.replace("T", " ").replace(":00Z", " UTC")));
  });
  const inputs = {};
  const form = h("form", { class: "budget-form" }, h("div", { class: "row" },
    budget.status.map((st) => {
      const input = h("input", { type: "number", min: 0, step: st.limit === "cost_per_month" ? "any" : 1, name: st.limit,
        value: st.value === null ? "" : st.value, placeholder: t("no_limit") });
      inputs[st.limit] = input;
      return field(`${t(st.limit)} (${who})`, input);
    })), h("button", { type: "submit", class: "small" }, t("save_limits")));
  const status = h("span", { role: "status", class: "muted" });
  form.append(status);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = {};
    for (const [k, input] of Object.entries(inputs)) body[k] = input.value === "" ? null : Number(input.value);
    const path = budget.user_id ? `/user/practice/classes/${classId}/students/${budget.user_id}/budget`
      : `/user/practice/classes/${classId}/budget`;
    try {
      await api.call("PUT", path, body);
      status.textContent = t("saved");
      onSaved();
    } catch (err) {
      status.textContent = err.message;
    }
  });
  return h("section", { class: "budget" }, h("h4", {}, who),
    scroller(`${t("budgets")}: ${who}`, h("table", { class: "data" },
      h("thead", {}, h("tr", {}, [t("limit_kind"), t("used"), t("limit_value"), t("left"), "", t("resets")].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows))),
    h("details", {}, h("summary", {}, t("change_limits")), form));
}

export async function classesPage(main, ctx) {
  const mine = (ctx.me?.classes || []).filter((c) => c.role === "instructor");
  clear(main).append(h("h2", {}, t("nav_classes")),
    mine.length ? h("ul", { class: "items" }, mine.map((c) => h("li", {}, h("a", { href: `#/classes/${c.class.id}` }, c.class.name))))
      : h("p", { class: "muted" }, t("no_classes_taught")));
}

export async function classPage(main, ctx, id) {
  clear(main).append(h("p", { class: "muted" }, t("loading")));
  const base = `/user/practice/classes/${encodeURIComponent(id)}`;
  let students, usage, daily, budgets;
  try {
    [students, usage, daily, budgets] = await Promise.all([
      api.get(`${base}/students`), api.get(`${base}/usage`), api.get(`${base}/usage/daily`), api.get(`${base}/budgets`)]);
  } catch (e) {
    if (e.status === 404 || e.status === 422) {
      clear(main).append(h("h2", { class: "not-found" }, t("not_found")), h("p", {}, t("class_not_found")));
      return;
    }
    throw e;
  }
  const cls = (ctx.me?.classes || []).find((c) => String(c.class.id) === String(id))?.class;
  const usageOf = (userId) => usage.by_student.find((u) => u.user_id === userId);
  const budgetOf = (userId) => budgets.items.find((b) => b.user_id === userId);
  const leftOf = (userId) => {
    const b = budgetOf(userId);
    const set = b ? b.status.filter((st) => st.value !== null) : [];
    if (!set.length) return t("no_limit");
    return set.map((st) => `${t(st.limit)}: ${limitValue(st.limit, st.remaining)}`).join("; ");
  };
  const studentTable = scroller(t("students"), h("table", { class: "data" }, h("caption", { class: "sr-only" }, t("students")),
    h("thead", {}, h("tr", {}, [t("student"), t("sessions_col"), t("turns"), t("last_active"), t("tokens"), t("errors"), t("cost"), t("left")]
      .map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, students.items.length ? students.items.map((st) => {
      const u = usageOf(st.user_id);
      return h("tr", {}, h("th", { scope: "row" }, h("a", { href: `#/classes/${id}/sessions?student_id=${st.user_id}` }, st.user_name)),
        h("td", {}, num(st.sessions)), h("td", {}, num(st.turns)),
        h("td", {}, st.last_active ? st.last_active.replace("T", " ").replace("Z", " UTC") : "—"),
        h("td", {}, u ? num(u.prompt_tokens + u.completion_tokens) : "0"), h("td", {}, u ? num(u.errors) : "0"),
        h("td", {}, u ? money(u.cost) : "—"), h("td", {}, leftOf(st.user_id)));
    }) : h("tr", {}, h("td", { colspan: 8, class: "muted" }, t("no_students"))))));
  const tokenSeries = [{ key: "prompt_tokens", label: t("tokens_in"), cls: "s1" }, { key: "completion_tokens", label: t("tokens_out"), cls: "s2" }];
  const activity = daily.items.length
    ? [barChart(t("daily_tokens"), daily.items, (d) => d.day.slice(5), tokenSeries),
      barChart(t("daily_calls"), daily.items.map((d) => ({ ...d, ok: d.calls - d.errors })), (d) => d.day.slice(5),
        [{ key: "ok", label: t("calls_ok"), cls: "s1" }, { key: "errors", label: t("errors"), cls: "s3" }])]
    : [h("p", { class: "muted" }, t("no_usage"))];
  const byModel = usage.by_model.length
    ? [barChart(t("tokens_by_model"), usage.by_model, (m) => m.model_name, tokenSeries),
      barChart(t("tokens_by_student"), usage.by_student, (u) => u.user_name, tokenSeries)] : [];
  const tables = usage.by_model.length
    ? [statsTable(t("usage_by_model"), usage.by_model, t("model"), (m) => m.model_name),
      statsTable(t("usage_by_student"), usage.by_student, t("student"), (u) => u.user_name)] : [];
  const reload = () => classPage(main, ctx, id);
  const totals = usage.totals;
  clear(main).append(
    h("h2", {}, cls ? `${cls.name}` : `${t("class")} #${id}`, h("span", { class: "badge" }, t("instructor_view"))),
    h("p", { class: "actions" }, h("a", { href: `#/classes/${id}/sessions` }, t("student_sessions"))),
    h("dl", { class: "totals" },
      [[t("runs"), num(totals.runs)], [t("tokens_in"), num(totals.prompt_tokens)], [t("tokens_out"), num(totals.completion_tokens)],
        [t("errors"), num(totals.errors)], ["p50", totals.latency_p50_ms === null ? "—" : `${totals.latency_p50_ms} ms`],
        [t("cost"), money(totals.cost)]].map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v)))),
    h("section", {}, h("h3", {}, t("students")), studentTable),
    h("section", {}, h("h3", {}, t("activity")), h("div", { class: "charts" }, activity)),
    h("section", {}, h("h3", {}, t("usage")), h("div", { class: "charts" }, byModel), tables),
    h("section", {}, h("h3", {}, t("budgets")), budgets.items.map((b) => budgetCard(id, b, reload))));
}

export async function classSessionsPage(main, ctx, id, query) {
  clear(main).append(h("p", { class: "muted" }, t("loading")));
  const base = `/user/practice/classes/${encodeURIComponent(id)}`;
  const params = new URLSearchParams(query || "");
  let list, students;
  try {
    [list, students] = await Promise.all([api.get(`${base}/sessions?${params}`), api.get(`${base}/students`)]);
  } catch (e) {
    if (e.status === 404 || e.status === 422) {
      clear(main).append(h("h2", { class: "not-found" }, t("not_found")), h("p", {}, t("class_not_found")));
      return;
    }
    throw e;
  }
  const cls = (ctx.me?.classes || []).find((c) => String(c.class.id) === String(id))?.class;
  const student = h("select", { name: "student_id" }, h("option", { value: "" }, t("all")),
    students.items.map((st) => h("option", { value: st.user_id, selected: params.get("student_id") === String(st.user_id) }, st.user_name)));
  const model = h("select", { name: "model_name" }, h("option", { value: "" }, t("all")),
    (cls?.models || []).map((m) => h("option", { value: m, selected: params.get("model_name") === m }, m)));
  const from = h("input", { type: "date", name: "from", value: params.get("from") || "" });
  const to = h("input", { type: "date", name: "to", value: params.get("to") || "" });
  const errors = h("select", { name: "has_errors" }, h("option", { value: "" }, t("all")),
    h("option", { value: "true", selected: params.get("has_errors") === "true" }, t("with_errors")),
    h("option", { value: "false", selected: params.get("has_errors") === "false" }, t("without_errors")));
  const form = h("form", { class: "filters" }, h("div", { class: "row" }, field(t("student"), student), field(t("model"), model),
    field(t("from"), from), field(t("to"), to), field(t("errors"), errors),
    h("button", { type: "submit", class: "primary" }, t("filter"))));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    for (const el of [student, model, from, to, errors]) if (el.value) next.set(el.name, el.value);
    location.hash = `#/classes/${id}/sessions?${next}`;
  });
  const rows = list.items.map((x) => h("tr", {},
    h("th", { scope: "row" }, h("a", { href: `#/classes/${id}/sessions/${x.session_id}` }, x.session_title || `#${x.session_id}`)),
    h("td", {}, x.student_name), h("td", {}, x.models.map((m) => m.model_name).join(", ")), h("td", {}, num(x.turns)),
    h("td", { class: x.has_errors ? "error" : "" }, x.has_errors ? t("with_errors") : "—"),
    h("td", {}, x.created_at.replace("T", " ").replace("Z", " UTC"))));
  clear(main).append(
    h("h2", {}, `${t("student_sessions")}: ${cls ? cls.name : `#${id}`}`),
    h("p", {}, h("a", { href: `#/classes/${id}` }, t("back_to_class"))),
    form,
    h("p", { class: "muted", role: "status" }, `${t("sessions_col")}: ${list.total}`),
    scroller(t("student_sessions"), h("table", { class: "data" }, h("caption", { class: "sr-only" }, t("student_sessions")),
      h("thead", {}, h("tr", {}, [t("title_col"), t("student"), t("models"), t("turns"), t("errors"), t("created")].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 6, class: "muted" }, t("no_sessions")))))));
}

/** A student's session as its instructor reads it: text only, nothing to change. */
export async function studentSessionPage(main, ctx, id, sessionId) {
  clear(main).append(h("p", { class: "muted" }, t("loading")));
  let session;
  try {
    session = await api.get(`/user/practice/classes/${encodeURIComponent(id)}/sessions/${encodeURIComponent(sessionId)}`);
  } catch (e) {
    if (e.status === 404 || e.status === 422) {
      clear(main).append(h("h2", { class: "not-found" }, t("not_found")), h("p", {}, t("not_found_long")));
      return;
    }
    throw e;
  }
  const columns = (results) => {
    const el = h("div", { class: "columns read-only" });
    // The CSP allows no style attribute; a custom property set through the CSSOM is fine.
    el.style.setProperty("--n", String(Math.min(results.length, 3)));
    return el;
  };
  const turns = session.history.map((turn, i) => h("article", { class: "turn" },
    h("h3", { class: "turn-title" }, `${t("turn")} ${i + 1}`),
    h("blockquote", { class: "prompt-text" }, turn.prompt_text),
    append(columns(turn.results), turn.results.map((r) => h("section", { class: "col" },
      h("div", { class: "col-head" }, h("h4", {}, r.model_name), r.is_primary ? h("span", { class: "badge" }, t("primary")) : null),
      r.error ? h("p", { class: "error" }, errorText(r.error)) : null,
      h("div", { class: "answer plain" }, r.response_text ?? ""),
      h("dl", { class: "meta" }, h("dt", {}, t("latency")), h("dd", {}, `${r.latency_ms} ms`),
        h("dt", {}, t("tokens")), h("dd", {}, `${num(r.token_usage?.prompt_tokens)} / ${num(r.token_usage?.completion_tokens)}`)))))));
  clear(main).append(
    h("h2", {}, session.session_title || `#${session.session_id}`),
    h("p", { class: "notice", role: "note" }, `${t("read_only_by")} ${session.student_name}. ${t("read_recorded")}`),
    h("p", {}, h("a", { href: `#/classes/${id}/sessions` }, t("student_sessions"))),
    ...turns);
}

/** Who read the caller's sessions. */
export async function readsPage(main) {
  const reads = await api.get("/user/practice/session-reads?size=200");
  clear(main).append(h("h2", {}, t("nav_reads")), h("p", { class: "muted" }, t("reads_hint")),
    reads.items.length ? scroller(t("nav_reads"), h("table", { class: "data" },
      h("thead", {}, h("tr", {}, [t("session"), t("reader"), t("when")].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, reads.items.map((r) => h("tr", {},
        h("td", {}, h("a", { href: `#/sessions/${r.session_id}` }, `#${r.session_id}`)), h("td", {}, r.reader_name),
        h("td", {}, r.read_at.replace("T", " ").replace("Z", " UTC")))))))
      : h("p", {}, t("no_reads")));
}
