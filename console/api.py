"""The agent side of a handoff, as an HTTP API (the console's pages sit on it).

Routes (agents only; ``X-CRM-User: agent:<n>`` and ``X-CRM-Sig: <hex>``, the
HMAC-SHA256 of the user under ``CRM_IDENTITY_SECRET``, as in DESIGN.md):

* ``GET  /api/escalations?status=open``     newest and angriest first
* ``GET  /api/escalations/{id}``            reason, context, live transcript
* ``POST /api/escalations/{id}/reply``      ``{"text": ...}``: to the customer's channel
* ``POST /api/escalations/{id}/resolve``    closes the thread (its tickets too) and hands
  the conversation back to the bot, which asks the customer for a rating
* ``POST /api/agents/heartbeat``            the agent is online

The CRM side of a reply or a resolution is :func:`crm_ml.handoff.reply_to_escalation`
and :func:`crm_ml.handoff.resolve_escalation` (the pages call them too); replies
and resumes then go to the Rasa server's signed ``handoff`` channel
(:func:`rasa_handoff`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, Field

from console.dependencies import AgentIdentity
from crm_ml import agents, handoff, mail, tickets
from crm_ml.config import get_settings
from crm_ml.db import models as m
from crm_ml.db import session_scope
from crm_ml.errors import CRMUnavailable, NotFound

__all__ = [
    "EscalationId",
    "agent_name",
    "email_reply",
    "ReplyIn",
    "crm_call",
    "heartbeat",
    "list_escalations",
    "rasa_handoff",
    "read_escalation",
    "record_reply",
    "record_resolve",
    "reply",
    "resolve",
    "router",
]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api")

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
def list_escalations(agent: AgentIdentity, status: str = "open") -> list[dict[str, Any]]:
    if status not in {"open", "ticket", "resolved"}:
        raise HTTPException(422, "status is open, ticket or resolved")

    def run() -> list[dict[str, Any]]:
        with session_scope() as s:
            return [_summary(e) for e in handoff.list_escalations(session=s, status=status)]

    return crm_call(run)


@router.get("/escalations/{escalation_id}")
def read_escalation(escalation_id: EscalationId, agent: AgentIdentity) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        with session_scope() as s:
            esc = handoff.get_escalation(session=s, escalation_id=escalation_id)
            return {**_summary(esc), "transcript": esc.transcript,
                    "sentiment_history": esc.sentiment_history, "context": esc.context,
                    "conversation": handoff.conversation(session=s, sender_id=esc.sender_id)}

    return crm_call(run)


def agent_name(agent: Any) -> str:
    """The name an agent signs replies with (their console name, else "Support team")."""
    def run() -> str:
        with session_scope() as s:
            row = agents.get_agent(session=s, agent_id=agent.number) if agent.number else None
            return row.name if row is not None else "Support team"

    return crm_call(run)


def record_reply(escalation_id: int, agent: str) -> str:
    """Record an agent's reply in the CRM; the conversation's sender id to send it to.

    Raises:
        handoff.AlreadyResolved: the thread is closed.
    """
    def run() -> str:
        with session_scope() as s:
            return handoff.reply_to_escalation(session=s, escalation_id=escalation_id,
                                               agent=agent)

    return crm_call(run)


def record_resolve(escalation_id: int, agent: str, *, again: bool = False) -> str:
    """Resolve the thread in the CRM; the conversation's sender id, for the bot to resume."""
    def run() -> str:
        with session_scope() as s:
            return handoff.resolve_escalation(session=s, escalation_id=escalation_id,
                                              agent=agent, again=again)

    return crm_call(run)


@router.post("/escalations/{escalation_id}/reply")
def reply(escalation_id: EscalationId, body: ReplyIn, agent: AgentIdentity) -> dict[str, Any]:
    try:
        sender = record_reply(escalation_id, agent.user)
    except handoff.AlreadyResolved as exc:
        raise HTTPException(409, "this conversation is already resolved") from exc
    name = agent_name(agent)
    result = rasa_handoff("reply", {"sender_id": sender, "text": body.text,
                                    "agent": agent.user, "agent_name": name})
    out: dict[str, Any] = {"delivered": result.get("status"), "agent_name": name}
    emailed = email_reply(escalation_id, sender, name, body.text)
    if emailed is not None:
        out["emailed"] = emailed
    return out


def email_reply(escalation_id: int, sender: str, name: str, text: str) -> bool | None:
    """E-mail the reply to an anonymous visitor who left an address (None: no address)."""
    def run() -> tuple[str | None, int | None]:
        with session_scope() as s:
            ticket = tickets.thread_ticket(session=s, sender_id=sender)
            return mail.contact_of(session=s, sender_id=sender), ticket.id if ticket else None

    to, ticket = crm_call(run)
    if to is None:
        return None
    try:
        mail.send_reply(to=to, agent_name=name, text=text, ticket=ticket)
    except mail.MailNotSent:
        logger.warning("the reply to escalation %d was not e-mailed", escalation_id)
        return False
    return True


@router.post("/escalations/{escalation_id}/resolve")
def resolve(escalation_id: EscalationId, agent: AgentIdentity) -> dict[str, Any]:
    def run() -> handoff.ResolvedThread:
        with session_scope() as s:
            done = handoff.resolve_thread(session=s, escalation_id=escalation_id,
                                          agent=agent.user)
            return handoff.ResolvedThread(None, done.sender_id, done.channel, done.was_live,
                                          done.closed_tickets)

    done = crm_call(run)
    result = rasa_handoff("resume", {"sender_id": done.sender_id, "agent": agent.user})
    return {"status": "resolved", "bot": result.get("status"),
            "tickets_closed": done.closed_tickets}


@router.post("/agents/heartbeat")
def heartbeat(agent: AgentIdentity) -> dict[str, Any]:
    def run() -> int:
        with session_scope() as s:
            agents.heartbeat(session=s, agent_id=agent.number or 0)
            return handoff.agents_online(session=s)

    return {"online": crm_call(run)}
