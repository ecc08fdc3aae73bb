"""crm_ml.queries: the customer-base figures, for staff only."""

from __future__ import annotations

import datetime as dt

import pytest

from crm_ml import queries
from crm_ml.authz import Forbidden
from crm_ml.db import models as m
from crm_ml.db import session_scope
from crm_ml.identity import ANONYMOUS, Identity


@pytest.fixture
def crm(sqlite_url: str) -> str:
    with session_scope(sqlite_url) as s:
        s.add_all([
            m.Customer(id=1, name="A", email="a@x.test", country="Iceland", anonymized=False),
            m.Customer(id=2, name="B", email="b@x.test", country="Malta", anonymized=False),
        ])
        s.flush()
        s.add(m.Order(id="9", customer_id=1, invoiced_at=dt.datetime(2011, 1, 1),
                      country="Iceland", kind="sale", status="delivered", total=3))
    return sqlite_url


@pytest.mark.parametrize("who", [Identity("rep", 2), Identity("manager", 1),
                                 Identity("agent", 1)])
def test_staff_read_the_customer_base(crm: str, who: Identity) -> None:
    with session_scope(crm) as s:
        stats = queries.customer_base_stats(session=s, identity=who)
    assert stats == queries.CustomerBaseStats(customers=2, active_customers=1, countries=2,
                                              orders=1)


@pytest.mark.parametrize("who", [ANONYMOUS, Identity("customer", 1)])
def test_customers_and_visitors_are_refused(crm: str, who: Identity) -> None:
    with session_scope(crm) as s, pytest.raises(Forbidden):
        queries.customer_base_stats(session=s, identity=who)
