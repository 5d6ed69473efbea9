"""Inboxes (``/api/v1/inboxes``): read by agents, managed by admins. Secrets in ``config`` are masked."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from frontdesk.auth.deps import AdminDep, AgentDep
from frontdesk.channels import service
from frontdesk.channels.schemas import InboxCreate, InboxOut, InboxUpdate
from frontdesk.deps import SessionDep, SettingsDep
from frontdesk.models import Inbox
from frontdesk.models.enums import Channel
from frontdesk.openapi import problem as _problem

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _problem("The body could not be parsed"),
    401: _problem("Not signed in, or the session or token is no longer valid"),
    403: _problem("Role or token scope too low, or the CSRF header is missing"),
    404: _problem("No such record"),
    409: _problem("An inbox with that name exists"),
    422: _problem("Invalid input; `errors` names the fields"),
}

router = APIRouter(tags=["inboxes"], responses=_ERRORS)


def _out(inbox: Inbox) -> InboxOut:
    out = InboxOut.model_validate(inbox)
    out.config = service.masked_config(inbox.config or {})
    return out


@router.get("/inboxes", response_model=list[InboxOut], summary="List inboxes")
async def list_inboxes(
    principal: AgentDep, session: SessionDep, channel: Channel | None = None, active: bool | None = None
) -> list[InboxOut]:
    inboxes = await service.list_inboxes(session, channel=channel.value if channel else None, active=active)
    return [_out(i) for i in inboxes]


@router.post("/inboxes", response_model=InboxOut, status_code=201, summary="Create an inbox")
async def create_inbox(body: InboxCreate, principal: AdminDep, session: SessionDep, settings: SettingsDep) -> InboxOut:
    inbox = await service.create_inbox(
        session,
        name=body.name,
        channel=body.channel.value,
        config=body.config,
        is_active=body.is_active,
        actor=principal,
        settings=settings,
    )
    return _out(inbox)


@router.get("/inboxes/{inbox_id}", response_model=InboxOut, summary="One inbox")
async def get_inbox(inbox_id: uuid.UUID, principal: AgentDep, session: SessionDep) -> InboxOut:
    return _out(await service.get_inbox(session, inbox_id))


@router.patch(
    "/inboxes/{inbox_id}",
    response_model=InboxOut,
    summary="Change an inbox (send masked secrets back unchanged to keep them)",
)
async def update_inbox(
    inbox_id: uuid.UUID, body: InboxUpdate, principal: AdminDep, session: SessionDep, settings: SettingsDep
) -> InboxOut:
    inbox = await service.get_inbox(session, inbox_id)
    changes = body.model_dump(exclude_unset=True)
    return _out(await service.update_inbox(session, inbox, changes, principal, settings))


@router.delete("/inboxes/{inbox_id}", response_model=InboxOut, summary="Deactivate an inbox (it is kept)")
async def deactivate_inbox(inbox_id: uuid.UUID, principal: AdminDep, session: SessionDep) -> InboxOut:
    inbox = await service.get_inbox(session, inbox_id)
    return _out(await service.deactivate_inbox(session, inbox, principal))
