"""action_handoff and action_customer_count with a Tracker and a CollectingDispatcher."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import ConversationPaused, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.customers import ActionCustomerCount
from actions.handoff import ActionHandoff, ActionSaveContact, transcript_of
from crm_ml import handoff, mail
from crm_ml.db import models as m
from crm_ml.db import session_scope
from crm_ml.errors import CRMUnavailable
from crm_ml.identity import sign
from tests.actions.wording import render

SECRET = "s3cret"


def tracker(sender: str = "web:t1", metadata: dict | None = None,
            slots: dict | None = None) -> Tracker:
    events = [
        {"event": "user", "text": "my parcel is lost again", "timestamp": 1.0,
         "parse_data": {"intent": {"name": "track_order"},
                        "entities": [{"entity": "sentiment", "value": "negative",
                                      "confidence": 0.7}]}},
        {"event": "bot", "text": "Sorry to hear that.", "timestamp": 2.0},
        {"event": "user", "text": "this is useless", "timestamp": 3.0,
         "parse_data": {"intent": {"name": "complaint"},
                        "entities": [{"entity": "sentiment", "value": "negative",
                                      "confidence": 0.9}]}},
    ]
    return Tracker(sender, slots or {"handoff_reason": "two negative messages in a row"},
                   {"intent": {"name": "complaint"}, "entities": [], "text": "this is useless",
                    "metadata": metadata or {}},
                   events, False, None, {}, "action_listen")


def run(action, t: Tracker) -> tuple[list, CollectingDispatcher]:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, t, {}))
    return events, dispatcher


@pytest.fixture
def crm(env, sqlite_url: str):
    env.setenv("CRM_DATABASE_URL", sqlite_url)
    env.setenv("CRM_IDENTITY_SECRET", SECRET)
    with session_scope() as s:
        s.add(m.Customer(id=12347, name="Ada", email="ada@example.com", country="Iceland",
                         anonymized=False))
    return env


def test_transcript_keeps_who_said_what_and_the_sentiments() -> None:
    transcript, sentiments = transcript_of(tracker())
    assert [t["from"] for t in transcript] == ["customer", "bot", "customer"]
    assert [s["sentiment"] for s in sentiments] == ["negative", "negative"]


def test_live_handoff_pauses_the_conversation(crm) -> None:
    crm.setenv("CRM_SUPPORT_HOURS", "always")
    from crm_ml.config import get_settings

    get_settings.cache_clear()
    with session_scope() as s:
        handoff.ensure_agent(session=s, agent_id=1)
        handoff.mark_agent_seen(session=s, agent_id=1)
    md = {"auth": {"user": "customer:12347", "sig": sign("customer:12347", SECRET)}}
    events, dispatcher = run(ActionHandoff(), tracker(metadata=md))
    assert events == [SlotSet("handoff_reason", None), ConversationPaused()]
    assert dispatcher.messages[0]["response"] == "utter_handoff_live"
    with session_scope() as s:
        esc = s.scalars(select(m.Escalation)).one()
        assert (esc.sender_id, esc.customer_id, esc.reason, esc.sentiment) == (
            "web:t1", 12347, "two negative messages in a row", "negative")
        assert esc.transcript[-1]["text"] == "this is useless"


def test_closed_desk_opens_a_ticket_and_does_not_pause(crm) -> None:
    crm.setenv("CRM_SUPPORT_HOURS", "Mon-Mon 00:00-00:01")
    from crm_ml.config import get_settings

    get_settings.cache_clear()
    # An anonymous visitor is asked for an e-mail before the ticket...
    events, dispatcher = run(ActionHandoff(), tracker())
    assert dispatcher.messages[0]["response"] == "utter_ask_contact_email"
    assert events[-1] == SlotSet("contact_pending", {"reason": "two negative messages in a row",
                                                     "tries": 0})
    # ...a wrong one is asked again, a right one kept, and then the ticket is opened.
    pending = {"contact_pending": {"reason": "two negative messages in a row", "tries": 0}}
    answer = tracker(slots=pending)
    answer.latest_message["text"] = "my mail is ada(at)example"
    events, dispatcher = run(ActionSaveContact(), answer)
    assert dispatcher.messages[0]["response"] == "utter_contact_email_invalid"
    answer.latest_message["text"] = "it's Ada@Example.com"
    events, dispatcher = run(ActionSaveContact(), answer)
    assert [x["response"] for x in dispatcher.messages] == ["utter_contact_email_saved",
                                                           "utter_handoff_ticket"]
    msg = dispatcher.messages[1]
    assert events == [SlotSet("contact_pending", None), SlotSet("handoff_reason", None),
                      SlotSet("thread_ticket", msg["ticket"])]
    assert msg["ticket"] is not None and "Monday" in msg["expectation"]
    with session_scope() as s:
        assert mail.contact_of(session=s, sender_id="web:t1") == "Ada@example.com"
    with session_scope() as s:
        esc = s.scalars(select(m.Escalation)).one()
        assert esc.customer_id is None  # anonymous caller: no profile attached
        assert esc.status == "ticket"


def test_crm_down_gives_a_polite_answer(crm, monkeypatch) -> None:
    def down(**_k):
        raise CRMUnavailable("down")

    monkeypatch.setattr(handoff, "open_escalation", down)
    monkeypatch.setattr(handoff, "needs_contact", down)
    events, dispatcher = run(ActionHandoff(), tracker())
    assert events == [SlotSet("handoff_reason", None)]
    assert dispatcher.messages == [{
        "text": None, "buttons": [], "elements": [], "custom": {},
        "template": "utter_crm_unavailable", "response": "utter_crm_unavailable",
        "image": None, "attachment": None}]


def staff(user: str = "rep:2") -> dict:
    return {"auth": {"user": user, "sig": sign(user, SECRET)}}


@pytest.mark.parametrize("user", ["rep:2", "manager:1", "agent:1"])
def test_customer_count(crm, user: str) -> None:
    with session_scope() as s:
        s.add(m.Order(id="1", customer_id=12347, invoiced_at=dt.datetime(2011, 1, 1),
                      country="Iceland", kind="sale", status="delivered", total=1))
    events, dispatcher = run(ActionCustomerCount(), tracker(metadata=staff(user)))
    assert events == []
    assert render(dispatcher.messages[0]).startswith("We have 1 customers in the CRM; 1 of them")


@pytest.mark.parametrize("metadata, slots", [
    ({}, None),  # anonymous
    ({"auth": {"user": "customer:12347", "sig": sign("customer:12347", SECRET)}}, None),
    ({}, {"verified_customer": "12347"}),  # verified in the conversation
    ({"auth": {"user": "rep:2", "sig": "0" * 64}}, None),  # forged: anonymous
])
def test_customer_count_is_for_staff_only(crm, metadata: dict, slots: dict | None) -> None:
    """Company-wide figures (analytics.read): customers and visitors are politely refused."""
    events, dispatcher = run(ActionCustomerCount(), tracker(metadata=metadata, slots=slots))
    assert events == []
    assert [msg["response"] for msg in dispatcher.messages] == ["utter_not_allowed"]
    assert all(not msg["text"] for msg in dispatcher.messages)


def test_customer_count_when_the_database_is_gone(env, tmp_path) -> None:
    env.setenv("CRM_DATABASE_URL", f"sqlite:///{tmp_path / 'missing' / 'no.db'}")
    env.setenv("CRM_IDENTITY_SECRET", SECRET)
    (tmp_path / "missing").mkdir()
    (tmp_path / "missing" / "no.db").mkdir()  # a folder where the file should be
    events, dispatcher = run(ActionCustomerCount(), tracker(metadata=staff()))
    assert events == []
    assert dispatcher.messages[0]["response"] == "utter_crm_unavailable"
