"""The helpdesk part of ``crm-ml report``: how the team does on the CRM's conversations.

The figures are :func:`crm_ml.helpdesk_stats.report_section` over the last 30 days
(first response and resolution times, bot containment and escalation rates, CSAT),
overall and per channel; the report shows them as a table and a picture of the
containment and escalation rates per channel.
"""

from __future__ import annotations

import logging
from typing import Any

from crm_ml.charts import paired_bars_png

__all__ = ["DAYS", "helpdesk_figures", "helpdesk_rows"]

logger = logging.getLogger(__name__)

DAYS = 30
_ROWS = (("conversations", "conversations"), ("containment_rate", "bot containment rate"),
         ("escalation_rate", "escalation rate"),
         ("first_response_median_min", "first response, median minutes"),
         ("resolution_median_min", "time to resolution, median minutes"), ("csat", "CSAT"))


def helpdesk_figures(url: str | None = None) -> dict[str, Any] | None:
    """The helpdesk figures of the CRM at ``url``, or None when it cannot be read
    (not migrated yet, unreachable)."""
    from crm_ml.db.session import session_scope
    from crm_ml.helpdesk_stats import report_section

    try:
        with session_scope(url) as session:
            return report_section(session=session, days=DAYS)
    except Exception:  # noqa: BLE001 - the report goes on without this part
        logger.warning("report: no helpdesk figures (the CRM could not be read)", exc_info=True)
        return None


def _fmt(value: Any, key: str) -> str:
    if value is None:
        return "n/a"
    if key.endswith("_rate") or key == "csat":
        return f"{value:.0%}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}"


def helpdesk_rows(figures: dict[str, Any]) -> tuple[list[tuple[str, str, str]], list[str],
                                                     list[tuple[str, bytes]]]:
    """Table rows ``(metric, overall, per channel)``, notes and pictures of the figures."""
    overall = figures.get("overall") or {}
    channels = figures.get("per_channel") or []
    rows = [(label, _fmt(overall.get(key), key),
             "; ".join(f"{c.get('key')}: {_fmt(c.get(key), key)}" for c in channels))
            for key, label in _ROWS]
    notes = [f"The last {DAYS} days of the CRM's customer conversations."]
    if figures.get("note"):
        notes.append(f"CSAT: {figures['note']}.")
    images: list[tuple[str, bytes]] = []
    shown = [c for c in channels if c.get("containment_rate") is not None]
    if shown:
        png = paired_bars_png([str(c["key"]) for c in shown],
                              [c["containment_rate"] for c in shown],
                              [c.get("escalation_rate") or 0.0 for c in shown],
                              title="Bot containment and escalation per channel",
                              ours_label="contained by the bot",
                              baseline_label="escalated to a person")
        if png:
            images.append(("containment and escalation per channel", png))
    return rows, notes, images
