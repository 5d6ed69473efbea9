"""Customer events in and out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from frontdesk import clock
from frontdesk.customers.schemas import IdentityIn, SafeStr, bounded_json_object

MAX_PROPERTIES_BYTES = 32 * 1024
MAX_BATCH = 1000
MAX_FUTURE = timedelta(days=1)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)

EventType = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.]+$", min_length=1, max_length=100)]
Properties = Annotated[dict[str, Any], bounded_json_object(MAX_PROPERTIES_BYTES)]


class EventIn(BaseModel):
    """One thing that happened to a customer. Give ``customer_id`` or ``identity`` (not both).

    An ``identity`` nobody owns yet creates the customer, the way a CDP does.
    """

    model_config = ConfigDict(extra="forbid")

    type: EventType = Field(description="domain.verb style, e.g. order.shipped")
    customer_id: uuid.UUID | None = None
    identity: IdentityIn | None = None
    properties: Properties = Field(default_factory=dict, description="JSON object, at most 32 KB.")
    source: Annotated[SafeStr, StringConstraints(max_length=100)] | None = Field(
        None, description="The department or system that sent it."
    )
    occurred_at: AwareDatetime | None = Field(None, description="Defaults to now; at most one day ahead.")
    idempotency_key: Annotated[SafeStr, StringConstraints(min_length=1, max_length=200)] | None = Field(
        None, description="Sending the same key again returns the first event instead of a new one."
    )

    @field_validator("occurred_at")
    @classmethod
    def _not_far_future(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        try:
            value = value.astimezone(UTC)
        except OverflowError as exc:
            raise ValueError("is out of range") from exc
        if value < EARLIEST:
            raise ValueError("is before 1970")
        if value > clock.now() + MAX_FUTURE:
            raise ValueError("is more than one day in the future")
        return value

    @model_validator(mode="after")
    def _one_customer(self) -> EventIn:
        if (self.customer_id is None) == (self.identity is None):
            raise ValueError("give exactly one of customer_id or identity")
        return self


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    customer_id: uuid.UUID
    type: str
    properties: dict[str, Any]
    source: str | None
    occurred_at: datetime
    received_at: datetime
    idempotency_key: str | None
    duplicate: bool = Field(False, description="True when the idempotency key was seen before; this is the original.")


class EventBatchIn(BaseModel):
    """Documentation shape of a batch; items are validated one by one so a bad one fails alone."""

    events: list[EventIn] = Field(max_length=MAX_BATCH)


class BatchItemResult(BaseModel):
    index: int
    status: Literal["accepted", "duplicate", "rejected"]
    event_id: uuid.UUID | None = None
    error: str | None = None


class BatchResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[BatchItemResult]
