"""Strict id checks: an id that is not a plain number never reaches a URL.

OrderDesk ids (orders, items, shipments, inventory items) are numeric; a strict pattern refuses
path tricks such as ``../store``, ``1/../../x``, ``%2e%2e`` or ``1?x=`` before any request is made.

One id, one key: OrderDesk reads ``07945181`` as order 7945181, so :func:`check_id` strips leading
zeros. Every tool passes each id argument through it before any lock, cache key or request, so
``07945181`` and ``7945181`` lock, cache and invalidate the same object.
"""

from __future__ import annotations

import re
from typing import Any

from odmcp.api import ValidationFailed

ID_PATTERN = re.compile(r"[0-9]{1,20}")


def check_id(field: str, value: Any) -> str:
    """Return ``value`` as a canonical id string (digits, no leading zeros), or raise VALIDATION."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValidationFailed(f"{field} must be a numeric id string, got {type(value).__name__}")
    text = str(value)
    if not ID_PATTERN.fullmatch(text):
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise ValidationFailed(f"{field} must be digits only (1-20), got {shown!r}")
    return text.lstrip("0") or "0"
