"""A customer's orders: status, cancellation, invoices, changes to an order being prepared."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_ml.audit import audit
from crm_ml.db import models as m
from crm_ml.identity import Identity
from crm_ml.support.checks import clean_text
from crm_ml.support.common import (
    OrderSummary,
    RefundRequest,
    open_ticket_for,
    order_summary,
    own_order,
    why_not,
)
from crm_ml.tickets import open_ticket

__all__ = [
    "CancelOutcome",
    "Invoice",
    "InvoiceLine",
    "cancel_order",
    "invoice",
    "order_status",
    "request_invoice_copy",
    "request_order_change",
]

logger = logging.getLogger(__name__)


def order_status(*, session: Session, identity: Identity,
                 order_id: str | None = None) -> OrderSummary:
    """Date, status, total and size of the caller's order (their latest one by default).

    Raises:
        Forbidden: the caller is not a verified customer.
        NotFound: no such order for this customer.
    """
    return order_summary(session, own_order(session, identity, order_id))


@dataclass(frozen=True)
class CancelOutcome:
    """What happened to a cancellation request.

    Attributes:
        order: The order as it is now.
        cancelled: Whether this call cancelled it.
        reason: ``cancelled``, or why not: ``shipped``, ``delivered``,
            ``already_cancelled``, ``not_a_sale`` (a cancellation note).
    """

    order: OrderSummary
    cancelled: bool
    reason: str


def cancel_order(*, session: Session, identity: Identity, order_id: str,
                 actor: str) -> CancelOutcome:
    """Cancel the caller's order if it is still ``processing``; otherwise say why not.

    Raises:
        Forbidden: the caller is not a verified customer.
        NotFound: no such order for this customer.
    """
    order = own_order(session, identity, order_id, for_update=True)
    if order.kind == "sale" and order.status == "processing":
        order.status = "cancelled"
        audit(session=session, actor=actor, action="cancel_order", entity="orders",
              entity_id=order.id, details={"previous_status": "processing",
                                           "customer_id": order.customer_id})
        session.flush()
        return CancelOutcome(order_summary(session, order), True, "cancelled")
    return CancelOutcome(order_summary(session, order), False, why_not(order))


@dataclass(frozen=True)
class InvoiceLine:
    """One product line of an invoice."""

    description: str
    quantity: int
    unit_price: float
    amount: float


@dataclass(frozen=True)
class Invoice:
    """An order's invoice: its summary and its largest lines."""

    order: OrderSummary
    lines: list[InvoiceLine]
    ticket_id: int | None = None


def invoice(*, session: Session, identity: Identity, order_id: str | None = None,
            max_lines: int = 3) -> Invoice:
    """The caller's invoice (latest order by default) with its ``max_lines`` largest lines.

    Raises:
        Forbidden: the caller is not a verified customer.
        NotFound: no such order for this customer.
    """
    order = own_order(session, identity, order_id)
    amount = m.OrderLine.quantity * m.OrderLine.unit_price
    rows = session.execute(
        select(m.Product.description, m.OrderLine.quantity, m.OrderLine.unit_price, amount)
        .join(m.Product, m.Product.stock_code == m.OrderLine.stock_code)
        .where(m.OrderLine.order_id == order.id)
        .order_by(func.abs(amount).desc(), m.OrderLine.id).limit(max_lines)
    ).all()
    lines = [InvoiceLine(r[0], int(r[1]), round(float(r[2]), 2), round(float(r[3]), 2))
             for r in rows]
    return Invoice(order_summary(session, order), lines)


def request_invoice_copy(*, session: Session, identity: Identity, order_id: str | None,
                         sender_id: str, max_lines: int = 3) -> Invoice:
    """The invoice, plus a ticket asking the team to e-mail its PDF (one open per order).

    Raises:
        Forbidden: the caller is not a verified customer.
        NotFound: no such order for this customer.
    """
    inv = invoice(session=session, identity=identity, order_id=order_id, max_lines=max_lines)
    existing = open_ticket_for(session, kind="invoice", customer_id=identity.number,
                               order_id=inv.order.order_id)
    if existing is None:
        existing = open_ticket(session=session, kind="invoice", customer_id=identity.number,
                               sender_id=sender_id, order_id=inv.order.order_id, actor=sender_id,
                               subject=f"E-mail the PDF invoice of order {inv.order.order_id}")
    return Invoice(inv.order, inv.lines, existing.id)


def request_order_change(*, session: Session, identity: Identity, order_id: str,
                         request: str, sender_id: str) -> RefundRequest:
    """Pass a change to an order still being prepared to the team (ticket ``order_change``).

    Returns a :class:`RefundRequest`-shaped outcome: ``opened`` / ``already_open``
    with the ticket, or why not (``shipped``, ``delivered``, ``already_cancelled``,
    ``not_a_sale``).

    Raises:
        Forbidden: the caller is not a verified customer.
        NotFound: no such order for this customer.
    """
    order = own_order(session, identity, order_id)
    summary = order_summary(session, order)
    if order.kind != "sale" or order.status != "processing":
        return RefundRequest(summary, why_not(order))
    existing = open_ticket_for(session, kind="order_change", customer_id=order.customer_id,
                               order_id=order.id)
    if existing is not None:
        return RefundRequest(summary, "already_open", existing.id)
    ticket = open_ticket(session=session, kind="order_change", customer_id=order.customer_id,
                         sender_id=sender_id, order_id=order.id, actor=sender_id,
                         subject=f"Change to order {order.id}", body=clean_text(request))
    return RefundRequest(summary, "opened", ticket.id)
