"""Customer orders: verification, order status, cancellation, changes and invoices.

Order and account data go only to a customer: one signed in through the
message metadata, or one verified in this conversation by an order number and
the e-mail address on that order. :class:`CustomerAction` is the gate every
such action goes through; it collects the two details from the ``order_id``
and ``email`` slots (filled from the NLU entities of any message), checks their
format, verifies them in the CRM and only then runs the action's ``handle``.

When details are missing the gate asks for them and remembers the request in
the ``pending_action`` slot; the customer's answer (intent ``inform``) runs
:class:`ActionVerifyCustomer`, which resumes that request. This action-based
flow, rather than a form, lets the customer ask something else in between and
give both details in one message, and works the same by voice.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.utils import all_subclasses

from actions.base import call_crm
from actions.identity import VERIFIED_SLOT, identify
from crm_ml import gdpr, support
from crm_ml.db import session_scope
from crm_ml.errors import NotFound
from crm_ml.identity import Identity

logger = logging.getLogger(__name__)

T = TypeVar("T")

ORDER_SLOT = "order_id"
EMAIL_SLOT = "email"
PENDING_SLOT = "pending_action"
CONFIRM_SLOT = "confirming"

NOT_FOUND = object()
"""What :func:`crm_order_call` returns after answering "I couldn't find that order"."""


# --------------------------------------------------------------------------- helpers


def in_crm(fn: Callable[..., T], **kwargs: Any) -> Callable[[], T]:
    """A blocking call of ``fn(session=..., **kwargs)`` in one short transaction."""

    def run() -> T:
        with session_scope() as session:
            return fn(session=session, **kwargs)

    return run


async def crm_order_call(dispatcher: CollectingDispatcher, action: str,
                         fn: Callable[[], T]) -> T | object | None:
    """:func:`call_crm` for an order: unknown or another customer's -> "couldn't find it".

    Returns:
        The result; :data:`NOT_FOUND` after answering ``utter_order_not_found``;
        None after another polite failure answer.
    """

    def guarded() -> T | object:
        try:
            return fn()
        except NotFound:
            return NOT_FOUND

    result = await call_crm(dispatcher, action, guarded)
    if result is NOT_FOUND:
        dispatcher.utter_message(response="utter_order_not_found")
    return result


def spoken_date(when: dt.datetime | dt.date) -> str:
    """``1 December 2010``: reads well on screen and by voice."""
    return f"{when.day} {when:%B %Y}"


def money(amount: float) -> str:
    """``£1,234.50``."""
    return f"£{abs(amount):,.2f}"


def count(n: int, noun: str) -> str:
    """``1 item``, ``3 items``."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def product_name(description: str) -> str:
    """Online Retail II descriptions are upper case: ``Jumbo bag red retrospot``."""
    text = " ".join(description.replace(" ,", ",").split())
    return text[:1].upper() + text[1:].lower()


def spoken_list(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def last_user_text(tracker: Tracker, intents: Iterable[str]) -> str:
    """The latest customer message with one of ``intents`` (the request, not the answer
    to a verification question); the latest message when none has."""
    wanted = set(intents)
    for event in reversed(tracker.events):
        if event.get("event") != "user":
            continue
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if intent in wanted:
            return event.get("text") or ""
    return (tracker.latest_message or {}).get("text") or ""


def remember_order(found: str, asked: str | None) -> list[EventType]:
    """Keep the order just described in the slot ("and cancel it" refers to it)."""
    return [] if found == asked else [SlotSet(ORDER_SLOT, found)]


def order_facts(order: support.OrderSummary) -> dict[str, str]:
    """Template variables describing an order."""
    return {"order_id": order.order_id, "date": spoken_date(order.invoiced_at),
            "items": count(order.items, "item"), "total": money(order.total)}


# --------------------------------------------------------------------------- the gate


@dataclass
class Gate:
    """The outcome of the customer gate: who the caller is (None: stop here)."""

    identity: Identity | None
    order_id: str | None = None
    events: list[EventType] = field(default_factory=list)


def _slot_value(tracker: Tracker, slot: str) -> str | None:
    value = tracker.get_slot(slot)
    return value if isinstance(value, str) and value.strip() else None


async def customer_gate(dispatcher: CollectingDispatcher, tracker: Tracker, action: str,
                        order_needed: str = "no", *, use_email_slot: bool = True) -> Gate:
    """Make sure the caller is a customer, verifying them when they give the details.

    Args:
        dispatcher: Where questions and answers go.
        tracker: The conversation.
        action: The calling action: remembered as the pending request when a
            detail is missing, so that the customer's answer resumes it.
        order_needed: ``no``, ``optional`` or ``required``: whether the action
            needs an order number once the customer is known.
        use_email_slot: False when the e-mail in the slot is not a verification
            detail (a new address the customer wants on their account).
    """
    identity = identify(tracker)
    if identity.is_staff:
        dispatcher.utter_message(response="utter_customers_only")
        return Gate(None)
    events: list[EventType] = []
    raw_order = _slot_value(tracker, ORDER_SLOT)
    order_id = support.clean_order_id(raw_order) if raw_order else None
    if raw_order and order_id is None:
        dispatcher.utter_message(response="utter_invalid_order_id")
        return Gate(None, None, [SlotSet(ORDER_SLOT, None), SlotSet(PENDING_SLOT, action)])
    if order_id is not None and order_id != raw_order:
        events.append(SlotSet(ORDER_SLOT, order_id))
    remember = SlotSet(PENDING_SLOT, action)

    if identity.role != "customer":
        raw_email = _slot_value(tracker, EMAIL_SLOT) if use_email_slot else None
        email = support.clean_email(raw_email) if raw_email else None
        if raw_email and email is None:
            dispatcher.utter_message(response="utter_invalid_email")
            return Gate(None, None, [*events, SlotSet(EMAIL_SLOT, None), remember])
        if order_id is None or email is None:
            if order_id is None and email is None:
                dispatcher.utter_message(response="utter_need_verification")
            elif email is None:
                dispatcher.utter_message(response="utter_ask_email")
            else:
                dispatcher.utter_message(response="utter_ask_order_id")
            return Gate(None, None, [*events, remember])
        result = await call_crm(dispatcher, action, in_crm(
            support.verify_customer, sender_id=tracker.sender_id, order_id=order_id, email=email))
        if result is None:  # the CRM is down: already answered; the details stay for a retry
            return Gate(None, None, [*events, remember])
        if result.status == "locked":
            dispatcher.utter_message(response="utter_verify_locked")
            return Gate(None, None, [SlotSet(ORDER_SLOT, None), SlotSet(EMAIL_SLOT, None),
                                     SlotSet(PENDING_SLOT, None)])
        if result.status != "verified":
            dispatcher.utter_message(response="utter_verify_failed")
            return Gate(None, None, [SlotSet(ORDER_SLOT, None), SlotSet(EMAIL_SLOT, None),
                                     remember])
        dispatcher.utter_message(response="utter_verified")
        identity = Identity("customer", result.customer_id)
        # The e-mail has done its job: it does not stay in the conversation.
        events += [SlotSet(VERIFIED_SLOT, str(result.customer_id)), SlotSet(EMAIL_SLOT, None)]

    if order_needed == "required" and order_id is None:
        dispatcher.utter_message(response="utter_ask_which_order")
        return Gate(None, None, [*events, remember])
    if tracker.get_slot(PENDING_SLOT) is not None:
        events.append(SlotSet(PENDING_SLOT, None))
    return Gate(identity, order_id, events)


class CustomerAction(Action, ABC):
    """An action for a customer's own orders or account: gated, then handled.

    Subclasses set ``order_needed`` and implement :meth:`handle`; the rasa-sdk
    executor skips this abstract base.
    """

    order_needed: ClassVar[str] = "no"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[EventType]:
        # A confirmation asked earlier lapses with any new request (the handler
        # may ask again): a later "yes" must not confirm something else.
        events: list[EventType] = (
            [SlotSet(CONFIRM_SLOT, None)] if tracker.get_slot(CONFIRM_SLOT) else [])
        events += self.before(tracker)
        gate = await customer_gate(dispatcher, tracker, self.name(), self.order_needed,
                                   use_email_slot=self.uses_email_slot(tracker))
        events += gate.events
        if gate.identity is None:
            return events
        return events + await self.handle(dispatcher, tracker, gate.identity, gate.order_id)

    def uses_email_slot(self, tracker: Tracker) -> bool:
        """Whether the ``email`` slot holds a verification detail (default: yes)."""
        return True

    def before(self, tracker: Tracker) -> list[EventType]:
        """Events to apply before the gate (default: none)."""
        return []

    @abstractmethod
    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     identity: Identity, order_id: str | None) -> list[EventType]:
        """Answer a customer known to be ``identity`` (``order_id`` checked for format)."""


def forget_verified_email(tracker: Tracker) -> list[EventType]:
    """Clear the ``email`` slot once the caller is a known customer.

    A form activated in the turn that verified the customer re-reads that
    message's entities; the e-mail must not come back into the conversation.
    """
    if tracker.get_slot(EMAIL_SLOT) and identify(tracker).role == "customer":
        return [SlotSet(EMAIL_SLOT, None)]
    return []


def customer_actions() -> dict[str, type[CustomerAction]]:
    """Every concrete gated action by name: the requests a verification may resume."""
    found: dict[str, type[CustomerAction]] = {}
    for cls in all_subclasses(CustomerAction):
        if not inspect.isabstract(cls):
            found[cls().name()] = cls
    return found


# --------------------------------------------------------------------------- actions


REQUEST_INTENTS = {
    "track_order": "action_order_status", "cancel_order": "action_cancel_order",
    "change_order": "action_change_order", "check_invoice": "action_check_invoice",
    "get_invoice": "action_get_invoice", "get_refund": "action_request_refund",
    "track_refund": "action_refund_status",
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
        return await target().run(dispatcher, tracker, domain)


class ActionOrderStatus(CustomerAction):
    """Where is my order: date, status, total and size (the latest order by default)."""

    order_needed = "optional"

    def name(self) -> str:
        return "action_order_status"

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     identity: Identity, order_id: str | None) -> list[EventType]:
        order = await crm_order_call(dispatcher, self.name(), in_crm(
            support.order_status, identity=identity, order_id=order_id))
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
        order = await crm_order_call(dispatcher, self.name(), in_crm(
            support.order_status, identity=identity, order_id=order_id))
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
            outcome = await crm_order_call(dispatcher, self.name(), in_crm(
                support.cancel_order, identity=identity, order_id=subject,
                actor=tracker.sender_id))
            if isinstance(outcome, support.CancelOutcome):
                if outcome.cancelled:
                    dispatcher.utter_message(response="utter_order_cancelled",
                                             **order_facts(outcome.order))
                else:  # it shipped in the meantime
                    explain_not_cancellable(dispatcher, outcome.order)
            return done
        if what == "delete_account":
            if subject != str(identity.number):  # asked while someone else was verified
                dispatcher.utter_message(response="utter_nothing_to_confirm")
                return done
            return done + await erase_account(dispatcher, tracker, self.name(), identity)
        dispatcher.utter_message(response="utter_nothing_to_confirm")
        return done


async def erase_account(dispatcher: CollectingDispatcher, tracker: Tracker, action: str,
                        identity: Identity) -> list[EventType]:
    """Erase the verified customer ``identity`` at once, as ``crm-ml gdpr erase`` does.

    The conversation's own stored events are redacted in place (Rasa saves this
    tracker after the action; see :mod:`crm_ml.gdpr`). On success a new session
    starts: it resets every slot (the verified customer, the e-mail, the order)
    and Rasa never loads the erased part of the conversation again.
    """
    counts = await call_crm(dispatcher, action, in_crm(
        gdpr.erase_own_account, identity=identity, sender_id=tracker.sender_id))
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
        outcome = await crm_order_call(dispatcher, self.name(), in_crm(
            support.request_order_change, identity=identity, order_id=order_id,
            request=request, sender_id=tracker.sender_id))
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
    parts = [f"{line.quantity} {product_name(line.description)} at {money(line.unit_price)}"
             for line in inv.lines]
    rest = inv.order.lines - len(inv.lines)
    if rest > 0:
        parts.append(count(rest, "other line"))
    return spoken_list(parts)


class ActionCheckInvoice(CustomerAction):
    """What is on my invoice: the total and the largest lines."""

    order_needed = "optional"

    def name(self) -> str:
        return "action_check_invoice"

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     identity: Identity, order_id: str | None) -> list[EventType]:
        inv = await crm_order_call(dispatcher, self.name(), in_crm(
            support.invoice, identity=identity, order_id=order_id))
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
        inv = await crm_order_call(dispatcher, self.name(), in_crm(
            support.request_invoice_copy, identity=identity, order_id=order_id,
            sender_id=tracker.sender_id))
        if inv is NOT_FOUND:
            return [SlotSet(ORDER_SLOT, None)] if order_id else []
        if not isinstance(inv, support.Invoice):
            return []
        dispatcher.utter_message(response="utter_invoice_summary", lines=_invoice_lines(inv),
                                 **order_facts(inv.order))
        dispatcher.utter_message(response="utter_invoice_emailed", ticket=inv.ticket_id)
        return remember_order(inv.order.order_id, order_id)
