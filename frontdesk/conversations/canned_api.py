"""HTTP API for canned responses and rendering one for a conversation (agent+)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from frontdesk.auth.deps import AgentDep
from frontdesk.conversations import canned
from frontdesk.conversations.schemas import CannedCreate, CannedOut, CannedRendered, CannedUpdate
from frontdesk.deps import SessionDep
from frontdesk.openapi import problem as _problem

router = APIRouter(
    tags=["canned responses"],
    responses={
        400: _problem("The body could not be parsed"),
        401: _problem("Not signed in"),
        403: _problem("Role or token scope too low, or not yours to change"),
        404: _problem("No such record"),
        409: _problem("The shortcut is already used in that scope"),
        422: _problem("Invalid input; `errors` names the fields"),
    },
)


@router.get("/canned-responses", response_model=list[CannedOut], summary="List canned responses")
async def list_canned(
    session: SessionDep,
    principal: AgentDep,
    q: Annotated[str | None, Query(max_length=200, description="Shortcut or title prefix.")] = None,
) -> list[CannedOut]:
    """The global ones and your personal ones, by shortcut (at most 500)."""
    return [CannedOut.model_validate(c) for c in await canned.list_canned(session, principal, q)]


@router.post("/canned-responses", response_model=CannedOut, status_code=201, summary="Create a canned response")
async def create_canned(body: CannedCreate, session: SessionDep, principal: AgentDep) -> CannedOut:
    """Agents create personal ones; admins may also create global ones."""
    return CannedOut.model_validate(await canned.create_canned(session, principal, body))


@router.patch("/canned-responses/{canned_id}", response_model=CannedOut, summary="Change a canned response")
async def update_canned(
    canned_id: uuid.UUID, body: CannedUpdate, session: SessionDep, principal: AgentDep
) -> CannedOut:
    """Personal: the owner or an admin. Global: admins."""
    return CannedOut.model_validate(await canned.update_canned(session, principal, canned_id, body))


@router.delete(
    "/canned-responses/{canned_id}", status_code=204, response_class=Response, summary="Delete a canned response"
)
async def delete_canned(canned_id: uuid.UUID, session: SessionDep, principal: AgentDep) -> Response:
    await canned.delete_canned(session, principal, canned_id)
    return Response(status_code=204)


@router.post(
    "/conversations/{conversation_id}/canned-responses/{canned_id}/render",
    response_model=CannedRendered,
    summary="Fill a canned response in for a conversation",
)
async def render_canned(
    conversation_id: uuid.UUID, canned_id: uuid.UUID, session: SessionDep, principal: AgentDep
) -> CannedRendered:
    """Variables: ``{{customer.name}}``, ``{{customer.first_name}}``, ``{{customer.email}}``,
    ``{{customer.phone}}``, ``{{customer.attributes.<key>}}``, ``{{agent.name}}``,
    ``{{agent.first_name}}``, ``{{conversation.id}}``, ``{{conversation.subject}}``. One without a
    value (or unknown) becomes empty and is listed in ``missing``. Nothing is sent."""
    return await canned.render(session, principal, conversation_id, canned_id)
