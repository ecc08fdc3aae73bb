"""Who may run an action: the customer gate, and the staff permission check.

Order and account data go only to a customer: one signed in through the
message metadata, or one verified in this conversation by an order number and
the e-mail address on that order. :class:`CustomerAction` is the gate every
such action goes through; it collects the two details from the ``order_id``
and ``email`` slots (filled from the NLU entities of any message), checks their
format, verifies them in the CRM and only then runs the action's ``handle``.

When details are missing the gate asks for them and remembers the request in
the ``pending_action`` slot; the customer's answer (intent ``inform``) runs
``action_verify_customer`` (:mod:`actions.orders`), which resumes that request
among :func:`customer_actions`. This action-based flow, rather than a form, lets
the customer ask something else in between and give both details in one
message, and works the same by voice.

Staff actions ask :func:`permitted` instead: whether the caller's role may do
this at all.
"""

from __future__ import annotations

import inspect
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.utils import all_subclasses

from actions.crm import crm_call
from actions.identity import VERIFIED_SLOT, identify
from crm_ml import authz, support
from crm_ml.identity import Identity

logger = logging.getLogger(__name__)

__all__ = [
    "CONFIRM_SLOT",
    "EMAIL_SLOT",
    "ORDER_SLOT",
    "PENDING_SLOT",
    "VERIFIED_SLOT",
    "CustomerAction",
    "Gate",
    "customer_actions",
    "customer_gate",
    "forget_verified_email",
    "permitted",
]

ORDER_SLOT = "order_id"
EMAIL_SLOT = "email"
PENDING_SLOT = "pending_action"
CONFIRM_SLOT = "confirming"


# --------------------------------------------------------------------------- staff


def permitted(dispatcher: CollectingDispatcher, identity: Identity, permission: str) -> bool:
    """Whether the caller's role may do this at all; if not, refuse politely."""
    if authz.allowed(identity, permission):
        return True
    dispatcher.utter_message(response="utter_not_allowed")
    return False


# --------------------------------------------------------------------------- customers


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

    Returns:
        The caller's identity, the order number checked for format and the slot
        events; an identity of None after a question or an answer was sent.
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
        result = await crm_call(dispatcher, support.verify_customer,
                                sender_id=tracker.sender_id, order_id=order_id, email=email)
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
