"""The customer's account: shipping address, account changes, deletion, switching, newsletter.

Creating an account, registration problems and password recovery need no data
and are answered by plain responses in the domain. Everything that reads or
changes an account goes through the customer gate (:mod:`actions.gate`).
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.crm import crm_call
from actions.gate import (
    CONFIRM_SLOT,
    EMAIL_SLOT,
    ORDER_SLOT,
    PENDING_SLOT,
    CustomerAction,
    forget_verified_email,
)
from actions.identity import VERIFIED_SLOT, identify
from actions.parsing import email_in, is_generic, last_user_text, latest_intent
from actions.tickets import ask_for_details, file_ticket
from crm_ml import support
from crm_ml.identity import Identity

logger = logging.getLogger(__name__)

__all__ = [
    "ActionDeleteAccount",
    "ActionEditAccount",
    "ActionNewsletter",
    "ActionSaveShippingAddress",
    "ActionShippingAddress",
    "ActionSwitchAccount",
    "ValidateAddressForm",
]

ADDRESS_FORM = "address_form"
ADDRESS_SLOT = "shipping_address"


class ActionShippingAddress(CustomerAction):
    """Set up or change the delivery address: once the customer is known, ask for it."""

    def name(self) -> str:
        return "action_shipping_address"

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     identity: Identity, order_id: str | None) -> list[EventType]:
        # The form's slot is empty whenever the form is not running (the save
        # action clears it): setting it here would count as a (blank) answer.
        return [FollowupAction(ADDRESS_FORM)]


class ValidateAddressForm(FormValidationAction):
    """Checks that what ``address_form`` collected can be a postal address."""

    def name(self) -> str:
        return "validate_address_form"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        return [*await super().run(dispatcher, tracker, domain), *forget_verified_email(tracker)]

    async def validate_shipping_address(self, slot_value: Any, dispatcher: CollectingDispatcher,
                                        tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        address = support.clean_address(slot_value)
        if address is None and slot_value is not None:
            dispatcher.utter_message(response="utter_invalid_address")
        return {ADDRESS_SLOT: address}


class ActionSaveShippingAddress(Action):
    """``address_form`` is complete: store the address (and audit that it changed)."""

    def name(self) -> str:
        return "action_save_shipping_address"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[EventType]:
        done: list[EventType] = [SlotSet(ADDRESS_SLOT, None)]  # no address kept in the chat
        identity = identify(tracker)
        address = support.clean_address(tracker.get_slot(ADDRESS_SLOT))
        if identity.role != "customer":
            dispatcher.utter_message(response="utter_need_verification")
            return [*done, SlotSet(PENDING_SLOT, "action_shipping_address")]
        if address is None:
            dispatcher.utter_message(response="utter_invalid_address")
            return done
        replaced = await crm_call(dispatcher, support.set_shipping_address, identity=identity,
                                  address=address, actor=tracker.sender_id)
        if replaced is not None:
            dispatcher.utter_message(response="utter_address_saved", address=address)
        return done


class ActionEditAccount(CustomerAction):
    """Change account details: recorded for the team, who confirm changes by e-mail.

    An e-mail address in the request itself is the *new* address, not a
    verification detail: it is kept out of the gate.
    """

    def name(self) -> str:
        return "action_edit_account"

    def _new_email_in_request(self, tracker: Tracker) -> bool:
        return (latest_intent(tracker) == "edit_account"
                and any(e.get("entity") == "email"
                        for e in (tracker.latest_message or {}).get("entities") or []))

    def uses_email_slot(self, tracker: Tracker) -> bool:
        return not self._new_email_in_request(tracker)

    def before(self, tracker: Tracker) -> list[EventType]:
        return [SlotSet(EMAIL_SLOT, None)] if self._new_email_in_request(tracker) else []

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     identity: Identity, order_id: str | None) -> list[EventType]:
        request = last_user_text(tracker, {"edit_account"})
        new_email = email_in(request)
        if is_generic(request) and new_email is None:
            return ask_for_details("account_change")
        ticket = await crm_call(dispatcher, support.request_account_change, identity=identity,
                                request=request, new_email=new_email,
                                sender_id=tracker.sender_id)
        if ticket is not None:
            dispatcher.utter_message(response="utter_account_change_recorded", ticket=ticket)
        return []


class ActionDeleteAccount(CustomerAction):
    """Delete my account: after verification, ask to confirm; the "yes" erases it.

    The confirmation names the customer (``delete_account:12347``): a "yes" from
    anyone else confirms nothing. The erasure itself is
    :func:`actions.orders.erase_account`.
    """

    def name(self) -> str:
        return "action_delete_account"

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     identity: Identity, order_id: str | None) -> list[EventType]:
        dispatcher.utter_message(response="utter_confirm_delete_account")
        return [SlotSet(CONFIRM_SLOT, f"delete_account:{identity.number}")]


class ActionSwitchAccount(Action):
    """Use another account: forget the verification of this conversation."""

    def name(self) -> str:
        return "action_switch_account"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[EventType]:
        if tracker.get_slot(VERIFIED_SLOT) is None:
            dispatcher.utter_message(response="utter_switch_account")
            return []
        dispatcher.utter_message(response="utter_switched_account")
        # The e-mail slot is kept: "switch to the account with x@..." is the next check.
        return [SlotSet(VERIFIED_SLOT, None), SlotSet(ORDER_SLOT, None),
                SlotSet(PENDING_SLOT, None), SlotSet(CONFIRM_SLOT, None)]


class ActionNewsletter(Action):
    """Newsletter sign-up or opt-out: recorded for a known customer, explained to others."""

    def name(self) -> str:
        return "action_newsletter"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[EventType]:
        if identify(tracker).role != "customer":
            dispatcher.utter_message(response="utter_newsletter_info")
            return []
        text = last_user_text(tracker, {"newsletter_subscription"})
        await file_ticket(dispatcher, tracker, "newsletter", text)
        return []
