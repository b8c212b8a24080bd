"""``mcp-gateway changes``: the journaled changes in a terminal table (or ``--json``), with the filters
of ``changes_list``. Opens only the configured journal: no store is contacted. The command line is
the owner's: it sees every caller's changes."""

from __future__ import annotations

import argparse
import json
import shutil
from typing import TYPE_CHECKING, Any

from odmcp.changes import ChangeFilter, entry, list_changes, parse_since

if TYPE_CHECKING:
    from odmcp.app import Gateway


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--order", "--object", dest="object_id", metavar="ID", help="only this object (order id)")
    p.add_argument("--caller", help="only this caller's changes (a token's name)")
    p.add_argument("--tool", help="only this tool (orders_update or orders.update)")
    p.add_argument("--since", metavar="DATE", help="ISO date/time, UTC (2026-05-01T10:00)")
    p.add_argument("--limit", type=int, default=20, help="entries per page (default 20)")
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--show", metavar="CHANGE_ID", help="one change in full (the diff, a deleted order whole)")
    p.add_argument("--json", action="store_true", help="machine output (the changes_list result)")


async def run(gw: Gateway, args: argparse.Namespace) -> dict[str, Any]:
    """The entries the arguments ask for, as ``changes_list`` returns them (journal opened and closed)."""
    from odmcp.errors import NotFound

    journal = gw.journals.create(gw.config)
    await journal.open()
    gw.journal = journal
    try:
        if args.show:
            rec = await journal.get_write(args.show)
            if rec is None:
                raise NotFound(
                    f"no change {args.show!r} in the journal", hint="mcp-gateway changes lists them."
                )
            return {"changes": [entry(rec, gw, full=True)]}
        f = ChangeFilter(
            object_id=args.object_id,
            caller=args.caller,
            tool=args.tool,
            since=parse_since(args.since),
            limit=max(1, min(args.limit, 1000)),
            offset=max(0, args.offset),
        )
        return await list_changes(gw, None, f, full=False)
    finally:
        gw.journal = None
        await journal.close()


def _cell(value: Any, width: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def table(result: dict[str, Any], *, full: bool = False) -> str:
    """A plain-text table: one row per change (a job's targets indented), then the fields' diffs."""
    width = shutil.get_terminal_size((140, 24)).columns
    cols = ["TIME", "CHANGE_ID", "CALLER", "TOOL", "OBJECT", "OUTCOME", "REVERTIBLE"]
    rows: list[list[str]] = []
    diffs: list[list[str]] = []

    def add(e: dict[str, Any], indent: str = "") -> None:
        obj = e.get("object") or {}
        rev = "yes" if e.get("revertible") else "no: " + str(e.get("reason", ""))
        rows.append(
            [
                e.get("time", "")[:19].replace("T", " "),
                indent + e["change_id"],
                str(e.get("caller") or "-"),
                str(e.get("tool") or "-"),
                f"{obj.get('kind', '')} {obj.get('id', '')}".strip(),
                str(e.get("outcome", "")),
                rev,
            ]
        )
        diffs.append(
            [
                f"{indent}    {f['path']}: {_cell(f['before'], 9999 if full else 40)} -> "
                f"{_cell(f['after'], 9999 if full else 40)}"
                for f in e.get("fields", [])
            ]
        )

    for e in result.get("changes", []):
        add(e)
        for child in e.get("targets", []):
            add(child, "  ")
    if not rows:
        lines = ["no changes"]
    else:
        sizes = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
        sizes[-1] = min(sizes[-1], max(10, width - sum(sizes[:-1]) - 2 * len(cols)))
        lines = ["  ".join(c.ljust(sizes[i]) for i, c in enumerate(cols)).rstrip()]
        for row, diff in zip(rows, diffs, strict=True):
            lines.append("  ".join(_cell(v, sizes[i]).ljust(sizes[i]) for i, v in enumerate(row)).rstrip())
            lines.extend(d if full else _cell(d, width) for d in diff)
    if full:
        for e in result.get("changes", []):
            for key in ("deleted_object", "deleted_item", "deleted_shipment"):
                if key in e:
                    lines.append(f"{key}: {json.dumps(e[key], indent=2, ensure_ascii=False)}")
    if result.get("next_offset") is not None:
        lines.append(f"(more: --offset {result['next_offset']})")
    if result.get("history"):
        lines.append(f"note: {result['history']}")
    return "\n".join(lines)
