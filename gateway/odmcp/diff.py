"""Field-level differences between two JSON-like objects (for dry runs and the audit log)."""

from __future__ import annotations

from typing import Any


def _label(item: Any, index: int) -> str:
    if isinstance(item, dict) and item.get("id") not in (None, ""):
        return f"[{item['id']}]"
    return f"[{index}]"


def diff(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    """Return ``[{"path", "before", "after"}]`` for every leaf that differs.

    Dicts are compared key by key; lists of objects with ``id`` are matched by id (``items[42].qty``),
    other lists by position. A missing side is reported as ``None``.
    """
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[dict[str, Any]] = []
        for key in sorted(set(before) | set(after), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in after:
                out.append({"path": sub, "before": before[key], "after": None})
            elif key not in before:
                out.append({"path": sub, "before": None, "after": after[key]})
            else:
                out.extend(diff(before[key], after[key], sub))
        return out
    if isinstance(before, list) and isinstance(after, list) and before != after:
        if all(isinstance(x, dict) and x.get("id") for x in before) and all(
            isinstance(x, dict) for x in after
        ):
            old = {str(x["id"]): x for x in before}
            out = []
            seen: set[str] = set()
            for i, item in enumerate(after):
                iid = str(item.get("id") or "")
                if iid and iid in old:
                    seen.add(iid)
                    out.extend(diff(old[iid], item, f"{path}[{iid}]"))
                else:
                    out.append({"path": f"{path}[+{i}]", "before": None, "after": item})
            out.extend(
                {"path": f"{path}[{iid}]", "before": x, "after": None}
                for iid, x in old.items()
                if iid not in seen
            )
            return out
        out = []
        for i in range(max(len(before), len(after))):
            b = before[i] if i < len(before) else None
            a = after[i] if i < len(after) else None
            out.extend(
                diff(b, a, f"{path}[{i}]")
                if b is not None and a is not None
                else [{"path": f"{path}[{i}]", "before": b, "after": a}]
            )
        return out
    if before != after or type(before) is not type(after):
        return [{"path": path, "before": before, "after": after}]
    return []
