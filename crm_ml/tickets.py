"""Support tickets: what the desk answers later (refunds, invoices, callbacks...).

A ticket is opened in the caller's transaction and audited with it.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from crm_ml.audit import audit, utcnow
from crm_ml.db import models as m

__all__ = ["open_ticket"]

logger = logging.getLogger(__name__)


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
