"""A fake chat-model server for the client tests: the OpenAI-compatible and the
CLOVA Studio v3 wire formats, blocking and streamed (SSE), standard library only.

It answers every chat with "echo: <last user message>" and counts usage in
words; every request it receives is kept in ``FakeUpstream.requests``.

With ``tools`` in the request and no tool result yet, it calls the first tool
instead (arguments ``{"city": "Seoul"}``): OpenAI's ``tool_calls`` (streamed as
indexed deltas, the arguments in pieces) or CLOVA's ``toolCalls`` (arguments an
object, in the ``result`` event when streamed). After a tool result it answers
"echo: tool said <result>". OpenAI's ``n`` gives that many choices. With
``delay`` (seconds) every chat answer comes that much later, like a real model.

The upstream model id picks a behaviour (the browser tests use them):
``slow*`` streams many words a quarter of a second apart (and counts, in
``FakeUpstream.aborted``, the streams whose client went away); ``fail*``
answers 500; ``hostile*`` answers markdown full of HTML and script that a page
must render inert.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


TOOL_ARGUMENTS = {"city": "Seoul"}


def _tool_call(body):
    """The tool call to answer with, or None: tools offered, no tool result yet."""
    tools = body.get("tools") or []
    messages = body.get("messages") or []
    if not isinstance(tools, list) or not tools or (messages and messages[-1].get("role") == "tool"):
        return None
    name = ((tools[0] or {}).get("function") or {}).get("name") if isinstance(tools[0], dict) else None
    return {"id": "call_fake_1", "type": "function", "name": str(name)}


# What a hostile model answers: every way to smuggle script into a page.
HOSTILE = "\n".join([
    "# Hostile answer",
    "<script>window.__pwned = (window.__pwned || 0) + 1</script>",
    "<img src=x onerror=\"window.__pwned = (window.__pwned || 0) + 1\">",
    "[click me](javascript:window.__pwned=1) and [data](data:text/html,<script>alert(1)</script>)",
    "<svg onload=\"window.__pwned=1\"></svg> <iframe src=\"javascript:window.__pwned=1\"></iframe>",
    "<a href=\"javascript:window.__pwned=1\">raw link</a> <b onmouseover=\"window.__pwned=1\">bold</b>",
    "",
    "| a | b |",
    "|---|---|",
    "| `<script>` | **safe** |",
    "",
    "- one",
    "- two [ok](https://example.com/)",
    "",
    "```html",
    "<script>window.__pwned=1</script>",
    "```",
])


def _reply_for(body):
    last = ""
    messages = body.get("messages", [])
    for message in messages:
        if message.get("role") == "user":
            content = message.get("content")
            last = content if isinstance(content, str) else ""
    model = str(body.get("model") or "")
    if model.startswith("hostile"):
        text = HOSTILE
    elif model.startswith("slow"):
        text = "slow answer: " + " ".join(f"word{i}" for i in range(60))
    else:
        text = "echo: " + last
    if messages and messages[-1].get("role") == "tool":
        text = "echo: tool said " + str(messages[-1].get("content"))
    prompt_words = sum(
        len(str(m.get("content") or "").split()) for m in body.get("messages", [])
    )
    return text, prompt_words, len(text.split())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, status, payload, content_type="application/json"):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        if self.server.fake.delay:
            time.sleep(self.server.fake.delay)
        text, prompt, completion = _reply_for(body)
        model = str(body.get("model") or "")
        if model.startswith("fail"):
            self._send(500, {"error": {"message": "the fake model failed", "type": "server_error"}})
            return
        if model.startswith("slow") and body.get("stream") and self.path.endswith("/chat/completions"):
            self._stream_slowly(body, text, prompt, completion)
            return
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        words = [w + " " for w in text.split(" ")]
        words[-1] = words[-1].rstrip(" ")
        call = _tool_call(body)
        if self.path.endswith("/chat/completions"):
            n = body.get("n") if isinstance(body.get("n"), int) and 0 < body.get("n") <= 16 else 1
            usage["prompt_tokens_details"] = {"cached_tokens": 0}
            usage["completion_tokens_details"] = {"reasoning_tokens": 0}
            finish = "tool_calls" if call else "stop"
            if body.get("stream"):
                def chunk(delta, finish_reason=None, **extra):
                    choices = [{"index": i, "delta": delta, "finish_reason": finish_reason} for i in range(n)]
                    return "data: " + json.dumps({"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                                                  "created": 1, "model": body.get("model"),
                                                  "choices": choices, **extra}) + "\n\n"
                events = [chunk({"role": "assistant"})]
                if call:
                    arguments = json.dumps(TOOL_ARGUMENTS)
                    events.append(chunk({"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                                         "function": {"name": call["name"], "arguments": ""}}]}))
                    for piece in (arguments[:5], arguments[5:]):
                        events.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
                else:
                    for word in words:
                        events.append(chunk({"content": word}))
                events.append(chunk({}, finish, usage=usage))
                events.append("data: [DONE]\n\n")
                self._send(200, "".join(events).encode(), "text/event-stream")
            else:
                message = {"role": "assistant", "content": text}
                if call:
                    message = {"role": "assistant", "content": None, "tool_calls": [
                        {"id": call["id"], "type": "function",
                         "function": {"name": call["name"], "arguments": json.dumps(TOOL_ARGUMENTS)}}]}
                choices = [{"index": i, "message": message, "finish_reason": finish, "logprobs": None}
                           for i in range(n)]
                self._send(200, {"id": "chatcmpl-fake", "object": "chat.completion", "created": 1,
                                 "model": body.get("model"), "system_fingerprint": "fp_fake",
                                 "choices": choices, "usage": usage})
        elif "/v3/chat-completions/" in self.path:
            clova_usage = {"promptTokens": prompt, "completionTokens": completion, "totalTokens": prompt + completion}
            message = {"role": "assistant", "content": text}
            finish = "stop"
            if call:
                message = {"role": "assistant", "content": "", "toolCalls": [
                    {"id": call["id"], "type": "function",
                     "function": {"name": call["name"], "arguments": TOOL_ARGUMENTS}}]}
                finish = "tool_calls"
            if "text/event-stream" in self.headers.get("Accept", ""):
                events = []
                for word in ([] if call else words):
                    events.append("event:token\ndata:" + json.dumps({"message": {"role": "assistant", "content": word}}) + "\n\n")
                events.append("event:result\ndata:" + json.dumps({"message": message,
                                                                  "finishReason": finish, "usage": clova_usage}) + "\n\n")
                events.append("event:signal\ndata:" + json.dumps({"data": "[DONE]"}) + "\n\n")
                self._send(200, "".join(events).encode(), "text/event-stream")
            else:
                self._send(200, {"status": {"code": "20000", "message": "OK"},
                                 "result": {"message": message, "finishReason": finish, "usage": clova_usage}})
        else:
            self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})


    def _stream_slowly(self, body, text, prompt, completion):
        """Streams word by word, 0.25 s apart, flushing each; stops when the client goes."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            for word in text.split(" "):
                chunk = {"id": "chatcmpl-slow", "object": "chat.completion.chunk", "model": body.get("model"),
                         "choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}]}
                self.wfile.write(("data: " + json.dumps(chunk) + "\n\n").encode())
                self.wfile.flush()
                time.sleep(0.25)
            usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
            final = {"id": "chatcmpl-slow", "object": "chat.completion.chunk", "model": body.get("model"),
                     "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}
            self.wfile.write(("data: " + json.dumps(final) + "\n\ndata: [DONE]\n\n").encode())
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.server.fake.aborted += 1
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    # Room for every connection that several sluice replicas open at once
    # (the default backlog of 5 drops connections under load).
    request_queue_size = 512
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that went away (a sluice replica killed mid-call) is part
        # of the tests; anything else is still reported.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class FakeUpstream:
    """Serves on 127.0.0.1 (a free port) in a background thread until ``stop``."""

    def __init__(self, delay=0.0):
        self.requests = []
        self.delay = delay
        self.aborted = 0
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.fake = self
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self):
        host, port = self.server.server_address
        return f"http://{host}:{port}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
