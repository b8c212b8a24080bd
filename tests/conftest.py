"""Shared fixtures. The sandbox/gateway fixtures come from the project's own pytest kits, which a
suite opts into: the host's generic one (gateway.testing) and the OrderDesk plugin's (sandbox, orders)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

# not imported here: pytest must import the kits itself (to rewrite their asserts)
pytest_plugins = ["odmcp.testing", "odmcp_orderdesk.testing"]

REDIS_URL = "redis://127.0.0.1:6379/0"


_saved_state_home: list[str | None] = []


def pytest_configure(config: pytest.Config) -> None:
    """Before collection (test modules copy ``os.environ`` for their subprocesses at import): gateways built
    outside ``gateway_factory`` (CLI runs, subprocesses) keep their default journal in a temporary
    ``XDG_STATE_HOME``, never in the user's ``~/.local/state``."""
    shm = (
        "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    )  # tmpfs: no fsync (odmcp.testing.scratch_dir)
    _saved_state_home.append(os.environ.get("XDG_STATE_HOME"))
    os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="odmcp-test-state-", dir=shm)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _saved_state_home:
        shutil.rmtree(os.environ["XDG_STATE_HOME"], ignore_errors=True)
        old = _saved_state_home.pop()
        if old is None:
            os.environ.pop("XDG_STATE_HOME", None)
        else:
            os.environ["XDG_STATE_HOME"] = old


@pytest.fixture
def redis_url() -> str:
    """The shared Redis (never flushed: tests use their own key prefix)."""
    return REDIS_URL


class OwnRedis:
    """A throwaway redis-server on a free port, for tests that kill or restart Redis."""

    def __init__(self) -> None:
        from odmcp.testing import free_port

        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGCONT)  # a paused server can't be killed cleanly
                self.proc.kill()
            self.proc.wait(5)
            self.proc = None

    kill = stop

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open but nothing answers."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    r = OwnRedis()
    r.start()
    try:
        yield r
    finally:
        r.stop()
