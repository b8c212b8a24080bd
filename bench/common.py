"""Shared helpers for the benchmarks: percentiles, the sandbox, gateway configs, gateway subprocesses.

Every benchmark is a script (``.venv/bin/python bench/bench_x.py [--quick]``) that prints its figures,
then its ``target ...`` lines, then ends on one ``SUMMARY ...`` line. Benchmarks never assert: a
missed target is printed as ``missed`` and the script still exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
PY = sys.executable
REDIS_URL = "redis://127.0.0.1:6379/0"
#: every gateway a benchmark builds or starts keeps its default journal here (``XDG_STATE_HOME``; in-process
#: gateways read it, subprocesses inherit it), not in the user's state directory: each run starts with an
#: empty journal, and the directory is deleted when the benchmark exits
_STATE = tempfile.TemporaryDirectory(prefix="bench-state-")
os.environ["XDG_STATE_HOME"] = _STATE.name

# --- numbers ---------------------------------------------------------------------------------------


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``samples``; NaN when empty."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def p50_p99(samples: Sequence[float]) -> tuple[float, float]:
    return percentile(samples, 50), percentile(samples, 99)


def ms(seconds: float) -> float:
    return seconds * 1000.0


def target(name: str, measured: str, goal: str, met: bool) -> str:
    """Print (and return) one target line in the exact form run_all collects."""
    line = f"target {name}: {measured} (goal {goal}) {'met' if met else 'missed'}"
    print(line, flush=True)
    return line


def summary(bench: str, text: str) -> None:
    print(f"SUMMARY {bench}: {text}", flush=True)


def header(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def machine() -> str:
    cpus = os.cpu_count() or 0
    load = os.getloadavg()[0]
    return f"{cpus} vCPU, Python {sys.version.split()[0]}, load average {load:.2f} at start"


def unique_prefix(tag: str) -> str:
    return f"bench-{tag}-{uuid.uuid4().hex[:10]}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (``VmRSS`` from /proc/<pid>/status)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat (all processes, all cores)."""
    with open("/proc/stat", encoding="ascii") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    hz = os.sysconf("SC_CLK_TCK")
    return (total - idle) / hz, total / hz


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid``."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_cpu_ns(pid: int) -> int:
    """Nanoseconds on CPU of every thread of ``pid`` (``/proc/<pid>/task/*/schedstat``; precise, unlike
    the clock-tick counters of ``/proc/<pid>/stat``)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):  # a thread that just ended
            pass
    return total


def child_pids(pid: int | None = None) -> list[int]:
    pid = pid or os.getpid()
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
        return [int(x) for x in f.read().split()]


# --- the sandbox -----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def sandbox(**config: Any) -> AsyncIterator[Any]:
    """A running OrderDesk sandbox on a free loopback port (``SandboxConfig`` fields as keywords)."""
    from odmcp_orderdesk.sandbox.config import SandboxConfig
    from odmcp_orderdesk.sandbox.server import Sandbox

    async with Sandbox(SandboxConfig(**config)) as sb:
        yield sb


def order_ids(sb: Any) -> list[str]:
    return [str(o["id"]) for o in sb.orders()]


async def wait_healthy(
    session: Any, url: str, proc: subprocess.Popen[Any], within: float, exited: Callable[[], str]
) -> None:
    """Poll ``url`` until it answers 200; fail fast if ``proc`` exits, or after ``within`` seconds."""
    import aiohttp

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(exited())
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as r:
                if r.status == 200:
                    return
        except (TimeoutError, aiohttp.ClientError):
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {within} s")


class SandboxProcess:
    """The sandbox in its own process (like the real OrderDesk, the upstream is not in the caller's
    event loop), controlled over HTTP through its ``/_sandbox`` admin endpoints.

    Has the attributes :func:`odmcp_orderdesk.testing.sandbox_overrides` reads (``config``, ``base_url``).
    """

    def __init__(
        self,
        *,
        seed_orders: int = 36,
        rate_limit_enabled: bool = False,
        latency_ms: float = 0.0,
        startup_timeout: float = 30.0,
        request_log_size: int = 200_000,
    ) -> None:
        from odmcp_orderdesk.sandbox.config import SandboxConfig

        # benchmarks count upstream requests over a whole run: keep more of them than the default
        self.config = SandboxConfig(
            seed_orders=seed_orders,
            rate_limit_enabled=rate_limit_enabled,
            latency_ms=latency_ms,
            request_log_size=request_log_size,
        )
        self.port = free_port()
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._session: Any = None

    root_url = property(lambda self: f"http://127.0.0.1:{self.port}")
    base_url = property(lambda self: self.root_url + "/api/v2")
    admin_url = property(lambda self: self.root_url + "/_sandbox")
    store_id = property(lambda self: self.config.stores[0].store_id)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def headers(self) -> dict[str, str]:
        s = self.config.stores[0]
        return {"ORDERDESK-STORE-ID": s.store_id, "ORDERDESK-API-KEY": s.api_key}

    async def start(self) -> None:
        import aiohttp

        c = self.config
        cmd = [
            PY,
            str(HERE),
            "--serve-sandbox",
            "--port",
            str(self.port),
            "--seed-orders",
            str(c.seed_orders),
            "--latency-ms",
            str(c.latency_ms),
            "--request-log-size",
            str(c.request_log_size),
        ]
        if c.rate_limit_enabled:
            cmd.append("--rate-limit")
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._session = aiohttp.ClientSession()
        await wait_healthy(
            self._session,
            self.admin_url + "/health",
            self.proc,
            self.startup_timeout,
            lambda: f"sandbox process exited with {self.proc.returncode if self.proc else '?'}",
        )

    async def stop(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    async def __aenter__(self) -> SandboxProcess:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _admin(self, method: str, path: str, **kw: Any) -> Any:
        async with self._session.request(method, self.admin_url + path, **kw) as r:
            body = await r.json()
            if r.status != 200:
                raise RuntimeError(f"sandbox admin {method} {path}: {r.status} {body}")
            return body

    async def requests(self, **filters: Any) -> list[dict[str, Any]]:
        """The request log (admin ``GET /_sandbox/requests``; filters: method, path_prefix, status)."""
        query = {k: str(v) for k, v in filters.items() if v is not None}
        return list((await self._admin("GET", "/requests", params=query))["requests"])

    async def clear_requests(self) -> None:
        await self._admin("DELETE", "/requests")

    async def set_config(self, **values: Any) -> None:
        await self._admin("POST", "/config", json=values)
        for k, v in values.items():
            setattr(self.config, k, v)

    async def add_fault(self, **rule: Any) -> dict[str, Any]:
        """Add a fault rule (admin ``POST /_sandbox/faults``); returns it with its id."""
        return dict((await self._admin("POST", "/faults", json=rule))["fault"])

    async def faults(self) -> list[dict[str, Any]]:
        """The fault rules with how often each fired."""
        return list((await self._admin("GET", "/faults"))["faults"])

    async def order(self, order_id: str) -> dict[str, Any]:
        """The stored order, read without spending a token or being recorded."""
        return dict((await self._admin("GET", f"/orders/{self.store_id}/{order_id}"))["order"])

    async def order_ids(self) -> list[str]:
        """Ids of every seeded order (seed ids are consecutive from 200001)."""
        return [str(200001 + i) for i in range(self.config.seed_orders)]


# --- gateway configuration -------------------------------------------------------------------------


def _merge(dst: dict[str, Any], src: dict[str, Any]) -> dict[str, Any]:
    for key, value in src.items():
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            dst[key] = _merge(dict(dst[key]), value)
        else:
            dst[key] = value
    return dst


def overrides(sb: Any, prefix: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """``odmcp_orderdesk.testing.sandbox_overrides`` plus ``extra`` (dotted keys; dict values merge).

    The store's client-side rate limiter follows the sandbox: on when the sandbox enforces its bucket.
    """
    from odmcp_orderdesk.testing import sandbox_overrides

    return _merge(sandbox_overrides(sb, prefix=prefix), dict(extra or {}))


def build_gateway(sb: Any, prefix: str, extra: dict[str, Any] | None = None) -> Any:
    from odmcp.app import Gateway

    return Gateway.from_config(None, env={}, overrides=overrides(sb, prefix, extra))


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for dotted, value in flat.items():
        *heads, leaf = dotted.split(".")
        node = doc
        for part in heads:
            node = node.setdefault(part, {})
        if isinstance(value, dict) and isinstance(node.get(leaf), dict):
            node[leaf] = _merge(node[leaf], value)
        else:
            node[leaf] = value
    return doc


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def to_toml(doc: dict[str, Any], path: tuple[str, ...] = ()) -> str:
    """A small TOML writer for config dicts (tables, arrays of tables, scalars, inline lists)."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    arrays: list[tuple[str, list[dict[str, Any]]]] = []
    for key, value in doc.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
            arrays.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for key, value in tables:
        name = ".".join((*path, key))
        out += f"\n[{name}]\n" + to_toml(value, (*path, key))
    for key, items in arrays:
        name = ".".join((*path, key))
        for item in items:
            scalars = {k: v for k, v in item.items() if not isinstance(v, dict)}
            subs = {k: v for k, v in item.items() if isinstance(v, dict)}
            out += f"\n[[{name}]]\n" + to_toml(scalars, (*path, key))
            for sk, sv in subs.items():  # only one level below an array item is needed here
                out += f"[{name}.{sk}]\n" + to_toml(sv, (*path, key, sk))
    return out


def write_config(
    sb: Any, prefix: str, extra: dict[str, Any] | None = None, directory: str | None = None
) -> str:
    """Write the same configuration :func:`overrides` builds as a TOML file; return its path."""
    flat = overrides(sb, prefix, extra)
    for store in flat["stores"]:
        store["api_key"] = str(store["api_key"])
    text = to_toml(_nest(flat))
    fd, path = tempfile.mkstemp(prefix=f"{prefix}-", suffix=".toml", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def clean_env() -> dict[str, str]:
    """The environment for gateway subprocesses, without GATEWAY_*/ORDERDESK_* settings of the caller."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "ORDERDESK_"))}


def serve_command(config_path: str, transport: str = "http", port: int | None = None) -> list[str]:
    cmd = [PY, "-m", "odmcp", "serve", "--transport", transport, "--config", config_path]
    if port is not None:
        cmd += ["--port", str(port)]
    return cmd


# --- a gateway subprocess (serve --transport http) -----------------------------------------------


class GatewayProcess:
    """``mcp-gateway serve --transport http`` on a free port; started and always stopped by ``async with``."""

    def __init__(self, config_path: str, *, startup_timeout: float = 20.0) -> None:
        self.config_path = config_path
        self.port = free_port()
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr = tempfile.TemporaryFile()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mcp_url(self) -> str:
        return self.base_url + "/mcp"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    async def start(self) -> None:
        import aiohttp

        self.proc = subprocess.Popen(
            serve_command(self.config_path, "http", self.port),
            cwd=ROOT,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        async with aiohttp.ClientSession() as session:
            await wait_healthy(
                session,
                self.base_url + "/healthz",
                self.proc,
                self.startup_timeout,
                lambda: (
                    f"gateway exited with {self.proc.returncode if self.proc else '?'}: "
                    f"{self.stderr_text()[-2000:]}"
                ),
            )

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._stderr.close()

    async def __aenter__(self) -> GatewayProcess:
        try:
            await self.start()
        except BaseException:
            self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()


@contextlib.asynccontextmanager
async def gateway_processes(paths: Iterable[str]) -> AsyncIterator[list[GatewayProcess]]:
    """Several gateway subprocesses started together; every one is stopped on exit."""
    procs = [GatewayProcess(p) for p in paths]
    try:
        await asyncio.gather(*(p.start() for p in procs))
        yield procs
    finally:
        for p in procs:
            p.stop()


def remove_file(path: str | None) -> None:
    if path:
        with contextlib.suppress(OSError):
            os.unlink(path)


async def delete_redis_keys(keys: Iterable[str], url: str = REDIS_URL) -> None:
    """Delete exactly these keys from the shared Redis (never a scan or a flush)."""
    keys = list(keys)
    if not keys:
        return
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        await client.delete(*keys)
    finally:
        await client.aclose()


def cache_keys_for_orders(prefix: str, store_id: str, ids: Iterable[str]) -> list[str]:
    """The Redis keys a gateway with ``cache.prefix = prefix`` may leave for these orders."""
    tagged = f"{prefix}:{{{store_id}}}"  # the store id is the keys' hash tag (docs/architecture.md)
    out = [f"{tagged}:order:listgen"]
    for oid in ids:
        out += [f"{tagged}:order:{oid}", f"{tagged}:lock:order:{oid}", f"{tagged}:lock:order:{oid}:fence"]
    return out


def tool_error_text(result: Any) -> str:
    try:
        return str(result.content[0].text)[:200]
    except (AttributeError, IndexError):
        return repr(result)[:200]


def parse_quick(description: str, argv: list[str] | None = None, **extra: Any) -> Any:
    import argparse

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="reduced sizes (for run_all --quick)")
    for name, kw in extra.items():
        p.add_argument(f"--{name.replace('_', '-')}", **kw)
    return p.parse_args(argv)


def _serve_sandbox(argv: list[str]) -> None:
    """``python bench/common.py --serve-sandbox --port P ...``: the child side of :class:`SandboxProcess`."""
    import argparse

    from odmcp_orderdesk.sandbox.config import SandboxConfig
    from odmcp_orderdesk.sandbox.server import Sandbox

    p = argparse.ArgumentParser()
    p.add_argument("--serve-sandbox", action="store_true")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--seed-orders", type=int, default=36)
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--rate-limit", action="store_true")
    p.add_argument("--request-log-size", type=int, default=10_000)
    a = p.parse_args(argv)
    config = SandboxConfig(
        seed_orders=a.seed_orders,
        latency_ms=a.latency_ms,
        rate_limit_enabled=a.rate_limit,
        request_log_size=a.request_log_size,
    )
    sb = Sandbox(config)

    async def serve() -> None:
        await sb.start("127.0.0.1", a.port)
        try:
            await asyncio.Event().wait()
        finally:
            await sb.stop()

    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        asyncio.run(serve())


if __name__ == "__main__":
    if "--serve-sandbox" in sys.argv:
        _serve_sandbox(sys.argv[1:])
