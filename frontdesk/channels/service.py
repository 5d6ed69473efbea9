"""Inboxes: one per channel instance (a widget, a mailbox, an API integration).

Channel settings live in ``config``. Keys whose name contains *secret*, *password* or *token* are
secrets: :func:`masked_config` hides them for every reader, and an update that sends the mask back
keeps the stored value, so a form can round-trip a config without ever seeing its secrets.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import netguard
from frontdesk.audit.service import Actor, record
from frontdesk.auth import revocation
from frontdesk.channels.webchat import config as webchat_config
from frontdesk.db import flush_or_conflict, get_or_404
from frontdesk.errors import Conflict, Invalid, NotFound
from frontdesk.models import Inbox
from frontdesk.models.enums import Channel

MASK = "********"
SECRET_MARKERS = ("secret", "password", "token")


def is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(marker in lowered for marker in SECRET_MARKERS)


def masked_config(config: Any) -> Any:
    """A copy of ``config`` with every secret value replaced by the mask (at any depth)."""
    if isinstance(config, dict):
        return {k: (MASK if is_secret_key(k) and v not in (None, "") else masked_config(v)) for k, v in config.items()}
    if isinstance(config, list):
        return [masked_config(v) for v in config]
    return config


def merge_masked(new: Any, stored: Any, path: str = "config") -> Any:
    """``new`` with each masked secret replaced by the value stored under the same key."""
    if isinstance(new, dict):
        old = stored if isinstance(stored, dict) else {}
        out: dict[str, Any] = {}
        for key, value in new.items():
            here = f"{path}.{key}"
            if value == MASK and is_secret_key(key):
                if key not in old:
                    raise Invalid(
                        f"{here} is the mask {MASK!r} but no value is stored; send the real value", field=here
                    )
                out[key] = old[key]
            else:
                out[key] = merge_masked(value, old.get(key), here)
        return out
    if isinstance(new, list):
        old_list = stored if isinstance(stored, list) else []
        return [merge_masked(v, old_list[i] if i < len(old_list) else None, f"{path}[{i}]") for i, v in enumerate(new)]
    return new


def _channel(value: str) -> Channel:
    try:
        return Channel(value)
    except ValueError as exc:
        allowed = ", ".join(c.value for c in Channel)
        raise Invalid(f"unknown channel '{value}'; use one of: {allowed}", field="channel") from exc


async def _check_name(session: AsyncSession, name: str, exclude: uuid.UUID | None = None) -> None:
    stmt = select(Inbox.id).where(Inbox.name == name)
    if exclude is not None:
        stmt = stmt.where(Inbox.id != exclude)
    if await session.scalar(stmt) is not None:
        raise Conflict(f"An inbox named {name!r} already exists.")


async def check_destinations(channel: Channel, config: dict[str, Any], settings: Any = None) -> None:
    """An API inbox's ``webhook_url`` and an e-mail inbox's ``imap.host`` may not point inside the
    network (``frontdesk.netguard``, allow-list ``FRONTDESK_OUTBOUND_ALLOW``): 422 naming why."""
    policy = netguard.policy_of(settings)
    checks: list[tuple[str, Any, bool]] = []
    if channel is Channel.api and config.get("webhook_url") not in (None, ""):
        checks.append(("config.webhook_url", config["webhook_url"], True))
    imap = config.get("imap")
    if channel is Channel.email and isinstance(imap, dict) and imap.get("host") not in (None, ""):
        checks.append(("config.imap.host", imap["host"], False))
    for field, value, is_url in checks:
        if not isinstance(value, str):
            raise Invalid(f"{field} must be a string", field=field)
        try:
            await (netguard.check_url(value, policy) if is_url else netguard.check_host(value, policy))
        except netguard.DestinationRefused as exc:
            raise Invalid(f"{field}: {exc}", field=field) from exc


async def list_inboxes(session: AsyncSession, *, channel: str | None = None, active: bool | None = None) -> list[Inbox]:
    stmt = select(Inbox).order_by(Inbox.name)
    if channel is not None:
        stmt = stmt.where(Inbox.channel == _channel(channel).value)
    if active is not None:
        stmt = stmt.where(Inbox.is_active.is_(active))
    return list((await session.scalars(stmt)).all())


async def get_inbox(session: AsyncSession, inbox_id: uuid.UUID) -> Inbox:
    inbox = await get_or_404(session, Inbox, inbox_id, "inbox")
    return inbox


async def get_inbox_by_public_token(session: AsyncSession, public_token: str) -> Inbox:
    """The inbox a widget snippet names (``NotFound`` if unknown or inactive)."""
    inbox = await session.scalar(select(Inbox).where(Inbox.public_token == public_token, Inbox.is_active.is_(True)))
    if inbox is None:
        raise NotFound("No active inbox with that public token.")
    return inbox


async def create_inbox(
    session: AsyncSession,
    *,
    name: str,
    channel: str,
    config: dict[str, Any] | None = None,
    is_active: bool = True,
    actor: Actor | None = None,
    settings: Any = None,
) -> Inbox:
    name = name.strip()
    if not name:
        raise Invalid("the inbox needs a name", field="name")
    chosen = _channel(channel)
    await _check_name(session, name)
    if config and MASK in str(config):
        config = merge_masked(config, {})  # a new inbox has nothing stored: a mask is an error
    if chosen is Channel.webchat:
        webchat_config.check(config or {})
    await check_destinations(chosen, config or {}, settings)
    if chosen is Channel.api:  # signed both ways: generate the secrets the admin did not set
        config = dict(config or {})
        for key in ("inbound_secret", "webhook_secret"):
            config[key] = config.get(key) or secrets.token_urlsafe(32)
    inbox = Inbox(
        name=name,
        channel=chosen.value,
        config=dict(config or {}),
        public_token=secrets.token_urlsafe(18),
        is_active=is_active,
    )
    session.add(inbox)
    await flush_or_conflict(session, f"An inbox named {name!r} already exists.")
    await record(session, actor, "inbox.created", "inbox", inbox.id, {"name": name, "channel": chosen.value})
    return inbox


async def update_inbox(
    session: AsyncSession, inbox: Inbox, changes: dict[str, Any], actor: Actor | None, settings: Any = None
) -> Inbox:
    audit: dict[str, Any] = {}
    if changes.get("name") is not None and changes["name"].strip() != inbox.name:
        name = changes["name"].strip()
        await _check_name(session, name, exclude=inbox.id)
        audit["name"] = {"from": inbox.name, "to": name}
        inbox.name = name
    if changes.get("config") is not None:
        merged = merge_masked(changes["config"], inbox.config)
        if inbox.channel == Channel.webchat.value:
            webchat_config.check(merged)
        await check_destinations(Channel(inbox.channel), merged, settings)
        if merged != inbox.config:
            inbox.config = merged
            audit["config"] = masked_config(merged)  # the audit log never holds a secret either
    if changes.get("is_active") is not None and changes["is_active"] != inbox.is_active:
        inbox.is_active = changes["is_active"]
        audit["is_active"] = inbox.is_active
    await flush_or_conflict(session, f"An inbox named {inbox.name!r} already exists.")
    if audit:
        await record(session, actor, "inbox.updated", "inbox", inbox.id, audit)
    if "config" in audit or "is_active" in audit:
        await _signing_changed(session, inbox)
    return inbox


async def _signing_changed(session: AsyncSession, inbox: Inbox) -> None:
    """An API inbox's secret or state decides who may post to it: its change is a credential
    change, so every process stops honouring the old one at once (``apichannel.inbound``)."""
    if inbox.channel == Channel.api.value:
        await revocation.record(session, revocation.INBOX_SIGNING_CHANGED)


async def deactivate_inbox(session: AsyncSession, inbox: Inbox, actor: Actor | None) -> Inbox:
    """Inboxes are never deleted (their conversations keep pointing at them); they are switched off."""
    if inbox.is_active:
        inbox.is_active = False
        await session.flush()
        await record(session, actor, "inbox.deactivated", "inbox", inbox.id, {"name": inbox.name})
        await _signing_changed(session, inbox)
    return inbox
