"""A class's export feeds the Python package as it is: `sluice admin export`
JSONL read with pyarrow and trimmed with `sluice.trim_arrow`, and each line's
messages with `sluice.trim` (issue 25, point 6)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.json as pajson
import sluice

from conftest import REPO, run_cli

sys.path.insert(0, str(REPO / "tests" / "python"))
from fake_upstream import FakeUpstream  # noqa: E402


def test_a_class_export_reads_into_trim(cli: Path, tmp_path: Path) -> None:
    fake = FakeUpstream()
    try:
        db = f"sqlite:{tmp_path / 'class.db'}"
        config = tmp_path / "sluice.toml"
        config.write_text(
            f'database = "{db}"\npractice_router = "none"\n'
            + "".join(
                f'\n[models.{m}]\nprovider = "openai"\nbase_url = "{fake.base}/v1"\nmodel = "{m}"\n'
                f'profile = "o200k"\nmax_retries = 0\n'
                for m in ("fast-a", "fast-b")
            ),
            encoding="utf-8",
        )

        def admin(*args: str) -> str:
            out = run_cli(cli, ["admin", "--database", db, *args], "")
            assert out.returncode == 0, out.stderr.decode()
            return out.stdout.decode().strip()

        admin("user", "create", "teacher")
        admin("user", "create", "student")
        class_id = admin("class", "create", "c", "--instructor", "teacher",
                         "--models", "fast-a,fast-b", "--primary", "fast-a")
        admin("class", "add-member", class_id, "student")
        for prompt in ["서울 날씨 알려줘", "And tomorrow?"]:
            out = run_cli(cli, ["practice", "run", prompt, "--class", class_id, "--model", "fast-a",
                                "--model", "fast-b", "--config", str(config), "--user", "student", "--json"], "")
            assert out.returncode == 0, out.stderr.decode()
        export = tmp_path / "class.jsonl"
        admin("export", class_id, "--kind", "results", "--output", str(export))
    finally:
        fake.stop()

    lines = [json.loads(line) for line in export.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 4
    # Each line's messages go straight into sluice.trim.
    for line in lines:
        result = sluice.trim(line["messages"], max_tokens=100)
        assert result["messages"] == line["messages"]
    # The whole file, read by pyarrow, goes into trim_arrow with its ids.
    table = pajson.read_json(str(export))
    trimmed = sluice.trim_arrow(table.select(["id", "messages"]), max_tokens=100)
    rows = trimmed.to_pylist() if isinstance(trimmed, pa.Table) else pa.Table.from_batches([trimmed]).to_pylist()
    assert [r["id"] for r in rows] == [line["id"] for line in lines]
    assert all(r.get("error") is None and r["report"]["tokensAfter"] > 0 for r in rows), rows
