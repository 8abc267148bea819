#!/usr/bin/env python3
"""The sluice Python package side by side with what Python users would pick
instead, in one run (issue 14):

- ``sluice.trim`` against LangChain ``trim_messages`` (strategy="last",
  include_system=True, start_on="human") whose token counter counts exactly
  like sluice's HCX-003 profile (tiktoken cl100k_base, ChatML template), on the
  same 100-turn histories; every kept list is checked to be the same first;
- ``sluice.count`` / ``Model.count_text`` against ``tiktoken`` on mixed
  Korean/English text, every count checked first;
- ``sluice.trim_arrow`` throughput on 1 and 2 threads over a pyarrow table of
  distinct conversations, checked row by row against ``sluice.trim`` first.

Run through python/benches/run.sh (installs the wheel and the peers, generates
the data with benches/compare/gen_data.py). Prints a Markdown table and writes it
to OUT_DIR/results.md; exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "benches", "compare"))

# The same reference counter, cache preparation and timing as the Rust-level
# comparison (benches/compare), so the figures are comparable.
from compare import MARKERS_PER_MESSAGE, ROLE, fmt_time, prepare_tiktoken_cache, time_runs  # noqa: E402
from gen_data import conversation  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(REPO, "target", "compare"))
    ap.add_argument("--out", default=os.path.join(REPO, "target", "python-bench"))
    ap.add_argument("--case-seconds", type=float, default=1.0)
    ap.add_argument("--arrow-rows", type=int, default=4000)
    ap.add_argument("--cli", help="a sluice binary: times `trim --jsonl` on the same rows, for reference")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    prepare_tiktoken_cache(REPO, os.path.join(args.data, "tiktoken-cache"))
    import langchain_core
    import pyarrow as pa
    import tiktoken
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, trim_messages

    import sluice

    with open(os.path.join(args.data, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    limit = manifest["context_limit"]
    with open(os.path.join(args.data, "conv100.jsonl"), encoding="utf-8") as f:
        histories = [json.loads(line)["messages"] for line in f if line.strip()]
    with open(os.path.join(args.data, manifest["corpus"]), encoding="utf-8") as f:
        corpus = f.read()
    lines = corpus.splitlines()

    enc = tiktoken.get_encoding("cl100k_base")

    def message_tokens(role: str, content: str) -> int:
        return MARKERS_PER_MESSAGE + len(enc.encode_ordinary(f"{role}\n{content}")) + len(enc.encode_ordinary("\n"))

    reply_tokens = 1 + len(enc.encode_ordinary("assistant\n"))

    def token_counter(messages) -> int:
        return sum(message_tokens(ROLE[m.type], m.content) for m in messages)

    lc_class = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}

    def lc_trim(lc_messages, max_tokens: int):
        return trim_messages(
            lc_messages,
            strategy="last",
            include_system=True,
            start_on="human",
            max_tokens=limit - max_tokens - reply_tokens,
            token_counter=token_counter,
        )

    # No count cache: every call counts afresh, as tiktoken and LangChain do.
    hcx = sluice.Model("HCX-003", cache=0)
    cl100k = sluice.Model("cl100k", cache=0)
    cached = sluice.Model("HCX-003")
    mismatches = []
    rows = []

    # ---- trimming: check, then time ----
    lc_histories = [[lc_class[m["role"]](content=m["content"], id=str(i)) for i, m in enumerate(h)] for h in histories]
    for max_tokens in manifest["max_tokens"]:
        for h, lc in zip(histories, lc_histories):
            ours = [next(i for i, m in enumerate(h) if m is k) for k in hcx.trim(h, max_tokens)["messages"]]
            theirs = [int(m.id) for m in lc_trim(lc, max_tokens)]
            if ours != theirs:
                mismatches.append(f"trim maxTokens={max_tokens}: sluice kept {ours[:5]}..., LangChain {theirs[:5]}...")
        n = len(histories)
        ours_s, _ = time_runs(lambda: [hcx.trim(h, max_tokens) for h in histories], args.case_seconds, 5)
        cached_s, _ = time_runs(lambda: [cached.trim(h, max_tokens) for h in histories], args.case_seconds, 5)
        theirs_s, _ = time_runs(lambda: [lc_trim(lc, max_tokens) for lc in lc_histories], args.case_seconds, 3)
        rows.append(
            (
                f"trim, {n} × 100-turn histories, maxTokens {max_tokens}",
                f"{fmt_time(ours_s / n)} ({fmt_time(cached_s / n)} with its cache)",
                f"LangChain `trim_messages` {fmt_time(theirs_s / n)}",
                f"**{theirs_s / ours_s:,.0f}×** ({theirs_s / cached_s:,.0f}×)",
                "≥ 100×" if max_tokens == manifest["max_tokens"][0] else "",
            )
        )

    # ---- counting: check, then time ----
    for h in histories:
        ours = [m["count"] for m in hcx.count(h)["messages"]]
        theirs = [message_tokens(m["role"], m["content"]) for m in h]
        if ours != theirs:
            mismatches.append("per-message counts differ from tiktoken's")
    if [cl100k.count_text(line) for line in lines] != [len(enc.encode_ordinary(line)) for line in lines]:
        mismatches.append("text counts differ from tiktoken's")
    if cl100k.count_text(corpus) != len(enc.encode_ordinary(corpus)):
        mismatches.append("the corpus count differs from tiktoken's")
    mb = len(corpus.encode()) / 1e6
    ours_s, _ = time_runs(lambda: [cl100k.count_text(line) for line in lines], args.case_seconds, 5)
    theirs_s, _ = time_runs(lambda: [len(enc.encode_ordinary(line)) for line in lines], args.case_seconds, 3)
    rows.append(
        (
            f"count {len(lines):,} texts ({mb:.1f} MB), one call each",
            f"{fmt_time(ours_s)} ({mb / ours_s:.0f} MB/s)",
            f"tiktoken {fmt_time(theirs_s)} ({mb / theirs_s:.0f} MB/s)",
            f"**{theirs_s / ours_s:.1f}×**",
            "≥ 5×",
        )
    )
    ours_s, _ = time_runs(lambda: cl100k.count_text(corpus), args.case_seconds, 5)
    theirs_s, _ = time_runs(lambda: enc.encode_ordinary(corpus), args.case_seconds, 3)
    rows.append((f"count one {mb:.1f} MB text", fmt_time(ours_s), f"tiktoken {fmt_time(theirs_s)}", f"**{theirs_s / ours_s:.1f}×**", "≥ 5×"))
    n_messages = sum(len(h) for h in histories)
    ours_s, _ = time_runs(lambda: [hcx.count(h) for h in histories], args.case_seconds, 5)
    theirs_s, _ = time_runs(
        lambda: [[message_tokens(m["role"], m["content"]) for m in h] for h in histories], args.case_seconds, 3
    )
    rows.append(
        (
            f"`sluice.count`, {len(histories)} histories ({n_messages:,} messages, template included)",
            fmt_time(ours_s),
            f"tiktoken per message {fmt_time(theirs_s)}",
            f"**{theirs_s / ours_s:.1f}×**",
            "≥ 5×",
        )
    )

    # ---- Arrow batches: check, then time on 1 and 2 threads ----
    rng = random.Random(14)
    requests = [conversation(rng, rng.randint(1, 40))["messages"] for _ in range(args.arrow_rows)]
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    table = pa.table({"messages": pa.array(requests, pa.list_(message))})
    text_mb = sum(len(m["content"].encode()) for r in requests for m in r) / 1e6
    out = sluice.trim_arrow(table, max_tokens=1024, model=hcx).to_pylist()
    for i in range(0, len(requests), 97):
        want = sluice.trim(requests[i], 1024, hcx)
        if out[i]["messages"] != want["messages"] or out[i]["report"] != want["report"]:
            mismatches.append(f"trim_arrow row {i} differs from sluice.trim")
    speeds = {}
    for threads in (1, 2):
        seconds, _ = time_runs(lambda: sluice.trim_arrow(table, max_tokens=1024, model=hcx, threads=threads), args.case_seconds, 3)
        speeds[threads] = seconds
        rows.append(
            (
                f"`trim_arrow`, {len(requests):,} conversations of 1–40 turns ({text_mb:.0f} MB of text), {threads} thread{'s' if threads > 1 else ''}",
                f"{fmt_time(seconds)}: {len(requests) / seconds:,.0f} rows/s, {text_mb / seconds:.0f} MB/s",
                "—",
                f"{speeds[1] / seconds:.2f}× one thread",
                "",
            )
        )

    if args.cli:
        # The command line on the same rows and threads: what this machine gives
        # two threads at the moment (it is shared), against which to read the above.
        lines_in = "".join(json.dumps({"maxTokens": 1024, "messages": r}, ensure_ascii=False) + "\n" for r in requests)
        cli_speeds = {}
        for threads in (1, 2):
            command = [args.cli, "trim", "--jsonl", "--cache", "0", "--threads", str(threads)]

            def run_cli():
                subprocess.run(command, input=lines_in.encode(), capture_output=True, check=True)

            cli_speeds[threads], _ = time_runs(run_cli, args.case_seconds, 3)
            rows.append(
                (
                    f"for reference: `sluice trim --jsonl --threads {threads}` on the same rows",
                    f"{fmt_time(cli_speeds[threads])}: {len(requests) / cli_speeds[threads]:,.0f} rows/s",
                    "—",
                    f"{cli_speeds[1] / cli_speeds[threads]:.2f}× one thread",
                    "",
                )
            )

    header = (
        f"Run of {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
        f"sluice (wheel) vs langchain-core {langchain_core.__version__}, tiktoken {tiktoken.__version__}, "
        f"pyarrow {pa.__version__}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}."
    )
    table_md = "| work | sluice | peer | sluice is | target |\n|---|---:|---|---:|---|\n" + "\n".join(
        "| " + " | ".join(r) + " |" for r in rows
    )
    report = f"{header}\n\n{table_md}\n"
    print(report)
    with open(os.path.join(args.out, "results.md"), "w", encoding="utf-8") as f:
        f.write(report)
    if mismatches:
        print("MISMATCHES:\n" + "\n".join(mismatches), file=sys.stderr)
        return 1
    print("every count and every trimming result was identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
