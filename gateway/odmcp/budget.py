"""The byte budget of one tool result (``gateway.max_result_bytes``): what a model's context can take.

A read tool hands its result model to :func:`fit_list` (a page of records) or :func:`fit_object` (one
object) before returning it. Within the budget the result is returned untouched. Over it:

* a list keeps the leading records that fit, whole (never a record cut in the middle), and says so:
  ``truncated: true``, ``next_offset`` where the next call continues, and a one-line ``note`` on how to
  ask for less;
* one object is replaced by its summary, with a ``note`` naming ``fields``.

``truncated`` and ``note`` appear only on a result that was cut: they are fields of a subclass of the
tool's result model (made once per model), so the tool's published output schema stays as it was.
:func:`over_budget` is the host's last guard for a read tool that did not fit its own result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgspec
from pydantic import BaseModel, create_model

M = TypeVar("M", bound=BaseModel)

_CUT: dict[type[BaseModel], type[BaseModel]] = {}
#: room kept for ``truncated``, ``note`` and a changed ``next_offset`` while counting what fits
_ENVELOPE = 600


def text_size(result: BaseModel) -> int:
    """Bytes of the text block a client receives for ``result`` (compact JSON, as the host writes it)."""
    return len(result.model_dump_json(by_alias=True).encode())


def _cut(cls: type[M]) -> type[M]:
    """``cls`` with ``truncated`` and ``note`` (the shape of a result that was cut)."""
    made = _CUT.get(cls)
    if made is None:
        made = _CUT[cls] = create_model(cls.__name__, __base__=cls, truncated=(bool, True), note=(str, ""))
    return made  # type: ignore[return-value]


def fit_list(
    result: M,
    key: str,
    budget: int,
    *,
    offset: int | None,
    narrow: str,
    shrink: Callable[[Any], Any] | None = None,
) -> M:
    """``result`` with as many whole records of ``result.<key>`` as fit in ``budget`` bytes.

    ``offset`` is the request's (the cut result's ``next_offset`` is where the records shown end; None:
    the list has no paging). ``narrow`` finishes the note (``"ask for a smaller limit or fewer
    fields"``). When not even the first record fits, ``shrink`` (its summary) stands in for it.
    """
    records = list(getattr(result, key))
    if len(msgspec.json.encode(records)) + _ENVELOPE <= budget or text_size(result) <= budget:
        return result  # (the first test is the cheap one: a list result's other fields are small)
    data = result.model_dump(by_alias=True)
    data[key] = []
    room = budget - len(msgspec.json.encode(data)) - _ENVELOPE
    n, used = 0, 0
    for record in records:
        size = len(msgspec.json.encode(record)) + 1
        if used + size > room:
            break
        used, n = used + size, n + 1
    shown = records[:n]
    shrunk = n == 0 and bool(records) and shrink is not None
    if shrunk:
        assert shrink is not None
        shown, n = [shrink(records[0])], 1
    while True:
        data[key] = shown[:n]
        more = ""
        if offset is not None and n < len(records):
            if "next_offset" in data:
                data["next_offset"] = offset + n
            more = f"continue with offset={offset + n}, or "
        limit = f"gateway.max_result_bytes ({budget:,} bytes)"
        what = (
            f"the first record alone is over {limit}: its summary is shown"
            if shrunk
            else f"{n} of {len(records)} shown: the rest is over {limit}"
        )
        note = f"{what}; {more}{narrow}."
        out = _cut(type(result))(**data, truncated=True, note=note)
        if n == 0 or text_size(out) <= budget:
            return out
        n -= 1


def fit_object(result: M, key: str, budget: int, summary: Mapping[str, Any], what: str, narrow: str) -> M:
    """``result`` as is within ``budget``; over it, ``result.<key>`` becomes ``summary`` with a note
    (``what``: "order 7"; ``narrow``: how to ask for the rest, e.g. "name them in fields")."""
    size = text_size(result)
    if size <= budget:
        return result
    data = result.model_dump(by_alias=True)
    data[key] = dict(summary)
    note = (
        f"{what} is {size:,} bytes, over gateway.max_result_bytes ({budget:,}): only its summary is "
        f"shown; {narrow}."
    )
    return _cut(type(result))(**data, truncated=True, note=note)


def over_budget(text: str, budget: int) -> bool:
    """Whether a result's text is over ``budget`` bytes (the host's last guard)."""
    return len(text.encode()) > budget
