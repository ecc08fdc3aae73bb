"""The inbox, the thread summary and claims as a JSON API (agents only, signed headers).

* ``GET    /api/inbox?status=open&channel=web&page=1``   escalations and tickets as threads
* ``GET    /api/threads/{kind}/{id}/summary``            the agent's summary of the conversation
* ``POST   /api/threads/{kind}/{id}/claim``              ``{"takeover": false}``; 409 when
  another agent holds it
* ``DELETE /api/threads/{kind}/{id}/claim``              give it back (the holder only)

``kind`` is ``escalation`` or ``ticket``. The CRM side is :mod:`crm_ml.inbox` and
:mod:`crm_ml.thread_summary`, as for the console's pages.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel

from console.api import crm_call
from console.dependencies import AgentIdentity
from crm_ml import inbox, thread_summary
from crm_ml.db import models as m
from crm_ml.db import session_scope
from crm_ml.errors import NotFound

__all__ = ["ClaimIn", "claim", "inbox_page", "release", "router", "summary"]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api")

Kind = Annotated[str, Path(pattern="^(escalation|ticket)$")]
ThreadId = Annotated[int, Path(ge=1, le=2**63 - 1)]
_FILTERS = ("open", "all", *inbox.STATUSES)


class ClaimIn(BaseModel):
    """Claim a thread; ``takeover`` takes it from the agent who holds it."""

    takeover: bool = False


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    claim = row.get("claim")
    return {**row, "claim": None if claim is None else {
        "agent_id": claim["agent_id"], "name": claim["name"],
        "at": claim["at"].isoformat(timespec="seconds")}}


@router.get("/inbox")
def inbox_page(agent: AgentIdentity, status: str = "open", channel: str | None = None,
               page: Annotated[int, Query(ge=1, le=10_000)] = 1,
               per_page: Annotated[int, Query(ge=1, le=200)] = 20) -> dict[str, Any]:
    if status not in _FILTERS:
        raise HTTPException(422, f"status is one of {', '.join(_FILTERS)}")

    def run() -> dict[str, Any]:
        with session_scope() as s:
            data = inbox.list_threads(session=s, status=status, channel=channel or None,
                                      page=page, per_page=per_page)
            return {"rows": [_plain(r) for r in data.rows], "total": data.total,
                    "page": data.page, "pages": data.pages, "counts": data.counts,
                    "channels": data.channels}

    return crm_call(run)


def _sender(s: Any, kind: str, thread_id: int) -> tuple[str | None, list[Any]]:
    row = s.get(m.Escalation if kind == "escalation" else m.Ticket, thread_id)
    if row is None:
        raise NotFound(f"{kind} {thread_id}")
    return row.sender_id, (row.transcript or []) if kind == "escalation" else []


@router.get("/threads/{kind}/{thread_id}/summary")
def summary(kind: Kind, thread_id: ThreadId, agent: AgentIdentity) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        with session_scope() as s:
            sender, transcript = _sender(s, kind, thread_id)
            if not sender:
                return {"summary": None}
            result = thread_summary.summarise_conversation(session=s, sender_id=sender,
                                                           transcript=transcript)
            return {"summary": {**dataclasses.asdict(result), "headline": result.headline}}

    return crm_call(run)


@router.post("/threads/{kind}/{thread_id}/claim")
def claim(kind: Kind, thread_id: ThreadId, agent: AgentIdentity,
          body: ClaimIn | None = None) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        with session_scope() as s:
            c = inbox.claim(session=s, kind=kind, thread_id=thread_id,
                            agent_id=agent.number or 0, takeover=bool(body and body.takeover))
            return {"kind": kind, "id": thread_id, "agent_id": c.agent_id,
                    "claimed_at": c.claimed_at.isoformat(timespec="seconds")}

    try:
        return crm_call(run)
    except inbox.AlreadyClaimed as exc:
        raise HTTPException(409, f"claimed by {exc.by}") from exc


@router.delete("/threads/{kind}/{thread_id}/claim")
def release(kind: Kind, thread_id: ThreadId, agent: AgentIdentity) -> dict[str, Any]:
    def run() -> bool:
        with session_scope() as s:
            return inbox.release(session=s, kind=kind, thread_id=thread_id,
                                 agent_id=agent.number or 0)

    return {"released": crm_call(run)}
