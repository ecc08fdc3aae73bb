"""Customers with no product purchase: give them honest default scores.

90 of Online Retail II's 5,942 customers only ever cancelled or paid a fee
(postage, bank charges), so RFM, the churn model and item-item filtering have
nothing to work from. So that every customer and account still has a segment,
a churn score with its reason and recommendations, this step writes:

* segment ``No purchases`` (frequency and value 0, recency from the first contact);
* a rule-based churn score of 1.0 with the reason "no product purchase on record"
  (``model_version`` ``rule:no-purchase``, so it is never mistaken for the model);
* the overall best sellers (the popularity fallback of :mod:`crm_ml.recommend`).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_ml.db import models as m

__all__ = [
    "RULE_VERSION",
    "SEGMENT",
    "fill",
]

logger = logging.getLogger(__name__)

SEGMENT = "No purchases"
RULE_VERSION = "rule:no-purchase"


def _without(session: Session, column: Any) -> list[int]:
    """Customers with no row in ``column``'s table."""
    return list(session.scalars(select(m.Customer.id)
                                .where(m.Customer.id.not_in(select(column).where(
                                    column.is_not(None))))
                                .order_by(m.Customer.id)))


def _buyers(session: Session) -> set[int]:
    return set(session.scalars(
        select(m.Order.customer_id).join(m.OrderLine, m.OrderLine.order_id == m.Order.id)
        .where(m.Order.kind == "sale").distinct()))


def fill(*, session: Session) -> int:
    """Write default rows where a customer without purchases has none; return how many.

    Each table is checked on its own, since each model replaces its own rows.
    """
    buyers = _buyers(session)
    reference = session.scalar(select(func.max(m.Order.invoiced_at)))
    written: set[int] = set()
    for cid in _without(session, m.Segment.customer_id):
        if cid in buyers:
            continue  # a buyer without a segment waits for the segmentation model
        customer = session.get(m.Customer, cid)
        first = customer.first_seen or reference
        days = (reference - first).days if reference and first else 0
        session.add(m.Segment(customer_id=cid, recency_days=days, frequency=0, monetary=0.0,
                              r_score=0, f_score=0, m_score=0, rfm_segment=SEGMENT,
                              cluster=None, cluster_name="No purchases",
                              model_version=RULE_VERSION))
        written.add(cid)
    for cid in _without(session, m.ChurnScore.customer_id):
        if cid in buyers:
            continue
        session.add(m.ChurnScore(customer_id=cid, probability=1.0,
                                 reasons=[{"text": "no product purchase on record",
                                           "effect": "raises", "weight": 1.0}],
                                 model_version=RULE_VERSION))
        written.add(cid)
    best = session.execute(
        select(m.Recommendation.stock_code, m.Recommendation.score, m.Recommendation.rank)
        .where(m.Recommendation.customer_id.is_(None), m.Recommendation.segment.is_(None))
        .order_by(m.Recommendation.rank)).all()
    for cid in _without(session, m.Recommendation.customer_id) if best else []:
        if cid in buyers:
            continue
        for row in best:
            session.add(m.Recommendation(customer_id=cid, segment=None, rank=row.rank,
                                         stock_code=row.stock_code, score=row.score,
                                         source="popularity", model_version=RULE_VERSION))
        written.add(cid)
    if written:
        logger.info("default scores for %d customers without purchases", len(written))
    return len(written)
