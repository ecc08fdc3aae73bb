"""The thread's actions: a second escalation names the open ticket, notes join it, ratings."""

from __future__ import annotations

import asyncio

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import func, select

from actions.handoff import ActionAddToThread, ActionHandoff, ActionRate
from crm_ml import handoff, mail
from crm_ml.config import get_settings
from crm_ml.db import models as m
from crm_ml.db import session_scope
from crm_ml.db.models_helpdesk import ConversationRating


def _user(text: str, at: float, sentiment: str = "negative", confidence: float = 0.9) -> dict:
    return {"event": "user", "text": text, "timestamp": at,
            "parse_data": {"intent": {"name": "complaint"},
                           "entities": [{"entity": "sentiment", "value": sentiment,
                                         "confidence": confidence}]}}


def _tracker(events: list[dict], slots: dict | None = None, text: str = "") -> Tracker:
    return Tracker("web:thread", slots or {"handoff_reason": "very negative message"},
                   {"intent": {"name": "complaint"}, "entities": [], "text": text,
                    "metadata": {}}, events, False, None, {}, "action_listen")


def _run(action, tracker: Tracker) -> tuple[list, CollectingDispatcher]:
    dispatcher = CollectingDispatcher()
    return asyncio.run(action.run(dispatcher, tracker, {})), dispatcher


@pytest.fixture
def closed_desk(env, sqlite_url: str):
    env.setenv("CRM_DATABASE_URL", sqlite_url)
    env.setenv("CRM_SUPPORT_HOURS", "Mon-Mon 00:00-00:01")
    get_settings.cache_clear()
    with session_scope() as s:  # the visitor left an e-mail already (asked in test_handoff)
        mail.save_contact(session=s, sender_id="web:thread", email="v@example.com")
    yield
    get_settings.cache_clear()


def test_second_escalation_names_the_open_ticket_and_notes_join_it(closed_desk) -> None:
    events = [_user("my parcel is late", 1.0)]
    _, first = _run(ActionHandoff(), _tracker(events))
    ticket = first.messages[0]["ticket"]
    events += [{"event": "bot", "text": "ticket", "timestamp": 2.0},
               _user("this is a joke, I want a human", 3.0)]
    out, second = _run(ActionHandoff(), _tracker(events, {"handoff_reason": "asked for a human"}))
    assert second.messages[0]["response"] == "utter_handoff_existing"
    assert second.messages[0]["ticket"] == ticket and "Monday" in second.messages[0]["expectation"]
    assert SlotSet("thread_ticket", ticket) in out
    events.append(_user("ok thanks. when will it arrive then?", 4.0, "neutral", 0.6))
    out, note = _run(ActionAddToThread(), _tracker(events, {"thread_ticket": ticket}))
    assert out == [] and note.messages[0]["response"] == "utter_thread_note_added"
    assert note.messages[0]["ticket"] == ticket
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(m.Ticket)) == 1
        body = s.get(m.Ticket, ticket).body
        assert body.count("Customer:") == 3 and "when will it arrive then? (neutral)" in body
        esc = s.scalars(select(m.Escalation)).one()
        assert esc.reason == "asked for a human"
        assert [h["sentiment"] for h in esc.sentiment_history] == [
            "negative", "negative", "neutral"]


def test_a_note_after_the_resolve_clears_the_slot(closed_desk) -> None:
    events = [_user("awful", 1.0)]
    _run(ActionHandoff(), _tracker(events))
    with session_scope() as s:
        esc = s.scalars(select(m.Escalation)).one()
        handoff.resolve_thread(session=s, escalation_id=esc.id, agent="agent:1")
    out, note = _run(ActionAddToThread(), _tracker(events, {"thread_ticket": 1}))
    assert out == [SlotSet("thread_ticket", None)] and note.messages == []


def test_the_rating_is_stored_and_thanked(closed_desk) -> None:
    _run(ActionHandoff(), _tracker([_user("awful", 1.0)]))
    with session_scope() as s:
        esc = s.scalars(select(m.Escalation)).one()
        handoff.resolve_thread(session=s, escalation_id=esc.id, agent="agent:1")
    out, thanks = _run(ActionRate(), _tracker([], {"rating_pending": True}, text="4/5"))
    assert out == [SlotSet("rating_pending", None)]
    assert thanks.messages[0]["response"] == "utter_rating_thanks"
    assert thanks.messages[0]["score"] == 4
    out, again = _run(ActionRate(), _tracker([], {"rating_pending": True}, text="great"))
    assert out == [] and again.messages[0]["response"] == "utter_rating_ask"
    with session_scope() as s:
        assert [(r.score, r.channel) for r in s.scalars(select(ConversationRating))] == [
            (4, "web")]
