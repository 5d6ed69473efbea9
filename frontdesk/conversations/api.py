"""HTTP API for conversations, messages, notes, tags, attachments and the customer timeline (agent+)."""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Path, Query, Request, UploadFile
from fastapi.responses import Response

from frontdesk.auth.deps import AgentDep
from frontdesk.conversations import service
from frontdesk.conversations.schemas import (
    AttachmentOut,
    ConversationCounts,
    ConversationCreate,
    ConversationOut,
    ConversationSort,
    ConversationUpdate,
    MessageOut,
    NoteIn,
    ReplyIn,
    TimelineItem,
    TimelineOrder,
)
from frontdesk.conversations.timeline import customer_timeline
from frontdesk.deps import SessionDep, StoreDep
from frontdesk.errors import NotFound, ServiceUnavailable
from frontdesk.models.enums import Channel
from frontdesk.openapi import problem as _problem
from frontdesk.pagination import Page
from frontdesk.storage import ObjectMissing, StorageError

router = APIRouter(
    tags=["conversations"],
    responses={
        400: _problem("The body could not be parsed"),
        401: _problem("Not signed in"),
        403: _problem("Role or token scope too low"),
        404: _problem("No such record"),
        422: _problem("Invalid input; `errors` names the fields"),
    },
)

Limit = Annotated[int, Query(ge=1, le=200, description="Page size (1-200).")]
Cursor = Annotated[str | None, Query(max_length=500, description="Opaque cursor from a previous page.")]
TagPath = Annotated[str, Path(min_length=1, max_length=64, description="Lower-case a-z, 0-9, '_' or '-'.")]


# -- conversations -------------------------------------------------------------------------------


@router.post("/conversations", response_model=ConversationOut, status_code=201, summary="Open a conversation")
async def create_conversation(body: ConversationCreate, session: SessionDep, principal: AgentDep) -> ConversationOut:
    conversation = await service.create_conversation(session, principal, body)
    return await service.conversation_view(session, conversation)


@router.get("/conversations", response_model=Page[ConversationOut], summary="List conversations")
async def list_conversations(
    session: SessionDep,
    principal: AgentDep,
    status: Annotated[
        str | None,
        Query(
            max_length=100,
            description="open, pending, snoozed or resolved; several comma-separated (open,pending) match any.",
        ),
    ] = None,
    assignee: Annotated[str | None, Query(max_length=40, description="'me', 'none' or a user id.")] = None,
    queue_id: uuid.UUID | None = None,
    team_id: uuid.UUID | None = None,
    channel: Channel | None = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    customer_id: uuid.UUID | None = None,
    inbox_id: uuid.UUID | None = None,
    sort: ConversationSort = ConversationSort.last_message_at,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[ConversationOut]:
    """Newest first by ``sort`` (last activity by default); pass ``next_cursor`` back as ``cursor``.

    ``sort=waiting``: the longest-waiting customer first (``waiting_since``; conversations nobody
    waits on last). ``sort=priority``: urgent, high, normal, low, each longest-waiting first.
    """
    filters = service.ConversationFilters(
        status=service.parse_statuses(status) or None,
        assignee=assignee,
        queue_id=queue_id,
        team_id=team_id,
        channel=channel,
        tag=tag,
        customer_id=customer_id,
        inbox_id=inbox_id,
    )
    rows, next_cursor = await service.list_conversations(
        session, principal.user_id, filters, sort=sort, cursor=cursor, limit=limit
    )
    return Page(items=await service.conversation_views(session, rows), next_cursor=next_cursor)


@router.get("/conversations/counts", response_model=ConversationCounts, summary="Counts for the desk's views")
async def conversation_counts(session: SessionDep, principal: AgentDep) -> ConversationCounts:
    """``mine``, ``unassigned``, ``all``, ``by_channel``, ``by_queue`` and ``by_tag`` count open and
    pending conversations; ``by_status`` counts every conversation by status."""
    return await service.conversation_counts(session, principal.user_id)


@router.get("/conversations/{conversation_id}", response_model=ConversationOut, summary="Read a conversation")
async def get_conversation(conversation_id: uuid.UUID, session: SessionDep, principal: AgentDep) -> ConversationOut:
    conversation = await service.get_conversation(session, conversation_id)
    return await service.conversation_view(session, conversation)


@router.patch(
    "/conversations/{conversation_id}",
    response_model=ConversationOut,
    summary="Change subject, priority, status or assignment",
)
async def update_conversation(
    conversation_id: uuid.UUID, body: ConversationUpdate, session: SessionDep, principal: AgentDep
) -> ConversationOut:
    conversation = await service.update_conversation(session, principal, conversation_id, body)
    return await service.conversation_view(session, conversation)


@router.put("/conversations/{conversation_id}/tags/{tag}", response_model=ConversationOut, summary="Tag a conversation")
async def add_tag(
    conversation_id: uuid.UUID, tag: TagPath, session: SessionDep, principal: AgentDep
) -> ConversationOut:
    conversation = await service.set_tag(session, conversation_id, tag, present=True)
    return await service.conversation_view(session, conversation)


@router.delete("/conversations/{conversation_id}/tags/{tag}", response_model=ConversationOut, summary="Remove a tag")
async def remove_tag(
    conversation_id: uuid.UUID, tag: TagPath, session: SessionDep, principal: AgentDep
) -> ConversationOut:
    conversation = await service.set_tag(session, conversation_id, tag, present=False)
    return await service.conversation_view(session, conversation)


# -- messages ------------------------------------------------------------------------------------


@router.get(
    "/conversations/{conversation_id}/messages",
    response_model=Page[MessageOut],
    summary="List a conversation's messages and notes",
)
async def list_messages(
    conversation_id: uuid.UUID,
    session: SessionDep,
    principal: AgentDep,
    after: Annotated[str | None, Query(max_length=500, description="Walk forward (newer) from this cursor.")] = None,
    before: Annotated[str | None, Query(max_length=500, description="Walk backward (older) from this cursor.")] = None,
    order: TimelineOrder = TimelineOrder.asc,
    limit: Limit = 50,
) -> Page[MessageOut]:
    """Oldest→newest from the start by default. ``order=desc`` starts from the newest and walks back.

    ``next_cursor`` continues the same walk: pass it as ``after`` when walking forward, as
    ``before`` when walking backward.
    """
    rows, next_cursor = await service.list_messages(
        session, conversation_id, after=after, before=before, newest_first=order is TimelineOrder.desc, limit=limit
    )
    return Page(items=await service.message_views(session, rows), next_cursor=next_cursor)


@router.post(
    "/conversations/{conversation_id}/messages",
    response_model=MessageOut,
    status_code=201,
    summary="Send an agent reply (queued for delivery)",
)
async def post_reply(conversation_id: uuid.UUID, body: ReplyIn, session: SessionDep, principal: AgentDep) -> MessageOut:
    message = await service.add_agent_reply(
        session, conversation_id, principal, body.text, body.html, body.channel, body.attachment_ids
    )
    return (await service.message_views(session, [message]))[0]


@router.post(
    "/conversations/{conversation_id}/notes",
    response_model=MessageOut,
    status_code=201,
    summary="Add an internal note (never sent to the customer)",
)
async def post_note(conversation_id: uuid.UUID, body: NoteIn, session: SessionDep, principal: AgentDep) -> MessageOut:
    message = await service.add_note(session, conversation_id, principal, body.text, body.html, body.attachment_ids)
    return (await service.message_views(session, [message]))[0]


@router.get("/messages/{message_id}", response_model=MessageOut, summary="Read a message")
async def get_message(message_id: uuid.UUID, session: SessionDep, principal: AgentDep) -> MessageOut:
    message = await service.get_message(session, message_id)
    return (await service.message_views(session, [message]))[0]


# -- attachments ---------------------------------------------------------------------------------

_CHUNK = 1024 * 1024


@router.post(
    "/attachments",
    response_model=AttachmentOut,
    status_code=201,
    summary="Upload a file to attach to a reply or note",
    responses={
        413: _problem("Larger than the configured limit"),
        415: _problem("Type not accepted"),
        503: _problem("The attachment store is not reachable"),
    },
)
async def upload_attachment(
    request: Request, session: SessionDep, principal: AgentDep, store: StoreDep, file: UploadFile = File(...)
) -> AttachmentOut:
    """Images, PDF, text, office documents and zip archives up to ``max_attachment_mb``.

    Returns the attachment id to send in ``attachment_ids`` of a reply or note.
    """
    max_bytes = request.app.state.settings.max_attachment_mb * 1024 * 1024
    chunks: list[bytes] = []
    size = 0
    while chunk := await file.read(_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise service.PayloadTooLarge(f"Attachments are limited to {max_bytes // (1024 * 1024)} MB.")
        chunks.append(chunk)
    try:
        attachment = await service.create_attachment(
            session,
            store,
            filename=file.filename,
            content_type=file.content_type,
            data=b"".join(chunks),
            max_bytes=max_bytes,
        )
    except StorageError as exc:
        raise ServiceUnavailable("The attachment store did not accept the file; try again.") from exc
    return service.attachment_view(attachment)


def content_disposition(filename: str) -> str:
    ascii_name = filename.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.get(
    "/attachments/{attachment_id}",
    response_class=Response,
    summary="Download an attachment",
    responses={
        200: {"content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}, "description": "The file"},
        503: _problem("The attachment store is not reachable"),
    },
)
async def download_attachment(
    attachment_id: uuid.UUID, session: SessionDep, principal: AgentDep, store: StoreDep
) -> Response:
    attachment = await service.get_attachment(session, attachment_id)
    try:
        data = await store.get(attachment.storage_key)
    except ObjectMissing as exc:
        raise NotFound(f"The file of attachment {attachment_id} is missing from the store.") from exc
    except StorageError as exc:
        raise ServiceUnavailable("The attachment store is not reachable; try again.") from exc
    return Response(
        content=data,
        media_type=attachment.content_type,
        headers={
            "Content-Disposition": content_disposition(service.safe_filename(attachment.filename)),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
            "Cache-Control": "private, no-store",
        },
    )


# -- timeline ------------------------------------------------------------------------------------


@router.get(
    "/customers/{customer_id}/timeline",
    response_model=Page[TimelineItem],
    summary="A customer's messages, notes, calls and events across every conversation and channel",
)
async def get_timeline(
    customer_id: uuid.UUID,
    session: SessionDep,
    principal: AgentDep,
    order: TimelineOrder = TimelineOrder.desc,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[TimelineItem]:
    items, next_cursor = await customer_timeline(session, customer_id, cursor=cursor, limit=limit, order=order)
    return Page(items=items, next_cursor=next_cursor)
