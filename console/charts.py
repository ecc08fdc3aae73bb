"""Charts the assistant links to from its answers (the chat shows them as images).

* ``GET /charts/forecast.png?series=total&weeks=13``: the stored revenue forecast
  of a series (``total``, ``country:<name>``, ``segment:<name>``) over ``weeks``
  weeks (1..52), with its 95% interval and the last year of weekly actuals.

The images carry no information the text answer does not already give in words
(voice callers never see them).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response

from crm_ml import charts, sales
from crm_ml.db import session_scope
from crm_ml.errors import CRMUnavailable

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/charts", tags=["charts"])

SERIES_PATTERN = r"^(total|country:[^/\\]{1,72}|segment:[^/\\]{1,72})$"


def _render_forecast(series: str, weeks: int, history: int) -> bytes:
    with session_scope() as s:
        data = sales.forecast_series(session=s, series=series, weeks=weeks,
                                     history_weeks=history)
    return charts.forecast_png(data)


@router.get("/forecast.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}})
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
    return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=300"})
