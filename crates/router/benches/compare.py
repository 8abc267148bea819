#!/usr/bin/env python3
"""Old build against new build, side by side in one run, alternating.

usage: compare.py OLD_SLUICE NEW_SLUICE OLD_BENCH NEW_BENCH [ROUNDS]

- `sluice route "..."` with the embedded sample router, whole process:
  ROUNDS x 20 runs of each binary, alternating which goes first, with an empty
  run (`sluice --version`) of each as the floor; wall time (median, p90) and
  CPU time (user + system, median). Both builds must print the same answer.
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


def run(cmd):
    """Wall and CPU (user + system, from wait4) milliseconds of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = (time.perf_counter() - start) * 1e3
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{cmd} failed")
    return wall, (usage.ru_utime + usage.ru_stime) * 1e3


def summary(samples):
    walls = sorted(w for w, _ in samples)
    cpus = sorted(c for _, c in samples)
    return (
        f"wall median {statistics.median(walls):6.2f} ms, p90 {walls[int(len(walls) * 0.9)]:6.2f} ms; "
        f"CPU median {statistics.median(cpus):6.2f} ms"
    )


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
    outputs = {
        subprocess.run([b, "route", QUERY], capture_output=True, check=True).stdout
        for b in (old, new)
    }
    if len(outputs) != 1:
        sys.exit("the two builds route the query differently")
    for i in range(rounds * 20):
        # Alternate which build goes first.
        order = (("old", old), ("new", new)) if i % 2 == 0 else (("new", new), ("old", old))
        for name, binary in order:
            runs[f"{name} route"].append(run([binary, "route", QUERY]))
            runs[f"{name} empty"].append(run([binary, "--version"]))
    for name, samples in runs.items():
        print(f"{name:10} {summary(samples)} ({len(samples)} runs)")
    for r in range(rounds):
        for name, binary in (("old", old_bench), ("new", new_bench)):
            print(f"round {r + 1} {name}: {bench(binary)}")


if __name__ == "__main__":
    main()
