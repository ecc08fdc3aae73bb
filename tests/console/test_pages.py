"""Console pages on a small CRM built by hand: inbox, escalation, insights, chat."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from typing import Any

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from sqlalchemy import select

from crm_ml.config import get_settings
from crm_ml.db import models as m
from crm_ml.db import session_scope
from crm_ml.db.models_insights import FeedbackTopic, TopicAssignment, UnusualActivity
from crm_ml.identity import sign
from tests.console.conftest import SECRET, csrf_of

NOW = dt.datetime(2026, 3, 10, 12, 0)


def _day(n: int) -> dt.datetime:
    return NOW - dt.timedelta(days=n)


def seed(url: str) -> dict[str, int]:
    """Customers, orders, scores, escalations, interactions, leads and a forecast."""
    with session_scope(url) as s:
        s.add_all([
            m.Customer(id=12347, name="Ada Lovelace", email="ada@example.com", country="Iceland"),
            m.Customer(id=12348, name="Alan Turing", email="alan@example.com", country="Finland"),
        ])
        s.flush()
        s.add_all([
            m.Order(id="500001", customer_id=12347, invoiced_at=_day(3), country="Iceland",
                    kind="sale", status="shipped", total=120.5),
            m.Order(id="500002", customer_id=12347, invoiced_at=_day(40), country="Iceland",
                    kind="sale", status="delivered", total=80),
            m.Segment(customer_id=12347, recency_days=3, frequency=2, monetary=200.5, r_score=5,
                      f_score=3, m_score=4, rfm_segment="Champions", model_version="t"),
            m.Segment(customer_id=12348, recency_days=300, frequency=1, monetary=10, r_score=1,
                      f_score=1, m_score=1, rfm_segment="Hibernating", model_version="t"),
            m.ChurnScore(customer_id=12347, probability=0.83, reasons=[], model_version="t"),
            m.Ticket(kind="complaint", customer_id=12347, subject="Parcel never arrived",
                     created_at=_day(1)),
        ])
        angry = m.Escalation(
            sender_id="web:angry", channel="web", customer_id=12347,
            reason="very negative message", status="open", sentiment="negative",
            transcript=[{"from": "customer", "text": "my order never arrived",
                         "sentiment": "negative"}],
            sentiment_history=[{"sentiment": "neutral", "confidence": 0.6},
                               {"sentiment": "negative", "confidence": 0.97}],
            context={"customer_id": 12347, "verified": True, "name": "Ada Lovelace",
                     "segment": "Champions", "churn_risk": 0.83, "lifetime_value": 200.5},
            created_at=_day(0))
        calm = m.Escalation(
            sender_id="tg:77", channel="telegram", customer_id=None, reason="asked for a human",
            status="open", sentiment="neutral", transcript=[], sentiment_history=[],
            context={"customer_id": None, "verified": False}, created_at=_day(0)
            + dt.timedelta(minutes=5))
        done = m.Escalation(
            sender_id="web:done", channel="web", reason="asked for a human", status="resolved",
            sentiment="neutral", transcript=[], sentiment_history=[], context={},
            created_at=_day(2))
        s.add_all([angry, calm, done])
        texts = [("in", "where is my parcel", "neutral", 2), ("out", "Let me check.", None, 2),
                 ("in", "my order never arrived", "negative", 1),
                 ("in", "<script>alert('x')</script> worst service", "negative", 0)]
        for i, (direction, text, sentiment, days) in enumerate(texts):
            s.add(m.Interaction(sender_id="web:angry", channel="web", direction=direction,
                                text=text, sentiment=sentiment, customer_id=12347,
                                event_id=f"e{i}", created_at=_day(days) + dt.timedelta(
                                    seconds=i)))
        s.add(m.Interaction(sender_id="tg:1", channel="telegram", direction="in",
                            text="great, thanks", sentiment="positive", created_at=_day(1)))
        reps = [m.SalesRep(id=1, handle="rep:1", name="Rita Rep", email="r@x", role="rep"),
                m.SalesRep(id=2, handle="rep:2", name="Bob Rep", email="b@x", role="rep")]
        s.add_all(reps)
        s.flush()
        for lead_id, rep, score in [(1, 1, 0.91), (2, 1, 0.55), (3, 1, 0.72), (4, 1, 0.12),
                                    (5, 2, 0.66)]:
            s.add(m.Lead(id=lead_id, source="bank", external_ref=str(lead_id),
                         name=f"Lead {lead_id}", rep_id=rep, status="new", features={}))
            s.flush()
            s.add(m.LeadScore(lead_id=lead_id, score=score, reasons=[], model_version="t"))
        for week in range(13):
            s.add(m.Forecast(series="total", period_start=dt.date(2026, 3, 16)
                             + dt.timedelta(weeks=week), yhat=20000 + 500 * week,
                             lower=15000 + 400 * week, upper=25000 + 600 * week,
                             model_version="sarimax-1"))
        s.add(UnusualActivity(scope="order", invoice="500001", customer_id=12347,
                              occurred_at=_day(3), country="Iceland", amount=200.5, quantity=4,
                              score=4.2, reasons=["placed at 03:00 (robust z +4.1)"],
                              model_version="a1"))
        topic = FeedbackTopic(label="parcel, late, delivery", top_terms=["parcel", "late"],
                              examples=["my parcel is late again"], size=2, model_version="t1")
        s.add(topic)
        s.flush()
        for n, day in enumerate((2, 4, 40)):
            s.add(TopicAssignment(topic_id=topic.id, source="interaction", source_id=str(n),
                                  written_at=_day(day), text="late parcel"))
        s.flush()
        return {"angry": angry.id, "calm": calm.id, "done": done.id}


@pytest.fixture
def ids(crm: str) -> dict[str, int]:
    return seed(crm)


def test_inbox_lists_open_escalations_angriest_first(agent: TestClient, crm: str,
                                                     ids: dict[str, int],
                                                     agent_id: int) -> None:
    page = agent.get("/")
    assert page.status_code == 200
    html = page.text
    assert f'data-escalation="{ids["angry"]}"' in html
    assert f'data-escalation="{ids["calm"]}"' in html
    assert f'data-escalation="{ids["done"]}"' not in html  # resolved
    # The negative one first, though the neutral one is newer.
    assert html.index(f'data-escalation="{ids["angry"]}"') < \
        html.index(f'data-escalation="{ids["calm"]}"')
    for text in ["Ada Lovelace", "very negative message", "Champions", "83%", "£200.50",
                 "anonymous", "tg:77"]:
        assert text in html, text
    assert "<circle" in html  # the sentiment trend
    with session_scope(crm) as s:  # the visit is a heartbeat
        assert s.get(m.Agent, agent_id).last_seen_at is not None
    rows = agent.get("/inbox/rows")
    assert rows.status_code == 200 and "Ada Lovelace" in rows.text and "<html" not in rows.text


def test_empty_inbox(agent: TestClient) -> None:
    assert "No open escalations" in agent.get("/").text


def test_escalation_page_shows_profile_and_transcript(agent: TestClient,
                                                      ids: dict[str, int]) -> None:
    page = agent.get(f"/escalations/{ids['angry']}")
    assert page.status_code == 200
    html = page.text
    for text in ["Ada Lovelace", "Champions", "83%", "500001", "Parcel never arrived",
                 "where is my parcel", "Let me check.", "very negative message"]:
        assert text in html, text
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html  # escaped
    assert 'id="reply-form"' in html and 'id="resolve-form"' in html
    assert "script-src 'self'" in page.headers["content-security-policy"]

    live = agent.get(f"/escalations/{ids['angry']}/live").json()
    assert live["status"] == "open"
    assert [x["from"] for x in live["messages"]] == ["customer", "assistant", "customer",
                                                     "customer"]
    assert live["messages"][-1]["sentiment"] == "negative"


def test_anonymous_escalation_asks_for_verification(agent: TestClient,
                                                    ids: dict[str, int]) -> None:
    html = agent.get(f"/escalations/{ids['calm']}").text
    assert "Not signed in or not verified" in html
    assert "No messages yet" in html


def test_unknown_escalation_is_404(agent: TestClient) -> None:
    assert agent.get("/escalations/999").status_code == 404
    assert agent.get("/escalations/999/live").status_code == 404


def test_reply_goes_to_the_customers_channel(agent: TestClient, crm: str, ids: dict[str, int],
                                             agent_id: int, handoff_calls: list) -> None:
    page = agent.get(f"/escalations/{ids['angry']}")
    r = agent.post(f"/escalations/{ids['angry']}/reply",
                   data={"text": "  Hi, I'm Sam.  ", "csrf_token": csrf_of(page.text)})
    assert (r.status_code, r.headers["location"]) == (303, f"/escalations/{ids['angry']}?sent=1")
    assert handoff_calls == [("reply", {"sender_id": "web:angry", "text": "Hi, I'm Sam.",
                                        "agent": f"agent:{agent_id}",
                                        "agent_name": "Sam Support"})]  # marked as a person's
    assert "Sent to the customer" in agent.get(r.headers["location"]).text
    with session_scope(crm) as s:
        actions = s.scalars(select(m.AuditLog.actor).where(m.AuditLog.action == "reply")).all()
    assert actions == [f"agent:{agent_id}"]


def test_reply_when_rasa_is_down(agent: TestClient, ids: dict[str, int],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def down(path: str, payload: dict[str, Any]) -> dict[str, Any]:
        raise HTTPException(502, "unreachable")

    monkeypatch.setattr("console.pages.rasa_handoff", down)
    page = agent.get(f"/escalations/{ids['angry']}")
    r = agent.post(f"/escalations/{ids['angry']}/reply",
                   data={"text": "hello", "csrf_token": csrf_of(page.text)})
    assert r.headers["location"].endswith("?error=unreachable")
    assert "could not be reached" in agent.get(r.headers["location"]).text


def test_resolve_hands_back_to_the_bot(agent: TestClient, crm: str, ids: dict[str, int],
                                       agent_id: int, handoff_calls: list) -> None:
    page = agent.get(f"/escalations/{ids['angry']}")
    r = agent.post(f"/escalations/{ids['angry']}/resolve",
                   data={"csrf_token": csrf_of(page.text)})
    assert (r.status_code, r.headers["location"]) == (303, f"/?resolved={ids['angry']}")
    assert handoff_calls == [("resume", {"sender_id": "web:angry",
                                         "agent": f"agent:{agent_id}"})]
    with session_scope(crm) as s:
        esc = s.get(m.Escalation, ids["angry"])
        assert (esc.status, esc.agent) == ("resolved", f"agent:{agent_id}")
    inbox = agent.get(r.headers["location"]).text
    assert f'data-escalation="{ids["angry"]}"' not in inbox
    assert "resolved" in inbox
    # A resolved conversation takes no more replies.
    page = agent.get(f"/escalations/{ids['angry']}")
    assert 'id="reply-form"' not in page.text
    r = agent.post(f"/escalations/{ids['angry']}/reply",
                   data={"text": "late", "csrf_token": csrf_of(agent.get("/").text)})
    assert r.headers["location"].endswith("?error=resolved")
    assert len(handoff_calls) == 1


def test_insights(agent: TestClient, ids: dict[str, int], env: pytest.MonkeyPatch) -> None:
    env.setenv("CRM_TODAY", "2026-03-10")  # the seeded data's "as of" date
    get_settings.cache_clear()
    page = agent.get("/insights")
    assert page.status_code == 200
    html = page.text
    assert "No data yet" not in html
    segments = html[html.index('id="segments"'):html.index('id="forecast"')]
    assert "Champions" in segments and "Hibernating" in segments and "<svg" in segments
    forecast = html[html.index('id="forecast"'):html.index('id="sentiment"')]
    assert "2026-03-16" in forecast and "£20,000" in forecast and "sarimax-1" in forecast
    if agent.app.state.charts:
        assert '/charts/forecast.png?series=total&amp;weeks=13' in forecast
    else:
        assert "<polygon" in forecast  # the interval band
    sentiment = html[html.index('id="sentiment"'):html.index('id="escalations"')]
    assert "<svg" in sentiment and "2026-03-09 negative: 1" in sentiment
    assert "2026-03-10 negative: 1" in sentiment and "2026-03-09 positive: 1" in sentiment
    escalations = html[html.index('id="escalations"'):html.index('id="unusual-orders"')]
    assert "<svg" in escalations
    unusual = html[html.index('id="unusual-orders"'):html.index('id="complaint-topics"')]
    assert "500001" in unusual and "placed at 03:00" in unusual and "£200.50" in unusual
    topics = html[html.index('id="complaint-topics"'):html.index('id="hot-leads"')]
    assert "parcel, late, delivery" in topics and "my parcel is late again" in topics
    assert "<td>2</td>" in topics  # two messages this month (the third is older)
    # Agents may not read leads (crm_ml.authz): no lead, no rep, a word why. The ranking
    # itself (top 3 open leads per rep, by score) is tested in tests/crm_ml/test_insights.py.
    leads = html[html.index('id="hot-leads"'):]
    assert re.findall(r"#(\d) Lead", leads) == []
    assert "Rita Rep" not in leads and "Bob Rep" not in leads and "91%" not in leads
    assert "not shown to agents" in leads


def test_the_insights_chart_needs_the_agents_session(agent: TestClient,
                                                     ids: dict[str, int]) -> None:
    """The page's chart is served to the signed-in agent without a signed link, to no one else."""
    path = "/charts/forecast.png?series=total&weeks=13"
    png = agent.get(path)
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.headers["cache-control"].startswith("private")
    agent.cookies.clear()
    refused = agent.get(path)
    assert refused.status_code == 403 and b"PNG" not in refused.content[:8]
    assert "sign in to the console" in refused.text


def test_a_chart_link_from_the_assistant_opens_without_a_session(client: TestClient,
                                                                 ids: dict[str, int]) -> None:
    from crm_ml import signing

    def link(**kw: Any) -> str:
        query = signing.sign_query(signing.FORECAST_CHART, {"series": "total", "weeks": 13},
                                   SECRET, **kw)
        return f"{signing.FORECAST_CHART}?{query}"

    assert client.get(link()).headers["content-type"] == "image/png"
    expired = client.get(link(ttl=60, now=time.time() - 3600))
    assert expired.status_code == 403
    assert "This chart link has expired" in expired.text  # an HTML page that says why


def test_insights_with_empty_tables(agent: TestClient) -> None:
    page = agent.get("/insights")
    assert page.status_code == 200
    # the seventh section, leads, is not for agents
    assert page.text.count("No data yet") == 6
    assert "not shown to agents" in page.text


def test_chat_page(client: TestClient) -> None:
    page = client.get("/chat")
    assert page.status_code == 200
    config = _config(page.text)
    assert config == {"server": "http://127.0.0.1:5999", "path": "/socket.io/",
                      "auth": None, "user": None}
    assert '/static/vendor/socket.io.min.js' in page.text
    assert "ws://127.0.0.1:5999" in page.headers["content-security-policy"]
    lib = client.get("/static/vendor/socket.io.min.js")
    assert lib.status_code == 200 and lib.text.startswith("/*!\n * Socket.IO v4.")
    assert client.get("/static/chat.js").status_code == 200


def test_chat_page_with_a_signed_customer(client: TestClient) -> None:
    sig = sign("customer:12347", SECRET)
    config = _config(client.get("/chat", params={"user": "customer:12347", "sig": sig}).text)
    assert config["auth"] == {"user": "customer:12347", "sig": sig}
    forged = client.get("/chat", params={"user": "customer:12347", "sig": "0" * 64})
    assert _config(forged.text)["auth"] is None
    assert "not valid" in forged.text


def _config(html: str) -> dict[str, Any]:
    raw = re.search(r'<script type="application/json" id="chat-config">(.*?)</script>', html)
    assert raw
    return json.loads(raw.group(1))
