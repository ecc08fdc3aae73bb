"""console.tasks_page: a rep's open follow-ups, signed by headers; others are refused."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from crm_ml import followups
from crm_ml.db import models as m
from crm_ml.db.session import session_scope
from crm_ml.identity import Identity
from tests.console.conftest import signed


@pytest.fixture
def tasks_client(crm: str) -> Iterator[TestClient]:
    from console import tasks_page
    from console.app import create_app

    app = create_app()
    app.include_router(tasks_page.router)  # what console/app.py is to do
    with session_scope(crm) as s:
        s.add(m.SalesRep(id=2, handle="rep:2", name="Ben Carter", email="b@example.com",
                         role="rep"))
        s.add(m.SalesRep(id=3, handle="rep:3", name="Chloe Park", email="c@example.com",
                         role="rep"))
        s.flush()
        s.add(m.Lead(id=412, source="x_education", external_ref="412", name="Amy Bell",
                     rep_id=2, status="new", features={}))
        s.flush()
        followups.remind(session=s, identity=Identity("rep", 2), number=412,
                         message="call 412 tomorrow at 10", today=dt.date(2011, 12, 9))
    with TestClient(app, follow_redirects=False) as c:
        yield c


def test_a_rep_sees_their_follow_ups(tasks_client: TestClient) -> None:
    page = tasks_client.get("/tasks", headers=signed("rep:2"))
    assert page.status_code == 200
    assert "call lead 412, Amy Bell" in page.text
    assert "Sat 10 Dec 2011 10:00" in page.text and 'class="due"' in page.text


def test_another_rep_sees_none_and_others_are_refused(tasks_client: TestClient) -> None:
    other = tasks_client.get("/tasks", headers=signed("rep:3"))
    assert other.status_code == 200 and "Amy Bell" not in other.text
    assert tasks_client.get("/tasks").status_code == 401
    assert tasks_client.get("/tasks", headers=signed("customer:12347")).status_code == 403
