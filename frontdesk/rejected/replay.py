"""Replaying a rejected input: feed it again through the intake it came from.

- ``email.*``: through :func:`frontdesk.channels.email.inbound.receive_raw`, with the envelope it
  came with (the whole raw email: from the row, or from the store when the row holds a cut).
- ``api.inbound``: through :func:`frontdesk.channels.apichannel.inbound.accept` for the inbox it was
  signed for, ``vouched`` — the signature was checked when it came; the admin vouches for it now.
- ``api.events`` (one event: a single post or a batch item): validated and ingested again.

While the intake runs, :func:`frontdesk.rejected.service.replaying` is set, so a refusal updates
this row (new reason, ``replays`` + 1) instead of keeping a new one. Success deletes the row. Both
are audited (``rejected_input.replayed`` with the outcome). Anonymous inputs, cuts and whole
batches refused for their shape cannot be replayed (409, the reason in ``detail``).

This module imports the intakes, which import :mod:`frontdesk.rejected.service`; nothing imports
this module but :mod:`frontdesk.rejected.api`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.audit.service import Actor, record
from frontdesk.errors import Conflict, ProblemError, ServiceUnavailable
from frontdesk.models import RejectedInput
from frontdesk.rejected import service
from frontdesk.storage import ObjectMissing, StorageError

if TYPE_CHECKING:
    from frontdesk.channels.context import ListenerContext

EMAIL_SOURCES = ("email.smtp", "email.imap")
API_INBOUND = "api.inbound"
API_EVENTS = "api.events"


@dataclass
class Outcome:
    status: str  # accepted | duplicate | rejected | ignored
    reason: str | None = None
    message_id: uuid.UUID | None = None
    conversation_id: uuid.UUID | None = None
    customer_id: uuid.UUID | None = None
    event_id: uuid.UUID | None = None

    @property
    def stored(self) -> bool:
        return self.status in ("accepted", "duplicate")


def why_not(row: RejectedInput) -> str | None:
    """Why ``row`` cannot be replayed, or ``None`` when it can."""
    if row.anonymous:
        return "the sender named no real inbox and proved nothing: only an excerpt was kept"
    if row.source in EMAIL_SOURCES:
        return None if service.is_complete(row) or row.storage_key else _cut(row)
    if not service.is_complete(row):
        return _cut(row)
    if row.source == API_INBOUND:
        return None if (row.meta or {}).get("inbox_id") else "the inbox it was posted to was not recorded"
    if row.source == API_EVENTS:
        if (row.meta or {}).get("kind", "event") != "event":
            return "a whole batch refused for its shape would be refused again: fix it and send it again"
        return None
    return f"there is no intake to replay {row.source} input through"


def _cut(row: RejectedInput) -> str:
    return f"only {len(row.body)} of its {row.size} bytes were kept"


async def _raw(ctx: ListenerContext, row: RejectedInput) -> bytes:
    if service.is_complete(row) or not row.storage_key:
        return bytes(row.body)
    try:
        return await ctx.store.get(row.storage_key)
    except ObjectMissing as exc:
        raise Conflict(f"The raw copy {row.storage_key} is no longer in the store: only a cut is kept.") from exc
    except StorageError as exc:
        raise ServiceUnavailable("The attachment store is not reachable; try again.") from exc


async def replay(ctx: ListenerContext, actor: Actor | None, row_id: uuid.UUID) -> Outcome:
    """Feed the rejected input ``row_id`` through its intake again; the outcome (audited)."""
    db = ctx.db
    async with db.transaction() as session:
        row = await service.get_rejected(session, row_id)
    if (why := why_not(row)) is not None:
        raise Conflict(f"This rejected input cannot be replayed: {why}.")
    raw = await _raw(ctx, row)
    with service.replaying(row.id) as state:
        if row.source in EMAIL_SOURCES:
            outcome = await _email(ctx, row, raw)
        elif row.source == API_INBOUND:
            outcome = await _api_inbound(ctx, row, raw)
        else:
            return await _event(ctx, actor, row, raw)  # one transaction: the event and the row's fate
    if not outcome.stored and outcome.reason is None:
        outcome.reason = state.reason
    async with db.transaction() as session:
        await _finish(session, actor, row, outcome)
    return outcome


async def _finish(session: AsyncSession, actor: Actor | None, row: RejectedInput, outcome: Outcome) -> None:
    """Delete the row when the replay stored it; audit either way (ids and outcome, no content)."""
    if outcome.stored:
        found = await session.get(RejectedInput, row.id)
        if found is not None:
            await session.delete(found)
        service.forget_budget()
    data: dict[str, Any] = {"source": row.source, "outcome": outcome.status}
    for key in ("message_id", "conversation_id", "customer_id", "event_id"):
        if (value := getattr(outcome, key)) is not None:
            data[key] = str(value)
    await record(session, actor, "rejected_input.replayed", "rejected_input", row.id, data)
    await session.flush()


async def _email(ctx: ListenerContext, row: RejectedInput, raw: bytes) -> Outcome:
    from frontdesk.channels.email.inbound import Deferred, components_of, receive_raw

    components_of(ctx).forget_inboxes()  # a replay sees the inboxes as they are now
    meta = row.meta or {}
    inbox = meta.get("inbox_id")
    try:
        result = await receive_raw(
            ctx,
            raw,
            inbox_id=uuid.UUID(inbox) if inbox else None,
            source=row.source,
            envelope_from=meta.get("envelope_from"),
            envelope_to=tuple(str(a) for a in meta.get("envelope_to") or ()),
            # The connecting server, so SPF judges the replay as it judged the delivery.
            peer_ip=meta.get("peer_ip"),
            helo=meta.get("helo"),
        )
    except Deferred as exc:
        raise ServiceUnavailable(f"The e-mail could not be stored now: {exc}. Try again.") from exc
    return Outcome(
        result.status,
        result.reason or None,
        result.message_id,
        result.conversation_id,
        result.customer_id,
    )


async def _api_inbound(ctx: ListenerContext, row: RejectedInput, raw: bytes) -> Outcome:
    from frontdesk.channels.apichannel.inbound import REJECTED_SOURCE, accept

    db = ctx.db
    meta = row.meta or {}
    inbox_id = uuid.UUID(str(meta["inbox_id"]))
    try:
        result = await accept(
            db,
            ctx.ingest,
            inbox_id,
            raw,
            signature=None,
            timestamp=None,
            idempotency_key=meta.get("idempotency_key") or f"replay-{row.id}",
            get_store=lambda: ctx.store,
            max_attachment_bytes=ctx.settings.max_attachment_mb * 1024 * 1024,
            vouched=True,
        )
    except ProblemError as exc:
        if exc.status == 503:
            raise
        reason = f"inbox {inbox_id}: {exc.status} {exc.detail}"
        async with db.transaction() as session:
            await service.keep(session, source=REJECTED_SOURCE, reason=reason, body=raw)  # replay: updates the row
        return Outcome("rejected", reason)
    status = "accepted" if result.created else "duplicate"
    return Outcome(status, None, result.message_id, result.conversation_id, result.customer_id)


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "body: invalid"
    first = errors[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or "body"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{field}: {first.get('msg', 'invalid')}{more}"


async def _event(ctx: ListenerContext, actor: Actor | None, row: RejectedInput, raw: bytes) -> Outcome:
    from frontdesk.proactive import service as events
    from frontdesk.proactive.schemas import EventIn

    reason: str | None = None
    async with ctx.db.transaction() as session:
        try:
            event_in = EventIn.model_validate(orjson.loads(raw))
            async with session.begin_nested():
                event, created = await events.ingest(session, event_in)
        except orjson.JSONDecodeError as exc:
            reason = f"the body is not JSON: {exc}"
        except ValidationError as exc:
            reason = _first_error(exc)
        except ProblemError as exc:
            reason = exc.detail
        if reason is not None:
            await service.keep(session, source=row.source, reason=reason, body=raw)  # replay: updates the row
            outcome = Outcome("rejected", reason)
        else:
            outcome = Outcome("accepted" if created else "duplicate", None, customer_id=event.customer_id)
            outcome.event_id = event.id
        await _finish(session, actor, row, outcome)
    return outcome
