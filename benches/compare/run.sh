#!/usr/bin/env bash
# Side-by-side comparison of sluice with LangChain trim_messages, tiktoken and
# the tokenizers Python package (issue 5). One command from a clean clone:
#
#     benches/compare/run.sh
#
# Network (PyPI, crates.io) is used only by the setup steps 1-2; the measuring
# steps run offline. Exits non-zero if any count or trimming result differs
# between sluice and the reference. See benches/compare/README.md.
#
# Environment: PYTHON (default python3, >= 3.10), RUST_CASE_SECONDS (default
# 0.1) and PY_CASE_SECONDS (default 0.3): time budget per timed case.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
HERE=benches/compare
VENV=target/compare-venv
DATA=target/compare
BIN_DIR=${CARGO_TARGET_DIR:-target}/release
PYTHON=${PYTHON:-python3}

step() { printf '\n==> %s\n' "$*"; }

step "1/5 Python peers in $VENV"
"$PYTHON" - <<'PY' || { echo "error: $PYTHON must be Python >= 3.10" >&2; exit 2; }
import sys
sys.exit(0 if sys.version_info >= (3, 10) else 1)
PY
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha256"
want=$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
    echo "$want" > "$stamp"
else
    echo "already installed ($HERE/requirements.txt unchanged)"
fi

step "2/5 cargo build --release --bin sluice --example compare_sluice"
cargo build --release --bin sluice --example compare_sluice

step "3/5 data in $DATA"
mkdir -p "$DATA"
"$VENV/bin/python" "$HERE/gen_data.py" "$DATA"
"$BIN_DIR/sluice" tokenizer export cl100k_base -o "$DATA/cl100k_base.tokenizer.json"
ls -l "$DATA"

step "4/5 + 5/5 measure, check, compare (offline)"
HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
    "$VENV/bin/python" "$HERE/compare.py" \
    --repo . \
    --data "$DATA" \
    --sluice-example "$BIN_DIR/examples/compare_sluice" \
    --tokenizer-json "$DATA/cl100k_base.tokenizer.json" \
    --rust-case-seconds "${RUST_CASE_SECONDS:-0.1}" \
    --py-case-seconds "${PY_CASE_SECONDS:-0.3}"
