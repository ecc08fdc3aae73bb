"""Escalation to a human agent: the CRM side of the lifecycle in DESIGN.md.

The bot decides *when* (bot/policy.py); the action records the escalation with
its context here (:func:`open_escalation`) and pauses the conversation, or,
outside support hours or with no agent online, opens a ticket and tells the
customer when to expect an answer. Agents list, read, answer
(:func:`reply_to_escalation`) and resolve (:func:`resolve_escalation`)
escalations through the console, whose API and pages both call the functions
below; the console then tells the Rasa server.

Audit entries live in :mod:`crm_ml.audit`, tickets in :mod:`crm_ml.tickets`,
agents' rows and heartbeats in :mod:`crm_ml.agents`.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from crm_ml.audit import audit, utcnow
from crm_ml.db import models as m
from crm_ml.db.models_console import ThreadClaim
from crm_ml.db.models_helpdesk import ConversationRating, VisitorContact
from crm_ml.errors import CRMError, NotFound
from crm_ml.tickets import (
    HANDOFF_KIND,
    append_to_ticket,
    close_thread_tickets,
    open_ticket,
    thread_ticket,
    transcript_lines,
)

__all__ = [
    "AGENT_ONLINE_WINDOW",
    "AlreadyResolved",
    "Availability",
    "EscalationOutcome",
    "HUMAN_REASON",
    "RATING_RANGE",
    "ResolvedThread",
    "SupportHours",
    "add_to_thread",
    "agents_online",
    "availability",
    "conversation",
    "customer_profile",
    "get_escalation",
    "list_escalations",
    "needs_contact",
    "open_escalation",
    "open_thread",
    "rating_of",
    "record_rating",
    "reply_to_escalation",
    "resolve",
    "resolve_escalation",
    "resolve_thread",
    "support_hours",
    "thread_expectation",
]

logger = logging.getLogger(__name__)

# --- kept until their imports move: crm_ml.sales, crm_ml.support, crm_ml.gdpr,
# tests/actions/test_handoff.py and tests/crm_ml/test_support.py still take these
# names from here. Their homes: ``audit`` and ``utcnow`` crm_ml.audit, ``open_ticket``
# crm_ml.tickets (all three also used below), ``ensure_agent`` and ``mark_agent_seen``
# crm_ml.agents. New code imports them from their homes.
from crm_ml.agents import ensure_agent, mark_agent_seen  # noqa: E402,F401  (re-export)

# Support hours and who is online live in crm_ml.support_hours (re-exported here).
from crm_ml.support_hours import (  # noqa: E402
    AGENT_ONLINE_WINDOW,
    Availability,
    SupportHours,
    agents_online,
    availability,
    support_hours,
)


def customer_profile(*, session: Session, customer_id: int | None) -> dict[str, Any]:
    """The context an agent needs: segment, churn risk, value, recent orders, tickets."""
    if customer_id is None:
        return {"customer_id": None, "verified": False}
    customer = session.get(m.Customer, customer_id)
    if customer is None:
        return {"customer_id": customer_id, "verified": False}
    if customer.anonymized:  # erased: no profile, and the conversation is not linked to it
        return {"customer_id": None, "verified": False}
    segment = session.get(m.Segment, customer_id)
    churn = session.get(m.ChurnScore, customer_id)
    value = session.scalar(select(func.coalesce(func.sum(m.Order.total), 0))
                           .where(m.Order.customer_id == customer_id)) or 0
    orders = session.execute(
        select(m.Order.id, m.Order.invoiced_at, m.Order.status, m.Order.total, m.Order.kind)
        .where(m.Order.customer_id == customer_id)
        .order_by(m.Order.invoiced_at.desc()).limit(5)
    ).all()
    tickets = session.execute(
        select(m.Ticket.id, m.Ticket.kind, m.Ticket.subject, m.Ticket.created_at)
        .where(m.Ticket.customer_id == customer_id, m.Ticket.status == "open")
        .order_by(m.Ticket.created_at.desc()).limit(5)
    ).all()
    return {
        "customer_id": customer_id,
        "verified": True,
        "name": customer.name,
        "country": customer.country,
        "segment": segment.rfm_segment if segment else None,
        "churn_risk": round(churn.probability, 3) if churn else None,
        "lifetime_value": round(float(value), 2),
        "recent_orders": [
            {"id": o.id, "date": o.invoiced_at.date().isoformat(), "status": o.status,
             "total": float(o.total), "kind": o.kind} for o in orders
        ],
        "open_tickets": [
            {"id": t.id, "kind": t.kind, "subject": t.subject,
             "created_at": t.created_at.isoformat(timespec="minutes")} for t in tickets
        ],
    }


@dataclass(frozen=True)
class EscalationOutcome:
    """What happened to an escalation request."""

    escalation_id: int
    live: bool  # an agent takes it now (conversation paused)
    ticket_id: int | None
    expectation: str
    existing: bool = False  # the conversation's thread was open already: joined, not opened


#: Reasons that outrank whatever fired first: a customer who asks for a person
#: is recorded as such even when an upset message had opened the thread.
HUMAN_REASON = "asked for a human"


def _key(item: dict[str, Any]) -> tuple[Any, ...]:
    return (item.get("from"), item.get("text"), item.get("at"))


def _merge(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> tuple[
        list[dict[str, Any]], list[dict[str, Any]]]:
    """``old`` followed by the items of ``new`` it does not hold yet; and those items."""
    seen = {_key(item) for item in old}
    added = [item for item in new if _key(item) not in seen]
    return [*old, *added], added


def open_thread(*, session: Session, sender_id: str) -> m.Escalation | None:
    """The conversation's open thread (a live escalation or a ticket), if any."""
    return session.scalar(
        select(m.Escalation).where(m.Escalation.sender_id == sender_id,
                                   m.Escalation.status.in_(["open", "ticket"]))
        .order_by(m.Escalation.id).limit(1)
    )


def _join_thread(session: Session, esc: m.Escalation, reason: str,
                 transcript: list[dict[str, Any]], sentiment_history: list[dict[str, Any]],
                 now: dt.datetime) -> EscalationOutcome:
    """Append a conversation's new messages to its open thread (no second thread)."""
    esc.transcript, added = _merge(list(esc.transcript or []), transcript)
    esc.sentiment_history, _ = _merge(list(esc.sentiment_history or []), sentiment_history)
    if esc.sentiment_history:
        esc.sentiment = esc.sentiment_history[-1].get("sentiment")
    if reason == HUMAN_REASON and esc.reason != HUMAN_REASON:
        esc.reason = HUMAN_REASON
    ticket = thread_ticket(session=session, sender_id=esc.sender_id)
    if ticket is not None:
        append_to_ticket(session=session, ticket=ticket,
                         items=[i for i in added if i.get("from") == "customer"])
    audit(session=session, actor=esc.sender_id, action="join_thread", entity="escalations",
          entity_id=str(esc.id), details={"messages": len(added)})
    live = esc.status == "open"
    if live:
        expectation = Availability(True, "open", None).expectation()
    elif esc.channel == "voice":
        expectation = callback_promise(session=session, esc=esc)
    else:
        expectation = thread_expectation(session=session, sender_id=esc.sender_id, now=now)
    return EscalationOutcome(esc.id, live, ticket.id if ticket else None, expectation,
                             existing=True)


def open_escalation(*, session: Session, sender_id: str, channel: str, reason: str,
                    transcript: list[dict[str, Any]], sentiment_history: list[dict[str, Any]],
                    customer_id: int | None, now: dt.datetime | None = None,
                    live_possible: bool = True) -> EscalationOutcome:
    """Record an escalation with its context; open a ticket when nobody can take it live.

    One conversation has one open thread: when it has one already, the new
    messages (and their sentiment) are appended to it and to its ticket, the
    first reason stays (unless the customer now asks for a person), and the
    outcome carries the existing ticket number (``existing=True``).
    ``live_possible=False`` (a phone call, which an agent cannot join) always
    becomes a ticket with a callback promise. The ticket holds the transcript.
    """
    now = now or utcnow()
    existing = open_thread(session=session, sender_id=sender_id)
    if existing is not None:
        return _join_thread(session, existing, reason, transcript, sentiment_history, now)
    avail = availability(session=session, now=now)
    if not live_possible and avail.available:
        avail = Availability(False, "callback", None)
    profile = customer_profile(session=session, customer_id=customer_id)
    customer_id = profile["customer_id"]  # None for an erased customer
    latest = sentiment_history[-1]["sentiment"] if sentiment_history else None
    esc = m.Escalation(sender_id=sender_id, channel=channel, created_at=now,
                       customer_id=customer_id, reason=reason, sentiment=latest,
                       transcript=transcript, sentiment_history=sentiment_history,
                       context=profile, status="open" if avail.available else "ticket")
    session.add(esc)
    session.flush()
    ticket_id = None
    if not avail.available:
        subject = ("Callback needed" if avail.reason == "callback" else "Customer needs a person")
        ticket = open_ticket(
            session=session, kind=HANDOFF_KIND, customer_id=customer_id, sender_id=sender_id,
            subject=f"{subject}: {reason}",
            body=(f"Escalation {esc.id} on {channel} ({avail.reason}), reason: {reason}.\n"
                  + transcript_lines(transcript)),
        )
        ticket_id = ticket.id
    audit(session=session, actor=sender_id, action="escalate", entity="escalations",
          entity_id=str(esc.id), details={"reason": reason, "live": avail.available})
    return EscalationOutcome(esc.id, avail.available, ticket_id, avail.expectation())


def needs_contact(*, session: Session, sender_id: str, now: dt.datetime | None = None) -> bool:
    """Whether to ask an anonymous visitor for an e-mail before their ticket is opened.

    True when nobody can take the conversation live (so it becomes a ticket), it
    has no open thread yet, and the visitor left no address in it.
    """
    if open_thread(session=session, sender_id=sender_id) is not None:
        return False
    if availability(session=session, now=now).available:
        return False
    return session.scalar(select(VisitorContact.id)
                          .where(VisitorContact.sender_id == sender_id)) is None


def add_to_thread(*, session: Session, sender_id: str,
                  items: list[dict[str, Any]]) -> int | None:
    """Append customer messages to the conversation's open ticket thread.

    Used while a ticket waits for an agent: what the customer writes goes to the
    ticket rather than to the bot's fallback.

    Returns:
        The ticket's number, or None when the conversation has no open ticket.
    """
    esc = open_thread(session=session, sender_id=sender_id)
    ticket = thread_ticket(session=session, sender_id=sender_id)
    if ticket is None:
        return None
    if esc is not None:
        esc.transcript, added = _merge(list(esc.transcript or []), items)
        moods = [{"at": i.get("at"), "sentiment": i["sentiment"],
                  "confidence": i.get("confidence")} for i in added if i.get("sentiment")]
        if moods:
            esc.sentiment_history = [*(esc.sentiment_history or []), *moods]
            esc.sentiment = moods[-1]["sentiment"]
    else:
        added = items
    append_to_ticket(session=session, ticket=ticket, items=added)
    return ticket.id


_ANGER = case((m.Escalation.sentiment == "negative", 0), else_=1)


def list_escalations(*, session: Session, status: str = "open") -> list[m.Escalation]:
    """Escalations with ``status``, newest and angriest first."""
    return list(session.scalars(
        select(m.Escalation).where(m.Escalation.status == status)
        .order_by(_ANGER, m.Escalation.created_at.desc(), m.Escalation.id.desc())
    ))


def get_escalation(*, session: Session, escalation_id: int) -> m.Escalation:
    """One escalation.

    Raises:
        NotFound: no such escalation.
    """
    esc = session.get(m.Escalation, escalation_id)
    if esc is None:
        raise NotFound(f"escalation {escalation_id}")
    return esc


def conversation(*, session: Session, sender_id: str, limit: int = 200) -> list[dict[str, Any]]:
    """The stored messages of a conversation, oldest first (the live transcript)."""
    rows = session.execute(
        select(m.Interaction.direction, m.Interaction.text, m.Interaction.sentiment,
               m.Interaction.intent, m.Interaction.created_at, m.Interaction.kind)
        .where(m.Interaction.sender_id == sender_id)
        .order_by(m.Interaction.created_at.desc(), m.Interaction.id.desc()).limit(limit)
    ).all()
    return [{"direction": r.direction, "text": r.text, "sentiment": r.sentiment,
             "intent": r.intent, "kind": r.kind,
             "at": r.created_at.isoformat(timespec="seconds")} for r in reversed(rows)]


class AlreadyResolved(CRMError):
    """The escalation is resolved: it takes no more replies."""


def reply_to_escalation(*, session: Session, escalation_id: int, agent: str) -> str:
    """Record that ``agent`` answers an escalation; the caller delivers the text.

    The console (API and pages) calls this, then posts the text to the Rasa
    server's handoff channel, which stores it as the agent's message.

    Returns:
        The conversation's sender id, where the answer goes.

    Raises:
        NotFound: no such escalation.
        AlreadyResolved: the conversation is back with the bot.
    """
    esc = get_escalation(session=session, escalation_id=escalation_id)
    if esc.status == "resolved":
        raise AlreadyResolved(f"escalation {escalation_id} is resolved")
    audit(session=session, actor=agent, action="reply", entity="escalations",
          entity_id=str(esc.id))
    return esc.sender_id


def resolve_escalation(*, session: Session, escalation_id: int, agent: str, again: bool = False,
                       now: dt.datetime | None = None) -> str:
    """Resolve an escalation for ``agent``; the caller then resumes the bot.

    Args:
        session: The caller's session.
        escalation_id: The escalation.
        agent: Who resolves it (``agent:<n>``).
        again: Resolve an escalation that is resolved already once more (a new
            audit entry, and the caller resumes the bot again), as the console's
            API does; without it a resolved escalation raises :class:`AlreadyResolved`,
            as the console's pages expect.
        now: The time of resolution (default: now).

    Returns:
        The conversation's sender id.

    Raises:
        NotFound: no such escalation.
        AlreadyResolved: resolved already, and ``again`` is false.
    """
    esc = get_escalation(session=session, escalation_id=escalation_id)
    if esc.status == "resolved" and not again:
        raise AlreadyResolved(f"escalation {escalation_id} is resolved")
    return resolve(session=session, escalation_id=escalation_id, agent=agent,
                   now=now).sender_id


def resolve(*, session: Session, escalation_id: int, agent: str,
            now: dt.datetime | None = None) -> m.Escalation:
    """Resolve an escalation for ``agent``, closing its tickets (the caller resumes the bot)."""
    return resolve_thread(session=session, escalation_id=escalation_id, agent=agent,
                          now=now).escalation


@dataclass(frozen=True)
class ResolvedThread:
    """A thread an agent resolved: where to say so, and whether the bot had stopped."""

    escalation: m.Escalation | None  # None once its session is closed
    sender_id: str
    channel: str
    was_live: bool  # the conversation was paused: the bot says it is back
    closed_tickets: list[int]


def resolve_thread(*, session: Session, escalation_id: int, agent: str,
                   now: dt.datetime | None = None) -> ResolvedThread:
    """Resolve a thread: the escalation and every open ticket of its conversation.

    Raises:
        NotFound: no such escalation.
    """
    esc = get_escalation(session=session, escalation_id=escalation_id)
    was_live = esc.status == "open"
    esc.status = "resolved"
    esc.agent = agent
    esc.resolved_at = now or utcnow()
    closed = close_thread_tickets(session=session, sender_id=esc.sender_id, actor=agent)
    audit(session=session, actor=agent, action="resolve", entity="escalations",
          entity_id=str(esc.id), details={"tickets_closed": closed, "was_live": was_live})
    return ResolvedThread(esc, esc.sender_id, esc.channel, was_live, closed)


RATING_RANGE = range(1, 6)
_RATING_RE = re.compile(r"^\s*([1-5])(?:\s*(?:/|out of)\s*5)?\s*[.!]?\s*$", re.IGNORECASE)
_RATING_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}


def rating_of(text: str) -> int | None:
    """The 1-5 rating in a customer's answer ("4", "4/5", "five", a keypad digit), or None."""
    match = _RATING_RE.match(text or "")
    if match:
        return int(match.group(1))
    return _RATING_WORDS.get((text or "").strip().strip(".!").lower())


def callback_promise(*, session: Session, esc: m.Escalation) -> str:
    """What a caller waiting for a callback hears: who will call, once an agent has
    claimed the thread (its escalation or its ticket), else that a colleague will."""
    ticket = thread_ticket(session=session, sender_id=esc.sender_id)
    threads = [("escalation", esc.id)] + ([("ticket", ticket.id)] if ticket else [])
    for kind, thread_id in threads:
        name = session.scalar(
            select(m.Agent.name).join(ThreadClaim, ThreadClaim.agent_id == m.Agent.id)
            .where(ThreadClaim.kind == kind, ThreadClaim.thread_id == thread_id))
        if name:
            return f"{name} from our support team will call you back shortly."
    return Availability(False, "callback", None).expectation()


def thread_expectation(*, session: Session, sender_id: str,
                       now: dt.datetime | None = None) -> str:
    """When the customer with an open ticket can expect an answer, in words."""
    esc = open_thread(session=session, sender_id=sender_id)
    if esc is not None and esc.channel == "voice":
        return callback_promise(session=session, esc=esc)
    avail = availability(session=session, now=now)
    if avail.available:
        return "A colleague will reply to your ticket shortly."
    return avail.expectation()


def record_rating(*, session: Session, sender_id: str, score: int, channel: str | None = None,
                  now: dt.datetime | None = None) -> ConversationRating:
    """Store a customer's rating (1-5) of their latest resolved thread.

    Raises:
        ValueError: the score is not 1 to 5.
    """
    if score not in RATING_RANGE:
        raise ValueError("a rating is a whole number from 1 to 5")
    esc = session.scalar(
        select(m.Escalation).where(m.Escalation.sender_id == sender_id,
                                   m.Escalation.status == "resolved")
        .order_by(m.Escalation.resolved_at.desc(), m.Escalation.id.desc()).limit(1)
    )
    rating = ConversationRating(
        escalation_id=esc.id if esc else None, sender_id=sender_id,
        channel=channel or (esc.channel if esc else "unknown"), score=score,
        created_at=now or utcnow())
    session.add(rating)
    session.flush()
    audit(session=session, actor=sender_id, action="rate", entity="conversation_ratings",
          entity_id=str(rating.id), details={"score": score})
    return rating
