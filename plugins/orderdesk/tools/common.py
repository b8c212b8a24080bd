"""Argument types and result models shared by the OrderDesk tools."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

StoreArg = Annotated[
    str | None,
    Field(description="Store name (see stores_list). Omit to use the default store.", max_length=64),
]
OrderId = Annotated[
    str, Field(description="OrderDesk order id, digits only, e.g. '1001'.", pattern=r"^[0-9]{1,20}$")
]
ItemId = Annotated[str, Field(description="Order item id, digits only.", pattern=r"^[0-9]{1,20}$")]
ShipmentId = Annotated[str, Field(description="Shipment id, digits only.", pattern=r"^[0-9]{1,20}$")]
InventoryId = Annotated[str, Field(description="Inventory item id, digits only.", pattern=r"^[0-9]{1,20}$")]
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


class DeleteResult(BaseModel):
    deleted: bool
    id: str


class MessageResult(BaseModel):
    message: str
    results: list[dict[str, Any]] = Field(default_factory=list)
    order: dict[str, Any] | None = None


class ListResult(BaseModel):
    items: list[dict[str, Any]]
    total_records: int
    records_returned: int
    offset: int = 0
    limit: int = 0
    next_offset: int | None = None
