"""The agents' HTTP API: reply and resolve through crm_ml.handoff, then the Rasa server."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from crm_ml.db import models as m
from crm_ml.db import session_scope
from tests.console.conftest import signed

AGENT = "agent:3"


@pytest.fixture
def escalation(crm: str) -> int:
    with session_scope(crm) as s:
        esc = m.Escalation(sender_id="web:cust", channel="web", reason="asked for a human",
                           status="open", sentiment="neutral", transcript=[],
                           sentiment_history=[], context={},
                           created_at=dt.datetime(2026, 3, 10, 12, 0))
        s.add(esc)
        s.flush()
        return esc.id


def _audit(crm: str) -> list[tuple[str, str]]:
    with session_scope(crm) as s:
        return [(a.actor, a.action) for a in s.scalars(select(m.AuditLog).order_by(m.AuditLog.id))]


def test_reply_then_resolve(client: TestClient, crm: str, escalation: int,
                            handoff_calls: list) -> None:
    base = f"/api/escalations/{escalation}"
    with session_scope(crm) as s:
        s.add(m.Agent(id=3, username="sam", name="Sam Carter", password_hash="!"))
        ticket = m.Ticket(kind="handoff", subject="Customer needs a person", body="",
                          sender_id="web:cust", status="open",
                          created_at=dt.datetime(2026, 3, 10, 12, 0))
        s.add(ticket)
        s.flush()
        ticket_id = ticket.id
    r = client.post(f"{base}/reply", json={"text": "Hello"}, headers=signed(AGENT))
    assert (r.status_code, r.json()) == (200, {"delivered": "pushed",
                                               "agent_name": "Sam Carter"})
    r = client.post(f"{base}/resolve", headers=signed(AGENT))
    assert (r.status_code, r.json()) == (200, {"status": "resolved", "bot": "pushed",
                                               "tickets_closed": [ticket_id]})
    with session_scope(crm) as s:
        assert s.get(m.Ticket, ticket_id).status == "closed"
    assert handoff_calls == [("reply", {"sender_id": "web:cust", "text": "Hello",
                                         "agent": AGENT, "agent_name": "Sam Carter"}),
                             ("resume", {"sender_id": "web:cust", "agent": AGENT})]
    # Resolved: no more replies (409, nothing sent, nothing audited)...
    r = client.post(f"{base}/reply", json={"text": "late"}, headers=signed(AGENT))
    assert r.status_code == 409 and len(handoff_calls) == 2
    # ...but the API resolves again and tells the bot again, as it always did.
    assert client.post(f"{base}/resolve", headers=signed(AGENT)).status_code == 200
    assert [c[0] for c in handoff_calls] == ["reply", "resume", "resume"]
    assert _audit(crm) == [(AGENT, "reply"), (AGENT, "close_ticket"), (AGENT, "resolve"),
                           (AGENT, "resolve")]


def test_unknown_escalation_and_strangers(client: TestClient, crm: str,
                                          handoff_calls: list) -> None:
    assert client.post("/api/escalations/99/reply", json={"text": "x"},
                       headers=signed(AGENT)).status_code == 404
    assert client.post("/api/escalations/99/resolve", headers=signed(AGENT)).status_code == 404
    assert client.post("/api/escalations/1/resolve").status_code == 401
    assert client.post("/api/escalations/1/resolve", headers=signed("rep:1")).status_code == 403
    assert handoff_calls == [] and _audit(crm) == []


def test_heartbeat_counts_the_agent_online(client: TestClient, crm: str) -> None:
    r = client.post("/api/agents/heartbeat", headers=signed(AGENT))
    assert (r.status_code, r.json()) == (200, {"online": 1})
    with session_scope(crm) as s:
        assert s.get(m.Agent, 3).password_hash == "!"  # a placeholder: no password sign-in
