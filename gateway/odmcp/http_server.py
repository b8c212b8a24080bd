"""Run the HTTP app with Hypercorn, in the current event loop.

Why Hypercorn and not uvicorn (docs/deployment.md has the long form): uvicorn starts no timer before a
request's headers are complete, so a client that sends half a request holds its connection (and a
file descriptor) forever. Hypercorn closes a connection that has not delivered complete request
headers within ``keep_alive_timeout`` of connecting or of its previous response; the gateway sets
that to ``[http] read_timeout``. Hypercorn's own ``read_timeout`` (per read, all the time) stays off:
it would also cut SSE streams and slow tool calls, during which the client rightly sends nothing.
The body deadline and the request cap are ASGI layers (:mod:`odmcp.http_limits`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig

from odmcp.config import HttpSettings
from odmcp.http_limits import AcceptErrorThrottle
from odmcp.http_limits import log as http_log

log = logging.getLogger("odmcp.http")

#: the listen backlog; also how many accept() attempts asyncio makes per wake-up
BACKLOG = 128
#: descriptors wanted; the soft limit is raised towards it (never above the hard limit)
WANTED_DESCRIPTORS = 65_536


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def hypercorn_config(http: HttpSettings, host: str, port: int) -> HypercornConfig:
    config = HypercornConfig()
    config.bind = [bind_address(host, port)]
    config.keep_alive_timeout = http.read_timeout  # the header deadline (and the keep-alive idle time)
    config.read_timeout = None  # see the module docstring
    config.graceful_timeout = 3.0
    config.backlog = BACKLOG
    config.accesslog = None  # never log URLs
    config.errorlog = logging.getLogger("hypercorn.error")  # through the gateway's logging config
    config.include_server_header = False
    return config


def raise_descriptor_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` towards the hard limit; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = WANTED_DESCRIPTORS if hard == resource.RLIM_INFINITY else min(hard, WANTED_DESCRIPTORS)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    return soft


async def serve(
    app: object,
    http: HttpSettings,
    host: str,
    port: int,
    *,
    shutdown: asyncio.Event | None = None,
    on_reload: Callable[[], Coroutine[Any, Any, None]] | None = None,
    signals: bool = True,
) -> None:
    """Serve until ``shutdown`` is set (or SIGINT/SIGTERM when ``signals``); SIGHUP runs ``on_reload``."""
    loop = asyncio.get_running_loop()
    stop = shutdown or asyncio.Event()
    limit = raise_descriptor_limit()
    http_log.debug("descriptor limit %d", limit)
    throttle = AcceptErrorThrottle(loop)
    throttle.install()
    reloads: set[asyncio.Task[None]] = set()
    installed: list[signal.Signals] = []

    def reload() -> None:
        if on_reload is not None:
            task = loop.create_task(on_reload())
            reloads.add(task)
            task.add_done_callback(reloads.discard)

    if signals:
        for sig, handler in ((signal.SIGINT, stop.set), (signal.SIGTERM, stop.set), (signal.SIGHUP, reload)):
            loop.add_signal_handler(sig, handler)
            installed.append(sig)
    try:
        await hypercorn_serve(app, hypercorn_config(http, host, port), shutdown_trigger=stop.wait)  # type: ignore[arg-type]
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        throttle.uninstall()
