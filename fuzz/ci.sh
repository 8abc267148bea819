#!/usr/bin/env bash
# The CI fuzz step (.ci/run calls it): builds every target in fuzz/ and runs
# each for FUZZ_SECONDS (default 20) from the committed seeds. Needs a nightly
# toolchain; without one it prints a SKIPPED line and succeeds. cargo-fuzz comes
# from crates.io when missing. The long campaign is in fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")"
secs="${FUZZ_SECONDS:-20}"

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz: SKIPPED: no nightly toolchain (rustup toolchain install nightly enables this step)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo +nightly install cargo-fuzz --locked
fi

start=$(date +%s)
# -s none: the crates forbid unsafe code, so AddressSanitizer finds nothing
# the Rust checks do not, and without it a build is faster and runs ~2x more
# inputs. Debug assertions and overflow checks stay on (cargo fuzz's default).
cargo +nightly fuzz build -s none
echo "fuzz: built in $(( $(date +%s) - start )) s"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for target in $(cargo +nightly fuzz list); do
    mkdir -p "corpus/$target"
    # The seeds are read, new inputs go to corpus/ (git-ignored); a crash is
    # written to artifacts/$target/ and fails the step.
    rc=0
    cargo +nightly fuzz run -s none "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || rc=$?
    echo "fuzz: $target: $(grep -E '^stat::number_of_executed_units' "$log" | tr -s ' ' | cut -d' ' -f2) runs in ${secs} s"
    if [ "$rc" -ne 0 ]; then
        tail -n 60 "$log"
        echo "fuzz: $target FAILED (exit $rc); reproduce with: cd fuzz && cargo +nightly fuzz run -s none $target artifacts/$target/<file>"
        exit 1
    fi
done
echo "fuzz: all targets ran ${secs} s each without a crash ($(( $(date +%s) - start )) s in all)"
