"""Webhook subscriptions and the dead-letter list: request and response shapes."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from frontdesk.events import CONVERSATION_UPDATED, MESSAGE_CREATED, MESSAGE_UPDATED

MAX_URL = 2000


class WebhookEvent(StrEnum):
    """Event types a subscription can ask for; ``*`` means every type (also ones added later)."""

    all = "*"
    conversation_created = "conversation.created"
    conversation_updated = CONVERSATION_UPDATED
    message_created = MESSAGE_CREATED
    message_updated = MESSAGE_UPDATED


def _check_url(value: str) -> str:
    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise ValueError("must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises on a bad port
    except ValueError as exc:
        raise ValueError(f"is not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("must name a host")
    if port == 0:
        raise ValueError("port 0 is not a valid port")
    return value


WebhookUrl = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=8, max_length=MAX_URL),
    AfterValidator(_check_url),
]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500, pattern=r"^[^\x00]*$")]


def _dedupe(events: list[WebhookEvent]) -> list[WebhookEvent]:
    return sorted(set(events), key=lambda e: list(WebhookEvent).index(e))


Events = Annotated[list[WebhookEvent], Field(min_length=1, max_length=8), AfterValidator(_dedupe)]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl = Field(description="Where events are POSTed (http or https).")
    events: Events = Field(description='Event types to receive; `["*"]` for all.')
    description: Description | None = None
    active: bool = True


class WebhookUpdate(BaseModel):
    """Only the fields sent change. The secret is changed with ``POST /webhooks/{id}/rotate-secret``."""

    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl | None = None
    events: Events | None = None
    description: Description | None = None
    active: bool | None = None


class WebhookOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    url: str
    events: list[str]
    description: str | None
    active: bool
    created_at: datetime
    updated_at: datetime


class WebhookWithSecret(WebhookOut):
    """Answered on create and on rotation only: the signing secret is never shown again."""

    secret: str = Field(description="HMAC-SHA256 key of `X-Frontdesk-Signature`; store it now.")


class DeadLetterOut(BaseModel):
    """An outbox item or a webhook delivery that ran out of attempts (or failed permanently)."""

    id: uuid.UUID
    kind: Literal["outbox", "webhook"]
    target: str | None = Field(description="The URL it was sent to, or the channel for non-HTTP channels.")
    attempts: int
    max_attempts: int
    last_error: str | None
    created_at: datetime
    last_attempt_due_at: datetime = Field(description="When the last attempt was due.")
    channel: str | None = None
    message_id: uuid.UUID | None = None
    conversation_id: uuid.UUID | None = None
    subscription_id: uuid.UUID | None = None
    event_type: str | None = None
    event_id: uuid.UUID | None = None


class ReplayOut(BaseModel):
    id: uuid.UUID
    kind: Literal["outbox", "webhook"]
    status: str = Field(description="`pending`: it will be sent again shortly with a fresh set of attempts.")


class OutboxItemOut(BaseModel):
    id: uuid.UUID
    status: str = Field(description="`pending`, `running` or `failed` (a delivered item is deleted).")
    attempts: int
    max_attempts: int
    last_error: str | None
    due_at: datetime


class DeliveryOut(BaseModel):
    """Why an outbound message was (not) delivered — for admins. Agents read only `error`."""

    message_id: uuid.UUID
    conversation_id: uuid.UUID
    channel: str
    delivery_status: str
    status_at: datetime | None
    external_id: str | None
    error: str | None = Field(description='What agents see: "delivery failed" (or "…; retrying"), never why.')
    error_detail: str | None = Field(
        description="Why: the receiver's status and a bounded excerpt of its answer, a refused address, "
        "the relay's reply."
    )
    target: str | None = Field(description="The webhook URL of an API inbox, else null.")
    outbox: OutboxItemOut | None = Field(description="The delivery job while it is queued, retrying or failed.")
