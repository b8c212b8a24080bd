"""Argument types and result models shared by the OrderDesk tools."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field

from odmcp_orderdesk.summary import INVENTORY_SUMMARY, ORDER_SUMMARY, SHIPMENT_SUMMARY


def _digits_text(value: Any) -> Any:
    """Some clients send a numeric id as a JSON number (the Inspector CLI does); accept its digits."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


#: an id as the schema says (a string of digits), also accepted as a JSON integer
IdText = BeforeValidator(_digits_text)


def capped(limit: int) -> Any:
    """A bound that only guards against abuse: enforced, but not published (a cap no real value comes
    near is noise in every tools/list; ``Field(max_length=...)`` would publish it)."""

    def check(value: Any) -> Any:
        if isinstance(value, str | list) and len(value) > limit:
            unit = "characters" if isinstance(value, str) else "items"
            raise ValueError(f"should have at most {limit} {unit}")
        if isinstance(value, int) and value > limit:
            raise ValueError(f"should be at most {limit}")
        return value

    return AfterValidator(check)


#: free text that is short in real life (a name, an email, a source id)
Text = Annotated[str, capped(254)]
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?Z?)?$")


def _date(value: str | None) -> str | None:
    if value is not None and not _DATE.fullmatch(value):
        raise ValueError("should be a UTC date 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS'")
    return value


#: a UTC date filter (the tool's description says the format)
DateArg = Annotated[str | None, AfterValidator(_date)]

StoreArg = Annotated[
    str | None,
    capped(64),
    Field(description="Store name."),
]
ID_RE = r"^[0-9]{1,20}$"


#: an id argument: its published pattern says "digits" (the explicit json_schema_extra keeps a pattern in
#: the published schema: a before-validator hides field constraints from pydantic's schema generation);
#: validation applies ``ID_RE``, whose length cap only guards against abuse and is not published
_ID_ARG = Field(pattern=ID_RE, json_schema_extra={"pattern": r"^\d+$"})
OrderId = Annotated[str, IdText, _ID_ARG]
ItemId = Annotated[str, IdText, _ID_ARG]
ShipmentId = Annotated[str, IdText, _ID_ARG]
InventoryId = Annotated[str, IdText, _ID_ARG]
#: an idempotency key (orders_create and the bulk tools)
IdempotencyKey = Annotated[
    str | None,
    capped(128),
    Field(min_length=8, description="A repeat with it never writes twice."),
]
#: an offset into a list (the cap only guards against abuse)
Offset = Annotated[int, Field(ge=0), capped(10_000_000)]
#: a generous cap on any one object argument (OrderDesk's own limits are far smaller per field)
MAX_OBJECT_KEYS = 200


#: a summary field OrderDesk sends as it likes (an id or an amount as a number or as text, or null):
#: every scalar, spelled as single-type ``anyOf`` branches, the form every client's dialect reads
#: a value as OrderDesk sent it: any scalar (a string, a number, a boolean or null), said in few tokens
_AS_SENT = {"not": {"type": "object"}}


def _summary_items(names: tuple[str, ...], typed: dict[str, Any]) -> dict[str, Any]:
    """The output schema of a list of summaries (or of the fields asked for): property names, and
    types only where every object has them in that type (the rest: any scalar, as OrderDesk sent it)."""
    return {"items": {"type": "object", "properties": {n: typed.get(n, _AS_SENT) for n in names}}}


_NULLABLE_TEXT = {"anyOf": [{"type": "string"}, {"type": "null"}]}


class OrderResult(BaseModel):
    order: dict[str, Any]


class OrderListResult(BaseModel):
    orders: list[dict[str, Any]] = Field(
        json_schema_extra=_summary_items(
            ORDER_SUMMARY,
            {
                "folder_name": _NULLABLE_TEXT,
                "customer_name": _NULLABLE_TEXT,
                "item_count": {"type": "integer"},
                "tracked": {"type": "boolean"},
            },
        )
    )
    total_records: int
    next_offset: int | None


class InventoryListResult(BaseModel):
    items: list[dict[str, Any]] = Field(json_schema_extra=_summary_items(INVENTORY_SUMMARY, {}))
    total_records: int
    next_offset: int | None


class ShipmentListResult(BaseModel):
    shipments: list[dict[str, Any]] = Field(json_schema_extra=_summary_items(SHIPMENT_SUMMARY, {}))


class UpdateResult(BaseModel):
    order: dict[str, Any]
    attempts: int
    changed_fields: list[str]
    dry_run: bool = False
    #: the diff, in real runs and dry runs alike
    changes: list[dict[str, Any]] = Field(default_factory=list)
    #: the answer was unclear and a re-read confirmed the change
    reconciled: bool = False
    message: str = ""


class DeleteResult(BaseModel):
    deleted: bool
    id: str


class MessageResult(BaseModel):
    message: str
    #: the answer was unclear and a re-read confirmed the change
    reconciled: bool = False


class NoteResult(MessageResult):
    order_id: str
    note: str
    #: how many entries the order's history has now
    entries: int
