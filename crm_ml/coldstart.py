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

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from crm_ml.db import models as m

logger = logging.getLogger(__name__)

SEGMENT = "No purchases"
RULE_VERSION = "rule:no-purchase"


def customers_without_scores(*, session: Session) -> list[int]:
    """Customers that have no segment row (no product purchase)."""
    scored = select(m.Segment.customer_id)
    return list(session.scalars(select(m.Customer.id).where(m.Customer.id.not_in(scored))
                                .order_by(m.Customer.id)))


def fill(*, session: Session) -> int:
    """Write default segment, churn and recommendation rows; return how many customers."""
    missing = customers_without_scores(session=session)
    if not missing:
        return 0
    reference = session.scalar(select(func.max(m.Order.invoiced_at)))
    best = session.execute(
        select(m.Recommendation.stock_code, m.Recommendation.score, m.Recommendation.rank)
        .where(m.Recommendation.customer_id.is_(None), m.Recommendation.segment.is_(None))
        .order_by(m.Recommendation.rank)).all()
    session.execute(delete(m.ChurnScore).where(m.ChurnScore.customer_id.in_(missing)))
    session.execute(delete(m.Recommendation).where(m.Recommendation.customer_id.in_(missing)))
    for customer in session.scalars(select(m.Customer).where(m.Customer.id.in_(missing))):
        first = customer.first_seen or reference
        days = (reference - first).days if reference and first else 0
        session.add(m.Segment(customer_id=customer.id, recency_days=days, frequency=0,
                              monetary=0.0, r_score=0, f_score=0, m_score=0,
                              rfm_segment=SEGMENT, cluster=None,
                              cluster_name="No purchases", model_version=RULE_VERSION))
        session.add(m.ChurnScore(customer_id=customer.id, probability=1.0,
                                 reasons=[{"text": "no product purchase on record",
                                           "effect": "raises", "weight": 1.0}],
                                 model_version=RULE_VERSION))
        for row in best:
            session.add(m.Recommendation(customer_id=customer.id, segment=None, rank=row.rank,
                                         stock_code=row.stock_code, score=row.score,
                                         source="popularity", model_version=RULE_VERSION))
    logger.info("default scores for %d customers without purchases", len(missing))
    return len(missing)
