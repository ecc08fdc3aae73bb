"""The agent's thread summary, on a seeded conversation."""

from __future__ import annotations

import datetime as dt

import pytest

from crm_ml import thread_summary as ts
from crm_ml.db import models as m
from crm_ml.db import session_scope

CONVERSATION = [
    ("in", "message", "where is my order 536365?", "order_status", "neutral"),
    ("out", "message", "Order 536365 was shipped on 1 Dec 2010; total £139.12.", None, None),
    ("in", "message", "it still hasn't arrived and I paid 139.12 GBP", "order_status", "negative"),
    ("out", "message", "Sorry to hear that. Deliveries take 3-5 working days.", None, None),
    ("in", "message", "I also want a refund for C536379, that was $27.50", "refund", "negative"),
    ("out", "message", "Let me get a person for you.", None, None),
    ("in", "message", "this is ridiculous, I want a human", "human_handoff", "negative"),
    ("out", "agent", "Hi, I'm Sam, I'll look into order 536365 now.", None, None),
]


def messages() -> list[dict[str, object]]:
    start = dt.datetime(2026, 3, 1, 10, 0)
    return [{"direction": d, "kind": k, "text": t, "intent": i, "sentiment": s,
             "at": (start + dt.timedelta(minutes=n)).isoformat()}
            for n, (d, k, t, i, s) in enumerate(CONVERSATION)]


def test_summary_of_a_seeded_conversation() -> None:
    summary = ts.summarise(messages())
    assert summary.intents == [("order_status", 2), ("refund", 1), ("human_handoff", 1)]
    assert summary.orders == ["536365", "C536379"]
    assert summary.amounts == ["£139.12", "$27.50"]
    assert summary.sentiments == ["neutral", "negative", "negative", "negative"]
    assert summary.trend == "worsening"
    assert [a["intent"] for a in summary.answered] == ["order_status", "order_status", "refund"]
    assert summary.answered[1]["answer"].startswith("Sorry to hear that")
    assert summary.counts == {"customer": 4, "bot": 3, "agent": 1}
    assert summary.headline.startswith("order_status → refund → human_handoff; orders 536365")


def test_the_agents_message_is_not_what_the_bot_answered() -> None:
    summary = ts.summarise(messages())
    assert all("Sam" not in a["answer"] for a in summary.answered)
    assert "human_handoff" not in [a["intent"] for a in summary.answered]


@pytest.mark.parametrize(("sentiments", "trend"), [
    ([], "unknown"), (["negative"], "steady"), (["negative", "neutral", "positive"], "improving"),
    (["neutral", "neutral"], "steady"), (["positive", "negative"], "worsening"),
])
def test_sentiment_trend(sentiments: list[str], trend: str) -> None:
    assert ts.sentiment_trend(sentiments) == trend


def test_numbers_that_are_not_orders() -> None:
    assert ts.orders_in("call me at 10:30, I paid £536365.00 for 12 items") == []
    assert ts.orders_in("invoice #581587 and c581490") == ["581587", "C581490"]
    assert ts.amounts_in("about 1,250.5 pounds or €3") == ["£1,250.50", "€3.00"]


def test_a_saved_transcript_is_summarised_too() -> None:
    transcript = [{"from": "customer", "text": "refund 536365 please", "sentiment": "negative"},
                  {"from": "assistant", "text": "I can help with that."}]
    summary = ts.summarise(transcript)
    assert summary.orders == ["536365"] and summary.trend == "steady"
    assert summary.answered == [{"asked": "refund 536365 please", "intent": "",
                                 "answer": "I can help with that."}]


def test_summary_from_the_crm(sqlite_url: str) -> None:
    start = dt.datetime(2026, 3, 1, 10, 0)
    with session_scope(sqlite_url) as s:
        for n, (d, k, t, i, sent) in enumerate(CONVERSATION):
            s.add(m.Interaction(sender_id="web:x", channel="web", direction=d, kind=k, text=t,
                                intent=i, sentiment=sent,
                                created_at=start + dt.timedelta(minutes=n)))
    with session_scope(sqlite_url) as s:
        summary = ts.summarise_conversation(session=s, sender_id="web:x")
        other = ts.summarise_conversation(session=s, sender_id="web:none", transcript=[])
    assert summary.orders == ["536365", "C536379"] and summary.trend == "worsening"
    assert other.intents == [] and other.trend == "unknown"


def test_several_bot_messages_make_one_answer_and_long_ones_are_cut() -> None:
    rows = [{"from": "customer", "text": "gift cards?"},
            {"from": "assistant", "text": "Yes, from £10."},
            {"from": "assistant", "text": "They never expire."},
            {"from": "customer", "text": "and returns?"},
            {"from": "assistant", "text": "x" * 400},
            {"from": "agent", "text": "Hi"}, {"from": "assistant", "text": "after the agent"}]
    answered = ts.summarise(rows).answered
    assert [a["answer"][:30] for a in answered] == ["Yes, from £10. They never expi", "x" * 30]
    assert len(answered[1]["answer"]) == 160 and answered[1]["answer"].endswith("…")
