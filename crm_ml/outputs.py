"""The models' rows in the CRM: what each model writes, and the stored segments it reads back.

Every writer replaces its model's rows in the caller's transaction (the caller
owns the session), stamps them with the registry version that produced them,
and skips rows about customers or products the CRM does not hold:

- :func:`write_lead_scores` -> ``lead_scores`` (:mod:`crm_ml.scoring`)
- :func:`write_churn_scores` -> ``churn_scores`` (:mod:`crm_ml.churn`)
- :func:`write_segments` -> ``segments`` (:mod:`crm_ml.segmentation`), read back by
  :func:`read_segments` for the recommendations' and the forecast's segments
- :func:`write_recommendations` -> ``recommendations`` (:mod:`crm_ml.recommend`)
- :func:`write_forecasts` -> ``forecasts`` (:mod:`crm_ml.forecasting`)

The sales questions read these tables through :mod:`crm_ml.sales`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

__all__ = [
    "read_segments",
    "write_churn_scores",
    "write_forecasts",
    "write_lead_scores",
    "write_recommendations",
    "write_segments",
]

logger = logging.getLogger(__name__)


def _insert(session: Any, table: Any, rows: list[dict[str, Any]], chunk: int = 5000) -> None:
    """Insert ``rows`` into ``table`` (an ORM class), ``chunk`` rows per statement."""
    from sqlalchemy import insert

    for start in range(0, len(rows), chunk):
        session.execute(insert(table), rows[start:start + chunk])


def write_lead_scores(*, session: Any, scores: Sequence[Mapping[str, Any]],
                      model_version: str) -> int:
    """Replace every row of ``lead_scores`` with ``scores`` (in the caller's transaction)."""
    from sqlalchemy import delete

    from crm_ml.db.models import LeadScore

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    session.execute(delete(LeadScore))
    rows = [{"lead_id": s["lead_id"], "score": s["score"], "reasons": s["reasons"],
             "model_version": model_version, "scored_at": now} for s in scores]
    _insert(session, LeadScore, rows)
    return len(rows)


def write_churn_scores(*, session: Any, scores: Sequence[Mapping[str, Any]],
                       model_version: str) -> int:
    """Replace ``churn_scores`` with ``scores`` for customers the CRM holds.

    Returns:
        Rows written.
    """
    from sqlalchemy import delete, select

    from crm_ml.db.models import ChurnScore, Customer

    known = set(session.execute(select(Customer.id)).scalars())
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = [{"customer_id": s["customer_id"], "probability": s["probability"],
             "reasons": s["reasons"], "model_version": model_version, "scored_at": now}
            for s in scores if s["customer_id"] in known]
    if len(rows) < len(scores):
        logger.warning("churn: %d scored customers are not in the customers table",
                       len(scores) - len(rows))
    session.execute(delete(ChurnScore))
    _insert(session, ChurnScore, rows)
    return len(rows)


def write_segments(*, session: Any, segments: pd.DataFrame, model_version: str) -> int:
    """Replace the ``segments`` table with these rows (customers known to the CRM only).

    Args:
        session: Open session; the caller owns the transaction.
        segments: Output of :meth:`RFMSegmenter.transform`, indexed by customer id.
        model_version: The registry version that produced them.

    Returns:
        Rows written.
    """
    from sqlalchemy import delete, select

    from crm_ml.db.models import Customer, Segment

    known = set(session.scalars(select(Customer.id)).all())
    seg = segments[segments.index.isin(known)]
    rows = [
        {"customer_id": int(cid), "recency_days": int(r.recency_days),
         "frequency": int(r.frequency), "monetary": round(float(r.monetary), 2),
         "r_score": int(r.r_score), "f_score": int(r.f_score), "m_score": int(r.m_score),
         "rfm_segment": str(r.rfm_segment), "cluster": int(r.cluster),
         "cluster_name": str(r.cluster_name), "model_version": model_version}
        for cid, r in zip(seg.index, seg.itertuples(index=False), strict=True)
    ]
    session.execute(delete(Segment))
    _insert(session, Segment, rows)
    if len(seg) < len(segments):
        logger.warning("segments: %d customers with purchases are not in the CRM, not written",
                       len(segments) - len(seg))
    return len(rows)


def read_segments(*, session: Any) -> pd.Series:
    """Return the stored named RFM segment of each customer (empty when none)."""
    from sqlalchemy import select

    from crm_ml.db.models import Segment

    rows = session.execute(select(Segment.customer_id, Segment.rfm_segment)).all()
    return pd.Series({int(c): s for c, s in rows}, name="rfm_segment", dtype=object)


def write_recommendations(*, session: Any, rows: pd.DataFrame, model_version: str) -> int:
    """Replace the ``recommendations`` table (known customers and products only).

    Args:
        session: Open session; the caller owns the transaction.
        rows: Columns ``customer_id`` (may be NA), ``segment`` (may be None),
            ``rank``, ``stock_code``, ``score``, ``source``.
        model_version: The registry version that produced them.

    Returns:
        Rows written.
    """
    from sqlalchemy import delete, select

    from crm_ml.db.models import Customer, Product, Recommendation

    customers = set(session.scalars(select(Customer.id)).all())
    products = set(session.scalars(select(Product.stock_code)).all())
    records = []
    for r in rows.itertuples(index=False):
        cid = None if pd.isna(r.customer_id) else int(r.customer_id)
        if (cid is not None and cid not in customers) or r.stock_code not in products:
            continue
        records.append({"customer_id": cid, "segment": r.segment if isinstance(r.segment, str)
                        else None, "rank": int(r.rank), "stock_code": str(r.stock_code),
                        "score": round(float(r.score), 6), "source": str(r.source),
                        "model_version": model_version})
    session.execute(delete(Recommendation))
    _insert(session, Recommendation, records)
    if len(records) < len(rows):
        logger.warning("recommendations: %d rows skipped (customer or product not in the CRM)",
                       len(rows) - len(records))
    return len(records)


def write_forecasts(*, session: Any, rows: pd.DataFrame, model_version: str) -> int:
    """Store forecast rows (``series, week, yhat, lower, upper``) under ``model_version``.

    Earlier versions' rows of the same series are removed: readers take the
    latest version anyway, and the table stays small.

    Args:
        session: Open session; the caller owns the transaction.
        rows: Forecast rows.
        model_version: The registry version that produced them.

    Returns:
        Rows written.
    """
    from sqlalchemy import delete, insert

    from crm_ml.db.models import Forecast

    names = sorted(rows["series"].unique())
    session.execute(delete(Forecast).where(Forecast.series.in_(names)))
    records = [{"series": r.series, "period_start": pd.Timestamp(r.week).date(),
                "yhat": round(float(r.yhat), 2), "lower": round(float(r.lower), 2),
                "upper": round(float(r.upper), 2), "model_version": model_version}
               for r in rows.itertuples(index=False)]
    if records:
        session.execute(insert(Forecast), records)
    return len(records)
