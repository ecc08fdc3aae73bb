"""Escalations in the CRM: support hours, live or ticket, the agent's inbox."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from crm_ml import handoff
from crm_ml.db import models as m
from crm_ml.db import session_scope
from crm_ml.errors import NotFound

MONDAY_NOON_UTC = dt.datetime(2026, 11, 23, 12, 0)  # 12:00 in London (GMT)
SATURDAY_NOON_UTC = dt.datetime(2026, 11, 28, 12, 0)


def test_support_hours() -> None:
    hours = handoff.SupportHours.parse("Mon-Fri 08:00-20:00", "Europe/London")
    assert hours.is_open(MONDAY_NOON_UTC)
    assert not hours.is_open(SATURDAY_NOON_UTC)
    assert not hours.is_open(dt.datetime(2026, 11, 23, 21, 0))
    nxt = hours.next_opening(SATURDAY_NOON_UTC)
    assert (nxt.strftime("%A %H:%M"), nxt.tzname()) == ("Monday 08:00", "GMT")
    assert handoff.SupportHours.parse("always", "UTC").is_open(SATURDAY_NOON_UTC)
    with pytest.raises(ValueError, match="expected e.g."):
        handoff.SupportHours.parse("whenever", "UTC")


def test_summer_time_is_respected() -> None:
    hours = handoff.SupportHours.parse("Mon-Fri 08:00-20:00", "Europe/London")
    assert hours.is_open(dt.datetime(2026, 7, 6, 7, 30))  # 08:30 BST
    assert not hours.is_open(dt.datetime(2026, 11, 23, 7, 30))  # 07:30 GMT


@pytest.fixture
def crm(env, sqlite_url: str) -> str:
    env.setenv("CRM_DATABASE_URL", sqlite_url)
    with session_scope() as s:
        s.add(m.Customer(id=12347, name="Ada Lovelace", email="ada@example.com",
                         country="Iceland", anonymized=False))
        s.flush()
        s.add(m.Order(id="500001", customer_id=12347, invoiced_at=dt.datetime(2011, 1, 2),
                      country="Iceland", kind="sale", status="delivered", total=35.64))
        s.add(m.Segment(customer_id=12347, recency_days=3, frequency=7, monetary=4310.0,
                        r_score=5, f_score=5, m_score=5, rfm_segment="Champions",
                        model_version="t"))
        s.add(m.ChurnScore(customer_id=12347, probability=0.12, reasons=["buys often"],
                           model_version="t"))
    return sqlite_url


def _escalate(sender: str, now: dt.datetime,
              sentiment: str = "negative") -> handoff.EscalationOutcome:
    with session_scope() as s:
        return handoff.open_escalation(
            session=s, sender_id=sender, channel="web", reason="very negative message",
            transcript=[{"from": "customer", "text": "awful"}],
            sentiment_history=[{"sentiment": sentiment, "confidence": 0.97}],
            customer_id=12347, now=now)


def test_live_when_open_and_an_agent_is_online(crm: str, env) -> None:
    env.setenv("CRM_SUPPORT_HOURS", "always")
    from crm_ml.config import get_settings

    get_settings.cache_clear()
    with session_scope() as s:
        handoff.ensure_agent(session=s, agent_id=1)
        handoff.mark_agent_seen(session=s, agent_id=1, now=MONDAY_NOON_UTC)
    out = _escalate("web:a", MONDAY_NOON_UTC + dt.timedelta(minutes=1))
    assert out.live and out.ticket_id is None
    with session_scope() as s:
        esc = handoff.get_escalation(session=s, escalation_id=out.escalation_id)
        assert esc.status == "open"
        assert esc.context["segment"] == "Champions"
        assert esc.context["churn_risk"] == 0.12
        assert esc.context["recent_orders"][0]["id"] == "500001"
        assert esc.context["lifetime_value"] == 35.64


def test_ticket_when_closed(crm: str) -> None:
    out = _escalate("web:b", SATURDAY_NOON_UTC)
    assert not out.live and out.ticket_id is not None
    assert "Monday at 08:00" in out.expectation
    with session_scope() as s:
        ticket = s.get(m.Ticket, out.ticket_id)
        assert (ticket.kind, ticket.customer_id, ticket.status) == ("handoff", 12347, "open")


def test_ticket_when_nobody_is_online(crm: str) -> None:
    out = _escalate("web:c", MONDAY_NOON_UTC)
    assert not out.live
    assert "within 4 hours" in out.expectation


def test_second_escalation_of_a_conversation_reuses_the_row(crm: str) -> None:
    first = _escalate("web:d", SATURDAY_NOON_UTC)
    second = _escalate("web:d", SATURDAY_NOON_UTC)
    assert first.escalation_id == second.escalation_id
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(m.Escalation)) == 1


def test_inbox_is_angriest_then_newest_and_resolve_audits(crm: str) -> None:
    calm = _escalate("web:calm", SATURDAY_NOON_UTC, sentiment="neutral")
    old_angry = _escalate("web:old", SATURDAY_NOON_UTC)
    new_angry = _escalate("web:new", SATURDAY_NOON_UTC + dt.timedelta(hours=1))
    with session_scope() as s:
        ids = [e.id for e in handoff.list_escalations(session=s, status="ticket")]
    assert ids == [new_angry.escalation_id, old_angry.escalation_id, calm.escalation_id]
    with session_scope() as s:
        handoff.resolve(session=s, escalation_id=calm.escalation_id, agent="agent:1")
    with session_scope() as s:
        assert handoff.get_escalation(session=s, escalation_id=calm.escalation_id).status == \
            "resolved"
        actions = set(s.scalars(select(m.AuditLog.action)))
    assert {"escalate", "resolve", "open_ticket"} <= actions
    with pytest.raises(NotFound), session_scope() as s:
        handoff.get_escalation(session=s, escalation_id=999)


def test_profile_of_an_anonymous_caller(crm: str) -> None:
    with session_scope() as s:
        assert handoff.customer_profile(session=s, customer_id=None) == {
            "customer_id": None, "verified": False}


def test_reply_and_resolve_for_the_console(crm: str) -> None:
    esc_id = _escalate("web:e", SATURDAY_NOON_UTC).escalation_id
    with session_scope() as s:
        assert handoff.reply_to_escalation(session=s, escalation_id=esc_id,
                                           agent="agent:1") == "web:e"
    with session_scope() as s:
        assert handoff.resolve_escalation(session=s, escalation_id=esc_id, agent="agent:1",
                                          now=MONDAY_NOON_UTC) == "web:e"
    for call in (handoff.reply_to_escalation, handoff.resolve_escalation):
        with pytest.raises(handoff.AlreadyResolved), session_scope() as s:
            call(session=s, escalation_id=esc_id, agent="agent:2")
    with session_scope() as s:  # the API resolves a resolved escalation once more
        handoff.resolve_escalation(session=s, escalation_id=esc_id, agent="agent:2", again=True)
    with session_scope() as s:
        esc = handoff.get_escalation(session=s, escalation_id=esc_id)
        assert (esc.status, esc.agent) == ("resolved", "agent:2")
        entries = [(a.actor, a.action) for a in s.scalars(
            select(m.AuditLog).where(m.AuditLog.entity == "escalations").order_by(m.AuditLog.id))]
    assert entries == [("web:e", "escalate"), ("agent:1", "reply"), ("agent:1", "resolve"),
                       ("agent:2", "resolve")]
    for call in (handoff.reply_to_escalation, handoff.resolve_escalation):
        with pytest.raises(NotFound), session_scope() as s:
            call(session=s, escalation_id=999, agent="agent:1")


def test_audit_and_tickets_have_their_own_homes(crm: str) -> None:
    from crm_ml import audit, tickets

    with session_scope() as s:
        ticket = tickets.open_ticket(session=s, kind="refund", subject="x" * 300,
                                     customer_id=12347, order_id="500001", actor="web:f")
        audit.audit(session=s, actor="rep:1", action="note", entity="leads", entity_id="4")
        ticket_id = ticket.id
    with session_scope() as s:
        ticket = s.get(m.Ticket, ticket_id)
        assert (ticket.kind, len(ticket.subject), ticket.status) == ("refund", 200, "open")
        entries = [(a.actor, a.action, a.entity_id, a.details) for a in s.scalars(
            select(m.AuditLog).order_by(m.AuditLog.id))]
    assert entries == [("web:f", "open_ticket", str(ticket_id), {"kind": "refund"}),
                       ("rep:1", "note", "4", {})]
    # The old names still resolve to the same functions until every import moves.
    assert handoff.audit is audit.audit and handoff.open_ticket is tickets.open_ticket
