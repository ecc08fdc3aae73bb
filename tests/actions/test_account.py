"""Account actions: shipping address, account changes, deletion, switching, newsletter."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from rasa_sdk.events import FollowupAction, SessionStarted, SlotSet
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
from crm_ml import gdpr, support
from crm_ml.config import get_settings
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
from tests.crm_ml.test_gdpr import tracker_rows, tracker_store
from tests.crm_ml.test_support import GEORGE_EMAIL, crm, crm_template  # noqa: F401

pytestmark = pytest.mark.usefixtures("crm")

ADDRESS = "12 High Street, Leeds LS1 4AB"


def down(**_: Any) -> None:
    raise CRMUnavailable("down")


def gdpr_erasures() -> list[m.AuditLog]:
    with session_scope() as s:
        return list(s.scalars(select(m.AuditLog).where(m.AuditLog.action == "gdpr_erase")))


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


@pytest.mark.parametrize("caller", [{"metadata": signed("customer:12349")},
                                    {"slots": {"verified_customer": "12349"}}])
def test_an_erased_customer_changes_no_account(caller: dict[str, Any]) -> None:
    """12349 was erased: their old identity finds no account to change."""
    slots = {**caller.get("slots", {}), "shipping_address": ADDRESS}
    events, dispatcher = run(ActionSaveShippingAddress(), conversation(
        text=ADDRESS, metadata=caller.get("metadata"), slots=slots))
    assert events == [SlotSet("shipping_address", None)]
    assert responses(dispatcher) == ["utter_not_found"]
    _, dispatcher = run(ActionEditAccount(), conversation(
        text="please change my phone number to 07700 900123", intent="edit_account", **caller))
    assert responses(dispatcher) == ["utter_not_found"]
    with session_scope() as s:
        assert s.get(m.Customer, 12349).shipping_address is None
        assert s.scalars(select(m.AuditLog)).all() == []
    assert all_tickets() == []


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


@pytest.fixture
def tracker_url(env: pytest.MonkeyPatch, tmp_path) -> str:
    """This test's own Rasa tracker store, holding George's conversation SENDER so far."""
    url = f"sqlite:///{tmp_path / 'tracker.db'}"
    env.setenv("CRM_TRACKER_DB_URL", url)
    get_settings.cache_clear()
    tracker_store(url, [(SENDER, {"event": "session_started", "timestamp": 1.0}),
                        (SENDER, {"event": "user", "text": f"536365 {GEORGE_EMAIL}",
                                  "timestamp": 2.0}),
                        (SENDER, {"event": "slot", "name": "verified_customer",
                                  "value": "12347", "timestamp": 3.0}),
                        ("web:someone-else", {"event": "user", "text": "hello",
                                              "timestamp": 4.0})])
    with session_scope() as s:
        s.add(m.ChannelIdentity(sender_id=SENDER, customer_id=12347))
        s.add(m.Interaction(sender_id=SENDER, channel="web", direction="in",
                            text=f"536365 {GEORGE_EMAIL}"))
    return url


def test_delete_account_asks_the_verified_customer_to_confirm() -> None:
    events, dispatcher = run(ActionDeleteAccount(), conversation(
        intent="delete_account", slots=verified()))
    assert events == [SlotSet("confirming", "delete_account:12347")]
    assert responses(dispatcher) == ["utter_confirm_delete_account"]
    assert all_tickets() == [] and not gdpr_erasures()


def test_delete_account_from_a_staff_login_is_refused() -> None:
    for user in ("rep:1", "manager:1", "agent:1"):
        events, dispatcher = run(ActionDeleteAccount(), conversation(
            intent="delete_account", metadata=signed(user)))
        assert events == [] and responses(dispatcher) == ["utter_customers_only"]


def test_the_yes_erases_the_customer_at_once(tracker_url: str) -> None:
    events, dispatcher = run(ActionConfirmChange(), conversation(
        text="yes", intent="affirm", slots=verified(confirming="delete_account:12347")))
    # A new session: every slot (the verified customer first) is reset, and Rasa
    # never loads the erased, redacted part of the conversation again.
    assert events == [SlotSet("confirming", None), SessionStarted()]
    assert responses(dispatcher) == ["utter_account_erased"]
    with session_scope() as s:
        george = s.get(m.Customer, 12347)
        assert george.anonymized and GEORGE_EMAIL != george.email
        assert s.get(m.ChannelIdentity, SENDER) is None
        assert list(s.scalars(select(m.Interaction).where(m.Interaction.sender_id == SENDER))) \
            == []
        [entry] = gdpr_erasures()
        assert (entry.actor, entry.entity_id) == (gdpr.chat_actor(SENDER), "12347")
    # Rasa saves this tracker after the action: its rows stay, emptied.
    rows = tracker_rows(tracker_url, SENDER)
    assert [(t, ts) for t, ts, _, _ in rows] == [("session_started", 1.0), ("user", 2.0),
                                                 ("slot", 3.0)]
    assert GEORGE_EMAIL not in json.dumps(rows) and "12347" not in json.dumps(rows)
    assert [t for t, *_ in tracker_rows(tracker_url, "web:someone-else")] == ["user"]
    # The conversation no longer acts as George: the same "yes" now confirms nothing.
    events, dispatcher = run(ActionConfirmChange(), conversation(
        text="yes", intent="affirm", slots={"confirming": "delete_account:12347"}))
    assert responses(dispatcher) == ["utter_nothing_to_confirm"]
    assert len(gdpr_erasures()) == 1


def test_signed_in_customer_erases_their_own_account(tracker_url: str) -> None:
    events, dispatcher = run(ActionConfirmChange(), conversation(
        text="yes", intent="affirm", metadata=signed("customer:12347"),
        slots={"confirming": "delete_account:12347"}))
    assert events == [SlotSet("confirming", None), SessionStarted()]
    assert responses(dispatcher) == ["utter_account_erased"]
    assert [e.entity_id for e in gdpr_erasures()] == ["12347"]


@pytest.mark.parametrize(("slots", "metadata"), [
    ({"confirming": "delete_account:12347"}, None),  # anonymous: never verified
    (verified(confirming="delete_account:12348"), None),  # asked while Olivia was verified
    (verified(confirming="delete_account"), None),  # a confirmation of the old form
    ({"confirming": "delete_account:12347"}, "agent:1"),  # staff cannot erase from a chat
    ({"confirming": "delete_account:12347"}, "rep:1"),
])
def test_a_yes_erases_only_the_verified_customer_who_was_asked(
        tracker_url: str, slots: dict[str, Any], metadata: str | None) -> None:
    events, dispatcher = run(ActionConfirmChange(), conversation(
        text="yes", intent="affirm", slots=slots,
        metadata=signed(metadata) if metadata else None))
    assert events == [SlotSet("confirming", None)]
    assert responses(dispatcher) == ["utter_nothing_to_confirm"]
    assert gdpr_erasures() == []
    with session_scope() as s:
        assert not s.get(m.Customer, 12347).anonymized
    assert len(tracker_rows(tracker_url, SENDER)) == 3


def test_erasure_when_the_crm_is_down(tracker_url: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gdpr, "erase_own_account", down)
    events, dispatcher = run(ActionConfirmChange(), conversation(
        intent="affirm", slots=verified(confirming="delete_account:12347")))
    assert events == [SlotSet("confirming", None)]  # still George: he may ask again
    assert responses(dispatcher) == ["utter_crm_unavailable"]


def test_erasure_when_the_tracker_store_is_unreachable(tracker_url: str, env,
                                                      tmp_path) -> None:
    env.setenv("CRM_TRACKER_DB_URL", f"sqlite:///{tmp_path / 'missing' / 'tracker.db'}")
    get_settings.cache_clear()
    events, dispatcher = run(ActionConfirmChange(), conversation(
        intent="affirm", slots=verified(confirming="delete_account:12347")))
    assert events == [SlotSet("confirming", None)]
    assert responses(dispatcher) == ["utter_crm_unavailable"]
    with session_scope() as s:  # nothing half-done in the CRM
        assert not s.get(m.Customer, 12347).anonymized
    assert gdpr_erasures() == []


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
