#!/usr/bin/env python3
"""Old build against new build, side by side in one run, alternating.

usage: compare.py OLD_SLUICE NEW_SLUICE OLD_BENCH NEW_BENCH [ROUNDS]

- `sluice route "..."` with the embedded sample router, whole process, wall
  time: ROUNDS x 20 runs of each binary, alternating, with an empty run
  (`sluice --version`) of each as the floor; median and p90.
- The criterion bench `route` (crates/router/benches/route.rs) of each build,
  alternating, ROUNDS times: `build/50x(20+20+10)` and `route/query`.

The bench binaries are the `target/release/deps/route-*` executables that
`cargo bench -p sluice-router --bench route --no-run` prints; keep a copy of
the old one before rebuilding.
"""

import os
import re
import statistics
import subprocess
import sys
import time

QUERY = "내일 부산 날씨 어때? 우산 챙겨야 할까"


def wall(cmd):
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - start) * 1e3


def summary(samples):
    s = sorted(samples)
    return f"median {statistics.median(s):6.2f} ms, p90 {s[int(len(s) * 0.9)]:6.2f} ms"


def bench(binary):
    out = subprocess.run(
        [binary, "--bench", "route/query$|build", "--warm-up-time", "1",
         "--measurement-time", "4", "--noplot"],
        capture_output=True, text=True, check=True, cwd="/tmp",
    ).stdout
    times = re.findall(r"^(\S+)\s+time:\s+\[\S+ \S+ (\S+) (\S+)", out, re.M)
    return {name: f"{value} {unit}" for name, value, unit in times}


def main():
    old, new, old_bench, new_bench = (os.path.abspath(a) for a in sys.argv[1:5])
    rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 5
    runs = {k: [] for k in ("old route", "new route", "old empty", "new empty")}
    for _ in range(rounds * 20):
        for name, binary in (("old", old), ("new", new)):
            runs[f"{name} route"].append(wall([binary, "route", QUERY]))
            runs[f"{name} empty"].append(wall([binary, "--version"]))
    for name, samples in runs.items():
        print(f"{name:10} {summary(samples)} ({len(samples)} runs)")
    for r in range(rounds):
        for name, binary in (("old", old_bench), ("new", new_bench)):
            print(f"round {r + 1} {name}: {bench(binary)}")


if __name__ == "__main__":
    main()
