"""What the customer-service modules share: the caller's order and customer, open tickets.

A helper that several of :mod:`crm_ml.support`'s modules need lives here,
below them all: the caller's own order (:func:`own_order`: another customer's
order is reported exactly like a missing one), what a customer may hear about
it (:class:`OrderSummary`), why an order can no longer change
(:func:`why_not`), an already open ticket of a kind (:func:`open_ticket_for`),
and the outcome of a request about an order (:class:`RefundRequest`).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_ml.authz import Forbidden, check_customer, own_customer_id
from crm_ml.db import models as m
from crm_ml.errors import NotFound
from crm_ml.identity import Identity
from crm_ml.support.checks import clean_order_id

__all__ = [
    "OrderSummary",
    "RefundRequest",
    "open_ticket_for",
    "order_summary",
    "own_customer",
    "own_order",
    "why_not",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OrderSummary:
    """What a customer may hear about one of their orders."""

    order_id: str
    invoiced_at: dt.datetime
    kind: str  # sale | cancellation
    status: str  # processing | shipped | delivered | cancelled
    total: float
    lines: int
    items: int


def order_summary(session: Session, order: m.Order) -> OrderSummary:
    lines, items = session.execute(
        select(func.count(m.OrderLine.id), func.coalesce(func.sum(m.OrderLine.quantity), 0))
        .where(m.OrderLine.order_id == order.id)
    ).one()
    return OrderSummary(order.id, order.invoiced_at, order.kind, order.status,
                        round(float(order.total), 2), int(lines), abs(int(items)))


def own_order(session: Session, identity: Identity, order_id: str | None,
              *, for_update: bool = False) -> m.Order:
    """The caller's order ``order_id`` (their latest sale when None).

    Raises:
        Forbidden: the caller is not a (verified) customer.
        NotFound: no such order, or the order of another customer (same answer), or
            the caller's customer record was erased.
    """
    customer_id = own_customer_id(identity, session=session)
    if order_id is None:
        order = session.scalars(
            select(m.Order).where(m.Order.customer_id == customer_id, m.Order.kind == "sale")
            .order_by(m.Order.invoiced_at.desc(), m.Order.id.desc()).limit(1)
        ).first()
        if order is None:
            raise NotFound("no order yet")
        return order
    oid = clean_order_id(order_id)
    if oid is None:
        raise NotFound("not an order number")
    stmt = select(m.Order).where(m.Order.id == oid)
    if for_update:
        stmt = stmt.with_for_update()
    order = session.scalars(stmt).first()
    if order is None:
        raise NotFound("order")
    try:
        check_customer(identity, order.customer_id)
    except Forbidden:
        logger.info("a customer asked about an order that is not theirs")
        raise NotFound("order") from None
    return order


def why_not(order: m.Order) -> str:
    if order.kind != "sale":
        return "not_a_sale"
    if order.status == "cancelled":
        return "already_cancelled"
    return order.status  # shipped | delivered


def open_ticket_for(session: Session, *, kind: str, customer_id: int | None,
                    order_id: str | None) -> m.Ticket | None:
    """An open ticket of ``kind`` for this customer (and order), to avoid duplicates."""
    if customer_id is None:
        return None
    stmt = select(m.Ticket).where(m.Ticket.kind == kind, m.Ticket.status == "open",
                                  m.Ticket.customer_id == customer_id)
    if order_id is not None:
        stmt = stmt.where(m.Ticket.order_id == order_id)
    return session.scalars(stmt.order_by(m.Ticket.id.desc()).limit(1)).first()


@dataclass(frozen=True)
class RefundRequest:
    """What happened to a refund request.

    Attributes:
        order: The order concerned.
        outcome: ``opened``, ``already_open``, or why not: ``processing`` (not
            shipped yet: cancel instead), ``already_cancelled``, ``not_a_sale``.
        ticket_id: The refund ticket (new or already open).
    """

    order: OrderSummary
    outcome: str
    ticket_id: int | None = None


def own_customer(session: Session, identity: Identity) -> m.Customer:
    customer = session.get(m.Customer, own_customer_id(identity, session=session))
    if customer is None:  # pragma: no cover - own_customer_id found it
        raise NotFound("customer")
    return customer
