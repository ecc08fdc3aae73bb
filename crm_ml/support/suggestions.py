"""Products to suggest to a customer: their stored recommendations, else the best sellers."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_ml.authz import active_customer
from crm_ml.db import models as m
from crm_ml.identity import Identity

__all__ = [
    "BEST_SELLER_DAYS",
    "Suggestion",
    "Suggestions",
    "best_sellers",
    "recommendations_for",
    "suggestions",
]

logger = logging.getLogger(__name__)


BEST_SELLER_DAYS = 90
"""Best sellers are counted over the last this many days of sales in the CRM."""


@dataclass(frozen=True)
class Suggestion:
    """A product to suggest."""

    stock_code: str
    description: str
    unit_price: float


@dataclass(frozen=True)
class Suggestions:
    """Products to suggest; ``personal`` when they come from the customer's own history."""

    personal: bool
    items: list[Suggestion]


def best_sellers(*, session: Session, limit: int = 3,
                 days: int = BEST_SELLER_DAYS) -> list[Suggestion]:
    """The products sold in the largest quantities over the last ``days`` of sales.

    Quantities of sale orders, net of the cancellation notes of the same period.
    """
    last = session.scalar(select(func.max(m.Order.invoiced_at)).where(m.Order.kind == "sale"))
    if last is None:
        return []
    since = last - dt.timedelta(days=days)
    # Net of cancellations: C-invoices carry negative quantities, so a huge order
    # that was cancelled again (Online Retail II has one of 80,995 paper crafts)
    # does not make a best seller. Orders cancelled in the chat do not count.
    recent = (select(m.Order.id).where(m.Order.invoiced_at >= since,
                                       (m.Order.kind == "cancellation")
                                       | (m.Order.status != "cancelled"))
              .scalar_subquery())
    qty = func.sum(m.OrderLine.quantity).label("qty")
    top = (select(m.OrderLine.stock_code, qty).where(m.OrderLine.order_id.in_(recent))
           .group_by(m.OrderLine.stock_code).order_by(qty.desc(), m.OrderLine.stock_code)
           .limit(limit).subquery())
    rows = session.execute(
        select(m.Product.stock_code, m.Product.description, m.Product.unit_price)
        .join(top, top.c.stock_code == m.Product.stock_code)
        .order_by(top.c.qty.desc(), m.Product.stock_code)
    ).all()
    return [Suggestion(r[0], r[1], round(float(r[2]), 2)) for r in rows]


def recommendations_for(*, session: Session, customer_id: int,
                        limit: int = 3) -> list[Suggestion]:
    """The stored recommendations of one customer, best first (may be empty)."""
    rows = session.execute(
        select(m.Product.stock_code, m.Product.description, m.Product.unit_price)
        .join(m.Recommendation, m.Recommendation.stock_code == m.Product.stock_code)
        .where(m.Recommendation.customer_id == customer_id)
        .order_by(m.Recommendation.rank, m.Recommendation.score.desc()).limit(limit)
    ).all()
    return [Suggestion(r[0], r[1], round(float(r[2]), 2)) for r in rows]


def suggestions(*, session: Session, identity: Identity, limit: int = 3) -> Suggestions:
    """Personal recommendations for a verified customer, else the best sellers.

    An erased customer hears the best sellers, as an anonymous caller does: their
    orders stay in the CRM, and a model trained again would have ideas for them.
    """
    customer_id = active_customer(identity, session=session)
    if customer_id is not None:
        mine = recommendations_for(session=session, customer_id=customer_id, limit=limit)
        if mine:
            return Suggestions(True, mine)
    return Suggestions(False, best_sellers(session=session, limit=limit))
