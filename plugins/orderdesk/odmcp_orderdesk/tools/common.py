"""Argument types and result models shared by the OrderDesk tools."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field


def _digits_text(value: Any) -> Any:
    """Some clients send a numeric id as a JSON number (the Inspector CLI does); accept its digits."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


#: an id as the schema says (a string of digits), also accepted as a JSON integer
IdText = BeforeValidator(_digits_text)

StoreArg = Annotated[
    str | None,
    Field(description="Store name (see stores_list). Omit to use the default store.", max_length=64),
]
ID_RE = r"^[0-9]{1,20}$"


def _id_arg(description: str) -> Any:
    # the explicit json_schema_extra keeps the pattern in the published schema (a before-validator
    # hides field constraints from pydantic's schema generation; validation still applies them)
    return Field(description=description, pattern=ID_RE, json_schema_extra={"pattern": ID_RE})


OrderId = Annotated[str, IdText, _id_arg("OrderDesk order id, digits only, e.g. '1001'.")]
ItemId = Annotated[str, IdText, _id_arg("Order item id, digits only.")]
ShipmentId = Annotated[str, IdText, _id_arg("Shipment id, digits only.")]
InventoryId = Annotated[str, IdText, _id_arg("Inventory item id, digits only.")]
#: a generous cap on any one object argument (OrderDesk's own limits are far smaller per field)
MAX_OBJECT_KEYS = 200


class OrderResult(BaseModel):
    order: dict[str, Any] = Field(description="The full order as OrderDesk holds it.")


class OrderListResult(BaseModel):
    orders: list[dict[str, Any]]
    total_records: int
    records_returned: int
    offset: int
    limit: int
    next_offset: int | None = Field(description="Pass as offset to get the next page; null on the last page.")


class UpdateResult(BaseModel):
    order: dict[str, Any] = Field(
        description="The order after the update (or as it would be, for a dry run)."
    )
    attempts: int = Field(description="Fetch-merge-upload attempts used (conflicts are retried).")
    changed_fields: list[str] = Field(description="Dotted paths of the fields that changed.")
    dry_run: bool = False
    changes: list[dict[str, Any]] = Field(
        default_factory=list, description="Field-level diff: path, before, after."
    )
    reconciled: bool = Field(
        default=False, description="OrderDesk's answer was unclear; a re-read confirmed the change."
    )
    message: str = ""


class DeleteResult(BaseModel):
    deleted: bool
    id: str


class MessageResult(BaseModel):
    message: str
    results: list[dict[str, Any]] = Field(default_factory=list)
    order: dict[str, Any] | None = None
    reconciled: bool = Field(
        default=False, description="OrderDesk's answer was unclear; a re-read confirmed the change."
    )


class ListResult(BaseModel):
    items: list[dict[str, Any]]
    total_records: int
    records_returned: int
    offset: int = 0
    limit: int = 0
    next_offset: int | None = None
