"""The models' report: held-out metrics beside the papers' figures, with pictures.

Everything comes from the registry's metadata of the versions in use
(``models/<name>/LATEST``), or, for a model missing there, from its newest
``model_runs`` row in the CRM: nothing is retrained.

- :func:`collect_metrics` gives the JSON of ``crm-ml report --format json``, in
  DESIGN.md's shape (contract)::

      lead_scoring.<dataset>.{auc,accuracy,precision,recall,f1,brier}
      churn.{auc,accuracy,precision,recall,f1}
      sentiment.{accuracy,macro_f1,negative_recall,negative_precision}
      forecast.{rmse,mape,mase,interval_coverage,seasonal_naive_mape}
      recommendations.{precision_at_10,recall_at_10,popularity_precision_at_10}
      segmentation.{k,silhouette,segment_counts}

  A model never trained gives ``null``.
- :func:`render_html` and :func:`render_markdown` write the full report.

Pictures are drawn from what the metadata holds and skipped when it is absent:
the elbow and silhouette curves and the segment sizes (segmentation), the
backtest against the actuals (``backtest.csv`` beside the forecast artifact),
and, for classifiers, a calibration curve and a confusion matrix when their
metadata has them. Any ``params`` or ``metrics`` entry (at any depth) named
``calibration`` or ``calibration_curve`` holding ``prob_pred``/``prob_true``
(or ``mean_predicted``/``fraction_positive``) lists, and any entry named
``confusion_matrix`` or ``confusion`` holding a square list of lists (or
``{"labels": [...], "matrix": [[...]]}``) is drawn, titled by its path.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crm_ml.charts import (
    calibration_png,
    cluster_sizes_png,
    confusion_png,
    elbow_png,
    segment_sizes_png,
)
from crm_ml.report_helpdesk import helpdesk_figures, helpdesk_rows
from crm_ml.report_papers import PAPER_FIGURES, PaperFigure
from crm_ml.report_pictures import MODEL_PICTURES
from crm_ml.report_render import render_html, render_markdown

__all__ = [
    "KEYS",
    "PAPER_FIGURES",
    "REGISTRY_NAMES",
    "PaperFigure",
    "RunInfo",
    "Section",
    "backtest_png",
    "build_sections",
    "calibration_pngs",
    "cluster_sizes_png",
    "collect_metrics",
    "confusion_pngs",
    "elbow_png",
    "forecast_png",
    "latest_runs",
    "metrics_json",
    "render_html",
    "render_markdown",
    "segment_sizes_png",
    "write_report",
]

logger = logging.getLogger(__name__)

#: Report section -> registry name.
REGISTRY_NAMES: dict[str, str] = {
    "lead_scoring": "lead_scoring",
    "churn": "churn",
    "sentiment": "sentiment",
    "forecast": "forecast",
    "recommendations": "recommendations",
    "segmentation": "segmentation",
    "anomalies": "anomalies",
    "next_best_action": "nba",
    "clv": "clv",
    "topics": "topics",
}

#: The contract's keys per section (lead_scoring: per dataset).
KEYS: dict[str, tuple[str, ...]] = {
    "lead_scoring": ("auc", "accuracy", "precision", "recall", "f1", "brier"),
    "churn": ("auc", "accuracy", "precision", "recall", "f1"),
    "sentiment": ("accuracy", "macro_f1", "negative_recall", "negative_precision"),
    "forecast": ("rmse", "mape", "mase", "interval_coverage", "seasonal_naive_mape"),
    "recommendations": ("precision_at_10", "recall_at_10", "popularity_precision_at_10"),
    "segmentation": ("k", "silhouette", "segment_counts"),
    "anomalies": ("precision_at_k", "recall_by_kind", "baseline_precision_at_k",
                  "baseline_recall_by_kind"),
    "next_best_action": ("ips_gain", "dr_gain", "ci_low", "ci_high", "significant",
                         "logged_value", "random_dr_value"),
    "clv": ("mae", "spearman", "top_decile_capture", "baseline_mae", "baseline_spearman",
            "baseline_top_decile_capture"),
    "topics": ("k", "coherence", "nmi_tweets", "purity_tweets", "method",
               "baseline_nmi_tweets", "baseline_purity_tweets"),
}


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class RunInfo:
    """Metadata of the version in use of one model."""

    name: str
    version: str
    trained_at: str
    metrics: dict[str, Any]
    params: dict[str, Any]
    path: Path | None


def _from_db(name: str, url: str | None) -> RunInfo | None:
    try:
        from sqlalchemy import select

        from crm_ml.db import session_scope
        from crm_ml.db.models import ModelRun

        with session_scope(url) as s:
            run = s.scalars(select(ModelRun).where(ModelRun.name == name)
                            .order_by(ModelRun.trained_at.desc(), ModelRun.id.desc())
                            .limit(1)).first()
            if run is None:
                return None
            path = Path(run.artifact_path) if run.artifact_path else None
            return RunInfo(name, run.version, run.trained_at.isoformat(timespec="seconds"),
                           dict(run.metrics or {}), dict(run.params or {}),
                           path if path and path.is_dir() else None)
    except Exception as exc:  # noqa: BLE001 - the CRM is optional for the report
        logger.debug("model_runs not readable: %s", exc)
        return None


def latest_runs(*, models_dir: Path | None = None, url: str | None = None,
                use_db: bool = True) -> dict[str, RunInfo | None]:
    """The version in use of every model (registry first, then ``model_runs``).

    Args:
        models_dir: Registry root (default: the configured ``models/``).
        url: CRM database URL, for models absent from the registry.
        use_db: Whether to look in ``model_runs`` at all.
    """
    from crm_ml import registry

    out: dict[str, RunInfo | None] = {}
    for section, name in REGISTRY_NAMES.items():
        info = None
        try:
            art = registry.latest(name, models_dir=models_dir)
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("registry metadata of %s unreadable: %s", name, exc)
            art = None
        if art is not None:
            info = RunInfo(name, art.version, art.trained_at, art.metrics, art.params, art.path)
        elif use_db:
            info = _from_db(name, url)
        out[section] = info
    return out


def _pick(metrics: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: metrics.get(k) for k in keys}


def collect_metrics(*, models_dir: Path | None = None, url: str | None = None,
                    runs: dict[str, RunInfo | None] | None = None) -> dict[str, Any]:
    """The held-out metrics of every model, in DESIGN.md's JSON shape.

    Args:
        models_dir: Registry root.
        url: CRM database URL (fallback to ``model_runs``).
        runs: Already read runs (default: :func:`latest_runs`).

    Returns:
        ``{section: {...} or None}`` for the six sections of :data:`KEYS`.
    """
    given = runs is not None
    runs = runs if runs is not None else latest_runs(models_dir=models_dir, url=url)
    out: dict[str, Any] = {}
    for section, keys in KEYS.items():
        run = runs.get(section)
        if run is None:
            out[section] = None
            continue
        if section == "lead_scoring":
            out[section] = {ds: _pick(m, keys) for ds, m in sorted(run.metrics.items())
                            if isinstance(m, dict)}
        else:
            out[section] = _pick(run.metrics, keys)
    if not given:  # the CRM's own figures, beside the models'
        out["helpdesk"] = helpdesk_figures(url)
    return out


# ---------------------------------------------------------------------------- charts


def backtest_png(path: Path | None) -> bytes | None:
    """The forecast backtest against actuals, from the artifact's CSV files."""
    if path is None or not (path / "backtest.csv").is_file():
        return None
    import pandas as pd

    from crm_ml.charts import backtest_png as draw

    detail = pd.read_csv(path / "backtest.csv", parse_dates=["origin", "week"])
    history = None
    if (path / "history.csv").is_file():
        hist = pd.read_csv(path / "history.csv", parse_dates=["week"]).set_index("week")
        history = hist.iloc[:, 0]
        history = history[history.index < detail["week"].min()]
    return draw(detail, history)


def forecast_png(path: Path | None) -> bytes | None:
    """The stored 13-week forecast of the total, from the artifact's CSV files."""
    if path is None or not (path / "forecast.csv").is_file():
        return None
    import pandas as pd

    from crm_ml.forecasting import forecast_chart_png

    rows = pd.read_csv(path / "forecast.csv", parse_dates=["week"])
    fc = rows[rows["series"] == "total"].set_index("week")[["yhat", "lower", "upper"]]
    if fc.empty:
        return None
    history = pd.Series(dtype=float)
    if (path / "history.csv").is_file():
        hist = pd.read_csv(path / "history.csv", parse_dates=["week"]).set_index("week")
        history = hist.iloc[:, 0]
    return forecast_chart_png(history, fc, weeks=len(fc), title="Forecast: next 13 weeks")


def _walk(obj: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            sub = f"{path}.{k}" if path else str(k)
            yield sub, str(k), v
            yield from _walk(v, sub)


def calibration_pngs(run: RunInfo) -> list[tuple[str, bytes]]:
    """Calibration curves found in a run's metadata (see the module docstring)."""
    out = []
    for path, key, value in _walk({"params": run.params, "metrics": run.metrics}):
        if key not in ("calibration", "calibration_curve") or not isinstance(value, dict):
            continue
        pred = value.get("prob_pred") or value.get("mean_predicted")
        true = value.get("prob_true") or value.get("fraction_positive")
        if not (isinstance(pred, list) and isinstance(true, list) and len(pred) == len(true)):
            continue
        label = _label(run.name, path)
        out.append((f"calibration {label}",
                    calibration_png(pred, true, title=f"Calibration: {label}")))
    return out


def confusion_pngs(run: RunInfo) -> list[tuple[str, bytes]]:
    """Confusion matrices found in a run's metadata (see the module docstring)."""
    import numpy as np

    out = []
    for path, key, value in _walk({"params": run.params, "metrics": run.metrics}):
        if key not in ("confusion_matrix", "confusion"):
            continue
        labels = None
        if isinstance(value, dict):
            labels, value = value.get("labels"), value.get("matrix")
        try:
            mat = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            continue
        if mat.ndim != 2 or mat.shape[0] != mat.shape[1] or mat.shape[0] < 2:
            continue
        labels = [str(v) for v in labels] if labels and len(labels) == len(mat) else \
            [str(i) for i in range(len(mat))]
        label = _label(run.name, path)
        out.append((f"confusion {label}", confusion_png(mat, labels, title=f"Confusion: {label}")))
    return out


def _label(name: str, path: str) -> str:
    parts = [p for p in path.split(".") if p not in ("params", "metrics", "calibration",
                                                     "calibration_curve", "confusion_matrix",
                                                     "confusion")]
    return " ".join([name, *parts]).replace("_", " ")


# ---------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Section:
    """One model's part of the report."""

    key: str
    title: str
    run: RunInfo | None
    rows: list[tuple[str, str, str]]  # metric, ours, paper
    notes: list[str]
    images: list[tuple[str, bytes]]


_TITLES = {
    "lead_scoring": "Lead scoring", "churn": "Churn (no purchase in the next 90 days)",
    "sentiment": "Sentiment (3 classes)", "forecast": "Weekly revenue forecast",
    "recommendations": "Recommendations", "segmentation": "Segmentation",
    "anomalies": "Unusual orders (injected anomalies in a held-out period)",
    "next_best_action": "Next-best-action (offline bandit, off-policy estimates)",
    "clv": "Customer lifetime value (spend in the 6 months after a cutoff)",
    "topics": "Complaint topics (agreement with the tweets' labelled negative reasons)",
}


def _fmt(value: Any, key: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v:,}" if isinstance(v, int) else f"{k}: {v}"
                         for k, v in value.items())
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if key in ("mape", "seasonal_naive_mape"):
            return f"{value:.1f}%"
        if key == "rmse":
            return f"{value:,.0f}"
        return f"{value:.3f}"
    return html.escape(str(value))


def _paper_for(section: str, key: str) -> str:
    hits = [p for p in PAPER_FIGURES if p.section == section and p.metric == key]
    return "; ".join(p.label for p in hits)


def build_sections(runs: dict[str, RunInfo | None]) -> list[Section]:
    """Turn the runs into report sections (metrics, paper figures, pictures, notes)."""
    metrics = collect_metrics(runs=runs)
    sections = []
    for key, title in _TITLES.items():
        run = runs.get(key)
        rows: list[tuple[str, str, str]] = []
        notes: list[str] = []
        images: list[tuple[str, bytes]] = []
        values = metrics.get(key)
        if key == "lead_scoring" and values:
            for ds, m in values.items():
                for k, v in m.items():
                    rows.append((f"{ds} {k}", _fmt(v, k), _paper_for(key, k)))
        elif values:
            for k, v in values.items():
                rows.append((k, _fmt(v, k), _paper_for(key, k)))
        for p in PAPER_FIGURES:
            if p.section == key and p.metric is None:
                notes.append(f"Literature: {p.label}.")
        if run is not None:
            images += _images(key, run)
            notes += _notes(key, run)
        sections.append(Section(key, title, run, rows, notes, images))
    return sections


def _images(key: str, run: RunInfo) -> list[tuple[str, bytes]]:
    images: list[tuple[str, bytes]] = []

    def add(caption: str, png: bytes | None) -> None:
        if png:
            images.append((caption, png))

    try:
        if key == "segmentation":
            add("elbow and silhouette", elbow_png({**run.params, "chosen_k": run.metrics.get("k")}))
            add("segment sizes", segment_sizes_png(run.metrics.get("segment_counts") or {}))
            add("clusters", cluster_sizes_png(run.params.get("profiles") or []))
        elif key == "forecast":
            add("backtest: forecasts and 95% intervals against actuals", backtest_png(run.path))
            add("forecast of the next 13 weeks", forecast_png(run.path))
        elif key in MODEL_PICTURES:
            for caption, png in MODEL_PICTURES[key](run):
                add(caption, png)
        images += calibration_pngs(run)
        images += confusion_pngs(run)
    except Exception:  # noqa: BLE001 - a picture must not sink the report
        logger.exception("report: pictures of %s failed", key)
    return images


def _notes(key: str, run: RunInfo) -> list[str]:
    p, notes = run.params, []
    if key == "forecast":
        notes.append("MAPE is per week over 52 held-out weeks (13 origins x 4 weeks); the "
                     "literature's 4.8% is not measured on weekly data of a two-year series, "
                     "so the comparable yardstick is the seasonal-naive MAPE measured in the "
                     "same backtest (MASE < 1 beats it).")
        series = p.get("series") or {}
        if series:
            notes.append("Orders chosen by AIC: " + ", ".join(
                f"{k} ({','.join(str(x) for x in v.get('order', []))})"
                for k, v in series.items()) + ".")
    elif key == "recommendations":
        ev = p.get("evaluation") or {}
        if ev:
            notes.append(
                f"Temporal split at {ev.get('cutoff')}: {ev.get('customers', 0):,} customers "
                f"who bought new items in the next {ev.get('horizon_days')} days; already-bought "
                f"items excluded. Best sellers of the customer's RFM segment: precision@10 "
                f"{ev.get('segment_precision_at_10')}; recent best sellers recall@10 "
                f"{ev.get('popularity_recall_at_10')}.")
    elif key == "segmentation":
        if p.get("elbow_k") is not None:
            notes.append(f"Elbow at k={p['elbow_k']}; k={run.metrics.get('k')} has the best "
                         f"silhouette among the elbow and its neighbours.")
        for prof in p.get("profiles") or []:
            notes.append(f"Cluster {prof['cluster']} '{prof['name']}': {prof['size']:,} customers, "
                         f"recency {prof['recency_days']:.0f} d, {prof['frequency']:.1f} orders, "
                         f"£{prof['monetary']:,.0f}; mostly {prof['top_segment']}.")
    if "seconds" in p:
        notes.append(f"Training took {p['seconds']} s.")
    return notes


def write_report(fmt: str = "html", output: Path | None = None, *,
                 models_dir: Path | None = None, url: str | None = None) -> Path:
    """Write the report (``html`` or ``md``) and return its path.

    Args:
        fmt: ``html`` (self-contained) or ``md`` (pictures beside it in ``figures/``).
        output: File to write (default: ``reports/report.<ext>`` in the project).
        models_dir: Registry root.
        url: CRM database URL (fallback to ``model_runs``).
    """
    from crm_ml.config import PROJECT_ROOT

    fmt = {"markdown": "md"}.get(fmt.lower(), fmt.lower())
    if fmt not in ("html", "md"):
        raise ValueError(f"unknown report format {fmt!r}: html, md or json")
    output = Path(output) if output else PROJECT_ROOT / "reports" / f"report.{fmt}"
    output.parent.mkdir(parents=True, exist_ok=True)
    sections = build_sections(latest_runs(models_dir=models_dir, url=url))
    figures = helpdesk_figures(url)
    if figures is not None:
        rows, notes, images = helpdesk_rows(figures)
        sections.append(Section("helpdesk", "Helpdesk (first response, resolution, "
                                "containment, CSAT)", None, rows, notes, images))
    if fmt == "html":
        text = render_html(sections)
    else:
        text = render_markdown(sections, output.parent / "figures")
    output.write_text(text, encoding="utf-8")
    logger.info("report written to %s", output)
    return output


def metrics_json(*, models_dir: Path | None = None, url: str | None = None) -> str:
    """The JSON text of ``crm-ml report --format json`` (one object)."""
    return json.dumps(collect_metrics(models_dir=models_dir, url=url), indent=2, default=float)
