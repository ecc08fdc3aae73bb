"""Escalation lifecycle through the real Rasa server, action server and console API.

An upset customer is handed to a human: the bot goes quiet, the customer's
messages reach the agent, the agent's reply reaches the customer, and after
resolve the bot is back. Every message lands in the interactions table with
its sentiment.
"""

from __future__ import annotations

import email
import re
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from crm_ml.db import models as m
from crm_ml.db import session_scope
from crm_ml.db.session import get_engine
from crm_ml.identity import sign
from crm_ml.mail import contact_of, erase_contact
from tests.support.retail import retail_crm
from tests.support.servers import Stack, assistant, eventually

pytestmark = pytest.mark.e2e

SECRET = "e2e-secret"
ANGRY = [
    "this is absolutely terrible, my order never arrived and nobody answers. worst service ever",
    "i am furious, this is a disgrace and a complete waste of my money",
]


def customer(n: int) -> dict:
    user = f"customer:{n}"
    return {"auth": {"user": user, "sig": sign(user, SECRET)}}


class _Inbox:
    """A loopback SMTP server's mailbox (aiosmtpd handler)."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd
        self.messages.append(envelope.content)
        return "250 OK"


INBOX = _Inbox()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from aiosmtpd.controller import Controller

    from tests.support.servers import free_port

    workdir = tmp_path_factory.mktemp("handoff")
    url = retail_crm(workdir)
    port = free_port()
    smtp = Controller(INBOX, hostname="127.0.0.1", port=port)
    smtp.start()
    env = {"CRM_IDENTITY_SECRET": SECRET, "CRM_SUPPORT_HOURS": "always",
           "CRM_SMTP_URL": f"smtp://127.0.0.1:{port}"}
    try:
        with assistant(workdir, url, extra_env=env, console=True) as running:
            yield running
    finally:
        smtp.stop()


def _crm(stack: Stack) -> str:
    return f"sqlite:///{stack.workdir / 'crm.db'}"


def _escalate(stack: Stack, sender: str) -> list[dict]:
    """Send angry messages until the bot hands over (at most two)."""
    for text in ANGRY:
        replies = stack.say(sender, text, metadata=customer(12347))
        if any("colleague" in r.get("text", "") for r in replies):
            return replies
    pytest.fail(f"no escalation after {len(ANGRY)} angry messages: {replies}")


def test_agent_api_refuses_strangers(stack: Stack) -> None:
    import httpx

    assert httpx.get(f"{stack.console_url}/api/escalations").status_code == 401
    assert stack.agent("GET", "/api/escalations", agent="rep:2").status_code == 403
    forged = httpx.get(f"{stack.console_url}/api/escalations",
                       headers={"X-CRM-User": "agent:1", "X-CRM-Sig": "0" * 64})
    assert forged.status_code == 401


def test_angry_customer_is_handed_over_and_comes_back(stack: Stack) -> None:
    sender = "web:angry-1"
    assert stack.agent("POST", "/api/agents/heartbeat").json()["online"] >= 1

    replies = _escalate(stack, sender)
    assert "colleague" in replies[-1]["text"]

    # Paused: the bot says nothing, but the message is kept for the agent.
    assert stack.say(sender, "hello?? anyone there", metadata=customer(12347)) == []

    inbox = stack.agent("GET", "/api/escalations").json()
    mine = next(e for e in inbox if e["sender_id"] == sender)
    detail = stack.agent("GET", f"/api/escalations/{mine['id']}").json()
    assert detail["customer_id"] == 12347
    assert detail["context"]["verified"] is True
    assert detail["context"]["recent_orders"][0]["id"] == "500001"
    assert detail["reason"] in {"very negative message", "two negative messages in a row"}
    assert any("never arrived" in t["text"] for t in detail["transcript"])
    assert detail["sentiment_history"][-1]["sentiment"] == "negative"
    assert any(c["text"] == "hello?? anyone there" for c in detail["conversation"])

    sent = stack.agent("POST", f"/api/escalations/{mine['id']}/reply",
                       json={"text": "Hi, I'm Sam from support. I'm looking at your order now."})
    # REST cannot push: the next request gets it, marked as the agent's.
    assert sent.json() == {"delivered": "queued", "agent_name": "Agent 1"}
    got = stack.say(sender, "ok thanks", metadata=customer(12347))
    assert [r["text"] for r in got] == [
        "Agent 1 (support team): Hi, I'm Sam from support. I'm looking at your order now."]
    assert got[0]["agent_name"] == "Agent 1"

    done = stack.agent("POST", f"/api/escalations/{mine['id']}/resolve").json()
    assert done["status"] == "resolved"
    # The bot is back and answers from the CRM again, still knowing who is signed in.
    back = stack.say(sender, "where is my order 500001", metadata=customer(12347))
    texts = [r["text"] for r in back]
    assert texts[0].startswith("I'm back")
    assert texts[1].startswith("How did we do?")  # the rating prompt, with its buttons
    assert [b["payload"] for b in back[1]["buttons"]] == list("12345")
    assert any("500001" in t and "delivered" in t.lower() for t in texts[1:]), texts

    def stored() -> list:
        with get_engine(_crm(stack)).connect() as conn:
            rows = conn.execute(select(m.Interaction.direction, m.Interaction.text,
                                       m.Interaction.sentiment, m.Interaction.customer_id)
                                .where(m.Interaction.sender_id == sender)).all()
        # Wait for the event broker's queue: the last reply of the last turn stored.
        return rows if any(r.direction == "out" and r.text == texts[-1] for r in rows) else []

    rows = eventually(stored)
    incoming = [r for r in rows if r.direction == "in"]
    assert len(incoming) >= 4
    assert all(r.sentiment in {"negative", "neutral", "positive"} for r in incoming)
    assert all(r.customer_id == 12347 for r in incoming)
    assert len({r.text for r in incoming}) == len(incoming)  # each message stored once
    assert any(r.direction == "out" and "Sam from support" in r.text for r in rows)


def test_no_agent_online_opens_a_ticket(stack: Stack) -> None:
    """Nobody at the console: the customer gets a ticket and a time, not silence."""
    with get_engine(_crm(stack)).begin() as conn:
        conn.execute(m.Agent.__table__.update().values(last_seen_at=None))
    replies = stack.say("web:asks-1", "i want to talk to a human")
    # An anonymous visitor: the e-mail first, validated, then the ticket.
    assert "e-mail address" in replies[-1]["text"], replies
    assert "doesn't look like" in stack.say("web:asks-1", "visitor at example")[-1]["text"]
    replies = stack.say("web:asks-1", "visitor.one@example.org")
    assert "e-mailed to visitor.one@example.org" in replies[0]["text"], replies
    text = replies[-1]["text"]
    assert "ticket number" in text and "within 4 hours" in text
    ticket = re.search(r"ticket number is (\d+)", text).group(1)
    esc = next(e for e in stack.agent("GET", "/api/escalations?status=ticket").json()
               if e["sender_id"] == "web:asks-1")
    sent = stack.agent("POST", f"/api/escalations/{esc['id']}/reply",
                       json={"text": "We found your parcel."}).json()
    assert sent["emailed"] is True
    mail = email.message_from_bytes(INBOX.messages[-1])
    assert mail["To"] == "visitor.one@example.org"
    assert mail["Subject"] == f"Re: your ticket {ticket}"
    assert "We found your parcel." in mail.get_payload(decode=True).decode()
    # Not paused: the bot still answers (after the agent's reply, which REST queued).
    hello = [r["text"] for r in stack.say("web:asks-1", "hello")]
    assert hello[0] == "Agent 1 (support team): We found your parcel."
    assert hello[1].startswith("Hello"), hello
    with get_engine(_crm(stack)).connect() as conn:
        kinds = conn.execute(select(m.Ticket.kind).where(m.Ticket.sender_id == "web:asks-1"))
        assert list(kinds.scalars()) == ["handoff"]
    # Erase removes the address.
    with session_scope(_crm(stack)) as s:
        assert contact_of(session=s, sender_id="web:asks-1") == "visitor.one@example.org"
        assert erase_contact(session=s, sender_ids={"web:asks-1"}) == 1
    with session_scope(_crm(stack)) as s:
        assert contact_of(session=s, sender_id="web:asks-1") is None


def test_a_paused_conversation_stays_paused_across_a_rasa_restart(stack: Stack) -> None:
    """The tracker store is SQL: after a restart the handoff goes on where it was."""
    sender = "web:restart-1"
    stack.agent("POST", "/api/agents/heartbeat")
    assert "colleague" in stack.say(sender, "i want to talk to a human",
                                    metadata=customer(12347))[-1]["text"]
    stack.restart_rasa()
    assert stack.say(sender, "are you still there?", metadata=customer(12347)) == []
    esc = next(e for e in stack.agent("GET", "/api/escalations").json()
               if e["sender_id"] == sender)
    assert stack.agent("POST", f"/api/escalations/{esc['id']}/reply",
                       json={"text": "Still here, sorry for the wait."}).json()[
        "delivered"] == "queued"
    assert [r["text"] for r in stack.say(sender, "ok", metadata=customer(12347))] == [
        "Agent 1 (support team): Still here, sorry for the wait."]
    stack.agent("POST", f"/api/escalations/{esc['id']}/resolve")
    back = [r["text"] for r in stack.say(sender, "hello", metadata=customer(12347))]
    assert back[0].startswith("I'm back")


UPSET = [
    "my order never arrived and nobody answers, this is a disgrace",
    "i am furious, worst service ever",
    "i want to talk to a human now",
    "ok thanks. when will it arrive then?",
    "this is useless, i want my money back",
]


def test_an_upset_customer_gets_one_ticket_and_the_agent_gets_every_message(
        stack: Stack) -> None:
    """Inside hours with nobody online: five upset messages, one ticket, rated after resolve."""
    with get_engine(_crm(stack)).begin() as conn:
        conn.execute(m.Agent.__table__.update().values(last_seen_at=None))
    sender = "web:thread-1"
    numbers, answers = set(), []
    for text in UPSET:
        replies = [r["text"] for r in stack.say(sender, text, metadata=customer(12347))]
        answers.append(replies)
        assert not any("didn't understand" in r for r in replies), replies
        for r in replies:
            numbers.update(re.findall(r"ticket (?:number )?(\d+)", r))
    assert answers[0] and "ticket number" in answers[0][-1], answers
    with get_engine(_crm(stack)).connect() as conn:
        tickets = conn.execute(select(m.Ticket.id, m.Ticket.body, m.Ticket.status)
                               .where(m.Ticket.sender_id == sender)).all()
    assert len(tickets) == 1 and numbers == {str(tickets[0].id)}, (tickets, answers)
    for text in UPSET:
        assert text in tickets[0].body, (text, tickets[0].body)
    assert tickets[0].body.count("(negative)") >= 3

    esc = next(e for e in stack.agent("GET", "/api/escalations?status=ticket").json()
               if e["sender_id"] == sender)
    assert esc["reason"] == "asked for a human" or esc["reason"] in {
        "very negative message", "angry message"}
    sent = stack.agent("POST", f"/api/escalations/{esc['id']}/reply",
                       json={"text": "Sorry about this, your parcel ships today."}).json()
    assert sent["agent_name"] == "Agent 1"
    got = stack.say(sender, "great, thank you", metadata=customer(12347))
    assert got[0]["text"] == "Agent 1 (support team): Sorry about this, your parcel ships today."
    # The customer's answer goes to the ticket, for the agent, not to the bot's fallback.
    assert any("added your message to ticket" in r["text"] for r in got[1:]), got
    with get_engine(_crm(stack)).connect() as conn:
        body = conn.scalar(select(m.Ticket.body).where(m.Ticket.id == tickets[0].id))
    assert "great, thank you" in body

    done = stack.agent("POST", f"/api/escalations/{esc['id']}/resolve").json()
    assert done["tickets_closed"] == [tickets[0].id]
    prompt = stack.say(sender, "hello", metadata=customer(12347))
    assert not any(r["text"].startswith("I'm back") for r in prompt)  # the bot never stopped
    assert prompt[0]["text"].startswith("How did we do?"), prompt
    thanks = [r["text"] for r in stack.say(sender, "4", metadata=customer(12347))]
    assert thanks == ["Thank you for rating us 4 out of 5."]
    with get_engine(_crm(stack)).connect() as conn:
        rows = conn.execute(select(m.Ticket.status).where(m.Ticket.sender_id == sender))
        assert list(rows.scalars()) == ["closed"]
        from crm_ml.db.models_helpdesk import ConversationRating
        scores = conn.execute(select(ConversationRating.score)
                              .where(ConversationRating.sender_id == sender))
        assert list(scores.scalars()) == [4]
