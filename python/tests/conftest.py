"""Shared fixtures: the `sluice` binary to compare against, and generated corpora."""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]

WORDS = [
    "서울", "날씨", "미세먼지", "부산", "맛집", "내일", "강수", "예보", "알려줘", "그럼",
    "hello", "world", "the", "weather", "is", "nice", "price", "coupon", "🙂", "<|im_end|>",
]


def cli_path() -> Optional[Path]:
    """The `sluice` binary: $SLUICE_BIN, else the release build, else the debug one."""
    if os.environ.get("SLUICE_BIN"):
        return Path(os.environ["SLUICE_BIN"])
    for profile in ("release", "debug"):
        for target in (os.environ.get("CARGO_TARGET_DIR"), REPO / "target"):
            if target:
                path = Path(target) / profile / "sluice"
                if path.is_file():
                    return path
    return None


@pytest.fixture(scope="session")
def cli() -> Path:
    path = cli_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("no sluice binary: build it (cargo build --release) or set SLUICE_BIN")
        pytest.skip("no sluice binary to compare against (set SLUICE_BIN)")
    return path


def run_cli(cli: Path, args: List[str], stdin: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(cli), *args], input=stdin.encode(), capture_output=True, check=False
    )


def text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def conversation(rng: random.Random, turns: int, words: int) -> List[Dict[str, Any]]:
    """A chat history: maybe a system message, then user/assistant turns."""
    messages: List[Dict[str, Any]] = []
    if rng.random() < 0.5:
        messages.append({"role": "system", "content": text(rng, 5)})
    for _ in range(turns):
        messages.append({"role": "user", "content": text(rng, rng.randint(1, words))})
        messages.append({"role": "assistant", "content": text(rng, rng.randint(1, words))})
    return messages


def corpus(n: int, seed: int = 7, turns: int = 30, words: int = 60) -> List[Dict[str, Any]]:
    """`n` trim requests with ids, some per-row `maxTokens` and `model` (a few
    invalid), some histories that must be trimmed and a few that cannot fit."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        request: Dict[str, Any] = {"id": i, "messages": conversation(rng, rng.randint(1, turns), words)}
        r = rng.random()
        if r < 0.2:
            request["maxTokens"] = rng.choice([1, 50, 500, 2000, 4000, 4096, 0, -1, 5000])
        if rng.random() < 0.1:
            request["model"] = rng.choice(["HCX-005", "o200k", "cl100k", "no-such-model", "HCX-DASH-001"])
        if rng.random() < 0.01:
            request["messages"] = []
        out.append(request)
    return out


def jsonl(requests: List[Dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in requests)


def arrow_table(requests: List[Dict[str, Any]]):
    """The requests as an Arrow table: id, messages, max_tokens, model columns."""
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa.table(
        {
            "id": pa.array([r.get("id") for r in requests], pa.int64()),
            "messages": pa.array([r["messages"] for r in requests], pa.list_(message)),
            "max_tokens": pa.array([r.get("maxTokens") for r in requests], pa.int64()),
            "model": pa.array([r.get("model") for r in requests], pa.string()),
        }
    )


def trimmed_row_as_cli(row: Dict[str, Any], line: int) -> Dict[str, Any]:
    """A row of `trim_arrow`'s output as the object `sluice trim --jsonl` prints."""
    out: Dict[str, Any] = {}
    if row.get("id") is not None:
        out["id"] = row["id"]
    if row["error"] is not None:
        out["line"] = line
        out["error"] = row["error"]
        return out
    out["messages"] = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    out["report"] = row["report"]
    return out
