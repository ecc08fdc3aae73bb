"""One thread per conversation outside support hours, through the real servers.

The desk is closed: a signed-in customer's upset messages give one ticket with
every message in it; the customer's answer to the agent goes to the ticket;
resolving closes it and the customer's rating is stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from crm_ml.db import models as m
from crm_ml.db.models_helpdesk import ConversationRating
from crm_ml.db.session import get_engine
from crm_ml.identity import sign
from tests.support.retail import retail_crm
from tests.support.servers import Stack, assistant

pytestmark = pytest.mark.e2e

SECRET = "e2e-secret"
MESSAGES = [
    "this is a disgrace, my order never arrived",
    "worst service ever, i am furious",
    "can i speak to a real person please",
    "hello?? is anyone reading this",
    "i am losing my patience with you",
]


def customer(n: int) -> dict:
    user = f"customer:{n}"
    return {"auth": {"user": user, "sig": sign(user, SECRET)}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("thread-hours")
    url = retail_crm(workdir)
    env = {"CRM_IDENTITY_SECRET": SECRET, "CRM_SUPPORT_HOURS": "Mon-Mon 00:00-00:01"}
    with assistant(workdir, url, extra_env=env, console=True) as running:
        yield running


def test_outside_hours_five_messages_one_ticket_then_resolve_and_rate(stack: Stack) -> None:
    sender = "web:closed-1"
    stack.agent("POST", "/api/agents/heartbeat")  # an agent online does not open the desk
    numbers: set[str] = set()
    for text in MESSAGES:
        replies = [r["text"] for r in stack.say(sender, text, metadata=customer(12347))]
        assert replies and not any("didn't understand" in r for r in replies), replies
        for r in replies:
            numbers.update(re.findall(r"ticket (?:number )?(\d+)", r))
    crm = f"sqlite:///{stack.workdir / 'crm.db'}"
    with get_engine(crm).connect() as conn:
        tickets = conn.execute(select(m.Ticket.id, m.Ticket.body)
                               .where(m.Ticket.sender_id == sender)).all()
        escalations = conn.execute(select(m.Escalation.id, m.Escalation.sentiment_history)
                                   .where(m.Escalation.sender_id == sender)).all()
    assert len(tickets) == 1 and len(escalations) == 1, (tickets, escalations)
    assert numbers == {str(tickets[0].id)}
    for text in MESSAGES:
        assert text in tickets[0].body
    assert len(escalations[0].sentiment_history) == len(MESSAGES)

    esc = escalations[0].id
    assert stack.agent("POST", f"/api/escalations/{esc}/reply",
                       json={"text": "Monday morning I will call the courier."}).status_code == 200
    got = [r["text"] for r in stack.say(sender, "ok thanks, please do",
                                        metadata=customer(12347))]
    assert got[0] == "Agent 1 (support team): Monday morning I will call the courier."
    assert any("added your message to ticket" in r for r in got[1:]), got
    done = stack.agent("POST", f"/api/escalations/{esc}/resolve").json()
    assert done["tickets_closed"] == [tickets[0].id]
    prompt = stack.say(sender, "hi", metadata=customer(12347))
    assert prompt[0]["text"].startswith("How did we do?"), prompt
    assert [r["text"] for r in stack.say(sender, "5", metadata=customer(12347))] == [
        "Thank you for rating us 5 out of 5."]
    with get_engine(crm).connect() as conn:
        assert conn.scalar(select(m.Ticket.status).where(m.Ticket.id == tickets[0].id)) \
            == "closed"
        assert list(conn.execute(select(ConversationRating.score).where(
            ConversationRating.sender_id == sender)).scalars()) == [5]
