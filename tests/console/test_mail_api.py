"""The console API e-mails an agent's reply to an anonymous visitor's ticket (real SMTP)."""

from __future__ import annotations

import datetime as dt
import email

from fastapi.testclient import TestClient

from crm_ml import handoff, mail
from crm_ml.config import get_settings
from crm_ml.db import session_scope
from tests.console.conftest import signed
from tests.crm_ml.test_mail import smtp  # noqa: F401 - the loopback SMTP server fixture


def test_reply_to_a_visitor_goes_by_email_too(client: TestClient, crm: str, env,
                                              handoff_calls: list, smtp) -> None:  # noqa: F811
    url, inbox = smtp
    env.setenv("CRM_SMTP_URL", url)
    env.setenv("CRM_SUPPORT_HOURS", "Mon-Fri 08:00-20:00")
    get_settings.cache_clear()
    with session_scope(crm) as s:
        out = handoff.open_escalation(
            session=s, sender_id="web:anon", channel="web", reason="asked for a human",
            transcript=[{"from": "customer", "text": "where is my parcel", "at": 1.0}],
            sentiment_history=[], customer_id=None, now=dt.datetime(2026, 11, 28, 12, 0))
        mail.save_contact(session=s, sender_id="web:anon", email="anon@example.org")
        s.add(handoff.m.Escalation(sender_id="web:known", channel="web", reason="x",
                                   status="open", transcript=[], sentiment_history=[],
                                   context={}, created_at=dt.datetime(2026, 11, 28, 12)))
    r = client.post(f"/api/escalations/{out.escalation_id}/reply",
                    json={"text": "It ships today."}, headers=signed("agent:3"))
    assert r.status_code == 200 and r.json()["emailed"] is True
    assert len(inbox.messages) == 1
    msg = email.message_from_bytes(inbox.messages[0][2])
    assert msg["To"] == "anon@example.org"
    assert msg["Subject"] == f"Re: your ticket {out.ticket_id}"
    assert "It ships today." in msg.get_payload(decode=True).decode()
    # A conversation without an address: no e-mail, and no "emailed" key.
    with session_scope(crm) as s:
        known = handoff.open_thread(session=s, sender_id="web:known").id
    r = client.post(f"/api/escalations/{known}/reply", json={"text": "Hi"},
                    headers=signed("agent:3"))
    assert "emailed" not in r.json() and len(inbox.messages) == 1
