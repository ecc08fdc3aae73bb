"""actions.analytics: churn, segments, offers and the forecast (with its chart)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from actions import analytics
from actions import crm as actions_crm
from console.charts import router as charts_router
from crm_ml import signing
from crm_ml.config import get_settings
from crm_ml.db import models as m
from crm_ml.db.session import session_scope
from crm_ml.identity import sign
from tests.actions.test_leads import (  # noqa: F401 - fixtures
    NOT_ALLOWED,
    SECRET,
    UNAVAILABLE,
    crm,
    crm_down,
    run,
    template_db,
    tracker,
)
from tests.crm_ml.test_sales import FORECAST_START


def _clear(url: str, model: type) -> None:
    with session_scope(url) as s:
        s.query(model).delete()


# --------------------------------------------------------------------------- churn


def test_churn_risks_of_a_rep(crm: str) -> None:  # noqa: F811
    events, said = run(analytics.ActionChurnRisk(), tracker("which of my accounts may churn",
                                                            "ask_churn_risk"))
    assert events == []
    assert said == ["\n".join([
        "Your accounts most likely to buy nothing in the next 90 days:",
        "1. Customer 12347, Acme Gifts: 82%, high risk, because: no purchase for 140 days "
        "and orders becoming rarer.",
    ])]  # 12349 has a score but no order: it never bought, so it cannot churn


def test_churn_risks_for_an_agent_cover_every_account(crm: str) -> None:  # noqa: F811
    _, said = run(analytics.ActionChurnRisk(), tracker("churn list", "ask_churn_risk",
                                                       "agent:1"))
    lines = said[0].split("\n")
    assert lines[0] == "Our accounts most likely to buy nothing in the next 90 days:"
    assert lines[1].startswith("1. Customer 12347, Acme Gifts: 82%")  # 12348 never ordered


def test_churn_risk_of_one_customer(crm: str) -> None:  # noqa: F811
    _, said = run(analytics.ActionChurnRisk(),
                  tracker("is customer 12347 going to churn", "ask_churn_risk",
                          customer_id="12347"))
    assert said == ["Customer 12347, Acme Gifts, has an 82% chance of buying nothing in the "
                    "next 90 days: high risk. What raises it: no purchase for 140 days and "
                    "orders becoming rarer. What lowers it: customer for 20 months."]
    _, said = run(analytics.ActionChurnRisk(),
                  tracker("churn risk for 12350", "ask_churn_risk", "rep:1",
                          customer_id="12350"))
    assert said == ["Customer 12350, Dune Home, has no churn score yet."]


def test_churn_risk_of_another_reps_customer(crm: str) -> None:  # noqa: F811
    _, said = run(analytics.ActionChurnRisk(),
                  tracker("churn risk for 12348", "ask_churn_risk", customer_id="12348"))
    assert said == [{"response": "utter_customer_not_found", "customer_id": 12348,
                     "whose": "your accounts"}]
    _, said = run(analytics.ActionChurnRisk(),
                  tracker("churn risk for 12x", "ask_churn_risk", customer_id="12x"))
    assert said == [{"response": "utter_invalid_customer_id", "customer_id": "12x",
                     "example": "churn risk for customer 12347"}]


def test_churn_without_scores_refused_and_down(crm: str,  # noqa: F811
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _, said = run(analytics.ActionChurnRisk(), tracker("churn risk", "ask_churn_risk",
                                                       "customer:12347"))
    assert said == [NOT_ALLOWED]
    _clear(crm, m.ChurnScore)
    _, said = run(analytics.ActionChurnRisk(), tracker("churn risk", "ask_churn_risk"))
    assert said == [{"response": "utter_no_churn_scores", "whose": "your accounts"}]
    with crm_down(monkeypatch, actions_crm):
        _, said = run(analytics.ActionChurnRisk(), tracker("churn risk", "ask_churn_risk"))
    assert said == [UNAVAILABLE]


# ------------------------------------------------------------------------ segments


def test_segment_of_a_customer(crm: str) -> None:  # noqa: F811
    events, said = run(analytics.ActionCustomerSegment(),
                       tracker("what segment is customer 12347 in", "ask_customer_segment",
                               customer_id="12347"))
    assert events == []
    assert said == ["Customer 12347, Acme Gifts, is in the Champions segment: last bought "
                    "2 days ago, 7 orders, £4,310 spent in total. Their scores out of 5: "
                    "recency 5, frequency 4, spending 5. In the K-Means clustering they're in "
                    "cluster 2, Big regulars."]


def test_is_a_customer_in_a_segment(crm: str) -> None:  # noqa: F811
    _, said = run(analytics.ActionCustomerSegment(),
                  tracker("is 12347 a champion", "ask_customer_segment", customer_id="12347",
                          segment="champion"))
    assert said[0].endswith(" So yes, they're Champions.")
    _, said = run(analytics.ActionCustomerSegment(),
                  tracker("is 12348 hibernating", "ask_customer_segment", "agent:1",
                          customer_id="12348", segment="hibernating"))
    assert said[0].startswith("Customer 12348, Bolt Ltd, is in the Champions segment")
    assert said[0].endswith(" So no, they're not in Hibernating.")


def test_segment_checks_and_refusals(crm: str) -> None:  # noqa: F811
    action = analytics.ActionCustomerSegment()
    _, said = run(action, tracker("what segment is this customer in", "ask_customer_segment"))
    assert said == [{"response": "utter_ask_customer_id",
                     "example": "what segment is customer 12347 in"}]
    _, said = run(action, tracker("segment of 12348", "ask_customer_segment",
                                  customer_id="12348"))
    assert said == [{"response": "utter_customer_not_found", "customer_id": 12348,
                     "whose": "your accounts"}]
    _, said = run(action, tracker("segment of 12348", "ask_customer_segment", None,
                                  customer_id="12348"))
    assert said == [NOT_ALLOWED]
    _clear(crm, m.Segment)
    _, said = run(action, tracker("segment of 12347", "ask_customer_segment",
                                  customer_id="12347"))
    assert said == ["Customer 12347, Acme Gifts, isn't in a segment yet: segments are "
                    "computed from purchases, and they have none on record or the "
                    "segmentation hasn't run yet."]


def test_segment_summary(crm: str) -> None:  # noqa: F811
    events, said = run(analytics.ActionSegmentSummary(),
                       tracker("how many customers are in each segment", "ask_segment_summary"))
    assert events == []
    assert said == ["\n".join([
        "Our 4 segmented customers, largest segment first:",
        "Champions: 2 customers, spending £7,055 on average; 1 of them yours.",
        "At Risk: 1 customer, spending £1,250 on average; 1 of them yours.",
        "Hibernating: 1 customer, spending £90.00 on average; none of them yours.",
    ])]
    _, said = run(analytics.ActionSegmentSummary(),
                  tracker("segment breakdown", "ask_segment_summary", "agent:1"))
    assert said[0].split("\n")[1] == "Champions: 2 customers, spending £7,055 on average."


def test_one_segment(crm: str) -> None:  # noqa: F811
    _, said = run(analytics.ActionSegmentSummary(),
                  tracker("how many champions do we have", "ask_segment_summary",
                          segment="champions"))
    assert said == ["The Champions segment has 2 customers, 50% of all, spending £7,055 each "
                    "on average. They last bought 4 days ago on average, with about 10 orders "
                    "each. Of these, 1 is among your accounts. Your biggest there: Acme Gifts, "
                    "customer 12347, with £4,310 spent."]
    _, said = run(analytics.ActionSegmentSummary(),
                  tracker("who is in lost", "ask_segment_summary", "manager:1",
                          segment="lost"))
    assert said == ["No customers are in the Lost segment right now."]


def test_segment_summary_problems(crm: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    _, said = run(analytics.ActionSegmentSummary(),
                  tracker("show me the vip segment", "ask_segment_summary", segment="vip"))
    assert said == [{"response": "utter_unknown_segment", "segment": "vip", "segments": (
        "Champions, Loyal, Potential Loyalists, New Customers, Promising, Need Attention, "
        "About to Sleep, At Risk, Can't Lose, Hibernating and Lost")}]
    _, said = run(analytics.ActionSegmentSummary(), tracker("rfm summary",
                                                            "ask_segment_summary", None))
    assert said == [NOT_ALLOWED]
    with crm_down(monkeypatch, actions_crm):
        _, said = run(analytics.ActionSegmentSummary(), tracker("rfm summary",
                                                                "ask_segment_summary"))
    assert said == [UNAVAILABLE]
    monkeypatch.undo()
    _clear(crm, m.Segment)
    _, said = run(analytics.ActionSegmentSummary(), tracker("rfm summary",
                                                            "ask_segment_summary"))
    assert said == [{"response": "utter_no_segments"}]


# ------------------------------------------------------------------ recommendations


def test_recommendations_for_a_customer(crm: str) -> None:  # noqa: F811
    events, said = run(analytics.ActionCustomerRecommendations(),
                       tracker("what should i offer customer 12347",
                               "ask_customer_recommendations", customer_id="12347"))
    assert events == []
    assert said == ["\n".join([
        "For customer 12347, Acme Gifts, I'd suggest these, picked from what similar "
        "customers buy:",
        "1. White hanging heart t-light holder, £2.95 each (code 85123A).",
        "2. Regency cakestand 3 tier, £12.75 each (code 22423).",
    ])]


def test_recommendation_fallbacks(crm: str) -> None:  # noqa: F811
    _, said = run(analytics.ActionCustomerRecommendations(),
                  tracker("recommend products for 12349", "ask_customer_recommendations",
                          customer_id="12349"))
    assert said == ["Customer 12349, Cove Crafts, has no picks of their own yet, so here are "
                    "the best sellers in their segment, At Risk:\n"
                    "1. Assorted colour bird ornament, £1.69 each (code 84879)."]
    _, said = run(analytics.ActionCustomerRecommendations(),
                  tracker("recommend products for 12350", "ask_customer_recommendations",
                          "manager:1", customer_id="12350"))
    assert said[0].startswith("Customer 12350, Dune Home, has no picks of their own yet, so "
                              "here are our best sellers:\n1. Party bunting, £4.95 each")
    _clear(crm, m.Recommendation)
    _, said = run(analytics.ActionCustomerRecommendations(),
                  tracker("recommend products for 12347", "ask_customer_recommendations",
                          customer_id="12347"))
    assert said == ["I have no product suggestions yet for customer 12347, Acme Gifts."]


def test_recommendations_checks(crm: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    action = analytics.ActionCustomerRecommendations()
    _, said = run(action, tracker("what to offer this customer",
                                  "ask_customer_recommendations"))
    assert said == [{"response": "utter_ask_customer_id",
                     "example": "what should I offer customer 12347"}]
    _, said = run(action, tracker("offer for 12348", "ask_customer_recommendations",
                                  customer_id="12348"))
    assert said == [{"response": "utter_customer_not_found", "customer_id": 12348,
                     "whose": "your accounts"}]
    _, said = run(action, tracker("offer for 12347", "ask_customer_recommendations",
                                  "customer:12347", customer_id="12347"))
    assert said == [NOT_ALLOWED]
    with crm_down(monkeypatch, actions_crm):
        _, said = run(action, tracker("offer for 12347", "ask_customer_recommendations",
                                      customer_id="12347"))
    assert said == [UNAVAILABLE]


# ------------------------------------------------------------------------ forecast

CHART = "http://127.0.0.1:8000/charts/forecast.png"


def chart(series: str, weeks: int) -> Any:
    """Matches the signed chart link of ``series`` and ``weeks`` (valid for 15 minutes)."""

    class SignedChart:
        def __eq__(self, other: object) -> bool:
            if not isinstance(other, dict) or set(other) != {"image"}:
                return False
            url, _, query = str(other["image"]).partition("?")
            pairs = parse_qsl(query, keep_blank_values=True)
            params = dict(pairs)
            if url != CHART or list(params) != ["series", "weeks", "exp", "sig"]:
                return False
            exp = int(params["exp"])
            signing.verify_query(signing.FORECAST_CHART, pairs, SECRET)  # raises if not
            return (params["series"], params["weeks"]) == (series, str(weeks)) and \
                abs(exp - time.time() - analytics.CHART_LINK_TTL) < 5

        def __repr__(self) -> str:
            return f"<signed {CHART}?series={series}&weeks={weeks}>"

    return SignedChart()


def test_forecast_for_the_default_quarter(crm: str) -> None:  # noqa: F811
    events, said = run(analytics.ActionSalesForecast(),
                       tracker("show me the sales forecast", "ask_sales_forecast"))
    assert events == []
    assert said == [
        "Revenue forecast for the 13 weeks from the week of 12 December 2011 to the week of "
        "5 March 2012: about £1.38 million in total, with a 95% range of £1.12 million to "
        "£1.77 million. Week by week it runs from £100 thousand, in the week of 12 December "
        "2011, to £112 thousand, in the week of 5 March 2012. As of 11 December 2011, the "
        "last day of the loaded data.",
        chart("total", 13),
    ]


def test_forecast_range_reads_in_time_order(crm: str) -> None:  # noqa: F811
    # The highest week first, the lowest later (the Christmas case): the
    # sentence still goes from the earlier week to the later one.
    with session_scope(crm) as s:
        for row in s.query(m.Forecast).filter(m.Forecast.model_version == "v2"):
            row.yhat = 200_000.0 - 10_000 * ((row.period_start - FORECAST_START).days // 7)
    _, said = run(analytics.ActionSalesForecast(),
                  tracker("forecast next 4 weeks", "ask_sales_forecast",
                          time_span="next 4 weeks"))
    assert ("Week by week it runs from £200 thousand, in the week of 12 December 2011, to "
            "£170 thousand, in the week of 2 January 2012.") in said[0]


def test_forecast_for_a_time_span(crm: str) -> None:  # noqa: F811
    _, said = run(analytics.ActionSalesForecast(),
                  tracker("sales forecast next 8 weeks", "ask_sales_forecast", "agent:1",
                          time_span="next 8 weeks"))
    assert said[0].startswith("Revenue forecast for the 8 weeks from the week of 12 December "
                              "2011 to the week of 30 January 2012: about £828 thousand")
    assert said[1] == chart("total", 8)
    _, said = run(analytics.ActionSalesForecast(),
                  tracker("projected turnover this year", "ask_sales_forecast",
                          time_span="this year"))
    assert said[0].startswith("The stored forecast only covers 14 weeks. Revenue forecast "
                              "for the 14 weeks")
    assert said[1] == chart("total", 14)
    _, said = run(analytics.ActionSalesForecast(),
                  tracker("revenue over the last 3 months", "ask_sales_forecast",
                          time_span="last 3 months"))
    assert said[0].startswith("I can only forecast ahead, so here are the next 13 weeks. "
                              "Revenue forecast for the 13 weeks")


def test_forecast_of_a_segment(crm: str) -> None:  # noqa: F811
    _, said = run(analytics.ActionSalesForecast(),
                  tracker("forecast champions next month", "ask_sales_forecast",
                          time_span="next month", segment="champions"))
    assert said == [
        "The stored forecast only covers 1 week. Revenue forecast from the Champions segment "
        "for the week of 12 December 2011: about £5,000 in total, with a 95% range of £4,000 "
        "to £6,000. As of 11 December 2011, the last day of the loaded data.",
        chart("segment:Champions", 1),
    ]
    _, said = run(analytics.ActionSalesForecast(),
                  tracker("forecast at risk next week", "ask_sales_forecast",
                          time_span="next week", segment="at risk"))
    assert said[0].startswith("I have no separate forecast for the At Risk segment, so this "
                              "is all revenue. Revenue forecast for the week of 12 December")


@pytest.mark.parametrize("span,expected", [
    ("2 years", {"response": "utter_time_span_out_of_range", "time_span": "2 years",
                 "weeks": 104}),
    ("banana", {"response": "utter_time_span_unclear", "time_span": "banana"}),
])
def test_forecast_with_a_bad_time_span(crm: str, span: str, expected: dict) -> None:  # noqa: F811
    events, said = run(analytics.ActionSalesForecast(),
                       tracker(f"forecast {span}", "ask_sales_forecast", time_span=span))
    assert (events, said) == ([], [expected])


def test_forecast_refused_missing_and_down(crm: str,  # noqa: F811
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    action = analytics.ActionSalesForecast()
    _, said = run(action, tracker("revenue forecast", "ask_sales_forecast", None))
    assert said == [NOT_ALLOWED]
    _, said = run(action, tracker("revenue forecast", "ask_sales_forecast", "customer:12347"))
    assert said == [NOT_ALLOWED]
    with crm_down(monkeypatch, actions_crm):
        _, said = run(action, tracker("revenue forecast", "ask_sales_forecast"))
    assert said == [UNAVAILABLE]
    monkeypatch.undo()
    _clear(crm, m.Forecast)
    _, said = run(action, tracker("revenue forecast", "ask_sales_forecast"))
    assert said == [{"response": "utter_no_forecast"}]


def _chart_client() -> TestClient:
    app = FastAPI()
    app.include_router(charts_router)
    return TestClient(app)


def _signed(query: dict[str, Any], *, ttl: int = 900, now: float | None = None,
            secret: str = SECRET) -> str:
    return (f"{signing.FORECAST_CHART}?"
            f"{signing.sign_query(signing.FORECAST_CHART, query, secret, ttl=ttl, now=now)}")


def _is_png(reply: Any) -> bool:
    return (reply.status_code == 200 and reply.headers["content-type"] == "image/png"
            and reply.content[:8] == b"\x89PNG\r\n\x1a\n")


def test_the_chart_the_forecast_links_to_is_served(crm: str) -> None:  # noqa: F811
    """console/charts.py serves the signed URL the action sends (as a PNG), no session."""
    client = _chart_client()
    _, said = run(analytics.ActionSalesForecast(),
                  tracker("forecast next 8 weeks", "ask_sales_forecast",
                          time_span="next 8 weeks"))
    path = said[1]["image"].removeprefix("http://127.0.0.1:8000")
    reply = client.get(path)
    assert _is_png(reply)
    assert reply.headers["cache-control"] == "private, max-age=300"


def test_the_chart_checks_its_input_behind_the_signature(crm: str) -> None:  # noqa: F811
    client = _chart_client()
    assert client.get(_signed({"series": "country:Nowhere", "weeks": 4})).status_code == 404
    assert client.get(_signed({"series": "total", "weeks": 53})).status_code == 422
    assert client.get(_signed({"series": "drop table", "weeks": 4})).status_code == 422
    staff = {"X-CRM-User": "agent:1", "X-CRM-Sig": sign("agent:1", SECRET)}
    assert client.get("/charts/forecast.png?series=country:Nowhere",
                      headers=staff).status_code == 404
    assert client.get("/charts/forecast.png?weeks=53", headers=staff).status_code == 422
    assert client.get("/charts/forecast.png?series=drop table",
                      headers=staff).status_code == 422


def test_a_valid_signed_link_is_served(crm: str) -> None:  # noqa: F811
    assert _is_png(_chart_client().get(_signed({"series": "total", "weeks": 4})))


@pytest.mark.parametrize("tamper", [
    lambda q: q.replace("series=total", "series=segment%3AChampions"),
    lambda q: q.replace("weeks=4", "weeks=13"),
    lambda q: q + "&history=156",  # a parameter the signature does not cover
    lambda q: q + "&weeks=13",  # repeated
    lambda q: q.replace("exp=", "exp=9"),  # a later expiry
    lambda q: q[:-1] + ("0" if q[-1] != "0" else "1"),  # the signature itself
    lambda q: q.replace("&sig=", "&sig=00"),
])
def test_a_tampered_link_is_refused(crm: str, tamper: Any) -> None:  # noqa: F811
    path = _signed({"series": "total", "weeks": 4})
    reply = _chart_client().get(tamper(path))
    assert reply.status_code == 403
    assert "not valid" in reply.text


def test_a_link_signed_under_another_secret_is_refused(crm: str) -> None:  # noqa: F811
    path = _signed({"series": "total", "weeks": 4}, secret="someone else's")
    assert _chart_client().get(path).status_code == 403


def test_an_expired_link_is_refused_with_a_clear_message(crm: str) -> None:  # noqa: F811
    path = _signed({"series": "total", "weeks": 4}, ttl=900, now=time.time() - 901)
    reply = _chart_client().get(path)
    assert reply.status_code == 403
    assert "expired" in reply.json()["detail"]


@pytest.mark.parametrize("query", ["", "?series=total&weeks=4", "?series=total&weeks=4&exp=9"
                                   "999999999", "?series=total&weeks=4&sig=" + "0" * 64])
def test_without_a_signature_or_session_the_chart_is_refused(crm: str,  # noqa: F811
                                                             query: str) -> None:
    reply = _chart_client().get(f"/charts/forecast.png{query}")
    assert reply.status_code == 403
    assert reply.content[:8] != b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("user, sig, allowed", [
    ("agent:1", None, True), ("rep:2", None, True), ("manager:1", None, True),
    ("customer:12347", None, False), ("agent:1", "0" * 64, False)])
def test_staff_headers_need_no_link(crm: str, user: str, sig: str | None,  # noqa: F811
                                    allowed: bool) -> None:
    headers = {"X-CRM-User": user, "X-CRM-Sig": sig or sign(user, SECRET)}
    reply = _chart_client().get("/charts/forecast.png?series=total&weeks=4", headers=headers)
    assert _is_png(reply) if allowed else reply.status_code == 403


def test_no_secret_no_links(crm: str, env: pytest.MonkeyPatch) -> None:  # noqa: F811
    """Without CRM_IDENTITY_SECRET nothing is signed, and no link is accepted."""
    assert analytics.forecast_chart_url("total", 4) is not None
    env.setenv("CRM_IDENTITY_SECRET", "")
    get_settings.cache_clear()
    assert analytics.forecast_chart_url("total", 4) is None
    forged = "/charts/forecast.png?" + "series=total&weeks=4&exp=9999999999&sig=" + \
        signing._mac("", signing.FORECAST_CHART, [("series", "total"), ("weeks", "4"),
                                                  ("exp", "9999999999")])
    assert _chart_client().get(forged).status_code == 403
