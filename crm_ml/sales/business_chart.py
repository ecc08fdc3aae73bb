"""The chart of a revenue trend ("revenue by month this year"), for the chat to show.

The chat's answer gives every month's figure in words; the chart shows the same
months as bars. The console serves it at :data:`REVENUE_CHART` (staff, or a signed
link, like the forecast chart); :func:`chart_query` gives the parameters the
link signs.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from typing import Any

from sqlalchemy.orm import Session

from crm_ml.charts import money_axis
from crm_ml.identity import Identity
from crm_ml.periods import Period
from crm_ml.sales import business

__all__ = [
    "MAX_MONTHS",
    "REVENUE_CHART",
    "chart_query",
    "parse_chart_query",
    "revenue_png",
]

logger = logging.getLogger(__name__)

REVENUE_CHART = "/charts/revenue.png"
MAX_MONTHS = 36


def chart_query(period: Period, country: str | None = None) -> dict[str, str]:
    """The query parameters of the chart of ``period`` (and ``country``)."""
    params = {"start": period.start.isoformat(), "end": period.end.isoformat()}
    if country:
        params["country"] = country
    return params


def parse_chart_query(start: str, end: str) -> Period:
    """The period of a chart link, checked (at most :data:`MAX_MONTHS` months).

    Raises:
        ValueError: not ISO dates, empty or reversed, or too long.
    """
    first, after = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    if after <= first or (after - first).days > 31 * MAX_MONTHS:
        raise ValueError("the chart covers 1 day to 36 months")
    return Period(first, after, f"{first.isoformat()} to {after.isoformat()}", "span")


def revenue_png(*, session: Session, identity: Identity, period: Period,
                country: str | None = None) -> bytes:
    """Net revenue per month of ``period`` as a PNG bar chart.

    Raises:
        Forbidden: the caller is not staff.
    """
    result = business.revenue(session=session, identity=identity, period=period,
                              country=country, group_by="month")
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig: Any = Figure(figsize=(5.6, 3.4), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    labels = [row.name[:3] + " " + row.name[-2:] for row in result.rows]  # "Nov 11"
    values = [row.figures.revenue for row in result.rows]
    ax.bar(range(len(values)), values, color="#1f4e79")
    ax.set_xticks(range(len(values)), labels, rotation=45, ha="right", fontsize=8)
    ax.yaxis.set_major_formatter(FuncFormatter(money_axis))
    where = f" in {country}" if country else ""
    ax.set_title(f"Revenue by month{where}, net of cancellations", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
