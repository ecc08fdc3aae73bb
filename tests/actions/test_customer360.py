"""actions.customer360: the 360 and orders of a rep's customer, disambiguation by name,
accounts that never ordered, and the refusal to customers."""

from __future__ import annotations

from actions import customer360
from tests.actions.test_leads import crm, run, tracker  # noqa: F401 - fixture
from tests.crm_ml.test_sales import template_db  # noqa: F401 - fixture


def test_the_360_of_a_reps_customer(crm: str) -> None:  # noqa: F811
    _, said = run(customer360.ActionCustomer360(),
                  tracker("tell me about customer 12347", "ask_customer_360",
                          customer_id="12347"))
    assert said[0].startswith("Customer 12347, Acme Gifts, from France; account owner "
                              "Ben Carter. Segment: Champions. Churn risk 82%"), said
    assert "Value so far £1,450 over 3 orders" in said[0]


def test_the_last_order(crm: str) -> None:  # noqa: F811
    _, said = run(customer360.ActionCustomer360(),
                  tracker("what did 12347 order last?", "ask_customer_orders",
                          customer_id="12347"))
    assert said == ["The last order of customer 12347, Acme Gifts, is order 58000 of "
                    "11 December 2011, £500."]


def test_another_reps_customer_is_not_found(crm: str) -> None:  # noqa: F811
    _, said = run(customer360.ActionCustomer360(),
                  tracker("who is customer 12348", "ask_customer_360", customer_id="12348"))
    assert said == [{"response": "utter_customer_not_found", "customer_id": 12348,
                     "whose": "your accounts"}]


def test_no_customer_named_asks_for_a_number(crm: str) -> None:  # noqa: F811
    _, said = run(customer360.ActionCustomer360(), tracker("who is that", "ask_customer_360"))
    assert said == [{"response": "utter_ask_customer_id",
                     "example": "tell me about customer 12347"}]


def test_never_ordered_and_refusal(crm: str) -> None:  # noqa: F811
    _, said = run(customer360.ActionNeverOrdered(),
                  tracker("accounts that never ordered", "ask_never_ordered"))
    assert said == [{"response": "utter_never_ordered", "count": "1", "whose": "your accounts",
                     "shown": "1", "names": "customer 12349 (Cove Crafts)"}]
    _, said = run(customer360.ActionCustomer360(),
                  tracker("tell me about customer 12347", "ask_customer_360", "customer:12347",
                          customer_id="12347"))
    assert said == [{"response": "utter_not_allowed"}]
