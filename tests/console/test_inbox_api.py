"""The inbox, summary and claim JSON API, signed as agents."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from crm_ml.db import models as m
from crm_ml.db import session_scope
from tests.console.conftest import signed

SAM, KIM = "agent:3", "agent:4"
T = dt.datetime(2026, 3, 10, 12, 0)


@pytest.fixture
def threads(crm: str) -> dict[str, int]:
    with session_scope(crm) as s:
        esc = m.Escalation(sender_id="web:cust", channel="web", reason="asked for a human",
                           status="ticket", sentiment="negative", transcript=[],
                           sentiment_history=[], context={}, created_at=T)
        ticket = m.Ticket(kind="invoice", subject="Copy of invoice 536365", created_at=T)
        s.add_all([esc, ticket])
        s.add_all([m.Interaction(sender_id="web:cust", channel="web", direction="in",
                                 text="where is 536365, I paid £20", intent="order_status",
                                 sentiment="negative", created_at=T + dt.timedelta(minutes=1)),
                   m.Interaction(sender_id="web:cust", channel="web", direction="out",
                                 text="It ships tomorrow.",
                                 created_at=T + dt.timedelta(minutes=2))])
        s.flush()
        return {"escalation": esc.id, "ticket": ticket.id}


def test_inbox_json(client: TestClient, threads: dict[str, int]) -> None:
    r = client.get("/api/inbox", headers=signed(SAM))
    assert r.status_code == 200
    data = r.json()
    assert data["total"] == 2 and data["counts"]["waiting"] == 2
    assert {(row["kind"], row["id"]) for row in data["rows"]} == {
        ("escalation", threads["escalation"]), ("ticket", threads["ticket"])}
    assert client.get("/api/inbox?status=answered", headers=signed(SAM)).json()["total"] == 0
    assert client.get("/api/inbox?status=bogus", headers=signed(SAM)).status_code == 422
    assert client.get("/api/inbox").status_code == 401


def test_claim_conflict_takeover_and_release(client: TestClient,
                                             threads: dict[str, int]) -> None:
    url = f"/api/threads/escalation/{threads['escalation']}/claim"
    assert client.post(url, headers=signed(SAM)).json()["agent_id"] == 3
    r = client.post(url, headers=signed(KIM))
    assert r.status_code == 409 and "Agent 3" in r.json()["detail"]
    rows = client.get("/api/inbox", headers=signed(KIM)).json()["rows"]
    claimed = next(row for row in rows if row["kind"] == "escalation")
    assert claimed["claim"]["agent_id"] == 3
    assert client.delete(url, headers=signed(KIM)).json() == {"released": False}
    assert client.post(url, json={"takeover": True}, headers=signed(KIM)).json()["agent_id"] == 4
    assert client.delete(url, headers=signed(KIM)).json() == {"released": True}
    assert client.post("/api/threads/ticket/999/claim", headers=signed(SAM)).status_code == 404


def test_summary_json(client: TestClient, threads: dict[str, int]) -> None:
    r = client.get(f"/api/threads/escalation/{threads['escalation']}/summary",
                   headers=signed(SAM))
    summary = r.json()["summary"]
    assert summary["orders"] == ["536365"] and summary["amounts"] == ["£20.00"]
    assert summary["intents"] == [["order_status", 1]]
    assert summary["answered"][0]["answer"] == "It ships tomorrow."
    ticket = client.get(f"/api/threads/ticket/{threads['ticket']}/summary", headers=signed(SAM))
    assert ticket.json() == {"summary": None}  # not from a chat
