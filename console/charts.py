"""Charts the assistant links to from its answers (the chat shows them as images).

* ``GET /charts/forecast.png?series=total&weeks=13``: the stored revenue forecast
  of a series (``total``, ``country:<name>``, ``segment:<name>``) over ``weeks``
  weeks (1..52), with its 95% interval and the last year of weekly actuals.
* ``GET /charts/revenue.png?start=2011-01-01&end=2011-12-10&country=Germany``: net
  revenue per month of a period (``crm_ml.sales.business_chart``), the chart of
  "revenue by month this year".

The images carry no information the text answer does not already give in words
(voice callers never see them).

The forecast is staff only (``analytics.read``). A chart is served to:

* a signed-in console agent (session cookie; the insights page shows the chart);
* staff with signed ``X-CRM-User``/``X-CRM-Sig`` headers (reps, managers, agents);
* anyone holding a signed, unexpired link (:mod:`crm_ml.signing`): the assistant
  hands staff such a link in chat, and chat clients fetch it without a session.

Everyone else gets 403 (an expired link says so). Responses are ``private``: no
shared cache may keep a chart and serve it to somebody else.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from console.dependencies import staff_identity
from crm_ml import authz, charts, sales, signing
from crm_ml.config import get_settings
from crm_ml.db import session_scope
from crm_ml.errors import CRMUnavailable
from crm_ml.identity import Identity
from crm_ml.sales import business_chart

__all__ = ["DENIED", "EXPIRED", "SERIES_PATTERN", "forecast_png", "require_chart_access",
           "require_revenue_chart_access", "revenue_png", "router"]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/charts", tags=["charts"])

SERIES_PATTERN = r"^(total|country:[^/\\]{1,72}|segment:[^/\\]{1,72})$"


EXPIRED = ("This chart link has expired. Ask the assistant for the forecast again to get "
           "a fresh one, or sign in to the console.")
DENIED = "Charts are for staff: sign in to the console, or open a chart link from the assistant."


def _staff(request: Request) -> bool:
    """Whether the request comes from staff who may read analytics (headers or session)."""
    identity = staff_identity(request)
    return identity is not None and authz.allowed(identity, "analytics.read")


def require_chart_access(request: Request) -> None:
    """Let staff or a valid signed link through; 403 for everyone else.

    Raises:
        HTTPException: 403, saying whether the link expired; 503 when the CRM is down.
    """
    _check_access(request, signing.FORECAST_CHART)


def _check_access(request: Request, path: str) -> None:
    try:
        if _staff(request):
            return
    except CRMUnavailable as exc:
        logger.exception("CRM unavailable")
        raise HTTPException(503, "the CRM is unavailable, try again shortly") from exc
    params = request.query_params
    if "sig" not in params and "exp" not in params:
        raise HTTPException(403, DENIED)
    try:
        signing.verify_query(path, params.multi_items(), get_settings().identity_secret)
    except signing.LinkExpired as exc:
        raise HTTPException(403, EXPIRED) from exc
    except signing.InvalidLink as exc:
        logger.info("refused a chart link: %s", exc)
        raise HTTPException(403, "This chart link is not valid.") from exc


def _render_forecast(series: str, weeks: int, history: int) -> bytes:
    with session_scope() as s:
        data = sales.forecast_series(session=s, series=series, weeks=weeks,
                                     history_weeks=history)
    return charts.forecast_png(data)


@router.get("/forecast.png", response_class=Response,
            dependencies=[Depends(require_chart_access)],
            responses={200: {"content": {"image/png": {}}}, 403: {}})
def forecast_png(
    series: Annotated[str, Query(pattern=SERIES_PATTERN)] = "total",
    weeks: Annotated[int, Query(ge=1, le=52)] = 13,
    history: Annotated[int, Query(ge=0, le=156)] = 52,
) -> Response:
    """The forecast chart as a PNG (404 when no forecast of the series is stored)."""
    try:
        png = _render_forecast(series, weeks, history)
    except sales.NoData as exc:
        raise HTTPException(404, "no forecast of this series yet") from exc
    except CRMUnavailable as exc:
        logger.exception("CRM unavailable")
        raise HTTPException(503, "the CRM is unavailable, try again shortly") from exc
    return Response(png, media_type="image/png",
                    headers={"Cache-Control": "private, max-age=300"})


def require_revenue_chart_access(request: Request) -> None:
    """:func:`require_chart_access` for links signed for the revenue chart."""
    _check_access(request, business_chart.REVENUE_CHART)


@router.get("/revenue.png", response_class=Response,
            dependencies=[Depends(require_revenue_chart_access)],
            responses={200: {"content": {"image/png": {}}}, 403: {}})
def revenue_png(
    start: Annotated[str, Query(pattern=r"^\d{4}-\d{2}-\d{2}$")],
    end: Annotated[str, Query(pattern=r"^\d{4}-\d{2}-\d{2}$")],
    country: Annotated[str | None, Query(max_length=60)] = None,
) -> Response:
    """Net revenue per month of a period as a PNG (422 for a bad period)."""
    try:
        period = business_chart.parse_chart_query(start, end)
    except ValueError as exc:
        raise HTTPException(422, "start and end must be dates 1 day to 36 months apart") \
            from exc
    try:
        with session_scope() as s:
            png = business_chart.revenue_png(session=s, identity=Identity("agent", None),
                                             period=period, country=country)
    except CRMUnavailable as exc:
        logger.exception("CRM unavailable")
        raise HTTPException(503, "the CRM is unavailable, try again shortly") from exc
    return Response(png, media_type="image/png",
                    headers={"Cache-Control": "private, max-age=300"})
