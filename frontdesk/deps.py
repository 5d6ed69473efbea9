"""FastAPI dependencies shared by every router: the unit of work, settings, the realtime hub."""

from __future__ import annotations

import email.message
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.db import Database, discard_pending, run_after_commit, run_before_commit
from frontdesk.errors import BadRequest, ServiceUnavailable
from frontdesk.settings import Settings
from frontdesk.storage import AttachmentStore, StorageError, app_store

if TYPE_CHECKING:
    from frontdesk.realtime import Hub

M = TypeVar("M", bound=BaseModel)


async def get_db(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_hub(request: Request) -> Hub:
    return request.app.state.hub  # type: ignore[no-any-return]


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed when the endpoint returns, rolled back on error.

    After-commit effects (realtime pushes, outbox wake-ups) run once the commit succeeded.
    The commit happens before the response is sent, so a 2xx means the data is durable.
    """
    db: Database = request.app.state.db
    async with db.sessionmaker() as session:
        try:
            yield session
            await run_before_commit(session)
            await session.commit()
        except BaseException:
            await session.rollback()
            discard_pending(session)
            raise
        await run_after_commit(session)


def store_of(request: Request) -> AttachmentStore:
    """The app's attachment store; 503 when its backend is misconfigured."""
    try:
        return app_store(request.app.state)
    except StorageError as exc:
        raise ServiceUnavailable(f"The attachment store is not configured: {exc}") from exc


async def get_store(request: Request) -> AttachmentStore:
    return store_of(request)


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]  # commit before the response
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
StoreDep = Annotated[AttachmentStore, Depends(get_store)]


def _is_json(content_type: str) -> bool:
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


async def json_body(request: Request, model: type[M]) -> M:
    """The request's JSON body as ``model``, with FastAPI's rules and errors (a 422 problem naming
    the field), for a hot-path route that takes only the ``Request``: FastAPI's body parameter and
    dependency resolution cost more than the route's own work. Such a route is left out of the
    OpenAPI document and described by a declaration-only route with the body parameter, registered
    after it (``conversations/ingest_api.py``).

    As FastAPI does: the body is parsed as JSON only when it is declared JSON (``application/json``
    or ``…+json``); anything else fails validation as "not an object"."""
    raw = await request.body()
    data: object = raw
    content_type = request.headers.get("content-type")
    if raw and content_type and _is_json(content_type):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise RequestValidationError(
                [
                    {
                        "type": "json_invalid",
                        "loc": ("body", exc.pos),
                        "msg": "JSON decode error",
                        "input": {},
                        "ctx": {"error": exc.msg},
                    }
                ],
                body=exc.doc,
            ) from exc
        except UnicodeDecodeError as exc:
            raise BadRequest(f"The body is not UTF-8 text: {exc.reason} at byte {exc.start}.") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors, body=data) from exc
