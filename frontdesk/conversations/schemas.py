"""Request and response bodies of the conversations API (conversations, messages, attachments, timeline)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from frontdesk.models.enums import Channel, ConversationStatus, Priority

MAX_TEXT = 100_000
MAX_HTML = 500_000
MAX_TAGS = 20
MAX_ATTACHMENTS = 20


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- conversations -------------------------------------------------------------------------------


class ConversationCreate(_In):
    customer_id: uuid.UUID
    channel: Channel = Field(description="The channel the conversation started on.")
    inbox_id: uuid.UUID | None = None
    subject: str | None = Field(None, max_length=500)
    priority: Priority = Priority.normal
    queue_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None
    assignee_id: uuid.UUID | None = None
    tags: list[str] = Field(default_factory=list, max_length=MAX_TAGS, description="Contact reasons.")


class ConversationUpdate(_In):
    """Only the fields sent are changed; send ``null`` to clear assignee, team or queue."""

    subject: str | None = Field(None, max_length=500)
    priority: Priority | None = None
    status: ConversationStatus | None = None
    snoozed_until: datetime | None = Field(None, description="Required (and in the future) when status is snoozed.")
    assignee_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None
    queue_id: uuid.UUID | None = None
    note: str | None = Field(
        None, min_length=1, max_length=10_000, description="Why it was assigned or transferred; kept as a note."
    )


class ConversationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    customer_id: uuid.UUID
    customer_name: str | None = None
    channel: str
    inbox_id: uuid.UUID | None
    subject: str | None
    status: str
    priority: str
    queue_id: uuid.UUID | None
    assignee_id: uuid.UUID | None
    team_id: uuid.UUID | None
    tags: list[str] = Field(default_factory=list)
    snoozed_until: datetime | None
    last_message_at: datetime | None
    first_response_at: datetime | None
    first_response_seconds: int | None
    resolved_at: datetime | None
    resolution_seconds: int | None
    message_count: int
    last_message_preview: str | None = Field(
        None,
        description="The start of the last message or reply's text (notes excluded), on one line; null: none "
        "yet, or it has no text (see last_message_attachments and last_message_empty).",
    )
    last_message_attachments: list[str] = Field(
        default_factory=list,
        description="When the last message has no text: the file names of its attachments (at most 10), for "
        "the UI to describe it in the viewer's language.",
    )
    last_message_empty: bool = Field(
        False, description="The last message has neither text nor attachments (an email with only a subject)."
    )
    waiting_since: datetime | None = Field(
        None, description="Since when the customer has been waiting for an agent's reply (null: not waiting)."
    )
    created_at: datetime
    updated_at: datetime


class ConversationSort(StrEnum):
    """``last_message_at``/``created_at``: newest first. ``waiting``: longest-waiting customer first
    (not waiting last). ``priority``: urgent, high, normal, low, each longest-waiting first."""

    last_message_at = "last_message_at"
    created_at = "created_at"
    waiting = "waiting"
    priority = "priority"


class ConversationCounts(BaseModel):
    """Conversation counts for the desk's views. ``mine``, ``unassigned``, ``all``, ``by_channel``,
    ``by_queue`` and ``by_tag`` count open and pending conversations; ``by_status`` counts all."""

    mine: int
    unassigned: int
    all: int
    by_status: dict[str, int]
    by_channel: dict[str, int]
    by_queue: dict[str, int] = Field(description="Queue id → count (conversations in no queue are not listed).")
    by_tag: dict[str, int]


# -- attachments and messages --------------------------------------------------------------------


class AttachmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    message_id: uuid.UUID | None
    filename: str
    content_type: str
    size: int
    sha256: str
    created_at: datetime
    url: str = Field(description="Where to download the bytes (agent+).")


class ReplyIn(_In):
    text: str | None = Field(None, max_length=MAX_TEXT)
    html: str | None = Field(None, max_length=MAX_HTML, description="Sanitised; a text version is derived if no text.")
    channel: Channel | None = Field(None, description="Defaults to the conversation's channel.")
    attachment_ids: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)


class NoteIn(_In):
    text: str = Field(max_length=MAX_TEXT)
    html: str | None = Field(None, max_length=MAX_HTML)
    attachment_ids: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)


class MessageSenderOut(BaseModel):
    """Whose timeline an inbound email joined, and why (the identity rule)."""

    outcome: str = Field(
        description="new | new_verified | joined | joined_verified | joined_by_reply_address | kept_apart | proved"
    )
    reason: str = ""
    verified_owner_id: uuid.UUID | None = Field(None, description="The customer who holds the From address.")
    merge_suggestion_id: uuid.UUID | None = None


class MessageAuthOut(BaseModel):
    """An inbound email's sender authentication, checked on receipt (SPF, DKIM, DMARC)."""

    authenticated: bool = Field(description="DMARC passed: the From address is proven.")
    dmarc: str = Field(description="pass | fail | none | temperror | permerror")
    spf: str
    dkim: str
    from_domain: str | None = None
    domain: str | None = Field(None, description="The authenticated domain aligned with From (DMARC pass).")
    aligned: str | None = Field(None, description="dkim | spf: what made DMARC pass.")
    policy: str | None = Field(None, description="The sender domain's DMARC policy: none | quarantine | reject.")
    method: str = Field("none", description="smtp | authentication-results | none")
    authserv_id: str | None = None
    reason: str = ""
    sender: MessageSenderOut | None = None


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    conversation_id: uuid.UUID
    customer_id: uuid.UUID
    direction: str
    channel: str
    author_type: str
    author_id: uuid.UUID | None
    text: str
    html: str | None
    external_id: str | None
    delivery_status: str
    error: str | None
    created_at: datetime
    status_at: datetime | None
    attachments: list[AttachmentOut] = Field(default_factory=list)
    mentions: list[uuid.UUID] = Field(default_factory=list, description="Users @mentioned in a note.")
    auth: MessageAuthOut | None = Field(None, description="Inbound email only: who proved to have sent it.")


# -- timeline ------------------------------------------------------------------------------------


class TimelineKind(StrEnum):
    message = "message"
    note = "note"
    call = "call"
    event = "event"


class TimelineOrder(StrEnum):
    desc = "desc"
    asc = "asc"


class TimelineItem(BaseModel):
    kind: TimelineKind
    id: uuid.UUID
    at: datetime
    channel: str | None = None
    direction: str | None = None
    conversation_id: uuid.UUID | None = None
    text: str | None = Field(None, description="Message text (shortened; the full one is at /messages/{id}).")
    summary: str | None = None
    author_type: str | None = None
    author_id: uuid.UUID | None = None
    event_type: str | None = None
    source: str | None = None
    properties: dict[str, Any] | None = None


# -- canned responses ----------------------------------------------------------------------------


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


Shortcut = Annotated[
    str, BeforeValidator(_lower), StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")
]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


CannedTitle = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(_no_nul)
]
CannedBody = Annotated[str, StringConstraints(min_length=1, max_length=20_000), AfterValidator(_no_nul)]


class CannedCreate(_In):
    shortcut: Shortcut = Field(description="a-z, 0-9, '_' and '-' (lower-cased); unique per scope and owner.")
    title: CannedTitle
    body: CannedBody = Field(
        description="Plain text with variables such as {{customer.first_name}}, {{customer.attributes.order_number}}, "
        "{{agent.name}}, {{conversation.id}}."
    )
    scope: Literal["personal", "global"] = Field("personal", description="global: everyone's (admins only).")


class CannedUpdate(_In):
    shortcut: Shortcut | None = None
    title: CannedTitle | None = None
    body: CannedBody | None = None


class CannedOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    shortcut: str
    title: str
    body: str
    scope: str
    owner_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class CannedRendered(BaseModel):
    text: str
    missing: list[str] = Field(description="Variables that had no value (left empty), e.g. customer.email.")
