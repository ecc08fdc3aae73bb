"""The insights page's figures: company analytics for staff, hot leads within authz's scope."""

from __future__ import annotations

import datetime as dt

import pytest

from crm_ml import insights
from crm_ml.authz import Forbidden
from crm_ml.db import models as m
from crm_ml.db import session_scope
from crm_ml.identity import Identity, parse_user

# lead id, rep, score, status: rep 1 owns 1-4 and the won/lost 6-7 (scored highest),
# rep 2 owns 5, rep 3 (another manager's team) owns 8.
LEADS = [(1, 1, 0.91, "new"), (2, 1, 0.55, "contacted"), (3, 1, 0.72, "qualified"),
         (4, 1, 0.12, "new"), (5, 2, 0.66, "new"), (6, 1, 0.99, "won"), (7, 1, 0.98, "lost"),
         (8, 3, 0.95, "new")]


def who(user: str) -> Identity:
    identity = parse_user(user)
    assert identity is not None
    return identity


@pytest.fixture
def crm(env: pytest.MonkeyPatch, sqlite_url: str) -> str:
    env.setenv("CRM_DATABASE_URL", sqlite_url)
    with session_scope() as s:
        s.add_all([m.SalesRep(id=10, handle="manager:1", name="Mia Manager", email="m@x",
                              role="manager"),
                   m.SalesRep(id=11, handle="manager:2", name="Max Manager", email="x@x",
                              role="manager")])
        s.flush()
        s.add_all([m.SalesRep(id=1, handle="rep:1", name="Rita Rep", email="r@x", role="rep",
                              manager_id=10),
                   m.SalesRep(id=2, handle="rep:2", name="Bob Rep", email="b@x", role="rep",
                              manager_id=10),
                   m.SalesRep(id=3, handle="rep:3", name="Cy Rep", email="c@x", role="rep",
                              manager_id=11)])
        s.flush()
        for lead_id, rep, score, status in LEADS:
            s.add(m.Lead(id=lead_id, source="bank", external_ref=str(lead_id),
                         name=f"Lead {lead_id}", rep_id=rep, status=status, features={}))
            s.flush()
            s.add(m.LeadScore(lead_id=lead_id, score=score, reasons=[], model_version="t"))
        s.add(m.Escalation(sender_id="web:a", channel="web", reason="asked for a human",
                           status="open", transcript=[], sentiment_history=[], context={},
                           created_at=dt.datetime(2026, 3, 10, 12, 0)))
    return sqlite_url


def _hot(user: str) -> dict[str, list[int]]:
    with session_scope() as s:
        return {r.handle: [lead["id"] for lead in r.leads]
                for r in insights.hottest_leads_per_rep(session=s, identity=who(user))}


def test_hot_leads_leave_out_won_and_lost_leads(crm: str) -> None:
    # Top 3 open leads per rep, by score: the won (0.99) and lost (0.98) leads are not hot.
    assert _hot("manager:1") == {"rep:1": [1, 3, 2], "rep:2": [5]}


def test_a_rep_sees_only_their_own_leads(crm: str) -> None:
    assert _hot("rep:1") == {"rep:1": [1, 3, 2]}
    assert _hot("rep:2") == {"rep:2": [5]}
    assert _hot("manager:2") == {"rep:3": [8]}


@pytest.mark.parametrize("user", ["agent:1", "customer:12347"])
def test_an_agent_or_customer_cannot_see_leads(crm: str, user: str) -> None:
    """authz gives agents no ``leads.read``: the insights page showed them every lead."""
    with pytest.raises(Forbidden), session_scope() as s:
        insights.hottest_leads_per_rep(session=s, identity=who(user))
    if user.startswith("agent"):
        with session_scope() as s:
            page = insights.overview(session=s, identity=who(user))
        assert page.hot_leads is None
        assert page.escalations == [("2026-03-10", 1)]  # analytics stay readable


def test_overview_for_a_manager(crm: str) -> None:
    with session_scope() as s:
        page = insights.overview(session=s, identity=who("manager:1"))
    assert [r.rep for r in page.hot_leads or []] == ["Rita Rep", "Bob Rep"]
    assert page.hot_leads[0].leads[0] == {"id": 1, "name": "Lead 1", "source": "bank",
                                          "status": "new", "score": 0.91}
    assert (page.segments, page.forecast, page.sentiment) == ([], [], [])


def test_strangers_see_no_analytics(crm: str) -> None:
    with pytest.raises(Forbidden), session_scope() as s:
        insights.overview(session=s, identity=Identity("anonymous"))
