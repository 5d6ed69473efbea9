"""The e-mail channel's Pydantic shapes: the local mail catcher's answers (``/api/v1/caught-mail``)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class CaughtMailOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: uuid.UUID
    message_id: uuid.UUID | None = Field(
        description="The outbound message (its delivery_status is `caught`); none for mail Frontdesk wrote "
        "itself (a confirmation link)."
    )
    conversation_id: uuid.UUID | None
    from_: str = Field(alias="from", serialization_alias="from")
    to: str
    subject: str
    header_message_id: str = Field(description="The Message-ID header.")
    size: int = Field(description="Bytes of the .eml.")
    created_at: datetime


class CaughtAttachment(BaseModel):
    filename: str
    content_type: str
    size: int


class CaughtMailDetail(CaughtMailOut):
    headers: list[tuple[str, str]] = Field(description="Every header, in order, unfolded.")
    text: str | None = Field(description="The text/plain body.")
    html: str | None = Field(description="The text/html body: show it sandboxed, never as part of a page.")
    attachments: list[CaughtAttachment]


class ClearedOut(BaseModel):
    deleted: int
