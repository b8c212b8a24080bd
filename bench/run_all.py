"""Run every benchmark and end with one line per target.

    .venv/bin/python bench/run_all.py [--quick]

Each benchmark runs as its own process (``bench/bench_x.py [--quick]``); its output is shown as it
comes, and its ``target ...`` lines are collected and repeated at the end, exactly in the form
``target <name>: <measured> (goal <goal>) met`` (or ``missed``). A benchmark that crashes or runs out
of time yields ``target <bench>: ... missed``. With --quick every benchmark runs in reduced form (about
6-7 minutes in all: the fleet, memory and bulk runs are paced by real rate limits and real processes);
a hard deadline stops whatever is still running at 9 minutes.
Benchmarks never assert; this script exits 0 either way.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: (script, extra args in quick mode, extra args in full mode); cheapest first
BENCHES: list[tuple[str, list[str], list[str]]] = [
    ("bench_tokens.py", ["--quick"], []),
    ("bench_stampede.py", ["--quick"], []),
    ("bench_ratelimit.py", ["--quick"], []),
    ("bench_overhead.py", ["--quick"], []),
    ("bench_changes.py", ["--quick"], []),
    ("bench_contention.py", ["--quick"], []),
    ("bench_idle.py", ["--quick"], []),
    ("bench_memory.py", ["--quick"], []),
    ("bench_http_load.py", ["--quick"], []),
    ("bench_http_auth.py", ["--quick"], []),
    ("bench_bulk.py", ["--quick"], []),
    ("bench_chaos.py", ["--quick"], []),
    ("bench_soak.py", ["--quick"], []),
    ("bench_cache_backends.py", ["--rounds", "40"], []),
    ("bench_journal.py", ["--quick"], []),
    ("bench_fleet.py", ["--quick"], []),
]
QUICK_DEADLINE = 540.0


def run(script: str, args: list[str], timeout: float) -> tuple[list[str], str | None, float]:
    """Run one benchmark, echo its output; return (target lines, failure or None, seconds)."""
    cmd = [sys.executable, "-u", str(HERE / script), *args]
    print(f"\n######## {' '.join([Path(cmd[0]).name, *cmd[2:]])}", flush=True)
    t0 = time.monotonic()
    targets: list[str] = []
    proc = subprocess.Popen(
        cmd,
        cwd=HERE.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,
    )
    failure = None
    try:
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), True)
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            left = timeout - (time.monotonic() - t0)
            if left <= 0:
                failure = f"timed out after {timeout:.0f} s"
                break
            if not sel.select(timeout=min(left, 1.0)):
                continue
            line = proc.stdout.readline()
            if not line:
                break
            print(line, end="", flush=True)
            if line.startswith("target "):
                targets.append(line.rstrip("\n"))
        sel.close()
        if failure is None:
            code = proc.wait(timeout=max(1.0, timeout - (time.monotonic() - t0)))
            if code != 0:
                failure = f"exited with status {code}"
    except subprocess.TimeoutExpired:
        failure = f"timed out after {timeout:.0f} s"
    finally:
        if proc.poll() is None:  # stop the benchmark and everything it started (its own session)
            try:
                os.killpg(proc.pid, 15)
                proc.wait(5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, 9)
                except ProcessLookupError:
                    pass
                proc.wait(5)
    return targets, failure, time.monotonic() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes; whole run within 9 minutes")
    args = parser.parse_args()
    started = time.monotonic()
    print(
        f"run_all{' --quick' if args.quick else ''}: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {os.cpu_count()} vCPU, "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    deadline = QUICK_DEADLINE if args.quick else 3600.0
    collected: list[str] = []
    timings: list[str] = []
    for script, quick_args, full_args in BENCHES:
        name = script.removeprefix("bench_").removesuffix(".py")
        left = deadline - (time.monotonic() - started)
        if left < 5:
            collected.append(
                f"target {name}: not run, the {deadline:.0f} s budget was used up (goal runs) missed"
            )
            continue
        targets, failure, took = run(script, quick_args if args.quick else full_args, left)
        timings.append(f"{name} {took:.1f} s")
        collected.extend(targets)
        if failure:
            collected.append(f"target {name}: {failure} (goal runs to completion) missed")
    total = time.monotonic() - started
    met = sum(1 for t in collected if t.endswith(" met"))
    print(
        f"\n######## all benchmarks{' (quick)' if args.quick else ''}: {total:.1f} s ({', '.join(timings)}); "
        f"{met} of {len(collected)} targets met",
        flush=True,
    )
    for line in collected:
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
