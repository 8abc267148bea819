#!/usr/bin/env bash
# Batch scaling and memory of `sluice trim --jsonl`: the same generated file with
# 1, 2, ... threads (up to the core count), wall time and peak RSS for each.
#
# usage: benches/batch/run.sh [SIZE_MB]   (default 1024)
set -euo pipefail
cd "$(dirname "$0")/../.."
size=${1:-1024}
data=target/batch/chats-${size}mb.jsonl
mkdir -p target/batch
cargo build --release --quiet
[ -f "$data" ] || python3 benches/batch/gen.py "$data" "$size"
cores=$(nproc)
printf '| threads | wall s | MB/s | lines/s | peak RSS MiB | speed-up |\n|---:|---:|---:|---:|---:|---:|\n'
base=""
for t in 1 2 4 8 16 32; do
  [ "$t" -le "$cores" ] || break
  /usr/bin/time -f '%e %M' -o target/batch/time.txt \
    target/release/sluice trim --jsonl --no-progress --threads "$t" "$data" > target/batch/out.jsonl 2> target/batch/summary.txt
  read -r wall rss_kb < target/batch/time.txt
  lines=$(wc -l < target/batch/out.jsonl)
  mb=$(du -m "$data" | cut -f1)
  base=${base:-$wall}
  awk -v t="$t" -v w="$wall" -v r="$rss_kb" -v l="$lines" -v m="$mb" -v b="$base" \
    'BEGIN { printf "| %d | %.2f | %.1f | %.0f | %.0f | %.2fx |\n", t, w, m / w, l / w, r / 1024, b / w }'
done
tail -1 target/batch/summary.txt
