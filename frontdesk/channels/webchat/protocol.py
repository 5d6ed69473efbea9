"""The widget's frames (docs/architecture/webchat-protocol.md), validated at the edge.

Client frames are parsed with :func:`parse_client_frame` (a discriminated union on ``type``);
anything else is answered with an ``error`` frame, never a crash. Server frames are built by the
small functions at the bottom so their shape lives in one place.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from frontdesk.customers.schemas import SafeStr, bounded_json_object

# Room for a message of MAX_TEXT_CHARS however its JSON escapes them (12 bytes for \ud83d\ude42).
MAX_FRAME_BYTES = 128 * 1024
MAX_TEXT_CHARS = 10_000
MAX_ATTACHMENTS = 10
MAX_TRACK_PROPERTIES_BYTES = 8 * 1024

EventName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.]+$", min_length=1, max_length=100)]


class _Frame(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Hello(_Frame):
    type: Literal["hello"]
    last_seq: int | None = Field(None, ge=0)
    # Refinement (optional): what the widget saw in ``welcome``; a mismatch means a snapshot.
    conversation_id: uuid.UUID | None = None
    epoch: Annotated[str, StringConstraints(max_length=100)] | None = None


class MessageFrame(_Frame):
    type: Literal["message"]
    client_id: uuid.UUID
    text: Annotated[SafeStr, StringConstraints(max_length=MAX_TEXT_CHARS)] = ""
    attachment_ids: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)


class Typing(_Frame):
    type: Literal["typing"]
    on: bool


class Read(_Frame):
    type: Literal["read"]
    message_id: uuid.UUID


class Prechat(_Frame):
    type: Literal["prechat"]
    name: Annotated[SafeStr, StringConstraints(max_length=300)] | None = None
    email: Annotated[SafeStr, StringConstraints(max_length=320)] | None = None


class ConfirmEmail(_Frame):
    """Ask for (another) link to prove an address given before (``prechat`` sends the first one)."""

    type: Literal["confirm_email"]
    email: Annotated[SafeStr, StringConstraints(min_length=3, max_length=320)]


class OfferAnswer(_Frame):
    type: Literal["offer_answer"]
    offer_id: Annotated[SafeStr, StringConstraints(min_length=1, max_length=200)]
    answer: Literal["accept", "decline"]


class Track(_Frame):
    type: Literal["track"]
    event: EventName
    properties: Annotated[dict[str, Any], bounded_json_object(MAX_TRACK_PROPERTIES_BYTES)] = Field(default_factory=dict)


class Ping(_Frame):
    type: Literal["ping"]


ClientFrame = Annotated[
    Hello | MessageFrame | Typing | Read | Prechat | ConfirmEmail | OfferAnswer | Track | Ping,
    Field(discriminator="type"),
]
_client_frame: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)


class FrameError(Exception):
    """A frame refused; ``client_id`` when it is a visitor message that names one."""

    def __init__(self, code: str, detail: str, client_id: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.client_id = client_id


_HEAD_MESSAGE = re.compile(r'"type"\s*:\s*"message"')
_HEAD_CLIENT_ID = re.compile(r'"client_id"\s*:\s*"([0-9A-Fa-f-]{36})"')
_TOO_LONG = f"a message is limited to {MAX_TEXT_CHARS} characters"


def _client_id(value: Any) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError):
        return None


def parse_client_frame(raw: str | bytes) -> ClientFrame:
    """One client frame, or :class:`FrameError` (``too_large`` / ``invalid``) saying what is wrong.

    A message over the limit is refused whole (``too_large``, with its ``client_id``), never cut.
    """
    if len(raw) > MAX_FRAME_BYTES:
        head = raw[:1024].decode(errors="replace") if isinstance(raw, bytes) else raw[:1024]
        found = _HEAD_CLIENT_ID.search(head)
        if _HEAD_MESSAGE.search(head) and found:
            detail = f"text: {_TOO_LONG}; this frame has {len(raw)} bytes. Nothing was stored."
            raise FrameError("too_large", detail, _client_id(found.group(1)))
        raise FrameError("too_large", f"frames are limited to {MAX_FRAME_BYTES} bytes")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FrameError("invalid", "frames must be JSON objects") from exc
    if not isinstance(data, dict):
        raise FrameError("invalid", "frames must be JSON objects")
    try:
        return _client_frame.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        client_id = _client_id(data.get("client_id")) if data.get("type") == "message" else None
        if (
            client_id
            and first.get("type") in ("too_long", "string_too_long")
            and tuple(first.get("loc", ()))[-1:] == ("text",)
        ):
            detail = f"text: {_TOO_LONG}; this one has {len(str(data.get('text')))}. Nothing was stored."
            raise FrameError("too_large", detail, client_id) from exc
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ClientFrameTypes) or "type"
        raise FrameError("invalid", f"{where}: {first.get('msg', 'invalid')}"[:300], client_id) from exc


ClientFrameTypes = ("hello", "message", "typing", "read", "prechat", "confirm_email", "offer_answer", "track", "ping")


# -- server frames ---------------------------------------------------------------------------------


def dumps(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame, default=str).decode()


def error(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"type": "error", "code": code, "detail": detail, **extra}


def ack(client_id: uuid.UUID, message_id: uuid.UUID, duplicate: bool) -> dict[str, Any]:
    return {"type": "ack", "client_id": str(client_id), "message_id": str(message_id), "duplicate": duplicate}
