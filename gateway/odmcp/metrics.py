"""Process-local counters, rendered as Prometheus text for ``/metrics`` and ``mcp-gateway stats``."""

from __future__ import annotations

import threading
from collections import defaultdict

HELP = {
    "cache_hits_total": "Reads answered from the cache.",
    "cache_misses_total": "Reads that had to load from upstream (or join a load in flight).",
    "cache_upstream_saved_total": "Upstream fetches avoided: hits plus callers that joined a load in flight.",
    "cache_loads_total": "Upstream loads made by the read-through cache.",
    "cache_invalidations_total": "Cache entries dropped or list generations bumped after a change.",
    "cache_backend_errors_total": "Cache backend operations that failed or timed out (served fail-open).",
    "tool_calls_total": "Tool calls by tool and outcome.",
    "mutation_attempts_total": "Fetch-merge-upload attempts made by the mutation workflow.",
    "mutation_conflicts_total": "Attempts that hit a conflict and were retried.",
    "policy_denials_total": "Tool calls refused by read-only mode, token grants or a policy plugin.",
    "http_refused_total": "HTTP requests refused by the gateway's own limits, by reason.",
}


class Metrics:
    """Counters keyed by (name, sorted label pairs). Thread-safe because uvicorn may log from threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: defaultdict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)

    @staticmethod
    def describe(name: str, help_text: str) -> None:
        """The ``# HELP`` line of a plugin's own counter (the host's are in ``HELP``)."""
        HELP.setdefault(name, help_text)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] += amount

    def value(self, name: str, **labels: str) -> float:
        """Sum of ``name`` over all label sets that include ``labels``."""
        want = set(labels.items())
        with self._lock:
            return sum(v for (n, lbl), v in self._values.items() if n == name and want <= set(lbl))

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            items = list(self._values.items())
        out: dict[str, float] = {}
        for (name, labels), v in sorted(items):
            suffix = ",".join(f'{k}="{val}"' for k, val in labels)
            out[f"{name}{{{suffix}}}" if suffix else name] = v
        return out

    def render_prometheus(self, prefix: str = "mcpgw_") -> str:
        with self._lock:
            items = sorted(self._values.items())
        lines: list[str] = []
        seen: set[str] = set()
        for (name, labels), v in items:
            full = prefix + name
            if full not in seen:
                seen.add(full)
                lines.append(f"# HELP {full} {HELP.get(name, name)}")
                lines.append(f"# TYPE {full} counter")
            lbl = ",".join(f'{k}="{_esc(val)}"' for k, val in labels)
            lines.append(f"{full}{{{lbl}}} {v:g}" if lbl else f"{full} {v:g}")
        return "\n".join(lines) + "\n"


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
