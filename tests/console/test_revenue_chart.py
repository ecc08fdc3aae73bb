"""console/charts.py: the monthly revenue chart the business answers link to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from actions import business
from console.charts import router as charts_router
from crm_ml import signing
from crm_ml.config import PROJECT_ROOT, get_settings
from crm_ml.sales import business_chart
from tests.actions.test_leads import SECRET, run, tracker

CRM = PROJECT_ROOT / "var" / "crm.db"

pytestmark = pytest.mark.skipif(not CRM.is_file(), reason="var/crm.db not loaded (make load)")


@pytest.fixture
def client(env: pytest.MonkeyPatch) -> Iterator[TestClient]:
    env.setenv("CRM_DATABASE_URL", f"sqlite:///{CRM}")
    env.setenv("CRM_IDENTITY_SECRET", SECRET)
    get_settings.cache_clear()
    app = FastAPI()
    app.include_router(charts_router)
    yield TestClient(app)


def test_the_chart_a_trend_links_to_is_served(client: TestClient) -> None:
    _, said = run(business.ActionAskRevenue(),
                  tracker("revenue by month this year", "ask_revenue", time_span="this year"))
    reply = client.get(said[1]["image"].removeprefix("http://127.0.0.1:8000"))
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "image/png"
    assert reply.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert reply.headers["cache-control"] == "private, max-age=300"


def test_without_a_valid_link_the_chart_is_refused(client: TestClient) -> None:
    params = {"start": "2011-01-01", "end": "2011-12-10"}
    assert client.get(business_chart.REVENUE_CHART, params=params).status_code == 403
    # a link signed for the forecast chart does not open the revenue chart
    query = signing.sign_query(signing.FORECAST_CHART, params, SECRET)
    assert client.get(f"{business_chart.REVENUE_CHART}?{query}").status_code == 403
    query = signing.sign_query(business_chart.REVENUE_CHART, params, SECRET)
    assert client.get(f"{business_chart.REVENUE_CHART}?{query}").status_code == 200
    bad = signing.sign_query(business_chart.REVENUE_CHART,
                             {"start": "2011-12-10", "end": "2011-01-01"}, SECRET)
    assert client.get(f"{business_chart.REVENUE_CHART}?{bad}").status_code == 422
