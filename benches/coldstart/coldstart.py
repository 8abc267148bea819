"""Whole-process wall time and CPU time of short `sluice` runs, two builds side by side.

Every round runs each case once with each binary, in alternating order, so that
both builds see the same machine load; the report gives medians and the p90 over
the rounds. An empty run (`--version`) is measured the same way: it is the cost
of starting the process at all, which no change to sluice can remove. CPU time
(user + system, from `wait4`) is reported next to wall time: on a machine busy
with other work, wall time includes waiting for a core, CPU time does not.

Usage: python3 coldstart.py OLD_BINARY NEW_BINARY [ROUNDS]
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

MESSAGE = (
    '{"messages":[{"role":"system","content":"Answer in Korean."},'
    '{"role":"user","content":"안녕하세요, 내일 서울의 강수 예보 알려줘. What should I wear?"}]}\n'
)


def cases(request):
    return [
        ("empty run (--version)", ["--version"]),
        ("count, cl100k_base", ["count", "--model", "cl100k", request]),
        ("count, o200k_base", ["count", "--model", "o200k", request]),
        ("trim, HCX-003 (cl100k_base)", ["trim", request]),
        ("trim, o200k_base", ["trim", "--model", "o200k", request]),
    ]


def run_once(binary, args):
    """Runs `binary args`; returns (wall ms, CPU ms, stdout)."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter_ns()
        child = subprocess.Popen([binary, *args], stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter_ns() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            sys.exit(f"{binary} {' '.join(args)} failed with {child.returncode}")
        out.seek(0)
        cpu = (usage.ru_utime + usage.ru_stime) * 1e3
        return elapsed / 1e6, cpu, out.read()


def main():
    old, new = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 60
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(MESSAGE)
        request = f.name
    try:
        table = cases(request)
        # Both builds must print the same answer before anything is timed.
        for name, args in table[1:]:
            a, b = run_once(old, args)[2], run_once(new, args)[2]
            if a != b:
                sys.exit(f"{name}: outputs differ\nold: {a!r}\nnew: {b!r}")
        times = {(name, which): [] for name, _ in table for which in ("old", "new")}
        for r in range(rounds):
            order = [("old", old), ("new", new)] if r % 2 == 0 else [("new", new), ("old", old)]
            for name, args in table:
                for which, binary in order:
                    times[(name, which)].append(run_once(binary, args)[:2])
    finally:
        os.unlink(request)

    def p90(xs):
        return sorted(xs)[int(0.9 * (len(xs) - 1))]

    print(f"{rounds} rounds, old = {old}, new = {new}, load average {os.getloadavg()[0]:.2f}")
    print("| run | old wall, median (p90) | new wall, median (p90) | new / old | old CPU | new CPU |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, _ in table:
        o, n = times[(name, "old")], times[(name, "new")]
        ow, nw = [t[0] for t in o], [t[0] for t in n]
        mo, mn = statistics.median(ow), statistics.median(nw)
        co, cn = statistics.median(t[1] for t in o), statistics.median(t[1] for t in n)
        print(
            f"| {name} | {mo:.2f} ms ({p90(ow):.2f}) | {mn:.2f} ms ({p90(nw):.2f}) "
            f"| {mn / mo:.2f} | {co:.2f} ms | {cn:.2f} ms |"
        )


if __name__ == "__main__":
    main()
