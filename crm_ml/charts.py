"""Every chart of the project as PNG bytes, drawn with matplotlib's Agg canvas.

No pyplot: each call builds its own :class:`~matplotlib.figure.Figure`, so charts
can be drawn from several threads of a web server at once, and nothing global
(backends, open figures) is touched. matplotlib is imported on first use.

- :func:`forecast_chart` is *the* forecast chart: weekly actuals, the forecast,
  its 95% interval, and held-out actuals when given. :func:`forecast_png` draws
  it from a stored forecast (:func:`crm_ml.sales.forecast_series`: the console
  and the bot's chart links), :func:`crm_ml.forecasting.forecast_chart_png` from
  a fitted model's output (the bot's chart of any horizon, the report).
- :func:`backtest_png`: the forecast backtest against the actuals.
- :func:`elbow_png`, :func:`segment_sizes_png`, :func:`cluster_sizes_png`,
  :func:`calibration_png`, :func:`confusion_png`: the report's pictures.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from crm_ml.sales import ForecastData

__all__ = [
    "backtest_png",
    "calibration_png",
    "cluster_sizes_png",
    "confusion_png",
    "elbow_png",
    "forecast_chart",
    "forecast_png",
    "money_axis",
    "segment_sizes_png",
]

logger = logging.getLogger(__name__)

_ACTUAL = "#1f4e79"
_FORECAST = "#c55a11"

#: One forecast week: ``(week start, forecast, lower, upper)`` (the 95% interval).
Week = tuple[dt.date, float, float, float]


def money_axis(value: float, _pos: int = 0) -> str:
    """A revenue tick label: ``£850``, ``£12k``, ``£1.2m``."""
    if abs(value) >= 1_000_000:
        return f"£{value / 1_000_000:.1f}m"
    if abs(value) >= 1_000:
        return f"£{value / 1_000:.0f}k"
    return f"£{value:.0f}"


def _figure(size: tuple[float, float] = (5.0, 3.4), dpi: int = 100) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=dpi, layout="constrained")


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


# ------------------------------------------------------------------------- forecasts


def forecast_chart(history: Sequence[tuple[dt.date, float]], weeks: Sequence[Week], *,
                   title: str, actuals: Sequence[tuple[dt.date, float]] | None = None,
                   size: tuple[float, float] = (8.0, 4.0), dpi: int = 100) -> bytes:
    """Draw weekly actuals, the forecast and its shaded 95% interval.

    Args:
        history: ``(week start, revenue)`` of the weeks before the forecast, oldest first.
        weeks: The forecast weeks, ``(week start, forecast, lower, upper)``, oldest first.
        title: Chart title.
        actuals: Actual revenue over the forecast weeks, drawn when given (backtests).
        size: Figure size in inches.
        dpi: Resolution.

    Returns:
        The PNG file's bytes.
    """
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.ticker import FuncFormatter

    fig = _figure(size, dpi)
    ax = fig.add_subplot()
    if history:
        ax.plot([d for d, _ in history], [v for _, v in history], color=_ACTUAL,
                linewidth=1.6, label="actual weekly revenue")
    fx = [w[0] for w in weeks]
    ax.fill_between(fx, [w[2] for w in weeks], [w[3] for w in weeks], color=_FORECAST,
                    alpha=0.2, linewidth=0, label="95% interval")
    ax.plot(fx, [w[1] for w in weeks], color=_FORECAST, linewidth=2, marker="o",
            markersize=3, label="forecast")
    if history and weeks:  # join the two lines
        last_day, last_value = history[-1]
        ax.plot([last_day, weeks[0][0]], [last_value, weeks[0][1]], color=_FORECAST,
                linewidth=1, linestyle=":")
    if actuals:
        ax.plot([d for d, _ in actuals], [v for _, v in actuals], color=_ACTUAL,
                linewidth=1.5, linestyle="--", marker="s", markersize=3,
                label="actual (held out)")
    ax.set_title(title)
    ax.set_ylabel("revenue per week")
    ax.yaxis.set_major_formatter(FuncFormatter(money_axis))
    ax.set_ylim(bottom=min(0.0, *(w[2] for w in weeks)))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", frameon=False, fontsize="small")
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    return _png(fig)


def forecast_png(data: ForecastData, *, title: str | None = None,
                 size: tuple[float, float] = (8.0, 4.0), dpi: int = 100) -> bytes:
    """Draw a stored forecast (:func:`forecast_chart`) with the actuals before it.

    Args:
        data: What :func:`crm_ml.sales.forecast_series` returned.
        title: Chart title (default: from the series name).
        size: Figure size in inches.
        dpi: Resolution.

    Returns:
        The PNG file's bytes.
    """
    of = "" if data.series == "total" else f" of {data.series.split(':', 1)[-1]}"
    n = len(data.points)
    title = title or (f"Weekly revenue{of}, with the forecast for the next "
                      f"{n} week{'s' if n != 1 else ''}")
    return forecast_chart(data.history,
                          [(p.period_start, p.yhat, p.lower, p.upper) for p in data.points],
                          title=title, size=size, dpi=dpi)


def backtest_png(detail: pd.DataFrame, history: pd.Series | None = None, *,
                 size: tuple[float, float] = (9.0, 4.0), dpi: int = 100) -> bytes:
    """Draw backtest forecasts with intervals against the actuals and seasonal naive.

    Args:
        detail: Rows of :func:`crm_ml.forecasting.backtest` (``week, actual, yhat,
            lower, upper, naive``).
        history: Weekly revenue before the backtest, drawn for context.
        size: Figure size in inches.
        dpi: Resolution.

    Returns:
        The PNG file's bytes.
    """
    import pandas as pd
    from matplotlib.ticker import FuncFormatter

    d = detail.sort_values("week")
    weeks = pd.to_datetime(d["week"])
    fig = _figure(size, dpi)
    ax = fig.add_subplot()
    if history is not None and len(history):
        ax.plot(history.index, history.to_numpy(), color="#9db7d5", linewidth=1.2,
                label="history")
    for _origin, g in d.groupby("origin"):
        w = pd.to_datetime(g["week"])
        ax.fill_between(w, g["lower"], g["upper"], color="#c55a11", alpha=0.18, linewidth=0)
        ax.plot(w, g["yhat"], color="#c55a11", linewidth=1.6)
    ax.plot(weeks, d["actual"], color="#1f4e79", linewidth=1.6, marker="o", markersize=2.5,
            label="actual")
    ax.plot(weeks, d["naive"], color="#7f7f7f", linewidth=1, linestyle=":",
            label="seasonal naive")
    ax.plot([], [], color="#c55a11", linewidth=1.6, label="SARIMAX (4-week blocks), 95% band")
    ax.yaxis.set_major_formatter(FuncFormatter(money_axis))
    ax.set_ylim(bottom=0)
    ax.set_title("Backtest: 13 rolling origins, 4 weeks ahead each")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    return _png(fig)


# ---------------------------------------------------------------------- the report


def elbow_png(params: dict[str, Any]) -> bytes | None:
    """Inertia and silhouette over k, the elbow and the chosen k marked."""
    ks, inertias, sils = params.get("ks"), params.get("inertias"), params.get("silhouettes")
    if not (ks and inertias and sils):
        return None
    fig = _figure((6.0, 3.4))
    ax = fig.add_subplot()
    ax.plot(ks, inertias, marker="o", color="#1f4e79", label="inertia (elbow)")
    ax.set_xlabel("k")
    ax.set_ylabel("inertia")
    ax2 = ax.twinx()
    ax2.plot(ks, sils, marker="s", color="#c55a11", label="silhouette")
    ax2.set_ylabel("silhouette")
    if params.get("elbow_k") in ks:
        ax.axvline(params["elbow_k"], color="#1f4e79", linestyle=":", label="elbow")
    chosen = params.get("chosen_k")
    if chosen in ks:
        ax.axvline(chosen, color="#c55a11", linestyle="--", label="chosen k")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="upper right")
    ax.set_title("K-Means: elbow and silhouette")
    return _png(fig)


def segment_sizes_png(counts: dict[str, int]) -> bytes | None:
    """Horizontal bars of customers per RFM segment."""
    if not counts:
        return None
    names = list(counts)[::-1]
    fig = _figure((6.0, 3.8))
    ax = fig.add_subplot()
    bars = ax.barh(names, [counts[n] for n in names], color="#1f4e79")
    ax.bar_label(bars, fmt="{:,.0f}", fontsize=7, padding=2)
    ax.set_xlabel("customers")
    ax.set_title("RFM segments")
    return _png(fig)


def cluster_sizes_png(profiles: list[dict[str, Any]]) -> bytes | None:
    """Bars of customers per K-Means cluster, labelled by name."""
    if not profiles:
        return None
    fig = _figure((6.0, 2.8))
    ax = fig.add_subplot()
    names = [p["name"] for p in profiles][::-1]
    bars = ax.barh(names, [p["size"] for p in profiles][::-1], color="#c55a11")
    ax.bar_label(bars, fmt="{:,.0f}", fontsize=7, padding=2)
    ax.set_xlabel("customers")
    ax.set_title("K-Means clusters")
    return _png(fig)


def calibration_png(pred: Sequence[float], true: Sequence[float], *, title: str) -> bytes:
    """A calibration curve: observed frequency against predicted probability."""
    fig = _figure((3.6, 3.4))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="#999999", linestyle=":", label="perfect")
    ax.plot(pred, true, marker="o", color="#1f4e79", label="model")
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed frequency")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return _png(fig)


def confusion_png(matrix: Any, labels: Sequence[str], *, title: str) -> bytes:
    """A confusion matrix (actual rows, predicted columns) with its counts written in."""
    import numpy as np

    mat = np.asarray(matrix, dtype=float)
    fig = _figure((3.6, 3.2))
    ax = fig.add_subplot()
    ax.imshow(mat, cmap="Blues")
    for i in range(len(mat)):
        for j in range(len(mat)):
            ax.text(j, i, f"{mat[i, j]:,.0f}", ha="center", va="center", fontsize=8,
                    color="white" if mat[i, j] > mat.max() / 2 else "black")
    ax.set_xticks(range(len(mat)), labels, fontsize=8)
    ax.set_yticks(range(len(mat)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title, fontsize=9)
    return _png(fig)


def paired_bars_png(labels: Sequence[str], ours: Sequence[float], baseline: Sequence[float], *,
                    title: str, ours_label: str = "model", baseline_label: str = "baseline",
                    xlabel: str = "", percent: bool = True) -> bytes | None:
    """Horizontal bars of the model beside its baseline, one pair per label (recall per
    kind of injected anomaly, rank correlation and top-decile capture...)."""
    if not labels:
        return None
    import numpy as np

    fig = _figure((6.0, 0.5 + 0.45 * len(labels)))
    ax = fig.add_subplot()
    y = np.arange(len(labels))[::-1]
    fmt = "{:.0%}" if percent else "{:.2f}"
    for offset, values, label, color in ((0.2, ours, ours_label, "#1f4e79"),
                                         (-0.2, baseline, baseline_label, "#a6a6a6")):
        bars = ax.barh(y + offset, list(values), height=0.38, label=label, color=color)
        ax.bar_label(bars, fmt=fmt, fontsize=7, padding=2)
    ax.set_yticks(y, list(labels))
    if percent:
        ax.set_xlim(0, 1.15)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def interval_png(estimates: Sequence[tuple[str, float, float | None, float | None]], *,
                 title: str, xlabel: str) -> bytes | None:
    """Point estimates with their intervals, one row each: ``(label, value, low, high)``."""
    if not estimates:
        return None
    fig = _figure((6.0, 0.6 + 0.5 * len(estimates)))
    ax = fig.add_subplot()
    for row, (_label, value, low, high) in enumerate(reversed(list(estimates))):
        if low is not None and high is not None:
            ax.plot([low, high], [row, row], color="#1f4e79", linewidth=2)
        ax.plot([value], [row], "o", color="#c55a11")
        ax.annotate(f"{value:.3f}", (value, row), textcoords="offset points", xytext=(0, 6),
                    ha="center", fontsize=7)
    ax.set_yticks(range(len(estimates)), [e[0] for e in reversed(list(estimates))])
    ax.set_ylim(-0.6, len(estimates) - 0.4)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return _png(fig)


def amounts_png(amounts: Sequence[tuple[str, float]], *, title: str,
                money: bool = True) -> bytes | None:
    """Horizontal bars of amounts, one per label (actual against predicted revenue; with
    ``money=False`` counts, such as messages per topic)."""
    if not amounts:
        return None
    fig = _figure((5.5, 0.8 + 0.45 * len(amounts)))
    ax = fig.add_subplot()
    labels = [label for label, _ in amounts][::-1]
    values = [value for _, value in amounts][::-1]
    bars = ax.barh(labels, values, color="#1f4e79")
    if money:
        ax.bar_label(bars, labels=[money_axis(v) for v in values], fontsize=7, padding=2)
        ax.xaxis.set_major_formatter(money_axis)
    else:
        ax.bar_label(bars, fmt="{:,.0f}", fontsize=7, padding=2)
    ax.set_title(title)
    return _png(fig)
