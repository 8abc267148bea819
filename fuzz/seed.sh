#!/usr/bin/env bash
# Writes the seed corpora (fuzz/seeds/<target>/) from the project's own test
# data and examples: the README's request bodies, the sample routers, the
# router test cases and tests/data/router. Deterministic; run from anywhere:
#   fuzz/seed.sh
# The seeds are committed (a few KB per target). `cargo fuzz run` writes what it
# finds to fuzz/corpus/<target>/ (git-ignored), reading the seeds as a second
# corpus directory; see fuzz/README.md.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
exec python3 - "$root" <<'PY'
import hashlib, json, pathlib, re, shutil, sys, tomllib

root = pathlib.Path(sys.argv[1])
out = root / "fuzz" / "seeds"
shutil.rmtree(out, ignore_errors=True)

def seed(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)

readme = (root / "README.md").read_text()
# Request bodies in the README's shell examples (echo '...' and printf '...').
bodies = [b for b in re.findall(r"'(\{.*?\})'", readme) if b.startswith('{"')]
requests = []
for b in bodies:
    try:
        requests.append(json.loads(b))
    except json.JSONDecodeError:
        pass
sliding = [r for r in requests if "messages" in r]
practice = [r for r in requests if "prompt_text" in r]

# Router queries: tests/data/router and the router test cases.
queries = [l for l in (root / "tests/data/router/queries.txt").read_text().splitlines() if l.strip()]
eval_lines = [l for l in (root / "tests/data/router/eval.jsonl").read_text().splitlines() if l.strip()]
route_bodies = []
for f in sorted((root / "crates/router/tests/data/cases").glob("*.toml")):
    for case in tomllib.loads(f.read_text()).get("case", []):
        body = {"query": case["query"]}
        history = case.get("history") or case.get("chat_history")
        if isinstance(history, list) and all(isinstance(h, str) for h in history):
            body["chatHistory"] = [{"role": "user", "content": h} for h in history]
        route_bodies.append(body)
        queries.append(case["query"])

compact = lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":"))

# window: structured input (arbitrary); seeded with a few raw byte patterns.
for n in range(4):
    seed("window", bytes(range(n * 16, n * 16 + 48)))

# normalize: query texts as bytes (the target reads its structure from them).
for q in queries[:40]:
    seed("normalize", q)

# http_body: first byte = endpoint (see fuzz_targets/http_body.rs), then the body.
for r in sliding:
    for sel in (0x00, 0x01, 0x02, 0x08, 0x09, 0x05, 0x07):
        seed("http_body", bytes([sel]) + compact(r).encode())
for r in route_bodies[:30]:
    seed("http_body", bytes([0x03]) + compact(r).encode())
for l in eval_lines[:5]:
    seed("http_body", bytes([0x04]) + l.encode())

# router_config: the sample routers and the router test configs.
for f in sorted((root / "crates/router/routers/sample").glob("*.toml")) + [
    root / "crates/router/tests/data/lint/1.toml",
    root / "crates/router/tests/data/safety.toml",
]:
    seed("router_config", f.read_bytes())

# jsonl_line: first byte = job (0 trim, 1 trim full report, 2 count, 3 route,
# 4 route explained), then lines.
for r in sliding:
    for sel in (0, 1, 2):
        seed("jsonl_line", bytes([sel]) + compact(r).encode())
seed("jsonl_line", bytes([0]) + "\n".join(compact(r) for r in sliding).encode() + b"\n")
for l in eval_lines[:10]:
    seed("jsonl_line", bytes([3]) + l.encode())
seed("jsonl_line", bytes([4]) + "\n".join(eval_lines[:3]).encode())

# wire_message: every message of the README's requests, as written there.
for b in bodies:
    for m in re.findall(r'\{"role":.*?\}', b):
        seed("wire_message", m)
for m in [
    '{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]}',
    '{"role":"tool","toolCallId":"c1","content":"23°C"}',
    '{"role":"user","content":[{"type":"text","text":"hello"},{"type":"text","text":"there"}]}',
    '{"role":"user","content":"hi","name":"kim","x-trace":7,"count":3}',
]:
    seed("wire_message", m)

# practice_body: first byte = parser (0 run, 1 next turn, 2-3 agent, 4 project,
# 5 knowledge base, 6 few-shot example), then the body: the README's run body
# and the literal bodies of crates/http/tests/practice.rs.
practice_bodies = [json.loads(b) for b in re.findall(r"-d '(\{.*?\})'", readme, re.S)]
for lit in re.findall(r"json!\((\{[^\n]*?\})\)", (root / "crates/http/tests/practice.rs").read_text()):
    try:
        practice_bodies.append(json.loads(lit))
    except json.JSONDecodeError:
        pass
for b in practice_bodies:
    if "prompt_text" in b or "model_names" in b:
        sels = (0, 1)
    elif "instructions" in b:
        sels = (2, 3)
    elif "input" in b:
        sels = (6,)
    else:
        sels = (4, 5)
    for sel in sels:
        seed("practice_body", bytes([sel]) + compact(b).encode())

# provider_reply: byte 0 = wire format (bit 0: 0 OpenAI, 1 CLOVA) and what is
# read ((byte >> 1) % 3: 0 a whole reply, 1 a stream, 2 an error body), byte 1 =
# split seed, then the body: the replies, streams and error bodies the fake
# upstream of the tests writes (crates/practice/tests/support.rs), and the JSON
# literals of the provider modules' unit tests.
openai_reply = {"id": "chatcmpl-fake-gpt", "object": "chat.completion", "created": 0, "model": "gpt",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "echo: 안녕"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
clova_reply = {"status": {"code": "20000", "message": "OK"},
               "result": {"created": 0, "message": {"role": "assistant", "content": "echo: 안녕"}, "finishReason": "stop",
                          "seed": 7, "usage": {"promptTokens": 3, "completionTokens": 2, "totalTokens": 5}}}
for sel, body in ((0, openai_reply), (1, clova_reply)):
    seed("provider_reply", bytes([sel, 0]) + compact(body).encode())
openai_stream = "".join(f"data: {compact(c)}\n\n" for c in [
    {"id": "c1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
    {"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "안녕 "}, "finish_reason": None}], "usage": None},
    {"id": "c1", "choices": [{"index": 0, "delta": {"content": "world"}, "finish_reason": None}]},
    {"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {"id": "c1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}},
]) + "data: [DONE]\n\n"
clova_token = lambda t: f"id:HCX-005\nevent:token\ndata:{compact({'message': {'role': 'assistant', 'content': t}, 'finishReason': None, 'usage': None})}\n\n"
clova_stream = clova_token("안녕 ") + clova_token("world") + (
    f"event:result\ndata:{compact({'message': {'role': 'assistant', 'content': '안녕 world'}, 'finishReason': 'stop', 'usage': {'promptTokens': 3, 'completionTokens': 2, 'totalTokens': 5}})}\n\n"
    f"event:signal\ndata:{compact({'data': '[DONE]'})}\n\n")
for sel, body in ((2, openai_stream), (3, clova_stream)):
    for split in (0, 3, 6):
        seed("provider_reply", bytes([sel, split]) + body.encode())
    seed("provider_reply", bytes([sel, 1]) + body.replace("\n", "\r\n").encode())
seed("provider_reply", bytes([2, 0]) + (openai_stream.split("data: [DONE]")[0]).encode())
seed("provider_reply", bytes([2, 0]) + f"data: {compact({'error': {'message': 'overloaded', 'type': 'server_error', 'code': 503}})}\n\n".encode())
seed("provider_reply", bytes([3, 0]) + (clova_token("안") + f"event:error\ndata:{compact({'status': {'code': '42901', 'message': 'busy'}})}\n\n").encode())
for i, body in enumerate([
    {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}},
    {"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}},
    {"status": {"code": "40001", "message": "Invalid parameter"}, "result": None},
    {"detail": "Not Found"},
    {"message": "Internal Server Error"},
]):
    seed("provider_reply", bytes([4, i * 3]) + compact(body).encode())
seed("provider_reply", bytes([5, 11]) + b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>")
for f in ("openai.rs", "clova.rs", "mod.rs"):
    text = (root / "crates/practice/src/provider" / f).read_text()
    for lit in re.findall(r'r#"(\{.*?\})"#', text):
        for sel in ((0, 2) if f == "openai.rs" else (1, 3) if f == "clova.rs" else (4, 5)):
            seed("provider_reply", bytes([sel, 0]) + lit.encode())

for d in sorted(out.iterdir()):
    files = list(d.iterdir())
    print(f"{d.name}: {len(files)} seeds, {sum(f.stat().st_size for f in files)} bytes")
PY
