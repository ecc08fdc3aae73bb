"""Customer care: complaints, reviews, refunds, payment problems and product suggestions.

Complaints, reviews and payment problems need no verification: anyone may
report one, and the ticket is tied to the customer only when they are known.
When the message is only a wish to complain ("I want to make a complaint"),
``details_form`` asks for the details first. Refunds concern an order, so they
go through the customer gate (:mod:`actions.gate`).
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.crm import NOT_FOUND, crm_call
from actions.gate import (
    CONFIRM_SLOT,
    EMAIL_SLOT,
    ORDER_SLOT,
    CustomerAction,
    forget_verified_email,
)
from actions.identity import identify
from actions.parsing import email_in, is_generic, last_user_text
from actions.speech import order_facts, product_name, say_date, say_list, say_price
from actions.tickets import (
    DETAIL_KINDS,
    DETAILS_SLOT,
    KIND_SLOT,
    ask_for_details,
    file_ticket,
)
from crm_ml import support
from crm_ml.identity import Identity

logger = logging.getLogger(__name__)

__all__ = [
    "ActionComplaint",
    "ActionPaymentIssue",
    "ActionRecommendProducts",
    "ActionRefundStatus",
    "ActionRequestRefund",
    "ActionReview",
    "ActionSubmitDetails",
    "ValidateDetailsForm",
    # Kept importable from here for tests/e2e/test_conversation_tests.py; home: actions.parsing.
    "email_in",
    "is_generic",
]


class ActionComplaint(Action):
    """Record a complaint as a ticket (asking what happened when the message does not say)."""

    def name(self) -> str:
        return "action_complaint"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[EventType]:
        text = last_user_text(tracker, {"complaint"})
        if is_generic(text):
            return ask_for_details("complaint")
        await file_ticket(dispatcher, tracker, "complaint", text)
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
        await file_ticket(dispatcher, tracker, "review", text)
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
            ticket = await crm_call(dispatcher, support.request_account_change,
                                    identity=identity, request=text, new_email=email_in(text),
                                    sender_id=tracker.sender_id)
            if ticket is not None:
                dispatcher.utter_message(response="utter_account_change_recorded", ticket=ticket)
            # A new address typed into the form also landed in the e-mail slot.
            return [*done, SlotSet(EMAIL_SLOT, None)]
        await file_ticket(dispatcher, tracker, kind, text)
        return done


class ActionPaymentIssue(Action):
    """A payment problem: a ``payment`` ticket for the payments team, and what to do now."""

    def name(self) -> str:
        return "action_payment_issue"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[EventType]:
        text = last_user_text(tracker, {"payment_issue"})
        await file_ticket(dispatcher, tracker, "payment", text)
        return []


class ActionRequestRefund(CustomerAction):
    """Ask for a refund of a shipped or delivered order: confirmed first, then a ``refund`` ticket.

    The question says the refund is for the whole order and that one wrong or
    damaged item can be refunded alone; the customer's "yes" opens the ticket
    (:class:`actions.orders.ActionConfirmChange`).
    """

    order_needed = "required"

    def name(self) -> str:
        return "action_request_refund"

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     identity: Identity, order_id: str | None) -> list[EventType]:
        order = await crm_call(dispatcher, support.order_status, identity=identity,
                               order_id=order_id, not_found="utter_order_not_found")
        if order is NOT_FOUND:
            return [SlotSet(ORDER_SLOT, None)]
        if not isinstance(order, support.OrderSummary):
            return []
        facts = order_facts(order)
        if order.kind == "sale" and order.status in {"shipped", "delivered"}:
            dispatcher.utter_message(response="utter_confirm_refund", **facts)
            return [SlotSet(CONFIRM_SLOT, f"refund_order:{order.order_id}")]
        response = {"processing": "utter_refund_not_shipped",
                    "cancelled": "utter_refund_cancelled_order"}.get(
                        order.status if order.kind == "sale" else "", "utter_refund_not_a_sale")
        dispatcher.utter_message(response=response, **facts)
        return []


def _refund_sentences(status: support.RefundStatus) -> list[str]:
    sentences = []
    for req in status.requests:
        about = f" for order {req.order_id}" if req.order_id else ""
        state = "is being handled" if req.status == "open" else f"is {req.status}"
        sentences.append(f"Your refund request{about}, reference {req.ticket_id}, from "
                         f"{say_date(req.opened_at)}, {state}.")
    for credit in status.credits:
        if credit.kind == "cancellation":
            sentences.append(f"{say_price(credit.amount)} was credited back to you on "
                             f"{say_date(credit.date)}, by cancellation note {credit.order_id}.")
        else:
            sentences.append(f"Order {credit.order_id} was cancelled, so its "
                             f"{say_price(credit.amount)} goes back to your original payment "
                             "method within 5 to 10 working days of the cancellation.")
    return sentences


class ActionRefundStatus(CustomerAction):
    """Where is my refund: open refund requests and amounts credited back."""

    def name(self) -> str:
        return "action_refund_status"

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     identity: Identity, order_id: str | None) -> list[EventType]:
        status = await crm_call(dispatcher, support.refund_status, identity=identity)
        if status is None:
            return []
        sentences = _refund_sentences(status)
        if not sentences:
            dispatcher.utter_message(response="utter_no_refunds")
        else:
            dispatcher.utter_message(response="utter_refund_status", details=" ".join(sentences))
        return []


STAFF_ROLES = frozenset({"rep", "manager", "agent"})


class ActionRecommendProducts(Action):
    """Product ideas: the customer's own recommendations, else the shop's best sellers."""

    def name(self) -> str:
        return "action_recommend_products"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[EventType]:
        identity = identify(tracker)
        if identity.role in STAFF_ROLES:
            # "top products this month" from a rep reads like a shopper's "what's popular":
            # staff get the business question's answer (country, period, N honoured)
            from actions.business import ActionTopProducts

            return await ActionTopProducts().run(dispatcher, tracker, domain)
        if identity.role != "customer":
            identity = Identity("anonymous")
        found = await crm_call(dispatcher, support.suggestions, identity=identity)
        if found is None:
            return []
        if not found.items:
            dispatcher.utter_message(response="utter_no_suggestions")
            return []
        products = say_list([f"{product_name(p.description)} at {say_price(p.unit_price)}"
                             for p in found.items])
        response = "utter_suggest_personal" if found.personal else "utter_suggest_best_sellers"
        dispatcher.utter_message(response=response, products=products)
        return []

