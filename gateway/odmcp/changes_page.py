"""``GET /changes`` on the HTTP transport: the latest changes for people, read-only, server-rendered.

Off unless ``[http] changes_page = true``. Behind the same bearer auth as MCP; a caller sees what
``changes_list`` would show it (its own changes unless granted ``changes:all``). Filters: ``order`` and
``caller`` (query parameters, a plain form); each change's fields before and after side by side. No
script, no build step; every value is escaped and the page forbids scripts (CSP).
"""

from __future__ import annotations

import html
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from odmcp.changes import ChangeFilter, list_changes
from odmcp.errors import GatewayError
from odmcp.middleware import PRINCIPAL_SCOPE_KEY
from odmcp.tools import ToolCall

if TYPE_CHECKING:
    from odmcp.app import Gateway

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#111;background:#fff}
h1{font-size:1.3em}
form{margin:0 0 1em}
input{font:inherit;padding:2px 4px}
table{border-collapse:collapse;width:100%}
th,td{border:1px solid #ccc;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f2f2f2}
.change{margin:0 0 1.2em;border:1px solid #999;padding:8px}
.meta{margin:0 0 6px}
.no{color:#8a1c1c}
.yes{color:#1c6b2a}
table.diff td.before{background:#fde2e2;width:40%}
table.diff td.after{background:#dff5e1;width:40%}
table.diff td.path{font-family:monospace;width:20%}
pre{margin:0;white-space:pre-wrap;word-break:break-word;font:12px monospace}
.child{margin-left:1.5em}
"""


def _text(value: Any) -> str:
    if isinstance(value, str):
        return html.escape(value)
    return html.escape(json.dumps(value, ensure_ascii=False, indent=1, default=str))


def _change(e: dict[str, Any], css: str = "change") -> str:
    obj = e.get("object") or {}
    rev = (
        '<span class="yes">revertible</span>'
        if e.get("revertible")
        else f'<span class="no">not revertible: {_text(e.get("reason", ""))}</span>'
    )
    parts = [
        f'<div class="{css}" data-change="{_text(e["change_id"])}">',
        '<div class="meta">',
        f"<b>{_text(e.get('time', ''))}</b> · {_text(e.get('caller') or '-')} · "
        f"{_text(e.get('tool') or '-')} · {_text(obj.get('kind', ''))} {_text(obj.get('id', ''))} · "
        f"{_text(e.get('outcome', ''))} · {rev} · <code>{_text(e['change_id'])}</code>",
        "</div>",
    ]
    if e.get("fields"):
        parts.append('<table class="diff"><tr><th>field</th><th>before</th><th>after</th></tr>')
        for f in e["fields"]:
            parts.append(
                f'<tr><td class="path">{_text(f["path"])}</td>'
                f'<td class="before"><pre>{_text(f["before"])}</pre></td>'
                f'<td class="after"><pre>{_text(f["after"])}</pre></td></tr>'
            )
        parts.append("</table>")
    for child in e.get("targets", []):
        parts.append(_change(child, "change child"))
    parts.append("</div>")
    return "".join(parts)


def render(result: dict[str, Any], order: str, caller: str) -> str:
    """The page for one ``list_changes`` result and the filters it was asked with."""
    body = "".join(_change(e) for e in result["changes"]) or "<p>No changes.</p>"
    note = f"<p><i>{_text(result['history'])}</i></p>" if result.get("history") else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Changes · mcp-gateway</title>'
        f"<style>{_CSS}</style></head><body><h1>Changes</h1>"
        '<form method="get" action="/changes">'
        f'<label>Order <input name="order" value="{_text(order)}" size="12"></label> '
        f'<label>Caller <input name="caller" value="{_text(caller)}" size="20"></label> '
        '<button type="submit">Filter</button></form>'
        f'<div id="changes">{body}</div>{note}</body></html>'
    )


def changes_page(gw: Gateway) -> Callable[[Request], Awaitable[Response]]:
    """The ``/changes`` handler for ``gw``."""

    async def page(request: Request) -> Response:
        order = request.query_params.get("order", "").strip()[:80]
        caller = request.query_params.get("caller", "").strip()[:200]
        token = request.scope.get(PRINCIPAL_SCOPE_KEY)
        call = ToolCall("changes.page", {}, getattr(token, "name", None), uuid.uuid4().hex[:12], token=token)
        headers = {
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        }
        try:
            result = await list_changes(
                gw, call, ChangeFilter(object_id=order or None, caller=caller or None, limit=100)
            )
        except GatewayError as err:
            return HTMLResponse(f"<!doctype html><p>{_text(str(err))}</p>", status_code=403, headers=headers)
        return HTMLResponse(render(result, order, caller), headers=headers)

    return page
