"""Customers without a product purchase still get a segment, a churn score and suggestions."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from crm_ml import coldstart
from crm_ml.db import models as m
from crm_ml.db import session_scope


def test_fill_gives_defaults_only_to_customers_without_scores(env, sqlite_url: str) -> None:
    env.setenv("CRM_DATABASE_URL", sqlite_url)
    with session_scope() as s:
        for cid in (1, 2):
            s.add(m.Customer(id=cid, name=f"C{cid}", email=f"c{cid}@example.com", country="UK",
                             anonymized=False, first_seen=dt.datetime(2011, 1, 1)))
        s.add(m.Product(stock_code="A", description="Mug", unit_price=1))
        s.flush()
        s.add(m.Order(id="1", customer_id=1, invoiced_at=dt.datetime(2011, 3, 1),
                      country="UK", kind="sale", status="delivered", total=1))
        s.flush()
        s.add(m.OrderLine(order_id="1", stock_code="A", quantity=1, unit_price=1))
        s.add(m.Segment(customer_id=1, recency_days=1, frequency=1, monetary=1, r_score=5,
                        f_score=1, m_score=1, rfm_segment="New Customers", model_version="v"))
        s.add(m.Recommendation(customer_id=None, segment=None, rank=1, stock_code="A",
                               score=0.9, source="popularity", model_version="v"))
    with session_scope() as s:
        assert coldstart.fill(session=s) == 1
    with session_scope() as s:
        seg = s.get(m.Segment, 2)
        assert (seg.rfm_segment, seg.frequency, seg.recency_days) == ("No purchases", 0, 59)
        churn = s.get(m.ChurnScore, 2)
        assert churn.probability == 1.0 and churn.model_version == "rule:no-purchase"
        assert churn.reasons[0]["text"] == "no product purchase on record"
        recs = s.scalars(select(m.Recommendation.stock_code)
                         .where(m.Recommendation.customer_id == 2)).all()
        assert recs == ["A"]
        assert s.get(m.Segment, 1).rfm_segment == "New Customers"  # untouched
        assert s.get(m.ChurnScore, 1) is None  # a buyer waits for the churn model
        assert s.scalars(select(m.Recommendation)
                         .where(m.Recommendation.customer_id == 1)).first() is None
    with session_scope() as s:
        assert coldstart.fill(session=s) == 0  # idempotent
