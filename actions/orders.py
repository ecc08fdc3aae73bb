"""Customer orders: order status, cancellation, changes, invoices; resuming a request.

Every action here but the confirmations goes through the customer gate
(:mod:`actions.gate`). :class:`ActionVerifyCustomer` runs when the customer
answers the gate's question with an order number and/or e-mail: it resumes the
request the gate remembered.
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.crm import NOT_FOUND, crm_call
from actions.gate import (
    CONFIRM_SLOT,
    EMAIL_SLOT,
    ORDER_SLOT,
    PENDING_SLOT,
    CustomerAction,
    customer_actions,
)
from actions.identity import identify
from actions.parsing import last_user_text
from actions.speech import order_facts, product_name, say_count, say_list, say_price
from crm_ml import gdpr, support
from crm_ml.identity import Identity

logger = logging.getLogger(__name__)

__all__ = [
    "ActionCancelOrder",
    "ActionChangeOrder",
    "ActionCheckInvoice",
    "ActionConfirmChange",
    "ActionDeclineChange",
    "ActionGetInvoice",
    "ActionOrderStatus",
    "ActionVerifyCustomer",
    "order_given_before",
]

NOT_AN_ORDER = "utter_order_not_found"
"""The answer to an order number that is unknown or another customer's."""


def remember_order(found: str, asked: str | None) -> list[EventType]:
    """Keep the order just described in the slot ("and cancel it" refers to it)."""
    return [] if found == asked else [SlotSet(ORDER_SLOT, found)]


# --------------------------------------------------------------------------- actions


REQUEST_INTENTS = {
    "track_order": "action_order_status", "cancel_order": "action_cancel_order",
    "change_order": "action_change_order", "check_invoice": "action_check_invoice",
    "get_invoice": "action_get_invoice", "get_refund": "action_request_refund",
    "track_refund": "action_refund_status", "report_missing_parcel": "action_missing_parcel",
    "report_wrong_item": "action_wrong_item", "report_damaged_item": "action_wrong_item",
    "show_orders": "action_list_orders",
}
"""Requests that a message full of details may carry ("cancel 536365, e-mail ...")."""
RUNNER_UP_CONFIDENCE = 0.25


def request_in_details(tracker: Tracker) -> str | None:
    """The request behind a message classified as ``inform``, if the NLU saw one.

    "Please cancel order 536365, my e-mail is ..." is mostly details, so
    ``inform`` may win; a request intent close behind it is what the customer wants.
    """
    ranking = (tracker.latest_message or {}).get("intent_ranking") or []
    for item in ranking:
        name, confidence = item.get("name"), item.get("confidence") or 0.0
        if name in REQUEST_INTENTS and confidence >= RUNNER_UP_CONFIDENCE:
            return REQUEST_INTENTS[name]
    return None


class ActionVerifyCustomer(Action):
    """The customer gave an order number and/or e-mail: resume what they asked for.

    Without a pending request, the request the NLU saw behind the details is
    run, and failing that an order number means "where is this order".
    """

    def name(self) -> str:
        return "action_verify_customer"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[EventType]:
        pending = tracker.get_slot(PENDING_SLOT)
        targets = customer_actions()
        target = targets.get(pending) if isinstance(pending, str) else None
        if target is None:
            target = targets.get(request_in_details(tracker) or "", ActionOrderStatus)
        kept = order_given_before(tracker)
        if kept is None:
            return await target().run(dispatcher, tracker, domain)
        tracker = tracker.copy()
        tracker.slots[ORDER_SLOT] = kept
        return [SlotSet(ORDER_SLOT, kept), *await target().run(dispatcher, tracker, domain)]


def order_given_before(tracker: Tracker) -> str | None:
    """The order number to check a newly sent e-mail against, when this message has none.

    A failed check forgets both details (a wrong pair must not be retried by
    itself); a customer who then sends only the e-mail again meant the order
    number they gave before, so they are not asked for it twice.

    Returns:
        That order number, or None when the message brings its own, the caller is
        known already, no request is waiting, or no order number was given before.
    """
    if (tracker.get_slot(ORDER_SLOT) or not tracker.get_slot(EMAIL_SLOT)
            or not tracker.get_slot(PENDING_SLOT) or identify(tracker).role == "customer"):
        return None
    for event in reversed(tracker.events):
        if event.get("event") == "slot" and event.get("name") == ORDER_SLOT and event.get("value"):
            return support.clean_order_id(event["value"])
    return None


class ActionOrderStatus(CustomerAction):
    """Where is my order: date, status, total and size (the latest order by default)."""

    order_needed = "optional"

    def name(self) -> str:
        return "action_order_status"

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     identity: Identity, order_id: str | None) -> list[EventType]:
        order = await crm_call(dispatcher, support.order_status, identity=identity,
                               order_id=order_id, not_found=NOT_AN_ORDER)
        if order is NOT_FOUND:
            return [SlotSet(ORDER_SLOT, None)] if order_id else []
        if order is None:
            return []
        assert isinstance(order, support.OrderSummary)
        if order.kind == "cancellation":
            dispatcher.utter_message(response="utter_order_status_credit", **order_facts(order))
        else:
            if order_id is None:
                dispatcher.utter_message(response="utter_latest_order")
            dispatcher.utter_message(response=f"utter_order_status_{order.status}",
                                     **order_facts(order))
        return remember_order(order.order_id, order_id)


class ActionCancelOrder(CustomerAction):
    """Cancel an order: checks it can still be cancelled, then asks to confirm."""

    order_needed = "required"

    def name(self) -> str:
        return "action_cancel_order"

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     identity: Identity, order_id: str | None) -> list[EventType]:
        order = await crm_call(dispatcher, support.order_status, identity=identity,
                               order_id=order_id, not_found=NOT_AN_ORDER)
        if order is NOT_FOUND:
            return [SlotSet(ORDER_SLOT, None)]
        if order is None:
            return []
        assert isinstance(order, support.OrderSummary)
        if order.kind == "sale" and order.status == "processing":
            dispatcher.utter_message(response="utter_confirm_cancel", **order_facts(order))
            return [SlotSet(CONFIRM_SLOT, f"cancel_order:{order.order_id}")]
        explain_not_cancellable(dispatcher, order)
        return []


def explain_not_cancellable(dispatcher: CollectingDispatcher,
                            order: support.OrderSummary) -> None:
    """Why an order can no longer be cancelled, and what to do instead."""
    if order.kind != "sale":
        reason = "not_a_sale"
    elif order.status == "cancelled":
        reason = "already_cancelled"
    else:
        reason = order.status
    dispatcher.utter_message(response=f"utter_cannot_cancel_{reason}", **order_facts(order))


class ActionConfirmChange(Action):
    """The customer said yes to a change the bot asked them to confirm."""

    def name(self) -> str:
        return "action_confirm_change"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[EventType]:
        pending = tracker.get_slot(CONFIRM_SLOT)
        identity = identify(tracker)
        if not isinstance(pending, str) or identity.role != "customer":
            dispatcher.utter_message(response="utter_nothing_to_confirm")
            return [SlotSet(CONFIRM_SLOT, None)] if pending else []
        done = [SlotSet(CONFIRM_SLOT, None)]
        what, _, subject = pending.partition(":")  # cancel_order:<order>, delete_account:<id>
        if what == "cancel_order" and support.clean_order_id(subject):
            outcome = await crm_call(dispatcher, support.cancel_order, identity=identity,
                                     order_id=subject, actor=tracker.sender_id,
                                     not_found=NOT_AN_ORDER)
            if isinstance(outcome, support.CancelOutcome):
                if outcome.cancelled:
                    dispatcher.utter_message(response="utter_order_cancelled",
                                             **order_facts(outcome.order))
                else:  # it shipped in the meantime
                    explain_not_cancellable(dispatcher, outcome.order)
            return done
        if what == "refund_order" and support.clean_order_id(subject):
            await confirm_refund(dispatcher, tracker, identity, subject)
            return done
        if what == "delete_account":
            if subject != str(identity.number):  # asked while someone else was verified
                dispatcher.utter_message(response="utter_nothing_to_confirm")
                return done
            return done + await erase_account(dispatcher, tracker, identity)
        dispatcher.utter_message(response="utter_nothing_to_confirm")
        return done


REFUND_ANSWERS = {"opened": "utter_refund_requested",
                  "already_open": "utter_refund_already_requested",
                  "processing": "utter_refund_not_shipped",
                  "already_cancelled": "utter_refund_cancelled_order"}


async def confirm_refund(dispatcher: CollectingDispatcher, tracker: Tracker,
                         identity: Identity, order_id: str) -> None:
    """The customer said yes to refunding the whole order ``order_id``: open the refund ticket."""
    outcome = await crm_call(dispatcher, support.request_refund, identity=identity,
                             order_id=order_id, reason=last_user_text(tracker, {"get_refund"}),
                             sender_id=tracker.sender_id, not_found=NOT_AN_ORDER)
    if isinstance(outcome, support.RefundRequest):
        dispatcher.utter_message(response=REFUND_ANSWERS.get(outcome.outcome,
                                                             "utter_refund_not_a_sale"),
                                 ticket=outcome.ticket_id, **order_facts(outcome.order))


async def erase_account(dispatcher: CollectingDispatcher, tracker: Tracker,
                        identity: Identity) -> list[EventType]:
    """Erase the verified customer ``identity`` at once, as ``crm-ml gdpr erase`` does.

    The conversation's own stored events are redacted in place (Rasa saves this
    tracker after the action; see :mod:`crm_ml.gdpr`). On success a new session
    starts: it resets every slot (the verified customer, the e-mail, the order)
    and Rasa never loads the erased part of the conversation again.
    """
    counts = await crm_call(dispatcher, gdpr.erase_own_account, identity=identity,
                            sender_id=tracker.sender_id)
    if counts is None:  # already answered; nothing was erased
        return []
    dispatcher.utter_message(response="utter_account_erased")
    return [SessionStarted()]


class ActionDeclineChange(Action):
    """The customer said no to a change the bot asked them to confirm."""

    def name(self) -> str:
        return "action_decline_change"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[EventType]:
        if tracker.get_slot(CONFIRM_SLOT):
            dispatcher.utter_message(response="utter_left_unchanged")
            return [SlotSet(CONFIRM_SLOT, None)]
        dispatcher.utter_message(response="utter_nothing_to_confirm")
        return []


class ActionChangeOrder(CustomerAction):
    """Change an order: passed to the team while it is being prepared, else explained."""

    order_needed = "required"

    def name(self) -> str:
        return "action_change_order"

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     identity: Identity, order_id: str | None) -> list[EventType]:
        request = last_user_text(tracker, {"change_order"})
        outcome = await crm_call(dispatcher, support.request_order_change, identity=identity,
                                 order_id=order_id, request=request,
                                 sender_id=tracker.sender_id, not_found=NOT_AN_ORDER)
        if outcome is NOT_FOUND:
            return [SlotSet(ORDER_SLOT, None)]
        if not isinstance(outcome, support.RefundRequest):
            return []
        facts = order_facts(outcome.order)
        if outcome.outcome in {"opened", "already_open"}:
            dispatcher.utter_message(response="utter_order_change_passed",
                                     ticket=outcome.ticket_id, **facts)
        elif outcome.outcome in {"shipped", "delivered"}:
            dispatcher.utter_message(response="utter_order_change_too_late", **facts)
        elif outcome.outcome == "already_cancelled":
            dispatcher.utter_message(response="utter_order_change_cancelled", **facts)
        else:  # a cancellation note
            dispatcher.utter_message(response="utter_order_change_not_possible", **facts)
        return []


def _invoice_lines(inv: support.Invoice) -> str:
    parts = [f"{line.quantity} {product_name(line.description)} at {say_price(line.unit_price)}"
             for line in inv.lines]
    rest = inv.order.lines - len(inv.lines)
    if rest > 0:
        parts.append(say_count(rest, "other line"))
    return say_list(parts)


class ActionCheckInvoice(CustomerAction):
    """What is on my invoice: the total and the largest lines."""

    order_needed = "optional"

    def name(self) -> str:
        return "action_check_invoice"

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     identity: Identity, order_id: str | None) -> list[EventType]:
        inv = await crm_call(dispatcher, support.invoice, identity=identity, order_id=order_id,
                             not_found=NOT_AN_ORDER)
        if inv is NOT_FOUND:
            return [SlotSet(ORDER_SLOT, None)] if order_id else []
        if not isinstance(inv, support.Invoice):
            return []
        dispatcher.utter_message(response="utter_invoice_summary", lines=_invoice_lines(inv),
                                 **order_facts(inv.order))
        return remember_order(inv.order.order_id, order_id)


class ActionGetInvoice(CustomerAction):
    """Send me my invoice: the summary now, the PDF by e-mail (an ``invoice`` ticket)."""

    order_needed = "optional"

    def name(self) -> str:
        return "action_get_invoice"

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     identity: Identity, order_id: str | None) -> list[EventType]:
        inv = await crm_call(dispatcher, support.request_invoice_copy, identity=identity,
                             order_id=order_id, sender_id=tracker.sender_id,
                             not_found=NOT_AN_ORDER)
        if inv is NOT_FOUND:
            return [SlotSet(ORDER_SLOT, None)] if order_id else []
        if not isinstance(inv, support.Invoice):
            return []
        dispatcher.utter_message(response="utter_invoice_summary", lines=_invoice_lines(inv),
                                 **order_facts(inv.order))
        dispatcher.utter_message(response="utter_invoice_emailed", ticket=inv.ticket_id)
        return remember_order(inv.order.order_id, order_id)
