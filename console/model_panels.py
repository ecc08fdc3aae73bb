"""The insights page's panels of the papers' remaining models: unusual orders and
complaint topics.

Both read only the rows the models wrote (``unusual_activity``, ``feedback_topics`` and
``topic_assignments``) through :mod:`crm_ml.sales.insights`, which checks the viewer and
counts the period from the as-of date (``CRM_TODAY``, or the last day of the data).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_ml.db.models_insights import UnusualActivity
from crm_ml.errors import CRMError
from crm_ml.identity import Identity
from crm_ml.sales import insights

__all__ = ["panels"]

logger = logging.getLogger(__name__)

UNUSUAL_PERIOD = "last 30 days"
TOPICS_PERIOD = "this month"


def panels(*, session: Session, identity: Identity) -> dict[str, Any]:
    """``unusual`` (the flagged orders of the last 30 days, most unusual first) and
    ``topics`` (complaint topics this month against the month before); each None when its
    model has not been trained."""
    out: dict[str, Any] = {"unusual": None, "topics": None}
    trained = session.scalar(select(UnusualActivity.id).limit(1)) is not None
    try:
        if trained:
            out["unusual"] = insights.unusual_orders(session=session, identity=identity,
                                                     period=UNUSUAL_PERIOD, limit=10)
    except CRMError:
        logger.exception("insights: unusual orders unavailable")
    try:
        out["topics"] = insights.complaint_topics(session=session, identity=identity,
                                                  period=TOPICS_PERIOD, limit=8)
    except CRMError:  # NoData: not trained
        logger.info("insights: no complaint topics yet")
    return out
