"""Refunds: a refund ticket for a shipped or delivered order, and what was credited back."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_ml.authz import own_customer_id
from crm_ml.db import models as m
from crm_ml.identity import Identity
from crm_ml.support.checks import clean_text
from crm_ml.support.common import RefundRequest, open_ticket_for, order_summary, own_order, why_not
from crm_ml.tickets import open_ticket

__all__ = [
    "Credit",
    "RefundStatus",
    "RefundTicket",
    "refund_status",
    "request_refund",
]

logger = logging.getLogger(__name__)


def request_refund(*, session: Session, identity: Identity, order_id: str, reason: str,
                   sender_id: str) -> RefundRequest:
    """Open a refund ticket for a shipped or delivered order of the caller.

    Raises:
        Forbidden: the caller is not a verified customer.
        NotFound: no such order for this customer.
    """
    order = own_order(session, identity, order_id)
    summary = order_summary(session, order)
    if order.kind != "sale" or order.status not in {"shipped", "delivered"}:
        return RefundRequest(summary, "processing" if order.status == "processing"
                             else why_not(order))
    existing = open_ticket_for(session, kind="refund", customer_id=order.customer_id,
                               order_id=order.id)
    if existing is not None:
        return RefundRequest(summary, "already_open", existing.id)
    ticket = open_ticket(session=session, kind="refund", customer_id=order.customer_id,
                         sender_id=sender_id, order_id=order.id, actor=sender_id,
                         subject=f"Refund request for order {order.id}",
                         body=clean_text(reason))
    return RefundRequest(summary, "opened", ticket.id)


@dataclass(frozen=True)
class RefundTicket:
    """A refund request of the customer."""

    ticket_id: int
    order_id: str | None
    status: str
    opened_at: dt.datetime


@dataclass(frozen=True)
class Credit:
    """Money credited back: a cancellation note, or a cancelled order."""

    order_id: str
    date: dt.datetime
    amount: float
    kind: str  # cancellation (a C-invoice) | cancelled_order


@dataclass(frozen=True)
class RefundStatus:
    """The customer's refund requests and credits, newest first."""

    requests: list[RefundTicket] = field(default_factory=list)
    credits: list[Credit] = field(default_factory=list)


def refund_status(*, session: Session, identity: Identity, limit: int = 3) -> RefundStatus:
    """The caller's refund tickets and the amounts credited back to them.

    Raises:
        Forbidden: the caller is not a verified customer.
        NotFound: the customer is not in the CRM (or was erased).
    """
    customer_id = own_customer_id(identity, session=session)
    tickets = session.scalars(
        select(m.Ticket).where(m.Ticket.customer_id == customer_id, m.Ticket.kind == "refund")
        .order_by(m.Ticket.created_at.desc(), m.Ticket.id.desc()).limit(limit)
    ).all()
    credited = session.scalars(
        select(m.Order).where(m.Order.customer_id == customer_id, m.Order.status == "cancelled")
        .order_by(m.Order.invoiced_at.desc(), m.Order.id.desc()).limit(limit)
    ).all()
    return RefundStatus(
        [RefundTicket(t.id, t.order_id, t.status, t.created_at) for t in tickets],
        [Credit(o.id, o.invoiced_at, round(abs(float(o.total)), 2),
                "cancellation" if o.kind == "cancellation" else "cancelled_order")
         for o in credited],
    )
