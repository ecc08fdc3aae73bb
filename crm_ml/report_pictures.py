"""The report's pictures of the papers' remaining models, each beside its baseline.

:data:`MODEL_PICTURES` maps a report section to a function of its run (the
:class:`crm_ml.report.RunInfo` of the latest training) returning ``(caption, png)``
pairs drawn from the run's metrics and parameters: recall per kind of injected
anomaly (Isolation Forest against robust z), the bandit's policy values with the DR
interval, and lifetime value's rank correlation, top-decile capture and revenue.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crm_ml.charts import amounts_png, interval_png, paired_bars_png

__all__ = ["MODEL_PICTURES"]


def _anomaly_pictures(run: Any) -> list[tuple[str, bytes | None]]:
    ours, base = run.metrics.get("recall_by_kind") or {}, run.metrics.get(
        "baseline_recall_by_kind") or {}
    kinds = [k.replace("_", " ") for k in ours]
    return [("recall per kind of injected anomaly: Isolation Forest and robust z",
             paired_bars_png(kinds, list(ours.values()), [base.get(k, 0.0) for k in ours],
                             title="Injected anomalies found in the top k",
                             ours_label="Isolation Forest", baseline_label="robust z"))]


def _nba_pictures(run: Any) -> list[tuple[str, bytes | None]]:
    m = run.metrics
    logged = m.get("logged_value")
    if logged is None or m.get("dr_gain") is None:
        return []
    low = logged + m["ci_low"] if m.get("ci_low") is not None else None
    high = logged + m["ci_high"] if m.get("ci_high") is not None else None
    rows = [("logged policy", logged, None, None),
            ("uniformly random (DR)", m.get("random_dr_value") or 0.0, None, None),
            ("our policy (IPS)", logged + (m.get("ips_gain") or 0.0), None, None),
            ("our policy (DR, 95% CI)", logged + m["dr_gain"], low, high)]
    return [("subscription rate per contact, off-policy on held-out contacts",
             interval_png(rows, title="Next-best-action: estimated policy values",
                          xlabel="subscription rate"))]


def _clv_pictures(run: Any) -> list[tuple[str, bytes | None]]:
    m = run.metrics
    if m.get("spearman") is None:
        return []
    pictures = [("rank correlation and top-decile capture: model and baseline",
                 paired_bars_png(["Spearman rank correlation", "revenue captured by top 10%"],
                                 [m["spearman"], m.get("top_decile_capture") or 0.0],
                                 [m.get("baseline_spearman") or 0.0,
                                  m.get("baseline_top_decile_capture") or 0.0],
                                 title="Who will spend: BG/NBD + Gamma-Gamma vs history",
                                 ours_label="BG/NBD + Gamma-Gamma",
                                 baseline_label="historical rate"))]
    info = run.params.get("evaluation") or {}
    if info.get("holdout_revenue") is not None:
        amounts = [(label, float(info[key])) for label, key in (
            ("actual", "holdout_revenue"), ("BG/NBD + Gamma-Gamma", "predicted_revenue"),
            ("historical rate", "baseline_revenue")) if info.get(key) is not None]
        pictures.append(("held-out revenue: actual, predicted and the baseline's",
                         amounts_png(amounts, title=f"Revenue {info.get('cutoff', '')} to "
                                                    f"{info.get('end', '')}")))
    return pictures


def _topic_pictures(run: Any) -> list[tuple[str, bytes | None]]:
    m, labels, sizes = run.metrics, run.params.get("labels") or [], run.params.get("sizes") or []
    pictures: list[tuple[str, bytes | None]] = []
    if labels and sizes:
        pictures.append(("messages per topic (all that customers wrote)", amounts_png(
            list(zip(labels, [float(x) for x in sizes], strict=False)),
            title="Complaint topics", money=False)))
    if m.get("nmi_tweets") is not None:
        pictures.append(("agreement with the tweets' negative reasons: topics and random",
                         paired_bars_png(["NMI", "purity"],
                                         [m["nmi_tweets"], m.get("purity_tweets") or 0.0],
                                         [m.get("baseline_nmi_tweets") or 0.0,
                                          m.get("baseline_purity_tweets") or 0.0],
                                         title=f"Topics ({m.get('method')}, k={m.get('k')}) "
                                               "against labelled reasons",
                                         ours_label="topics", baseline_label="random topics")))
    return pictures


#: Report section -> its pictures.
MODEL_PICTURES: dict[str, Callable[[Any], list[tuple[str, bytes | None]]]] = {
    "anomalies": _anomaly_pictures, "next_best_action": _nba_pictures, "clv": _clv_pictures,
    "topics": _topic_pictures}
