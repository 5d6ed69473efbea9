"""Request and response shapes for sign-in, users, teams and API tokens."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from frontdesk.models.enums import Role


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = AfterValidator(_no_nul)
Email = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=320), Text]
Password = Annotated[str, StringConstraints(min_length=8, max_length=1024)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Text]
Description = Annotated[str, StringConstraints(max_length=2000), Text]
Locale = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=20, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}$")
]
TimeZoneName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$")
]
Scope = Literal["read", "write"]


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("must include a time zone offset, e.g. 2026-01-31T12:00:00Z")
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("is out of range") from exc


AwareDateTime = Annotated[datetime, AfterValidator(_aware)]


# -- sign-in ----------------------------------------------------------------------------------


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320), Text]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    name: str
    role: Role
    locale: str | None
    time_zone: str
    is_active: bool
    last_login_at: datetime | None
    created_at: datetime
    updated_at: datetime


class LoginOut(BaseModel):
    user: UserOut
    csrf_token: str = Field(description="Send it back in the X-CSRF-Token header on every unsafe request.")


class MeOut(BaseModel):
    user: UserOut
    role: Role
    via: Literal["session", "token"]
    scopes: list[Scope]
    csrf_token: str | None = Field(None, description="Present when signed in by browser session.")


# -- users ------------------------------------------------------------------------------------


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    password: Password
    role: Role = Role.agent
    name: Name | None = None
    locale: Locale | None = None
    time_zone: TimeZoneName | None = None


class UserUpdate(BaseModel):
    """Admins may change name, role, locale, time_zone and is_active of anyone (and set a new password
    for someone else); everyone may change their own name, locale, time_zone and password — the latter
    with ``current_password``."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    role: Role | None = None
    locale: Locale | None = None
    time_zone: TimeZoneName | None = None
    is_active: bool | None = None
    password: Password | None = None
    current_password: Annotated[str, StringConstraints(max_length=1024)] | None = None


# -- teams ------------------------------------------------------------------------------------


class TeamCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description | None = None


class TeamUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Description | None = None


class TeamOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str | None
    member_ids: list[uuid.UUID]
    created_at: datetime
    updated_at: datetime


# -- API tokens -------------------------------------------------------------------------------


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    scopes: list[Scope] = Field(default_factory=lambda: list[Scope](["read", "write"]), min_length=1, max_length=2)
    expires_at: AwareDateTime | None = None


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    prefix: str = Field(description="The first characters of the token, to recognise it in a list.")
    scopes: list[Scope]
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="The secret; shown only this once. Send it as `Authorization: Bearer …`.")
