"""How the insights page looks: small SVG charts over :mod:`crm_ml.insights`' figures.

The figures (and who may see which) come from :func:`crm_ml.insights.overview`;
this module only draws. Charts are inline SVG built here, so the page needs no
JavaScript and no image library; every label is escaped.
"""

from __future__ import annotations

import logging
from typing import Any

from markupsafe import Markup, escape

from crm_ml.insights import SENTIMENTS, Insights

__all__ = [
    "COLORS",
    "bar_chart",
    "column_chart",
    "forecast_chart",
    "helpdesk_context",
    "page_context",
    "sentiment_dots",
]

logger = logging.getLogger(__name__)

COLORS = {"negative": "#c0392b", "neutral": "#95a5a6", "positive": "#27ae60",
          "bar": "#2c6fbb", "contained": "#7fb3e0", "escalations": "#e67e22",
          "band": "#cfe0f3", "line": "#1f4e8c",
          "axis": "#888"}


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


def page_context(data: Insights) -> dict[str, Any]:
    """The insights template's context: the figures and their charts.

    ``hot_leads`` is None when the viewer may not read leads (the page says so).
    """
    segments, forecast, sentiment, escalations = (data.segments, data.forecast,
                                                  data.sentiment, data.escalations)
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
        "hot_leads": data.hot_leads,
        **helpdesk_context(data),
    }


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def _duration(minutes: float | None) -> str:
    if minutes is None:
        return "–"
    if minutes >= 1440:
        return f"{minutes / 1440:.1f} d"
    if minutes >= 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes:.0f} min"


def helpdesk_context(data: Insights) -> dict[str, Any]:
    """The helpdesk section: headline figures, a table per channel and per day, a chart.

    Rates are shown as percentages and durations as minutes, hours or days;
    ``helpdesk`` is None when there are no conversations at all.
    """
    stats = data.helpdesk
    if stats is None or not stats.overall.conversations:
        return {"helpdesk": None}

    def row(f: Any) -> dict[str, Any]:
        return {"key": f.key, "conversations": f.conversations, "escalated": f.escalated,
                "containment": _pct(f.containment_rate), "escalation": _pct(f.escalation_rate),
                "first_response": _duration(f.first_response_median_min),
                "resolution": _duration(f.resolution_median_min),
                "csat": _pct(f.csat) if f.ratings else "–", "ratings": f.ratings}

    days = stats.per_day
    chart = column_chart(
        [f.key for f in days],
        {"contained": [f.conversations - f.escalated for f in days],
         "escalations": [f.escalated for f in days]},
        "Conversations per day: contained by the bot and escalated") if days else None
    return {"helpdesk": {
        "overall": row(stats.overall),
        "channels": [row(f) for f in stats.per_channel],
        "days": [row(f) for f in reversed(days)],
        "chart": chart,
        "csat_note": None if stats.overall.ratings else "no ratings yet",
    }}
