"""HTTP API for routing: queues, skills, agent routing profiles and presence, routing rules, offers,
the decision log, capacity shifts and the live queue state.

Roles: admins change the configuration; supervisors read the state and set anyone's presence;
agents read queues and skills, set their own presence and answer their own offers.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from frontdesk.auth.deps import AdminDep, AgentDep, SupervisorDep
from frontdesk.deps import SessionDep
from frontdesk.errors import Forbidden
from frontdesk.models.enums import Role
from frontdesk.openapi import problem as _problem
from frontdesk.routing import config, offers, presence, profiles, state
from frontdesk.routing import decisions as decision_log
from frontdesk.routing import schemas as s

router = APIRouter(
    responses={
        400: _problem("The body could not be parsed"),
        401: _problem("Not signed in"),
        403: _problem("Role or token scope too low"),
        422: _problem("Invalid input; `errors` names the fields"),
    },
)

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _problem("No such record")}
CONFLICT: dict[int | str, dict[str, Any]] = {
    404: _problem("No such record"),
    409: _problem("Conflicts with the current state"),
}


# -- queues ----------------------------------------------------------------------------------


@router.get("/queues", response_model=list[s.QueueOut], summary="List queues", tags=["queues"])
async def list_queues(session: SessionDep, principal: AgentDep) -> list[s.QueueOut]:
    """Most urgent first."""
    return await config.queue_views(session, await config.list_queues(session))


@router.post(
    "/queues",
    response_model=s.QueueOut,
    status_code=201,
    summary="Create a queue",
    tags=["queues"],
    responses={409: _problem("A queue with that name exists")},
)
async def create_queue(body: s.QueueIn, session: SessionDep, principal: AdminDep) -> s.QueueOut:
    queue = await config.create_queue(session, body, principal)
    return (await config.queue_views(session, [queue]))[0]


@router.get("/queues/{queue_id}", response_model=s.QueueOut, summary="One queue", tags=["queues"], responses=NOT_FOUND)
async def get_queue(queue_id: uuid.UUID, session: SessionDep, principal: AgentDep) -> s.QueueOut:
    return (await config.queue_views(session, [await config.get_queue(session, queue_id)]))[0]


@router.patch(
    "/queues/{queue_id}", response_model=s.QueueOut, summary="Change a queue", tags=["queues"], responses=CONFLICT
)
async def update_queue(
    queue_id: uuid.UUID, body: s.QueueUpdate, session: SessionDep, principal: AdminDep
) -> s.QueueOut:
    queue = await config.update_queue(session, queue_id, body, principal)
    return (await config.queue_views(session, [queue]))[0]


@router.delete(
    "/queues/{queue_id}",
    status_code=204,
    summary="Delete a queue",
    tags=["queues"],
    responses=CONFLICT,
    response_class=Response,
)
async def delete_queue(queue_id: uuid.UUID, session: SessionDep, principal: AdminDep) -> Response:
    """Refused while conversations wait in it or routing rules point at it."""
    await config.delete_queue(session, queue_id, principal)
    return Response(status_code=204)


# -- skills ----------------------------------------------------------------------------------


@router.get("/skills", response_model=list[s.SkillOut], summary="List skills", tags=["skills"])
async def list_skills(session: SessionDep, principal: AgentDep) -> list[s.SkillOut]:
    return [s.SkillOut.model_validate(k) for k in await config.list_skills(session)]


@router.post(
    "/skills",
    response_model=s.SkillOut,
    status_code=201,
    summary="Create a skill",
    tags=["skills"],
    responses={409: _problem("A skill with that name exists")},
)
async def create_skill(body: s.SkillIn, session: SessionDep, principal: AdminDep) -> s.SkillOut:
    return s.SkillOut.model_validate(await config.create_skill(session, body, principal))


@router.get("/skills/{skill_id}", response_model=s.SkillOut, summary="One skill", tags=["skills"], responses=NOT_FOUND)
async def get_skill(skill_id: uuid.UUID, session: SessionDep, principal: AgentDep) -> s.SkillOut:
    return s.SkillOut.model_validate(await config.get_skill(session, skill_id))


@router.patch(
    "/skills/{skill_id}", response_model=s.SkillOut, summary="Rename a skill", tags=["skills"], responses=CONFLICT
)
async def update_skill(
    skill_id: uuid.UUID, body: s.SkillUpdate, session: SessionDep, principal: AdminDep
) -> s.SkillOut:
    return s.SkillOut.model_validate(await config.update_skill(session, skill_id, body, principal))


@router.delete(
    "/skills/{skill_id}",
    status_code=204,
    summary="Delete a skill",
    tags=["skills"],
    responses=CONFLICT,
    response_class=Response,
)
async def delete_skill(skill_id: uuid.UUID, session: SessionDep, principal: AdminDep) -> Response:
    """Refused while a queue requires it; agents lose it."""
    await config.delete_skill(session, skill_id, principal)
    return Response(status_code=204)


# -- agents: presence and routing profile ----------------------------------------------------


@router.get("/agents/me/presence", response_model=s.PresenceOut, summary="My presence", tags=["presence"])
async def my_presence(session: SessionDep, principal: AgentDep) -> s.PresenceOut:
    return await presence.get_presence(session, principal.user_id)


@router.put("/agents/me/presence", response_model=s.PresenceOut, summary="Set my presence", tags=["presence"])
async def set_my_presence(body: s.PresenceIn, session: SessionDep, principal: AgentDep) -> s.PresenceOut:
    """``offline`` returns your unanswered offers to their queues, first in line; ``after_call_work``
    ends by itself (``until``, default the profile's after-call work time)."""
    return await presence.set_presence(session, principal.user_id, body, principal)


@router.get(
    "/agents/{user_id}/presence",
    response_model=s.PresenceOut,
    summary="An agent's presence",
    tags=["presence"],
    responses=NOT_FOUND,
)
async def agent_presence(user_id: uuid.UUID, session: SessionDep, principal: SupervisorDep) -> s.PresenceOut:
    return await presence.get_presence(session, user_id)


@router.put(
    "/agents/{user_id}/presence",
    response_model=s.PresenceOut,
    summary="Set an agent's presence",
    tags=["presence"],
    responses=CONFLICT,
)
async def set_agent_presence(
    user_id: uuid.UUID, body: s.PresenceIn, session: SessionDep, principal: SupervisorDep
) -> s.PresenceOut:
    return await presence.set_presence(session, user_id, body, principal)


@router.get(
    "/agents/{user_id}/routing-profile",
    response_model=s.RoutingProfileOut,
    summary="An agent's skills and capacity",
    tags=["presence"],
    responses=NOT_FOUND,
)
async def get_routing_profile(user_id: uuid.UUID, session: SessionDep, principal: AgentDep) -> s.RoutingProfileOut:
    """Supervisors read anyone's; agents their own."""
    if user_id != principal.user_id and not principal.has_role(Role.supervisor):
        raise Forbidden("Agents can read only their own routing profile.")
    return await profiles.get_profile(session, user_id)


@router.put(
    "/agents/{user_id}/routing-profile",
    response_model=s.RoutingProfileOut,
    summary="Set an agent's skills and capacity",
    tags=["presence"],
    responses=NOT_FOUND,
)
async def put_routing_profile(
    user_id: uuid.UUID, body: s.RoutingProfileIn, session: SessionDep, principal: AdminDep
) -> s.RoutingProfileOut:
    return await profiles.put_profile(session, user_id, body, principal)


# -- routing rules ---------------------------------------------------------------------------


@router.get("/routing/rules", response_model=list[s.RuleOut], summary="List routing rules in order", tags=["routing"])
async def list_rules(session: SessionDep, principal: SupervisorDep) -> list[s.RuleOut]:
    """Tried by position (0 first); the first enabled match picks the queue."""
    return [config.rule_view(r) for r in await config.list_rules(session)]


@router.post(
    "/routing/rules", response_model=s.RuleOut, status_code=201, summary="Add a routing rule", tags=["routing"]
)
async def create_rule(body: s.RuleIn, session: SessionDep, principal: AdminDep) -> s.RuleOut:
    return config.rule_view(await config.create_rule(session, body, principal))


@router.get(
    "/routing/rules/{rule_id}",
    response_model=s.RuleOut,
    summary="One routing rule",
    tags=["routing"],
    responses=NOT_FOUND,
)
async def get_rule(rule_id: uuid.UUID, session: SessionDep, principal: SupervisorDep) -> s.RuleOut:
    return config.rule_view(await config.get_rule(session, rule_id))


@router.patch(
    "/routing/rules/{rule_id}",
    response_model=s.RuleOut,
    summary="Change or move a routing rule",
    tags=["routing"],
    responses=NOT_FOUND,
)
async def update_rule(rule_id: uuid.UUID, body: s.RuleUpdate, session: SessionDep, principal: AdminDep) -> s.RuleOut:
    return config.rule_view(await config.update_rule(session, rule_id, body, principal))


@router.delete(
    "/routing/rules/{rule_id}",
    status_code=204,
    summary="Delete a routing rule",
    tags=["routing"],
    responses=NOT_FOUND,
    response_class=Response,
)
async def delete_rule(rule_id: uuid.UUID, session: SessionDep, principal: AdminDep) -> Response:
    await config.delete_rule(session, rule_id, principal)
    return Response(status_code=204)


# -- offers ----------------------------------------------------------------------------------


@router.get("/routing/offers", response_model=list[s.OfferOut], summary="My pending offers", tags=["routing"])
async def my_offers(session: SessionDep, principal: AgentDep) -> list[s.OfferOut]:
    """What ``routing.offer`` events announced and is still open (a desk that reloads shows them again)."""
    return await offers.my_offers(session, principal.user_id)


@router.post(
    "/routing/offers/{offer_id}/accept",
    response_model=s.OfferOut,
    summary="Accept an offer",
    tags=["routing"],
    responses={**CONFLICT, 409: _problem("The offer timed out, was withdrawn or already answered")},
)
async def accept_offer(offer_id: uuid.UUID, session: SessionDep, principal: AgentDep) -> s.OfferOut:
    """The conversation is assigned to you at once (``conversation.updated``)."""
    return await offers.accept_offer(session, principal, offer_id)


@router.post(
    "/routing/offers/{offer_id}/decline",
    response_model=s.OfferOut,
    summary="Decline an offer",
    tags=["routing"],
    responses={**CONFLICT, 409: _problem("The offer timed out, was withdrawn or already answered")},
)
async def decline_offer(offer_id: uuid.UUID, session: SessionDep, principal: AgentDep) -> s.OfferOut:
    """The conversation goes on to the next agent; it is not offered to you again for a while."""
    return await offers.decline_offer(session, principal, offer_id)


# -- decisions, shifts, state ----------------------------------------------------------------


@router.get(
    "/routing/conversations/{conversation_id}/decisions",
    response_model=list[s.DecisionOut],
    summary="How a conversation was routed",
    tags=["routing"],
    responses=NOT_FOUND,
)
async def decisions(conversation_id: uuid.UUID, session: SessionDep, principal: AgentDep) -> list[s.DecisionOut]:
    """Every routing decision, oldest first: queued (which rule), offered to whom and why, declined,
    timed out, accepted, returned, bullseye rings, overflow… with how long it had waited."""
    return await decision_log.list_decisions(session, conversation_id)


@router.get(
    "/routing/capacity-shifts",
    response_model=list[s.ShiftOut],
    summary="Capacity shifts, newest first",
    tags=["routing"],
)
async def capacity_shifts(
    session: SessionDep,
    principal: SupervisorDep,
    queue_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[s.ShiftOut]:
    """Each time blended agents stopped (``to``) or resumed (``back``) lower-ranked channels for a queue, and why."""
    return await state.list_shifts(session, queue_id, limit)


@router.get("/routing/state", response_model=s.RoutingStateOut, summary="The live queue state", tags=["routing"])
async def routing_state(session: SessionDep, principal: SupervisorDep) -> s.RoutingStateOut:
    """Per queue: waiting and offered items, the oldest wait, the projected service level, able and
    available agents, the capacity shift in effect; per agent: presence, load and paused channels."""
    return await state.routing_state(session)
