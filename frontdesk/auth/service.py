"""Users, teams, browser sessions and API tokens: the business rules (no HTTP; flush, never commit).

``actor`` is whoever makes the change (a :class:`frontdesk.auth.deps.Principal`), or ``None`` when
the system does it (the CLI). Every administrative change writes an audit row in the same unit of work.
"""

from __future__ import annotations

import secrets
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.audit.service import Actor, record
from frontdesk.auth import revocation
from frontdesk.auth.security import (
    hash_password,
    hash_token,
    new_secret_token,
    password_needs_rehash,
    verify_password,
)
from frontdesk.bus import emit
from frontdesk.customers.identity import normalise_email
from frontdesk.db import flush_or_conflict, get_or_404
from frontdesk.errors import Conflict, Forbidden, Invalid, NotFound
from frontdesk.events import TeamChanged, UserChanged
from frontdesk.models import ApiToken, Queue, Team, TeamMember, User, UserSession
from frontdesk.models.enums import Role

MIN_PASSWORD = 8
MAX_PASSWORD = 1024
TOKEN_SCOPES = ("read", "write")
ADMIN_FIELDS = frozenset({"role", "is_active"})
# Which audit key of a user update names the credential change (the first that applies).
_CHANGE_REASONS = (("is_active", "disabled"), ("password", "password_changed"), ("role", "role_changed"))
SELF_FIELDS = frozenset({"name", "locale", "time_zone", "password"})


# -- users ------------------------------------------------------------------------------------


def _check_password(password: str, field: str = "password") -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise Invalid(f"the password must be at least {MIN_PASSWORD} characters long", field=field)
    if len(password) > MAX_PASSWORD:
        raise Invalid(f"the password must be at most {MAX_PASSWORD} characters long", field=field)


def _check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError as exc:
        allowed = ", ".join(r.value for r in Role)
        raise Invalid(f"unknown role '{role}'; use one of: {allowed}", field="role") from exc


def _check_time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Invalid(
            f"unknown time zone '{value}'; use an IANA name such as Europe/Moscow", field="time_zone"
        ) from exc
    return value


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    role: str,
    name: str | None = None,
    locale: str | None = None,
    time_zone: str | None = None,
    actor: Actor | None = None,
) -> User:
    """Create a user (409 if the email is taken). ``name`` defaults to the part of the email before @."""
    address = normalise_email(email, field="email")
    _check_password(password)
    checked_role = _check_role(role)
    if await session.scalar(select(User.id).where(User.email == address)) is not None:
        raise Conflict(f"A user with the email {address} already exists.")
    user = User(
        email=address,
        name=(name or "").strip() or address.split("@", 1)[0],
        password_hash=hash_password(password),
        role=checked_role.value,
        locale=locale,
        time_zone=_check_time_zone(time_zone) if time_zone else "UTC",
        is_active=True,
    )
    session.add(user)
    await flush_or_conflict(session, f"A user with the email {address} already exists.")
    await record(session, actor, "user.created", "user", user.id, {"email": address, "role": user.role})
    return user


async def list_users(session: AsyncSession) -> list[User]:
    return list((await session.scalars(select(User).order_by(User.name, User.email))).all())


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await get_or_404(session, User, user_id, "user")
    return user


async def get_user_by_email(session: AsyncSession, email: str) -> User:
    try:
        address = normalise_email(email, field="email")
    except Invalid as exc:
        raise NotFound(f"No user with the email {email!r}.") from exc
    user = await session.scalar(select(User).where(User.email == address))
    if user is None:
        raise NotFound(f"No user with the email {address}.")
    return user


async def disable_user(session: AsyncSession, user: User, actor: Actor | None = None) -> None:
    """Deactivate ``user``: their browser sessions are deleted, their API tokens stop working."""
    if actor is not None and actor.user_id == user.id:
        raise Invalid("You cannot disable your own account.", field="id")
    user.is_active = False
    await delete_user_sessions(session, user.id)
    await session.flush()
    await revocation.record(session, "disabled", user_id=user.id)
    emit(session, UserChanged(user.id))
    await record(session, actor, "user.disabled", "user", user.id, {"email": user.email})


async def update_user(session: AsyncSession, user: User, changes: dict[str, Any], actor: Any) -> User:
    """Apply a PATCH. ``actor`` is a Principal (role and user_id are checked here).

    Admins: name, role, locale, time_zone, is_active of anyone, and a new password for someone else.
    Everyone: their own name, locale, time_zone, and password (with ``current_password``).
    Nobody may change their own role or deactivate themselves (no locking the last admin out).
    """
    is_self = actor.user_id == user.id
    is_admin = actor.has_role(Role.admin)
    current_password = changes.pop("current_password", None)
    fields = {k for k, v in changes.items() if v is not None or k == "locale"}
    if not is_admin:
        if not is_self:
            raise Forbidden("Only an admin may change another user.")
        if fields & ADMIN_FIELDS:
            raise Forbidden("Only an admin may change role or is_active.")
    if is_self and "role" in fields and changes["role"] != user.role:
        raise Invalid("You cannot change your own role.", field="role")
    if is_self and changes.get("is_active") is False:
        raise Invalid("You cannot deactivate your own account.", field="is_active")

    audit: dict[str, Any] = {}
    if changes.get("password") is not None:
        _check_password(changes["password"])
        if is_self and not (current_password and verify_password(user.password_hash, current_password)):
            raise Invalid("The current password is wrong.", field="current_password")
        user.password_hash = hash_password(changes["password"])
        # Other browsers signed in with the old password are signed out.
        keep = getattr(actor, "session_id", None) if is_self else None
        await delete_user_sessions(session, user.id, keep=keep)
        audit["password"] = "changed"
    if changes.get("name") is not None:
        user.name = changes["name"]
        audit["name"] = user.name
    if "locale" in changes:
        user.locale = changes["locale"]
        audit["locale"] = user.locale
    if changes.get("time_zone") is not None:
        user.time_zone = _check_time_zone(changes["time_zone"])
        audit["time_zone"] = user.time_zone
    if changes.get("role") is not None and changes["role"] != user.role:
        audit["role"] = {"from": user.role, "to": _check_role(changes["role"]).value}
        user.role = audit["role"]["to"]
    if changes.get("is_active") is not None and changes["is_active"] != user.is_active:
        user.is_active = changes["is_active"]
        audit["is_active"] = user.is_active
        if not user.is_active:
            await delete_user_sessions(session, user.id)
        emit(session, UserChanged(user.id))
    await session.flush()
    if audit:
        # Sockets riding on a deleted session close; every cached token is re-read (role, name).
        reason = next(
            (r for key, r in _CHANGE_REASONS if key in audit and (key != "is_active" or not user.is_active)),
            "profile_changed",
        )
        await revocation.record(session, reason, user_id=user.id)
        await record(session, actor, "user.updated", "user", user.id, audit)
    return user


async def authenticate_password(session: AsyncSession, email: str, password: str) -> User | None:
    """The active user with this email and password, or ``None``. Takes the same time either way."""
    try:
        address = normalise_email(email, field="email")
    except Invalid:
        address = None
    user = await session.scalar(select(User).where(User.email == address)) if address else None
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.is_active:
        return None
    if user.password_hash and password_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


# -- browser sessions -------------------------------------------------------------------------


async def create_session(
    session: AsyncSession,
    user: User,
    *,
    hours: int = 12,
    ip: str | None = None,
    user_agent: str | None = None,
) -> tuple[UserSession, str]:
    """Start a browser session; returns the row and the cookie value (stored only as its SHA-256)."""
    now = clock.now()
    cookie = secrets.token_urlsafe(32)
    row = UserSession(
        id=hash_token(cookie),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(hours=hours),
        ip=(ip or None) and ip[:64],
        user_agent=(user_agent or None) and user_agent[:400],
    )
    session.add(row)
    user.last_login_at = now
    await session.flush()
    return row, cookie


async def find_session(session: AsyncSession, cookie: str) -> tuple[UserSession, User] | None:
    """The live session and its active user for a cookie value, or ``None``."""
    row = (
        await session.execute(
            select(UserSession, User)
            .join(User, User.id == UserSession.user_id)
            .where(UserSession.id == hash_token(cookie))
        )
    ).first()
    if row is None or row[0].expires_at <= clock.now() or not row[1].is_active:
        return None
    return row[0], row[1]


async def get_session_row(session: AsyncSession, session_id: str) -> UserSession | None:
    return await session.get(UserSession, session_id)


async def delete_session(session: AsyncSession, cookie: str, reason: str = "signed_out") -> bool:
    """End the browser session with this cookie value (its sockets close); ``True`` if there was one."""
    session_id = hash_token(cookie)
    user_id = await session.scalar(
        delete(UserSession).where(UserSession.id == session_id).returning(UserSession.user_id)
    )
    if user_id is None:
        return False
    await revocation.record(session, reason, user_id=user_id, session_id=session_id)
    return True


async def delete_user_sessions(session: AsyncSession, user_id: uuid.UUID, keep: str | None = None) -> None:
    stmt = delete(UserSession).where(UserSession.user_id == user_id)
    if keep:
        stmt = stmt.where(UserSession.id != keep)
    await session.execute(stmt)


# -- API tokens -------------------------------------------------------------------------------


async def create_token(
    session: AsyncSession,
    *,
    user: User,
    name: str,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
    actor: Actor | None = None,
) -> tuple[ApiToken, str]:
    """Issue an API token for ``user``; returns the row and the plaintext (shown once, stored hashed)."""
    chosen = list(TOKEN_SCOPES) if scopes is None else list(dict.fromkeys(scopes))
    if not chosen or not set(chosen) <= set(TOKEN_SCOPES):
        raise Invalid("scopes must be a non-empty subset of: read, write", field="scopes")
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise Invalid("the token needs a name of 1 to 200 characters", field="name")
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise Invalid("expires_at must include a time zone", field="expires_at")
        if expires_at <= clock.now():
            raise Invalid("expires_at must be in the future", field="expires_at")
    if not user.is_active:
        raise Invalid("cannot issue a token for a disabled user", field="user")
    plaintext = new_secret_token()
    token = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=hash_token(plaintext),
        prefix=plaintext[:10],
        scopes=chosen,
        created_at=clock.now(),
        expires_at=expires_at,
    )
    session.add(token)
    await session.flush()
    await record(
        session,
        actor,
        "token.created",
        "api_token",
        token.id,
        {"user_id": str(user.id), "name": name, "scopes": chosen},
    )
    return token, plaintext


async def list_tokens(session: AsyncSession, user_id: uuid.UUID | None = None) -> list[ApiToken]:
    """Tokens of ``user_id`` (all tokens when ``None``), newest first."""
    stmt = select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    if user_id is not None:
        stmt = stmt.where(ApiToken.user_id == user_id)
    return list((await session.scalars(stmt)).all())


async def revoke_token(session: AsyncSession, token_id: uuid.UUID, actor: Any) -> ApiToken:
    """Revoke a token (idempotent). A non-admin actor may only revoke their own (others' are 404)."""
    token = await session.get(ApiToken, token_id)
    visible = token is not None and (actor is None or actor.has_role(Role.admin) or token.user_id == actor.user_id)
    if token is None or not visible:
        raise NotFound(f"No API token with id {token_id}.")
    if token.revoked_at is None:
        token.revoked_at = clock.now()
        await session.flush()
        await revocation.record(session, "token_revoked", user_id=token.user_id, token_id=token.id)
        await record(session, actor, "token.revoked", "api_token", token.id, {"user_id": str(token.user_id)})
    return token


# -- teams ------------------------------------------------------------------------------------


async def _member_ids(session: AsyncSession, team_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
    out: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    if not team_ids:
        return out
    rows = await session.execute(
        select(TeamMember.team_id, TeamMember.user_id)
        .where(TeamMember.team_id.in_(team_ids))
        .order_by(TeamMember.created_at, TeamMember.user_id)
    )
    for team_id, user_id in rows:
        out[team_id].append(user_id)
    return out


async def list_teams(session: AsyncSession) -> list[tuple[Team, list[uuid.UUID]]]:
    teams = list((await session.scalars(select(Team).order_by(Team.name))).all())
    members = await _member_ids(session, [t.id for t in teams])
    return [(t, members.get(t.id, [])) for t in teams]


async def get_team(session: AsyncSession, team_id: uuid.UUID) -> Team:
    team = await get_or_404(session, Team, team_id, "team")
    return team


async def team_member_ids(session: AsyncSession, team_id: uuid.UUID) -> list[uuid.UUID]:
    return (await _member_ids(session, [team_id])).get(team_id, [])


async def _check_team_name(session: AsyncSession, name: str, exclude: uuid.UUID | None = None) -> None:
    stmt = select(Team.id).where(Team.name == name)
    if exclude is not None:
        stmt = stmt.where(Team.id != exclude)
    if await session.scalar(stmt) is not None:
        raise Conflict(f"A team named {name!r} already exists.")


async def create_team(
    session: AsyncSession, *, name: str, description: str | None = None, actor: Actor | None = None
) -> Team:
    await _check_team_name(session, name)
    team = Team(name=name, description=description)
    session.add(team)
    await flush_or_conflict(session, f"A team named {name!r} already exists.")
    await record(session, actor, "team.created", "team", team.id, {"name": name})
    return team


async def update_team(session: AsyncSession, team: Team, changes: dict[str, Any], actor: Actor | None) -> Team:
    audit: dict[str, Any] = {}
    if changes.get("name") is not None and changes["name"] != team.name:
        await _check_team_name(session, changes["name"], exclude=team.id)
        audit["name"] = {"from": team.name, "to": changes["name"]}
        team.name = changes["name"]
    if "description" in changes and changes["description"] != team.description:
        team.description = changes["description"]
        audit["description"] = team.description
    await flush_or_conflict(session, f"A team named {team.name!r} already exists.")
    if audit:
        await record(session, actor, "team.updated", "team", team.id, audit)
    return team


async def delete_team(session: AsyncSession, team: Team, actor: Actor | None) -> None:
    emit(session, TeamChanged(team.id, deleted=True))  # routing: queues stop naming it
    await session.execute(delete(TeamMember).where(TeamMember.team_id == team.id))
    await session.delete(team)
    await session.flush()
    await record(session, actor, "team.deleted", "team", team.id, {"name": team.name})


async def add_team_member(session: AsyncSession, team: Team, user: User, actor: Actor | None) -> bool:
    """Put ``user`` in ``team``; ``False`` if they already were (idempotent)."""
    exists = await session.get(TeamMember, (team.id, user.id))
    if exists is not None:
        return False
    session.add(TeamMember(team_id=team.id, user_id=user.id, created_at=clock.now()))
    await flush_or_conflict(session, "The user is already a member of this team.")
    emit(session, UserChanged(user.id))
    await record(session, actor, "team.member_added", "team", team.id, {"user_id": str(user.id)})
    return True


async def remove_team_member(session: AsyncSession, team: Team, user_id: uuid.UUID, actor: Actor | None) -> None:
    member = await session.get(TeamMember, (team.id, user_id))
    if member is None:
        raise NotFound(f"User {user_id} is not a member of team {team.name!r}.")
    await session.delete(member)
    await session.flush()
    emit(session, UserChanged(user_id))
    await record(session, actor, "team.member_removed", "team", team.id, {"user_id": str(user_id)})


# -- sign-in audit ----------------------------------------------------------------------------


class _SignedIn:
    """The audit actor for a user who just proved who they are."""

    actor_kind = "user"

    def __init__(self, user_id: uuid.UUID) -> None:
        self.user_id = user_id


async def record_sign_in(session: AsyncSession, user: User, ip: str | None) -> None:
    await record(session, _SignedIn(user.id), "auth.signed_in", "user", user.id, {}, ip=ip)


async def record_sign_out(session: AsyncSession, user: User, ip: str | None) -> None:
    await record(session, _SignedIn(user.id), "auth.signed_out", "user", user.id, {}, ip=ip)


async def record_failed_sign_in(session: AsyncSession, email: str, ip: str | None) -> None:
    """Audit a failed sign-in; names the account when the email matches one (never the password)."""
    try:
        address: str | None = normalise_email(email, field="email")
    except Invalid:
        address = None
    user_id = await session.scalar(select(User.id).where(User.email == address)) if address else None
    data = {"email": address} if address else {"email": None, "reason": "not an email address"}
    if address and user_id is None:
        data["reason"] = "no such user"
    await record(session, None, "auth.sign_in_failed", "user", user_id, data, ip=ip)


# -- directory --------------------------------------------------------------------------------


async def directory(
    session: AsyncSession,
) -> tuple[list[tuple[User, list[uuid.UUID]]], list[tuple[uuid.UUID, str]], list[tuple[uuid.UUID, str]]]:
    """Active users with their team ids, every team and every queue (id, name), each by name.

    What an agent desktop needs to show names for ids and to pick whom to transfer to.
    """
    active = select(User).where(User.is_active.is_(True)).order_by(User.name, User.email)
    users = list((await session.scalars(active)).all())
    teams_of: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for user_id, team_id in await session.execute(
        select(TeamMember.user_id, TeamMember.team_id)
        .join(Team, Team.id == TeamMember.team_id)
        .order_by(Team.name, TeamMember.team_id)
    ):
        teams_of[user_id].append(team_id)
    teams = [(r[0], r[1]) for r in await session.execute(select(Team.id, Team.name).order_by(Team.name, Team.id))]
    queues = [(r[0], r[1]) for r in await session.execute(select(Queue.id, Queue.name).order_by(Queue.name, Queue.id))]
    return [(u, teams_of.get(u.id, [])) for u in users], teams, queues
