"""The API channel's inbound side: signed messages from an integrator → ``InboundMessage`` → ingest.

Inbound (``POST /api/v1/inboxes/{id}/messages``) is authenticated by the inbox's
``inbound_secret``, not a user token: :func:`accept` checks the inbox, the signature
(``frontdesk.signing.verify``: HMAC-SHA256 of ``"<timestamp>.<raw body>"``), the timestamp's
freshness (replay protection), the ``Idempotency-Key`` and the body, then hands the message to
the group-commit ingest writer. The sender's identity counts as proven (the integrator, holding
the inbound secret, vouches): a new one is stored verified, and one a claimant held unverified
moves to the sender's own customer (``conversations.ingest``). ``Idempotency-Key`` becomes the
message's ``external_id``, namespaced by inbox (``<inbox id>:<key>``) so two integrations never
collide. Whatever is refused is kept raw in ``rejected_inputs`` (source :data:`REJECTED_SOURCE`)
by the route.

This path runs outside a request unit of work (like ``/messages/inbound``): it takes the
``Database`` and opens short transactions itself. Outbound for API inboxes is
``frontdesk.channels.apichannel.outbound``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import select

from frontdesk.auth import revocation
from frontdesk.channels.apichannel.schemas import ApiMessageIn
from frontdesk.conversations import delivery
from frontdesk.conversations.ingest import InboundMessage, IngestResult, IngestWriter
from frontdesk.db import Database
from frontdesk.errors import Invalid, NotFound, ProblemError, Unauthorized
from frontdesk.models import Inbox
from frontdesk.models.enums import Channel
from frontdesk.signing import TOLERANCE_SECONDS, fresh, verify
from frontdesk.storage import AttachmentStore

REJECTED_SOURCE = "api.inbound"
MAX_KEY = 255


async def keep_refused(
    db: Database,
    body: bytes,
    reason: str,
    content_type: str | None,
    *,
    inbox_id: uuid.UUID,
    client_ip: str,
    signature: str | None,
    timestamp: str | None,
    idempotency_key: str | None,
    settings: Any = None,
) -> None:
    """Keep a refused request through the one rejected-input keeper (its own transaction: the
    request failed). Only a request signed for a real, active API inbox is a known sender: its
    body is kept whole (replayable, limited per inbox) and linked to the sender it names. Anything
    else — an unknown inbox, a missing or wrong signature, a stale timestamp — is anonymous: an
    excerpt, limited per client IP (see ``frontdesk/rejected/service.py``)."""
    from frontdesk.rejected import service as rejected

    signed = False
    with contextlib.suppress(ProblemError):
        _found, config = await _api_inbox(db, inbox_id)
        check_signature(config, body, signature, timestamp)
        signed = True
    async with db.transaction() as session:
        await rejected.keep_json(
            session,
            source=REJECTED_SOURCE,
            reason=reason,
            body=body,
            content_type=content_type,
            origin=f"inbox:{inbox_id}" if signed else f"ip:{client_ip}",
            anonymous=not signed,
            meta={"inbox_id": str(inbox_id), "idempotency_key": (idempotency_key or "")[: MAX_KEY + 1]}
            if signed
            else {},
            identity_at="sender",
            customer_id_at=None,
            settings=settings,
        )


# The active API inboxes' rows, by id, while the credential generation they were read at is
# current (``revocation.generation``): rotating a secret or switching an inbox off is a credential
# change, which retires every entry in this process at once and in the others when their watcher
# hears of it. ``INBOX_TTL_SECONDS`` bounds an entry's life should both of those fail. Unknown or
# inactive inboxes are not kept (an inbox made later is found at once).
INBOX_TTL_SECONDS = 10.0
INBOX_CACHE_MAX = 1_000
_inboxes: dict[uuid.UUID, tuple[float, int, tuple[uuid.UUID, dict[str, Any]]]] = {}


async def _api_inbox(db: Database, inbox_id: uuid.UUID) -> tuple[uuid.UUID, dict[str, Any]]:
    """The active API inbox ``inbox_id``: (id, config); :class:`NotFound` otherwise. Read once per
    credential generation (a database read per request was a fifth of the API channel's CPU)."""
    generation = revocation.generation()
    entry = _inboxes.get(inbox_id)
    if entry is not None and entry[1] == generation and entry[0] > time.monotonic():
        return entry[2]
    found = await _read_api_inbox(db, inbox_id)
    if len(_inboxes) >= INBOX_CACHE_MAX:
        _inboxes.clear()
    # Read at ``generation``: a change committed meanwhile has moved it on, so this entry is stale at once.
    _inboxes[inbox_id] = (time.monotonic() + INBOX_TTL_SECONDS, generation, found)
    return found


async def _read_api_inbox(db: Database, inbox_id: uuid.UUID) -> tuple[uuid.UUID, dict[str, Any]]:
    async with db.sessionmaker() as session:
        row = (
            await session.execute(
                select(Inbox.id, Inbox.config).where(
                    Inbox.id == inbox_id, Inbox.is_active.is_(True), Inbox.channel == Channel.api.value
                )
            )
        ).first()
    if row is None:
        raise NotFound(f"No active API inbox with id {inbox_id}.")
    return row[0], dict(row[1] or {})


def check_signature(config: dict[str, Any], body: bytes, signature: str | None, timestamp: str | None) -> None:
    """Raise :class:`Unauthorized` unless ``signature`` signs ``timestamp.body`` with the inbound secret."""
    secret = config.get("inbound_secret")
    if not isinstance(secret, str) or not secret:
        raise Unauthorized(
            "This inbox has no inbound_secret; an admin sets one with POST /api/v1/inboxes/{id}/secrets."
        )
    if not signature or not timestamp:
        raise Unauthorized("X-Frontdesk-Signature and X-Frontdesk-Timestamp headers are required.")
    if not verify(body, secret, signature, timestamp.strip()):
        raise Unauthorized(
            'X-Frontdesk-Signature does not match: sign "<timestamp>.<raw body>" with the inbound_secret.'
        )
    if not fresh(timestamp):
        raise Unauthorized(
            f"X-Frontdesk-Timestamp is more than {TOLERANCE_SECONDS // 60} minutes from the server's clock "
            "(Unix seconds expected); a replayed or delayed request is refused."
        )


def _check_key(key: str | None) -> str:
    if key is None or not key.strip():
        raise Invalid("the Idempotency-Key header is required (a unique id per message)", field="Idempotency-Key")
    key = key.strip()
    if len(key) > MAX_KEY or not key.isprintable() or not key.isascii():
        raise Invalid(f"Idempotency-Key must be printable ASCII, at most {MAX_KEY} characters", field="Idempotency-Key")
    return key


def _parse(body: bytes) -> ApiMessageIn:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Invalid("the body is not JSON" if body.strip() else "the body is empty", field="body") from exc
    try:
        return ApiMessageIn.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e.get("loc", ())) or "body", "message": e.get("msg", "invalid")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        detail = f"{first['field']}: {first['message']}"
        if len(errors) > 1:
            detail += f" (and {len(errors) - 1} more)"
        raise Invalid(detail, extra={"errors": errors}) from exc


async def _store_attachments(
    db: Database, get_store: Callable[[], AttachmentStore], msg: ApiMessageIn, max_bytes: int
) -> tuple[uuid.UUID, ...]:
    if not msg.attachments:
        return ()
    from frontdesk.conversations.service import create_attachment

    decoded: list[tuple[str, str | None, bytes]] = []
    for i, att in enumerate(msg.attachments):
        try:
            data = base64.b64decode(att.content_base64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise Invalid("is not valid base64", field=f"attachments.{i}.content_base64") from exc
        decoded.append((att.filename, att.content_type, data))
    store = get_store()
    ids: list[uuid.UUID] = []
    async with db.transaction() as session:
        for filename, content_type, data in decoded:
            attachment = await create_attachment(
                session, store, filename=filename, content_type=content_type, data=data, max_bytes=max_bytes
            )
            ids.append(attachment.id)
    return tuple(ids)


async def _already_received(db: Database, external_id: str) -> bool:
    async with db.sessionmaker() as session:
        return await delivery.stored_message_id(session, Channel.api.value, external_id) is not None


async def accept(
    db: Database,
    ingest: IngestWriter,
    inbox_id: uuid.UUID,
    body: bytes,
    *,
    signature: str | None,
    timestamp: str | None,
    idempotency_key: str | None,
    get_store: Callable[[], AttachmentStore],
    max_attachment_bytes: int,
    vouched: bool = False,
) -> IngestResult:
    """Verify and store one signed inbound message; raises a ``ProblemError`` to refuse it.

    ``vouched``: an admin replays a request kept as rejected (``frontdesk.rejected.replay``); its
    signature and timestamp were checked when it came and are not checked again."""
    found_id, config = await _api_inbox(db, inbox_id)
    if not vouched:
        check_signature(config, body, signature, timestamp)
    key = _check_key(idempotency_key)
    msg = _parse(body)
    external_id = f"{found_id}:{key}"
    attachment_ids: tuple[uuid.UUID, ...] = ()
    if msg.attachments and not await _already_received(db, external_id):
        attachment_ids = await _store_attachments(db, get_store, msg, max_attachment_bytes)
    return await ingest.submit(
        InboundMessage(
            identity_kind=msg.sender.kind,
            identity_value=msg.sender.value,
            name=msg.sender.name,
            channel=Channel.api,
            external_id=external_id,
            inbox_id=found_id,
            text=msg.text,
            html=msg.html,
            subject=msg.subject,
            occurred_at=msg.occurred_at,
            conversation_id=msg.conversation_id,
            attachment_ids=attachment_ids,
            meta={"idempotency_key": key},
            # Signed with the inbox's secret: the integrator vouches for the sender (the identity rule).
            verified=True,
        )
    )
