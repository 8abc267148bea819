"""The README's Python examples, run as written."""

from __future__ import annotations

import re

import pytest

from conftest import REPO, arrow_table, corpus


def python_examples():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_readme_has_the_examples():
    assert len(python_examples()) == 3


@pytest.mark.parametrize("index", range(3))
def test_readme_python_example_runs(index, tmp_path, monkeypatch):
    code = python_examples()[index]
    if "pyarrow" in code or "ray" in code:
        pytest.importorskip("pyarrow")
    if "import ray" in code:
        ray = pytest.importorskip("ray")
        import pyarrow.parquet as pq

        (tmp_path / "conversations").mkdir()
        pq.write_table(arrow_table(corpus(200)), tmp_path / "conversations" / "part-0.parquet")
    monkeypatch.chdir(tmp_path)
    try:
        exec(compile(code, f"README.md python example {index + 1}", "exec"), {})
    finally:
        if "import ray" in code:
            ray.shutdown()
    if "import ray" in code:
        import pyarrow.parquet as pq

        trimmed = pq.read_table(tmp_path / "trimmed")
        assert trimmed.num_rows == 200 and "report" in trimmed.schema.names
