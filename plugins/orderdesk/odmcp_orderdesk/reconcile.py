"""Did an unclear order upload land? Decided from a fresh read (the ``gateway_reconcile`` hook).

The host's default compares diffs path by path. An order needs one more rule: an item added by the
upload has no id in the intended order (``order_items[+new]``) but an id upstream, so it is matched by
its fields against the items that appeared since the fetch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from odmcp_orderdesk.merge import NEW_ITEM, diff

_NEW_PATH = f"order_items[{NEW_ITEM}]"


def same_value(a: Any, b: Any) -> bool:
    """Equal, where OrderDesk's numeric strings count as their numbers (``10`` == ``"10.00"``)."""
    if a == b:
        return True
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


def item_matches(wanted: Mapping[str, Any], item: Any) -> bool:
    """``item`` carries every field of ``wanted`` (maps key by key, numbers loosely)."""
    if not isinstance(item, Mapping):
        return False
    for key, value in wanted.items():
        if isinstance(value, Mapping):
            have = item.get(key)
            if not isinstance(have, Mapping) or not all(same_value(v, have.get(k)) for k, v in value.items()):
                return False
        elif not same_value(value, item.get(key)):
            return False
    return True


#: top-level fields OrderDesk itself sets on an update (an upload changes them; no other writer needed)
SERVER_SET = frozenset(
    {"date_updated", "quantity_total", "weight_total", "product_total", "discount_total", "order_total"}
)


def reconcile_order(before: dict[str, Any], intended: dict[str, Any], current: dict[str, Any]) -> str:
    """``"applied"``, ``"already"``, ``"not_applied"`` or ``"unknown"`` for an order upload.

    ``"already"``: every intended value is there, but the re-read also shows a change the upload
    did not make (another writer), so it can't be told whether the upload set them.
    """
    ours = diff(before, intended)
    seen = diff(before, current)
    seen_at = {c["path"]: c["after"] for c in seen}
    # items that appeared upstream since the fetch (they have ids now), each may match one new item
    appeared = [c["after"] for c in seen if c["before"] is None and c["path"].startswith("order_items[")]
    there: list[bool] = []
    absent: list[bool] = []
    for change in ours:
        path, wanted = change["path"], change["after"]
        if path == _NEW_PATH:
            match = next((i for i, item in enumerate(appeared) if item_matches(wanted, item)), None)
            if match is not None:
                appeared.pop(match)
            there.append(match is not None)
            absent.append(match is None)
            continue
        there.append(path in seen_at and same_value(seen_at[path], wanted))
        absent.append(path not in seen_at)
    if ours and all(there):
        mine = {c["path"] for c in ours}
        matched = {c["path"] for c in seen if c["before"] is None and c["after"] not in appeared}
        others = [
            p
            for p in (c["path"] for c in seen)
            if p not in mine and p not in matched and p.split(".")[0] not in SERVER_SET
        ]
        return "already" if others else "applied"
    if all(absent):
        return "not_applied"
    return "unknown"
