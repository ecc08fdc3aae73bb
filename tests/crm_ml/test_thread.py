"""One thread per conversation: messages join the open thread, resolve closes it, ratings."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from sqlalchemy import func, select

from crm_ml import handoff
from crm_ml.config import get_settings
from crm_ml.db import models as m
from crm_ml.db import session_scope
from crm_ml.db.models_helpdesk import ConversationRating

MONDAY_NOON_UTC = dt.datetime(2026, 11, 23, 12, 0)
FRIDAY_EVENING_UTC = dt.datetime(2026, 11, 27, 21, 0)  # after the desk closed

UPSET = [
    ("my parcel is two weeks late", "negative", 0.91),
    ("this is ridiculous, nobody answers", "negative", 0.97),
    ("I want a human now", "negative", 0.88),
    ("hello??", "neutral", 0.61),
    ("worst shop ever", "negative", 0.99),
]


@pytest.fixture
def crm(env, sqlite_url: str) -> str:
    env.setenv("CRM_DATABASE_URL", sqlite_url)
    env.setenv("CRM_SUPPORT_HOURS", "Mon-Fri 08:00-20:00")
    get_settings.cache_clear()
    with session_scope() as s:
        s.add(m.Customer(id=12347, name="Ada Lovelace", email="ada@example.com",
                         country="Iceland", anonymized=False))
    return sqlite_url


def _message(i: int, text: str, sentiment: str, confidence: float) -> dict:
    return {"from": "customer", "text": text, "at": 1_000.0 + i, "sentiment": sentiment,
            "confidence": confidence}


def _escalate(sender: str, upto: int, reason: str, now: dt.datetime,
              channel: str = "web") -> handoff.EscalationOutcome:
    """Escalate with the conversation's first ``upto`` messages, as the action does."""
    transcript, moods = [], []
    for i, (text, label, conf) in enumerate(UPSET[:upto]):
        transcript.append(_message(i, text, label, conf))
        transcript.append({"from": "bot", "text": f"answer {i}", "at": 1_000.5 + i})
        moods.append({"at": 1_000.0 + i, "sentiment": label, "confidence": conf})
    with session_scope() as s:
        return handoff.open_escalation(
            session=s, sender_id=sender, channel=channel, reason=reason,
            transcript=transcript, sentiment_history=moods, customer_id=12347, now=now,
            live_possible=channel != "voice")


def _open_threads(s, sender: str) -> tuple[int, int]:
    escalations = s.scalar(select(func.count()).select_from(m.Escalation).where(
        m.Escalation.sender_id == sender, m.Escalation.status.in_(["open", "ticket"])))
    tickets = s.scalar(select(func.count()).select_from(m.Ticket).where(
        m.Ticket.sender_id == sender, m.Ticket.kind == "handoff", m.Ticket.status == "open"))
    return escalations, tickets


def test_an_upset_customer_writing_five_messages_gets_one_ticket(crm: str) -> None:
    outcomes = [_escalate("web:upset", n, "two negative messages in a row" if n < 3
                          else "asked for a human", FRIDAY_EVENING_UTC)
                for n in range(1, 6)]
    assert len({o.ticket_id for o in outcomes}) == 1 and outcomes[0].ticket_id is not None
    assert [o.existing for o in outcomes] == [False, True, True, True, True]
    assert all("Monday at 08:00" in o.expectation for o in outcomes)
    with session_scope() as s:
        assert _open_threads(s, "web:upset") == (1, 1)
        ticket = s.get(m.Ticket, outcomes[0].ticket_id)
        for text, label, _ in UPSET:
            assert f"Customer: {text} ({label})" in ticket.body
        assert "Escalation" in ticket.body.splitlines()[0]
        assert ticket.body.count("Customer:") == 5  # each message once
        esc = s.get(m.Escalation, outcomes[0].escalation_id)
        assert [h["sentiment"] for h in esc.sentiment_history] == [u[1] for u in UPSET]
        assert esc.sentiment == "negative"
        # The first trigger was sentiment; the explicit request for a person outranks it.
        assert esc.reason == handoff.HUMAN_REASON


def test_the_first_reason_stays_when_no_one_asks_for_a_person(crm: str) -> None:
    _escalate("web:r", 1, "very negative message", FRIDAY_EVENING_UTC)
    out = _escalate("web:r", 2, "two negative messages in a row", FRIDAY_EVENING_UTC)
    with session_scope() as s:
        assert s.get(m.Escalation, out.escalation_id).reason == "very negative message"


def test_messages_meant_for_the_agent_go_to_the_ticket(crm: str) -> None:
    out = _escalate("web:n", 1, "very negative message", FRIDAY_EVENING_UTC)
    note = _message(7, "ok thanks. when will it arrive then?", "neutral", 0.7)
    with session_scope() as s:
        assert handoff.add_to_thread(session=s, sender_id="web:n", items=[note]) == out.ticket_id
        assert handoff.add_to_thread(session=s, sender_id="web:n", items=[note]) == out.ticket_id
        assert handoff.add_to_thread(session=s, sender_id="web:none", items=[note]) is None
    with session_scope() as s:
        body = s.get(m.Ticket, out.ticket_id).body
        assert body.count("when will it arrive then?") == 1  # the same message is not doubled
        esc = s.get(m.Escalation, out.escalation_id)
        assert esc.sentiment == "neutral" and len(esc.sentiment_history) == 2


def test_resolve_closes_the_linked_tickets_and_says_if_the_bot_was_paused(crm: str) -> None:
    ticket = _escalate("web:t", 2, "very negative message", FRIDAY_EVENING_UTC)
    with session_scope() as s:
        done = handoff.resolve_thread(session=s, escalation_id=ticket.escalation_id,
                                      agent="agent:1")
        assert (done.was_live, done.closed_tickets) == (False, [ticket.ticket_id])
        assert s.get(m.Ticket, ticket.ticket_id).status == "closed"
        assert _open_threads(s, "web:t") == (0, 0)
    with session_scope() as s:
        handoff.ensure_agent(session=s, agent_id=1)
        handoff.mark_agent_seen(session=s, agent_id=1, now=MONDAY_NOON_UTC)
    live = _escalate("web:l", 1, "asked for a human", MONDAY_NOON_UTC + dt.timedelta(minutes=1))
    assert live.live and live.ticket_id is None
    with session_scope() as s:
        done = handoff.resolve_thread(session=s, escalation_id=live.escalation_id,
                                      agent="agent:1")
        assert done.was_live and done.closed_tickets == []
    # After the resolve a new problem opens a new thread.
    again = _escalate("web:t", 3, "very negative message", FRIDAY_EVENING_UTC)
    assert not again.existing and again.ticket_id != ticket.ticket_id


def test_a_voice_thread_promises_a_callback(crm: str) -> None:
    with session_scope() as s:
        handoff.ensure_agent(session=s, agent_id=1)
        handoff.mark_agent_seen(session=s, agent_id=1, now=MONDAY_NOON_UTC)
    first = _escalate("voice:c", 1, "asked for a human", MONDAY_NOON_UTC, channel="voice")
    second = _escalate("voice:c", 2, "asked for a human", MONDAY_NOON_UTC, channel="voice")
    assert first.ticket_id == second.ticket_id and "call you back" in second.expectation
    assert second.expectation.startswith("A colleague")


def test_a_claimed_voice_callback_says_who_will_call(crm: str) -> None:
    from crm_ml import inbox

    first = _escalate("voice:n", 1, "asked for a human", FRIDAY_EVENING_UTC, channel="voice")
    assert first.ticket_id is not None
    with session_scope() as s:
        inbox.claim(session=s, kind="ticket", thread_id=first.ticket_id, agent_id=2)
        name = s.get(m.Agent, 2).name
    again = _escalate("voice:n", 2, "asked for a human", FRIDAY_EVENING_UTC, channel="voice")
    assert again.existing
    assert again.expectation == f"{name} from our support team will call you back shortly."
    with session_scope() as s:
        said = handoff.thread_expectation(session=s, sender_id="voice:n",
                                          now=FRIDAY_EVENING_UTC)
    assert said == again.expectation


def test_the_rating_is_stored_against_the_resolved_thread(crm: str) -> None:
    out = _escalate("web:rate", 1, "very negative message", FRIDAY_EVENING_UTC)
    with session_scope() as s:
        handoff.resolve_thread(session=s, escalation_id=out.escalation_id, agent="agent:1")
    with session_scope() as s:
        with pytest.raises(ValueError, match="1 to 5"):
            handoff.record_rating(session=s, sender_id="web:rate", score=6)
        rating = handoff.record_rating(session=s, sender_id="web:rate", score=4)
        assert (rating.escalation_id, rating.channel) == (out.escalation_id, "web")
    with session_scope() as s:
        stored = s.scalars(select(ConversationRating)).all()
        assert [(r.sender_id, r.score) for r in stored] == [("web:rate", 4)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_conversation_ever_has_a_second_open_thread(crm: str, seed: int) -> None:
    """Property: random escalations, notes and resolves never give two open threads."""
    rng = random.Random(seed)
    senders = [f"web:p{i}" for i in range(4)] + ["voice:p"]
    with session_scope() as s:
        handoff.ensure_agent(session=s, agent_id=1)
    times = [FRIDAY_EVENING_UTC, MONDAY_NOON_UTC, MONDAY_NOON_UTC + dt.timedelta(minutes=1)]
    for step in range(120):
        sender = rng.choice(senders)
        now = rng.choice(times)
        if now == times[2]:
            with session_scope() as s:
                handoff.mark_agent_seen(session=s, agent_id=1, now=now)
        move = rng.random()
        if move < 0.6:
            _escalate(sender, rng.randint(1, 5), rng.choice(
                ["asked for a human", "very negative message", "angry message"]), now,
                channel=sender.split(":")[0])
        elif move < 0.8:
            with session_scope() as s:
                handoff.add_to_thread(session=s, sender_id=sender,
                                      items=[_message(100 + step, f"note {step}", "neutral", .5)])
        else:
            with session_scope() as s:
                esc = handoff.open_thread(session=s, sender_id=sender)
                if esc is not None:
                    handoff.resolve_thread(session=s, escalation_id=esc.id, agent="agent:1")
        with session_scope() as s:
            for who in senders:
                escalations, tickets = _open_threads(s, who)
                assert escalations <= 1 and tickets <= 1, (seed, step, who)
                if escalations == 0:
                    assert tickets == 0, (seed, step, who)
    with session_scope() as s:  # the loop did open and close threads
        assert s.scalar(select(func.count()).select_from(m.Escalation)) > len(senders)
