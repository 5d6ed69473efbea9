"""HTTP face of the inbound path: ``POST /api/v1/messages/inbound`` (and the bare ``/echo``).

The route is thin on purpose: parse, hand an :class:`InboundMessage` to the group-commit
writer (``app.state.ingest``), shape the answer. The writer commits before it answers, so a
2xx means the message is durable.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Body, Depends, Request, Response, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from frontdesk.auth.deps import AgentDep, require
from frontdesk.conversations.ingest import (
    MAX_EXTERNAL_ID,
    MAX_HTML_BYTES,
    MAX_NAME,
    MAX_SUBJECT,
    MAX_TEXT_BYTES,
    InboundMessage,
    IngestResult,
    IngestWriter,
)
from frontdesk.deps import json_body
from frontdesk.errors import BadRequest
from frontdesk.models.enums import Channel, IdentityKind, Role

router = APIRouter(tags=["messages"])

ECHO_MAX_BYTES = 16 * 1024
_require_agent = require(Role.agent)  # called directly by the hot-path route


class IdentityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: IdentityKind
    value: str = Field(min_length=1, max_length=320, examples=["ada@example.com"])


class InboundIn(BaseModel):
    """A message a customer sent, as the channel received it."""

    model_config = ConfigDict(extra="forbid")

    identity: IdentityIn = Field(description="Who sent it; normalised (E.164 phones, lower-cased emails).")
    name: str | None = Field(None, max_length=MAX_NAME, description="The sender's name, for a new customer.")
    channel: Channel
    inbox_id: uuid.UUID | None = Field(None, description="The inbox (channel instance) it arrived in.")
    external_id: str = Field(
        min_length=1,
        max_length=MAX_EXTERNAL_ID,
        description="The provider's id for this message (idempotency key, unique per channel).",
    )
    text: str = Field("", max_length=MAX_TEXT_BYTES, description="Plain text, at most 64 KB of UTF-8.")
    html: str | None = Field(None, max_length=MAX_HTML_BYTES, description="HTML body; sanitised before storage.")
    subject: str | None = Field(None, max_length=MAX_SUBJECT)
    occurred_at: AwareDatetime | None = Field(None, description="When the customer sent it (default: now).")


class InboundOut(BaseModel):
    message_id: uuid.UUID
    conversation_id: uuid.UUID
    customer_id: uuid.UUID
    duplicate: bool = Field(description="True when this external_id was received before; the ids are the original's.")


@router.post("/messages/inbound", include_in_schema=False)
async def post_inbound(request: Request) -> Response:
    """The hot path, lean: no FastAPI body parameter and no dependencies (resolving them cost the
    server more CPU than this route's own work), and no request session: the group-commit writer
    owns the unit of work. The same rules and errors as a body parameter (``deps.json_body``); the
    route below describes it in the OpenAPI document."""
    await _require_agent(request)
    body = await json_body(request, InboundIn)
    writer: IngestWriter = request.app.state.ingest
    result = await writer.submit(
        InboundMessage(
            identity_kind=body.identity.kind,
            identity_value=body.identity.value,
            channel=body.channel,
            external_id=body.external_id,
            text=body.text,
            name=body.name,
            inbox_id=body.inbox_id,
            html=body.html,
            subject=body.subject,
            occurred_at=body.occurred_at,
            verified=True,  # an authenticated token vouches for the sender (docs/architecture/ingest.md)
        )
    )
    return inbound_answer(result)


@router.post(
    "/messages/inbound",
    name="post_inbound",  # the operationId FastAPI gives the route above
    response_model=InboundOut,
    status_code=status.HTTP_201_CREATED,
    summary="Receive an inbound customer message (the path every channel adapter takes)",
    responses={200: {"model": InboundOut, "description": "Already received (same channel and external_id)."}},
)
async def _documented_post_inbound(body: InboundIn, principal: AgentDep) -> InboundOut:
    # Never answers: ``post_inbound`` is registered first for the same path and method, so it always
    # matches first. This declaration gives the OpenAPI document the body, the caller and the
    # answers as FastAPI describes them (no docstring: it would become the operation's description).
    raise AssertionError("post_inbound answers POST /messages/inbound")


def inbound_answer(result: IngestResult) -> Response:
    """The :class:`InboundOut` answer, serialised once here (hot path): returning the model would
    have FastAPI validate it again and then serialise it through ``jsonable_encoder``."""
    content = InboundOut(
        message_id=result.message_id,
        conversation_id=result.conversation_id,
        customer_id=result.customer_id,
        duplicate=not result.created,
    ).model_dump_json()
    code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
    return Response(content, status_code=code, media_type="application/json")


async def _small_body(request: Request) -> None:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > ECHO_MAX_BYTES):
        raise BadRequest(f"The body must be at most {ECHO_MAX_BYTES} bytes.")


@router.post(
    "/echo",
    response_model=dict[str, Any],
    status_code=status.HTTP_200_OK,
    summary="Echo a small JSON object (public; a reachability check and the benchmarks' ceiling)",
    dependencies=[Depends(_small_body)],
)
async def post_echo(payload: dict[str, Any] = Body(...)) -> dict[str, Any]:
    return payload
