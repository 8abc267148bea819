// The public API, called with the session cookie. State-changing requests
// carry the CSRF token the sign-in answer gave us.

let csrf = "";

export class ApiError extends Error {
  constructor(status, body) {
    super(typeof body?.detail === "string" ? body.detail : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

function headers(method, extra = {}) {
  const h = { ...extra };
  if (method !== "GET" && method !== "HEAD") h["X-CSRF-Token"] = csrf;
  return h;
}

export async function call(method, path, body, extra) {
  const init = { method, credentials: "same-origin", headers: headers(method, extra) };
  if (body !== undefined) {
    if (body instanceof Blob || typeof body === "string") init.body = body;
    else {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = { detail: text }; }
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed;
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body);
export const patch = (path, body) => call("PATCH", path, body);
export const del = (path) => call("DELETE", path);

export async function whoami() {
  try {
    const me = await get("/web/session");
    csrf = me.csrf_token;
    return me.user;
  } catch (e) {
    if (e.status === 401) return null;
    throw e;
  }
}

export async function signIn(key) {
  const me = await post("/web/session", { key });
  csrf = me.csrf_token;
  return me.user;
}

export async function signOut() {
  await del("/web/session");
  csrf = "";
}

/**
 * A streamed run or chat: POST with Accept: text/event-stream, read the body
 * as it arrives (EventSource cannot POST) and call onEvent(name, data) per
 * server-sent event. A failure before the run started comes back as a plain
 * JSON error with its status, thrown as ApiError.
 */
export async function stream(path, body, onEvent, signal) {
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: headers("POST", { "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify(body),
    signal,
  });
  const type = response.headers.get("Content-Type") || "";
  if (!response.ok || !type.startsWith("text/event-stream")) {
    let parsed = null;
    try { parsed = await response.json(); } catch { parsed = null; }
    throw new ApiError(response.status, parsed);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) {
        let parsed;
        try { parsed = JSON.parse(data.join("\n")); } catch { parsed = data.join("\n"); }
        onEvent(name, parsed);
      }
    }
  }
}
