"""The web chat's Pydantic shapes: the widget session, uploads, read receipts, proactive notices and offers.

The socket's frames are in ``protocol.py``."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from frontdesk.customers.schemas import SafeStr


class WidgetOffer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    offer_id: Annotated[SafeStr, StringConstraints(min_length=1, max_length=200)]
    title: Annotated[SafeStr, StringConstraints(max_length=200)] = ""
    body: Annotated[SafeStr, StringConstraints(max_length=2000)] = ""
    accept_label: Annotated[SafeStr, StringConstraints(min_length=1, max_length=60)] = "Yes, please"
    decline_label: Annotated[SafeStr, StringConstraints(min_length=1, max_length=60)] = "No, thanks"


class NoticeIn(BaseModel):
    text: Annotated[SafeStr, StringConstraints(min_length=1, max_length=5000)]
    offer: WidgetOffer | None = Field(None)


Short = Annotated[SafeStr, StringConstraints(max_length=200)]


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inbox: Annotated[SafeStr, StringConstraints(min_length=1, max_length=64)] = Field(
        description="The web-chat inbox's public token."
    )
    visitor_token: Short | None = Field(None, description="The token this browser was given before, if any.")
    user_id: Annotated[SafeStr, StringConstraints(min_length=1, max_length=200)] | None = Field(
        None, description="Your site's user id (needs user_hash)."
    )
    user_hash: Annotated[SafeStr, StringConstraints(max_length=128)] | None = Field(
        None, description="hex HMAC-SHA256(user_id, the inbox's identity_secret), computed by your server."
    )
    name: Annotated[SafeStr, StringConstraints(max_length=300)] | None = None
    email: Annotated[SafeStr, StringConstraints(max_length=320)] | None = None
    locale: Annotated[SafeStr, StringConstraints(max_length=20)] | None = Field(
        None, description="The visitor's language (ru, pt-BR): the title and greeting come in it when the inbox has it."
    )
    page_url: Annotated[SafeStr, StringConstraints(max_length=2000)] | None = None


class VisitorCustomer(BaseModel):
    name: str | None
    email_known: bool


class Availability(BaseModel):
    open: bool
    agents_online: int = Field(
        description="Agents who can answer this inbox's chat now: desk open, available or busy, able for its queues."
    )
    reply_expectation: str = Field(description='"in a few minutes" or "by email"')
    next_open_at: str | None
    ask_email: bool


class SessionOut(BaseModel):
    visitor_token: str
    visitor_id: uuid.UUID
    customer: VisitorCustomer
    conversation_id: uuid.UUID | None
    availability: Availability
    config: dict[str, Any]


class WidgetAttachmentOut(BaseModel):
    id: uuid.UUID
    filename: str
    content_type: str
    size: int
    url: str = Field(description="A short-lived signed download link (relative to the server).")


class ReadOut(BaseModel):
    message_id: uuid.UUID
    read_by_agent_at: str


class NoticeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: uuid.UUID | None = None
    conversation_id: uuid.UUID | None = None
    text: Annotated[SafeStr, StringConstraints(min_length=1, max_length=5000)]
    offer: WidgetOffer | None = None


class NoticeOut(BaseModel):
    message_id: uuid.UUID
    conversation_id: uuid.UUID
