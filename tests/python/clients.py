#!/usr/bin/env python3
"""Real client code against a real `sluice serve` over 127.0.0.1.

Usage: clients.py PATH/TO/sluice

The patterns public CLOVA Studio client code uses, written the way that code
writes them (``http.client`` and ``json`` only, like the NCP cookbook's
``SlidingWindowExecutor``): the legacy key headers, app-id paths, the
access-token flow, the v3 token calculator with content parts, and chat
completions through sluice's gateway to a fake upstream (blocking and
streaming, CLOVA and OpenAI wire formats, auto-trim). Then the OpenAI Python
SDK and langchain-naver's ChatClovaX, pointed at sluice, when they are
installed (under CI=true they must be).

Prints one line per check and closes with "N passed, N failed"; exits 1 on
any failure.
"""

import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_upstream import FakeUpstream  # noqa: E402

KEY = "nv-python-client-test"


class Sluice:
    """`sluice serve` on a free loopback port, with the models behind `fake`."""

    def __init__(self, binary, fake):
        self.dir = tempfile.TemporaryDirectory(prefix="sluice-clients-")
        config = os.path.join(self.dir.name, "sluice.toml")
        with open(config, "w", encoding="utf-8") as f:
            f.write(f'''api_keys = ["{KEY}"]
database = "sqlite::memory:"
token_ttl_ms = 1500

[models.HCX-003]
provider = "openai"
base_url = "{fake.base}/v1"
auto_trim = true

[models.gpt-small]
provider = "openai"
base_url = "{fake.base}/v1"
profile = "o200k"

[models.HCX-005]
provider = "clova"
base_url = "{fake.base}"
''')
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
        self.log = open(os.path.join(self.dir.name, "server.log"), "w", encoding="utf-8")
        self.proc = subprocess.Popen(
            [binary, "serve", "--config", config, "--addr", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=self.log, env=env, text=True,
        )
        deadline = time.time() + 30
        line = ""
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if "listening on http://" in line:
                break
            if not line and self.proc.poll() is not None:
                raise RuntimeError("sluice serve exited: see " + self.log.name)
        hostport = line.strip().rsplit("http://", 1)[1]
        self.host, port = hostport.rsplit(":", 1)
        self.port = int(port)

    def stop(self):
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.log.close()
        self.dir.cleanup()

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=20)
        data = None if body is None else json.dumps(body).encode("utf-8")
        conn.request(method, path, data, headers or {})
        response = conn.getresponse()
        raw = response.read().decode("utf-8")
        conn.close()
        return response.status, dict(response.getheaders()), raw


def bearer(key=KEY):
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def sse_events(raw):
    """(event, data) pairs of an SSE body; `event` is None for plain data lines."""
    events, event = [], None
    for line in raw.splitlines():
        if line.startswith("event:"):
            event = line[len("event:"):].strip()
        elif line.startswith("data:"):
            events.append((event, line[len("data:"):].strip()))
            event = None
    return events


def test_cookbook_sliding_window(s, fake):
    # As the NCP cookbook's SlidingWindowExecutor sends it: legacy header pair,
    # a request id, the /testapp prefix and a trailing app id.
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "X-NCP-CLOVASTUDIO-API-KEY": KEY,
        "X-NCP-APIGW-API-KEY": "apigw-key-of-the-old-gateway",
        "X-NCP-CLOVASTUDIO-REQUEST-ID": str(uuid.uuid4()),
    }
    body = {"messages": [{"role": "system", "content": "간결하게 답해."},
                         {"role": "user", "content": "내일 서울 날씨 알려줘"}], "maxTokens": 200}
    status, _, raw = s.request("POST", "/testapp/v1/api-tools/sliding/chat-messages/HCX-003/3f2a9c1e", body, headers)
    reply = json.loads(raw)
    check(status == 200 and reply["status"]["code"] == "20000", raw)
    check(reply["result"]["messages"] == body["messages"], raw)


def test_wrong_legacy_key_is_40100(s, fake):
    headers = {"Content-Type": "application/json", "X-NCP-CLOVASTUDIO-API-KEY": "nv-wrong"}
    status, _, raw = s.request("POST", "/v1/api-tools/sliding/chat-messages/HCX-003",
                               {"messages": [{"role": "user", "content": "hi"}]}, headers)
    check(status == 401 and json.loads(raw)["status"]["code"] == "40100", raw)


def test_access_token_flow(s, fake):
    status, _, raw = s.request("GET", "/v1/auth/token?existingToken=true", None, bearer())
    reply = json.loads(raw)
    check(status == 200 and reply["status"]["code"] == "20000", raw)
    token = reply["result"]["accessToken"]
    check(reply["result"]["expiresAt"].endswith("Z"), raw)
    status, _, raw = s.request("GET", "/v1/auth/token?existingToken=true", None, bearer())
    check(json.loads(raw)["result"]["accessToken"] == token, "existingToken=true reuses the token")
    body = {"messages": [{"role": "user", "content": "hi"}]}
    status, _, raw = s.request("POST", "/v1/api-tools/chat-tokenize/HCX-003", body, bearer(token))
    check(status == 200, raw)
    status, _, raw = s.request("POST", "/v1/api-tools/chat-tokenize/HCX-003", body, bearer("sluice-at-forged"))
    check(status == 401 and json.loads(raw)["status"]["code"] == "40100", raw)
    # The token expires (token_ttl_ms = 1500 here): 40103, and the client
    # refreshes it as the public client code does, then goes on.
    time.sleep(1.8)
    status, _, raw = s.request("POST", "/v1/api-tools/chat-tokenize/HCX-003", body, bearer(token))
    check(status == 401 and json.loads(raw)["status"]["code"] == "40103", raw)
    status, _, raw = s.request("GET", "/v1/auth/token?existingToken=true", None, bearer())
    fresh = json.loads(raw)["result"]["accessToken"]
    check(fresh != token, "a new token after expiry")
    status, _, raw = s.request("POST", "/v1/api-tools/chat-tokenize/HCX-003", body, bearer(fresh))
    check(status == 200, raw)


def test_v3_token_calculator_with_parts(s, fake):
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "미세먼지 정보 알려줘"}]}]}
    status, _, raw = s.request("POST", "/v3/api-tools/chat-tokenize/HCX-005", body, bearer())
    reply = json.loads(raw)
    check(status == 200 and reply["result"]["messages"][0]["count"] > 0, raw)
    text_only = reply["result"]["messages"][0]["count"]
    # An image counts by the profile's rule (1,445 tokens by default) ...
    body["messages"][0]["content"].append({"type": "image_url", "image_url": {"url": "https://example.invalid/a.png"}})
    status, _, raw = s.request("POST", "/v3/api-tools/chat-tokenize/HCX-005", body, bearer())
    reply = json.loads(raw)
    check(status == 200 and reply["result"]["messages"][0]["count"] == text_only + 1445, raw)
    # ... and a part of another type is refused, naming it.
    body["messages"][0]["content"].append({"type": "input_audio", "input_audio": {"data": "", "format": "wav"}})
    status, _, raw = s.request("POST", "/v3/api-tools/chat-tokenize/HCX-005", body, bearer())
    reply = json.loads(raw)
    check(status == 400 and reply["status"]["code"] == "40001" and "input_audio" in reply["status"]["message"], raw)


def test_v3_chat_completions_blocking_and_streaming(s, fake):
    body = {"messages": [{"role": "system", "content": "친절하게."}, {"role": "user", "content": "안녕하세요"}],
            "topP": 0.8, "temperature": 0.5, "maxTokens": 100}
    status, _, raw = s.request("POST", "/testapp/v3/chat-completions/HCX-005", body, bearer())
    reply = json.loads(raw)
    check(status == 200 and reply["result"]["message"]["content"] == "echo: 안녕하세요", raw)
    check(reply["result"]["usage"]["totalTokens"] > 0, raw)
    sent = fake.requests[-1]
    check(sent["path"] == "/v3/chat-completions/HCX-005" and sent["body"]["topP"] == 0.8, str(sent))
    headers = dict(bearer(), Accept="text/event-stream")
    status, _, raw = s.request("POST", "/v3/chat-completions/HCX-005", body, headers)
    events = sse_events(raw)
    names = [e for e, _ in events]
    check(status == 200 and names.count("token") >= 2 and names[-2:] == ["result", "signal"], raw)
    result = json.loads(events[-2][1])
    check(result["message"]["content"] == "echo: 안녕하세요", raw)
    streamed = "".join(json.loads(d)["message"]["content"] for e, d in events if e == "token")
    check(streamed == "echo: 안녕하세요", streamed)


def test_v1_chat_completions(s, fake):
    body = {"messages": [{"role": "user", "content": "hello"}], "maxTokens": 50}
    status, _, raw = s.request("POST", "/testapp/v1/chat-completions/HCX-003", body, bearer())
    reply = json.loads(raw)
    check(status == 200 and reply["result"]["message"]["content"] == "echo: hello", raw)
    check(reply["result"]["outputLength"] == 2, raw)


def test_openai_route_with_http_client(s, fake):
    body = {"model": "gpt-small", "messages": [{"role": "user", "content": "ping"}], "max_tokens": 20}
    status, _, raw = s.request("POST", "/v1/openai/chat/completions", body, bearer())
    reply = json.loads(raw)
    check(status == 200 and reply["choices"][0]["message"]["content"] == "echo: ping", raw)


def test_auto_trim(s, fake):
    turn = "오늘 서울 날씨와 미세먼지, 그리고 내일 부산의 강수 예보를 자세히 알려줘. " * 20
    messages = [{"role": "system", "content": "Answer briefly."}]
    for i in range(40):
        messages += [{"role": "user", "content": f"{i}: {turn}"}, {"role": "assistant", "content": turn}]
    messages.append({"role": "user", "content": "마지막 질문"})
    body = {"messages": messages, "maxTokens": 1000}
    status, headers, raw = s.request("POST", "/v1/chat-completions/HCX-003", body, bearer())
    check(status == 200, raw)
    dropped = int({k.lower(): v for k, v in headers.items()}["x-sluice-turns-dropped"])
    sent = fake.requests[-1]["body"]["messages"]
    check(dropped > 0 and len(sent) == len(messages) - 2 * dropped, f"dropped {dropped}, sent {len(sent)}")
    check(sent[0]["content"] == "Answer briefly." and sent[-1]["content"] == "마지막 질문", "system and newest kept")


def test_openai_sdk(s, fake):
    from openai import OpenAI

    client = OpenAI(base_url=f"http://{s.host}:{s.port}/v1/openai", api_key=KEY, max_retries=0)
    completion = client.chat.completions.create(
        model="gpt-small", messages=[{"role": "user", "content": "from the sdk"}], max_tokens=30)
    check(completion.choices[0].message.content == "echo: from the sdk", str(completion))
    stream = client.chat.completions.create(
        model="gpt-small", messages=[{"role": "user", "content": "streamed words"}], stream=True)
    text = "".join((chunk.choices[0].delta.content or "") for chunk in stream if chunk.choices)
    check(text == "echo: streamed words", text)


WEATHER_TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "The weather of a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def _choices(completion):
    """What the blocking answer and the accumulated stream must agree on."""
    return [(c.index, c.finish_reason, c.message.content,
             [(t.id, t.type, t.function.name, t.function.arguments) for t in (c.message.tool_calls or [])])
            for c in completion.choices]


def test_openai_sdk_function_calling(s, fake):
    # Issue 28: tools and every other field reach the upstream unchanged; the
    # tool calls come back blocking and streamed, and the loop completes.
    from openai import OpenAI
    from openai.lib.streaming.chat import ChatCompletionStreamState

    client = OpenAI(base_url=f"http://{s.host}:{s.port}/v1/openai", api_key=KEY, max_retries=0)
    messages = [{"role": "user", "content": "What is the weather in Seoul?"}]
    fields = {
        "tools": WEATHER_TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "weather", "schema": {"type": "object", "properties": {"sky": {"type": "string"}}}}},
        "stop": ["\n\n", "END"],
        "n": 2,
    }
    completion = client.chat.completions.create(model="gpt-small", messages=messages, max_tokens=64, **fields)
    sent = fake.requests[-1]["body"]
    for name, value in fields.items():
        check(sent.get(name) == value, f"{name} reached the upstream as {sent.get(name)!r}")
    check(len(completion.choices) == 2, str(completion))
    call = completion.choices[0].message.tool_calls[0]
    check(call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Seoul"},
          str(completion))
    check(completion.choices[0].finish_reason == "tool_calls", str(completion))
    check(completion.usage.completion_tokens_details.reasoning_tokens == 0, str(completion.usage))
    check(completion.usage.prompt_tokens_details.cached_tokens == 0, str(completion.usage))
    check(completion.system_fingerprint == "fp_fake", "unknown answer fields come back")

    state = ChatCompletionStreamState()
    for chunk in client.chat.completions.create(model="gpt-small", messages=messages, max_tokens=64, stream=True,
                                                stream_options={"include_usage": True}, **fields):
        state.handle_chunk(chunk)
    streamed = state.get_final_completion()
    check(_choices(streamed) == _choices(completion), f"{_choices(streamed)} != {_choices(completion)}")
    check(fake.requests[-1]["body"]["stream_options"] == {"include_usage": True}, "stream_options unchanged")

    messages.append(completion.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 20 C"})
    final = client.chat.completions.create(model="gpt-small", messages=messages, tools=WEATHER_TOOLS)
    check(final.choices[0].message.content == "echo: tool said sunny, 20 C", str(final))
    check(final.choices[0].finish_reason == "stop", str(final))
    sent = fake.requests[-1]["body"]["messages"]
    check(sent[1]["tool_calls"][0]["id"] == call.id and sent[2]["tool_call_id"] == call.id, str(sent))


def test_langchain_naver(s, fake):
    from langchain_naver import ChatClovaX

    chat = ChatClovaX(model="HCX-005", api_key=KEY, base_url=f"http://{s.host}:{s.port}/v1/openai", max_retries=0)
    reply = chat.invoke("안녕 langchain")
    check(reply.content == "echo: 안녕 langchain", str(reply))
    text = "".join(chunk.content for chunk in chat.stream("스트림 테스트"))
    check(text == "echo: 스트림 테스트", text)


def test_langchain_naver_bind_tools(s, fake):
    # Issue 28: ChatClovaX speaks OpenAI's wire format; HCX-005 here is a CLOVA
    # Studio v3 model, so the tools cross to CLOVA's shape and the tool call
    # comes back in OpenAI's, which LangChain parses.
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_naver import ChatClovaX

    def get_weather(city: str) -> str:
        """The weather of a city."""
        return "sunny"

    chat = ChatClovaX(model="HCX-005", api_key=KEY, base_url=f"http://{s.host}:{s.port}/v1/openai", max_retries=0)
    bound = chat.bind_tools([get_weather])
    question = HumanMessage("서울 날씨 어때?")
    reply = bound.invoke([question])
    check(reply.tool_calls and reply.tool_calls[0]["name"] == "get_weather", str(reply))
    check(reply.tool_calls[0]["args"] == {"city": "Seoul"}, str(reply.tool_calls))
    sent = fake.requests[-1]
    check(sent["path"] == "/v3/chat-completions/HCX-005", sent["path"])
    check(sent["body"]["tools"][0]["function"]["name"] == "get_weather", str(sent["body"]))
    gathered = None
    for chunk in bound.stream([question]):
        gathered = chunk if gathered is None else gathered + chunk
    check(gathered.tool_calls and gathered.tool_calls[0]["args"] == {"city": "Seoul"}, str(gathered))
    result = ToolMessage("맑음", tool_call_id=reply.tool_calls[0]["id"])
    final = bound.invoke([question, reply, result])
    check(final.content == "echo: tool said 맑음", str(final))
    sent = fake.requests[-1]["body"]["messages"]
    check(sent[1]["toolCalls"][0]["function"]["arguments"] == {"city": "Seoul"}, str(sent))
    check(sent[2]["toolCallId"] == reply.tool_calls[0]["id"], str(sent))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: clients.py PATH/TO/sluice")
    fake = FakeUpstream()
    server = Sluice(sys.argv[1], fake)
    tests = [
        test_cookbook_sliding_window, test_wrong_legacy_key_is_40100, test_access_token_flow,
        test_v3_token_calculator_with_parts, test_v3_chat_completions_blocking_and_streaming,
        test_v1_chat_completions, test_openai_route_with_http_client, test_auto_trim,
    ]
    optional = [("openai", test_openai_sdk), ("openai", test_openai_sdk_function_calling),
                ("langchain_naver", test_langchain_naver), ("langchain_naver", test_langchain_naver_bind_tools)]
    required = os.environ.get("CI") == "true"
    for module, test in optional:
        try:
            __import__(module)
            tests.append(test)
        except ImportError:
            if required:
                tests.append(test)  # fails with the ImportError, as it must under CI
            else:
                print(f"skip {test.__name__}: {module} is not installed")
    passed = failed = 0
    try:
        for test in tests:
            try:
                test(server, fake)
                passed += 1
                print(f"ok   {test.__name__}")
            except Exception:  # noqa: BLE001 - report every failure, go on
                failed += 1
                print(f"FAIL {test.__name__}")
                traceback.print_exc()
    finally:
        server.stop()
        fake.stop()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
