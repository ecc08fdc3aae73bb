"""Account actions: shipping address, account changes, deletion, switching, newsletter."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.account import (
    ActionDeleteAccount,
    ActionEditAccount,
    ActionNewsletter,
    ActionSaveShippingAddress,
    ActionShippingAddress,
    ActionSwitchAccount,
    ValidateAddressForm,
)
from actions.orders import ActionConfirmChange, ActionVerifyCustomer
from crm_ml import support
from crm_ml.db import models as m
from crm_ml.db import session_scope
from crm_ml.errors import CRMUnavailable
from tests.actions.test_orders import (
    SENDER,
    conversation,
    responses,
    run,
    said,
    signed,
    verified,
)
from tests.crm_ml.test_support import GEORGE_EMAIL, crm, crm_template  # noqa: F401

pytestmark = pytest.mark.usefixtures("crm")

ADDRESS = "12 High Street, Leeds LS1 4AB"


def down(**_: Any) -> None:
    raise CRMUnavailable("down")


def all_tickets() -> list[m.Ticket]:
    with session_scope() as s:
        return list(s.scalars(select(m.Ticket).order_by(m.Ticket.id)))


# --------------------------------------------------------------------------- shipping address


def test_address_change_needs_verification_first() -> None:
    events, dispatcher = run(ActionShippingAddress(), conversation(
        text="i moved, please update my address", intent="change_shipping_address"))
    assert events == [SlotSet("pending_action", "action_shipping_address")]
    assert responses(dispatcher) == ["utter_need_verification"]


def test_verified_customer_is_asked_for_the_address() -> None:
    events, dispatcher = run(ActionShippingAddress(), conversation(
        intent="set_up_shipping_address", slots=verified()))
    assert events == [FollowupAction("address_form")]
    assert dispatcher.messages == []


def test_verification_resumes_the_address_change() -> None:
    events, dispatcher = run(ActionVerifyCustomer(), conversation(slots={
        "order_id": "579000", "email": GEORGE_EMAIL,
        "pending_action": "action_shipping_address"}))
    assert events == [SlotSet("verified_customer", "12347"), SlotSet("email", None),
                      SlotSet("pending_action", None), FollowupAction("address_form")]
    assert responses(dispatcher) == ["utter_verified"]


@pytest.mark.parametrize(("typed", "kept"), [
    (ADDRESS + " ", ADDRESS), ("never mind", None), ("yes", None), (None, None)])
def test_address_form_validation(typed: str, kept: str | None) -> None:
    dispatcher = CollectingDispatcher()
    result = asyncio.run(ValidateAddressForm().validate_shipping_address(
        typed, dispatcher, conversation(), {}))
    assert result == {"shipping_address": kept}
    assert responses(dispatcher) == ([] if kept or typed is None else ["utter_invalid_address"])


FORM_DOMAIN = {
    "forms": {"address_form": {"required_slots": ["shipping_address"]}},
    "slots": {"shipping_address": {"type": "text", "mappings": [{
        "type": "from_text",
        "conditions": [{"active_loop": "address_form", "requested_slot": "shipping_address"}],
    }]}},
}


def test_the_address_form_forgets_the_verification_email() -> None:
    """The form, started in the turn that verified, re-reads that message's e-mail."""
    tracker = conversation(text=ADDRESS, slots=verified(email=GEORGE_EMAIL))
    tracker.events.append({"event": "slot", "name": "shipping_address", "value": ADDRESS})
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ValidateAddressForm().run(dispatcher, tracker, FORM_DOMAIN))
    assert events == [SlotSet("shipping_address", ADDRESS), SlotSet("email", None)]
    # An anonymous caller's e-mail is a detail still to be checked: it stays.
    tracker = conversation(text=ADDRESS, slots={"email": GEORGE_EMAIL})
    tracker.events.append({"event": "slot", "name": "shipping_address", "value": ADDRESS})
    events = asyncio.run(ValidateAddressForm().run(dispatcher, tracker, FORM_DOMAIN))
    assert events == [SlotSet("shipping_address", ADDRESS)]


def test_saving_the_address_stores_and_audits_it() -> None:
    events, dispatcher = run(ActionSaveShippingAddress(), conversation(
        text=ADDRESS, slots=verified(shipping_address=ADDRESS)))
    assert events == [SlotSet("shipping_address", None)]
    assert responses(dispatcher) == ["utter_address_saved"]
    assert dispatcher.messages[0]["address"] == ADDRESS
    with session_scope() as s:
        assert s.get(m.Customer, 12347).shipping_address == ADDRESS
        entry = s.scalars(select(m.AuditLog)).one()
    assert (entry.actor, entry.action, entry.entity_id) == (SENDER, "set_shipping_address",
                                                            "12347")
    assert "High" not in json.dumps(entry.details)


def test_an_anonymous_caller_cannot_save_an_address() -> None:
    events, dispatcher = run(ActionSaveShippingAddress(), conversation(
        slots={"shipping_address": ADDRESS}))
    assert responses(dispatcher) == ["utter_need_verification"]
    assert events == [SlotSet("shipping_address", None),
                      SlotSet("pending_action", "action_shipping_address")]
    with session_scope() as s:
        assert s.get(m.Customer, 12347).shipping_address is None


def test_saving_the_address_when_the_crm_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(support, "set_shipping_address", down)
    events, dispatcher = run(ActionSaveShippingAddress(), conversation(
        slots=verified(shipping_address=ADDRESS)))
    assert events == [SlotSet("shipping_address", None)]
    assert responses(dispatcher) == ["utter_crm_unavailable"]


# --------------------------------------------------------------------------- account changes


def test_a_new_email_in_the_request_is_not_a_verification_detail() -> None:
    new = "george.new@example.com"
    tracker = conversation(text=f"change the email on my account to {new}",
                           intent="edit_account", slots={"email": new},
                           entities=[{"entity": "email", "value": new}])
    events, dispatcher = run(ActionEditAccount(), tracker)
    assert events == [SlotSet("email", None), SlotSet("pending_action", "action_edit_account")]
    assert responses(dispatcher) == ["utter_need_verification"]
    with session_scope() as s:  # no verification was attempted with the new address
        assert s.scalars(select(m.AuditLog)).all() == []

    # The customer then verifies; the request is resumed with its new address.
    events, dispatcher = run(ActionVerifyCustomer(), conversation(
        text=f"579000 {GEORGE_EMAIL}",
        slots={"order_id": "579000", "email": GEORGE_EMAIL,
               "pending_action": "action_edit_account"},
        earlier=[said(f"change the email on my account to {new}", "edit_account")]))
    assert responses(dispatcher) == ["utter_verified", "utter_account_change_recorded"]
    [ticket] = all_tickets()
    assert (ticket.kind, ticket.customer_id, ticket.subject) == (
        "account_change", 12347, "E-mail change request")
    assert new in ticket.body


def test_a_vague_account_change_asks_what_to_change() -> None:
    events, dispatcher = run(ActionEditAccount(), conversation(
        text="i want to edit my account", intent="edit_account",
        metadata=signed("customer:12347")))
    assert events == [SlotSet("details_kind", "account_change"), FollowupAction("details_form")]
    assert dispatcher.messages == []


def test_account_change_when_the_crm_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(support, "request_account_change", down)
    _, dispatcher = run(ActionEditAccount(), conversation(
        text="please correct the spelling of my surname to Rossi", intent="edit_account",
        slots=verified()))
    assert responses(dispatcher) == ["utter_crm_unavailable"]


# --------------------------------------------------------------------------- deletion


def test_delete_account_needs_verification() -> None:
    events, dispatcher = run(ActionDeleteAccount(), conversation(intent="delete_account"))
    assert events == [SlotSet("pending_action", "action_delete_account")]
    assert responses(dispatcher) == ["utter_need_verification"]
    assert all_tickets() == []


def test_delete_account_is_confirmed_then_recorded() -> None:
    events, dispatcher = run(ActionDeleteAccount(), conversation(
        intent="delete_account", slots=verified()))
    assert events == [SlotSet("confirming", "delete_account")]
    assert responses(dispatcher) == ["utter_confirm_delete_account"]
    assert all_tickets() == []

    events, dispatcher = run(ActionConfirmChange(), conversation(
        intent="affirm", slots=verified(confirming="delete_account")))
    assert events == [SlotSet("confirming", None)]
    assert responses(dispatcher) == ["utter_erasure_recorded"]
    [ticket] = all_tickets()
    assert (ticket.kind, ticket.customer_id, ticket.sender_id) == ("erasure", 12347, SENDER)
    assert dispatcher.messages[0]["ticket"] == ticket.id
    with session_scope() as s:
        actions = [a.action for a in s.scalars(select(m.AuditLog))]
    assert "erasure_requested" in actions


def test_erasure_when_the_crm_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(support, "request_erasure", down)
    events, dispatcher = run(ActionConfirmChange(), conversation(
        intent="affirm", slots=verified(confirming="delete_account")))
    assert events == [SlotSet("confirming", None)]
    assert responses(dispatcher) == ["utter_crm_unavailable"]


# --------------------------------------------------------------------------- switch, newsletter


def test_switch_account_forgets_the_verification() -> None:
    events, dispatcher = run(ActionSwitchAccount(), conversation(
        intent="switch_account", slots=verified(order_id="579000")))
    assert events == [SlotSet("verified_customer", None), SlotSet("order_id", None),
                      SlotSet("pending_action", None), SlotSet("confirming", None)]
    assert responses(dispatcher) == ["utter_switched_account"]
    events, dispatcher = run(ActionSwitchAccount(), conversation(intent="switch_account"))
    assert events == [] and responses(dispatcher) == ["utter_switch_account"]


def test_newsletter_for_anonymous_and_known_customers() -> None:
    events, dispatcher = run(ActionNewsletter(), conversation(
        text="unsubscribe me from the newsletter", intent="newsletter_subscription"))
    assert events == [] and responses(dispatcher) == ["utter_newsletter_info"]
    assert all_tickets() == []
    events, dispatcher = run(ActionNewsletter(), conversation(
        text="unsubscribe me from the newsletter", intent="newsletter_subscription",
        slots=verified(order_id="579000")))
    assert responses(dispatcher) == ["utter_newsletter_recorded"]
    [ticket] = all_tickets()
    assert (ticket.kind, ticket.customer_id, ticket.order_id, ticket.body) == (
        "newsletter", 12347, None, "unsubscribe me from the newsletter")
