"""The OrderDesk plugin's command line: ``mcp-gateway sandbox`` and ``--sandbox`` for serve/tools/call.

Registered through ``gateway_register_commands``; the sandbox is imported only when one of them runs.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from odmcp.api import Commands, listen_error, port_number


@asynccontextmanager
async def sandbox_store(args: argparse.Namespace) -> AsyncIterator[dict[str, Any]]:
    """``--sandbox``: run the embedded sandbox for the command's lifetime and make it the only store."""
    from odmcp_orderdesk.sandbox.server import Sandbox

    async with Sandbox() as sb:
        store: dict[str, Any] = {"name": "demo", "type": "orderdesk", "default": True}
        store |= {"store_id": sb.store_id, "api_key": sb.api_key}
        yield {"stores": [{**store, "base_url": sb.base_url}]}


def _sandbox_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=8700, help="port (default 8700)")
    parser.add_argument("--no-rate-limit", action="store_true", help="switch off the leaky bucket")
    parser.add_argument(
        "--request-log-size",
        type=int,
        metavar="N",
        help="requests kept for /_sandbox/requests (a ring buffer; default 10000)",
    )


def run_sandbox(args: argparse.Namespace) -> int:
    """``mcp-gateway sandbox``: serve the sandbox until Ctrl-C."""
    from odmcp.api import CliError
    from odmcp_orderdesk.sandbox.server import run_forever

    if args.request_log_size is not None and args.request_log_size < 1:
        raise CliError(f"--request-log-size must be >= 1, got {args.request_log_size}")
    try:
        run_forever(
            args.host, args.port, rate_limit=not args.no_rate_limit, request_log_size=args.request_log_size
        )
    except OSError as err:  # only listening can fail this way: the port is taken, or not ours to use
        raise listen_error(args.host, args.port, err) from None
    return 0


def register_commands(cli: Commands) -> None:
    cli.add_command(
        "sandbox", run_sandbox, help="run the OrderDesk sandbox on its own", arguments=_sandbox_arguments
    )
    cli.add_gateway_option(
        "--sandbox", sandbox_store, help="start the embedded OrderDesk sandbox and use it as the store"
    )
