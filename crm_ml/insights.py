"""What the console's insights page shows: read-only figures over the CRM.

Every function is keyword-only, takes the caller's session (one short
transaction per page) and the caller's identity, and asks :mod:`crm_ml.authz`
what that caller may read:

* segments, the forecast, sentiment and escalations per day are company-wide
  analytics (``analytics.read``: reps, managers and agents);
* the helpdesk figures (first response time, time to resolution, containment and
  escalation rates, CSAT, per day and per channel: :mod:`crm_ml.helpdesk_stats`)
  are analytics too;
* the hottest leads per rep need ``leads.read`` and stay within the caller's
  :func:`crm_ml.authz.rep_scope` (a rep their own, a manager their team's); an
  agent sees none. Won and lost leads are never "hot".
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_ml import authz
from crm_ml.db import models as m
from crm_ml.helpdesk_stats import HelpdeskStats, helpdesk_stats
from crm_ml.identity import Identity
from crm_ml.sales import CLOSED_STATUSES

__all__ = [
    "SENTIMENTS",
    "Insights",
    "RepLeads",
    "escalations_per_day",
    "forecast_points",
    "helpdesk_figures",
    "hottest_leads_per_rep",
    "overview",
    "segment_sizes",
    "sentiment_per_day",
]

logger = logging.getLogger(__name__)

SENTIMENTS = ("negative", "neutral", "positive")


def _day(value: Any) -> str:
    """A day as ``YYYY-MM-DD`` whether the database returns a date or a string."""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)[:10]


def segment_sizes(*, session: Session, identity: Identity) -> list[tuple[str, int]]:
    """Customers per named RFM segment, largest first.

    Raises:
        Forbidden: the caller may not read analytics.
    """
    authz.require(identity, "analytics.read")
    rows = session.execute(
        select(m.Segment.rfm_segment, func.count().label("n"))
        .group_by(m.Segment.rfm_segment).order_by(func.count().desc(), m.Segment.rfm_segment)
    ).all()
    return [(r.rfm_segment, int(r.n)) for r in rows]


def forecast_points(*, session: Session, identity: Identity, series: str = "total",
                    limit: int = 26) -> list[dict[str, Any]]:
    """The newest forecast of ``series`` (the latest model version), by period.

    Raises:
        Forbidden: the caller may not read analytics.
    """
    authz.require(identity, "analytics.read")
    latest = session.scalar(
        select(m.Forecast.model_version).where(m.Forecast.series == series)
        .order_by(m.Forecast.created_at.desc(), m.Forecast.id.desc()).limit(1)
    )
    if latest is None:
        return []
    rows = session.execute(
        select(m.Forecast.period_start, m.Forecast.yhat, m.Forecast.lower, m.Forecast.upper)
        .where(m.Forecast.series == series, m.Forecast.model_version == latest)
        .order_by(m.Forecast.period_start).limit(limit)
    ).all()
    return [{"period": _day(r.period_start), "yhat": float(r.yhat), "lower": float(r.lower),
             "upper": float(r.upper), "model_version": latest} for r in rows]


def sentiment_per_day(*, session: Session, identity: Identity,
                      days: int = 30) -> list[dict[str, Any]]:
    """Customers' messages per day by sentiment, for the last ``days`` days with data.

    Raises:
        Forbidden: the caller may not read analytics.
    """
    authz.require(identity, "analytics.read")
    day = func.date(m.Interaction.created_at).label("day")
    rows = session.execute(
        select(day, m.Interaction.sentiment, func.count().label("n"))
        .where(m.Interaction.direction == "in", m.Interaction.sentiment.in_(SENTIMENTS))
        .group_by(day, m.Interaction.sentiment)
    ).all()
    per_day: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SENTIMENTS, 0))
    for r in rows:
        per_day[_day(r.day)][r.sentiment] += int(r.n)
    return [{"day": d, **per_day[d]} for d in sorted(per_day)[-days:]]


def escalations_per_day(*, session: Session, identity: Identity,
                        days: int = 30) -> list[tuple[str, int]]:
    """Escalations opened per day, for the last ``days`` days with any.

    Raises:
        Forbidden: the caller may not read analytics.
    """
    authz.require(identity, "analytics.read")
    day = func.date(m.Escalation.created_at).label("day")
    rows = session.execute(select(day, func.count().label("n")).group_by(day)).all()
    counts = sorted((_day(r.day), int(r.n)) for r in rows)
    return counts[-days:]


def helpdesk_figures(*, session: Session, identity: Identity,
                     days: int = 30) -> HelpdeskStats:
    """The helpdesk figures, overall, per channel and for the last ``days`` days with any.

    Raises:
        Forbidden: the caller may not read analytics.
    """
    authz.require(identity, "analytics.read")
    return helpdesk_stats(session=session, days=days)


@dataclass(frozen=True)
class RepLeads:
    """A rep and their hottest leads."""

    rep_id: int
    rep: str
    handle: str
    leads: list[dict[str, Any]]


def hottest_leads_per_rep(*, session: Session, identity: Identity,
                          per_rep: int = 3) -> list[RepLeads]:
    """The ``per_rep`` best-scored open leads (not won or lost) of every rep the caller sees.

    Raises:
        Forbidden: the caller may not read leads (customers, agents, anonymous).
    """
    authz.require(identity, "leads.read")
    scope = authz.rep_scope(identity, session=session)
    where = [m.Lead.status.not_in(CLOSED_STATUSES)]
    if scope is not authz.ALL:
        where.append(m.Lead.rep_id.in_(sorted(scope)))
    rank = func.row_number().over(
        partition_by=m.Lead.rep_id, order_by=(m.LeadScore.score.desc(), m.Lead.id)
    ).label("rank")
    ranked = (
        select(m.Lead.rep_id, m.Lead.id.label("lead_id"), m.Lead.name, m.Lead.source,
               m.Lead.status, m.LeadScore.score, rank)
        .join(m.LeadScore, m.LeadScore.lead_id == m.Lead.id)
        .where(*where)
        .subquery()
    )
    rows = session.execute(
        select(ranked, m.SalesRep.name.label("rep"), m.SalesRep.handle)
        .join(m.SalesRep, m.SalesRep.id == ranked.c.rep_id)
        .where(ranked.c.rank <= per_rep)
        .order_by(m.SalesRep.id, ranked.c.rank)
    ).all()
    reps: dict[int, RepLeads] = {}
    for r in rows:
        entry = reps.setdefault(r.rep_id, RepLeads(r.rep_id, r.rep, r.handle, []))
        entry.leads.append({"id": r.lead_id, "name": r.name, "source": r.source,
                            "status": r.status, "score": float(r.score)})
    return list(reps.values())


@dataclass(frozen=True)
class Insights:
    """Everything the insights page shows (the console draws the charts).

    ``hot_leads`` is None when the caller may not read leads at all (an agent),
    and an empty list when they may but none is scored.
    """

    segments: list[tuple[str, int]]
    forecast: list[dict[str, Any]]
    sentiment: list[dict[str, Any]]
    escalations: list[tuple[str, int]]
    hot_leads: list[RepLeads] | None
    helpdesk: HelpdeskStats | None = None


def overview(*, session: Session, identity: Identity, days: int = 30) -> Insights:
    """The insights page's figures, as far as ``identity`` may read them.

    Raises:
        Forbidden: the caller may not read analytics.
    """
    authz.require(identity, "analytics.read")
    leads = (hottest_leads_per_rep(session=session, identity=identity)
             if authz.allowed(identity, "leads.read") else None)
    return Insights(
        segments=segment_sizes(session=session, identity=identity),
        forecast=forecast_points(session=session, identity=identity),
        sentiment=sentiment_per_day(session=session, identity=identity, days=days),
        escalations=escalations_per_day(session=session, identity=identity, days=days),
        hot_leads=leads,
        helpdesk=helpdesk_figures(session=session, identity=identity, days=days),
    )
