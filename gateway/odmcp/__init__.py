"""mcp-gateway: a plugin-based MCP gateway; its store types, tools and wording come from plugins.

Plugin authors need only ``from odmcp import hookimpl``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]

if TYPE_CHECKING:
    from odmcp.plugins import hookimpl


def __getattr__(name: str) -> Any:
    # Lazy, so that importing the pytest kit (gateway.testing) stays cheap and coverage sees the host
    # modules imported for the first time inside the test run.
    if name == "hookimpl":
        from odmcp.plugins import hookimpl

        return hookimpl
    raise AttributeError(name)
