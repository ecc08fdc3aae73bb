"""Anonymous visitors' e-mail: validated, masked in logs, erased; the agent's reply by SMTP.

The SMTP server is a real one (aiosmtpd) on loopback; the test reads the message it got.
"""

from __future__ import annotations

import datetime as dt
import email
import logging
import socket
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from crm_ml import gdpr, handoff, mail
from crm_ml.config import get_settings
from crm_ml.db import models as m
from crm_ml.db import session_scope
from crm_ml.db.models_helpdesk import VisitorContact
from crm_ml.pii import install_log_masking


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp() -> Iterator[tuple[str, _Inbox]]:
    inbox = _Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}", inbox
    finally:
        controller.stop()


@pytest.fixture
def crm(env, sqlite_url: str) -> str:
    env.setenv("CRM_DATABASE_URL", sqlite_url)
    env.setenv("CRM_SUPPORT_HOURS", "Mon-Fri 08:00-20:00")
    get_settings.cache_clear()
    return sqlite_url


@pytest.mark.parametrize("text,expected", [
    ("visitor@Example.COM", "visitor@example.com"),
    ("  <a.b+c@shop.co.uk> ", "a.b+c@shop.co.uk"),
    ("not an email", None), ("a@b", None), ("a..b@example.com", None),
    ("x@example.com; rm -rf", None), ("", None),
])
def test_addresses_are_validated(text: str, expected: str | None) -> None:
    assert mail.valid_email(text) == expected


def test_the_agents_reply_reaches_the_visitor_by_email(crm: str, smtp, caplog) -> None:
    url, inbox = smtp
    install_log_masking(logging.getLogger("crm_ml.mail"))
    caplog.set_level(logging.INFO, logger="crm_ml.mail")
    with session_scope() as s:
        out = handoff.open_escalation(
            session=s, sender_id="web:visitor", channel="web", reason="asked for a human",
            transcript=[{"from": "customer", "text": "my parcel?", "at": 1.0}],
            sentiment_history=[], customer_id=None, now=dt.datetime(2026, 11, 28, 12, 0))
        with pytest.raises(ValueError, match="e-mail address"):
            mail.save_contact(session=s, sender_id="web:visitor", email="nope")
        mail.save_contact(session=s, sender_id="web:visitor", email="Visitor.Jones@Example.com")
    with session_scope() as s:
        to = mail.contact_of(session=s, sender_id="web:visitor")
    assert to == "Visitor.Jones@example.com"
    mail.send_reply(to=to, agent_name="Sam Carter", text="Your parcel ships today.",
                    ticket=out.ticket_id, smtp_url=url)
    assert len(inbox.messages) == 1
    sender, rcpts, raw = inbox.messages[0]
    msg = email.message_from_bytes(raw)
    assert (sender, rcpts) == (mail.FROM_ADDRESS, ["Visitor.Jones@example.com"])
    assert msg["Subject"] == f"Re: your ticket {out.ticket_id}"
    body = msg.get_payload(decode=True).decode()
    assert "Your parcel ships today." in body and "Sam Carter" in body
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "Visitor.Jones@example.com" not in logged and "V***@example.com" in logged


def test_no_server_or_a_refusing_one_is_a_clear_failure(crm: str) -> None:
    with pytest.raises(mail.MailNotSent, match="CRM_SMTP_URL"):
        mail.send_reply(to="a@example.com", agent_name="Sam", text="x", ticket=1, smtp_url="")
    with pytest.raises(mail.MailNotSent, match="did not take"):
        mail.send_reply(to="a@example.com", agent_name="Sam", text="x", ticket=1,
                        smtp_url=f"smtp://127.0.0.1:{_free_port()}", timeout=2)


def test_erase_removes_the_address(crm: str) -> None:
    with session_scope() as s:
        mail.save_contact(session=s, sender_id="web:v1", email="v1@example.com")
        mail.save_contact(session=s, sender_id="web:v2", email="v2@example.com")
        s.add(m.Customer(id=5, name="Bo", email="bo@example.com", country="UK",
                         anonymized=False))
        s.add(m.Interaction(sender_id="web:v2", channel="web", direction="in", text="hi",
                            customer_id=5, kind="message"))
    with session_scope() as s:
        assert mail.erase_contact(session=s, sender_ids={"web:v1"}) == 1
        exported = gdpr.export(session=s, customer_id=5, tracker_url="sqlite://")
        assert [c["email"] for c in exported["visitor_contacts"]] == ["v2@example.com"]
        counts = gdpr.erase(session=s, customer_id=5, tracker_url="sqlite://")
        assert counts["visitor_contacts"] == 1
    with session_scope() as s:
        assert s.scalars(select(VisitorContact)).all() == []
