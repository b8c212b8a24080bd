"""Fixtures for the OrderDesk client tests: the aioresponses shim, fake time, a client factory."""

from __future__ import annotations

import asyncio
import heapq
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from unittest.mock import Mock

import aiohttp
import aioresponses.core as _core
import pytest
from aioresponses import aioresponses

from odmcp.config import Secret
from odmcp_orderdesk.client import OrderDeskClient
from odmcp_orderdesk.ratelimit import LeakyBucket
from odmcp_orderdesk.settings import OrderDeskSettings, OrderDeskStore

# aioresponses 0.7.9 builds ClientResponse without the ``stream_writer`` argument aiohttp 3.14 requires
# (pnuckowski/aioresponses#289, fix in the open PR #288). No-op on aiohttp versions without it.
if "stream_writer" in inspect.signature(aiohttp.ClientResponse.__init__).parameters:

    class _CompatClientResponse(aiohttp.ClientResponse):
        def __init__(self, *a: Any, stream_writer: Any = None, **kw: Any) -> None:
            super().__init__(*a, stream_writer=stream_writer or Mock(output_size=0), **kw)

    _core.ClientResponse = _CompatClientResponse  # type: ignore[attr-defined]


API_KEY = "sk-od-TEST-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
STORE_ID = "11"
BASE = "https://od.example.test/api/v2"


class FakeTime:
    """A clock that only moves when someone sleeps; every sleep returns at once and is recorded.

    Exact for sequential code (one client call at a time); see :class:`VirtualTime` for concurrency.
    """

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += max(0.0, delay)


class VirtualTime:
    """Concurrent fake time: sleepers park on futures; :meth:`run` wakes them in time order."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + max(0.0, delay), self._seq, fut))
        self._seq += 1
        await fut

    async def settle(self) -> None:
        for _ in range(20):
            await asyncio.sleep(0)

    async def run(self) -> None:
        """Let everything run until no task is sleeping any more."""
        await self.settle()
        while self._timers:
            when, _, fut = heapq.heappop(self._timers)
            self.now = max(self.now, when)
            if not fut.done():
                fut.set_result(None)
            await self.settle()


@pytest.fixture
def store() -> OrderDeskStore:
    return OrderDeskStore(name="main", store_id=STORE_ID, api_key=Secret(API_KEY), base_url=BASE + "/")


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    s = aiohttp.ClientSession()
    yield s
    await s.close()


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with aioresponses() as m:
        yield m


MakeClient = Callable[..., OrderDeskClient]


@pytest.fixture
def make_client(store: OrderDeskStore, session: aiohttp.ClientSession, fake_time: FakeTime) -> MakeClient:
    """A client whose sleeps and limiter run on ``fake_time``; ``rng`` defaults to 1 (no jitter)."""

    def make(
        settings: OrderDeskSettings | None = None, *, rng: Callable[[], float] = lambda: 1.0
    ) -> OrderDeskClient:
        limiter = LeakyBucket(20, 3.0, clock=fake_time.clock, sleep=fake_time.sleep)
        return OrderDeskClient(
            store, session, settings or OrderDeskSettings(), limiter=limiter, sleep=fake_time.sleep, rng=rng
        )

    return make


@pytest.fixture
def client(make_client: MakeClient) -> OrderDeskClient:
    return make_client()


class OD:
    """Helpers handed to tests as the ``od`` fixture (test modules can't import from a conftest)."""

    API_KEY = API_KEY
    STORE_ID = STORE_ID
    BASE = BASE

    @staticmethod
    def url(path: str) -> str:
        return BASE + path

    @staticmethod
    def ok(**payload: Any) -> dict[str, Any]:
        """A success envelope the way OrderDesk writes it."""
        return {"status": "success", "execution_time": "0.0123 seconds", **payload}

    @staticmethod
    def calls(m: aioresponses, method: str, path: str) -> list[Any]:
        """Recorded calls of one method to one path, whatever their query strings."""
        return [
            call
            for (meth, u), recorded in m.requests.items()
            if meth == method and str(u.with_query(None)) == BASE + path
            for call in recorded
        ]

    @staticmethod
    def count(m: aioresponses) -> int:
        return sum(len(recorded) for recorded in m.requests.values())


@pytest.fixture
def od() -> type[OD]:
    return OD


@pytest.fixture
def vt() -> VirtualTime:
    return VirtualTime()
