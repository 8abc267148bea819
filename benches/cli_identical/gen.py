#!/usr/bin/env python3
"""Writes the corpus of benches/cli_identical: input files and cases.tsv.

usage: gen.py OUT_DIR

Deterministic (fixed seed, no clock): the same directory every time. Each line of
cases.tsv is one command: NAME, then the file fed to stdin ("-" for none), then
the arguments of `sluice`, separated by tabs. Paths are relative to OUT_DIR, where
run.sh runs every case.
"""
import json
import os
import random
import shutil
import sys

KO = ["내일 서울의 강수 예보 알려줘", "미세먼지 정보는 어때?", "그럼 부산은?", "주말에 갈 만한 곳 추천해 줘",
      "하이퍼클로바 X로 요약해 줘", "감사합니다!", "오후에 비가 오고 저녁에 갭니다.", "서면 가는 버스 몇 번이야",
      "막차 몇 시야?", "꽃가루 많아?", "근처 맛집 찾아줘", "환율 얼마야?"]
EN = ["What's the weather like tomorrow?", "Summarise this article in three bullet points.",
      "It will rain in the morning and clear up by noon.", "Bring an umbrella.", "Thanks, that helps!",
      "train schedule to busan", "WEATHER in Busan", "how do I get to Seomyeon?"]
EMOJI = ["🙂", "☔️", "🚌", "👍🏽"]
PROFILES = ["HCX-003", "HCX-DASH-001", "HCX-005", "HCX-DASH-002", "HCX-007", "cl100k", "o200k"]
DOMAINS = ["날씨", "교통", "지역 검색", ""]


def sentence(rng, n):
    return " ".join(rng.choice(KO + EN + EMOJI) for _ in range(n))


def history(rng, turns, system=True):
    messages = []
    if system:
        messages.append({"role": "system", "content": "You are a helpful assistant. 친절하게 답하세요."})
    for t in range(turns):
        messages.append({"role": "user", "content": sentence(rng, rng.randint(1, 4))})
        messages.append({"role": "assistant", "content": sentence(rng, rng.randint(1, 6))})
    messages.append({"role": "user", "content": sentence(rng, rng.randint(1, 3))})
    return messages


def dumps(value):
    return json.dumps(value, ensure_ascii=False)


def trim_batch(rng, lines):
    """Good lines of every shape, and every kind of bad line."""
    out = []
    for n in range(lines):
        kind = rng.random()
        if kind < 0.55:
            req = {"id": n, "messages": history(rng, rng.randint(0, 60))}
            if rng.random() < 0.7:
                req["maxTokens"] = rng.choice([16, 100, 256, 1024, 3000])
            if rng.random() < 0.4:
                req["model"] = rng.choice(PROFILES)
            if rng.random() < 0.1:
                req["id"] = f"req-{n}"
            out.append(dumps(req))
        elif kind < 0.62:
            # Too long: one message bigger than any context, or maxTokens past it.
            if rng.random() < 0.5:
                big = "가나다라마바사 " * rng.randint(6000, 9000)
                out.append(dumps({"id": n, "messages": [{"role": "user", "content": big}]}))
            else:
                out.append(dumps({"id": n, "maxTokens": 10_000_000, "messages": history(rng, 2)}))
        elif kind < 0.68:
            out.append(dumps({"id": n, "model": rng.choice(["NOPE-1", "hcx-003", "", "gpt-5"]),
                              "messages": history(rng, 1)}))
        elif kind < 0.74:
            out.append(rng.choice(['{"messages": [', "not json", '{"messages": []} trailing', "[1, 2",
                                   '{"id": 1, "messages": [{"role": "user", "content": "열린 문자열}]}']))
        elif kind < 0.82:
            out.append(rng.choice([
                dumps({"id": n, "messages": 5}),
                dumps({"id": n, "messages": [{"role": 7, "content": "hi"}]}),
                dumps({"id": n, "messages": [{"role": "user", "content": 12}]}),
                dumps({"id": n, "messages": [{"role": "wizard", "content": "hi"}]}),
                dumps({"id": n, "maxTokens": "100", "messages": history(rng, 1)}),
                dumps({"id": n, "maxTokens": -5, "messages": history(rng, 1)}),
                dumps({"id": n, "maxTokens": 1.5, "messages": history(rng, 1)}),
                dumps({"id": n, "model": 3, "messages": history(rng, 1)}),
                dumps({"id": n}),
                dumps([{"role": "user", "content": "an array, not a request"}]),
                dumps({"id": n, "messages": []}),
                dumps({"id": n, "messages": [{"role": "user"}]}),
            ]))
        elif kind < 0.86:
            out.append(rng.choice(["", "   ", "\t"]))
        else:
            msgs = history(rng, rng.randint(1, 5))
            msgs[-1]["name"] = rng.choice(["kim", "이영희"])
            if rng.random() < 0.5:
                msgs.insert(1, {"role": "user", "content": [
                    {"type": "text", "text": sentence(rng, 2)},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}}]})
            out.append(dumps({"id": n, "messages": msgs}))
    return "\n".join(out) + "\n"


def route_batch(rng, lines, labelled=False):
    out = []
    for n in range(lines):
        kind = rng.random()
        if kind < 0.8:
            req = {"query": sentence(rng, rng.randint(1, 3))}
            if rng.random() < 0.3:
                req["chatHistory"] = [{"role": "user", "content": sentence(rng, 1)}
                                      for _ in range(rng.randint(1, 3))]
            if labelled:
                req["domain"] = rng.choice(DOMAINS)
            elif rng.random() < 0.5:
                req["id"] = n
            out.append(dumps(req))
        elif kind < 0.87:
            out.append(rng.choice(["{", "query", '{"query": "미완성']))
        elif kind < 0.95:
            out.append(rng.choice([dumps({"query": 5}), dumps({"chatHistory": []}),
                                   dumps({"query": "x", "chatHistory": "no"}),
                                   dumps({"query": "", "domain": "날씨"}),
                                   dumps({"query": "a" * 20000, "domain": "교통"})]))
        else:
            out.append("")
    return "\n".join(out) + "\n"


def main() -> None:
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = random.Random(22)
    files = {
        "single_ko.json": dumps({"maxTokens": 256, "messages": history(rng, 8)}),
        "single_en.json": dumps({"messages": [{"role": "user", "content": sentence(rng, 3)}]}),
        "single_long.json": dumps({"messages": history(rng, 400)}),
        "single_too_long.json": dumps({"messages": [{"role": "user", "content": "안녕 " * 30000}]}),
        "single_bad.json": '{"messages": [{"role": "user", "content": 1}]}',
        "single_malformed.json": '{"messages": [',
        "batch.jsonl": trim_batch(rng, 400),
        "batch_small.jsonl": trim_batch(rng, 40),
        "route.jsonl": route_batch(rng, 200),
        "eval.jsonl": route_batch(rng, 150, labelled=True),
        "eval_clean.jsonl": "\n".join(dumps({"query": sentence(rng, 2), "domain": rng.choice(DOMAINS)})
                                      for _ in range(60)) + "\n",
        "queries.txt": "\n".join(sentence(rng, rng.randint(1, 3)) for _ in range(80)) + "\n\n",
        "profiles.toml": '[models.tiny]\nencoding = "o200k"\ncontext = 300\n',
        "serve.toml": 'addr = "127.0.0.1:9"\ndatabase = "postgres://u:secret@db/x"\npractice_router = "sample/2"\n'
                      '[models.m]\nprovider = "openai"\nbase_url = "http://127.0.0.1:1/v1"\n'
                      'api_key_env = "NO_SUCH_KEY"\n',
        "serve_bad.toml": 'addr = "127.0.0.1:9"\ndatabse = "sqlite::memory:"\n',
        "serve_badtype.toml": 'data_dir = 5\n',
        "serve_badmodel.toml": '[models.m]\nprovider = "openai"\nbase_url = "x"\nsecret = "k"\n',
        "serve_badrouter.toml": 'practice_router = "sample"\n',
    }
    for name, text in files.items():
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            f.write(text if text.endswith("\n") or name.endswith(".json") else text + "\n")
    here = os.path.dirname(os.path.abspath(__file__))
    routers = os.path.join(here, "..", "..", "crates", "router", "routers")
    shutil.copytree(routers, os.path.join(out, "routers"), dirs_exist_ok=True)

    cases = []

    def case(name, *args, stdin="-"):
        cases.append("\t".join([name, stdin, *args]))

    for model in PROFILES + ["NOPE"]:
        for f in ["single_ko.json", "single_en.json", "single_long.json", "single_too_long.json"]:
            case(f"trim-{model}-{f}", "trim", "--model", model, f)
            case(f"count-{model}-{f}", "count", "--model", model, f)
        case(f"trim-batch-{model}", "trim", "--model", model, "--no-progress", "batch.jsonl")
        case(f"count-batch-{model}", "count", "--model", model, "--no-progress", "batch.jsonl")
    for f in ["single_bad.json", "single_malformed.json", "missing.json"]:
        case(f"trim-{f}", "trim", f)
        case(f"count-{f}", "count", f)
    case("trim-stdin-json", "trim", stdin="single_ko.json")
    case("trim-stdin-jsonl", "trim", "--jsonl", "--no-progress", stdin="batch_small.jsonl")
    case("count-stdin-jsonl", "count", "--jsonl", "--no-progress", stdin="batch_small.jsonl")
    for threads in ["1", "2", "4"]:
        case(f"trim-batch-threads{threads}", "trim", "--threads", threads, "--no-progress", "batch.jsonl")
    case("trim-batch-full", "trim", "--full-report", "--no-progress", "batch.jsonl")
    case("trim-batch-max1000", "trim", "--max-tokens", "1000", "--no-progress", "batch.jsonl")
    case("trim-batch-nocache", "trim", "--cache", "0", "--no-progress", "batch.jsonl")
    case("count-batch-nocache", "count", "--cache", "0", "--threads", "3", "--no-progress", "batch.jsonl")
    case("trim-profiles", "trim", "--profiles", "profiles.toml", "--model", "tiny", "single_ko.json")
    case("trim-profiles-batch", "trim", "--profiles", "profiles.toml", "--model", "tiny", "--no-progress",
         "batch_small.jsonl")
    case("trim-profiles-missing", "trim", "--profiles", "nope.toml", "single_ko.json")

    for i, q in enumerate(["내일 서울 날씨 어때?", "WEATHER in Busan", "서면 가는 버스 몇 번이야", "", "🙂",
                           "근처 맛집 찾아줘 please"]):
        case(f"route-q{i}", "route", q)
        case(f"route-q{i}-explain", "route", "--explain", q)
        case(f"route-q{i}-v1", "route", "--version", "1", q)
        case(f"route-q{i}-dir", "route", "--router", "routers", "--explain", q)
    case("route-history", "route", "--history", "부산은?", "--history", "내일은?", "그럼 날씨는?")
    case("route-unknown-id", "route", "--router-id", "nope", "hi")
    case("route-unknown-version", "route", "--version", "9", "hi")
    case("route-jsonl", "route", "--jsonl", "route.jsonl", "--no-progress")
    case("route-jsonl-explain", "route", "--jsonl", "route.jsonl", "--explain", "--threads", "2", "--no-progress")
    case("route-jsonl-stdin", "route", "--jsonl", "-", "--no-progress", stdin="route.jsonl")
    case("route-stdin", "route", "--no-progress", stdin="route.jsonl")
    case("route-jsonl-missing", "route", "--jsonl", "missing.jsonl")
    for v in ["1", "2"]:
        case(f"eval-v{v}", "route", "eval", "--version", v, "eval.jsonl")
        case(f"eval-v{v}-json", "route", "eval", "--version", v, "--json", "eval.jsonl")
        case(f"eval-clean-v{v}", "route", "eval", "--version", v, "eval_clean.jsonl")
    case("eval-dir", "route", "eval", "--router", "routers", "eval_clean.jsonl")
    case("eval-stdin", "route", "eval", "-", stdin="eval_clean.jsonl")
    case("eval-missing", "route", "eval", "missing.jsonl")
    case("diff-text", "route", "diff", "--from", "1", "--to", "2", "queries.txt")
    case("diff-back", "route", "diff", "--from", "2", "--to", "1", "queries.txt")
    case("diff-jsonl", "route", "diff", "--from", "1", "--to", "2", "route.jsonl")
    case("diff-dir", "route", "diff", "--router", "routers", "--from", "1", "--to", "2", "queries.txt")
    case("diff-stdin", "route", "diff", "--from", "1", "--to", "2", "-", stdin="queries.txt")
    case("diff-bad-version", "route", "diff", "--from", "1", "--to", "9", "queries.txt")
    case("check-dir", "route", "check", "routers")
    case("check-file", "route", "check", "routers/sample/2.toml")

    case("config-reference", "config", "reference")
    case("config-print-default", "config", "print")
    case("config-print-file", "config", "print", "--config", "serve.toml")
    case("config-print-flags", "config", "print", "--config", "serve.toml", "--database", "sqlite:x.db",
         "--log-format", "json")
    for f in ["serve.toml", "serve_bad.toml", "serve_badtype.toml", "serve_badmodel.toml",
              "serve_badrouter.toml", "missing.toml"]:
        case(f"config-check-{f}", "config", "check", f)

    # The practice settings' paths, without a database that outlives the case.
    run = ["practice", "run", "hi", "--class", "1", "--user", "u"]
    case("practice-missing-config", *run, "--config", "missing.toml")
    case("practice-bad-router", *run, "--config", "serve_badrouter.toml", "--database", "sqlite::memory:")
    case("practice-bad-type", *run, "--config", "serve_badtype.toml")
    case("practice-bad-model", *run, "--config", "serve_badmodel.toml")
    case("practice-no-user", *run, "--database", "sqlite::memory:")
    case("practice-no-who", "practice", "run", "hi", "--class", "1", "--database", "sqlite::memory:")
    case("admin-cannot-create", "admin", "--database", "sqlite:/proc/nope/x.db", "user", "list")
    case("admin-memory", "admin", "--database", "sqlite::memory:", "user", "list")

    for sub in [[], ["trim"], ["count"], ["route"], ["route", "eval"], ["route", "diff"], ["route", "check"],
                ["config"], ["admin"], ["practice", "run"], ["serve"]]:
        case("help-" + "-".join(sub or ["top"]), *sub, "--help")
    case("no-args")
    case("bad-flag", "trim", "--no-such-flag")

    with open(os.path.join(out, "cases.tsv"), "w", encoding="utf-8") as f:
        f.write("\n".join(cases) + "\n")
    print(f"{out}: {len(cases)} cases", file=sys.stderr)


if __name__ == "__main__":
    main()
