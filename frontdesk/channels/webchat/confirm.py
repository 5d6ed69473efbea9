"""Proving an e-mail address a web-chat visitor gave: the link Frontdesk e-mails to it.

A visitor who types an address another customer has stays on their own customer (a claim; see
``visitor.apply_contact``). To become that customer they prove the address:

1. :func:`request_link` (the pre-chat frame does it at once, or the ``confirm_email`` frame) writes
   an :class:`EmailConfirmation` row and a timer ``webchat.send_email_confirmation``, in the
   caller's unit of work: nothing is mailed for rolled-back work, and a crash before sending only
   delays it. At most ``settings.email_links_per_hour`` links per visitor and per address an hour.
2. The timer handler :func:`send_confirmation` makes the token (32 random bytes, URL-safe), keeps
   only its SHA-256 on the row, and sends the link through the outbound mail relay
   (``channels/email/outbound.send_system_mail``). A retry makes a new token (the unsent one
   never left the server).
3. ``GET /confirm-email/<token>`` shows a page that asks "is this you?" — mail scanners that
   open links must not prove anything — and its button POSTs to the same URL: :func:`confirm`.
   The token works once, until ``expires_at``. Then the visitor PROVED the address
   (``merge.prove_identity``, source ``email_link``): nobody has it → it is added, verified;
   someone has it only unverified (another claim) → it moves to the visitor, the claimant gets a
   merge suggestion; the owner has it proven → the visitor's customer is merged into the owner
   (``merge.merge_customers``, audited with actor kind ``email_link``) — unless both are different
   signed-in users of the site (each with a proven external id), where agents decide.
4. After the commit the visitor's open widgets are told (``widget.email_confirmed`` on their old
   customer's topic) and load the history of the customer they now are.

See docs/channels/webchat.md and docs/architecture/webchat-protocol.md.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock, timers
from frontdesk.audit.service import SystemActor, record
from frontdesk.channels.base import PermanentError
from frontdesk.channels.email.outbound import send_system_mail
from frontdesk.channels.webchat.topics import customer_topic
from frontdesk.customers import service as customers
from frontdesk.customers.merge import merge_customers, prove_identity, suggest_merge
from frontdesk.errors import Conflict
from frontdesk.models import EmailConfirmation, Identity, Inbox, Timer, WebchatVisitor
from frontdesk.models.enums import IdentityKind
from frontdesk.realtime import publish_after_commit
from frontdesk.settings import Settings, get_settings
from frontdesk.web import i18n

log = logging.getLogger(__name__)

SEND_TIMER = "webchat.send_email_confirmation"
CONFIRMED = "widget.email_confirmed"  # on widget-customer:<old customer id>, after the commit
PROOF_SOURCE = "email_link"
ACTOR = SystemActor(actor_kind=PROOF_SOURCE)  # the audit log's "e-mail link verification"
# Merge-suggestion reason: the visitor proved the address, but both records are different site users.
REASON_CONFIRMED_OTHER_USER = "webchat_email_confirmed"
PATH = "/confirm-email/{token}"
_EMAIL = IdentityKind.email.value
_EXTERNAL = IdentityKind.external_id.value


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def link_base(settings: Settings) -> str:
    """Where links point: ``public_url``, never a request's Host header (a forged Host would mail
    the token to the attacker's site)."""
    return (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")


# -- asking for a link ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkRequest:
    email: str
    sent: bool  # a link is on its way (False: too many asked for in the last hour)
    retry_after: int | None = None  # seconds until another link can be asked for


async def request_link(session: AsyncSession, visitor: WebchatVisitor, email: str, settings: Settings) -> LinkRequest:
    """Queue a confirmation link to ``email`` (normalised) for ``visitor``; rate-limited per visitor and address."""
    now = clock.now()
    since = now - timedelta(hours=1)
    c = EmailConfirmation
    limit = settings.email_links_per_hour
    for where in (c.visitor_id == visitor.id, c.email == email):
        count, oldest = (
            await session.execute(select(func.count(), func.min(c.created_at)).where(where, c.created_at > since))
        ).one()
        if count >= limit:
            wait = int((clock.ensure_utc(oldest) + timedelta(hours=1) - now).total_seconds()) + 1
            return LinkRequest(email, False, max(1, wait))
    row = EmailConfirmation(
        visitor_id=visitor.id,
        customer_id=visitor.customer_id,
        email=email,
        created_at=now,
        expires_at=now + timedelta(minutes=settings.email_link_minutes),
    )
    session.add(row)
    await session.flush()
    await timers.schedule(session, SEND_TIMER, now, {"confirmation_id": str(row.id)}, max_attempts=6)
    return LinkRequest(email, True)


# -- sending it ----------------------------------------------------------------------------------

# The mail's text (English msgids, Russian in frontdesk/web/locale/ru/identity.po).
MAIL_SUBJECT = i18n.N_("Confirm your e-mail address")
MAIL_TEXT = i18n.N_(
    "Hello,\n\n"
    "someone chatting with {site} gave {email} as their address. If that was you, open this link "
    "and confirm it: the chat then shows your earlier conversations with us.\n\n{link}\n\n"
    "The link works once, for {minutes} minutes. If it was not you, ignore this e-mail: nothing changes."
)


def _language(locale: str | None) -> str:
    return "ru" if (locale or "").lower().startswith("ru") else "en"


async def send_confirmation(session: AsyncSession, timer: Timer) -> None:
    """Timer handler: make the token, keep its hash, mail the link (then the row is committed)."""
    settings: Settings = session.info.get("settings") or get_settings()
    raw = timer.payload.get("confirmation_id")
    try:
        row = await session.get(EmailConfirmation, uuid.UUID(str(raw)))
    except ValueError as exc:
        raise timers.PermanentFailure(f"bad confirmation_id in payload: {raw!r}") from exc
    if row is None or row.used_at is not None or clock.ensure_utc(row.expires_at) <= clock.now():
        return  # erased, used or expired meanwhile: nothing to send
    visitor = await session.get(WebchatVisitor, row.visitor_id)
    inbox = await session.get(Inbox, visitor.inbox_id) if visitor else None
    customer = await customers.get_customer(session, row.customer_id)
    site = str((inbox.config or {}).get("title") or inbox.name) if inbox else "us"
    token = secrets.token_urlsafe(32)
    row.token_hash = token_hash(token)
    row.sent_at = clock.now()
    await session.flush()
    lang = _language(customer.locale)
    link = link_base(settings) + PATH.format(token=token)
    minutes = max(1, int((clock.ensure_utc(row.expires_at) - clock.now()).total_seconds() // 60))
    text = i18n.gettext(lang, MAIL_TEXT, site=site, email=row.email, link=link, minutes=minutes)
    html = (
        "<p>"
        + html_lib.escape(text)
        .replace("\n\n", "</p>\n<p>")
        .replace(html_lib.escape(link), f'<a href="{html_lib.escape(link)}">{html_lib.escape(link)}</a>')
        + "</p>"
    )
    try:
        await send_system_mail(
            session, settings, to=row.email, subject=i18n.gettext(lang, MAIL_SUBJECT), text=text, html=html
        )
    except PermanentError as exc:
        raise timers.PermanentFailure(f"the confirmation link could not be mailed: {exc}") from exc
    log.info("webchat: confirmation link %s mailed for visitor %s", row.id, row.visitor_id)


# -- opening it ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Opened:
    """A link looked up by its token: ``state`` is ``ok`` | ``used`` | ``expired`` | ``unknown``."""

    state: str
    confirmation: EmailConfirmation | None = None


async def look_up(session: AsyncSession, token: str) -> Opened:
    if not token or len(token) > 200:
        return Opened("unknown")
    row = (
        await session.scalars(select(EmailConfirmation).where(EmailConfirmation.token_hash == token_hash(token)))
    ).first()
    if row is None:
        return Opened("unknown")
    if row.used_at is not None:
        return Opened("used", row)
    if clock.ensure_utc(row.expires_at) <= clock.now():
        return Opened("expired", row)
    return Opened("ok", row)


@dataclass(frozen=True)
class Confirmed:
    """What opening a link did: ``outcome`` is ``merged`` (the visitor became the owner),
    ``verified`` (the address is now the visitor's own, proven) or ``suggested`` (proven, but the
    owner is another signed-in user: agents decide); else the :class:`Opened` state."""

    outcome: str
    email: str | None = None
    customer_id: uuid.UUID | None = None


async def _signed_in_user(session: AsyncSession, customer_id: uuid.UUID) -> str | None:
    return await session.scalar(
        select(Identity.value)
        .where(Identity.customer_id == customer_id, Identity.kind == _EXTERNAL, Identity.verified.is_(True))
        .limit(1)
    )


async def confirm(session: AsyncSession, token: str) -> Confirmed:
    """The visitor proved the address: use the link once and make the visitor its owner's customer."""
    opened = await look_up(session, token)
    if opened.state != "ok" or opened.confirmation is None:
        return Confirmed(opened.state)
    row = opened.confirmation
    now = clock.now()
    used = await session.execute(
        update(EmailConfirmation)
        .where(EmailConfirmation.id == row.id, EmailConfirmation.used_at.is_(None))
        .values(used_at=now)
        .returning(EmailConfirmation.id)
    )
    if used.first() is None:
        return Confirmed("used")  # the other click of a double click
    visitor = await session.get(WebchatVisitor, row.visitor_id)
    if visitor is None:
        return Confirmed("unknown")
    mine = await customers.follow_merges(session, await customers.get_customer(session, visitor.customer_id))
    before = mine.id
    proof = await prove_identity(session, _EMAIL, row.email, mine.id, PROOF_SOURCE, ACTOR)
    outcome, survivor = "verified", mine.id
    if proof.outcome == "owned":
        assert proof.holder_id is not None
        owner = proof.holder_id
        theirs_user, my_user = await _signed_in_user(session, owner), await _signed_in_user(session, mine.id)
        if theirs_user is not None and my_user is not None and theirs_user != my_user:
            await suggest_merge(
                session,
                mine.id,
                owner,
                REASON_CONFIRMED_OTHER_USER,
                evidence={"identity": {"kind": _EMAIL, "value": row.email}, "visitor_id": str(visitor.id)},
            )
            outcome = "suggested"
        else:
            try:
                await merge_customers(session, owner, mine.id, ACTOR)
            except Conflict as exc:  # erased meanwhile: nothing to join
                log.warning("webchat: confirmed link %s could not merge: %s", row.id, exc.detail)
                return Confirmed("unknown")
            outcome, survivor = "merged", owner
    await record(
        session,
        ACTOR,
        "customer.email_confirmed",
        "customer",
        survivor,
        {"confirmation_id": str(row.id), "visitor_id": str(visitor.id), "outcome": outcome, "proof": proof.outcome},
    )
    publish_after_commit(
        session,
        customer_topic(before),
        CONFIRMED,
        {"visitor_id": str(visitor.id), "customer_id": str(survivor), "outcome": outcome},
    )
    await session.flush()
    return Confirmed(outcome, row.email, survivor)


__all__ = ["CONFIRMED", "SEND_TIMER", "confirm", "link_base", "look_up", "request_link", "send_confirmation"]
