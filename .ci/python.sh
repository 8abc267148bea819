#!/usr/bin/env bash
# The Python package (python/): lints its crate, builds the abi3 wheel with
# maturin in a fresh venv, installs it there and runs the pytest suite, whose
# results are compared with the `sluice` binary given (default: the release
# build) and whose Ray Data test starts a real local Ray cluster.
# Usage: .ci/python.sh [SLUICE_BIN]      (maturin, pyarrow, pytest and Ray come from PyPI)
set -euo pipefail
cd "$(dirname "$0")/.."

bin="$(realpath "${1:-${CARGO_TARGET_DIR:-target}/release/sluice}")"
target="${CARGO_TARGET_DIR:-target}"

# No --locked for this crate: python/Cargo.lock pins pyo3, arrow and the rest,
# but the workspace crates it links change their dependencies without knowing
# of it, and cargo then adds their new ones to the lock file (and only them).
echo "== python: cargo fmt and clippy (the crate is outside the workspace)"
cargo fmt --manifest-path python/Cargo.toml -- --check
cargo clippy --manifest-path python/Cargo.toml --all-targets -- -D warnings

echo "== python: the wheel, built in a fresh venv"
venv="${TMPDIR:-/tmp}/sluice-python-venv"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "maturin>=1.9,<2" "pyarrow>=14" pytest "ray[data]"
wheels="$target/python-wheels"
rm -rf "$wheels"
"$venv/bin/maturin" build --release --manifest-path python/Cargo.toml --out "$wheels"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-index --find-links "$wheels" sluice

echo "== python: pytest (every function and error code, Arrow batches, Ray Data on 100,000 conversations)"
SLUICE_BIN="$bin" "$venv/bin/pytest" -q -p no:cacheprovider python/tests
