#!/usr/bin/env bash
# The Python package side by side with LangChain trim_messages and tiktoken, and
# Arrow batch throughput on 1 and 2 threads (issue 14). One command from a clone:
#
#     python/benches/run.sh
#
# Builds and installs the wheel and the peers (pinned as in benches/compare) into
# target/python-bench-venv, generates the data with benches/compare/gen_data.py,
# then measures offline (with the release `sluice` binary, if built, as a
# reference for batch throughput). Exits non-zero if any result differs.
# Environment: PYTHON (default python3), CASE_SECONDS (default 1.0).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
VENV=target/python-bench-venv
DATA=target/compare
PYTHON=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r benches/compare/requirements.txt "pyarrow>=14"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps ./python
if [ ! -f "$DATA/manifest.json" ]; then
    "$VENV/bin/python" benches/compare/gen_data.py "$DATA"
fi
cli=()
bin="${CARGO_TARGET_DIR:-target}/release/sluice"
[ -x "$bin" ] && cli=(--cli "$bin")
"$VENV/bin/python" python/benches/bench.py --data "$DATA" --case-seconds "${CASE_SECONDS:-1.0}" "${cli[@]}"
