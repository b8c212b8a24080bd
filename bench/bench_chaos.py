"""The chaos property run (issue 19), longer: agents that follow every hint, several seeds.

    .venv/bin/python bench/bench_chaos.py [--quick] [--agents N] [--steps N] [--runs N]
        [--journal sqlite|redis] [--faults SCALE] [--add-pool N]

Each run starts its own sandbox (seeded with the run's seed: its orders and its fault RNG) and drives
``--agents`` agents (default 8, --quick 4) of ``--steps`` steps each (default 60, --quick 30) through
in-process gateways over one journal (a sqlite file, or a private prefix on the local Redis):
twin adds, outside edits, 5xx / drops / holds before and after apply, and one gateway restart
half-way (see ``bench/chaos_agents.py`` for the agents, the faults and the invariants). Three runs
(seeds 1, 2, 3) by default.

Per run it prints the figures (calls, outcomes, OUTCOME_UNKNOWN, calls cut by the restart, reconciled
answers, twins, outside edits, faults fired) and every violation. Targets: 0 acknowledged writes lost,
duplicated or phantom over all runs; OUTCOME_UNKNOWN at most 5% of write calls.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from chaos_agents import GATEWAY_OVERRIDES, Settings, run_chaos
from common import (
    REDIS_URL,
    build_gateway,
    header,
    machine,
    parse_quick,
    sandbox,
    summary,
    target,
    unique_prefix,
)

MAX_UNKNOWN_SHARE = 0.05


async def one_run(settings: Settings, journal: str) -> dict[str, Any]:
    prefix = unique_prefix("chaos")
    with tempfile.TemporaryDirectory() as tmp:
        extra: dict[str, Any] = {
            **GATEWAY_OVERRIDES,
            "journal.backend": journal,
            "journal.path": str(Path(tmp) / "journal.sqlite"),
            "journal.prefix": prefix,
        }
        if journal == "redis":
            extra["journal.redis_url"] = REDIS_URL
        try:
            async with sandbox(rate_limit_enabled=False, seed=settings.seed) as sb:
                result = await run_chaos(settings, sb, lambda: build_gateway(sb, prefix, extra))
        finally:
            if journal == "redis":
                from odmcp.testing import delete_redis_prefix

                delete_redis_prefix(REDIS_URL, prefix)
    print(json.dumps(result.figures), flush=True)
    for v in result.violations:
        print("  VIOLATION", v, flush=True)
    return {**result.figures, "violation_lines": result.violations}


async def main() -> None:
    args = parse_quick(
        __doc__ or "",
        agents=dict(type=int, default=None),
        steps=dict(type=int, default=None),
        runs=dict(type=int, default=3),
        journal=dict(choices=["sqlite", "redis"], default="sqlite"),
        faults=dict(type=float, default=1.0, help="multiplies every fault's share of requests"),
        add_pool=dict(type=int, default=6, help="orders the agents add to and update"),
    )
    agents = args.agents or (4 if args.quick else 8)
    steps = args.steps or (30 if args.quick else 60)
    header(f"chaos run: {agents} agents x {steps} steps, {args.runs} runs, {args.journal} journal")
    print(machine(), flush=True)
    runs = []
    for seed in range(1, args.runs + 1):
        settings = Settings(
            agents=agents, steps=steps, seed=seed, fault_scale=args.faults, add_pool=args.add_pool
        )
        runs.append(await one_run(settings, args.journal))
    calls = sum(r["calls"] for r in runs)
    writes = sum(r["write_calls"] for r in runs)
    unknown = sum(r["outcome_unknown"] for r in runs)
    cut = sum(r["cut_by_restart"] for r in runs)
    reconciled = sum(r["reconciled"] for r in runs)
    kinds = {"lost": 0, "duplicated": 0, "phantom": 0, "untrue answer": 0}
    other = 0
    for r in runs:
        for v in r["violation_lines"]:
            kind = v.split(":", 1)[0]
            if kind in kinds:
                kinds[kind] += 1
            else:
                other += 1
    header("figures")
    print(
        f"{len(runs)} runs: {calls} calls, {writes} write calls, {unknown} OUTCOME_UNKNOWN, {cut} cut by "
        f"the restart, {reconciled} reconciled answers; violations {kinds} (other {other})",
        flush=True,
    )
    bad = sum(kinds.values()) + other
    share = unknown / writes if writes else 0.0
    target("chaos_lost_duplicated_phantom", str(bad), "0", bad == 0)
    target(
        "chaos_outcome_unknown",
        f"{unknown}/{writes} write calls ({share:.1%})",
        f"<= {MAX_UNKNOWN_SHARE:.0%}",
        share <= MAX_UNKNOWN_SHARE,
    )
    summary(
        "bench_chaos",
        f"{len(runs)} runs x {agents} agents x {steps} steps: {calls} calls, {unknown} OUTCOME_UNKNOWN "
        f"({share:.1%} of writes), {cut} cut by the restart, {bad} violations",
    )


if __name__ == "__main__":
    asyncio.run(main())
