"""sluice.count, sluice.trim, Model, Conversation and Router, against the CLI."""

from __future__ import annotations

import json
import threading
import time

import pytest

import sluice
from conftest import corpus, run_cli

SEED = {
    "messages": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "내일 서울의 강수 예보 알려줘"},
        {"role": "assistant", "content": "내일 서울은 오전에 비가 옵니다."},
        {"role": "user", "content": "그럼 부산은?"},
    ]
}


def test_trim_returns_what_the_cli_prints(cli):
    out = sluice.trim(SEED["messages"], max_tokens=4050)
    printed = run_cli(cli, ["trim", "--max-tokens", "4050"], json.dumps(SEED))
    assert json.loads(printed.stdout) == out
    assert out["report"]["turnsDropped"] == 1
    assert out["report"]["tokensBefore"] is None


def test_trim_keeps_the_callers_own_objects():
    history = [dict(m, extra={"kept": i}) for i, m in enumerate(SEED["messages"])]
    out = sluice.trim(history, max_tokens=4050)
    assert [id(m) for m in out["messages"]] == [id(history[0]), id(history[3])]
    assert out["messages"][1]["extra"] == {"kept": 3}
    # Nothing to drop: every object comes back, in order.
    assert all(a is b for a, b in zip(sluice.trim(history)["messages"], history))


def test_trim_full_report_counts_everything():
    out = sluice.trim(SEED["messages"], 4050, full_report=True)
    assert out["report"]["tokensBefore"] > out["report"]["tokensAfter"]


def test_count_returns_what_the_cli_prints(cli):
    request = {"messages": [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "미세먼지 정보 알려줘"}]}
    out = sluice.count(request["messages"])
    printed = run_cli(cli, ["count"], json.dumps(request))
    assert json.loads(printed.stdout) == out
    assert out == {
        "messages": [
            {"role": "system", "content": "Answer briefly.", "count": 8},
            {"role": "user", "content": "미세먼지 정보 알려줘", "count": 18},
        ],
        "reply": 3,
        "total": 29,
    }
    # Each message comes back as the caller gave it, with its count.
    assert out["messages"][1]["content"] is request["messages"][1]["content"]


@pytest.mark.parametrize("model", ["HCX-003", "HCX-005", "HCX-007", "cl100k", "o200k"])
def test_results_equal_the_cli_on_a_generated_corpus(cli, model):
    requests = [r for r in corpus(300, seed=11) if "model" not in r]
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in requests)
    for command, call in [
        ("trim", lambda r: sluice.trim(r["messages"], r.get("maxTokens", 100), model)),
        ("count", lambda r: sluice.count(r["messages"], model)),
    ]:
        printed = run_cli(cli, [command, "--jsonl", "--model", model], lines).stdout.decode().splitlines()
        assert len(printed) == len(requests)
        for line, request in zip(printed, requests):
            expected = json.loads(line)
            expected.pop("id", None)
            try:
                got = call(request)
            except sluice.SluiceError as e:
                got = {"line": expected.get("line"), "error": {"code": e.code, "message": e.message}}
            assert got == expected, line


def test_tool_messages_count_as_the_cli_counts_them(cli):
    messages = [
        {"role": "user", "content": "서울 날씨?"},
        {"role": "assistant", "content": "", "toolCalls": [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": {"city": "Seoul", "days": 2}}}]},
        {"role": "tool", "content": "23°C, clear", "toolCallId": "c1"},
        {"role": "assistant", "content": "맑아요.", "tool_calls": [{"id": "c2", "function": {"name": "f", "arguments": "{\"a\": 1}"}}]},
        {"role": "tool", "content": "ok", "tool_call_id": "c2"},
    ]
    messages += [
        {"role": "user", "content": [{"type": "text", "text": "첫째"}, {"type": "text", "text": "둘째"}], "name": "kim"},
        {"role": "assistant", "content": None, "tool_calls": None},
        {"role": "user"},
    ]
    printed = run_cli(cli, ["count"], json.dumps({"messages": messages}))
    assert sluice.count(messages) == json.loads(printed.stdout)
    printed = run_cli(cli, ["trim", "--max-tokens", "4000"], json.dumps({"messages": messages}))
    out = sluice.trim(messages, 4000)
    assert out["report"] == json.loads(printed.stdout)["report"]


def test_model():
    model = sluice.Model("HCX-007")
    assert model.name == "HCX-007" and 4096 < model.max_output < model.context_limit
    assert sluice.Model().name == "HCX-003"
    assert sluice.Model().context_limit == 4096
    assert model.count_text("hello world") == 2
    assert repr(sluice.Model()) == 'Model("HCX-003")'
    assert model.trim(SEED["messages"], 100) == sluice.trim(SEED["messages"], 100, model)
    assert model.count(SEED["messages"]) == sluice.count(SEED["messages"], "HCX-007")
    # A cache of 0 counts the same.
    assert sluice.Model("HCX-007", cache=0).count(SEED["messages"]) == model.count(SEED["messages"])


def test_model_from_files(tmp_path, cli):
    profiles = tmp_path / "profiles.toml"
    profiles.write_text('[profiles.small]\ntokenizer = "cl100k_base"\ncontext_limit = 64\nmax_output = 32\n')
    small = sluice.Model("small", profiles=profiles)
    assert (small.context_limit, small.max_output) == (64, 32)
    with pytest.raises(sluice.ContextLengthExceededError):
        small.trim([{"role": "user", "content": "word " * 100}], 32)
    tokenizer = tmp_path / "tokenizer.json"
    tokenizer.write_bytes(run_cli(cli, ["tokenizer", "export", "cl100k_base"], "").stdout)
    hf = sluice.Model("HCX-003", tokenizer=tokenizer)
    assert hf.count(SEED["messages"]) == sluice.count(SEED["messages"])


def test_models_and_routers_pickle(tmp_path):
    import pickle

    profiles = tmp_path / "profiles.toml"
    profiles.write_text('[profiles.small]\ntokenizer = "cl100k_base"\ncontext_limit = 64\nmax_output = 32\n')
    small = pickle.loads(pickle.dumps(sluice.Model("small", profiles=profiles, cache=0)))
    assert (small.name, small.context_limit) == ("small", 64)
    assert pickle.loads(pickle.dumps(sluice.Model())).trim(SEED["messages"]) == sluice.trim(SEED["messages"])
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "3.toml").write_text('[[domain]]\nname = "shopping"\nkeywords = ["price"]\n')
    shop = pickle.loads(pickle.dumps(sluice.Router("shop", directory=tmp_path)))
    assert (shop.id, shop.version, shop.domains) == ("shop", 3, ["shopping"])
    assert repr(pickle.loads(pickle.dumps(sluice.Router("sample", 1)))) == 'Router("sample", 1)'


def test_conversation_equals_trim_turn_after_turn():
    model = sluice.Model("HCX-003")
    chat = sluice.Conversation([{"role": "system", "content": "Answer briefly."}], model)
    history = [{"role": "system", "content": "Answer briefly."}]
    for i in range(60):
        question = {"role": "user", "content": f"질문 {i}: 오늘 서울 날씨는? " * 5}
        chat.append(question)
        history.append(question)
        assert chat.trim(512) == sluice.trim(history, 512, model)
        answer = {"role": "assistant", "content": "맑고 따뜻합니다. " * 10}
        chat.append(answer)
        history.append(answer)
    assert len(chat) == len(history) == 121
    assert chat.messages == history
    assert chat.pop() is answer
    out = chat.trim(512, forget_dropped=True)
    assert chat.messages == out["messages"]
    assert len(chat) < 120
    assert chat.trim(512)["report"]["messagesDropped"] == 0
    chat.extend([{"role": "assistant", "content": "네."}])
    assert chat.messages[-1] == {"role": "assistant", "content": "네."}
    with pytest.raises(sluice.InvalidParameterError):
        chat.extend([{"role": "user", "content": "ok"}, {"role": "robot", "content": "x"}])
    assert chat.messages[-1] == {"role": "assistant", "content": "네."}
    with pytest.raises(IndexError):
        sluice.Conversation().pop()


def test_router_returns_what_the_cli_prints(cli):
    router = sluice.Router()
    assert (router.id, router.version) == ("sample", 2)
    out = router.route("미세먼지 정보 알려줘", ["내일 서울의 강수 예보 알려줘"], explain=True)
    printed = run_cli(cli, ["route", "미세먼지 정보 알려줘", "--history", "내일 서울의 강수 예보 알려줘", "--explain"], "")
    assert json.loads(printed.stdout) == out
    v1 = sluice.Router("sample", 1)
    result = v1.route("미세먼지 정보 알려줘", [{"role": "user", "content": "내일 서울의 강수 예보 알려줘"}])
    assert result["domain"] == {"result": "지역 검색", "called": True}
    assert result["blockedContent"]["result"] == ["UnsupportedRegion"]
    assert "explanation" not in result
    assert "날씨" in v1.domains
    assert repr(v1) == 'Router("sample", 1)'


def test_router_from_a_directory(tmp_path):
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "1.toml").write_text(
        '[router]\ntoken_limit = 20\n[[domain]]\nname = "shopping"\nkeywords = ["price"]\n'
    )
    router = sluice.Router("shop", directory=tmp_path)
    assert router.route("what is the price?")["domain"]["result"] == "shopping"
    with pytest.raises(sluice.TokenLimitExceededError) as e:
        router.route("price " * 50)
    assert e.value.code == "65400"


ERRORS = [
    (lambda: sluice.trim([]), sluice.InvalidParameterError, "40001", "messages must not be empty"),
    (lambda: sluice.trim([{"role": "user", "content": "hi"}], 0), sluice.InvalidParameterError, "40001", "maxTokens must be between 1 and 4096, got 0"),
    (lambda: sluice.trim([{"role": "bot", "content": "hi"}]), sluice.InvalidParameterError, "40001", "messages[0].role: unknown role"),
    (lambda: sluice.trim([{"content": "hi"}]), sluice.InvalidParameterError, "40001", "messages[0]: missing field `role`"),
    (lambda: sluice.count([{"role": "user", "content": 5}]), sluice.InvalidParameterError, "40001", "messages[0].content: invalid type: integer `5`, expected a string"),
    (lambda: sluice.count([{"role": "user", "content": [{"type": "image_url"}]}]), sluice.InvalidParameterError, "40001", "messages[0].content"),
    (lambda: sluice.count([{"role": "user", "content": "\ud800"}]), sluice.InvalidParameterError, "40001", "messages[0].content: not text: it holds a lone UTF-16 surrogate"),
    (lambda: sluice.count(["hi"]), sluice.InvalidParameterError, "40001", "messages[0]: expected a dict with role and content, got str"),
    (lambda: sluice.count({"messages": []}), sluice.InvalidParameterError, "40001", "messages: expected a list of messages, got dict"),
    (lambda: sluice.count(5), sluice.InvalidParameterError, "40001", "expected a list of messages, got int"),
    (lambda: sluice.count([{"role": "assistant", "toolCalls": [{"id": 1}]}]), sluice.InvalidParameterError, "40001", "messages[0].toolCalls"),
    (lambda: sluice.trim([{"role": "system", "content": "word " * 5000}, {"role": "user", "content": "hi"}]), sluice.ContextLengthExceededError, "40003", "context length exceeded"),
    (lambda: sluice.Router().route("   "), sluice.EmptyQueryError, "40004", "query must not be empty"),
    (lambda: sluice.trim([{"role": "user", "content": "hi"}], model="HCX-999"), sluice.UnknownModelError, "40080", "model not found: HCX-999"),
    (lambda: sluice.Model("nope"), sluice.UnknownModelError, "40080", "model not found"),
    (lambda: sluice.Router("nope"), sluice.RouterNotFoundError, "40400", "router not found: nope"),
    (lambda: sluice.Router("sample", 9), sluice.RouterNotFoundError, "40400", "version 9"),
    (lambda: sluice.Model(profiles="/nonexistent/profiles.toml"), sluice.LoadError, "50000", "cannot read /nonexistent/profiles.toml"),
    (lambda: sluice.Model(tokenizer="/nonexistent/tokenizer.json"), sluice.LoadError, "50000", "cannot read tokenizer file"),
]


@pytest.mark.parametrize("call,cls,code,words", ERRORS)
def test_every_error_code(call, cls, code, words):
    with pytest.raises(cls) as e:
        call()
    assert isinstance(e.value, sluice.SluiceError)
    assert e.value.code == code == cls.CODE
    assert words in e.value.message, e.value.message
    assert str(e.value) == f"{code} {e.value.message}"


def test_invalid_router_files(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "1.toml").write_text('[[domain]]\nname = ""\n')
    with pytest.raises(sluice.InvalidRouterError) as e:
        sluice.Router("bad", directory=tmp_path)
    assert e.value.code == "65001" and "1.toml:2" in e.value.message, e.value.message
    with pytest.raises(sluice.LoadError):
        sluice.Router(directory=tmp_path / "missing")


def test_errors_are_value_and_lookup_errors():
    with pytest.raises(ValueError):
        sluice.trim([])
    with pytest.raises(LookupError):
        sluice.Model("nope")
    assert sluice.errors.from_code("42900", "busy").code == "42900"
    assert type(sluice.errors.from_code("42900", "busy")) is sluice.SluiceError


def test_the_gil_is_released_while_counting():
    model = sluice.Model("HCX-003", cache=0)
    # Counting is fast (over 100 MB/s), so the text grows until one call
    # takes long enough for the other thread to be seen running (or not).
    unit = "서울 날씨 hello world "
    repeat = 400_000
    while True:
        big = unit * repeat
        started = time.perf_counter()
        model.count_text(big)
        if time.perf_counter() - started > 0.2 or repeat >= 64_000_000:
            break
        repeat *= 2
    ticks = 0
    stop = False

    def tick():
        nonlocal ticks
        while not stop:
            ticks += 1

    thread = threading.Thread(target=tick)
    thread.start()
    time.sleep(0.05)
    before = ticks
    started = time.perf_counter()
    model.count_text(big)
    elapsed = time.perf_counter() - started
    during = ticks - before
    stop = True
    thread.join()
    assert elapsed > 0.05, "the text is too short to tell"
    # With the GIL held, the other thread could not have run at all.
    assert during > 1000, (during, elapsed)
