"""The API channel's routes: signed inbound messages, and rotating an API inbox's secrets.

``POST /inboxes/{inbox_id}/messages`` is public in the token sense: it is authenticated by the
inbox's ``inbound_secret`` (HMAC signature). The route reads the raw body itself (the signature
covers the exact bytes); everything refused is answered with a problem AND kept raw in
``rejected_inputs`` (source ``api.inbound``). See docs/channels/api.md.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response, status

from frontdesk.auth.deps import AdminDep
from frontdesk.channels.apichannel import inbound, inbox_secrets
from frontdesk.channels.apichannel.schemas import ApiMessageIn, ApiMessageOut, SecretsOut, SecretsRotate
from frontdesk.deps import SessionDep, store_of
from frontdesk.errors import ProblemError, problem_response
from frontdesk.openapi import problem, request_body

router = APIRouter(tags=["api channel"])

MAX_BODY = 10 * 1024 * 1024


async def _read_body(request: Request) -> tuple[bytes, bool]:
    """The raw body (cut at ``MAX_BODY``) and whether it was too large."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            chunks.append(chunk[: max(0, MAX_BODY - (size - len(chunk)))])
            return b"".join(chunks), True
        chunks.append(chunk)
    return b"".join(chunks), False


@router.post(
    "/inboxes/{inbox_id}/messages",
    response_model=ApiMessageOut,
    status_code=status.HTTP_201_CREATED,
    summary="Post a customer message to an API inbox (signed with the inbox's inbound_secret)",
    description='Authenticated by `X-Frontdesk-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">` '
    "keyed with the inbox's `inbound_secret`, and `X-Frontdesk-Timestamp` (Unix seconds, at most 5 minutes "
    "off). `Idempotency-Key` is required: a repeat answers 200 with `duplicate: true` and the original ids. "
    "Refused requests are kept raw for inspection.",
    openapi_extra=request_body(ApiMessageIn),
    responses={
        200: {"model": ApiMessageOut, "description": "Already received (same Idempotency-Key)."},
        401: problem("Signature missing or wrong, or the timestamp is stale"),
        404: problem("No active API inbox with that id"),
        413: problem("Body larger than 10 MB"),
    },
)
async def post_message(
    inbox_id: uuid.UUID,
    request: Request,
    response: Response,
    x_frontdesk_signature: Annotated[str | None, Header(description="sha256=<hex HMAC>")] = None,
    x_frontdesk_timestamp: Annotated[str | None, Header(description="Unix seconds when signed")] = None,
    idempotency_key: Annotated[str | None, Header(description="Unique per message; becomes its external id")] = None,
) -> Any:
    db = request.app.state.db
    body, too_big = await _read_body(request)

    async def keep(reason: str) -> None:
        await inbound.keep_refused(
            db, body, f"inbox {inbox_id}: {reason}", request.headers.get("content-type"), inbox_id=inbox_id,
            client_ip=request.client.host if request.client else "unknown", signature=x_frontdesk_signature,
            timestamp=x_frontdesk_timestamp, idempotency_key=idempotency_key, settings=request.app.state.settings,
        )  # fmt: skip

    if too_big:
        reason = f"body larger than {MAX_BODY} bytes"
        await keep(reason)
        return problem_response(413, "Payload too large", reason, slug="too-large", instance=request.url.path)
    try:
        result = await inbound.accept(
            db,
            request.app.state.ingest,
            inbox_id,
            body,
            signature=x_frontdesk_signature,
            timestamp=x_frontdesk_timestamp,
            idempotency_key=idempotency_key,
            get_store=lambda: store_of(request),
            max_attachment_bytes=request.app.state.settings.max_attachment_mb * 1024 * 1024,
        )
    except ProblemError as exc:
        if exc.status != 503:  # our outage, not their input: they retry
            await keep(f"{exc.status} {exc.detail}")
        raise
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return ApiMessageOut(
        message_id=result.message_id,
        conversation_id=result.conversation_id,
        customer_id=result.customer_id,
        duplicate=not result.created,
    )


@router.post(
    "/inboxes/{inbox_id}/secrets",
    response_model=SecretsOut,
    summary="Rotate an API inbox's inbound_secret and/or webhook_secret (new values shown once)",
)
async def rotate_secrets(
    inbox_id: uuid.UUID, session: SessionDep, principal: AdminDep, body: SecretsRotate | None = None
) -> SecretsOut:
    which: list[str] = list(body.secrets) if body is not None else list(inbox_secrets.SECRET_KEYS)
    values = await inbox_secrets.rotate_secrets(session, principal, inbox_id, which)
    return SecretsOut(inbox_id=inbox_id, **values)
