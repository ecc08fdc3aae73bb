"""The agent side of a handoff, as an HTTP API (the console's pages sit on it).

Routes (agents only; ``X-CRM-User: agent:<n>`` and ``X-CRM-Sig: <hex>``, the
HMAC-SHA256 of the user under ``CRM_IDENTITY_SECRET``, as in DESIGN.md):

* ``GET  /api/escalations?status=open``     newest and angriest first
* ``GET  /api/escalations/{id}``            reason, context, live transcript
* ``POST /api/escalations/{id}/reply``      ``{"text": ...}``: to the customer's channel
* ``POST /api/escalations/{id}/resolve``    hands the conversation back to the bot
* ``POST /api/agents/heartbeat``            the agent is online

Replies and resumes go to the Rasa server's signed ``handoff`` channel.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Header, HTTPException, Path
from pydantic import BaseModel, Field

from crm_ml import handoff
from crm_ml.config import get_settings
from crm_ml.db import models as m
from crm_ml.db import session_scope
from crm_ml.errors import CRMUnavailable, NotFound
from crm_ml.identity import Identity, from_metadata

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api")


def require_agent(
    x_crm_user: Annotated[str | None, Header()] = None,
    x_crm_sig: Annotated[str | None, Header()] = None,
) -> Identity:
    """The signed agent calling the API; 401 without a valid signature, 403 for non-agents."""
    identity = from_metadata({"auth": {"user": x_crm_user, "sig": x_crm_sig}},
                             get_settings().identity_secret)
    if identity.number is None:
        raise HTTPException(401, "sign in as an agent")
    if identity.role != "agent":
        raise HTTPException(403, "agents only")
    return identity


Agent = Annotated[Identity, Depends(require_agent)]
# A SQL integer: 99999999999999999999 in the URL was an OverflowError (a 500) in SQLite.
EscalationId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class ReplyIn(BaseModel):
    """An agent's message to the customer."""

    text: str = Field(min_length=1, max_length=4000)


def _summary(esc: m.Escalation) -> dict[str, Any]:
    return {"id": esc.id, "sender_id": esc.sender_id, "channel": esc.channel,
            "reason": esc.reason, "status": esc.status, "sentiment": esc.sentiment,
            "customer_id": esc.customer_id,
            "customer_name": (esc.context or {}).get("name"),
            "created_at": esc.created_at.isoformat(timespec="seconds")}


def crm_call(fn: Any) -> Any:
    """Run a CRM call; unknown ids become 404 and an unreachable CRM 503."""
    try:
        return fn()
    except NotFound as exc:
        raise HTTPException(404, "no such escalation") from exc
    except CRMUnavailable as exc:
        logger.exception("CRM unavailable")
        raise HTTPException(503, "the CRM is unavailable, try again shortly") from exc


def rasa_handoff(path: str, payload: dict[str, Any]) -> dict[str, Any]:
    """POST a signed request to the Rasa server's handoff channel."""
    settings = get_settings()
    body = json.dumps(payload).encode()
    sig = hmac.new(settings.identity_secret.encode(), body, hashlib.sha256).hexdigest()
    try:
        r = httpx.post(f"{settings.rasa_url}/webhooks/handoff/{path}", content=body,
                       headers={"X-CRM-Signature": sig, "Content-Type": "application/json"},
                       timeout=15)
        r.raise_for_status()
        return r.json()
    except httpx.HTTPError as exc:
        logger.exception("handoff %s failed", path)
        raise HTTPException(502, "the assistant could not be reached; try again") from exc


@router.get("/escalations")
def list_escalations(agent: Agent, status: str = "open") -> list[dict[str, Any]]:
    if status not in {"open", "ticket", "resolved"}:
        raise HTTPException(422, "status is open, ticket or resolved")

    def run() -> list[dict[str, Any]]:
        with session_scope() as s:
            return [_summary(e) for e in handoff.list_escalations(session=s, status=status)]

    return crm_call(run)


@router.get("/escalations/{escalation_id}")
def read_escalation(escalation_id: EscalationId, agent: Agent) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        with session_scope() as s:
            esc = handoff.get_escalation(session=s, escalation_id=escalation_id)
            return {**_summary(esc), "transcript": esc.transcript,
                    "sentiment_history": esc.sentiment_history, "context": esc.context,
                    "conversation": handoff.conversation(session=s, sender_id=esc.sender_id)}

    return crm_call(run)


@router.post("/escalations/{escalation_id}/reply")
def reply(escalation_id: EscalationId, body: ReplyIn, agent: Agent) -> dict[str, Any]:
    def find() -> str:
        with session_scope() as s:
            esc = handoff.get_escalation(session=s, escalation_id=escalation_id)
            if esc.status == "resolved":
                raise HTTPException(409, "this conversation is already resolved")
            handoff.audit(session=s, actor=agent.user, action="reply",
                          entity="escalations", entity_id=str(esc.id))
            return esc.sender_id

    sender = crm_call(find)
    result = rasa_handoff("reply", {"sender_id": sender, "text": body.text,
                                    "agent": agent.user})
    return {"delivered": result.get("status")}


@router.post("/escalations/{escalation_id}/resolve")
def resolve(escalation_id: EscalationId, agent: Agent) -> dict[str, Any]:
    def run() -> str:
        with session_scope() as s:
            return handoff.resolve(session=s, escalation_id=escalation_id,
                                   agent=agent.user).sender_id

    sender = crm_call(run)
    result = rasa_handoff("resume", {"sender_id": sender, "agent": agent.user})
    return {"status": "resolved", "bot": result.get("status")}


@router.post("/agents/heartbeat")
def heartbeat(agent: Agent) -> dict[str, Any]:
    def run() -> int:
        with session_scope() as s:
            handoff.ensure_agent(session=s, agent_id=agent.number or 0)
            handoff.mark_agent_seen(session=s, agent_id=agent.number or 0)
            return handoff.agents_online(session=s)

    return {"online": crm_call(run)}
