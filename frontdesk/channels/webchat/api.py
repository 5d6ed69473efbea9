"""Web chat over HTTP and WebSocket (no prefix: the paths are written out).

- ``GET /widget.js`` — the widget loader (``frontdesk/web/static/widget.js``), cached for a day;
- ``POST /api/v1/widget/sessions`` — start or resume a visitor (public; CORS for any site);
- ``GET /widget/ws`` — the widget's socket (docs/architecture/webchat-protocol.md);
- ``POST /api/v1/widget/attachments`` / ``GET /api/v1/widget/attachments/{id}?expires=…&sig=…`` —
  visitor files (downloads by short-lived signed link, ``links.py``);
- ``POST /api/v1/widget/messages/{id}/read`` — an agent read a visitor's message (agent+);
- ``POST /api/v1/widget/notices`` — send a proactive notice or offer to a customer's widget (agent+);
- ``GET``/``POST /confirm-email/{token}`` — the page of the link e-mailed to prove an address (``confirm.py``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Request, Response, UploadFile
from fastapi.routing import APIRoute
from starlette.responses import FileResponse, HTMLResponse

from frontdesk.auth.deps import AgentDep
from frontdesk.channels.webchat import (
    availability,
    confirm,
    links,
    notices,
    receipts,
    runtime,
    snapshot,
    uploads,
    visitor,
)
from frontdesk.channels.webchat.schemas import (
    Availability,
    NoticeOut,
    NoticeRequest,
    ReadOut,
    SessionIn,
    SessionOut,
    VisitorCustomer,
    WidgetAttachmentOut,
)
from frontdesk.conversations.api import StoreDep, content_disposition
from frontdesk.conversations.service import PayloadTooLarge, create_attachment, resolve_content_type, safe_filename
from frontdesk.db import get_or_404
from frontdesk.deps import SessionDep
from frontdesk.errors import Forbidden, NotFound, ServiceUnavailable, TooManyRequests, Unauthorized
from frontdesk.models import Attachment, Inbox, WebchatUpload
from frontdesk.models.enums import Channel
from frontdesk.storage import ObjectMissing, StorageError

log = logging.getLogger(__name__)

WIDGET_JS = Path(__file__).resolve().parents[2] / "web" / "static" / "widget.js"
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "86400",
}


class _CorsRoute(APIRoute):
    """Public widget endpoints answer any site (no cookies are used), errors included."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                response = await inner(request)
            except Exception as exc:
                found = None
                for cls in type(exc).__mro__:
                    found = request.app.exception_handlers.get(cls)
                    if found is not None:
                        break
                if found is None:
                    raise
                response = await found(request, exc)
            response.headers.update(CORS_HEADERS)
            return response

        return handler


router = APIRouter(tags=["web chat"])
public = APIRouter(tags=["web chat"], route_class=_CorsRoute)

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}


# -- the loader ----------------------------------------------------------------------------------


@router.get(
    "/widget.js",
    summary="The chat widget loader (embed with <script src=/widget.js data-inbox=PUBLIC_TOKEN>)",
    response_class=FileResponse,
    responses={200: {"content": {"text/javascript": {}}}, 503: _PROBLEM},
)
async def widget_js() -> Response:
    if not WIDGET_JS.is_file():
        raise ServiceUnavailable("The widget script is not installed on this server.")
    return FileResponse(
        WIDGET_JS,
        media_type="text/javascript; charset=utf-8",
        headers={
            "Cache-Control": "public, max-age=86400, stale-while-revalidate=604800",
            "Access-Control-Allow-Origin": "*",
            "X-Content-Type-Options": "nosniff",
        },
    )


# -- sessions --------------------------------------------------------------------------------------


async def _inbox(session: Any, public_token: str) -> Inbox:
    return await snapshot.public_inbox(session, public_token)


@public.options("/api/v1/widget/{path:path}", include_in_schema=False)
async def widget_preflight(path: str) -> Response:
    return Response(status_code=204, headers=CORS_HEADERS)


@public.post(
    "/api/v1/widget/sessions",
    response_model=SessionOut,
    status_code=200,
    summary="Start or resume a web-chat visitor (public)",
    responses={403: _PROBLEM, 404: _PROBLEM, 429: _PROBLEM},
)
async def start_session(body: SessionIn, request: Request, session: SessionDep) -> SessionOut:
    """Returns the (possibly new) signed visitor token, availability and the widget config.

    ``user_id`` must come with its ``user_hash``; a wrong or missing hash is a 403 and nothing
    is trusted. A known ``email`` joins that customer (see docs/channels/webchat.md).
    """
    app = request.app
    rt = runtime.runtime(app)
    settings = app.state.settings
    inbox = await _inbox(session, body.inbox)
    if not snapshot.origin_allowed(inbox, request.headers.get("origin")):
        from frontdesk.errors import Forbidden

        raise Forbidden("This site may not embed this inbox's widget (allowed_origins).")
    ip = runtime.client_ip(request.client)
    if visitor.verify_token(rt.key, body.visitor_token) is None:
        wait = await rt.limiter.hit(f"session-ip:{ip}", settings.widget_messages_per_minute * 5)
        if wait is not None:
            raise TooManyRequests(
                f"Too many new chat visitors from this address; retry in {wait} s.", headers={"Retry-After": str(wait)}
            )
    result = await visitor.start_session(
        session,
        inbox,
        rt.key,
        visitor_token=body.visitor_token,
        user_id=body.user_id,
        user_hash_given=body.user_hash,
        name=body.name,
        email=body.email,
        locale=body.locale,
        max_identities=settings.max_identities_per_customer,
    )
    known = await visitor.email_known(session, result.customer.id)
    conversation = await snapshot.open_conversation(session, result.customer.id, inbox.id)
    agents = await rt.agents_online(session, inbox)
    return SessionOut(
        visitor_token=result.token,
        visitor_id=result.visitor.id,
        customer=VisitorCustomer(name=result.customer.name, email_known=known),
        conversation_id=conversation.id if conversation else None,
        availability=Availability(**availability.availability(inbox, agents, email_known=known)),
        config=snapshot.widget_config(inbox, settings.widget_max_attachment_mb, body.locale),
    )


# -- attachments -------------------------------------------------------------------------------------


async def _visitor_of(session: Any, rt: runtime.Runtime, token: str | None) -> Any:
    visitor_id = visitor.verify_token(rt.key, token)
    found = await visitor.get_visitor(session, visitor_id) if visitor_id else None
    if found is None:
        raise Unauthorized("A valid visitor token is needed.", headers={"WWW-Authenticate": "Visitor"})
    return found


@public.post(
    "/api/v1/widget/attachments",
    response_model=WidgetAttachmentOut,
    status_code=201,
    summary="Upload a file to send in the chat (images, PDF; header Authorization: Visitor <token>)",
    responses={401: _PROBLEM, 413: _PROBLEM, 415: _PROBLEM, 429: _PROBLEM, 503: _PROBLEM},
)
async def upload(
    request: Request, session: SessionDep, store: StoreDep, file: UploadFile = File(...)
) -> WidgetAttachmentOut:
    app = request.app
    rt = runtime.runtime(app)
    settings = app.state.settings
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    who = await _visitor_of(session, rt, token.strip() if scheme.lower() == "visitor" else None)
    limit = settings.widget_messages_per_minute
    for key, n in ((f"visitor:{who.id}", limit), (f"ip:{runtime.client_ip(request.client)}", limit * 5)):
        wait = await rt.limiter.hit(key, n)
        if wait is not None:
            raise TooManyRequests(f"Too many messages; retry in {wait} s.", headers={"Retry-After": str(wait)})
    max_bytes = settings.widget_max_attachment_mb * 1024 * 1024
    chunks: list[bytes] = []
    size = 0
    while chunk := await file.read(1024 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"Files are limited to {settings.widget_max_attachment_mb} MB.")
        chunks.append(chunk)
    data = b"".join(chunks)
    name = safe_filename(file.filename)
    content_type = resolve_content_type(file.content_type, name)
    uploads.check_upload(content_type, data)
    try:
        attachment = await create_attachment(
            session, store, filename=name, content_type=content_type, data=data, max_bytes=max_bytes
        )
    except StorageError as exc:
        raise ServiceUnavailable("The attachment store did not accept the file; try again.") from exc
    session.add(WebchatUpload(attachment_id=attachment.id, visitor_id=who.id))
    await session.flush()
    return WidgetAttachmentOut(
        id=attachment.id,
        filename=attachment.filename,
        content_type=attachment.content_type,
        size=attachment.size,
        url=links.signed_url(links.link_key(rt.key), attachment.id),
    )


@public.get(
    "/api/v1/widget/attachments/{attachment_id}",
    summary="Download a file of your conversation by the signed link the widget was given",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}},
        401: _PROBLEM,
        403: _PROBLEM,
        404: _PROBLEM,
        503: _PROBLEM,
    },
)
async def download(
    attachment_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    store: StoreDep,
    expires: Annotated[int | None, Query(ge=0, le=2**40, description="From the signed link.")] = None,
    sig: Annotated[str | None, Query(max_length=64, description="From the signed link.")] = None,
    visitor_token: Annotated[
        str | None, Query(max_length=200, description="Deprecated: use the signed link (tokens in URLs get logged).")
    ] = None,
) -> Response:
    """Attachments in widget frames carry ``url`` = this path with ``expires`` and ``sig`` (good for an
    hour or so). ``?visitor_token=`` still works for widgets cached before that change."""
    rt = runtime.runtime(request.app)
    if sig is not None and expires is not None:
        if (why := links.check(links.link_key(rt.key), attachment_id, expires, sig)) is not None:
            raise Forbidden(why)
        attachment = await get_or_404(session, Attachment, attachment_id, "attachment")
    else:
        who = await _visitor_of(session, rt, visitor_token)
        attachment = await uploads.visible_attachment(session, who.customer_id, who.id, attachment_id)
    try:
        data = await store.get(attachment.storage_key)
    except ObjectMissing as exc:
        raise NotFound(f"The file of attachment {attachment_id} is missing.") from exc
    except StorageError as exc:
        raise ServiceUnavailable("The attachment store is not reachable; try again.") from exc
    inline = attachment.content_type.startswith("image/")
    disposition = content_disposition(attachment.filename)
    if inline:
        disposition = "inline" + disposition[len("attachment") :]
    return Response(
        data,
        media_type=attachment.content_type,
        headers={
            "Content-Disposition": disposition,
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, max-age=3600",
        },
    )


# -- agent side ------------------------------------------------------------------------------------


@router.post(
    "/api/v1/widget/messages/{message_id}/read",
    response_model=ReadOut,
    status_code=200,
    summary="Mark a customer's web-chat message read (the visitor sees a read receipt)",
    responses={404: _PROBLEM, 422: _PROBLEM},
)
async def agent_read(message_id: uuid.UUID, session: SessionDep, principal: AgentDep) -> ReadOut:
    message = await receipts.mark_read_by_agent(session, message_id, principal.user_id)
    return ReadOut(message_id=message.id, read_by_agent_at=str(message.meta["read_by_agent_at"]))


@router.post(
    "/api/v1/widget/notices",
    response_model=NoticeOut,
    status_code=201,
    summary="Show a proactive notice or offer in a customer's chat widget",
    responses={404: _PROBLEM, 422: _PROBLEM},
)
async def post_notice(body: NoticeRequest, session: SessionDep, principal: AgentDep) -> NoticeOut:
    from frontdesk.conversations.service import get_conversation
    from frontdesk.errors import Invalid

    if (body.customer_id is None) == (body.conversation_id is None):
        raise Invalid("give exactly one of customer_id or conversation_id", field="customer_id")
    target: Any = body.customer_id
    if body.conversation_id is not None:
        target = await get_conversation(session, body.conversation_id)
        if target.channel != Channel.webchat.value:
            raise Invalid("the conversation is not a web chat", field="conversation_id")
    message = await notices.send_widget_notice(session, target, body.text, offer=body.offer)
    return NoticeOut(message_id=message.id, conversation_id=message.conversation_id)


# -- the e-mailed confirmation link (a page for people, not part of the API) -------------------------


def _confirm_page(request: Request, state: str, email: str | None, token: str, status: int) -> Response:
    from frontdesk.web import i18n
    from frontdesk.web.pages import CSP, templates

    lang = i18n.pick_language(request.headers.get("accept-language"))
    html = templates.get_template("confirm_email.html").render(
        lang=lang,
        _=i18n.translator(lang),
        state=state,
        email=email or "",
        action=confirm.PATH.format(token=token),
    )
    return HTMLResponse(
        html,
        status_code=status,
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            # The token is in the path: never send it to another site.
            "Referrer-Policy": "no-referrer",
            "Vary": "Accept-Language",
        },
    )


_CONFIRM_STATUS = {"ok": 200, "merged": 200, "verified": 200, "suggested": 200, "used": 410, "expired": 410}


@router.get("/confirm-email/{token}", include_in_schema=False)
async def confirm_email_page(token: str, request: Request, session: SessionDep) -> Response:
    """Asks "is this you?": opening a link proves nothing (mail scanners open links); the button does."""
    opened = await confirm.look_up(session, token)
    email = opened.confirmation.email if opened.confirmation else None
    return _confirm_page(request, opened.state, email, token, _CONFIRM_STATUS.get(opened.state, 404))


@router.post("/confirm-email/{token}", include_in_schema=False)
async def confirm_email(token: str, request: Request, session: SessionDep) -> Response:
    done = await confirm.confirm(session, token)
    return _confirm_page(request, done.outcome, done.email, token, _CONFIRM_STATUS.get(done.outcome, 404))


# -- the socket -------------------------------------------------------------------------------------

from frontdesk.channels.webchat.socket import widget_socket  # noqa: E402

router.add_api_websocket_route("/widget/ws", widget_socket, name="widget_socket")
router.include_router(public)
