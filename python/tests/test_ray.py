"""Ray Data: a real local Ray cluster trims a generated Parquet dataset of
100,000 conversations with map_batches over Arrow batches, and every row equals
what `sluice trim --jsonl` prints for the same line."""

from __future__ import annotations

import functools
import json
import os
import time

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
ray = pytest.importorskip("ray")

import sluice  # noqa: E402
from conftest import arrow_table, corpus, jsonl, run_cli, trimmed_row_as_cli  # noqa: E402

ROWS = int(os.environ.get("SLUICE_RAY_ROWS", "100000"))


# What the workers run: sluice's own functions (importable there), with one
# thread per Ray task, since Ray runs one task per CPU.
trim_batch = functools.partial(sluice.trim_arrow, max_tokens=300, threads=1)
# A router (like a model) pickles as its id, version and folder.
route_batch = functools.partial(sluice.route_arrow, router=sluice.Router("sample", 1), threads=1)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


def test_ray_data_trims_100k_conversations_like_the_cli(cli, cluster, tmp_path):
    requests = corpus(ROWS, seed=2024, turns=6, words=20)
    for r in requests:
        r.pop("maxTokens", None)  # one limit for all, set by both sides
    parquet = tmp_path / "conversations"
    parquet.mkdir()
    table = arrow_table(requests)
    # Several files, so that Ray reads and trims them in parallel.
    step = (ROWS + 7) // 8
    for k, start in enumerate(range(0, ROWS, step)):
        pq.write_table(table.slice(start, step), parquet / f"part-{k:02d}.parquet")

    started = time.perf_counter()
    printed = run_cli(cli, ["trim", "--jsonl", "--max-tokens", "300"], jsonl(requests))
    cli_seconds = time.perf_counter() - started
    lines = printed.stdout.decode().splitlines()
    assert len(lines) == ROWS

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    started = time.perf_counter()
    ds = ray.data.read_parquet(str(parquet)).map_batches(
        trim_batch, batch_format="pyarrow", batch_size=4096
    )
    out = pa.concat_tables(ds.iter_batches(batch_format="pyarrow", batch_size=None))
    ray_seconds = time.perf_counter() - started
    print(f"\n{ROWS} conversations: CLI {cli_seconds:.1f} s, Ray Data (2 CPUs) {ray_seconds:.1f} s")

    assert out.num_rows == ROWS
    assert out.column("id").to_pylist() == list(range(ROWS)), "rows come back in input order"
    for i, (row, line) in enumerate(zip(out.to_pylist(), lines)):
        assert trimmed_row_as_cli(row, i + 1) == json.loads(line), line
    errors = out.column("error").null_count
    assert errors < ROWS  # some rows failed (bad maxTokens-free models), the rest went on


def test_ray_data_routes_like_the_cli(cli, cluster, tmp_path):
    queries = [
        {"id": r["id"], "query": r["messages"][-2]["content"] if len(r["messages"]) >= 2 else ""}
        for r in corpus(5000, seed=9, turns=2, words=6)
    ]
    path = tmp_path / "queries.parquet"
    pq.write_table(pa.Table.from_pylist(queries), path)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    ds = ray.data.read_parquet(str(path)).map_batches(route_batch, batch_format="pyarrow", batch_size=1000)
    out = pa.concat_tables(ds.iter_batches(batch_format="pyarrow", batch_size=None)).to_pylist()
    printed = run_cli(
        cli, ["route", "--version", "1", "--jsonl", "-"], jsonl(queries)
    ).stdout.decode().splitlines()
    assert len(out) == len(printed) == 5000
    for i, (row, line) in enumerate(zip(out, printed)):
        expected = json.loads(line)
        if row["error"] is not None:
            assert expected == {"id": row["id"], "line": i + 1, "error": row["error"]}
        else:
            assert {k: row[k] for k in ("id", "domain", "blockedContent", "safety", "usage")} == expected
