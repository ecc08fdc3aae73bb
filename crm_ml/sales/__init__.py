"""What sales reps and managers ask the assistant: leads, accounts, segments, forecasts.

Split like the actions that call it:

- :mod:`crm_ml.sales.leads`: hottest leads, one lead and its reasons, status
  changes, calls and notes, the pipeline summary;
- :mod:`crm_ml.sales.accounts`: one account's churn risk, RFM segment and
  products to offer, and the accounts most likely to churn;
- :mod:`crm_ml.sales.analytics`: company-wide segment summaries and the revenue
  forecast (and the figures behind its chart);
- :mod:`crm_ml.sales.common`: what the three share (errors, entity checks,
  reasons, the WHERE clauses of the caller's scope).

Every query function is keyword-only, takes the caller's session and the caller's
:class:`~crm_ml.identity.Identity`, and asks :mod:`crm_ml.authz` first: a rep sees
only their own leads and accounts, a manager their team's, an agent every
account (but no leads); customers and anonymous callers get
:class:`~crm_ml.authz.Forbidden`. SQL is built with SQLAlchemy expressions and
bound parameters only.

A lead or customer outside the caller's reach is reported exactly like one that
does not exist (:class:`LeadNotFound`, :class:`CustomerNotFound`): telling a rep
"that lead belongs to someone else" would leak that it exists.

Writes (:func:`update_lead_status`, :func:`log_interaction`) happen in the
caller's transaction, each with an ``audit_log`` entry.

Callers import from ``crm_ml.sales``; the names below are the ones other layers
may use.
"""

from __future__ import annotations

from crm_ml.sales.accounts import (
    ChurnRisk,
    CustomerSegment,
    ProductPick,
    Recommendations,
    churn_risk,
    churn_risks,
    customer_recommendations,
    customer_segment,
    never_ordered,
)
from crm_ml.sales.analytics import (
    ForecastData,
    ForecastPoint,
    ForecastSummary,
    SegmentStats,
    SegmentSummary,
    TopAccount,
    forecast_series,
    forecast_series_names,
    resolve_series,
    sales_forecast,
    segment_summary,
    weekly_actuals,
)
from crm_ml.sales.common import (
    CLOSED_STATUSES,
    INTERACTION_KINDS,
    LEAD_STATUSES,
    MAX_ID,
    RFM_SEGMENTS,
    AmbiguousLead,
    CustomerNotFound,
    LeadNotFound,
    NoData,
    Reason,
    Target,
    canonical_segment,
    interaction_kind,
    parse_id,
    parse_status,
    reasons_of,
    resolve_number,
)
from crm_ml.sales.leads import (
    LeadInfo,
    LoggedInteraction,
    Pipeline,
    StatusChange,
    StatusCount,
    explain_lead,
    find_lead,
    hot_leads,
    log_interaction,
    pipeline_summary,
    update_lead_status,
)
from crm_ml.sales.targets import NeedsChoice, aim, log_by_number

__all__ = [
    "CLOSED_STATUSES",
    "INTERACTION_KINDS",
    "LEAD_STATUSES",
    "MAX_ID",
    "RFM_SEGMENTS",
    "AmbiguousLead",
    "ChurnRisk",
    "CustomerNotFound",
    "CustomerSegment",
    "ForecastData",
    "ForecastPoint",
    "ForecastSummary",
    "LeadInfo",
    "LeadNotFound",
    "LoggedInteraction",
    "NeedsChoice",
    "NoData",
    "Pipeline",
    "ProductPick",
    "Reason",
    "Target",
    "Recommendations",
    "SegmentStats",
    "SegmentSummary",
    "StatusChange",
    "StatusCount",
    "TopAccount",
    "aim",
    "canonical_segment",
    "churn_risk",
    "churn_risks",
    "customer_recommendations",
    "customer_segment",
    "explain_lead",
    "find_lead",
    "forecast_series",
    "forecast_series_names",
    "hot_leads",
    "interaction_kind",
    "log_by_number",
    "log_interaction",
    "never_ordered",
    "parse_id",
    "parse_status",
    "pipeline_summary",
    "reasons_of",
    "resolve_number",
    "resolve_series",
    "sales_forecast",
    "segment_summary",
    "update_lead_status",
    "weekly_actuals",
]
