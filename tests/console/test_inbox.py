"""The inbox: escalations and tickets in one list, filters, paging, claims, the thread summary."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from crm_ml import agents
from crm_ml import inbox as crm_inbox
from crm_ml.db import models as m
from crm_ml.db import session_scope
from crm_ml.db.models_console import ThreadClaim
from tests.console.conftest import AGENT_PASSWORD, csrf_of, login
from tests.console.test_pages import NOW, seed


@pytest.fixture
def ids(crm: str) -> dict[str, int]:
    ids = seed(crm)
    with session_scope(crm) as s:
        # The calm Telegram customer was answered by an agent; the angry one never was.
        s.add(m.Interaction(sender_id="tg:77", channel="telegram", direction="out",
                            kind="agent", text="Hi, Sam here.",
                            created_at=NOW + dt.timedelta(minutes=6)))
        ticket = m.Ticket(kind="refund", customer_id=None, sender_id="web:refund",
                          subject="Refund for order 536365", body="Broken teapot, £12.50",
                          created_at=NOW)
        s.add(ticket)
        s.add(m.Interaction(sender_id="web:refund", channel="web", direction="in",
                            text="my teapot from order 536365 arrived broken",
                            intent="damaged_item", sentiment="negative",
                            created_at=NOW + dt.timedelta(minutes=1)))
        s.flush()
        ids["ticket"] = ticket.id
        ids["complaint"] = s.scalar(select(m.Ticket.id).where(m.Ticket.kind == "complaint"))
    return ids


def row_ids(html: str, kind: str) -> list[int]:
    return [int(n) for n in re.findall(rf'data-{kind}="(\d+)"', html)]


def test_escalations_and_tickets_are_one_list(agent: TestClient, ids: dict[str, int]) -> None:
    html = agent.get("/").text
    assert set(row_ids(html, "escalation")) == {ids["angry"], ids["calm"]}
    assert set(row_ids(html, "ticket")) == {ids["ticket"], ids["complaint"]}
    assert f'href="/tickets/{ids["ticket"]}"' in html  # every row opens its thread
    assert f'href="/escalations/{ids["angry"]}"' in html
    assert 'data-escalation="{}" data-sender="tg:77" data-status="answered"'.format(
        ids["calm"]) in html
    assert f'data-escalation="{ids["angry"]}" data-sender="web:angry" data-status="waiting"' \
        in html
    assert "refund: Refund for order 536365" in html
    assert "No open escalations" not in html


def test_status_and_channel_filters(agent: TestClient, ids: dict[str, int]) -> None:
    answered = agent.get("/?status=answered").text
    assert row_ids(answered, "escalation") == [ids["calm"]] and row_ids(answered, "ticket") == []
    telegram = agent.get("/?channel=telegram").text
    assert row_ids(telegram, "escalation") == [ids["calm"]]
    resolved = agent.get("/?status=resolved").text
    assert row_ids(resolved, "escalation") == [ids["done"]]
    assert row_ids(agent.get("/?status=nonsense").text, "escalation")  # back to open threads
    rows = agent.get("/inbox/rows?status=waiting&channel=web").text
    assert ids["angry"] in row_ids(rows, "escalation") and ids["calm"] not in row_ids(
        rows, "escalation")
    assert "No live threads." in agent.get("/?status=live").text


def test_live_when_the_customer_wrote_after_the_agent(crm: str, ids: dict[str, int]) -> None:
    with session_scope(crm) as s:
        s.add(m.Interaction(sender_id="tg:77", channel="telegram", direction="in",
                            text="ok thanks Sam, when will it arrive?",
                            created_at=NOW + dt.timedelta(minutes=9)))
    with session_scope(crm) as s:
        page = crm_inbox.list_threads(session=s, now=NOW + dt.timedelta(minutes=30))
    calm = next(r for r in page.rows if r["kind"] == "escalation" and r["id"] == ids["calm"])
    assert calm["status"] == "live" and calm["waiting_minutes"] == 21
    assert page.counts["live"] == 1 and page.rows[0] is calm  # live threads first


def test_paging(crm: str, agent: TestClient, ids: dict[str, int]) -> None:
    with session_scope(crm) as s:
        s.add_all([m.Ticket(kind="invoice", subject=f"Invoice {n}", created_at=NOW)
                   for n in range(25)])
    first, second = agent.get("/").text, agent.get("/?page=2").text
    assert len(row_ids(first, "ticket") + row_ids(first, "escalation")) == 20
    assert "Page 1 of 2 (29 threads)" in first and 'href="/?status=open&amp;page=2"' in first
    assert len(row_ids(second, "ticket") + row_ids(second, "escalation")) == 9
    assert set(row_ids(first, "ticket")).isdisjoint(row_ids(second, "ticket"))
    assert "Page 2 of 2" in agent.get("/?page=99").text  # clamped to the last page


def test_claim_is_seen_by_the_other_agents(crm: str, client: TestClient, agent_id: int,
                                           ids: dict[str, int], handoff_calls: list) -> None:
    kim = agents.create_agent("kim", "Kim Keeper", AGENT_PASSWORD, url=crm)
    assert login(client).status_code == 303  # sam
    page = client.get(f"/escalations/{ids['angry']}")
    assert "Claim: I'll answer this customer" in page.text
    r = client.post(f"/threads/escalation/{ids['angry']}/claim",
                    data={"csrf_token": csrf_of(page.text)})
    assert r.status_code == 303
    with session_scope(crm) as s:
        c = s.get(ThreadClaim, ("escalation", ids["angry"]))
        assert c.agent_id == agent_id and c.claimed_at is not None
    assert "You claimed this conversation" in client.get(f"/escalations/{ids['angry']}").text

    client.cookies.clear()
    assert login(client, "kim").status_code == 303
    inbox = client.get("/").text
    row = inbox[inbox.index(f'data-escalation="{ids["angry"]}"'):]
    assert "Sam Support" in row[:row.index("</tr>")]
    page = client.get(f"/escalations/{ids['angry']}")
    assert "Claimed by <strong>Sam Support</strong>" in page.text
    r = client.post(f"/escalations/{ids['angry']}/reply",
                    data={"text": "hello", "csrf_token": csrf_of(page.text)})
    assert r.headers["location"].endswith("?error=claimed") and handoff_calls == []
    assert "take it over first" in client.get(r.headers["location"]).text
    r = client.post(f"/threads/escalation/{ids['angry']}/claim",
                    data={"csrf_token": csrf_of(page.text), "takeover": "1"})
    r = client.post(f"/escalations/{ids['angry']}/reply",
                    data={"text": "Kim here", "csrf_token": csrf_of(page.text)})
    assert r.headers["location"].endswith("?sent=1") and len(handoff_calls) == 1
    with session_scope(crm) as s:
        assert s.get(ThreadClaim, ("escalation", ids["angry"])).agent_id == kim
        actions = s.scalars(select(m.AuditLog.action).where(
            m.AuditLog.entity == "escalations")).all()
        assert {"claim", "take_over"} <= set(actions)


def test_a_reply_claims_and_release_gives_back(crm: str, agent: TestClient, agent_id: int,
                                              ids: dict[str, int], handoff_calls: list) -> None:
    page = agent.get(f"/escalations/{ids['calm']}")
    agent.post(f"/escalations/{ids['calm']}/reply",
               data={"text": "on it", "csrf_token": csrf_of(page.text)})
    with session_scope(crm) as s:
        assert crm_inbox.claim_of(session=s, kind="escalation",
                                  thread_id=ids["calm"])["agent_id"] == agent_id
    agent.post(f"/threads/escalation/{ids['calm']}/release",
               data={"csrf_token": csrf_of(page.text)})
    with session_scope(crm) as s:
        assert crm_inbox.claim_of(session=s, kind="escalation", thread_id=ids["calm"]) is None


def test_claims_of_missing_threads_and_bad_kinds(agent: TestClient, ids: dict[str, int]) -> None:
    token = csrf_of(agent.get("/").text)
    assert agent.post("/threads/escalation/99999/claim",
                      data={"csrf_token": token}).status_code == 404
    assert agent.post("/threads/order/1/claim", data={"csrf_token": token}).status_code == 422
    assert agent.post(f"/threads/ticket/{ids['ticket']}/claim").status_code == 403  # no CSRF


def test_thread_summary_on_top(agent: TestClient, ids: dict[str, int]) -> None:
    html = agent.get(f"/escalations/{ids['angry']}").text
    summary = html[html.index('id="summary"'):html.index('id="transcript"')]
    assert "worsening" in summary  # neutral, then negative twice
    ticket = agent.get(f"/tickets/{ids['ticket']}").text
    assert "damaged_item" in ticket and "536365" in ticket and "Broken teapot" in ticket
    assert agent.get("/tickets/99999").status_code == 404


def test_live_poll_carries_the_claim(agent: TestClient, agent_id: int,
                                     ids: dict[str, int]) -> None:
    assert agent.get(f"/escalations/{ids['angry']}/live").json()["claimed_by"] is None
    page = agent.get(f"/escalations/{ids['angry']}")
    assert 'data-claimed-by=""' in page.text
    agent.post(f"/threads/escalation/{ids['angry']}/claim",
               data={"csrf_token": csrf_of(page.text)})
    assert agent.get(f"/escalations/{ids['angry']}/live").json()["claimed_by"] == agent_id
    assert f'data-claimed-by="{agent_id}"' in agent.get(f"/escalations/{ids['angry']}").text
