"""actions.insights: unusual orders, next best action and lifetime value for staff, each kept
to the caller's own accounts and leads, and refused to customers."""

from __future__ import annotations

import datetime as dt

import pytest

from actions import insights
from crm_ml.db import session_scope
from crm_ml.db.models_insights import CustomerValue, NextBestAction, UnusualActivity
from tests.actions.test_leads import crm, run, tracker  # noqa: F401 - fixture
from tests.crm_ml.test_sales import template_db  # noqa: F401 - fixture


@pytest.fixture
def scored(crm: str) -> str:  # noqa: F811
    """The seeded CRM plus the rows the anomaly, lifetime-value and next-best-action models
    write: unusual orders of 12347 (rep 2) and 12348 (rep 3)."""
    with session_scope(crm) as s:
        for invoice, cid, day, amount, score in [
                ("58000", 12347, dt.datetime(2011, 12, 11, 10, 30), 500.0, 3.5),
                ("57001", 12348, dt.datetime(2011, 12, 10, 9, 0), 9000.0, 7.0),
                ("51000", 12347, dt.datetime(2011, 10, 3, 4, 0), 80.0, 2.0)]:
            s.add(UnusualActivity(scope="order", invoice=invoice, customer_id=cid,
                                  occurred_at=day, country="France", amount=amount, quantity=10,
                                  score=score, reasons=["amount 40x the customer's median"],
                                  model_version="t1"))
        s.add(CustomerValue(customer_id=12347, prob_alive=0.93, purchases_6m=2.4, spend_6m=610.0,
                            purchases_12m=4.1, spend_12m=1040.0, avg_order_value=250.0,
                            model_version="t1"))
        s.add(NextBestAction(lead_id=410, action="cellular/early", expected_rate=0.21,
                             uplift=0.10, reasons=["the last campaign succeeded with them"],
                             model_version="t1"))
        s.add(NextBestAction(customer_id=12347, action="Call the customer with a retention "
                             "discount featuring PARTY BUNTING", reasons=["churn risk is high "
                             "(82%)"], model_version="t1"))
    return crm


def test_unusual_orders_of_a_reps_accounts_only(scored: str) -> None:
    _, said = run(insights.ActionUnusualOrders(),
                  tracker("any unusual orders this week?", "ask_unusual_orders",
                          period="this week"))
    text = said[0]
    assert text.startswith("1 unusual order among your accounts' orders in the week of"), text
    assert "order 58000 of 11 December 2011 by customer 12347, £500" in text
    assert "57001" not in text  # rep 3's customer


def test_unusual_orders_for_a_manager_and_an_empty_period(scored: str) -> None:
    _, said = run(insights.ActionUnusualOrders(),
                  tracker("unusual orders in november 2011", "ask_unusual_orders", "manager:1",
                          period="november 2011"))
    assert said[0].startswith("No unusual orders among the orders in November 2011."), said
    assert "The latest ones before that: order 51000 of 3 October 2011" in said[0]
    _, said = run(insights.ActionUnusualOrders(),
                  tracker("unusual orders in the blue moon", "ask_unusual_orders",
                          period="blue moon"))
    assert said == [{"response": "utter_business_unclear_period", "period": "blue moon"}]


def test_next_best_action_for_a_lead_and_a_customer(scored: str) -> None:
    _, said = run(insights.ActionNextBestAction(),
                  tracker("next best action for lead 410", "ask_next_best_action",
                          lead_id="410"))
    assert said == ["Next best action for lead 410, Amy Bell: Call on their mobile early in the "
                    "week (Monday or Tuesday). Expected chance of a yes: 21%, 10% above the "
                    "campaign's average. Why: the last campaign succeeded with them."]
    _, said = run(insights.ActionNextBestAction(),
                  tracker("what should I offer customer 12347", "ask_next_best_action",
                          customer_id="12347"))
    assert said[0].startswith("Next best action for customer 12347, Acme Gifts: Call the "
                              "customer with a retention discount"), said
    _, said = run(insights.ActionNextBestAction(),
                  tracker("next best action for lead 411", "ask_next_best_action",
                          lead_id="411"))
    assert said == [{"response": "utter_lead_not_found", "lead": "lead 411",
                     "whose": "your leads"}]
    _, said = run(insights.ActionNextBestAction(),
                  tracker("next best action for lead 412", "ask_next_best_action",
                          lead_id="412"))
    assert said == [{"response": "utter_no_next_action_lead"}]


def test_lifetime_value(scored: str) -> None:
    _, said = run(insights.ActionCustomerValue(),
                  tracker("whats the lifetime value of 12347", "ask_customer_value",
                          customer_id="12347"))
    assert said == ["Customer 12347, Acme Gifts: £1,450 so far over 3 orders. Predicted: £610 "
                    "in the next 6 months and £1,040 in the next 12 (about 4.1 orders); 93% "
                    "likely still active."]
    _, said = run(insights.ActionCustomerValue(),
                  tracker("lifetime value of 12349", "ask_customer_value", customer_id="12349"))
    assert "no predicted value yet" in said[0]


@pytest.mark.parametrize("action,text,intent", [
    (insights.ActionUnusualOrders(), "any unusual orders?", "ask_unusual_orders"),
    (insights.ActionComplaintTopics(), "what are customers complaining about",
     "ask_complaint_topics"),
    (insights.ActionNextBestAction(), "next best action for lead 410", "ask_next_best_action"),
    (insights.ActionCustomerValue(), "lifetime value of 12347", "ask_customer_value"),
])
def test_customers_are_refused(scored: str, action, text: str, intent: str) -> None:
    _, said = run(action, tracker(text, intent, "customer:12347", lead_id="410",
                                  customer_id="12347"))
    assert said == [{"response": "utter_not_allowed"}]


def test_the_360_shows_predicted_value_and_next_action(scored: str) -> None:
    from actions import customer360

    _, said = run(customer360.ActionCustomer360(),
                  tracker("tell me about customer 12347", "ask_customer_360",
                          customer_id="12347"))
    assert ("Value so far £1,450 over 3 orders. Predicted: £610 in the next 6 months and "
            "£1,040 in the next 12 (about 4.1 orders), 93% likely still active. Next best "
            "action: Call the customer with a retention discount featuring PARTY BUNTING "
            "(churn risk is high (82%)).") in said[0], said
