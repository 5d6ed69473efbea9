"""Answers of ``GET /api/v1/search``."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class IdentityHit(BaseModel):
    kind: str
    value: str


class CustomerHit(BaseModel):
    id: uuid.UUID
    name: str | None
    identities: list[IdentityHit] = Field(default_factory=list)
    satisfaction_tier: str


class ConversationHit(BaseModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    customer_name: str | None
    channel: str
    status: str
    subject: str | None
    last_message_at: datetime | None
    snippet: str = Field(description="Plain text around the match (escape it before display).")
    message_id: uuid.UUID | None = Field(
        None, description="The matching message (the newest one that matched); null when the subject matched."
    )


class SearchResults(BaseModel):
    customers: list[CustomerHit]
    conversations: list[ConversationHit]
