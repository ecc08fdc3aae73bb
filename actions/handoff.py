"""Escalation to a human agent (the action side of bot/policy.py's decision)."""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.crm import crm_call
from actions.identity import identify
from crm_ml import handoff
from crm_ml.contract import channel_of

logger = logging.getLogger(__name__)

__all__ = ["ActionHandoff", "transcript_of"]

TRANSCRIPT_TURNS = 50


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
        transcript, sentiments = transcript_of(tracker)
        customer_id = identity.number if identity.role == "customer" else None
        channel = channel_of(tracker.sender_id, tracker.get_latest_input_channel())
        outcome = await crm_call(dispatcher, handoff.open_escalation,
                                 sender_id=tracker.sender_id, channel=channel, reason=reason,
                                 transcript=transcript, sentiment_history=sentiments,
                                 customer_id=customer_id, live_possible=channel != "voice")
        if outcome is None:
            return [SlotSet("handoff_reason", None)]
        if outcome.live:
            dispatcher.utter_message(response="utter_handoff_live")
            return [SlotSet("handoff_reason", None), ConversationPaused()]
        dispatcher.utter_message(response="utter_handoff_ticket",
                                 ticket=outcome.ticket_id, expectation=outcome.expectation)
        return [SlotSet("handoff_reason", None)]
