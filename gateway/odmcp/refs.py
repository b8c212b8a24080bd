"""A reference to one upstream object: which store, which kind, which id."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Ref:
    #: the configured store *name* (not the upstream store id); see ``[[stores]]``
    store: str
    #: the object kind, e.g. ``"order"``, ``"inventory_item"``, ``"store"``
    kind: str
    #: the upstream id as a string; empty for a create
    id: str = ""

    def __str__(self) -> str:
        return f"{self.store}/{self.kind}/{self.id}"
