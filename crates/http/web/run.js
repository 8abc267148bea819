// The run page and the session page: settings, one column per model streaming
// its own tokens, stop, copy, widen, diff, sources and what each model was sent.

import { h, clear, field } from "./dom.js";
import * as api from "./api.js";
import { t, errorText } from "./i18n.js";
import { render } from "./markdown.js";
import { diff } from "./diff.js";
import { voteBar, ratingBox } from "./vote.js";

const PRESETS = ["balanced", "accurate", "creative", "custom"];
const MAX_MODELS = 8;

/** The run being streamed now (Esc stops it). */
let current = null;

export function stopCurrent() {
  if (current) current.stop(null);
}

async function list(path) {
  const page = await api.get(`${path}?size=200`);
  return page.items || [];
}

async function libraries() {
  const [agents, projects, knowledge, shots] = await Promise.all([
    list("/user/practice/agents"), list("/user/practice/projects"),
    list("/user/practice/knowledge"), list("/user/practice/few-shot-examples"),
  ]);
  return { agents, projects, knowledge, shots };
}

function select(options, value) {
  const el = h("select");
  for (const [v, label] of options) el.append(h("option", { value: v, selected: String(v) === String(value) }, label));
  return el;
}

function checks(legend, items, name, checked = () => false) {
  const set = h("fieldset", { class: "checks" }, h("legend", {}, legend));
  if (!items.length) set.append(h("small", { class: "muted" }, t("none")));
  for (const [value, label] of items) {
    const box = h("input", { type: "checkbox", name, value, checked: checked(value) });
    set.append(h("label", { class: "check" }, box, " ", label));
  }
  return set;
}

function checked(container, name) {
  return [...container.querySelectorAll(`input[name="${name}"]:checked`)].map((b) => b.value);
}

function numberInput(step, min, max) {
  return h("input", { type: "number", step, min, max, inputmode: "decimal" });
}

/** The settings of a run: class, models, style, parameters, libraries. */
function settings(me, libs) {
  const el = h("div", { class: "settings" });
  const classSel = select(me.classes.map((c) => [c.class.id, c.class.name]), me.classes[0].class.id);
  const models = h("div");
  const drawModels = () => {
    const cls = me.classes.find((c) => String(c.class.id) === classSel.value).class;
    clear(models).append(checks(t("models"), cls.models.map((m) =>
      [m, m === cls.primary_model ? `${m} (${t("primary")})` : m]), "model", (m) => m === cls.primary_model));
  };
  classSel.addEventListener("change", drawModels);
  drawModels();
  const preset = select(PRESETS.map((p) => [p, p]), "balanced");
  const temperature = numberInput("0.1", "0", "2");
  const topP = numberInput("0.05", "0", "1");
  const maxTokens = numberInput("1", "1", "100000");
  const agent = select([["", t("none")], ...libs.agents.map((a) => [a.id, a.name])], "");
  const project = select([["", t("none")], ...libs.projects.map((p) => [p.id, p.name])], "");
  const knowledge = checks(t("knowledge"), libs.knowledge.map((k) => [k.id, k.name]), "kb");
  const shots = checks(t("few_shots"), libs.shots.map((s) => [s.id, s.input.slice(0, 40)]), "shot");
  const blind = h("input", { type: "checkbox", name: "blind" });
  el.append(
    h("div", { class: "row" }, field(t("class"), classSel), field(t("style"), preset),
      field(t("agent"), agent), field(t("project"), project)),
    models,
    h("label", { class: "check blind-toggle" }, blind, " ", t("blind"), " ", h("small", { class: "muted" }, t("blind_hint"))),
    h("details", {}, h("summary", {}, `${t("temperature")} · ${t("top_p")} · ${t("max_tokens")} · ${t("knowledge")} · ${t("few_shots")}`),
      h("div", { class: "row" }, field(t("temperature"), temperature), field(t("top_p"), topP), field(t("max_tokens"), maxTokens)),
      knowledge, shots),
  );
  const read = () => {
    const body = { model_names: checked(models, "model"), style_preset: preset.value };
    const params = {};
    if (temperature.value !== "") params.temperature = Number(temperature.value);
    if (topP.value !== "") params.top_p = Number(topP.value);
    if (maxTokens.value !== "") params.max_tokens = Number(maxTokens.value);
    if (Object.keys(params).length) body.generation_params = params;
    if (agent.value) body.agent_id = Number(agent.value);
    if (project.value) body.project_id = Number(project.value);
    const kbs = checked(knowledge, "kb").map(Number);
    if (kbs.length) body.knowledge_ids = kbs;
    const shotIds = checked(shots, "shot").map(Number);
    if (shotIds.length) body.few_shot_example_ids = shotIds;
    if (blind.checked) body.blind = true;
    return { classId: Number(classSel.value), body };
  };
  return { el, read };
}

/** One model's column: header with actions, the answer, its numbers. */
function column(board, model, primary, onStop) {
  const status = h("span", { class: "status", role: "status" }, t("waiting"));
  const answer = h("div", { class: "answer", tabindex: "0", "aria-label": model });
  const meta = h("dl", { class: "meta" });
  const extra = h("div", { class: "extra" });
  let text = "";
  const stop = h("button", { type: "button", class: "small", onclick: () => onStop(model), hidden: !onStop }, t("stop"));
  const copy = h("button", {
    type: "button", class: "small",
    onclick: async () => {
      try { await navigator.clipboard.writeText(text); copy.textContent = t("copied"); } catch { /* denied */ }
    },
  }, t("copy"));
  const widen = h("button", { type: "button", class: "small", "aria-pressed": "false" }, t("widen"));
  const col = h("section", { class: "col", "data-model": model, "aria-label": model },
    h("header", { class: "col-head" },
      h("h3", {}, model, primary ? h("span", { class: "badge" }, t("primary")) : null),
      status, h("div", { class: "col-actions" }, stop, copy, widen)),
    answer, meta, extra);
  widen.addEventListener("click", () => {
    const wide = col.classList.toggle("wide");
    widen.setAttribute("aria-pressed", String(wide));
    widen.textContent = wide ? t("narrow") : t("widen");
  });
  let frame = 0;
  const draw = () => { frame = 0; answer.replaceChildren(render(text)); };
  const view = {
    el: col,
    get text() { return text; },
    append(delta) {
      text += delta;
      // Re-render at most once per frame: eight columns streaming stay cheap.
      if (!frame) frame = requestAnimationFrame(draw);
    },
    setStatus(key, cls) { status.textContent = t(key); col.dataset.state = cls || key; },
    done(finish, error) {
      stop.hidden = true;
      if (error) {
        view.setStatus("failed");
        answer.append(h("p", { class: "error", role: "alert" }, errorText(error)));
      } else view.setStatus(finish === "stopped" ? "stopped" : "done");
    },
    /** Fills in a stored result. */
    result(r) {
      text = r.response_text || "";
      if (frame) { cancelAnimationFrame(frame); frame = 0; }
      answer.replaceChildren(render(text));
      if (r.error) answer.append(h("p", { class: "error", role: "alert" }, errorText(r.error)));
      stop.hidden = true;
      view.setStatus(r.error ? "failed" : r.finish_reason === "stopped" ? "stopped" : "done");
      const u = r.token_usage || {};
      clear(meta).append(
        h("dt", {}, t("latency")), h("dd", {}, `${r.latency_ms} ms`),
        h("dt", {}, t("tokens")), h("dd", {}, u.prompt_tokens == null ? "—" : `${u.prompt_tokens} + ${u.completion_tokens} = ${u.total_tokens}`),
        h("dt", {}, t("finish")), h("dd", {}, r.finish_reason || "—"));
      clear(extra);
      const sources = u.sources || [];
      if (sources.length) {
        extra.append(h("details", { class: "sources" }, h("summary", {}, `${t("sources")} (${sources.length})`),
          h("ol", {}, sources.map((s) => h("li", {}, h("span", { class: "score" }, `${t("score")} ${Number(s.score).toFixed(2)}`), " ", s.preview)))));
      }
      extra.append(sentView(r));
      if (r.response_id) extra.append(ratingBox(r.response_id));
    },
  };
  board.columns.append(col);
  board.tabs.append(h("button", {
    type: "button", role: "tab", onclick: () => board.show(model), "data-model": model,
  }, model));
  return view;
}

/** The messages a model was really sent, after assembly and trimming. */
function sentView(r) {
  const sent = r.request;
  const box = h("details", { class: "sent" }, h("summary", {}, t("sent")));
  if (!sent || !Array.isArray(sent.messages)) {
    box.append(h("p", { class: "muted" }, t("sent_none")));
    return box;
  }
  const w = sent.window || {};
  box.append(h("p", { class: "muted" },
    `${sent.messages.length}${w.messages_before != null ? ` / ${w.messages_before}` : ""} ${t("messages")}`,
    w.messages_dropped ? ` · ${w.messages_dropped} ${t("dropped")}` : "",
    w.tokens_after != null ? ` · ${w.tokens_after} ${t("counted")}` : "",
    w.limit != null ? ` · ${t("limit")} ${w.limit}` : ""));
  box.append(h("ol", { class: "messages" }, sent.messages.map((m) =>
    h("li", {}, h("strong", {}, m.role), h("pre", {}, m.content)))));
  return box;
}

/** The columns of one turn, with tabs for narrow screens and a diff panel. */
function board(models) {
  const b = {
    el: h("div", { class: "board" }),
    tabs: h("div", { class: "tabs", role: "tablist" }),
    columns: h("div", { class: "columns" }),
    views: new Map(),
    show(model) {
      for (const c of b.columns.children) c.classList.toggle("active", c.dataset.model === model);
      for (const tab of b.tabs.children) tab.setAttribute("aria-selected", String(tab.dataset.model === model));
    },
  };
  b.columns.style.setProperty("--n", String(Math.min(models.length, 4)));
  b.el.append(b.tabs, b.columns);
  return b;
}

function diffPanel(b) {
  const names = [...b.views.keys()];
  if (names.length < 2) return null;
  const a = select(names.map((n) => [n, n]), names[0]);
  const c = select(names.map((n) => [n, n]), names[1]);
  const out = h("div", { class: "diff", "aria-live": "polite" });
  const show = () => {
    clear(out);
    for (const part of diff(b.views.get(a.value).text, b.views.get(c.value).text)) {
      out.append(part.op === "same" ? document.createTextNode(part.text)
        : h(part.op === "add" ? "ins" : "del", {}, part.text));
    }
  };
  return h("details", { class: "diff-panel" }, h("summary", {}, t("diff")),
    h("div", { class: "row" }, field(t("diff_a"), a), field(t("diff_b"), c),
      h("button", { type: "button", onclick: show }, t("diff_run"))), out);
}

/** A turn being streamed into `container`. Resolves with the stored response. */
async function streamTurn(container, path, body) {
  // A blind run's columns are its labels, named by the started event.
  const primaryFirst = !body.blind;
  const models = body.blind ? [] : body.model_names || [];
  const b = board(models);
  const banner = h("div", { class: "banner", role: "alert", hidden: true });
  container.append(banner, b.el);
  let runId = null;
  const stopped = new Set();
  const live = {
    stop(model) {
      if (!runId) return;
      if (model) stopped.add(model);
      const q = model ? `?model_name=${encodeURIComponent(model)}` : "";
      api.post(`/user/practice/runs/${runId}/stop${q}`).catch(() => { /* the run just ended */ });
    },
  };
  const ensure = (name, i) => {
    if (!b.views.has(name)) b.views.set(name, column(b, name, primaryFirst && i === 0, live.stop));
    return b.views.get(name);
  };
  models.forEach((m, i) => ensure(m, i));
  if (models.length) b.show(models[0]);
  current = live;
  let result = null;
  try {
    await api.stream(path, body, (event, data) => {
      if (event === "started") {
        runId = data.run_id;
        data.model_names.forEach((m, i) => ensure(m, i).setStatus("streaming"));
        if (!models.length && data.model_names.length) b.show(data.model_names[0]);
      } else if (event === "token") {
        ensure(data.model_name, 1).append(data.text);
      } else if (event === "model_done") {
        ensure(data.model_name, 1).done(data.finish_reason, data.error);
      } else if (event === "result") {
        result = data;
        for (const r of data.results) ensure(r.model_name, 1).result(r);
      } else if (event === "error") {
        banner.hidden = false;
        banner.textContent = describe(data.detail);
      }
    });
  } catch (e) {
    banner.hidden = false;
    banner.textContent = describe(e.body?.detail ?? e.message);
    b.el.remove();
  } finally {
    current = null;
  }
  if (result) {
    const panel = diffPanel(b);
    if (panel) container.append(panel);
    if (result.blind) container.append(voteBar(b.el, result.session_id, result.turn_id, result.results.map((r) => r.label)));
  }
  return result;
}

function describe(detail) {
  if (detail && typeof detail === "object" && detail.blocked) return t("blocked");
  if (detail && typeof detail === "object" && detail.msg) return detail.msg;
  if (Array.isArray(detail)) return detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
  return String(detail ?? "");
}

export async function runPage(main, ctx) {
  clear(main).append(h("p", { class: "muted" }, t("loading")));
  if (!ctx.me.classes.length) {
    clear(main).append(h("h2", {}, t("new_run")), h("p", {}, t("no_class")));
    return;
  }
  const libs = await libraries();
  const s = settings(ctx.me, libs);
  const prompt = h("textarea", { rows: 4, required: true, class: "prompt" });
  const runButton = h("button", { type: "submit", class: "primary" }, t("run"));
  const stopAll = h("button", { type: "button", onclick: stopCurrent }, t("stop_all"));
  const out = h("div", { class: "turn-out" });
  const form = h("form", { class: "run-form" }, s.el, field(t("prompt"), prompt),
    h("div", { class: "actions" }, runButton, stopAll, h("small", { class: "muted" }, t("keys_hint"))));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const { classId, body } = s.read();
    if (!body.model_names.length || body.model_names.length > MAX_MODELS) {
      clear(out).append(h("p", { class: "banner", role: "alert" }, t("select_model")));
      return;
    }
    body.prompt_text = prompt.value;
    runButton.disabled = true;
    clear(out);
    const result = await streamTurn(out, `/user/practice/sessions/run?class_id=${classId}`, body);
    runButton.disabled = false;
    if (result) {
      ctx.refreshHistory();
      out.append(h("p", {}, h("a", { href: `#/sessions/${result.session_id}` }, t("continue"))));
    }
  });
  clear(main).append(h("h2", {}, t("new_run")), form, out);
  prompt.focus();
}

function turnView(session, turn, index) {
  const models = turn.results.map((r) => r.model_name);
  const b = board(models);
  for (const r of turn.results) {
    // A blind turn's model_name is its label until the vote; after it, both show.
    const v = column(b, r.model_name, r.is_primary, null);
    if (turn.revealed && r.label) v.el.querySelector("h3").prepend(`${r.label} · `);
    b.views.set(r.model_name, v);
    v.result(r);
  }
  if (models.length) b.show(models[0]);
  const vote = turn.revealed === false
    ? voteBar(b.el, session.session_id, turn.turn_id, turn.results.map((r) => r.label)) : null;
  return h("article", { class: "turn" },
    h("h3", { class: "turn-title" }, `${t("turn")} ${index + 1}`, turn.revealed === undefined ? "" : ` · ${t("blind")}`),
    h("blockquote", { class: "prompt-text" }, turn.prompt_text),
    b.el, vote, diffPanel(b));
}

export async function sessionPage(main, ctx, id) {
  clear(main).append(h("p", { class: "muted" }, t("loading")));
  let session;
  try {
    session = await api.get(`/user/practice/sessions/${encodeURIComponent(id)}`);
  } catch (e) {
    if (e.status === 404 || e.status === 422) {
      clear(main).append(h("h2", { class: "not-found" }, t("not_found")), h("p", {}, t("not_found_long")));
      return;
    }
    throw e;
  }
  const link = `${location.origin}/#/sessions/${session.session_id}`;
  const turns = h("div", { class: "turns" }, session.history.map((turn, i) => turnView(session, turn, i)));
  const prompt = h("textarea", { rows: 3, required: true, class: "prompt" });
  const out = h("div", { class: "turn-out" });
  const runButton = h("button", { type: "submit", class: "primary" }, t("run"));
  const form = h("form", { class: "run-form" }, field(t("continue"), prompt),
    h("div", { class: "actions" }, runButton, h("button", { type: "button", onclick: stopCurrent }, t("stop_all")),
      h("small", { class: "muted" }, t("keys_hint"))));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    runButton.disabled = true;
    const models = session.models.map((m) => m.model_name);
    // A blind session goes on blind.
    const last = session.history[session.history.length - 1];
    const body = { prompt_text: prompt.value, model_names: models };
    if (last && last.revealed !== undefined && models.length > 1) body.blind = true;
    const result = await streamTurn(out, `/user/practice/sessions/${session.session_id}/chat`, body);
    runButton.disabled = false;
    if (result) {
      ctx.refreshHistory();
      await sessionPage(main, ctx, id);
    }
  });
  clear(main).append(
    h("h2", {}, session.session_title || `#${session.session_id}`),
    h("p", { class: "share" }, `${t("share")}: `, h("a", { href: link }, link)),
    turns, form, out);
}
