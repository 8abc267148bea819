"""trim_arrow, count_arrow and route_arrow: nulls, bad rows, types, and results
identical to the CLI."""

from __future__ import annotations

import json

import pytest

pa = pytest.importorskip("pyarrow")

import sluice  # noqa: E402
from conftest import arrow_table, corpus, jsonl, run_cli, trimmed_row_as_cli  # noqa: E402

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
HI = [{"role": "user", "content": "hi"}]


def batch(rows, **columns):
    data = {"messages": pa.array(rows, pa.list_(MESSAGE))}
    data.update(columns)
    return pa.RecordBatch.from_pydict(data)


def test_trim_arrow_equals_the_cli_line_for_line(cli):
    requests = corpus(2000, seed=3)
    printed = run_cli(cli, ["trim", "--jsonl"], jsonl(requests)).stdout.decode().splitlines()
    table = arrow_table(requests)
    for threads in (None, 1, 2):
        out = sluice.trim_arrow(table, threads=threads)
        assert isinstance(out, pa.Table)
        rows = out.to_pylist()
        assert len(rows) == len(printed)
        for i, (row, line) in enumerate(zip(rows, printed)):
            assert trimmed_row_as_cli(row, i + 1) == json.loads(line), line
    errors = sum(1 for line in printed if '"error"' in line)
    assert 0 < errors < len(printed)


def test_count_arrow_equals_the_cli_line_for_line(cli):
    requests = corpus(500, seed=5)
    printed = run_cli(cli, ["count", "--jsonl"], jsonl(requests)).stdout.decode().splitlines()
    rows = sluice.count_arrow(arrow_table(requests)).to_pylist()
    for i, (row, line) in enumerate(zip(rows, printed)):
        expected = json.loads(line)
        if row["error"] is not None:
            assert expected == {"id": row["id"], "line": i + 1, "error": row["error"]}
            continue
        assert expected["messages"] == [
            {**m, "count": c} for m, c in zip(row["messages"], row["counts"])
        ]
        assert (expected["reply"], expected["total"]) == (row["reply"], row["total"])


def test_route_arrow_equals_the_cli_line_for_line(cli):
    queries = ["내일 서울 날씨 어때?", "서울 맛집", "안녕", "", "미세먼지 정보 알려줘", "그럼 부산은?"]
    requests = []
    for i in range(300):
        request = {"id": i, "query": queries[i % len(queries)]}
        if i % 4 == 0:
            request["chatHistory"] = [{"role": "user", "content": queries[(i // 4) % len(queries)]}]
        requests.append(request)
    printed = run_cli(cli, ["route", "--jsonl", "-"], jsonl(requests)).stdout.decode().splitlines()
    table = pa.table(
        {
            "id": [r["id"] for r in requests],
            "query": [r["query"] for r in requests],
            "chatHistory": pa.array([r.get("chatHistory") for r in requests], pa.list_(MESSAGE)),
        }
    )
    rows = sluice.route_arrow(table, sluice.Router()).to_pylist()
    for i, (row, line) in enumerate(zip(rows, printed)):
        expected = json.loads(line)
        if row["error"] is not None:
            assert expected == {"id": i, "line": i + 1, "error": row["error"]}
        else:
            got = {k: row[k] for k in ("id", "domain", "blockedContent", "safety", "usage")}
            assert got == expected


def test_record_batch_in_record_batch_out_and_other_columns_pass_through():
    b = batch([HI, HI], id=pa.array(["a", "b"]), score=pa.array([1.5, 2.5]))
    out = sluice.trim_arrow(b)
    assert isinstance(out, pa.RecordBatch)
    assert out.schema.names == ["messages", "id", "score", "report", "error"]
    assert out.column("id") == b.column("id")
    assert out.column("score") == b.column("score")
    assert out.column("messages").to_pylist() == [HI, HI]
    assert out.column("error").to_pylist() == [None, None]
    assert out.column("report").to_pylist()[0]["counts"] == [6]


def test_nulls_and_bad_rows_get_an_error_while_the_others_go_on():
    rows = [
        HI,
        None,  # a null list
        [{"role": "user", "content": None}],  # null content is empty
        [{"role": None, "content": "hi"}],
        [{"role": "robot", "content": "hi"}],
        HI,
        HI,
        [],
        [None],
        HI,
    ]
    b = batch(
        rows,
        max_tokens=pa.array([None, None, None, None, None, 0, None, None, None, 4096]),
        model=pa.array([None, None, None, None, None, None, "no-such-model", None, None, "HCX-005"]),
    )
    out = sluice.trim_arrow(b).to_pylist()
    codes = [r["error"]["code"] if r["error"] else None for r in out]
    assert codes == [None, "40001", None, "40001", "40001", "40001", "40080", "40001", "40001", None]
    messages = [r["error"]["message"] if r["error"] else None for r in out]
    assert messages[1] == "invalid parameter: messages: null"
    assert messages[3] == "invalid parameter: messages[0].role: null"
    assert messages[4].startswith("invalid parameter: messages[0].role: unknown role \"robot\"")
    assert messages[5] == "invalid parameter: maxTokens must be between 1 and 4096, got 0"
    assert messages[6].startswith("model not found: no-such-model")
    assert messages[7] == "invalid parameter: messages must not be empty"
    assert messages[8] == "invalid parameter: messages[0]: null"
    assert out[2]["messages"] == [{"role": "user", "content": None}]
    assert out[2]["report"]["tokensAfter"] == sluice.trim([{"role": "user", "content": ""}])["report"]["tokensAfter"]
    assert out[9]["report"]["maxTokens"] == 4096 and out[9]["report"]["limit"] > 4096
    for r in out:
        assert (r["error"] is None) == (r["report"] is not None) == (r["messages"] is not None)


def test_trimming_keeps_system_messages_and_a_suffix_of_turns():
    history = [{"role": "system", "content": "Answer briefly."}]
    for i in range(200):
        history += [{"role": "user", "content": f"질문 {i} " * 10}, {"role": "assistant", "content": "답 " * 10}]
    b = batch([history, history[:5]], max_tokens=pa.array([500, 500]))
    out = sluice.trim_arrow(b).to_pylist()
    expected = sluice.trim(history, 500)
    assert out[0]["messages"] == expected["messages"]
    assert out[0]["report"] == expected["report"]
    assert out[1]["messages"] == history[:5]


def test_large_and_sliced_inputs():
    large = pa.struct([("role", pa.large_string()), ("content", pa.large_string())])
    rows = [HI, [{"role": "system", "content": "s"}, *HI], HI]
    b = pa.RecordBatch.from_pydict({"messages": pa.array(rows, pa.large_list(large))})
    out = sluice.trim_arrow(b)
    assert out.schema.field("messages").type == pa.large_list(large)
    assert out.column("messages").to_pylist() == rows
    sliced = sluice.trim_arrow(b.slice(1, 2))
    assert sliced.column("messages").to_pylist() == rows[1:]
    view = pa.struct([("role", pa.string_view()), ("content", pa.string_view())])
    b = pa.RecordBatch.from_pydict({"messages": pa.array(rows, pa.list_(view))})
    assert sluice.count_arrow(b).column("total") == sluice.count_arrow(batch(rows)).column("total")


def test_tool_calls_count_as_the_cli_counts_them(cli):
    call = pa.struct(
        [("id", pa.string()), ("type", pa.string()), ("function", pa.struct([("name", pa.string()), ("arguments", pa.string())]))]
    )
    message = pa.struct(
        [
            ("role", pa.string()),
            ("content", pa.string()),
            ("name", pa.string()),
            ("tool_calls", pa.list_(call)),
            ("tool_call_id", pa.string()),
        ]
    )
    rows = [
        [
            {"role": "user", "content": "서울 날씨?"},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Seoul"}'}}]},
            {"role": "tool", "content": "23°C", "tool_call_id": "c1"},
            {"role": "assistant", "content": "맑아요.", "tool_calls": [{"id": "c2", "type": None, "function": {"name": "f", "arguments": None}}]},
            {"role": "user", "content": "고마워", "name": "kim"},
        ]
    ] * 3
    table = pa.table({"messages": pa.array(rows, pa.list_(message)), "max_tokens": [100, 4060, 4075]})
    requests = []
    for r, max_tokens in zip(rows, [100, 4060, 4075]):
        messages = []
        for m in r:
            m = {k: v for k, v in m.items() if v is not None}
            if "tool_calls" in m:
                m["tool_calls"] = [
                    {"id": c["id"], "function": {k: v for k, v in c["function"].items() if v is not None}} for c in m["tool_calls"]
                ]
            messages.append(m)
        requests.append({"maxTokens": max_tokens, "messages": messages})
    printed = run_cli(cli, ["trim", "--jsonl"], jsonl(requests)).stdout.decode().splitlines()
    out = sluice.trim_arrow(table).to_pylist()
    for row, line in zip(out, printed):
        expected = json.loads(line)
        assert row["report"] == expected.get("report"), line
        assert len(row["messages"] or []) == len(expected.get("messages", []))
    assert out[1]["messages"][0]["tool_calls"] is None and out[0]["messages"][1]["tool_calls"][0]["id"] == "c1"
    printed = run_cli(cli, ["count", "--jsonl"], jsonl(requests)).stdout.decode().splitlines()
    counted = sluice.count_arrow(table).to_pylist()
    assert [r["counts"] for r in counted] == [[m["count"] for m in json.loads(line)["messages"]] for line in printed]


def test_tables_with_many_chunks_and_empty_tables():
    table = pa.concat_tables([pa.Table.from_batches([batch([HI] * n)]) for n in (3, 0, 5)])
    out = sluice.trim_arrow(table)
    assert out.num_rows == 8
    empty = sluice.trim_arrow(table.slice(0, 0))
    assert empty.num_rows == 0 and "report" in empty.schema.names
    assert sluice.count_arrow(table.slice(0, 0)).num_rows == 0


def test_a_model_object_and_its_profiles(tmp_path):
    profiles = tmp_path / "p.toml"
    profiles.write_text('[profiles.tiny]\ntokenizer = "cl100k_base"\ncontext_limit = 40\nmax_output = 20\n')
    tiny = sluice.Model("tiny", profiles=profiles)
    b = batch([HI * 3, HI], model=pa.array([None, "tiny"]), max_tokens=pa.array([20, 20], pa.int32()))
    out = sluice.trim_arrow(b, model=tiny).to_pylist()
    assert out[0]["report"]["limit"] == 40 and out[1]["report"]["limit"] == 40


def test_schema_errors_are_value_errors():
    with pytest.raises(ValueError, match="no messages column"):
        sluice.trim_arrow(pa.RecordBatch.from_pydict({"x": [1]}))
    with pytest.raises(ValueError, match="column messages must be a list"):
        sluice.trim_arrow(pa.RecordBatch.from_pydict({"messages": ["hi"]}))
    with pytest.raises(ValueError, match="have no role"):
        sluice.trim_arrow(pa.RecordBatch.from_pydict({"messages": [[{"content": "x"}]]}))
    with pytest.raises(ValueError, match="already has a column report"):
        sluice.trim_arrow(batch([HI], report=pa.array([1])))
    with pytest.raises(ValueError, match="max_tokens must hold"):
        sluice.trim_arrow(batch([HI], max_tokens=pa.array(["1"])))
    with pytest.raises(ValueError, match="tool_calls must be a list of structs with id and function"):
        calls = pa.struct([("role", pa.string()), ("content", pa.string()), ("tool_calls", pa.list_(pa.string()))])
        sluice.trim_arrow(pa.RecordBatch.from_pydict({"messages": pa.array([[{"role": "user", "content": "x", "tool_calls": []}]], pa.list_(calls))}))
    with pytest.raises(ValueError, match="threads must be at least 1"):
        sluice.trim_arrow(batch([HI]), threads=0)
    with pytest.raises(TypeError):
        sluice.trim_arrow([HI])
    with pytest.raises(sluice.UnknownModelError):
        sluice.trim_arrow(batch([HI]), model="nope")
    with pytest.raises(ValueError, match="no query column"):
        sluice.route_arrow(batch([HI]))
