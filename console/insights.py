"""What the insights page shows: read-only queries over the CRM, and small SVG charts.

Queries are keyword-only and take the caller's session (one short transaction
per page). Charts are inline SVG built here, so the page needs no JavaScript and
no image library; every label is escaped.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_ml.db import models as m

logger = logging.getLogger(__name__)

SENTIMENTS = ("negative", "neutral", "positive")
COLORS = {"negative": "#c0392b", "neutral": "#95a5a6", "positive": "#27ae60",
          "bar": "#2c6fbb", "band": "#cfe0f3", "line": "#1f4e8c", "axis": "#888"}


# --- queries ---------------------------------------------------------------------


def _day(value: Any) -> str:
    """A day as ``YYYY-MM-DD`` whether the database returns a date or a string."""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)[:10]


def segment_sizes(*, session: Session) -> list[tuple[str, int]]:
    """Customers per named RFM segment, largest first."""
    rows = session.execute(
        select(m.Segment.rfm_segment, func.count().label("n"))
        .group_by(m.Segment.rfm_segment).order_by(func.count().desc(), m.Segment.rfm_segment)
    ).all()
    return [(r.rfm_segment, int(r.n)) for r in rows]


def forecast_points(*, session: Session, series: str = "total",
                    limit: int = 26) -> list[dict[str, Any]]:
    """The newest forecast of ``series`` (the latest model version), by period."""
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


def sentiment_per_day(*, session: Session, days: int = 30) -> list[dict[str, Any]]:
    """Customers' messages per day by sentiment, for the last ``days`` days with data."""
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


def escalations_per_day(*, session: Session, days: int = 30) -> list[tuple[str, int]]:
    """Escalations opened per day, for the last ``days`` days with any."""
    day = func.date(m.Escalation.created_at).label("day")
    rows = session.execute(select(day, func.count().label("n")).group_by(day)).all()
    counts = sorted((_day(r.day), int(r.n)) for r in rows)
    return counts[-days:]


@dataclass(frozen=True)
class RepLeads:
    """A rep and their hottest leads."""

    rep_id: int
    rep: str
    handle: str
    leads: list[dict[str, Any]]


def hottest_leads_per_rep(*, session: Session, per_rep: int = 3) -> list[RepLeads]:
    """The ``per_rep`` best-scored leads of every rep, by rep."""
    rank = func.row_number().over(
        partition_by=m.Lead.rep_id, order_by=(m.LeadScore.score.desc(), m.Lead.id)
    ).label("rank")
    ranked = (
        select(m.Lead.rep_id, m.Lead.id.label("lead_id"), m.Lead.name, m.Lead.source,
               m.Lead.status, m.LeadScore.score, rank)
        .join(m.LeadScore, m.LeadScore.lead_id == m.Lead.id)
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


# --- SVG charts ------------------------------------------------------------------


def _svg(width: int, height: int, body: list[str], title: str) -> Markup:
    return Markup(
        f'<svg class="chart" role="img" aria-label="{escape(title)}" '
        f'viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMinYMin meet" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        + "".join(body) + "</svg>"
    )


def _fmt(value: float) -> str:
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    return f"{value:,.0f}"


def bar_chart(items: list[tuple[str, float]], title: str) -> Markup:
    """Horizontal bars, one per labelled value."""
    width, row, label_w = 640, 22, 170
    height = row * len(items) + 10
    top = max((v for _, v in items), default=0) or 1
    body = []
    for i, (label, value) in enumerate(items):
        y = 5 + i * row
        w = (width - label_w - 70) * value / top
        body.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" font-size="12">'
            f"{escape(label)}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" '
            f'fill="{COLORS["bar"]}"><title>{escape(label)}: {value:g}</title></rect>'
            f'<text x="{label_w + w + 5:.1f}" y="{y + 15}" font-size="12">{_fmt(value)}</text>'
        )
    return _svg(width, height, body, title)


def column_chart(days: list[str], stacks: dict[str, list[int]], title: str) -> Markup:
    """Columns per day; several series stack (colour by series name)."""
    width, height, left, bottom = 640, 200, 40, 30
    n = max(len(days), 1)
    totals = [sum(s[i] for s in stacks.values()) for i in range(len(days))]
    top = max(totals, default=0) or 1
    col = min((width - left - 10) / n, 48)
    plot_h = height - bottom - 10
    body = [f'<line x1="{left}" y1="{10 + plot_h}" x2="{width - 10}" y2="{10 + plot_h}" '
            f'stroke="{COLORS["axis"]}"/>',
            f'<text x="{left - 4}" y="18" text-anchor="end" font-size="11">{_fmt(top)}</text>',
            f'<text x="{left - 4}" y="{10 + plot_h}" text-anchor="end" font-size="11">0</text>']
    for i, day in enumerate(days):
        x = left + i * col
        y = 10 + plot_h
        for name, values in stacks.items():
            h = plot_h * values[i] / top
            if h <= 0:
                continue
            y -= h
            body.append(
                f'<rect x="{x + col * 0.1:.1f}" y="{y:.1f}" width="{col * 0.8:.1f}" '
                f'height="{h:.1f}" fill="{COLORS.get(name, COLORS["bar"])}">'
                f"<title>{escape(day)} {escape(name)}: {values[i]}</title></rect>"
            )
        if n <= 12 or i % max(n // 6, 1) == 0 or i == n - 1:
            body.append(f'<text x="{x + col / 2:.1f}" y="{height - 10}" text-anchor="middle" '
                        f'font-size="10">{escape(day[5:])}</text>')
    return _svg(width, height, body, title)


def forecast_chart(points: list[dict[str, Any]], title: str) -> Markup:
    """The forecast line with its interval as a band (when charts.py is not there)."""
    width, height, left, bottom = 640, 220, 60, 30
    if not points:
        return Markup("")
    low = min(p["lower"] for p in points)
    high = max(p["upper"] for p in points)
    span = (high - low) or 1
    plot_w, plot_h = width - left - 10, height - bottom - 10
    step = plot_w / max(len(points) - 1, 1)

    def xy(i: int, v: float) -> str:
        return f"{left + i * step:.1f},{10 + plot_h * (high - v) / span:.1f}"

    band = [xy(i, p["upper"]) for i, p in enumerate(points)]
    band += [xy(i, p["lower"]) for i, p in reversed(list(enumerate(points)))]
    line = [xy(i, p["yhat"]) for i, p in enumerate(points)]
    body = [
        f'<polygon points="{" ".join(band)}" fill="{COLORS["band"]}"/>',
        f'<polyline points="{" ".join(line)}" fill="none" stroke="{COLORS["line"]}" '
        'stroke-width="2"/>',
        f'<text x="{left - 4}" y="18" text-anchor="end" font-size="11">{_fmt(high)}</text>',
        f'<text x="{left - 4}" y="{10 + plot_h}" text-anchor="end" font-size="11">'
        f"{_fmt(low)}</text>",
        f'<text x="{left}" y="{height - 8}" font-size="10">{escape(points[0]["period"])}</text>',
        f'<text x="{width - 10}" y="{height - 8}" text-anchor="end" font-size="10">'
        f'{escape(points[-1]["period"])}</text>',
    ]
    return _svg(width, height, body, title)


def sentiment_dots(history: list[dict[str, Any]] | None, last: int = 8) -> Markup:
    """The customer's recent sentiments as coloured dots, oldest first."""
    items = [h for h in (history or []) if isinstance(h, dict)][-last:]
    body = []
    for i, h in enumerate(items):
        label = str(h.get("sentiment") or "unknown")
        conf = h.get("confidence")
        tip = f"{label} ({conf:.2f})" if isinstance(conf, (int, float)) else label
        body.append(f'<circle cx="{8 + i * 14}" cy="8" r="5" '
                    f'fill="{COLORS.get(label, COLORS["axis"])}"><title>{escape(tip)}</title>'
                    "</circle>")
    if not body:
        return Markup('<span class="muted">no sentiment yet</span>')
    return Markup(f'<svg class="dots" width="{14 * len(items) + 4}" height="16" '
                  f'role="img" aria-label="sentiment trend">{"".join(body)}</svg>')


def insights(*, session: Session, days: int = 30) -> dict[str, Any]:
    """Everything the insights page shows, with its charts."""
    segments = segment_sizes(session=session)
    forecast = forecast_points(session=session)
    sentiment = sentiment_per_day(session=session, days=days)
    escalations = escalations_per_day(session=session, days=days)
    leads = hottest_leads_per_rep(session=session)
    sentiment_days = [r["day"] for r in sentiment]
    return {
        "segments": segments,
        "segments_chart": bar_chart(segments, "Customers per segment") if segments else None,
        "forecast": forecast,
        "forecast_chart": forecast_chart(forecast, "Revenue forecast with interval"),
        "sentiment": sentiment,
        "sentiment_chart": column_chart(
            sentiment_days, {s: [r[s] for r in sentiment] for s in SENTIMENTS},
            "Customer messages per day by sentiment") if sentiment else None,
        "escalations": escalations,
        "escalations_chart": column_chart(
            [d for d, _ in escalations], {"escalations": [n for _, n in escalations]},
            "Escalations per day") if escalations else None,
        "hot_leads": leads,
    }
