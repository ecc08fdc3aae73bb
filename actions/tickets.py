"""Customer tickets: open one with the customer's words, or ask for the words first.

Shared by the care actions (:mod:`actions.support`) and the account actions
(:mod:`actions.account`). When a message is only a wish ("I want to make a
complaint"), ``details_form`` asks for the details before a ticket is opened.
"""

from __future__ import annotations

import logging

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.crm import crm_call
from actions.gate import ORDER_SLOT
from actions.identity import identify
from crm_ml import support

logger = logging.getLogger(__name__)

__all__ = [
    "DETAILS_FORM",
    "DETAILS_SLOT",
    "DETAIL_KINDS",
    "KIND_SLOT",
    "ORDER_KINDS",
    "ask_for_details",
    "file_ticket",
]

DETAILS_FORM = "details_form"
DETAILS_SLOT = "request_details"
KIND_SLOT = "details_kind"
DETAIL_KINDS = {"complaint", "review", "account_change"}
"""The kinds of request whose details ``details_form`` collects."""
ORDER_KINDS = {"complaint", "review", "payment"}
"""The kinds of ticket that carry the order under discussion."""


def ask_for_details(kind: str) -> list[EventType]:
    """Start ``details_form`` to collect what the customer wants to tell us.

    The form's slot is empty whenever the form is not running (the submit
    action clears it); setting it here would count as a (blank) answer.

    Args:
        kind: One of :data:`DETAIL_KINDS`.

    Returns:
        The events that start the form.
    """
    return [SlotSet(KIND_SLOT, kind), FollowupAction(DETAILS_FORM)]


def _order_id(tracker: Tracker) -> str | None:
    value = tracker.get_slot(ORDER_SLOT)
    return support.clean_order_id(value) if value else None


async def file_ticket(dispatcher: CollectingDispatcher, tracker: Tracker,
                      kind: str, text: str) -> int | None:
    """Open a ticket of ``kind`` with the customer's words; answer with its reference.

    The order under discussion goes with complaints, reviews and payment problems.

    Args:
        dispatcher: Where the answer goes (``utter_<kind>_recorded``).
        tracker: The conversation.
        kind: The ticket's kind (``complaint``, ``review``, ``payment``, ``newsletter``...).
        text: The customer's words.

    Returns:
        The ticket's number, or None after a polite failure answer.
    """
    identity = identify(tracker)
    order_id = _order_id(tracker) if kind in ORDER_KINDS else None
    ticket = await crm_call(dispatcher, support.open_customer_ticket, identity=identity,
                            kind=kind, text=text, sender_id=tracker.sender_id,
                            order_id=order_id)
    if ticket is not None:
        dispatcher.utter_message(response=f"utter_{kind}_recorded", ticket=ticket)
    return ticket
