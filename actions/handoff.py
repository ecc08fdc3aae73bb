"""Escalation to a human agent (the action side of bot/policy.py's decision).

One conversation, one thread: a second escalation joins the open one and the
customer hears their existing ticket number (``utter_handoff_existing``); while
a ticket waits, bot/policy.py sends what the customer writes to
:class:`ActionAddToThread`; after the agent resolves it, the customer's 1-5 goes
to :class:`ActionRate`.
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.crm import crm_call
from actions.identity import identify
from crm_ml import handoff, mail
from crm_ml.contract import channel_of
from crm_ml.pii import EMAIL_RE

logger = logging.getLogger(__name__)

__all__ = [
    "RATING_SLOT",
    "THREAD_SLOT",
    "ActionAddToThread",
    "ActionHandoff",
    "ActionRate",
    "ActionSaveContact",
    "transcript_of",
]

TRANSCRIPT_TURNS = 50
THREAD_SLOT = "thread_ticket"
RATING_SLOT = "rating_pending"
CONTACT_SLOT = "contact_pending"
#: Channels whose anonymous visitors have no way back but e-mail (Telegram and
#: voice reach the person on their own channel).
EMAIL_CHANNELS = {"web", "rest"}
#: Wrong addresses tolerated before the ticket is opened without one.
MAX_EMAIL_TRIES = 2
_NO = {"no", "nope", "no thanks", "no thank you", "no e-mail", "no email", "skip", "n"}


def transcript_of(tracker: Tracker) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The conversation so far and the customer's sentiment per message."""
    transcript: list[dict[str, Any]] = []
    sentiments: list[dict[str, Any]] = []
    for event in tracker.events:
        kind = event.get("event")
        if kind == "user":
            parse = event.get("parse_data") or {}
            sentiment = next((e for e in parse.get("entities") or []
                              if e.get("entity") == "sentiment"), None)
            item = {"from": "customer", "text": event.get("text") or "",
                    "at": event.get("timestamp"),
                    "intent": (parse.get("intent") or {}).get("name")}
            if sentiment:
                item["sentiment"] = sentiment.get("value")
                sentiments.append({"at": event.get("timestamp"),
                                   "sentiment": sentiment.get("value"),
                                   "confidence": sentiment.get("confidence")})
            transcript.append(item)
        elif kind == "bot" and event.get("text"):
            transcript.append({"from": "bot", "text": event["text"],
                               "at": event.get("timestamp")})
    return transcript[-TRANSCRIPT_TURNS:], sentiments[-TRANSCRIPT_TURNS:]


class ActionHandoff(Action):
    """Record the escalation with its context; pause for a live agent, or open a ticket."""

    def name(self) -> str:
        return "action_handoff"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        identity = identify(tracker)
        reason = tracker.get_slot("handoff_reason") or "asked for a human"
        customer_id = identity.number if identity.role == "customer" else None
        channel = channel_of(tracker.sender_id, tracker.get_latest_input_channel())
        if customer_id is None and channel in EMAIL_CHANNELS:
            ask = await crm_call(dispatcher, handoff.needs_contact, sender_id=tracker.sender_id)
            if ask is None:  # the CRM is down: crm_call answered politely
                return [SlotSet("handoff_reason", None)]
            if ask:  # a ticket, and no way back to this visitor yet: ask first
                dispatcher.utter_message(response="utter_ask_contact_email")
                return [SlotSet("handoff_reason", None),
                        SlotSet(CONTACT_SLOT, {"reason": reason, "tries": 0})]
        return await hand_over(dispatcher, tracker, reason, customer_id, channel)


async def hand_over(dispatcher: CollectingDispatcher, tracker: Tracker, reason: str,
                    customer_id: int | None, channel: str) -> list[dict[str, Any]]:
    """Record the escalation; pause for a live agent, or open (or join) the ticket."""
    transcript, sentiments = transcript_of(tracker)
    outcome = await crm_call(dispatcher, handoff.open_escalation,
                             sender_id=tracker.sender_id, channel=channel, reason=reason,
                             transcript=transcript, sentiment_history=sentiments,
                             customer_id=customer_id, live_possible=channel != "voice")
    if outcome is None:
        return [SlotSet("handoff_reason", None)]
    if outcome.live:
        dispatcher.utter_message(response="utter_handoff_live")
        return [SlotSet("handoff_reason", None), ConversationPaused()]
    response = "utter_handoff_existing" if outcome.existing else "utter_handoff_ticket"
    dispatcher.utter_message(response=response, ticket=outcome.ticket_id,
                             expectation=outcome.expectation)
    return [SlotSet("handoff_reason", None), SlotSet(THREAD_SLOT, outcome.ticket_id)]


class ActionSaveContact(Action):
    """Keep the e-mail an anonymous visitor gives for their ticket, then open the ticket."""

    def name(self) -> str:
        return "action_save_contact"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        pending = tracker.get_slot(CONTACT_SLOT) or {}
        reason = pending.get("reason") or "asked for a human"
        tries = int(pending.get("tries") or 0)
        text = ((tracker.latest_message or {}).get("text") or "").strip()
        found = EMAIL_RE.search(text)
        address = mail.valid_email(found.group(0)) if found else None
        channel = channel_of(tracker.sender_id, tracker.get_latest_input_channel())
        events: list[dict[str, Any]] = [SlotSet(CONTACT_SLOT, None)]
        if address is not None:
            saved = await crm_call(dispatcher, mail.save_contact, sender_id=tracker.sender_id,
                                   email=address)
            if saved is not None:
                dispatcher.utter_message(response="utter_contact_email_saved", email=address)
        elif text.lower().strip(".!") not in _NO and tries + 1 < MAX_EMAIL_TRIES:
            dispatcher.utter_message(response="utter_contact_email_invalid")
            return [SlotSet(CONTACT_SLOT, {"reason": reason, "tries": tries + 1})]
        return events + await hand_over(dispatcher, tracker, reason, None, channel)


class ActionAddToThread(Action):
    """Put what the customer writes while their ticket waits into that ticket."""

    def name(self) -> str:
        return "action_add_to_thread"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        transcript, _ = transcript_of(tracker)
        items = [item for item in transcript if item["from"] == "customer"]
        ticket = await crm_call(dispatcher, handoff.add_to_thread,
                                sender_id=tracker.sender_id, items=items)
        if ticket is None:  # resolved meanwhile (or the CRM answered politely already)
            return [SlotSet(THREAD_SLOT, None)]
        expectation = await crm_call(dispatcher, handoff.thread_expectation,
                                     sender_id=tracker.sender_id)
        dispatcher.utter_message(response="utter_thread_note_added", ticket=ticket,
                                 expectation=expectation or "")
        return []


class ActionRate(Action):
    """Store the customer's 1-5 rating of the thread an agent resolved."""

    def name(self) -> str:
        return "action_rate"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        text = (tracker.latest_message or {}).get("text") or ""
        score = handoff.rating_of(text)
        if score is None:
            dispatcher.utter_message(response="utter_rating_ask")
            return []
        channel = channel_of(tracker.sender_id, tracker.get_latest_input_channel())
        stored = await crm_call(dispatcher, handoff.record_rating, sender_id=tracker.sender_id,
                                score=score, channel=channel)
        if stored is not None:
            dispatcher.utter_message(response="utter_rating_thanks", score=score)
        return [SlotSet(RATING_SLOT, None)]
