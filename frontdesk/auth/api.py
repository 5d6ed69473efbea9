"""Sign-in, users, teams and API tokens (``/api/v1``)."""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from frontdesk.auth import service
from frontdesk.auth.deps import CSRF_HEADER, SESSION_COOKIE, AdminDep, AgentDep, SupervisorDep
from frontdesk.auth.schemas import (
    LoginIn,
    LoginOut,
    MeOut,
    Name,
    TeamCreate,
    TeamOut,
    TeamUpdate,
    TimeZoneName,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserCreate,
    UserOut,
    UserUpdate,
)
from frontdesk.auth.security import constant_time_equal
from frontdesk.deps import SessionDep, SettingsDep
from frontdesk.errors import Forbidden, Invalid, TooManyRequests, problem_response
from frontdesk.models import Team
from frontdesk.models.enums import Role
from frontdesk.openapi import problem as _problem
from frontdesk.ratelimit import Limiter, make_limiter
from frontdesk.settings import Settings

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _problem("The body could not be parsed"),
    401: _problem("Not signed in, or the session or token is no longer valid"),
    403: _problem("Role or token scope too low, or the CSRF header is missing"),
    404: _problem("No such record"),
    409: _problem("The name or email is already taken"),
    422: _problem("Invalid input; `errors` names the fields"),
}

router = APIRouter(responses=_ERRORS)


def client_ip(request: Request) -> str:
    """The caller's address (behind a proxy, run uvicorn with --proxy-headers so this is the client's)."""
    return request.client.host if request.client else "unknown"


LOGIN_FAILURES = "login-failures"  # the counters' name, after the deployment's Redis prefix


def login_limiter(request: Request) -> Limiter:
    """The app's failed-sign-in counter, made on first use (Redis when configured)."""
    state = request.app.state
    limiter: Limiter | None = getattr(state, "login_limiter", None)
    if limiter is None:
        settings = state.settings
        limiter = make_limiter(settings.redis_url, settings.redis_prefix, name=LOGIN_FAILURES, what="Sign-in")
        state.login_limiter = limiter
    return limiter


async def close_login_limiter(app: object) -> None:
    """Release the limiter's Redis connection (call from the app's shutdown)."""
    limiter = getattr(getattr(app, "state", None), "login_limiter", None)
    if limiter is not None:
        await limiter.close()


def cookie_secure(request: Request, settings: Settings) -> bool:
    """Whether the session cookie gets ``Secure``: yes, unless this request came over plain http to a
    host other than loopback (where a browser would refuse to keep a Secure cookie and nobody could
    sign in). ``FRONTDESK_COOKIE_SECURE`` wins; an https ``FRONTDESK_PUBLIC_URL`` means TLS ends at a
    proxy in front of us, so the cookie is Secure even when the request looks like plain http.
    Browsers treat http://localhost and http://127.0.0.1 as secure contexts, so `make demo` works."""
    if settings.cookie_secure is not None:
        return settings.cookie_secure
    if settings.public_url.lower().startswith("https://") or request.url.scheme == "https":
        return True
    return _loopback(request.url.hostname or "")


def _loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _set_cookie(response: Response, value: str, secure: bool) -> None:
    response.set_cookie(SESSION_COOKIE, value, httponly=True, samesite="lax", secure=secure, path="/")


# -- sign-in ----------------------------------------------------------------------------------


@router.post(
    "/auth/login",
    response_model=LoginOut,
    status_code=200,
    summary="Sign in with email and password (sets the session cookie)",
    tags=["auth"],
    responses={
        429: _problem("Too many failed sign-ins; see Retry-After"),
        503: _problem("The rate-limit store (Redis) is unreachable"),
    },
)
async def login(
    body: LoginIn, request: Request, response: Response, session: SessionDep, settings: SettingsDep
) -> LoginOut | Response:
    ip = client_ip(request)
    # Per account (low) and per address (much higher): one user's typos never lock out a colleague
    # behind the same NAT, and one address cannot spray many accounts either.
    limits = {
        f"ip:{ip}": settings.login_attempts_per_ip_per_minute,
        f"email:{body.email.strip().lower()}": settings.login_attempts_per_minute,
    }
    keys = tuple(limits)
    limiter = login_limiter(request)
    wait = await limiter.retry_after(limits)
    if wait is not None:
        raise TooManyRequests(
            f"Too many failed sign-ins; try again in {wait} seconds.", headers={"Retry-After": str(wait)}
        )
    user = await service.authenticate_password(session, body.email, body.password)
    if user is None:
        await limiter.fail(*keys)
        await service.record_failed_sign_in(session, body.email, ip)
        # Returned, not raised: the unit of work commits so the failed attempt stays in the audit log.
        return problem_response(
            401, "Unauthorized", "Wrong email or password.", slug="unauthorized", instance=request.url.path
        )
    await limiter.reset(keys[1])
    if old := request.cookies.get(SESSION_COOKIE):  # no session fixation: a sign-in always starts afresh
        await service.delete_session(session, old, reason="signed_in_again")
    user_session, cookie = await service.create_session(
        session, user, hours=settings.session_hours, ip=ip, user_agent=request.headers.get("user-agent")
    )
    await service.record_sign_in(session, user, ip)
    _set_cookie(response, cookie, cookie_secure(request, settings))
    return LoginOut(user=UserOut.model_validate(user), csrf_token=user_session.csrf_token)


@router.post(
    "/auth/logout",
    status_code=204,
    response_class=Response,
    summary="Sign out of this browser session (clears the cookie)",
    tags=["auth"],
)
async def logout(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and (found := await service.find_session(session, cookie)) is not None:
        user_session, user = found
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not constant_time_equal(sent, user_session.csrf_token):
            raise Forbidden(f"Missing or wrong {CSRF_HEADER} header (CSRF protection).")
        await service.delete_session(session, cookie)
        await service.record_sign_out(session, user, client_ip(request))
    elif cookie:
        await service.delete_session(session, cookie)  # expired or disabled: tidy up
    out = Response(status_code=204)
    secure = cookie_secure(request, settings)
    out.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=secure)
    return out


class MeUpdate(BaseModel):
    """Your own display name, interface language and time zone (only the fields sent change)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    locale: Literal["en", "ru"] | None = None
    time_zone: TimeZoneName | None = None


class DirectoryUser(BaseModel):
    id: uuid.UUID
    name: str
    email: str
    role: Role
    team_ids: list[uuid.UUID]


class DirectoryEntry(BaseModel):
    id: uuid.UUID
    name: str


class DirectoryOut(BaseModel):
    users: list[DirectoryUser]
    teams: list[DirectoryEntry]
    queues: list[DirectoryEntry]


@router.get("/auth/me", response_model=MeOut, summary="Who am I (and my CSRF token)", tags=["auth"])
async def me(principal: AgentDep, session: SessionDep) -> MeOut:
    """``user.locale`` (null: the browser's language) and ``user.time_zone`` are the viewer's settings."""
    return await _me(principal, session)


@router.patch(
    "/auth/me",
    response_model=MeOut,
    summary="Change your own name, language (en, ru or null) or time zone (IANA name)",
    tags=["auth"],
)
async def update_me(body: MeUpdate, principal: AgentDep, session: SessionDep) -> MeOut:
    changes = body.model_dump(exclude_unset=True)
    for field in ("name", "time_zone"):
        if field in changes and changes[field] is None:
            raise Invalid(f"{field} cannot be null", field=field)
    user = await service.get_user(session, principal.user_id)
    await service.update_user(session, user, changes, principal)
    return await _me(principal, session)


async def _me(principal: AgentDep, session: SessionDep) -> MeOut:
    user = await service.get_user(session, principal.user_id)
    csrf = None
    if principal.session_id is not None:
        row = await service.get_session_row(session, principal.session_id)
        csrf = row.csrf_token if row else None
    return MeOut(
        user=UserOut.model_validate(user),
        role=principal.role,
        via="token" if principal.via == "token" else "session",
        scopes=sorted(principal.scopes),  # type: ignore[arg-type]
        csrf_token=csrf,
    )


@router.get(
    "/directory",
    response_model=DirectoryOut,
    summary="Active users (with their teams), teams and queues: names for ids",
    tags=["users"],
)
async def get_directory(principal: AgentDep, session: SessionDep) -> DirectoryOut:
    users, teams, queues = await service.directory(session)
    return DirectoryOut(
        users=[
            DirectoryUser(id=u.id, name=u.name, email=u.email, role=Role(u.role), team_ids=team_ids)
            for u, team_ids in users
        ],
        teams=[DirectoryEntry(id=i, name=n) for i, n in teams],
        queues=[DirectoryEntry(id=i, name=n) for i, n in queues],
    )


# -- users ------------------------------------------------------------------------------------


@router.get("/users", response_model=list[UserOut], summary="List users", tags=["users"])
async def list_users(principal: SupervisorDep, session: SessionDep) -> list[UserOut]:
    return [UserOut.model_validate(u) for u in await service.list_users(session)]


@router.post(
    "/users",
    response_model=UserOut,
    status_code=201,
    summary="Create a user",
    tags=["users"],
)
async def create_user(body: UserCreate, principal: AdminDep, session: SessionDep) -> UserOut:
    user = await service.create_user(
        session,
        email=body.email,
        password=body.password,
        role=body.role.value,
        name=body.name,
        locale=body.locale,
        time_zone=body.time_zone,
        actor=principal,
    )
    return UserOut.model_validate(user)


@router.get("/users/{user_id}", response_model=UserOut, summary="One user", tags=["users"])
async def get_user(user_id: uuid.UUID, principal: AgentDep, session: SessionDep) -> UserOut:
    return UserOut.model_validate(await service.get_user(session, user_id))


@router.patch(
    "/users/{user_id}",
    response_model=UserOut,
    summary="Change a user (admin), or your own name, locale, time zone or password",
    tags=["users"],
)
async def update_user(user_id: uuid.UUID, body: UserUpdate, principal: AgentDep, session: SessionDep) -> UserOut:
    user = await service.get_user(session, user_id)
    changes = body.model_dump(exclude_unset=True)
    changes = {k: (v.value if isinstance(v, Role) else v) for k, v in changes.items()}
    return UserOut.model_validate(await service.update_user(session, user, changes, principal))


@router.post(
    "/users/{user_id}/disable",
    response_model=UserOut,
    summary="Disable a user (signs them out; their API tokens stop working)",
    tags=["users"],
)
async def disable_user(user_id: uuid.UUID, principal: AdminDep, session: SessionDep) -> UserOut:
    user = await service.get_user(session, user_id)
    await service.disable_user(session, user, actor=principal)
    return UserOut.model_validate(user)


# -- teams ------------------------------------------------------------------------------------


async def _team_out(session: SessionDep, team: Team) -> TeamOut:
    return TeamOut(
        id=team.id,
        name=team.name,
        description=team.description,
        member_ids=await service.team_member_ids(session, team.id),
        created_at=team.created_at,
        updated_at=team.updated_at,
    )


@router.get("/teams", response_model=list[TeamOut], summary="List teams with their members", tags=["teams"])
async def list_teams(principal: AgentDep, session: SessionDep) -> list[TeamOut]:
    return [
        TeamOut(
            id=t.id,
            name=t.name,
            description=t.description,
            member_ids=members,
            created_at=t.created_at,
            updated_at=t.updated_at,
        )
        for t, members in await service.list_teams(session)
    ]


@router.post(
    "/teams",
    response_model=TeamOut,
    status_code=201,
    summary="Create a team",
    tags=["teams"],
)
async def create_team(body: TeamCreate, principal: SupervisorDep, session: SessionDep) -> TeamOut:
    team = await service.create_team(session, name=body.name, description=body.description, actor=principal)
    return await _team_out(session, team)


@router.get("/teams/{team_id}", response_model=TeamOut, summary="One team with its member ids", tags=["teams"])
async def get_team(team_id: uuid.UUID, principal: AgentDep, session: SessionDep) -> TeamOut:
    return await _team_out(session, await service.get_team(session, team_id))


@router.patch(
    "/teams/{team_id}",
    response_model=TeamOut,
    summary="Rename or describe a team",
    tags=["teams"],
)
async def update_team(team_id: uuid.UUID, body: TeamUpdate, principal: SupervisorDep, session: SessionDep) -> TeamOut:
    team = await service.get_team(session, team_id)
    team = await service.update_team(session, team, body.model_dump(exclude_unset=True), principal)
    return await _team_out(session, team)


@router.delete("/teams/{team_id}", status_code=204, response_class=Response, summary="Delete a team", tags=["teams"])
async def delete_team(team_id: uuid.UUID, principal: SupervisorDep, session: SessionDep) -> Response:
    await service.delete_team(session, await service.get_team(session, team_id), principal)
    return Response(status_code=204)


@router.put(
    "/teams/{team_id}/members/{user_id}",
    response_model=TeamOut,
    summary="Add a user to a team (idempotent)",
    tags=["teams"],
)
async def add_team_member(
    team_id: uuid.UUID, user_id: uuid.UUID, principal: SupervisorDep, session: SessionDep
) -> TeamOut:
    team = await service.get_team(session, team_id)
    user = await service.get_user(session, user_id)
    await service.add_team_member(session, team, user, principal)
    return await _team_out(session, team)


@router.delete(
    "/teams/{team_id}/members/{user_id}",
    response_model=TeamOut,
    summary="Remove a user from a team",
    tags=["teams"],
)
async def remove_team_member(
    team_id: uuid.UUID, user_id: uuid.UUID, principal: SupervisorDep, session: SessionDep
) -> TeamOut:
    team = await service.get_team(session, team_id)
    await service.remove_team_member(session, team, user_id, principal)
    return await _team_out(session, team)


# -- API tokens -------------------------------------------------------------------------------


@router.get(
    "/tokens",
    response_model=list[TokenOut],
    summary="List API tokens (your own; admins see everyone's)",
    tags=["tokens"],
)
async def list_tokens(principal: AgentDep, session: SessionDep) -> list[TokenOut]:
    owner = None if principal.has_role(Role.admin) else principal.user_id
    return [TokenOut.model_validate(t) for t in await service.list_tokens(session, owner)]


@router.post(
    "/tokens",
    response_model=TokenCreated,
    status_code=201,
    summary="Create an API token for yourself (the secret is shown only in this answer)",
    tags=["tokens"],
)
async def create_token(body: TokenCreate, principal: AgentDep, session: SessionDep) -> TokenCreated:
    user = await service.get_user(session, principal.user_id)
    token, plaintext = await service.create_token(
        session, user=user, name=body.name, scopes=list(body.scopes), expires_at=body.expires_at, actor=principal
    )
    return TokenCreated.model_validate({**TokenOut.model_validate(token).model_dump(), "token": plaintext})


@router.delete(
    "/tokens/{token_id}",
    response_model=TokenOut,
    summary="Revoke an API token (your own; admins any)",
    tags=["tokens"],
)
async def revoke_token(token_id: uuid.UUID, principal: AgentDep, session: SessionDep) -> TokenOut:
    return TokenOut.model_validate(await service.revoke_token(session, token_id, principal))
