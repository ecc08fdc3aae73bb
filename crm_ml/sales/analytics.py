"""Company-wide figures for staff: RFM segment summaries and the revenue forecast.

:func:`segment_summary` and :func:`sales_forecast` ask :mod:`crm_ml.authz` for
``analytics.read``; :func:`forecast_series` and :func:`weekly_actuals` give the
aggregate figures behind the forecast chart without an identity (their callers
decide who may see them).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, true
from sqlalchemy.orm import Session

from crm_ml import asof, authz
from crm_ml.db import models as m
from crm_ml.identity import Identity
from crm_ml.sales.common import (
    NoData,
    canonical_segment,
    in_scope,
    scope_word,
    stored_segments,
)

__all__ = [
    "ForecastData",
    "ForecastPoint",
    "ForecastSummary",
    "SegmentStats",
    "SegmentSummary",
    "TopAccount",
    "forecast_series",
    "forecast_series_names",
    "resolve_series",
    "sales_forecast",
    "segment_summary",
    "weekly_actuals",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentStats:
    """One RFM segment.

    Attributes:
        segment: Its name as stored.
        customers: Customers in it.
        avg_monetary: Average total spend.
        avg_recency_days: Average days since the last purchase.
        avg_frequency: Average number of orders.
        total_monetary: Total spend of the segment.
        yours: How many of them are the caller's (team's) accounts; None for agents.
    """

    segment: str
    customers: int
    avg_monetary: float
    avg_recency_days: float
    avg_frequency: float
    total_monetary: float
    yours: int | None


@dataclass(frozen=True)
class TopAccount:
    """An account in a segment, for the "which of mine are in it" part of the answer."""

    customer_id: int
    name: str
    monetary: float


@dataclass(frozen=True)
class SegmentSummary:
    """Counts and values per RFM segment.

    Attributes:
        segments: Largest first (or the one segment asked for).
        total_customers: Customers segmented in all.
        scope: ``"own"``, ``"team"`` or ``"all"``.
        asked: The canonical segment asked for, or None for all.
        top_accounts: With a segment asked: the caller's biggest accounts in it.
    """

    segments: list[SegmentStats]
    total_customers: int
    scope: str
    asked: str | None = None
    top_accounts: list[TopAccount] = field(default_factory=list)


def segment_summary(*, session: Session, identity: Identity,
                    segment: str | None = None) -> SegmentSummary:
    """Counts and average values per RFM segment, or for one segment.

    Company-wide figures (analytics); for reps and managers each segment also says how
    many of the caller's (team's) accounts it holds, and with a segment asked, their
    biggest accounts in it.

    Args:
        session: The caller's session.
        identity: Any staff member.
        segment: A segment as the user said it (see :func:`canonical_segment`), or None.

    Raises:
        ValueError: ``segment`` is not a known RFM segment.
        Forbidden: the caller may not read analytics.
        NoData: no customer has been segmented yet.
    """
    authz.require(identity, "analytics.read")
    asked = None
    if segment is not None:
        asked = canonical_segment(segment)
        if asked is None:
            raise ValueError(f"unknown segment {segment!r}")
    scope = authz.rep_scope(identity, session=session)  # None for agents: no "yours"
    total = session.scalar(select(func.count()).select_from(m.Segment)) or 0
    if total == 0:
        raise NoData("segments")
    where: Any = true()
    if asked is not None:
        where = m.Segment.rfm_segment.in_(stored_segments(session, m.Segment.rfm_segment,
                                                          asked) or [asked])
    rows = session.execute(
        select(m.Segment.rfm_segment, func.count().label("n"),
               func.avg(m.Segment.monetary).label("mon"),
               func.avg(m.Segment.recency_days).label("rec"),
               func.avg(m.Segment.frequency).label("freq"),
               func.sum(m.Segment.monetary).label("total"))
        .where(where).group_by(m.Segment.rfm_segment)
    ).all()
    yours: dict[str, int] = {}
    top: list[TopAccount] = []
    if scope is not None:
        yours = dict(session.execute(
            select(m.Segment.rfm_segment, func.count())
            .join(m.Account, m.Account.customer_id == m.Segment.customer_id)
            .where(where, in_scope(m.Account.rep_id, scope))
            .group_by(m.Segment.rfm_segment)
        ).tuples().all())
        if asked is not None:
            top = [TopAccount(r.customer_id, r.name, float(r.monetary)) for r in session.execute(
                select(m.Segment.customer_id, m.Account.name, m.Segment.monetary)
                .join(m.Account, m.Account.customer_id == m.Segment.customer_id)
                .where(where, in_scope(m.Account.rep_id, scope))
                .order_by(m.Segment.monetary.desc(), m.Segment.customer_id).limit(5)
            ).all()]
    stats = [SegmentStats(r.rfm_segment, int(r.n), float(r.mon or 0), float(r.rec or 0),
                          float(r.freq or 0), float(r.total or 0),
                          yours.get(r.rfm_segment, 0) if scope is not None else None)
             for r in rows]
    stats.sort(key=lambda s: (-s.customers, s.segment))
    return SegmentSummary(stats, int(total), scope_word(identity), asked, top)


# ---------------------------------------------------------------------- forecasts


@dataclass(frozen=True)
class ForecastPoint:
    """One week of a forecast (``lower``/``upper``: the 95% interval)."""

    period_start: dt.date
    yhat: float
    lower: float
    upper: float


@dataclass(frozen=True)
class ForecastData:
    """A stored forecast and the actuals before it (for charts).

    Attributes:
        series: The series (``total``, ``country:<name>``, ``segment:<name>``).
        model_version: The forecasting model's version.
        points: The first ``weeks`` forecast weeks.
        history: ``(week start, revenue)`` of the weeks before the forecast, oldest first.
        available_weeks: How many weeks the stored forecast holds in all.
    """

    series: str
    model_version: str
    points: list[ForecastPoint]
    history: list[tuple[dt.date, float]]
    available_weeks: int


@dataclass(frozen=True)
class ForecastSummary:
    """A forecast over a horizon, in figures a rep can say.

    Attributes:
        series: The series used.
        requested_weeks: The horizon asked for.
        points: The weeks covered (fewer than asked when the forecast is shorter).
        total: Sum of the weekly forecasts.
        lower: Lower end of the 95% range of the total (sum of the weekly lower bounds).
        upper: Upper end (sum of the weekly upper bounds).
        model_version: The forecasting model's version.
        as_of: The as-of date the forecast starts from (:mod:`crm_ml.asof`): weeks
            that ended before it are left out.
        as_of_note: Why the forecast starts where it does when the as-of date is not
            the calendar date ("As of 9 December 2011, the last day of the loaded
            data."), else None.
    """

    series: str
    requested_weeks: int
    points: list[ForecastPoint]
    total: float
    lower: float
    upper: float
    model_version: str
    as_of: dt.date | None = None
    as_of_note: str | None = None

    @property
    def weeks(self) -> int:
        """Weeks covered."""
        return len(self.points)

    @property
    def lowest_week(self) -> ForecastPoint:
        """The week with the smallest forecast."""
        return min(self.points, key=lambda p: (p.yhat, p.period_start))

    @property
    def highest_week(self) -> ForecastPoint:
        """The week with the largest forecast."""
        return max(self.points, key=lambda p: (p.yhat, p.period_start))

    @property
    def extremes_in_time_order(self) -> tuple[ForecastPoint, ForecastPoint]:
        """The lowest and the highest week, the earlier one first.

        So that a sentence reads in time order: "week by week it runs from £X in
        the week of A to £Y in the week of B", A before B.
        """
        low, high = self.lowest_week, self.highest_week
        return (low, high) if low.period_start <= high.period_start else (high, low)


def forecast_series_names(*, session: Session) -> list[str]:
    """The series with a stored forecast."""
    return list(session.scalars(select(m.Forecast.series).distinct().order_by(m.Forecast.series)))


def resolve_series(*, session: Session, segment: str | None = None) -> str:
    """``segment:<stored name>`` when a forecast of that segment exists, else ``total``."""
    canonical = canonical_segment(segment) if segment else None
    if canonical is None:
        return "total"
    for name in forecast_series_names(session=session):
        if name.startswith("segment:") and canonical_segment(name[8:]) == canonical:
            return name
    return "total"


def _latest_points(session: Session, series: str) -> tuple[str, list[ForecastPoint]]:
    version = session.scalar(
        select(m.Forecast.model_version).where(m.Forecast.series == series)
        .order_by(m.Forecast.created_at.desc(), m.Forecast.id.desc()).limit(1)
    )
    if version is None:
        raise NoData("forecast")
    rows = session.execute(
        select(m.Forecast.period_start, m.Forecast.yhat, m.Forecast.lower, m.Forecast.upper)
        .where(m.Forecast.series == series, m.Forecast.model_version == version)
        .order_by(m.Forecast.period_start)
    ).all()
    return version, [ForecastPoint(r.period_start, float(r.yhat), float(r.lower), float(r.upper))
                     for r in rows]


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def weekly_actuals(*, session: Session, series: str, before: dt.date,
                   weeks: int = 52) -> list[tuple[dt.date, float]]:
    """Weekly sales revenue of a series in the ``weeks`` weeks before ``before``.

    Weeks are aligned on ``before`` (each starts ``7 * k`` days before it), so that
    they line up with the forecast weeks. Weeks without sales count as zero.
    """
    start = before - dt.timedelta(days=7 * weeks)
    day = func.date(m.Order.invoiced_at)
    stmt = (select(day.label("day"), func.sum(m.Order.total).label("revenue"))
            .where(m.Order.kind == "sale",
                   m.Order.invoiced_at >= dt.datetime.combine(start, dt.time()),
                   m.Order.invoiced_at < dt.datetime.combine(before, dt.time())))
    if series.startswith("country:"):
        stmt = stmt.where(m.Order.country == series[8:])
    elif series.startswith("segment:"):
        canonical = canonical_segment(series[8:]) or series[8:]
        stored = stored_segments(session, m.Segment.rfm_segment, canonical) or [series[8:]]
        stmt = stmt.join(m.Segment, m.Segment.customer_id == m.Order.customer_id).where(
            m.Segment.rfm_segment.in_(stored))
    buckets = [0.0] * weeks
    for row in session.execute(stmt.group_by(day)).all():
        ago = (before - _as_date(row.day)).days
        index = (ago - 1) // 7
        if 0 <= index < weeks:
            buckets[index] += float(row.revenue or 0)
    return [(before - dt.timedelta(days=7 * (k + 1)), buckets[k]) for k in reversed(range(weeks))]


def forecast_series(*, session: Session, series: str = "total", weeks: int = 13,
                    history_weeks: int = 52) -> ForecastData:
    """The latest stored forecast of ``series`` (first ``weeks`` weeks) and recent actuals.

    Aggregate figures for charts, without identity: callers decide who may see them.

    Raises:
        NoData: no forecast of that series is stored.
    """
    version, points = _latest_points(session, series)
    if not points:
        raise NoData("forecast")
    history = weekly_actuals(session=session, series=series, before=points[0].period_start,
                             weeks=max(0, min(history_weeks, 156)))
    return ForecastData(series, version, points[:max(1, weeks)], history, len(points))


def sales_forecast(*, session: Session, identity: Identity, weeks: int = 13,
                   series: str | None = None, segment: str | None = None) -> ForecastSummary:
    """The revenue forecast over the next ``weeks`` weeks, with its 95% range.

    The range of the total is the sum of the weekly bounds: exact if the weekly
    errors move together, wider than needed if they are independent, so it errs
    on the cautious side.

    Args:
        session: The caller's session.
        identity: Any staff member.
        weeks: Horizon, 1..52.
        series: The series; default ``total``, or the segment's series when given.
        segment: A segment as the user said it; its own forecast when one is stored
            (``ForecastSummary.series`` tells which series was used).

    Raises:
        ValueError: ``weeks`` is outside 1..52.
        Forbidden: the caller may not read analytics.
        NoData: no forecast is stored.
    """
    if not 1 <= weeks <= 52:
        raise ValueError("weeks must be between 1 and 52")
    authz.require(identity, "analytics.read")
    series = series or resolve_series(session=session, segment=segment)
    version, points = _latest_points(session, series)
    info = asof.as_of(session)
    # The forecast starts from the as-of date: weeks that ended before it are the past.
    current = [p for p in points if _as_date(p.period_start) + dt.timedelta(days=6) >= info.day]
    chosen = current[:weeks]
    if not chosen:
        raise NoData("forecast")
    return ForecastSummary(series, weeks, chosen, sum(p.yhat for p in chosen),
                           sum(p.lower for p in chosen), sum(p.upper for p in chosen), version,
                           info.day, info.note)
