"""When a credential stops working, what rides on it stops at once — in every process.

A credential change is a sign-out, a password change, a disabled (or re-roled) user, a revoked
API token, or an API inbox whose inbound secret or state changed. The service that makes it calls
:func:`record` inside its unit of work, which writes a ``credential_changes`` row in the same
transaction and, after the commit, publishes ``auth.credentials_changed`` on the hub topic
``system.auth`` (naming the user, session and token, where it names them).

Every server process runs one :class:`Watcher`. It hears the hub event at once (every process in
scaled mode, through Redis) and, as a backstop that needs nothing but the database, reads new rows
every ``auth_watch_seconds`` — that is how a change made by ``frontdesk user disable`` in another
process, without Redis, reaches a running server. For each change it

1. empties the process's API-token cache (``auth/cache.py``) and moves :func:`generation` on,
   which retires the API inboxes' cached signing secrets (``channels/apichannel/inbound.py``), and
2. re-checks, against the database, the credential of every local WebSocket of the named user,
   session or token (:class:`LiveSockets`), and closes those whose credential is gone with
   **4401** and a reason. Other users' sockets, and the user's sockets whose credential is still
   good (the browser that changed its own password), stay open.

See docs/architecture/auth.md ("Revocation").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import weakref
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.auth import cache
from frontdesk.db import Database, after_commit
from frontdesk.models import ApiToken, CredentialChange, User, UserSession

if TYPE_CHECKING:
    from frontdesk.realtime import Hub

log = logging.getLogger(__name__)

TOPIC = "system.auth"
EVENT = "auth.credentials_changed"
CLOSE_REVOKED = 4401
CLOSE_RECHECK = 1012  # "service restart": the check itself failed; reconnecting authenticates afresh
# A row is read by the watchers while it is this young (a transaction that commits later than this
# after writing it is missed by the poll, not by the hub); rows are deleted after a day.
LOOKBACK = timedelta(minutes=5)
KEEP = timedelta(days=1)
RECENT_CHANGES = 256

REASONS = {
    "signed_out": "signed out",
    "signed_in_again": "signed in again in this browser",
    "password_changed": "the password was changed",
    "disabled": "the account was disabled",
    "role_changed": "the role was changed",
    "profile_changed": "the profile was changed",
    "token_revoked": "the API token was revoked",
    "inbox_signing_changed": "an API inbox's inbound secret or state changed",
}
INBOX_SIGNING_CHANGED = "inbox_signing_changed"  # recorded by the inbox services (channels)


def generation() -> int:
    """Changes whenever this process learns of a credential change (its own at once, another
    process's when the :class:`Watcher` hears of it). A cache of credential-derived data (the API
    inboxes' signing secrets) keeps an entry only while the generation it was read at is current."""
    return cache.generation()


@dataclass(frozen=True)
class Change:
    """What changed: the reason and whichever of user, session and token it names."""

    reason: str
    user_id: uuid.UUID | None = None
    session_id: str | None = None
    token_id: uuid.UUID | None = None
    id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reason": self.reason,
            "user_id": str(self.user_id) if self.user_id else None,
            "session_id": self.session_id,
            "token_id": str(self.token_id) if self.token_id else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Change:
        return cls(
            reason=str(d.get("reason") or "changed"),
            user_id=uuid.UUID(d["user_id"]) if d.get("user_id") else None,
            session_id=d.get("session_id") or None,
            token_id=uuid.UUID(d["token_id"]) if d.get("token_id") else None,
            id=int(d["id"]) if d.get("id") is not None else None,
        )

    @property
    def detail(self) -> str:
        return REASONS.get(self.reason, "the credentials changed")


async def record(
    session: AsyncSession,
    reason: str,
    *,
    user_id: uuid.UUID | None = None,
    session_id: str | None = None,
    token_id: uuid.UUID | None = None,
) -> None:
    """Record a credential change in this unit of work; it takes effect everywhere once committed.

    This process's token cache is emptied now (and again after the commit, so a lookup racing the
    commit cannot leave a stale entry); the hub carries the change to every process after the commit.
    """
    cache.clear()
    now = clock.now()
    row = CredentialChange(changed_at=now, reason=reason, user_id=user_id, session_id=session_id, token_id=token_id)
    session.add(row)
    await session.flush()
    await session.execute(delete(CredentialChange).where(CredentialChange.changed_at < now - KEEP))
    change = Change(reason, user_id, session_id, token_id, row.id)

    async def _effect() -> None:
        cache.clear()
        hub: Hub | None = session.info.get("hub")
        if hub is None:
            return
        # This process's sockets close before the request that made the change answers; other
        # processes hear it from the hub (or, failing that, read the row).
        for watcher in [w for w in _watchers if w.hub is hub]:
            await watcher.apply(change)
        await hub.publish(TOPIC, EVENT, change.as_dict())

    after_commit(session, _effect)


# -- the sockets of this process -----------------------------------------------------------------


Closer = Callable[[int, str], Awaitable[None]]


class LiveCredential:
    """One open WebSocket and the credential it rides on (a browser session or an API token)."""

    __slots__ = ("close", "session_id", "token_id", "user_id")

    def __init__(
        self, user_id: uuid.UUID, close: Closer, *, session_id: str | None = None, token_id: uuid.UUID | None = None
    ) -> None:
        self.user_id = user_id
        self.session_id = session_id
        self.token_id = token_id
        self.close = close

    def named_by(self, change: Change) -> bool:
        return (
            (change.user_id is not None and change.user_id == self.user_id)
            or (change.session_id is not None and change.session_id == self.session_id)
            or (change.token_id is not None and change.token_id == self.token_id)
        )


class LiveSockets:
    """The authenticated WebSockets of one process (``app.state.live_sockets``), by user."""

    def __init__(self) -> None:
        self._by_user: dict[uuid.UUID, set[LiveCredential]] = defaultdict(set)
        self.generation = 0  # bumped by every change applied in this process
        self._recent: deque[tuple[int, Change]] = deque(maxlen=RECENT_CHANGES)

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_user.values())

    def register(self, cred: LiveCredential) -> None:
        self._by_user[cred.user_id].add(cred)

    def unregister(self, cred: LiveCredential) -> None:
        live = self._by_user.get(cred.user_id)
        if live is not None:
            live.discard(cred)
            if not live:
                del self._by_user[cred.user_id]

    def note(self, change: Change) -> None:
        self.generation += 1
        self._recent.append((self.generation, change))

    def changed_since(self, generation: int, cred: LiveCredential) -> bool:
        """Whether a change applied after ``generation`` names ``cred`` (or so many came that we cannot tell)."""
        if self.generation - generation >= RECENT_CHANGES:
            return True
        return any(g > generation and cred.named_by(change) for g, change in self._recent)

    def affected(self, change: Change) -> list[LiveCredential]:
        if change.user_id is not None:
            candidates: Iterable[LiveCredential] = self._by_user.get(change.user_id, ())
        else:
            candidates = (c for live in self._by_user.values() for c in live)
        return [c for c in candidates if c.named_by(change)]


async def still_valid(db: Database, creds: list[LiveCredential]) -> set[LiveCredential]:
    """The credentials of ``creds`` that the database still honours (one short read)."""
    if not creds:
        return set()
    now = clock.now()
    user_ids = {c.user_id for c in creds}
    session_ids = {c.session_id for c in creds if c.session_id}
    token_ids = {c.token_id for c in creds if c.token_id}
    async with db.transaction() as s:
        active = set(await s.scalars(select(User.id).where(User.id.in_(user_ids), User.is_active.is_(True))))
        sessions: set[tuple[str, uuid.UUID]] = set()
        if session_ids:
            session_rows = await s.execute(
                select(UserSession.id, UserSession.user_id).where(
                    UserSession.id.in_(session_ids), UserSession.expires_at > now
                )
            )
            sessions = {(r[0], r[1]) for r in session_rows}
        tokens: set[tuple[uuid.UUID, uuid.UUID]] = set()
        if token_ids:
            rows = await s.execute(
                select(ApiToken.id, ApiToken.user_id).where(
                    ApiToken.id.in_(token_ids),
                    ApiToken.revoked_at.is_(None),
                    or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
                )
            )
            tokens = {(r[0], r[1]) for r in rows}
    return {
        c
        for c in creds
        if c.user_id in active
        and (
            (c.session_id, c.user_id) in sessions
            if c.session_id is not None
            else c.token_id is not None and (c.token_id, c.user_id) in tokens
        )
    }


# -- the watcher -----------------------------------------------------------------------------------


_watchers: weakref.WeakSet[Watcher] = weakref.WeakSet()


class Watcher:
    """Applies credential changes to this process: from the hub at once, from the table as a backstop."""

    def __init__(self, db: Database, hub: Hub, sockets: LiveSockets, *, interval: float) -> None:
        self.db = db
        self.hub = hub
        self.sockets = sockets
        self.interval = interval
        self._seen: dict[int, float] = {}  # change id -> when it was applied (monotonic)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        with contextlib.suppress(Exception):  # a database not reachable yet: the poll catches up
            for change in await self._read():
                if change.id is not None:
                    self._seen[change.id] = time.monotonic()
        self._tasks = [
            asyncio.create_task(self._listen(), name="credential-changes-hub"),
            asyncio.create_task(self._poll(), name="credential-changes-poll"),
        ]
        _watchers.add(self)

    async def stop(self) -> None:
        _watchers.discard(self)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks = []

    async def apply(self, change: Change) -> None:
        if change.id is not None:
            if change.id in self._seen:
                return
            self._seen[change.id] = time.monotonic()
        cache.clear()
        self.sockets.note(change)
        await close_revoked(self.db, self.sockets.affected(change), change.detail)

    async def _read(self) -> list[Change]:
        since = clock.now() - LOOKBACK
        async with self.db.transaction() as s:
            rows = await s.execute(
                select(
                    CredentialChange.id,
                    CredentialChange.reason,
                    CredentialChange.user_id,
                    CredentialChange.session_id,
                    CredentialChange.token_id,
                )
                .where(CredentialChange.changed_at >= since)
                .order_by(CredentialChange.id)
            )
            return [Change(r.reason, r.user_id, r.session_id, r.token_id, r.id) for r in rows]

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                changes = await self._read()
            except Exception:
                # Without the table we cannot hear of revocations: keep no cached token meanwhile.
                cache.clear()
                log.warning("could not read credential changes; retrying", exc_info=True)
                continue
            for change in changes:
                if change.id not in self._seen:
                    await self.apply(change)
            horizon = time.monotonic() - 2 * LOOKBACK.total_seconds()
            for key in [k for k, at in self._seen.items() if at < horizon]:
                del self._seen[key]

    async def _listen(self) -> None:
        while True:
            try:
                async for event in self.hub.subscribe([TOPIC]):
                    if event.type != EVENT:
                        continue
                    try:
                        change = Change.from_dict(event.data)
                    except (KeyError, ValueError, TypeError):
                        log.warning("undecodable credential change: %r", event.data)
                        cache.clear()
                        continue
                    await self.apply(change)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("credential watcher lost the hub; retrying (the poll still runs)", exc_info=True)
                cache.clear()
                await asyncio.sleep(1)


async def close_revoked(db: Database, creds: list[LiveCredential], detail: str) -> None:
    """Close those of ``creds`` whose credential the database no longer honours (4401, ``detail``)."""
    if not creds:
        return
    try:
        valid = await still_valid(db, creds)
    except Exception:
        log.warning("could not re-check %d socket credentials; closing them to be safe", len(creds), exc_info=True)
        for c in creds:
            await _close(c, CLOSE_RECHECK, "credentials changed; reconnect")
        return
    for c in creds:
        if c not in valid:
            await _close(c, CLOSE_REVOKED, detail)


async def _close(cred: LiveCredential, code: int, reason: str) -> None:
    try:
        await cred.close(code, reason)
    except Exception:
        log.debug("closing a revoked socket failed", exc_info=True)
