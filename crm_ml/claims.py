"""After-delivery claims: a parcel marked delivered that never came, a wrong or damaged item.

The customer dialogue calls these functions once the customer is known
(signed in or verified); like :mod:`crm_ml.support` they are keyword-only, take
the caller's session and reach only the caller's own orders (another
customer's order is reported exactly like a missing one).

* :func:`open_missing_parcel_claim` opens a ``missing_parcel`` ticket for a
  shipped or delivered order (one open claim per order);
* :func:`order_items` lists an order's product lines, so that the customer can
  say which one arrived wrong or damaged;
* :func:`request_line_refund` opens a ``refund`` ticket for that one line: its
  quantity and amount, never the whole order;
* :func:`recent_orders` lists the customer's latest orders ("show me my orders").

Tickets go through :func:`crm_ml.tickets.open_ticket` (audited); the
customer's words go into the ticket body, never into logs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_ml.authz import own_customer_id
from crm_ml.db import models as m
from crm_ml.errors import NotFound
from crm_ml.identity import Identity
from crm_ml.support.checks import clean_text
from crm_ml.support.common import OrderSummary, open_ticket_for, order_summary, own_order
from crm_ml.tickets import open_ticket

__all__ = [
    "CLAIM_PROBLEMS",
    "Claim",
    "LineRefund",
    "OrderItem",
    "open_missing_parcel_claim",
    "order_items",
    "recent_orders",
    "request_line_refund",
]

logger = logging.getLogger(__name__)

CLAIM_PROBLEMS = frozenset({"wrong", "damaged"})
"""What may be wrong with an item that arrived."""
MAX_ITEMS = 10
"""At most this many lines are offered as choices (the largest first)."""


@dataclass(frozen=True)
class Claim:
    """What happened to a claim about an order.

    Attributes:
        order: The order concerned.
        outcome: ``opened``, ``already_open``, or why not: ``processing`` (not
            shipped yet), ``cancelled``, ``not_a_sale``.
        ticket_id: The claim's ticket (new or already open).
    """

    order: OrderSummary
    outcome: str
    ticket_id: int | None = None


@dataclass(frozen=True)
class OrderItem:
    """One product line of an order, as the customer may choose it."""

    line_id: int
    description: str
    quantity: int
    unit_price: float

    @property
    def amount(self) -> float:
        """The line's value: quantity times unit price."""
        return round(self.quantity * self.unit_price, 2)


@dataclass(frozen=True)
class LineRefund:
    """A refund request for one line of an order."""

    order: OrderSummary
    item: OrderItem
    outcome: str  # opened | already_open | processing | cancelled | not_a_sale
    ticket_id: int | None = None


def _not_claimable(order: m.Order) -> str | None:
    """Why no claim can be made about ``order`` (None: it can)."""
    if order.kind != "sale":
        return "not_a_sale"
    if order.status == "cancelled":
        return "cancelled"
    if order.status == "processing":
        return "processing"
    return None


def open_missing_parcel_claim(*, session: Session, identity: Identity, order_id: str | None,
                              text: str, sender_id: str) -> Claim:
    """Open a missing-parcel claim for the caller's shipped or delivered order.

    Args:
        session: The caller's session.
        identity: The caller (a verified or signed-in customer).
        order_id: The order (the caller's latest sale when None).
        text: The customer's words, kept in the ticket.
        sender_id: The conversation.

    Returns:
        The claim: opened, already open for that order, or why not.

    Raises:
        Forbidden: the caller is not a customer.
        NotFound: no such order for this customer.
    """
    order = own_order(session, identity, order_id)
    summary = order_summary(session, order)
    problem = _not_claimable(order)
    if problem is not None:
        return Claim(summary, problem)
    existing = open_ticket_for(session, kind="missing_parcel", customer_id=order.customer_id,
                               order_id=order.id)
    if existing is not None:
        return Claim(summary, "already_open", existing.id)
    ticket = open_ticket(session=session, kind="missing_parcel", customer_id=order.customer_id,
                         sender_id=sender_id, order_id=order.id, actor=sender_id,
                         subject=f"Parcel not received: order {order.id} ({order.status})",
                         body=clean_text(text))
    logger.info("missing-parcel claim %s opened for an order", ticket.id)
    return Claim(summary, "opened", ticket.id)


def _items(session: Session, order_id: str) -> list[OrderItem]:
    rows = session.execute(
        select(m.OrderLine.id, m.Product.description, m.OrderLine.quantity,
               m.OrderLine.unit_price)
        .join(m.Product, m.Product.stock_code == m.OrderLine.stock_code)
        .where(m.OrderLine.order_id == order_id, m.OrderLine.quantity > 0)
        .order_by((m.OrderLine.quantity * m.OrderLine.unit_price).desc(), m.OrderLine.id)
    ).all()
    return [OrderItem(int(r[0]), str(r[1] or "item"), int(r[2]), round(float(r[3]), 2))
            for r in rows]


def order_items(*, session: Session, identity: Identity,
                order_id: str | None) -> tuple[OrderSummary, list[OrderItem]]:
    """The caller's order and its product lines, the largest first (at most :data:`MAX_ITEMS`).

    Raises:
        Forbidden: the caller is not a customer.
        NotFound: no such order for this customer.
    """
    order = own_order(session, identity, order_id)
    return order_summary(session, order), _items(session, order.id)[:MAX_ITEMS]


def request_line_refund(*, session: Session, identity: Identity, order_id: str, line_id: int,
                        problem: str, sender_id: str) -> LineRefund:
    """Open a return-and-refund ticket for one line of the caller's order.

    The ticket names the line, its quantity and its amount; the rest of the
    order is untouched. One open request per line.

    Args:
        session: The caller's session.
        identity: The caller (a verified or signed-in customer).
        order_id: The order.
        line_id: The order line the customer chose.
        problem: ``wrong`` or ``damaged``.
        sender_id: The conversation.

    Raises:
        Forbidden: the caller is not a customer.
        NotFound: no such order for this customer, or no such line in it.
        ValueError: ``problem`` is not one of :data:`CLAIM_PROBLEMS`.
    """
    if problem not in CLAIM_PROBLEMS:
        raise ValueError(f"problem {problem!r}")
    order = own_order(session, identity, order_id)
    summary = order_summary(session, order)
    item = next((i for i in _items(session, order.id) if i.line_id == line_id), None)
    if item is None:
        raise NotFound("order line")
    reason = _not_claimable(order)
    if reason is not None:
        return LineRefund(summary, item, reason)
    subject = f"Refund of line {item.line_id} of order {order.id}"
    existing = session.scalars(
        select(m.Ticket).where(m.Ticket.kind == "refund", m.Ticket.status == "open",
                               m.Ticket.order_id == order.id, m.Ticket.subject == subject)
        .limit(1)).first()
    if existing is not None:
        return LineRefund(summary, item, "already_open", existing.id)
    body = (f"Item {problem}: {item.quantity} x {item.description} at {item.unit_price:.2f}, "
            f"refund {item.amount:.2f} for this line only (order total {summary.total:.2f}). "
            "Return label to the customer.")
    ticket = open_ticket(session=session, kind="refund", customer_id=order.customer_id,
                         sender_id=sender_id, order_id=order.id, actor=sender_id,
                         subject=subject, body=body)
    logger.info("line refund %s opened (%s item)", ticket.id, problem)
    return LineRefund(summary, item, "opened", ticket.id)


def recent_orders(*, session: Session, identity: Identity, limit: int = 5) -> list[OrderSummary]:
    """The caller's latest orders (sales and cancellation notes), newest first.

    Raises:
        Forbidden: the caller is not a customer.
        NotFound: the customer is not in the CRM (or was erased).
    """
    customer_id = own_customer_id(identity, session=session)
    orders = session.scalars(
        select(m.Order).where(m.Order.customer_id == customer_id)
        .order_by(m.Order.invoiced_at.desc(), m.Order.id.desc()).limit(max(1, min(limit, 20)))
    ).all()
    return [order_summary(session, o) for o in orders]
