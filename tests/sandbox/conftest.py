"""Fixtures for the sandbox tests: a started sandbox on a free port and an authenticated client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from odmcp_orderdesk.sandbox import Sandbox, SandboxConfig


@pytest.fixture
async def sbx() -> AsyncIterator[Sandbox]:
    """Two stores, no rate limit (rate-limit tests build their own), fixed seed anchor."""
    config = SandboxConfig.multi_store(rate_limit_enabled=False, seed_anchor="2025-06-30 12:00:00")
    async with Sandbox(config) as sandbox:
        yield sandbox


@pytest.fixture
async def http(sbx: Sandbox) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=sbx.headers()) as session:
        yield session
