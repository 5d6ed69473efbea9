"""The inbound path every channel adapter takes: a group-commit writer.

An adapter (web chat, SMTP, IMAP, SMS webhook, the public API…) turns what it received into an
:class:`InboundMessage` and calls :meth:`IngestWriter.submit`. Requests in flight wait on a
future; one writer task takes everything queued (up to ``settings.ingest_batch_max``) and
writes it in ONE transaction (on PostgreSQL, under full load, a second batch is written while
the first commits: ``settings.ingest_concurrent_batches``) with a handful of SQLAlchemy Core
statements, whatever the batch size:

1. find messages already stored under the batch's idempotency keys (``channel, external_id``);
2. look up the identities (``kind = any(…) AND value = any(…)``, narrowed to the wanted pairs);
   create the missing customers and identities
   (``ON CONFLICT DO NOTHING`` on ``(kind, value)``, then re-select: another process may have
   won the race, and its customer is used);
3. find the open (not resolved) conversations of those customers on that channel and inbox; open
   the missing ones;
4. insert the messages (``ON CONFLICT (channel, external_id) DO NOTHING``; a message that lost a
   race is answered with the original's ids);
5. bump ``last_message_at``/``message_count`` of the conversations, re-opening pending and
   snoozed ones and setting ``waiting_since`` where it is empty (same statement);
6. with the same connection, run the bus's in-transaction subscribers on the ``MessageReceived``
   events (routing inbox, webhook deliveries); commit, THEN resolve the futures and hand the
   events to the after-commit subscribers (the push of ``conversation.message_created``).

If the batch fails, its items are retried one by one so a bad item fails only its own request.
Code that is already inside a unit of work calls :func:`receive` instead (same rules; it
flushes, the boundary commits and releases the push). See ``docs/architecture/ingest.md``.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, bindparam, case, delete, false, func, null, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from frontdesk import clock
from frontdesk.bus import bus, emit
from frontdesk.conversations import sanitize
from frontdesk.db import (
    Database,
    after_commit,
    among_param,
    insert_parents_and_rows,
    insert_rows,
)
from frontdesk.errors import Invalid
from frontdesk.events import MessageReceived
from frontdesk.groupcommit import Batch, GroupCommit
from frontdesk.ids import new_id
from frontdesk.metrics import INBOUND_MESSAGES, INGEST_BATCH
from frontdesk.models import Attachment, Conversation, Customer, Identity, Inbox, Message
from frontdesk.models.enums import (
    AuthorType,
    Channel,
    ConversationStatus,
    DeliveryStatus,
    Direction,
    IdentityKind,
)
from frontdesk.settings import Settings

log = logging.getLogger(__name__)

MAX_TEXT_BYTES = 64 * 1024
MAX_HTML_BYTES = 256 * 1024
MAX_EXTERNAL_ID = 500
MAX_NAME = 300
MAX_SUBJECT = 500
PREVIEW_CHARS = 140

_customers: Table = Customer.__table__  # type: ignore[assignment]
_identities: Table = Identity.__table__  # type: ignore[assignment]
_conversations: Table = Conversation.__table__  # type: ignore[assignment]
_messages: Table = Message.__table__  # type: ignore[assignment]
_inboxes: Table = Inbox.__table__  # type: ignore[assignment]
_attachments: Table = Attachment.__table__  # type: ignore[assignment]

_REOPENS = (ConversationStatus.pending.value, ConversationStatus.snoozed.value)
PROOF_SOURCE = "api"  # what proved a vouched sender's identity, in merge suggestions and the audit log


# -- the message an adapter hands in --------------------------------------------------------


@dataclass(slots=True)
class InboundMessage:
    """One message from a customer, as a channel adapter received it.

    ``external_id`` is the provider's id (email Message-ID, SMS sid, widget client id): the
    idempotency key, unique per channel. :meth:`prepared` validates and normalises it (done by
    :meth:`IngestWriter.submit` and :func:`receive`, so adapters need not call it).
    """

    identity_kind: IdentityKind | str
    identity_value: str
    channel: Channel | str
    external_id: str
    text: str = ""
    name: str | None = None
    inbox_id: uuid.UUID | None = None
    html: str | None = None
    subject: str | None = None
    occurred_at: datetime | None = None
    # Thread hint from the channel (an email's In-Reply-To, a widget's open chat): join this
    # conversation when it belongs to the sender — even a resolved one, which reopens.
    conversation_id: uuid.UUID | None = None
    # Attachments already stored (``Attachment`` rows with no message yet) to link to the message.
    attachment_ids: tuple[uuid.UUID, ...] = ()
    # Channel details kept on the message (email headers, the widget's client id…); JSON-able.
    meta: dict[str, Any] | None = None
    # The channel PROVED the sender's identity (a signed API-channel request, a token-authenticated
    # API call; e-mail: an aligned DMARC pass). A new identity is then stored verified, and one that
    # another customer holds only unverified (a claim) is taken from them: see :func:`_proofs_win`.
    verified: bool = False
    # The sender's customer when the adapter already decided it (an email that could not prove a
    # From address someone else holds verified goes to a customer of its own): the identity is
    # then not looked up nor created.
    customer_id: uuid.UUID | None = None
    # A message may come without text when it carries attachments, or when the channel says an
    # empty message is still one (an email with only a subject). Nothing is made up for it: the
    # agent's UI says "no text" in the agent's own language.
    allow_empty: bool = False

    def prepared(self) -> InboundMessage:
        """A validated copy: identity normalised, HTML sanitised, sizes and characters checked.

        Raises :class:`Invalid` naming the field (``identity.value``, ``text``…).
        """
        try:
            kind = IdentityKind(self.identity_kind)
        except ValueError as exc:
            allowed = ", ".join(k.value for k in IdentityKind)
            raise Invalid(f"unknown identity kind; use one of: {allowed}", field="identity.kind") from exc
        try:
            channel = Channel(self.channel)
        except ValueError as exc:
            allowed = ", ".join(c.value for c in Channel)
            raise Invalid(f"unknown channel; use one of: {allowed}", field="channel") from exc
        _check_text(self.identity_value, "identity.value", 320)
        value = _normalise(kind, self.identity_value)
        external_id = _check_text(self.external_id, "external_id", MAX_EXTERNAL_ID).strip()
        if not external_id:
            raise Invalid("must not be empty", field="external_id")
        text = _check_text(self.text or "", "text", MAX_TEXT_BYTES, in_bytes=True)
        html = None
        if self.html is not None:
            html = sanitise_html(_check_text(self.html, "html", MAX_HTML_BYTES, in_bytes=True)) or None
        if not text.strip() and html:
            text = sanitize.html_to_text(html)[: MAX_TEXT_BYTES // 4]  # every message carries plain text
        if not text.strip() and not html and not self.attachment_ids and not self.allow_empty:
            raise Invalid("the message has no text (send text, html, attachments or a mix)", field="text")
        name = _check_text(self.name, "name", MAX_NAME).strip() or None
        subject = _check_text(self.subject, "subject", MAX_SUBJECT).strip() or None
        occurred_at = self.occurred_at
        if occurred_at is not None:
            if occurred_at.tzinfo is None:
                raise Invalid("must carry a time zone (e.g. 2026-01-31T12:00:00Z)", field="occurred_at")
            occurred_at = clock.ensure_utc(occurred_at)
        return InboundMessage(
            identity_kind=kind,
            identity_value=value,
            channel=channel,
            external_id=external_id,
            text=text,
            name=name,
            inbox_id=self.inbox_id,
            html=html,
            subject=subject,
            occurred_at=occurred_at,
            conversation_id=self.conversation_id,
            attachment_ids=tuple(self.attachment_ids),
            meta=dict(self.meta) if self.meta else None,
            verified=bool(self.verified),
            customer_id=self.customer_id,
            allow_empty=self.allow_empty,
        )


@functools.lru_cache(maxsize=16384)
def _normalise(kind: IdentityKind, value: str) -> str:
    """:func:`frontdesk.customers.identity.normalise`, remembered: returning customers are the
    common case and email validation is the costliest step of preparing a message. Errors are
    not cached (``lru_cache`` does not keep exceptions)."""
    from frontdesk.customers.identity import normalise

    return normalise(kind, value, field="identity.value")


@dataclass(frozen=True, slots=True)
class IngestResult:
    message_id: uuid.UUID
    conversation_id: uuid.UUID
    customer_id: uuid.UUID
    created: bool  # False: the external_id was seen before; these are the original message's ids


def sanitise_html(html: str) -> str:
    """Sanitised HTML (the shared allow-list of :mod:`frontdesk.conversations.sanitize`)."""
    return sanitize.sanitize_html(html)


def _check_text(value: str | None, field: str, limit: int, *, in_bytes: bool = False) -> str:
    """Reject what a database would choke on (NUL, lone surrogates) and oversized values."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Invalid("must be a string", field=field)
    if "\x00" in value:
        raise Invalid("must not contain NUL characters", field=field)
    try:
        size = len(value.encode("utf-8")) if in_bytes else len(value)
    except UnicodeEncodeError as exc:
        raise Invalid("is not valid Unicode text (lone surrogate)", field=field) from exc
    if size > limit:
        unit = "bytes of UTF-8" if in_bytes else "characters"
        raise Invalid(f"longer than {limit} {unit}", field=field)
    return value


# -- the batch write (Core, a few statements per batch) -----------------------------------


@dataclass(slots=True)
class _Written:
    results: list[IngestResult]
    events: list[MessageReceived] = field(default_factory=list)
    created_by_channel: dict[str, int] = field(default_factory=dict)

    def count(self) -> None:
        """Add the messages this write created to ``frontdesk_inbound_messages_total`` (after the commit)."""
        for channel, n in self.created_by_channel.items():
            INBOUND_MESSAGES.labels(channel).inc(n)


_B_LAST = bindparam("b_last", type_=_conversations.c.last_message_at.type)
_LINK_ATTACHMENT = (
    update(_attachments)
    .where(_attachments.c.id == bindparam("a_id"), _attachments.c.message_id.is_(None))
    .values(message_id=bindparam("a_msg"))
)

_UPDATE_CONVERSATION = (
    update(_conversations)
    .where(_conversations.c.id == bindparam("b_id"))
    .values(
        last_message_at=case(
            ((_conversations.c.last_message_at.is_(None)) | (_conversations.c.last_message_at < _B_LAST), _B_LAST),
            else_=_conversations.c.last_message_at,
        ),
        message_count=_conversations.c.message_count + bindparam("b_n"),
        # No IN (…) here: expanding parameters cannot be used with executemany.
        # Only a thread hint can bump a resolved conversation; a new message reopens it.
        status=case(
            (
                (_conversations.c.status == ConversationStatus.pending.value)
                | (_conversations.c.status == ConversationStatus.snoozed.value)
                | (_conversations.c.status == ConversationStatus.resolved.value),
                ConversationStatus.open.value,
            ),
            else_=_conversations.c.status,
        ),
        resolved_at=case(
            (_conversations.c.status == ConversationStatus.resolved.value, null()),
            else_=_conversations.c.resolved_at,
        ),
        resolution_seconds=case(
            (_conversations.c.status == ConversationStatus.resolved.value, null()),
            else_=_conversations.c.resolution_seconds,
        ),
        snoozed_until=case(
            (_conversations.c.status == ConversationStatus.snoozed.value, null()),
            else_=_conversations.c.snoozed_until,
        ),
        # A resolved conversation reopened by a thread hint is a thread of its own: it gives up the
        # one auto-opened slot (another conversation may hold it by now; see models.Conversation).
        auto_open=case(
            (_conversations.c.status == ConversationStatus.resolved.value, false()),
            else_=_conversations.c.auto_open,
        ),
        updated_at=bindparam("b_now", type_=_conversations.c.updated_at.type),
        # The customer now waits for an agent, since this batch's first message unless already waiting.
        waiting_since=func.coalesce(
            _conversations.c.waiting_since, bindparam("b_first", type_=_conversations.c.waiting_since.type)
        ),
    )
)


async def write_batch(conn: AsyncConnection, items: Sequence[InboundMessage]) -> _Written:
    """Store prepared ``items`` on ``conn`` (inside its transaction; the caller commits).

    Returns one result per item, in order, and the events to publish after the commit.
    """
    now = clock.now()
    results: list[IngestResult | None] = [None] * len(items)

    # 0. One leader per idempotency key; repeats inside the batch follow their leader.
    leaders: dict[tuple[str, str], int] = {}
    followers: list[tuple[int, int]] = []
    for i, m in enumerate(items):
        key = (str(m.channel), m.external_id)
        if key in leaders:
            followers.append((i, leaders[key]))
        else:
            leaders[key] = i

    # 1. No lookup of already-stored keys first: a provider retry is rare, and the message insert's
    #    ON CONFLICT finds it (then the originals are answered and nothing is touched for it).
    todo: list[int] = list(leaders.values())

    written = _Written(results=[])
    if todo:
        await _store(conn, items, todo, results, written, now)

    for i, leader in followers:
        r = results[leader]
        assert r is not None
        results[i] = IngestResult(r.message_id, r.conversation_id, r.customer_id, created=False)
    written.results = [r for r in results if r is not None]
    assert len(written.results) == len(items)
    return written


async def _existing_messages(conn: AsyncConnection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], IngestResult]:
    if not keys:
        return {}
    m = _messages.c
    rows = await conn.execute(
        select(m.channel, m.external_id, m.id, m.conversation_id, m.customer_id).where(
            tuple_(m.channel, m.external_id).in_(keys)
        )
    )
    return {(r[0], r[1]): IngestResult(r[2], r[3], r[4], created=False) for r in rows}


ConvKey = tuple[uuid.UUID, str, uuid.UUID | None]  # customer, channel, inbox


async def _resolve_customers(
    conn: AsyncConnection, items: Sequence[InboundMessage], todo: list[int], now: datetime
) -> tuple[dict[tuple[str, str], uuid.UUID], set[uuid.UUID]]:
    """Customer id per (kind, value); also the ids of customers created by this batch."""
    wanted: dict[tuple[str, str], int] = {}
    vouched: set[tuple[str, str]] = set()  # identities a sender here proved (InboundMessage.verified)
    for i in todo:
        if items[i].customer_id is not None:
            continue  # the adapter already decided who sent it
        key = (str(items[i].identity_kind), items[i].identity_value)
        wanted.setdefault(key, i)
        if items[i].verified:
            vouched.add(key)
    held = await _select_identities(conn, list(wanted))
    found = {k: v[0] for k, v in held.items()}
    created: set[uuid.UUID] = set()
    proofs = [k for k in vouched if k in held and not held[k][1]]
    if proofs:  # rare: a proof for an identity someone only claimed
        await _proofs_win(conn, items, wanted, proofs, found, created)
    # Sorted: batches written at once (or by other processes) lock the identities they insert in
    # one order, so they wait for each other instead of deadlocking.
    missing = sorted(k for k in wanted if k not in found)
    if not missing:
        return found, created

    new_customer: dict[tuple[str, str], uuid.UUID] = {k: new_id() for k in missing}
    customer_rows: list[dict[str, Any]] = [
        {
            "id": new_customer[k],
            "name": items[wanted[k]].name,
            "locale": None,
            "time_zone": None,
            "attributes": {},
            "satisfaction_tier": "unknown",
            "lifetime_value": Decimal("0"),
            "merged_into_id": None,
            "created_at": now,
            "updated_at": now,
        }
        for k in missing
    ]
    identity_rows = [
        {
            "id": new_id(),
            "customer_id": new_customer[k],
            "kind": k[0],
            "value": k[1],
            "verified": k in vouched,
            "undeliverable": False,
            "created_at": now,
        }
        for k in missing
    ]
    inserted = set(
        await insert_parents_and_rows(
            conn, _customers, customer_rows, _identities, identity_rows, conflict=("kind", "value"), returning="id"
        )
    )
    lost: list[tuple[str, str]] = []
    for k, row in zip(missing, identity_rows, strict=True):
        if row["id"] in inserted:
            found[k] = new_customer[k]
            created.add(new_customer[k])
        else:
            lost.append(k)
    if lost:
        # Another writer created these identities between our SELECT and INSERT: use its customers
        # and drop the ones we made for nothing.
        found.update({k: v[0] for k, v in (await _select_identities(conn, lost)).items()})
        await conn.execute(delete(_customers).where(_customers.c.id.in_([new_customer[k] for k in lost])))
        log.info("ingest: %d identities were created concurrently elsewhere; reused", len(lost))
    return found, created


# The writer's lookups are built once per dialect (see db.among_param: a statement built per batch
# left garbage behind for the collector, whose pauses were the hot path's tail latency).


@functools.cache
def _identities_statement(dialect: str) -> Any:
    """Identities whose kind is one of ``kinds`` and value one of ``values`` (a superset of the
    wanted pairs, narrowed by the caller): one statement for any number of pairs, and the
    ``(kind, value)`` index serves it."""
    i, c = _identities.c, _customers.c
    return (
        select(i.kind, i.value, i.customer_id, c.merged_into_id, i.verified)
        .join_from(_identities, _customers, c.id == i.customer_id)
        .where(among_param(dialect, i.kind, "kinds"), among_param(dialect, i.value, "values"))
    )


@functools.cache
def _open_conversations_statement(dialect: str) -> Any:
    cv = _conversations.c
    return (
        select(cv.id, cv.customer_id, cv.channel, cv.inbox_id, cv.status)
        .where(
            among_param(dialect, cv.customer_id, "customers"),
            cv.status != ConversationStatus.resolved.value,
            among_param(dialect, cv.channel, "channels"),
        )
        .order_by(cv.id)
    )


async def _select_identities(
    conn: AsyncConnection, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], tuple[uuid.UUID, bool]]:
    """(customer id, verified) per (kind, value) found."""
    if not keys:
        return {}
    wanted = set(keys)
    rows = await conn.execute(
        _identities_statement(conn.dialect.name),
        {"kinds": sorted({k for k, _ in wanted}), "values": sorted({v for _, v in wanted})},
    )
    # A merged customer's identities are normally moved to the survivor; follow the pointer anyway.
    return {(r[0], r[1]): (r[3] or r[2], bool(r[4])) for r in rows if (r[0], r[1]) in wanted}


async def _proofs_win(
    conn: AsyncConnection,
    items: Sequence[InboundMessage],
    wanted: dict[tuple[str, str], int],
    keys: list[tuple[str, str]],
    found: dict[tuple[str, str], uuid.UUID],
    created: set[uuid.UUID],
) -> None:
    """A proven sender whose identity another customer holds only unverified (a claim, e.g. an
    address a chat visitor typed): the proof wins. The sender gets a customer of their own, which
    takes the identity (verified); the claimant gets a merge suggestion (``merge.prove_identity``).
    The rare path, so the ORM on the writer's connection and transaction."""
    from frontdesk.customers.merge import prove_identity

    session = AsyncSession(bind=conn, autoflush=False, expire_on_commit=False)
    try:
        for key in keys:
            prover = Customer(name=items[wanted[key]].name, attributes={})
            session.add(prover)
            await session.flush()
            proof = await prove_identity(session, key[0], key[1], prover.id, PROOF_SOURCE)
            if proof.outcome == "owned" and proof.holder_id is not None:  # proven by its holder meanwhile
                await session.delete(prover)
                found[key] = proof.holder_id
            else:
                found[key] = prover.id
                created.add(prover.id)
        await session.flush()
    finally:
        await session.close()


async def _open_conversations(
    conn: AsyncConnection, customer_ids: set[uuid.UUID], channels: set[str]
) -> dict[ConvKey, tuple[uuid.UUID, str]]:
    """The not-resolved conversations of ``customer_ids`` on ``channels``: (id, status) per key,
    the newest one where there are several (agent-started threads, reopened ones)."""
    open_conv: dict[ConvKey, tuple[uuid.UUID, str]] = {}
    if customer_ids:
        rows = await conn.execute(
            _open_conversations_statement(conn.dialect.name),
            {"customers": sorted(customer_ids), "channels": sorted(channels)},
        )
        for r in rows:
            open_conv[(r[1], r[2], r[3])] = (r[0], r[4])
    return open_conv


async def _store(
    conn: AsyncConnection,
    items: Sequence[InboundMessage],
    todo: list[int],
    results: list[IngestResult | None],
    written: _Written,
    now: datetime,
) -> None:
    customer_of, new_customers = await _resolve_customers(conn, items, todo, now)

    def sender(m: InboundMessage) -> uuid.UUID:
        return m.customer_id or customer_of[(str(m.identity_kind), m.identity_value)]

    known = {sender(items[i]) for i in todo} - new_customers
    open_conv = await _open_conversations(conn, known, {str(items[i].channel) for i in todo})

    # Thread hints: the named conversation, if it is the sender's (any channel, any status).
    hinted: dict[uuid.UUID, tuple[uuid.UUID, str]] = {}  # conversation id -> (customer id, status)
    hint_ids = {items[i].conversation_id for i in todo if items[i].conversation_id is not None}
    if hint_ids:
        cv = _conversations.c
        for h in await conn.execute(select(cv.id, cv.customer_id, cv.status).where(cv.id.in_(hint_ids))):
            hinted[h[0]] = (h[1], h[2])

    new_convs: dict[ConvKey, dict[str, Any]] = {}
    bumps: dict[uuid.UUID, dict[str, Any]] = {}
    message_rows: list[dict[str, Any]] = []
    meta_of: list[tuple[int, ConvKey, bool, bool]] = []  # item index, conversation key, new?, reopened?
    for i in todo:
        m = items[i]
        channel = str(m.channel)
        customer_id = sender(m)
        at = min(m.occurred_at, now) if m.occurred_at is not None else now
        ckey: ConvKey = (customer_id, channel, m.inbox_id)
        reopened = False
        hint = hinted.get(m.conversation_id) if m.conversation_id is not None else None
        if hint is not None and hint[0] == customer_id:
            assert m.conversation_id is not None
            conv_id, is_new = m.conversation_id, False
            reopened = hint[1] in _REOPENS or hint[1] == ConversationStatus.resolved.value
            bump = bumps.setdefault(conv_id, {"b_id": conv_id, "b_last": at, "b_first": at, "b_n": 0, "b_now": now})
            bump["b_n"] += 1
            bump["b_last"] = max(bump["b_last"], at)
            bump["b_first"] = min(bump["b_first"], at)
        elif ckey in open_conv:
            conv_id, status = open_conv[ckey]
            is_new = False
            reopened = status in _REOPENS
            bump = bumps.setdefault(conv_id, {"b_id": conv_id, "b_last": at, "b_first": at, "b_n": 0, "b_now": now})
            bump["b_n"] += 1
            bump["b_last"] = max(bump["b_last"], at)
            bump["b_first"] = min(bump["b_first"], at)
        elif ckey in new_convs:
            conv = new_convs[ckey]
            conv_id, is_new = conv["id"], False
            conv["message_count"] += 1
            conv["last_message_at"] = max(conv["last_message_at"], at)
            conv["waiting_since"] = min(conv["waiting_since"], at)
        else:
            conv_id, is_new = new_id(), True
            new_convs[ckey] = {
                "id": conv_id,
                "customer_id": customer_id,
                "channel": channel,
                "inbox_id": m.inbox_id,
                "subject": m.subject,
                "status": ConversationStatus.open.value,
                "priority": "normal",
                "queue_id": None,
                "assignee_id": None,
                "team_id": None,
                "snoozed_until": None,
                "last_message_at": at,
                "first_response_at": None,
                "resolved_at": None,
                "first_response_seconds": None,
                "resolution_seconds": None,
                "message_count": 1,
                "waiting_since": at,
                "created_at": now,
                "updated_at": now,
                "auto_open": True,
            }
        message_rows.append(
            {
                "id": new_id(),
                "conversation_id": conv_id,
                "customer_id": customer_id,
                "direction": Direction.inbound.value,
                "channel": channel,
                "author_type": AuthorType.customer.value,
                "author_id": None,
                "text": m.text,
                "html": m.html,
                "external_id": m.external_id,
                "delivery_status": DeliveryStatus.received.value,
                "error": None,
                "meta": {**(m.meta or {}), **({"subject": m.subject} if m.subject else {})},
                "created_at": at,
                "status_at": None,
            }
        )
        meta_of.append((i, ckey, is_new, reopened))

    if new_convs:
        # The unique index on auto-opened, not resolved conversations turns a race with another
        # process (both found none, both open one) into a conflict: the loser joins the winner's.
        # In one order (customer, channel, inbox), like the identities above and the bumps below.
        rows = sorted(new_convs.values(), key=lambda c: (c["customer_id"], c["channel"], str(c["inbox_id"])))
        opened = set(await insert_rows(conn, _conversations, rows, conflict=True, returning="id"))
        if len(opened) < len(new_convs):
            await _join_winners(conn, new_convs, opened, bumps, message_rows, meta_of, now)
    inserted = set(
        await insert_rows(
            conn,
            _messages,
            sorted(message_rows, key=lambda r: (r["channel"], r["external_id"])),  # one lock order (a retry)
            conflict=("channel", "external_id"),
            returning="id",
        )
    )

    raced: list[tuple[str, str]] = []
    for row in message_rows:
        if row["id"] not in inserted:
            raced.append((row["channel"], row["external_id"]))
            conv_id = row["conversation_id"]
            if conv_id in bumps:
                bumps[conv_id]["b_n"] -= 1
    originals = await _existing_messages(conn, raced) if raced else {}
    if raced:
        # Stored by another writer since step 1: answer with its ids; drop conversations we opened
        # only for these messages.
        empty = [
            c["id"]
            for c in new_convs.values()
            if not any(r["conversation_id"] == c["id"] for r in message_rows if r["id"] in inserted)
        ]
        if empty:
            await conn.execute(delete(_conversations).where(_conversations.c.id.in_(empty)))
        log.info("ingest: %d messages were stored concurrently elsewhere; answered as duplicates", len(raced))

    live_bumps = sorted((b for b in bumps.values() if b["b_n"] > 0), key=lambda b: b["b_id"])
    if live_bumps:
        await conn.execute(_UPDATE_CONVERSATION, live_bumps)

    links = [
        {"a_msg": row["id"], "a_id": att}
        for row, (i, *_rest) in zip(message_rows, meta_of, strict=True)
        if row["id"] in inserted
        for att in items[i].attachment_ids
    ]
    if links:
        await conn.execute(_LINK_ATTACHMENT, links)

    for row, (i, _ckey, is_new, reopened) in zip(message_rows, meta_of, strict=True):
        if row["id"] not in inserted:
            results[i] = originals[(row["channel"], row["external_id"])]
            continue
        results[i] = IngestResult(row["id"], row["conversation_id"], row["customer_id"], created=True)
        written.created_by_channel[row["channel"]] = written.created_by_channel.get(row["channel"], 0) + 1
        written.events.append(
            MessageReceived(
                row["conversation_id"],
                row["id"],
                row["customer_id"],
                row["channel"],
                items[i].inbox_id,
                row["direction"],
                row["author_type"],
                row["created_at"],
                row["text"][:PREVIEW_CHARS],
                is_new,
                reopened,
            )
        )


async def _join_winners(
    conn: AsyncConnection,
    new_convs: dict[ConvKey, dict[str, Any]],
    opened: set[uuid.UUID],
    bumps: dict[uuid.UUID, dict[str, Any]],
    message_rows: list[dict[str, Any]],
    meta_of: list[tuple[int, ConvKey, bool, bool]],
    now: datetime,
) -> None:
    """Conversations we meant to open that another writer opened first (after our lookup): file
    their messages under the winner's conversation and count them there (the rare path)."""
    lost = {k: c for k, c in new_convs.items() if c["id"] not in opened}
    cv = _conversations.c
    rows = await conn.execute(
        select(cv.id, cv.customer_id, cv.channel, cv.inbox_id, cv.status).where(
            cv.customer_id.in_({k[0] for k in lost}),
            cv.auto_open.is_(True),
            cv.status != ConversationStatus.resolved.value,
        )
    )
    winners: dict[ConvKey, tuple[uuid.UUID, str]] = {(r[1], r[2], r[3]): (r[0], r[4]) for r in rows}
    remap: dict[uuid.UUID, tuple[uuid.UUID, str]] = {}
    for key, conv in lost.items():
        if key not in winners:  # resolved again in between: the batch is retried item by item
            raise RuntimeError("a concurrently opened conversation vanished before it could be joined")
        won_id, status = winners[key]
        del new_convs[key]
        remap[conv["id"]] = (won_id, status)
        bump = bumps.setdefault(
            won_id,
            {
                "b_id": won_id,
                "b_last": conv["last_message_at"],
                "b_first": conv["waiting_since"],
                "b_n": 0,
                "b_now": now,
            },
        )
        bump["b_n"] += conv["message_count"]
        bump["b_last"] = max(bump["b_last"], conv["last_message_at"])
        bump["b_first"] = min(bump["b_first"], conv["waiting_since"])
    for j, row in enumerate(message_rows):
        if row["conversation_id"] in remap:
            won_id, status = remap[row["conversation_id"]]
            row["conversation_id"] = won_id
            i, ckey, _new, _reopened = meta_of[j]
            meta_of[j] = (i, ckey, False, status in _REOPENS)
    log.info("ingest: %d conversations were opened concurrently elsewhere; joined", len(lost))


async def _explain_failure(conn: AsyncConnection, item: InboundMessage, exc: Exception) -> Exception:
    """Turn a database error of a single item into a problem the caller can act on."""
    if isinstance(exc, IntegrityError) and item.inbox_id is not None:
        exists = (await conn.execute(select(_inboxes.c.id).where(_inboxes.c.id == item.inbox_id))).first()
        if exists is None:
            return Invalid(f"no inbox with id {item.inbox_id}", field="inbox_id")
    return exc


# -- inside an existing unit of work ----------------------------------------------------------


async def receive(session: AsyncSession, msg: InboundMessage) -> IngestResult:
    """Store one inbound message in ``session``'s unit of work (flushes; the boundary commits).

    Same rules as :meth:`IngestWriter.submit`; the realtime push is released after the commit.
    """
    item = msg.prepared()
    await session.flush()
    conn = await session.connection()
    if item.inbox_id is not None:
        # Checked first: a failed statement would spoil the caller's whole unit of work.
        known = (await conn.execute(select(_inboxes.c.id).where(_inboxes.c.id == item.inbox_id))).first()
        if known is None:
            raise Invalid(f"no inbox with id {item.inbox_id}", field="inbox_id")
    written = await write_batch(conn, [item])
    for ev in written.events:
        emit(session, ev)
    if written.created_by_channel:

        async def _count() -> None:
            written.count()

        after_commit(session, _count)
    return written.results[0]


# -- the group-commit writer ----------------------------------------------------------------


class IngestWriter(GroupCommit[InboundMessage, IngestResult]):
    """Group commit for inbound messages: ``app.state.ingest`` in the server.

    ``submit`` may be called from any task of the event loop (``frontdesk.groupcommit`` drains the
    queue into batches); each batch is :func:`write_batch` plus the bus's in-transaction
    subscribers on its ``MessageReceived`` events, in one transaction; the push follows the commit.
    """

    name = "ingest"

    def __init__(self, db: Database, settings: Settings) -> None:
        super().__init__(db, batch_max=settings.ingest_batch_max, concurrent_max=settings.ingest_concurrent_batches)
        self.settings = settings

    def prepare(self, item: InboundMessage) -> InboundMessage:
        return item.prepared()

    def observe(self, batch_size: int) -> None:
        INGEST_BATCH.observe(batch_size)

    def describe(self, item: InboundMessage) -> str:
        return f"message {item.channel}/{item.external_id}"

    async def write(self, conn: AsyncConnection, items: list[InboundMessage]) -> Batch[IngestResult]:
        written = await write_batch(conn, items)
        # Same transaction: rows the bus's subscribers derive (routing inbox, webhook deliveries).
        wakeups = await bus.run_in_transaction(conn, written.events)
        events, hub = written.events, self.db.hub

        async def publish() -> None:
            await bus.run_after_commit(events, hub)

        return Batch(list(written.results), after=[*wakeups, written.count], publish=publish if events else None)

    async def explain(self, conn: AsyncConnection, item: InboundMessage, exc: Exception) -> Exception:
        return await _explain_failure(conn, item, exc)


__all__ = ["InboundMessage", "IngestResult", "IngestWriter", "receive", "sanitise_html", "write_batch"]
