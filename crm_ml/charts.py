"""Charts as PNG bytes, drawn with matplotlib's Agg canvas.

No pyplot: each call builds its own :class:`~matplotlib.figure.Figure`, so charts
can be drawn from several threads of a web server at once, and nothing global
(backends, open figures) is touched. matplotlib is imported on first use.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from collections.abc import Sequence

from crm_ml.sales import ForecastData

logger = logging.getLogger(__name__)

_ACTUAL = "#1f4e79"
_FORECAST = "#c55a11"


def _money_axis(value: float, _pos: int) -> str:
    if abs(value) >= 1_000_000:
        return f"£{value / 1_000_000:.1f}m"
    if abs(value) >= 1_000:
        return f"£{value / 1_000:.0f}k"
    return f"£{value:.0f}"


def forecast_png(data: ForecastData, *, title: str | None = None,
                 size: tuple[float, float] = (8.0, 4.0), dpi: int = 100) -> bytes:
    """Draw recent weekly actuals, the forecast and its 95% interval.

    Args:
        data: What :func:`crm_ml.sales.forecast_series` returned.
        title: Chart title (default: from the series name).
        size: Figure size in inches.
        dpi: Resolution.

    Returns:
        The PNG file's bytes.
    """
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=size, dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    if data.history:
        hx: Sequence[dt.date] = [d for d, _ in data.history]
        ax.plot(hx, [v for _, v in data.history], color=_ACTUAL, linewidth=1.6,
                label="actual weekly revenue")
    fx = [p.period_start for p in data.points]
    ax.fill_between(fx, [p.lower for p in data.points], [p.upper for p in data.points],
                    color=_FORECAST, alpha=0.2, linewidth=0, label="95% interval")
    ax.plot(fx, [p.yhat for p in data.points], color=_FORECAST, linewidth=2,
            marker="o", markersize=3, label="forecast")
    if data.history and data.points:  # join the two lines
        last_day, last_value = data.history[-1]
        first = data.points[0]
        ax.plot([last_day, first.period_start], [last_value, first.yhat], color=_FORECAST,
                linewidth=1, linestyle=":")
    of = "" if data.series == "total" else f" of {data.series.split(':', 1)[-1]}"
    weeks = len(data.points)
    ax.set_title(title or f"Weekly revenue{of}, with the forecast for the next "
                          f"{weeks} week{'s' if weeks != 1 else ''}")
    ax.set_ylabel("revenue per week")
    ax.yaxis.set_major_formatter(FuncFormatter(_money_axis))
    ax.set_ylim(bottom=min(0.0, *(p.lower for p in data.points)))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", frameon=False, fontsize="small")
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
