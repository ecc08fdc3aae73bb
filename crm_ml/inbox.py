"""The agents' inbox: escalations and tickets as one list of threads, and who claimed which.

A **thread** is an escalation (a live handoff, or a ticket opened because nobody
was online: the escalation row holds its conversation) or a ticket of another
kind (refund, invoice, callback...). A handoff ticket is shown on its
escalation's row, not twice. Every thread has a status:

* ``waiting``: no agent has written in the conversation since it was handed over;
* ``live``: an agent has answered and the customer wrote since (their turn is the agent's);
* ``answered``: the agent's message is the last one;
* ``resolved``: the escalation is resolved or the ticket closed.

``waiting_minutes`` counts from the customer's oldest unanswered message (from
the thread's opening when there is none) for waiting and live threads.

A **claim** records which agent works a thread and since when, so that two
agents do not answer the same customer; another agent sees it and may take the
thread over explicitly.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from crm_ml import agents
from crm_ml.audit import audit, utcnow
from crm_ml.db import models as m
from crm_ml.db.models_console import ThreadClaim
from crm_ml.errors import CRMError, NotFound

__all__ = [
    "KINDS",
    "STATUSES",
    "AlreadyClaimed",
    "InboxPage",
    "claim",
    "claim_of",
    "list_threads",
    "release",
]

logger = logging.getLogger(__name__)

STATUSES = ("waiting", "live", "answered", "resolved")
KINDS = ("escalation", "ticket")
RESOLVED_SHOWN = 500  # the newest resolved threads the inbox can page through
_ORDER = {"live": 0, "waiting": 1, "answered": 2, "resolved": 3}


class AlreadyClaimed(CRMError):
    """Another agent has claimed the thread."""

    def __init__(self, by: str) -> None:
        super().__init__(f"claimed by {by}")
        self.by = by


@dataclass(frozen=True)
class InboxPage:
    """One page of threads with what the filters need."""

    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int
    per_page: int
    counts: dict[str, int]  # threads per status (before the status filter)
    channels: list[str]


def _status(closed: bool, last_in: Any, last_agent: Any) -> str:
    if closed:
        return "resolved"
    if last_agent is None:
        return "waiting"
    if last_in is not None and last_in > last_agent:
        return "live"
    return "answered"


def _minutes(since: Any, now: dt.datetime) -> int | None:
    if since is None:
        return None
    start = since if isinstance(since, dt.datetime) else dt.datetime.fromisoformat(str(since))
    return max(0, int((now - start).total_seconds() // 60))


def _claims(session: Session) -> dict[tuple[str, int], dict[str, Any]]:
    rows = session.execute(
        select(ThreadClaim.kind, ThreadClaim.thread_id, ThreadClaim.agent_id,
               ThreadClaim.claimed_at, m.Agent.name)
        .join(m.Agent, m.Agent.id == ThreadClaim.agent_id)
    ).all()
    return {(r.kind, r.thread_id): {"agent_id": r.agent_id, "name": r.name,
                                    "at": r.claimed_at} for r in rows}


def _times(session: Session, model: Any, ids: list[int]) -> dict[int, Any]:
    """Per thread: its customer's last message, the last agent message, the first
    customer message not answered yet (all since the thread opened) and the channel.

    Two grouped queries for all threads, whatever their number.
    """
    if not ids:
        return {}
    is_in = m.Interaction.direction == "in"
    since = and_(m.Interaction.sender_id == model.sender_id,
                 m.Interaction.created_at >= model.created_at)
    last = (
        select(model.id.label("thread_id"),
               func.max(case((is_in, m.Interaction.created_at))).label("last_in"),
               func.max(case((m.Interaction.kind == "agent", m.Interaction.created_at)))
               .label("last_agent"),
               func.min(m.Interaction.channel).label("channel"))
        .join(m.Interaction, since).where(model.id.in_(ids)).group_by(model.id).subquery()
    )
    first_open = func.min(m.Interaction.created_at).label("unanswered")
    pending = dict(session.execute(
        select(model.id, first_open)
        .join(last, last.c.thread_id == model.id)
        .join(m.Interaction, and_(m.Interaction.sender_id == model.sender_id, is_in,
                                  m.Interaction.created_at
                                  > func.coalesce(last.c.last_agent, model.created_at)))
        .group_by(model.id)
    ).all())
    return {r.thread_id: (r.last_in, r.last_agent, pending.get(r.thread_id), r.channel)
            for r in session.execute(select(last)).all()}


def _escalation_rows(session: Session, now: dt.datetime) -> list[dict[str, Any]]:
    recent_resolved = (select(m.Escalation.id).where(m.Escalation.status == "resolved")
                       .order_by(m.Escalation.created_at.desc()).limit(RESOLVED_SHOWN))
    found = list(session.scalars(
        select(m.Escalation)
        .where((m.Escalation.status != "resolved") | m.Escalation.id.in_(recent_resolved))
    ))
    times = _times(session, m.Escalation, [e.id for e in found])
    rows = []
    for esc in found:
        last_in, last_agent, unanswered, _ = times.get(esc.id, (None, None, None, None))
        status = _status(esc.status == "resolved", last_in, last_agent)
        waiting_since = (unanswered or esc.created_at) if status in ("waiting", "live") else None
        ctx = esc.context or {}
        rows.append({
            "kind": "escalation", "id": esc.id, "url": f"/escalations/{esc.id}",
            "status": status, "channel": esc.channel, "sender_id": esc.sender_id,
            "customer_id": esc.customer_id, "name": ctx.get("name"), "reason": esc.reason,
            "segment": ctx.get("segment"), "churn_risk": ctx.get("churn_risk"),
            "lifetime_value": ctx.get("lifetime_value"),
            "last_text": ((esc.transcript or [{}])[-1] or {}).get("text", "")
            if esc.transcript else "",
            "sentiment": esc.sentiment, "history": esc.sentiment_history or [],
            "ticket": esc.status == "ticket", "opened": esc.created_at,
            "last_at": max(t for t in (esc.created_at, last_in, last_agent) if t is not None),
            "waiting_minutes": _minutes(waiting_since, now) if waiting_since else None,
        })
    return rows


def _ticket_rows(session: Session, now: dt.datetime,
                 escalated: set[str]) -> list[dict[str, Any]]:
    recent = select(m.Ticket.id).order_by(m.Ticket.created_at.desc()).limit(RESOLVED_SHOWN)
    tickets = [t for t in session.scalars(
        select(m.Ticket).where((m.Ticket.status == "open") | m.Ticket.id.in_(recent)))
        if not (t.kind == "handoff" and t.sender_id in escalated)]  # on its escalation's row
    times = _times(session, m.Ticket, [t.id for t in tickets if t.sender_id])
    rows = []
    for t in tickets:
        last_in, last_agent, unanswered, channel = times.get(t.id, (None, None, None, None))
        if not channel:
            channel = t.sender_id.split(":", 1)[0] if t.sender_id and ":" in t.sender_id \
                else "desk"
        status = _status(t.status != "open", last_in, last_agent)
        waiting_since = (unanswered or t.created_at) if status in ("waiting", "live") else None
        rows.append({
            "kind": "ticket", "id": t.id, "url": f"/tickets/{t.id}", "status": status,
            "channel": channel, "sender_id": t.sender_id or "", "customer_id": t.customer_id,
            "name": None, "reason": f"{t.kind}: {t.subject}", "sentiment": None, "history": [],
            "segment": None, "churn_risk": None, "lifetime_value": None,
            "last_text": (t.body or "")[:200],
            "ticket": True, "opened": t.created_at,
            "last_at": max(x for x in (t.created_at, last_in, last_agent) if x is not None),
            "waiting_minutes": _minutes(waiting_since, now) if waiting_since else None,
        })
    return rows


def list_threads(*, session: Session, status: str | None = None, channel: str | None = None,
                 page: int = 1, per_page: int = 20,
                 now: dt.datetime | None = None) -> InboxPage:
    """Escalations and tickets as one list: live and waiting first (longest wait first).

    Args:
        session: The caller's session (read only).
        status: Keep one of :data:`STATUSES`, or ``open`` for every thread not
            resolved (None or ``all``: all).
        channel: Keep one channel (None: all).
        page: The page, from 1 (clamped to the last page).
        per_page: Rows per page.
        now: The time waiting is counted to (default: now).

    Returns:
        The page's rows (each with its claim, or None) and the filters' figures.
    """
    now = now or utcnow()
    escalations = _escalation_rows(session, now)
    rows = escalations + _ticket_rows(session, now, {r["sender_id"] for r in escalations})
    channels = sorted({r["channel"] for r in rows})
    if channel:
        rows = [r for r in rows if r["channel"] == channel]
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in STATUSES}
    if status == "open":
        rows = [r for r in rows if r["status"] != "resolved"]
    elif status and status != "all":
        rows = [r for r in rows if r["status"] == status]
    rows.sort(key=lambda r: (_ORDER[r["status"]], r["sentiment"] != "negative",
                             -(r["waiting_minutes"] or 0),
                             -r["last_at"].timestamp()))
    pages = max(1, math.ceil(len(rows) / per_page))
    page = min(max(1, page), pages)
    shown = rows[(page - 1) * per_page: page * per_page]
    claims = _claims(session)
    for r in shown:
        r["claim"] = claims.get((r["kind"], r["id"]))
        r["opened"] = r["opened"].isoformat(sep=" ", timespec="minutes")
        r.pop("last_at")
    return InboxPage(shown, len(rows), page, pages, per_page, counts, channels)


def claim_of(*, session: Session, kind: str, thread_id: int) -> dict[str, Any] | None:
    """Who claimed a thread and when (``agent_id``, ``name``, ``at``), or None."""
    return _claims(session).get((kind, thread_id))


def _check_thread(session: Session, kind: str, thread_id: int) -> None:
    model = {"escalation": m.Escalation, "ticket": m.Ticket}.get(kind)
    if model is None or session.get(model, thread_id) is None:
        raise NotFound(f"{kind} {thread_id}")


def claim(*, session: Session, kind: str, thread_id: int, agent_id: int,
          takeover: bool = False, now: dt.datetime | None = None) -> ThreadClaim:
    """Claim a thread for ``agent_id`` (again: a no-op that keeps the first time).

    Raises:
        NotFound: no such thread.
        AlreadyClaimed: another agent holds it and ``takeover`` is false.
    """
    _check_thread(session, kind, thread_id)
    agents.ensure_agent(session=session, agent_id=agent_id)  # an API-only agent has no row yet
    current = session.get(ThreadClaim, (kind, thread_id), with_for_update=True)
    if current is not None and current.agent_id == agent_id:
        return current
    if current is not None and not takeover:
        holder = session.get(m.Agent, current.agent_id)
        raise AlreadyClaimed(holder.name if holder else f"agent {current.agent_id}")
    if current is None:
        current = ThreadClaim(kind=kind, thread_id=thread_id)
        session.add(current)
    previous = current.agent_id
    current.agent_id = agent_id
    current.claimed_at = now or utcnow()
    session.flush()
    audit(session=session, actor=f"agent:{agent_id}", action="claim" if previous is None
          else "take_over", entity=f"{kind}s", entity_id=str(thread_id),
          details={"from": f"agent:{previous}"} if previous else {})
    return current


def release(*, session: Session, kind: str, thread_id: int, agent_id: int) -> bool:
    """Give a thread back; True when ``agent_id`` held it (only the holder can release)."""
    current = session.get(ThreadClaim, (kind, thread_id))
    if current is None or current.agent_id != agent_id:
        return False
    session.delete(current)
    audit(session=session, actor=f"agent:{agent_id}", action="release", entity=f"{kind}s",
          entity_id=str(thread_id))
    return True
