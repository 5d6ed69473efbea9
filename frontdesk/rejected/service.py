"""Rejected inputs: what every intake keeps of what it refused, and what admins do with it.

:func:`keep` is the one way a refused input is kept — the e-mail receiver (SMTP, IMAP), the API
channel (``/inboxes/{id}/messages``) and the events API all call it — under one set of rules
(``settings.rejected_*``, docs/architecture/rejected-inputs.md):

- An **anonymous** sender — one that named no real inbox and proved nothing (an unknown inbox, a
  wrong signature) — keeps an excerpt of ``rejected_excerpt_bytes``, at most
  ``rejected_anonymous_per_minute`` rows per client IP, and at most ``rejected_anonymous_max_rows``
  such rows in all (the oldest make room).
- A **known** sender (an authenticated token, a signed request to a real inbox, mail to a real
  address) keeps the body up to ``rejected_max_body_kb``, at most
  ``rejected_per_sender_per_minute`` rows per sender. Bodies count against
  ``rejected_max_total_mb``; beyond it only the reason and the metadata are kept.
- What is not kept is counted (``frontdesk_rejected_inputs_dropped_total``) and logged.

A row is linked to the customer it names (``customer_id``, or an identity ``(kind, value)``) so
erasing the customer deletes it (:func:`erase_for`).

:func:`replaying` marks a replay of a row (``frontdesk/rejected/replay.py``): while it is set,
:func:`keep` updates that row with the new reason instead of adding one.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
import weakref
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import ColumnElement, delete, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.audit.service import Actor, record
from frontdesk.customers.identity import normalise
from frontdesk.db import get_or_404
from frontdesk.errors import ProblemError
from frontdesk.metrics import REJECTED_DROPPED
from frontdesk.models import Customer, Identity, RejectedInput
from frontdesk.pagination import cut_page, keyset_condition

log = logging.getLogger(__name__)

REASON_MAX = 2000
BUDGET_REFRESH_SECONDS = 10.0
LOG_EVERY_SECONDS = 60.0
WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class Limits:
    max_body: int = 1024 * 1024
    excerpt: int = 512
    per_sender: int = 120
    anonymous_per_sender: int = 10
    anonymous_max_rows: int = 1000
    max_total: int = 256 * 1024 * 1024

    @classmethod
    def of(cls, settings: Any) -> Limits:
        if settings is None:
            return cls()
        return cls(
            max_body=int(settings.rejected_max_body_kb) * 1024,
            excerpt=int(settings.rejected_excerpt_bytes),
            per_sender=int(settings.rejected_per_sender_per_minute),
            anonymous_per_sender=int(settings.rejected_anonymous_per_minute),
            anonymous_max_rows=int(settings.rejected_anonymous_max_rows),
            max_total=int(settings.rejected_max_total_mb) * 1024 * 1024,
        )


# -- replay mode --------------------------------------------------------------------------------


@dataclass
class Replay:
    """A replay in progress: a refusal updates ``row_id`` and is remembered in ``reason``."""

    row_id: uuid.UUID
    reason: str | None = None


_replaying: ContextVar[Replay | None] = ContextVar("frontdesk_rejected_replaying", default=None)


@contextlib.contextmanager
def replaying(row_id: uuid.UUID) -> Iterator[Replay]:
    """While inside, :func:`keep` records a refusal on ``row_id`` instead of keeping a new row."""
    state = Replay(row_id)
    token = _replaying.set(state)
    try:
        yield state
    finally:
        _replaying.reset(token)


# -- keeping ------------------------------------------------------------------------------------


def storable(text: str) -> str:
    """``text`` without what a text column refuses (NUL, lone surrogates)."""
    return text.replace("\x00", "\\x00").encode("utf-8", "replace").decode("utf-8")


# Total size of the kept bodies of known senders, per engine: (read at, bytes). A cluster's nodes
# each refresh it from the database every few seconds, so the budget holds within a few rows.
_budget: weakref.WeakKeyDictionary[Any, tuple[float, int]] = weakref.WeakKeyDictionary()
_last_logged: dict[tuple[str, str], float] = {}


def _engine_of(session: AsyncSession) -> Any:
    bind = session.get_bind()
    return getattr(bind, "engine", bind)


async def _used_bytes(session: AsyncSession) -> int:
    engine = _engine_of(session)
    cached = _budget.get(engine)
    if cached is not None and time.monotonic() - cached[0] < BUDGET_REFRESH_SECONDS:
        return cached[1]
    r = RejectedInput
    used = int(
        await session.scalar(select(func.coalesce(func.sum(func.length(r.body)), 0)).where(r.anonymous.is_(False))) or 0
    )
    _budget[engine] = (time.monotonic(), used)
    return used


def _count_kept(session: AsyncSession, size: int) -> None:
    engine = _engine_of(session)
    cached = _budget.get(engine)
    if cached is not None:
        _budget[engine] = (cached[0], cached[1] + size)


def forget_budget() -> None:
    """Read the budget from the database next time (after rows were deleted in bulk)."""
    _budget.clear()


def _dropped(source: str, why: str, origin: str | None) -> None:
    REJECTED_DROPPED.labels(source, why).inc()
    now = time.monotonic()
    key = (source, why)
    if now - _last_logged.get(key, -1e9) >= LOG_EVERY_SECONDS:
        _last_logged[key] = now
        log.warning("rejected inputs: not keeping a refused %s input from %s (%s)", source, origin or "-", why)


async def _recent(session: AsyncSession, origin: str, now: datetime) -> int:
    r = RejectedInput
    return int(
        await session.scalar(
            select(func.count()).select_from(r).where(r.origin == origin, r.received_at >= now - WINDOW)
        )
        or 0
    )


async def _trim_anonymous(session: AsyncSession, max_rows: int) -> None:
    """Delete the oldest anonymous rows beyond ``max_rows``."""
    r = RejectedInput
    count = int(await session.scalar(select(func.count()).select_from(r).where(r.anonymous.is_(True))) or 0)
    if count <= max_rows:
        return
    oldest = select(r.id).where(r.anonymous.is_(True)).order_by(r.received_at, r.id).limit(count - max_rows)
    await session.execute(
        delete(r).where(r.id.in_(oldest.scalar_subquery())).execution_options(synchronize_session=False)
    )


async def _link(
    session: AsyncSession, customer_id: uuid.UUID | None, identity: tuple[str, str] | None
) -> tuple[uuid.UUID | None, str | None, str | None]:
    """(customer id, identity kind, normalised value) of the person the input names, where known."""
    kind = value = None
    if identity is not None:
        with contextlib.suppress(ProblemError, TypeError, ValueError):
            kind, value = identity[0], normalise(identity[0], identity[1])
    if customer_id is not None and await session.get(Customer, customer_id) is None:
        customer_id = None
    if customer_id is None and kind is not None:
        customer_id = await session.scalar(
            select(Identity.customer_id).where(Identity.kind == kind, Identity.value == value)
        )
    return customer_id, kind, value


async def keep(
    session: AsyncSession,
    *,
    source: str,
    reason: str,
    body: bytes,
    content_type: str | None = None,
    origin: str | None = None,
    anonymous: bool = False,
    meta: dict[str, Any] | None = None,
    storage_key: str | None = None,
    customer_id: uuid.UUID | None = None,
    identity: tuple[str, str] | None = None,
    settings: Any = None,
) -> RejectedInput | None:
    """Keep a refused input in the caller's unit of work, within the limits; the row, or ``None``
    when nothing was kept. ``origin`` names the sender (``ip:…``, ``user:…``, ``inbox:…``,
    ``smtp:…``; ``None`` for internal callers, which are not rate limited)."""
    reason = storable(reason[:REASON_MAX])
    replay = _replaying.get()
    if replay is not None:
        return await _record_refusal(session, replay, reason)
    limits = Limits.of(settings)
    now = clock.now()
    if origin is not None:
        allowed = limits.anonymous_per_sender if anonymous else limits.per_sender
        if await _recent(session, origin, now) >= allowed:
            _dropped(source, "rate", origin)
            return None
    size = len(body)
    if anonymous:
        if limits.anonymous_max_rows == 0:
            _dropped(source, "anonymous", origin)
            return None
        kept = body[: limits.excerpt]
        meta, storage_key, customer_id, identity = {}, None, None, None
    else:
        room = max(0, limits.max_total - await _used_bytes(session))
        kept = body[: min(limits.max_body, room)]
        if len(kept) < size:
            why = "budget full" if room < min(size, limits.max_body) else f"cut at {limits.max_body} bytes"
            reason = f"{reason} (kept {len(kept)} of {size} bytes: {why})"[: REASON_MAX + 100]
            if room < min(size, limits.max_body):
                _dropped(source, "budget", origin)
    linked_customer, kind, value = await _link(session, customer_id, identity)
    row = RejectedInput(
        source=source[:100],
        reason=reason,
        content_type=storable(content_type or "")[:200] or None,
        body=kept,
        received_at=now,
        origin=storable(origin)[:200] if origin else None,
        anonymous=anonymous,
        size=size,
        storage_key=storage_key,
        meta=meta or {},
        customer_id=linked_customer,
        identity_kind=kind,
        identity_value=value,
    )
    session.add(row)
    await session.flush()
    if anonymous:
        await _trim_anonymous(session, limits.anonymous_max_rows)
    else:
        _count_kept(session, len(kept))
    return row


def named_in(
    body: bytes, *, identity_at: str | None = "identity", customer_id_at: str | None = "customer_id"
) -> tuple[uuid.UUID | None, tuple[str, str] | None]:
    """The customer id (top-level key ``customer_id_at``) and identity (``{"kind", "value"}`` under
    ``identity_at``) a refused JSON body names, where it names them; the body may be any shape."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    customer_id = None
    if customer_id_at is not None:
        with contextlib.suppress(TypeError, ValueError, AttributeError):
            customer_id = uuid.UUID(str(data.get(customer_id_at)))
    ident = data.get(identity_at) if identity_at is not None else None
    identity = None
    if isinstance(ident, dict) and isinstance(ident.get("kind"), str) and isinstance(ident.get("value"), str):
        identity = (ident["kind"], ident["value"])
    return customer_id, identity


async def keep_json(
    session: AsyncSession,
    *,
    source: str,
    reason: str,
    body: bytes,
    content_type: str | None = None,
    origin: str | None = None,
    anonymous: bool = False,
    meta: dict[str, Any] | None = None,
    identity_at: str | None = "identity",
    customer_id_at: str | None = "customer_id",
    settings: Any = None,
) -> RejectedInput | None:
    """:func:`keep` for a refused JSON request (the API channel's messages, the events API): a known
    sender's row is linked to the customer the body names (:func:`named_in`; ``None`` keys name
    nothing), so erasing that customer deletes it."""
    customer_id, identity = (
        (None, None) if anonymous else named_in(body, identity_at=identity_at, customer_id_at=customer_id_at)
    )
    return await keep(
        session,
        source=source,
        reason=reason,
        body=body,
        content_type=content_type,
        origin=origin,
        anonymous=anonymous,
        meta=meta,
        customer_id=customer_id,
        identity=identity,
        settings=settings,
    )


async def _record_refusal(session: AsyncSession, replay: Replay, reason: str) -> RejectedInput | None:
    replay.reason = reason
    row = await session.get(RejectedInput, replay.row_id)
    if row is None:  # discarded while it was being replayed
        return None
    row.reason = reason
    row.replays += 1
    row.replayed_at = clock.now()
    await session.flush()
    return row


# -- reading ------------------------------------------------------------------------------------


async def list_rejected(
    session: AsyncSession,
    *,
    source: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[RejectedInput], str | None]:
    """Newest first, filtered by source and a received-at range, with the next page's cursor."""
    r = RejectedInput
    stmt = select(r)
    if source:
        stmt = stmt.where(r.source == source)
    if since is not None:
        stmt = stmt.where(r.received_at >= since)
    if until is not None:
        stmt = stmt.where(r.received_at < until)
    if cursor:
        stmt = stmt.where(keyset_condition(cursor, r.received_at, r.id))
    stmt = stmt.order_by(r.received_at.desc(), r.id.desc()).limit(limit + 1)
    rows = list((await session.scalars(stmt)).all())
    return cut_page(rows, limit, lambda x: (x.received_at, x.id))


async def get_rejected(session: AsyncSession, row_id: uuid.UUID) -> RejectedInput:
    return await get_or_404(session, RejectedInput, row_id, "rejected input")


def is_complete(row: RejectedInput) -> bool:
    """The row holds every byte that was received."""
    return len(row.body) >= row.size


async def discard(session: AsyncSession, actor: Actor | None, row_id: uuid.UUID) -> None:
    """Delete a rejected input for good (audited)."""
    row = await get_rejected(session, row_id)
    await record(session, actor, "rejected_input.discarded", "rejected_input", row.id, {"source": row.source})
    await session.delete(row)
    await session.flush()
    forget_budget()


# -- erase --------------------------------------------------------------------------------------


def naming(customer_ids: Sequence[uuid.UUID], identities: Sequence[tuple[str, str]]) -> ColumnElement[bool]:
    """Rows that name one of these customers: linked by id, or by a ``(kind, value)`` identity."""
    r = RejectedInput
    named = [r.customer_id.in_(list(customer_ids))]
    if identities:
        named.append(tuple_(r.identity_kind, r.identity_value).in_(list(identities)))
    return or_(*named)


async def erase_for(
    session: AsyncSession, customer_ids: Sequence[uuid.UUID], identities: Sequence[tuple[str, str]]
) -> tuple[int, list[str]]:
    """Delete the rejected inputs that name these customers (by id, or by one of their identities);
    (rows deleted, store keys of their raw copies for the caller to delete after the commit)."""
    r = RejectedInput
    where = naming(customer_ids, identities)
    keys = [k for k in (await session.scalars(select(r.storage_key).where(where, r.storage_key.is_not(None)))) if k]
    result: Any = await session.execute(delete(r).where(where).execution_options(synchronize_session=False))
    forget_budget()
    return int(result.rowcount or 0), keys


__all__ = [
    "Limits",
    "Replay",
    "discard",
    "erase_for",
    "get_rejected",
    "is_complete",
    "keep",
    "list_rejected",
    "naming",
    "replaying",
    "storable",
]
