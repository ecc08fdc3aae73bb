"""A rep's accounts: churn risk, RFM segment and products to offer, one customer at a time.

Reps see their own accounts, managers their team's, agents every account;
a customer outside the caller's reach is reported exactly like one that does
not exist (:class:`~crm_ml.sales.common.CustomerNotFound`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from crm_ml import authz
from crm_ml.db import models as m
from crm_ml.identity import Identity
from crm_ml.sales.common import (
    Reason,
    canonical_segment,
    in_scope,
    reachable_customer,
    reasons_of,
    stored_segments,
)

__all__ = [
    "ChurnRisk",
    "CustomerSegment",
    "ProductPick",
    "Recommendations",
    "churn_risk",
    "churn_risks",
    "never_ordered",
    "customer_recommendations",
    "customer_segment",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChurnRisk:
    """A customer's churn probability (no purchase in the next 90 days).

    Attributes:
        customer_id: Customer number.
        name: Account (or customer) name.
        probability: 0..1, None when not scored.
        reasons: Why, strongest first.
    """

    customer_id: int
    name: str
    probability: float | None
    reasons: list[Reason]


def _bought() -> Any:
    return (select(m.Order.id).where(m.Order.customer_id == m.ChurnScore.customer_id,
                                     m.Order.kind == "sale").exists())


def churn_risks(*, session: Session, identity: Identity, limit: int = 5) -> list[ChurnRisk]:
    """The caller's accounts most likely to churn (agents: all accounts).

    Only customers who bought count: one who never ordered cannot churn (see
    :func:`never_ordered`).

    Raises:
        Forbidden: the caller may not read accounts.
    """
    authz.require(identity, "accounts.read")
    scope = authz.rep_scope(identity, session=session)
    rows = session.execute(
        select(m.ChurnScore.customer_id, m.ChurnScore.probability, m.ChurnScore.reasons,
               func.coalesce(m.Account.name, m.Customer.name).label("name"))
        .join(m.Customer, m.Customer.id == m.ChurnScore.customer_id)
        .outerjoin(m.Account, m.Account.customer_id == m.ChurnScore.customer_id)
        .where(in_scope(m.Account.rep_id, scope), _bought())
        .order_by(m.ChurnScore.probability.desc(), m.ChurnScore.customer_id)
        .limit(max(1, min(limit, 50)))
    ).all()
    return [ChurnRisk(r.customer_id, r.name, r.probability, reasons_of(r.reasons))
            for r in rows]


def never_ordered(*, session: Session, identity: Identity, limit: int = 10
                  ) -> tuple[int, list[tuple[int, str]]]:
    """The caller's accounts that never placed an order: how many, and the first ``limit``
    (customer number, name) by number.

    Raises:
        Forbidden: the caller may not read accounts.
    """
    authz.require(identity, "accounts.read")
    scope = authz.rep_scope(identity, session=session)
    ordered = (select(m.Order.id).where(m.Order.customer_id == m.Account.customer_id,
                                        m.Order.kind == "sale").exists())
    where = (in_scope(m.Account.rep_id, scope), ~ordered)
    count = session.scalar(select(func.count()).select_from(m.Account).where(*where)) or 0
    rows = session.execute(select(m.Account.customer_id, m.Account.name).where(*where)
                           .order_by(m.Account.customer_id).limit(max(1, min(limit, 50)))).all()
    return int(count), [(int(r.customer_id), r.name) for r in rows]


def churn_risk(*, session: Session, identity: Identity, customer_id: int) -> ChurnRisk:
    """One account's churn probability and reasons.

    Raises:
        Forbidden: the caller may not read customers.
        CustomerNotFound: not among the caller's accounts.
    """
    name = reachable_customer(session, identity, customer_id)
    score = session.get(m.ChurnScore, customer_id)
    if score is None:
        return ChurnRisk(customer_id, name, None, [])
    return ChurnRisk(customer_id, name, score.probability, reasons_of(score.reasons))


@dataclass(frozen=True)
class CustomerSegment:
    """Where a customer sits in the RFM segmentation and the K-Means clusters.

    Attributes:
        customer_id: Customer number.
        name: Account (or customer) name.
        segment: RFM segment name, None when not segmented yet.
        recency_days: Days since the last purchase.
        frequency: Number of orders.
        monetary: Total spend.
        r_score: Recency score (1..5).
        f_score: Frequency score (1..5).
        m_score: Monetary score (1..5).
        cluster: K-Means cluster number.
        cluster_name: Its name.
    """

    customer_id: int
    name: str
    segment: str | None
    recency_days: int | None = None
    frequency: int | None = None
    monetary: float | None = None
    r_score: int | None = None
    f_score: int | None = None
    m_score: int | None = None
    cluster: int | None = None
    cluster_name: str | None = None


def customer_segment(*, session: Session, identity: Identity,
                     customer_id: int) -> CustomerSegment:
    """A customer's RFM segment, values and cluster (reps: own accounts; agents: all).

    Raises:
        Forbidden: the caller may not read customers.
        CustomerNotFound: not among the caller's accounts.
    """
    name = reachable_customer(session, identity, customer_id)
    seg = session.get(m.Segment, customer_id)
    if seg is None:
        return CustomerSegment(customer_id, name, None)
    return CustomerSegment(customer_id, name, seg.rfm_segment, seg.recency_days, seg.frequency,
                           float(seg.monetary), seg.r_score, seg.f_score, seg.m_score,
                           seg.cluster, seg.cluster_name)


@dataclass(frozen=True)
class ProductPick:
    """A recommended product.

    Attributes:
        stock_code: Product code.
        description: What it is.
        unit_price: Price of one unit.
        score: Recommendation score.
    """

    stock_code: str
    description: str
    unit_price: float
    score: float


@dataclass(frozen=True)
class Recommendations:
    """Products to offer a customer.

    Attributes:
        customer_id: Customer number.
        name: Account (or customer) name.
        products: Best first.
        basis: ``"customer"`` (picked for them), ``"segment"`` (popular in their
            segment) or ``"popular"`` (best sellers), or ``"none"``.
        segment: The segment used for a segment fallback.
    """

    customer_id: int
    name: str
    products: list[ProductPick]
    basis: str
    segment: str | None = None


def _picks(session: Session, where: Any, limit: int) -> list[ProductPick]:
    rows = session.execute(
        select(m.Recommendation.stock_code, m.Product.description, m.Product.unit_price,
               m.Recommendation.score)
        .join(m.Product, m.Product.stock_code == m.Recommendation.stock_code)
        .where(where)
        .order_by(m.Recommendation.rank, m.Recommendation.score.desc())
        .limit(limit)
    ).all()
    return [ProductPick(r.stock_code, r.description, float(r.unit_price), float(r.score))
            for r in rows]


def customer_recommendations(*, session: Session, identity: Identity, customer_id: int,
                             limit: int = 5) -> Recommendations:
    """The top products to offer one of the caller's accounts.

    Picks made for the customer first; without any (a cold start), the picks of the
    customer's RFM segment, then the overall best sellers.

    Raises:
        Forbidden: the caller may not read customers.
        CustomerNotFound: not among the caller's accounts.
    """
    name = reachable_customer(session, identity, customer_id)
    limit = max(1, min(limit, 20))
    picks = _picks(session, m.Recommendation.customer_id == customer_id, limit)
    if picks:
        return Recommendations(customer_id, name, picks, "customer")
    seg = session.get(m.Segment, customer_id)
    if seg is not None:
        canonical = canonical_segment(seg.rfm_segment) or seg.rfm_segment
        stored = stored_segments(session, m.Recommendation.segment, canonical)
        if stored:
            picks = _picks(session, and_(m.Recommendation.customer_id.is_(None),
                                         m.Recommendation.segment.in_(stored)), limit)
            if picks:
                return Recommendations(customer_id, name, picks, "segment", seg.rfm_segment)
    picks = _picks(session, and_(m.Recommendation.customer_id.is_(None),
                                 m.Recommendation.segment.is_(None)), limit)
    return Recommendations(customer_id, name, picks, "popular" if picks else "none")
