"""The changes toolset is opt-in (``gateway.toolsets``): these tests serve it."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def gateway_overrides(gateway_overrides: dict[str, Any]) -> dict[str, Any]:
    return {**gateway_overrides, "gateway.toolsets": ["all"]}
