"""crm_ml.customer360: the 360 of a customer, within the caller's accounts only."""

from __future__ import annotations

import pytest

from crm_ml import customer360, sales
from crm_ml.authz import Forbidden
from crm_ml.db import models as m
from crm_ml.db.session import session_scope
from tests.crm_ml.test_followups import template_db, url  # noqa: F401 - fixtures
from tests.crm_ml.test_sales import AGENT, CUSTOMER, MANAGER, REP2, REP3


def test_the_360_of_a_reps_account(url: str) -> None:  # noqa: F811
    with session_scope(url) as s:
        s.add(m.Ticket(kind="complaint", status="open", customer_id=12347, subject="late"))
        view = customer360.customer_360(session=s, identity=REP2, customer_id=12347)
    assert isinstance(view, customer360.Customer360)
    assert (view.name, view.owner, view.segment, view.country) == (
        "Acme Gifts", "Ben Carter", "Champions", "France")
    assert view.churn == pytest.approx(0.82)
    assert view.churn_reasons[0].text == "no purchase for 140 days"
    assert view.orders == 3  # three sales; the cancellation counts in the value only
    assert view.value_so_far == pytest.approx(1450.0)
    assert [o.id for o in view.last_orders] == ["58000", "58003", "58001"]
    assert view.open_tickets == 1 and view.open_escalations == 0


def test_the_360_is_limited_to_the_callers_accounts(url: str) -> None:  # noqa: F811
    with session_scope(url) as s:
        with pytest.raises(sales.CustomerNotFound):
            customer360.customer_360(session=s, identity=REP3, customer_id=12347)
        with pytest.raises(Forbidden):
            customer360.customer_360(session=s, identity=CUSTOMER, customer_id=12347)
        team = customer360.customer_360(session=s, identity=MANAGER, customer_id=12347)
        agent = customer360.customer_360(session=s, identity=AGENT, customer_id=12348)
    assert team.id == 12347 and agent.id == 12348


def test_by_name_one_match_or_choices(url: str) -> None:  # noqa: F811
    with session_scope(url) as s:
        s.add(m.Customer(id=12351, name="Acme Gifts", email="x@example.com", country="Spain"))
        s.flush()
        s.add(m.Account(customer_id=12351, rep_id=2, name="Acme Gifts"))
        s.flush()
        several = customer360.customer_360(session=s, identity=REP2, name="acme  gifts")
        one = customer360.customer_360(session=s, identity=REP2, name="Cove Crafts")
        none = customer360.customer_360(session=s, identity=REP2, name="Bolt Ltd")
    assert several == customer360.CustomerChoices(
        "acme gifts", [(12347, "Acme Gifts", "France"), (12351, "Acme Gifts", "Spain")])
    assert isinstance(one, customer360.Customer360) and one.id == 12349
    assert none == customer360.CustomerChoices("Bolt Ltd", [])
