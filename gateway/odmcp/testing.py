"""The pytest kit for plugin authors: opt in with ``pytest_plugins = ["odmcp.testing"]``.

It knows no store. A store plugin's kit adds one (``odmcp_orderdesk.testing`` runs the OrderDesk
sandbox) by defining the ``gateway_overrides`` fixture; the project's own tests use both.

Fixtures:

* ``gateway_factory`` - ``gateway_factory(plugins=[...], overrides={...}, env={...})`` builds a Gateway
  with a private cache prefix, an audit log in ``tmp_path`` and the test's own journal (a sqlite file in
  a directory of its own on ``/dev/shm``, else in ``tmp_path``; or a prefix of its own on Redis), from
  the ``gateway_overrides`` fixture (when one is defined) plus ``overrides``.
* ``gateway_client`` - a connected MCP ``Client`` (in-process) to a gateway built from the test's
  ``@pytest.mark.gateway(plugins=[...], overrides={...}, mode="auto"|"legacy")`` marker.

Helpers: ``connect(gateway, mode=...)`` (a connected ``Client``), ``serve_http(gateway)`` (the gateway
over Streamable HTTP in this event loop), ``serve_process(config)`` (``serve`` as a subprocess, in an
environment without the variables named by ``ISOLATED_ENV_PREFIXES``: ``GATEWAY_*``, and what store
kits add, e.g. ``ORDERDESK_*``), ``free_port()``, ``delete_redis_prefix(url, prefix)``,
``scratch_dir(prefix, fallback)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

try:  # the kit needs pytest-asyncio; without it the plugin stays inert instead of breaking pytest
    import pytest_asyncio
except ImportError:  # pragma: no cover
    pytest_asyncio = None  # type: ignore[assignment]


#: variables ``serve_process`` leaves out of its child's environment (prefixes); a store plugin's kit
#: adds its own (``odmcp_orderdesk.testing`` adds ``ORDERDESK_``), so a developer's shell can't leak in
ISOLATED_ENV_PREFIXES: list[str] = ["GATEWAY_"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "gateway(plugins, overrides, mode): how gateway_client builds its gateway"
    )


def merge_overrides(base: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    """``base`` updated with ``extra``; a dict value merges into a dict value of the same key."""
    merged = dict(base)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def scratch_dir(prefix: str, fallback: Path) -> Path:
    """A new directory on tmpfs (``/dev/shm``) when there is one, else ``fallback``: a sqlite journal there
    behaves the same but pays no fsync (about 35 ms per gateway start and stop on a disk). Remove it
    with ``shutil.rmtree`` unless it is ``fallback``."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return Path(tempfile.mkdtemp(prefix=prefix, dir=shm))
    return fallback


def delete_redis_prefix(url: str, prefix: str) -> int:
    """Delete every key under ``prefix:`` (a test's own, unique prefix) in the Redis at ``url``.

    For test teardown only: it walks the prefix with ``SCAN MATCH`` (never ``KEYS`` or ``FLUSHDB``), on
    every master of a Redis Cluster (``redis+cluster://``, ``?cluster=true``, or a plain URL to a
    node). A Redis that is gone (a test's own, already stopped) is ignored, and so is a Sentinel URL
    (such servers are a test's own). Returns how many keys went.
    """
    import redis
    from redis.cluster import RedisCluster

    scheme, _, rest = url.partition("://")
    if "sentinel" in scheme:
        return 0
    plain = scheme.split("+")[0] + "://" + rest.replace("cluster=true", "").rstrip("?&")
    client = redis.Redis.from_url(plain, socket_timeout=2, socket_connect_timeout=1)
    try:
        if "cluster" in scheme or "cluster=true" in rest or client.info("cluster").get("cluster_enabled"):
            cluster = RedisCluster.from_url(plain, socket_timeout=2, socket_connect_timeout=1)
            try:
                keys = list(cluster.scan_iter(match=f"{prefix}:*", count=1000))
                return sum(int(cluster.delete(k)) for k in keys)
            finally:
                cluster.close()
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        return int(client.delete(*keys)) if keys else 0
    except (redis.RedisError, OSError, TypeError, ValueError):  # gone, or a URL a test made bad
        return 0
    finally:
        client.close()


@contextlib.asynccontextmanager
async def connect(gateway: Any, mode: str = "auto", **client_kw: Any) -> AsyncIterator[Any]:
    """A connected in-process MCP ``Client`` for ``gateway`` (``mode``: ``"auto"`` or ``"legacy"``)."""
    from mcp import Client

    from odmcp.server import build_server

    async with Client(build_server(gateway), mode=mode, **client_kw) as client:
        yield client


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for servers a test starts)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def serve_http(gateway: Any, port: int = 0) -> AsyncIterator[str]:
    """Serve ``gateway`` over Streamable HTTP (as ``serve --transport http``) in this event loop."""
    from odmcp.http import build_http_app
    from odmcp.http_server import serve

    port = port or free_port()
    app = build_http_app(gateway, "127.0.0.1", port)
    stop = asyncio.Event()
    task = asyncio.create_task(
        serve(app, gateway.config.http, "127.0.0.1", port, shutdown=stop, signals=False)
    )
    try:
        while True:  # up once the port answers and the lifespan has started
            if task.done():
                task.result()
                raise RuntimeError("the HTTP server stopped before it started")
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.01)
                continue
            writer.close()
            await writer.wait_closed()
            break
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        await task


@dataclass
class ServeProcess:
    """A ``mcp-gateway serve --transport http`` subprocess (see :func:`serve_process`)."""

    proc: subprocess.Popen[bytes]
    port: int
    stderr_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def cpu_seconds(self) -> float:
        """User + system CPU the process has used (Linux ``/proc``)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _spawn(
    cmd: list[str], env: dict[str, str], err_path: Path, preexec_fn: Callable[[], Any] | None
) -> subprocess.Popen[bytes]:
    with open(err_path, "wb") as err:
        return subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            preexec_fn=preexec_fn,  # tests set resource limits in the child
        )


@contextlib.asynccontextmanager
async def serve_process(
    config: Path,
    *,
    env: dict[str, str] | None = None,
    args: Iterable[str] = (),
    preexec_fn: Callable[[], Any] | None = None,
    startup: float = 20.0,
) -> AsyncIterator[ServeProcess]:
    """Run ``serve --transport http --config CONFIG`` on a free loopback port, as an operator would, until
    ``/healthz`` answers; stop it afterwards. ``env`` is added to the environment without the variables
    of ``ISOLATED_ENV_PREFIXES``; its stderr is kept next to the config (``ServeProcess.stderr()``)."""
    import aiohttp

    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(tuple(ISOLATED_ENV_PREFIXES))}
    environ.update(env or {})
    err_path = config.with_suffix(".stderr")
    cmd = [sys.executable, "-m", "odmcp", "serve", "--transport", "http", "--port", str(port)]
    proc = _spawn([*cmd, "--config", str(config), *args], environ, err_path, preexec_fn)
    server = ServeProcess(proc, port, err_path)
    try:
        deadline = time.monotonic() + startup
        async with aiohttp.ClientSession() as http:
            while True:
                assert proc.poll() is None, f"serve exited early: {server.stderr()}"
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(server.url + "/healthz") as r:
                        if r.status == 200:
                            break
                assert time.monotonic() < deadline, f"serve did not come up: {server.stderr()}"
                await asyncio.sleep(0.05)
        yield server
    finally:
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait, 5)


@contextlib.asynccontextmanager
async def _held(cm: contextlib.AbstractAsyncContextManager[Any]) -> AsyncIterator[Any]:
    """Enter and exit ``cm`` in one background task.

    pytest-asyncio runs an async fixture's setup and teardown in two different tasks, and the MCP
    client's anyio task group must be exited by the task that entered it.
    """
    loop = asyncio.get_running_loop()
    entered: asyncio.Future[Any] = loop.create_future()
    release = asyncio.Event()

    async def hold() -> None:
        try:
            async with cm as value:
                entered.set_result(value)
                await release.wait()
        except BaseException as err:
            if not entered.done():
                entered.set_exception(err)
                return
            raise

    task = asyncio.create_task(hold())
    try:
        value = await entered
    except BaseException:
        release.set()
        await task
        raise
    try:
        yield value
    finally:
        release.set()
        await task


if pytest_asyncio is not None:

    @pytest.fixture
    def gateway_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Any]]:
        """Build gateways on the ``gateway_overrides`` store; afterwards delete the Redis keys they used.

        Each test gets its own journal (a file in ``tmp_path``, or its own prefix on Redis), shared by the
        gateways it builds, as a restarted gateway shares its predecessor's: tests never write to the
        user's state directory, and never see another test's records.
        """
        from odmcp.app import Gateway

        try:  # a store plugin's kit (or the suite's conftest) says where the store is
            base: dict[str, Any] = dict(request.getfixturevalue("gateway_overrides"))
        except pytest.FixtureLookupError:
            base = {}
        shared: set[tuple[str, str]] = set()
        journal_prefix = f"test-{uuid.uuid4().hex[:12]}"
        journal_dir = scratch_dir("odmcp-journal-", tmp_path)

        def build(
            plugins: Iterable[object] = (),
            overrides: dict[str, Any] | None = None,
            env: dict[str, str] | None = None,
            **kw: Any,
        ) -> Any:
            merged = merge_overrides(
                {
                    "audit.path": str(tmp_path / "audit.jsonl"),
                    "journal.path": str(journal_dir / "journal.sqlite"),
                    **base,
                },
                {
                    "cache.prefix": f"test-{uuid.uuid4().hex[:12]}",
                    "journal.prefix": journal_prefix,
                    **(overrides or {}),
                },
            )
            gw = Gateway.from_config(None, env=env or {}, overrides=merged, extra_plugins=plugins, **kw)
            if gw.config.cache.backend == "redis":
                shared.add((gw.config.cache.redis_url, gw.config.cache.prefix))
            if gw.config.journal.backend == "redis":
                shared.add(
                    (gw.config.journal.redis_url or gw.config.cache.redis_url, gw.config.journal.prefix)
                )
            return gw

        try:
            yield build
        finally:
            for url, prefix in shared:
                delete_redis_prefix(url, prefix)
            if journal_dir != tmp_path:
                shutil.rmtree(journal_dir, ignore_errors=True)

    @pytest_asyncio.fixture
    async def gateway_client(
        request: pytest.FixtureRequest, gateway_factory: Callable[..., Any]
    ) -> AsyncIterator[Any]:
        marker = request.node.get_closest_marker("gateway")
        kw = dict(marker.kwargs) if marker else {}
        mode = kw.pop("mode", "auto")
        async with _held(connect(gateway_factory(**kw), mode=mode)) as client:
            yield client
