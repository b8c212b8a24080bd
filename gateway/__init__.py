"""mcp-gateway: a plugin-based MCP gateway for OrderDesk.

Plugin authors need only ``from gateway import hookimpl``.
"""

from gateway.plugins import hookimpl

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]
