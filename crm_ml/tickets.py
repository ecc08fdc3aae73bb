"""Support tickets: what the desk answers later (refunds, invoices, callbacks...).

A ticket is opened in the caller's transaction and audited with it. A handoff
ticket is the written form of a conversation's thread (:mod:`crm_ml.handoff`):
at most one is open per conversation (:func:`thread_ticket`), later messages
are appended to it (:func:`append_to_ticket`) and resolving the thread closes
it (:func:`close_thread_tickets`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_ml.audit import audit, utcnow
from crm_ml.db import models as m

__all__ = [
    "HANDOFF_KIND",
    "append_to_ticket",
    "close_thread_tickets",
    "open_ticket",
    "thread_ticket",
    "transcript_lines",
]

logger = logging.getLogger(__name__)

HANDOFF_KIND = "handoff"
_SPEAKERS = {"customer": "Customer", "bot": "Bot", "agent": "Agent"}


def open_ticket(*, session: Session, kind: str, subject: str, body: str = "",
                customer_id: int | None = None, sender_id: str | None = None,
                order_id: str | None = None, actor: str = "bot") -> m.Ticket:
    """Open a support ticket and audit it.

    Args:
        session: The caller's session.
        kind: What the ticket is about (``handoff``, ``refund``, ``invoice``...).
        subject: A one-line summary (cut to 200 characters).
        body: The details.
        customer_id: The customer, when known.
        sender_id: The conversation it came from, when any.
        order_id: The order it is about, when any.
        actor: Who opened it (for the audit log).

    Returns:
        The new ticket (flushed: its id is set).
    """
    ticket = m.Ticket(kind=kind, subject=subject[:200], body=body, customer_id=customer_id,
                      sender_id=sender_id, order_id=order_id, status="open",
                      created_at=utcnow())
    session.add(ticket)
    session.flush()
    audit(session=session, actor=actor, action="open_ticket", entity="tickets",
          entity_id=str(ticket.id), details={"kind": kind})
    return ticket


def transcript_lines(items: Iterable[dict[str, Any]]) -> str:
    """A transcript as a ticket's text: one ``Speaker: words (sentiment)`` line per message.

    Args:
        items: Messages with ``from`` (customer, bot, agent), ``text`` and, for the
            customer's, ``sentiment`` when known.

    Returns:
        The lines, joined by newlines.
    """
    lines = []
    for item in items:
        text = " ".join(str(item.get("text") or "").split())
        if not text:
            continue
        speaker = _SPEAKERS.get(str(item.get("from")), str(item.get("from") or "?").title())
        mood = f" ({item['sentiment']})" if item.get("sentiment") else ""
        lines.append(f"{speaker}: {text}{mood}")
    return "\n".join(lines)


def thread_ticket(*, session: Session, sender_id: str) -> m.Ticket | None:
    """The open handoff ticket of a conversation, if any (the oldest, should there be more)."""
    return session.scalar(
        select(m.Ticket).where(m.Ticket.sender_id == sender_id,
                               m.Ticket.kind == HANDOFF_KIND, m.Ticket.status == "open")
        .order_by(m.Ticket.id).limit(1)
    )


def append_to_ticket(*, session: Session, ticket: m.Ticket,
                     items: Iterable[dict[str, Any]], actor: str = "bot") -> int:
    """Append messages to a ticket's transcript.

    Returns:
        How many lines were added.
    """
    text = transcript_lines(items)
    if not text:
        return 0
    ticket.body = f"{ticket.body.rstrip()}\n{text}" if ticket.body else text
    audit(session=session, actor=actor, action="append_ticket", entity="tickets",
          entity_id=str(ticket.id), details={"lines": text.count("\n") + 1})
    return text.count("\n") + 1


def close_thread_tickets(*, session: Session, sender_id: str, actor: str) -> list[int]:
    """Close every open handoff ticket of a conversation (the thread is resolved).

    Returns:
        The numbers of the tickets closed.
    """
    closed = []
    for ticket in session.scalars(
            select(m.Ticket).where(m.Ticket.sender_id == sender_id,
                                   m.Ticket.kind == HANDOFF_KIND,
                                   m.Ticket.status == "open").order_by(m.Ticket.id)):
        ticket.status = "closed"
        audit(session=session, actor=actor, action="close_ticket", entity="tickets",
              entity_id=str(ticket.id))
        closed.append(ticket.id)
    return closed
