"""actions.business: the chat answers to business questions, on the loaded CRM (var/crm.db).

The CRM is only read here. Customers and anonymous callers are refused; an unknown
country or an unreadable period is asked back; answers state the as-of date.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from actions import business
from crm_ml.config import PROJECT_ROOT, get_settings
from tests.actions.test_leads import NOT_ALLOWED, SECRET, run, tracker

CRM = PROJECT_ROOT / "var" / "crm.db"
AS_OF = "As of 9 December 2011, the last day of the loaded data."

pytestmark = pytest.mark.skipif(not CRM.is_file(), reason="var/crm.db not loaded (make load)")


@pytest.fixture
def loaded(env: pytest.MonkeyPatch) -> Iterator[str]:
    env.setenv("CRM_DATABASE_URL", f"sqlite:///{CRM}")
    env.setenv("CRM_IDENTITY_SECRET", SECRET)
    env.delenv("CRM_TODAY", raising=False)
    get_settings.cache_clear()
    yield str(CRM)


def test_revenue_of_last_month(loaded: str) -> None:
    events, said = run(business.ActionAskRevenue(),
                       tracker("what was our revenue last month", "ask_revenue",
                               time_span="last month"))
    assert events == []
    assert said == ["Revenue in November 2011: £1.12 million from 2,642 orders by 1,660 "
                    f"customers (net of cancellations).\n{AS_OF}"]


def test_revenue_by_country_and_change(loaded: str) -> None:
    _, said = run(business.ActionAskRevenue(),
                  tracker("revenue by country for 2011", "ask_revenue", "manager:1"))
    lines = said[0].split("\n")
    assert lines[0].startswith("Revenue in 2011: £7.74 million")
    assert lines[1] == "By country, largest first (10 of 36):"
    assert lines[2].startswith("- United Kingdom: £6.34 million")
    _, said = run(business.ActionAskRevenue(),
                  tracker("revenue last month vs the month before", "ask_revenue",
                          time_span="last month"))
    assert "on the period before (October 2011: " in said[0]


def test_top_products_in_a_country(loaded: str) -> None:
    _, said = run(business.ActionTopProducts(),
                  tracker("top 3 products in germany in 2011", "ask_top_products",
                          country="germany"))
    lines = said[0].split("\n")
    assert lines[0] == "Top 3 products by net revenue in Germany in 2011:"
    assert lines[1].startswith("1. Regency cakestand 3 tier (code 22423): £7,484")
    assert len(lines) == 5 and lines[-1] == AS_OF


def test_revenue_of_one_product_by_name_or_code(loaded: str) -> None:
    _, said = run(business.ActionAskRevenue(),
                  tracker("revenue of regency cakestand in germany in 2011", "ask_revenue",
                          product="regency cakestand", country="germany", period="2011"))
    # the same figure as the top-products answer for Germany in 2011
    assert said[0].startswith(
        "Revenue of Regency cakestand 3 tier in Germany in 2011: £7,484"), said
    _, by_code = run(business.ActionAskRevenue(),
                     tracker("revenue of 22423 in germany in 2011", "ask_revenue",
                             product="22423", country="germany", period="2011"))
    assert by_code == said
    _, said = run(business.ActionAskRevenue(),
                  tracker("revenue of unicorn polish last month", "ask_revenue",
                          product="unicorn polish"))
    assert said == [{"response": "utter_business_which_product", "product": "unicorn polish"}]


def test_more_than_listed_at_once_is_said(loaded: str) -> None:
    _, said = run(business.ActionTopProducts(),
                  tracker("top 500 products in germany in 2011", "ask_top_products",
                          country="germany"))
    lines = said[0].split("\n")
    assert lines[0] == "Top 25 products by net revenue in Germany in 2011:"
    assert lines[-2] == ("You asked for 500; I list at most 25 at a time, so these are the "
                         "first 25.")


def test_unknown_country_and_period_are_asked_back(loaded: str) -> None:
    _, said = run(business.ActionTopProducts(),
                  tracker("top products in narnia", "ask_top_products"))
    assert said[0]["response"] == "utter_business_which_country"
    assert said[0]["country"] == "narnia"
    assert said[0]["countries"].startswith("United Kingdom, Germany, France")
    _, said = run(business.ActionAskRevenue(),
                  tracker("revenue next quarter", "ask_revenue", time_span="next quarter"))
    assert said == [{"response": "utter_business_unclear_period", "period": "next quarter"}]


def test_top_and_inactive_customers_are_the_reps(loaded: str) -> None:
    _, said = run(business.ActionTopCustomers(),
                  tracker("top 3 customers by spend", "ask_top_customers"))
    lines = said[0].split("\n")
    assert lines[0] == "Top 3 of your accounts by net spend across all the data:"
    assert lines[1].startswith("1. ") and "(customer 12931): £71,547" in lines[1]
    _, said = run(business.ActionInactiveCustomers(),
                  tracker("which customers haven't ordered in 180 days",
                          "ask_inactive_customers", time_span="180 days"))
    assert said[0].startswith("289 customers of your accounts ordered before but not since "
                              "13 June 2011.")


def test_leads_filtered(loaded: str) -> None:
    _, said = run(business.ActionLeadsFiltered(),
                  tracker("leads from bank marketing with a score above 80",
                          "ask_leads_filtered"))
    lines = said[0].split("\n")
    assert lines[0] == ("7 leads of your leads match (from bank marketing and score at "
                        "least 80%); the first 7, best score first:")
    assert all("bank marketing" in line for line in lines[1:])


@pytest.mark.parametrize("user", ["customer:12347", None])
def test_customers_are_refused(loaded: str, user: str | None) -> None:
    for action, intent in [(business.ActionAskRevenue(), "ask_revenue"),
                           (business.ActionTopProducts(), "ask_top_products"),
                           (business.ActionTopCustomers(), "ask_top_customers"),
                           (business.ActionInactiveCustomers(), "ask_inactive_customers"),
                           (business.ActionLeadsFiltered(), "ask_leads_filtered")]:
        _, said = run(action, tracker("revenue last month", intent, user))
        assert said == [NOT_ALLOWED]


def test_a_trend_comes_with_a_signed_chart(loaded: str) -> None:
    from urllib.parse import parse_qsl, urlsplit

    from crm_ml import signing
    from crm_ml.sales import business_chart

    _, said = run(business.ActionAskRevenue(),
                  tracker("revenue by month this year", "ask_revenue", time_span="this year"))
    lines = said[0].split("\n")
    assert lines[1] == "By month:"
    assert lines[2].startswith("- January 2011: £473 thousand")
    assert len(lines) == 2 + 12 + 1  # total, heading, 12 months, the as-of sentence
    link = urlsplit(said[1]["image"])
    assert link.path == business_chart.REVENUE_CHART
    pairs = parse_qsl(link.query)
    assert dict(pairs)["start"] == "2011-01-01" and dict(pairs)["end"] == "2011-12-10"
    signing.verify_query(business_chart.REVENUE_CHART, pairs, SECRET)  # raises if not
    _, said = run(business.ActionAskRevenue(),
                  tracker("revenue by country this year", "ask_revenue",
                          time_span="this year"))
    assert len(said) == 1  # no chart for a breakdown that is not a trend


def test_revenue_of_a_segment(loaded: str) -> None:
    _, said = run(business.ActionAskRevenue(),
                  tracker("revenue from champions last month", "ask_revenue",
                          time_span="last month"))
    assert said[0].startswith("Revenue from the Champions segment in November 2011: "
                              "£707 thousand from 1,466 orders")


def test_the_answer_to_which_country_completes_the_question(loaded: str) -> None:
    import json

    from rasa_sdk import Tracker

    events, said = run(business.ActionTopProducts(),
                       tracker("top 3 products in narnia", "ask_top_products"))
    assert said[0]["response"] == "utter_business_which_country"
    assert events[0]["name"] == business.PENDING_SLOT
    pending = events[0]["value"]
    assert json.loads(pending) == {"action": "action_top_products",
                                   "text": "top 3 products in narnia", "raw": "narnia"}
    reply = tracker("Germany", "inform_business")
    reply = Tracker(reply.sender_id, {business.PENDING_SLOT: pending}, reply.latest_message,
                    [], False, None, {}, "action_listen")
    events, said = run(business.ActionBusinessFollowUp(), reply)
    assert said[0].startswith("Top 3 products by net revenue in Germany across all the data:")
    assert [e["value"] for e in events if e["name"] == business.PENDING_SLOT] == [None]
    # nothing waiting: ask what the answer is for
    _, said = run(business.ActionBusinessFollowUp(), tracker("Germany", "inform_business"))
    assert said == [{"response": "utter_business_what_question"}]
