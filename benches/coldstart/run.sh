#!/usr/bin/env bash
# Cold start: whole-process wall time of `sluice count` and `sluice trim` on one
# message, an old build against the current one, alternating in one run.
#
#   benches/coldstart/run.sh OLD_SLUICE_BINARY [ROUNDS]
#
# The new build is this checkout's `cargo build --release`. To get an old build:
#   git worktree add /tmp/sluice-old <commit> && (cd /tmp/sluice-old && cargo build --release)
#   benches/coldstart/run.sh /tmp/sluice-old/target/release/sluice
set -euo pipefail
cd "$(dirname "$0")/../.."
old=${1:?usage: benches/coldstart/run.sh OLD_SLUICE_BINARY [ROUNDS]}
cargo build --release --locked --bin sluice
python3 benches/coldstart/coldstart.py "$old" target/release/sluice "${2:-60}"
