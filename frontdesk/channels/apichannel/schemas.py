"""Shapes of the API channel: the signed inbound message and the secrets an admin rotates."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from frontdesk.conversations.ingest import MAX_HTML_BYTES, MAX_NAME, MAX_SUBJECT, MAX_TEXT_BYTES
from frontdesk.models.enums import IdentityKind

MAX_ATTACHMENTS = 5
MAX_ATTACHMENT_BASE64 = 8 * 1024 * 1024  # characters of base64 per file (6 MB of data)

SecretName = Literal["inbound_secret", "webhook_secret"]


class SenderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: IdentityKind = Field(description="How the customer is identified (email, phone, external_id…).")
    value: str = Field(min_length=1, max_length=320, examples=["ada@example.com"])
    name: str | None = Field(None, max_length=MAX_NAME, description="The sender's name, for a new customer.")


class AttachmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    content_type: Annotated[str, StringConstraints(min_length=3, max_length=200)] | None = None
    content_base64: str = Field(min_length=1, max_length=MAX_ATTACHMENT_BASE64, description="The file, base64.")


class ApiMessageIn(BaseModel):
    """One customer message posted by an integrator (authenticated by signature, not a token)."""

    model_config = ConfigDict(extra="forbid")

    sender: SenderIn
    text: str = Field("", max_length=MAX_TEXT_BYTES, description="Plain text, at most 64 KB of UTF-8.")
    html: str | None = Field(None, max_length=MAX_HTML_BYTES, description="HTML body; sanitised before storage.")
    subject: str | None = Field(None, max_length=MAX_SUBJECT)
    conversation_id: uuid.UUID | None = Field(
        None, description="Continue this conversation (it must belong to the sender; a resolved one reopens)."
    )
    occurred_at: AwareDatetime | None = Field(None, description="When the customer sent it (default: now).")
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)


class ApiMessageOut(BaseModel):
    message_id: uuid.UUID
    conversation_id: uuid.UUID
    customer_id: uuid.UUID
    duplicate: bool = Field(description="True when this Idempotency-Key was used before; the ids are the original's.")


class SecretsRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secrets: list[SecretName] = Field(
        default=["inbound_secret", "webhook_secret"],
        min_length=1,
        max_length=2,
        description="Which secrets to replace (default both).",
    )


class SecretsOut(BaseModel):
    """The new values, shown once: reading the inbox back masks them."""

    inbox_id: uuid.UUID
    inbound_secret: str | None = None
    webhook_secret: str | None = None
