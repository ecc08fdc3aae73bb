"""Customer care: complaints, reviews, refunds, payment problems and product suggestions.

Complaints, reviews and payment problems need no verification: anyone may
report one, and the ticket is tied to the customer only when they are known.
When the message is only a wish to complain ("I want to make a complaint"),
``details_form`` asks for the details first. Refunds concern an order, so they
go through the customer gate of :mod:`actions.orders`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.base import call_crm
from actions.identity import identify
from actions.orders import (
    EMAIL_SLOT,
    NOT_FOUND,
    ORDER_SLOT,
    CustomerAction,
    crm_order_call,
    forget_verified_email,
    in_crm,
    last_user_text,
    money,
    order_facts,
    product_name,
    spoken_date,
    spoken_list,
)
from crm_ml import support
from crm_ml.identity import Identity

logger = logging.getLogger(__name__)

DETAILS_FORM = "details_form"
DETAILS_SLOT = "request_details"
KIND_SLOT = "details_kind"
DETAIL_KINDS = {"complaint", "review", "account_change"}
ORDER_KINDS = {"complaint", "review", "payment"}

_WORD_RE = re.compile(r"[a-z']+")
# Words that only say "I want to complain / review / change my account":
# a message made of these alone carries no details worth a ticket.
_REQUEST_WORDS = frozenset("""
    i i'm im i'd id me my mine we our you your a an the to of for about with on in at and or
    want wanna would like need needs have has had make made file lodge raise submit register
    send leave write give post do does did can could how where what please pls plz just some
    something it this that is am are be been so very really not happy unhappy
    complaint complaints complain complaining formal official feedback review reviews rate
    rating ratings star stars opinion experience service shop store company website site
    account profile details detail info information settings personal edit change changes
    update modify amend correct email e-mail mail address data
""".split())
_EMAIL_IN_TEXT = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,24}")


def is_generic(text: str) -> bool:
    """Whether a message only asks to complain/review/change, without any details."""
    words = _WORD_RE.findall(text.lower().replace("’", "'"))
    return all(word in _REQUEST_WORDS for word in words)


def email_in(text: str) -> str | None:
    """The first e-mail address written in ``text``, checked."""
    match = _EMAIL_IN_TEXT.search(text or "")
    return support.clean_email(match.group(0)) if match else None


def ask_for_details(kind: str) -> list[EventType]:
    """Start ``details_form`` to collect what the customer wants to tell us.

    The form's slot is empty whenever the form is not running (the submit
    action clears it); setting it here would count as a (blank) answer.
    """
    return [SlotSet(KIND_SLOT, kind), FollowupAction(DETAILS_FORM)]


def _order_id(tracker: Tracker) -> str | None:
    value = tracker.get_slot(ORDER_SLOT)
    return support.clean_order_id(value) if value else None


async def file_ticket(dispatcher: CollectingDispatcher, tracker: Tracker, action: str,
                      kind: str, text: str) -> int | None:
    """Open a ticket of ``kind`` with the customer's words; answer with its reference.

    The order under discussion goes with complaints, reviews and payment problems.
    """
    identity = identify(tracker)
    order_id = _order_id(tracker) if kind in ORDER_KINDS else None
    ticket = await call_crm(dispatcher, action, in_crm(
        support.open_customer_ticket, identity=identity, kind=kind, text=text,
        sender_id=tracker.sender_id, order_id=order_id))
    if ticket is not None:
        dispatcher.utter_message(response=f"utter_{kind}_recorded", ticket=ticket)
    return ticket


class ActionComplaint(Action):
    """Record a complaint as a ticket (asking what happened when the message does not say)."""

    def name(self) -> str:
        return "action_complaint"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[EventType]:
        text = last_user_text(tracker, {"complaint"})
        if is_generic(text):
            return ask_for_details("complaint")
        await file_ticket(dispatcher, tracker, self.name(), "complaint", text)
        return []


class ActionReview(Action):
    """Record a review or feedback as a ticket (asking for it when not given yet)."""

    def name(self) -> str:
        return "action_review"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[EventType]:
        text = last_user_text(tracker, {"review"})
        if is_generic(text):
            return ask_for_details("review")
        await file_ticket(dispatcher, tracker, self.name(), "review", text)
        return []


class ValidateDetailsForm(FormValidationAction):
    """Checks the free text collected by ``details_form``."""

    def name(self) -> str:
        return "validate_details_form"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        return [*await super().run(dispatcher, tracker, domain), *forget_verified_email(tracker)]

    async def validate_request_details(self, slot_value: Any, dispatcher: CollectingDispatcher,
                                       tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        if slot_value is None:
            return {DETAILS_SLOT: None}
        text = support.clean_text(slot_value)
        if len(text) < 3 or not any(ch.isalnum() for ch in text):
            dispatcher.utter_message(response="utter_details_too_short")
            return {DETAILS_SLOT: None}
        return {DETAILS_SLOT: text}


class ActionSubmitDetails(Action):
    """``details_form`` is complete: open the ticket it was collecting for."""

    def name(self) -> str:
        return "action_submit_details"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[EventType]:
        kind = tracker.get_slot(KIND_SLOT)
        text = support.clean_text(tracker.get_slot(DETAILS_SLOT))
        done: list[EventType] = [SlotSet(KIND_SLOT, None), SlotSet(DETAILS_SLOT, None)]
        if kind not in DETAIL_KINDS or not text:
            dispatcher.utter_message(response="utter_nothing_to_confirm")
            return done
        if kind == "account_change":
            identity = identify(tracker)
            if identity.role != "customer":
                dispatcher.utter_message(response="utter_need_verification")
                return done
            ticket = await call_crm(dispatcher, self.name(), in_crm(
                support.request_account_change, identity=identity, request=text,
                new_email=email_in(text), sender_id=tracker.sender_id))
            if ticket is not None:
                dispatcher.utter_message(response="utter_account_change_recorded", ticket=ticket)
            # A new address typed into the form also landed in the e-mail slot.
            return [*done, SlotSet(EMAIL_SLOT, None)]
        await file_ticket(dispatcher, tracker, self.name(), kind, text)
        return done


class ActionPaymentIssue(Action):
    """A payment problem: a ``payment`` ticket for the payments team, and what to do now."""

    def name(self) -> str:
        return "action_payment_issue"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[EventType]:
        text = last_user_text(tracker, {"payment_issue"})
        await file_ticket(dispatcher, tracker, self.name(), "payment", text)
        return []


class ActionRequestRefund(CustomerAction):
    """Ask for a refund of a shipped or delivered order (a ``refund`` ticket)."""

    order_needed = "required"

    def name(self) -> str:
        return "action_request_refund"

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     identity: Identity, order_id: str | None) -> list[EventType]:
        outcome = await crm_order_call(dispatcher, self.name(), in_crm(
            support.request_refund, identity=identity, order_id=order_id,
            reason=last_user_text(tracker, {"get_refund"}), sender_id=tracker.sender_id))
        if outcome is NOT_FOUND:
            return [SlotSet(ORDER_SLOT, None)]
        if not isinstance(outcome, support.RefundRequest):
            return []
        facts = order_facts(outcome.order)
        response = {
            "opened": "utter_refund_requested",
            "already_open": "utter_refund_already_requested",
            "processing": "utter_refund_not_shipped",
            "already_cancelled": "utter_refund_cancelled_order",
        }.get(outcome.outcome, "utter_refund_not_a_sale")
        dispatcher.utter_message(response=response, ticket=outcome.ticket_id, **facts)
        return []


def _refund_sentences(status: support.RefundStatus) -> list[str]:
    sentences = []
    for req in status.requests:
        about = f" for order {req.order_id}" if req.order_id else ""
        state = "is being handled" if req.status == "open" else f"is {req.status}"
        sentences.append(f"Your refund request{about}, reference {req.ticket_id}, from "
                         f"{spoken_date(req.opened_at)}, {state}.")
    for credit in status.credits:
        if credit.kind == "cancellation":
            sentences.append(f"{money(credit.amount)} was credited back to you on "
                             f"{spoken_date(credit.date)}, by cancellation note {credit.order_id}.")
        else:
            sentences.append(f"Order {credit.order_id} was cancelled, so its "
                             f"{money(credit.amount)} goes back to your original payment "
                             "method within 5 to 10 working days of the cancellation.")
    return sentences


class ActionRefundStatus(CustomerAction):
    """Where is my refund: open refund requests and amounts credited back."""

    def name(self) -> str:
        return "action_refund_status"

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     identity: Identity, order_id: str | None) -> list[EventType]:
        status = await call_crm(dispatcher, self.name(), in_crm(
            support.refund_status, identity=identity))
        if status is None:
            return []
        sentences = _refund_sentences(status)
        if not sentences:
            dispatcher.utter_message(response="utter_no_refunds")
        else:
            dispatcher.utter_message(response="utter_refund_status", details=" ".join(sentences))
        return []


class ActionRecommendProducts(Action):
    """Product ideas: the customer's own recommendations, else the shop's best sellers."""

    def name(self) -> str:
        return "action_recommend_products"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[EventType]:
        identity = identify(tracker)
        if identity.role != "customer":
            identity = Identity("anonymous")  # staff ask for a customer's ideas elsewhere
        found = await call_crm(dispatcher, self.name(), in_crm(
            support.suggestions, identity=identity))
        if found is None:
            return []
        if not found.items:
            dispatcher.utter_message(response="utter_no_suggestions")
            return []
        products = spoken_list([f"{product_name(p.description)} at {money(p.unit_price)}"
                                for p in found.items])
        response = "utter_suggest_personal" if found.personal else "utter_suggest_best_sellers"
        dispatcher.utter_message(response=response, products=products)
        return []

