"""Order actions and the customer gate, with a Tracker and a CollectingDispatcher.

The helpers here (``conversation``, ``run``, ``responses``, ``signed``) are shared
with tests/actions/test_account.py and test_support.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

import actions.account  # noqa: F401 - registers the gated account actions
import actions.claims  # noqa: F401 - registers the gated claim actions
import actions.support  # noqa: F401 - registers the gated refund actions
from actions.gate import customer_actions
from actions.orders import (
    ActionCancelOrder,
    ActionChangeOrder,
    ActionCheckInvoice,
    ActionConfirmChange,
    ActionDeclineChange,
    ActionGetInvoice,
    ActionOrderStatus,
    ActionVerifyCustomer,
)
from crm_ml import support
from crm_ml.db import models as m
from crm_ml.db import session_scope
from crm_ml.errors import CRMUnavailable
from crm_ml.identity import sign
from tests.crm_ml.test_support import (  # noqa: F401 - shared fixtures
    GEORGE_EMAIL,
    OLIVIA_EMAIL,
    SECRET,
    crm,
    crm_template,
)

SENDER = "web:s1"

# Every test runs on its own copy of the seeded CRM (tests/crm_ml/test_support.py).
pytestmark = pytest.mark.usefixtures("crm")


def signed(user: str) -> dict[str, Any]:
    """Message metadata of a caller signed in as ``user``."""
    return {"auth": {"user": user, "sig": sign(user, SECRET)}}


def conversation(*, text: str = "", intent: str = "inform", entities: list[dict] | None = None,
                 slots: dict[str, Any] | None = None, metadata: dict | None = None,
                 earlier: list[dict] | None = None, sender: str = SENDER) -> Tracker:
    """A tracker whose latest message is ``text`` with ``intent`` (after ``earlier`` events)."""
    parse = {"text": text, "intent": {"name": intent, "confidence": 1.0},
             "entities": entities or [], "metadata": metadata or {}}
    events = [*(earlier or []), {"event": "user", "text": text, "parse_data": parse,
                                 "metadata": metadata or {}}]
    return Tracker(sender, slots or {}, parse, events, False, None, {}, "action_listen")


def said(text: str, intent: str) -> dict[str, Any]:
    """An earlier user event."""
    return {"event": "user", "text": text,
            "parse_data": {"text": text, "intent": {"name": intent}, "entities": []}}


def run(action: Action, tracker: Tracker) -> tuple[list, CollectingDispatcher]:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, tracker, {}))
    return events, dispatcher


def responses(dispatcher: CollectingDispatcher) -> list[str | None]:
    return [msg["response"] for msg in dispatcher.messages]


def verified(**slots: Any) -> dict[str, Any]:
    """Slots of a conversation where George (12347) was verified earlier."""
    return {"verified_customer": "12347", **slots}


def order_status(order_id: str) -> str:
    with session_scope() as s:
        return s.get(m.Order, order_id).status


# --------------------------------------------------------------------------- resuming


def test_every_gated_action_can_be_resumed() -> None:
    assert {"action_order_status", "action_cancel_order", "action_change_order",
            "action_check_invoice", "action_get_invoice", "action_request_refund",
            "action_refund_status", "action_shipping_address", "action_edit_account",
            "action_delete_account", "action_missing_parcel", "action_wrong_item",
            "action_list_orders"} == set(customer_actions())


# --------------------------------------------------------------------------- the gate


def test_anonymous_caller_is_asked_for_the_details() -> None:
    events, dispatcher = run(ActionOrderStatus(), conversation(
        text="where is my order", intent="track_order"))
    assert events == [SlotSet("pending_action", "action_order_status")]
    assert responses(dispatcher) == ["utter_need_verification"]


@pytest.mark.parametrize(("slots", "question"), [
    ({"order_id": "579000"}, "utter_ask_email"),
    ({"email": GEORGE_EMAIL}, "utter_ask_order_id"),
])
def test_the_missing_detail_is_asked_for(slots: dict, question: str) -> None:
    events, dispatcher = run(ActionCancelOrder(), conversation(slots=slots))
    assert events == [SlotSet("pending_action", "action_cancel_order")]
    assert responses(dispatcher) == [question]


def test_malformed_details_are_refused_before_use() -> None:
    events, dispatcher = run(ActionOrderStatus(), conversation(
        slots={"order_id": "57900", "email": GEORGE_EMAIL}))
    assert events == [SlotSet("order_id", None), SlotSet("pending_action", "action_order_status")]
    assert responses(dispatcher) == ["utter_invalid_order_id"]
    events, dispatcher = run(ActionOrderStatus(), conversation(
        slots={"order_id": "579000", "email": "george at example"}))
    assert events == [SlotSet("email", None), SlotSet("pending_action", "action_order_status")]
    assert responses(dispatcher) == ["utter_invalid_email"]
    with session_scope() as s:  # nothing was even tried
        assert s.scalars(select(m.AuditLog)).all() == []


def test_verification_resumes_the_pending_request() -> None:
    tracker = conversation(
        text=f"579000 {GEORGE_EMAIL}",
        slots={"order_id": "579000", "email": GEORGE_EMAIL,
               "pending_action": "action_order_status"})
    events, dispatcher = run(ActionVerifyCustomer(), tracker)
    assert events == [SlotSet("verified_customer", "12347"), SlotSet("email", None),
                      SlotSet("pending_action", None)]
    assert responses(dispatcher) == ["utter_verified", "utter_order_status_delivered"]
    facts = dispatcher.messages[1]
    assert (facts["order_id"], facts["date"], facts["items"], facts["total"]) == (
        "579000", "20 November 2011", "36 items", "£37.80")
    with session_scope() as s:
        assert s.get(m.ChannelIdentity, SENDER).customer_id == 12347


def test_one_message_with_both_details_is_enough() -> None:
    """'cancel order 581001, my e-mail is ...': verified and asked to confirm at once."""
    events, dispatcher = run(ActionCancelOrder(), conversation(
        intent="cancel_order", slots={"order_id": "581001", "email": GEORGE_EMAIL.upper()}))
    assert events == [SlotSet("verified_customer", "12347"), SlotSet("email", None),
                      SlotSet("confirming", "cancel_order:581001")]
    assert responses(dispatcher) == ["utter_verified", "utter_confirm_cancel"]


@pytest.mark.parametrize(("ranking", "answer"), [
    ([("inform", 0.61), ("cancel_order", 0.38)], "utter_confirm_cancel"),
    ([("inform", 0.9), ("cancel_order", 0.1)], "utter_order_status_processing"),
    ([("inform", 0.6), ("delete_account", 0.4)], "utter_order_status_processing"),
])
def test_details_with_a_request_behind_them(ranking: list, answer: str) -> None:
    """'please cancel order 581001, my e-mail is ...' may be classified as inform."""
    tracker = conversation(text="please cancel order 581001, my email is ...",
                           slots={"order_id": "581001", "email": GEORGE_EMAIL})
    tracker.latest_message["intent_ranking"] = [
        {"name": name, "confidence": conf} for name, conf in ranking]
    _, dispatcher = run(ActionVerifyCustomer(), tracker)
    assert responses(dispatcher) == ["utter_verified", answer]


def test_a_forged_pending_action_falls_back_to_the_order_status() -> None:
    events, dispatcher = run(ActionVerifyCustomer(), conversation(
        slots=verified(order_id="579000", pending_action="action_handoff")))
    assert responses(dispatcher) == ["utter_order_status_delivered"]
    assert events == [SlotSet("pending_action", None)]


@pytest.mark.parametrize(("order_id", "email"), [
    ("579000", OLIVIA_EMAIL),  # George's order, Olivia's e-mail
    ("999999", GEORGE_EMAIL),  # no such order
])
def test_failed_verification_reveals_nothing(order_id: str, email: str) -> None:
    events, dispatcher = run(ActionVerifyCustomer(), conversation(
        slots={"order_id": order_id, "email": email, "pending_action": "action_order_status"}))
    assert events == [SlotSet("order_id", None), SlotSet("email", None),
                      SlotSet("pending_action", "action_order_status")]
    assert dispatcher.messages == [{
        "text": None, "buttons": [], "elements": [], "custom": {}, "image": None,
        "attachment": None, "template": "utter_verify_failed", "response": "utter_verify_failed"}]


def test_after_a_wrong_email_the_order_number_is_kept() -> None:
    """Order number, then a wrong e-mail, then the right one: verified without asking twice."""
    given = [{"event": "slot", "name": "order_id", "value": "579000"}]
    events, dispatcher = run(ActionVerifyCustomer(), conversation(
        text=OLIVIA_EMAIL, earlier=given,
        slots={"order_id": "579000", "email": OLIVIA_EMAIL,
               "pending_action": "action_order_status"}))
    assert responses(dispatcher) == ["utter_verify_failed"]
    assert SlotSet("order_id", None) in events  # the wrong pair is not retried by itself
    history = [*given, *[{"event": "slot", "name": e["name"], "value": e["value"]}
                         for e in events]]
    events, dispatcher = run(ActionVerifyCustomer(), conversation(
        text=f"sorry, it's {GEORGE_EMAIL}", earlier=history,
        slots={"order_id": None, "email": GEORGE_EMAIL,
               "pending_action": "action_order_status"}))
    assert responses(dispatcher) == ["utter_verified", "utter_order_status_delivered"]
    assert events[0] == SlotSet("order_id", "579000")
    assert SlotSet("verified_customer", "12347") in events
    assert dispatcher.messages[1]["order_id"] == "579000"


def test_a_new_order_number_after_a_failure_asks_only_for_the_email() -> None:
    given = [{"event": "slot", "name": "order_id", "value": "579000"},
             {"event": "slot", "name": "order_id", "value": None}]
    events, dispatcher = run(ActionVerifyCustomer(), conversation(
        text="it was order 580900", earlier=given,
        slots={"order_id": "580900", "pending_action": "action_order_status"}))
    assert responses(dispatcher) == ["utter_ask_email"]
    assert SlotSet("order_id", "579000") not in events


def test_five_failures_lock_the_conversation() -> None:
    wrong = conversation(slots={"order_id": "579000", "email": OLIVIA_EMAIL})
    answers = [responses(run(ActionVerifyCustomer(), wrong)[1]) for _ in range(5)]
    assert answers == [["utter_verify_failed"]] * 4 + [["utter_verify_locked"]]
    events, dispatcher = run(ActionVerifyCustomer(), conversation(
        slots={"order_id": "579000", "email": GEORGE_EMAIL}))
    assert responses(dispatcher) == ["utter_verify_locked"]
    assert events == [SlotSet("order_id", None), SlotSet("email", None),
                      SlotSet("pending_action", None)]
    assert "verified_customer" not in str(events)


def test_crm_down_during_verification(monkeypatch: pytest.MonkeyPatch) -> None:
    def down(**_: Any) -> None:
        raise CRMUnavailable("down")

    monkeypatch.setattr(support, "verify_customer", down)
    events, dispatcher = run(ActionVerifyCustomer(), conversation(
        slots={"order_id": "579000", "email": GEORGE_EMAIL}))
    assert responses(dispatcher) == ["utter_crm_unavailable"]
    assert events == [SlotSet("pending_action", "action_order_status")]


def test_staff_get_no_customer_data() -> None:
    events, dispatcher = run(ActionOrderStatus(), conversation(
        slots={"order_id": "579000"}, metadata=signed("rep:1")))
    assert events == [] and responses(dispatcher) == ["utter_customers_only"]


def test_a_forged_signature_is_anonymous() -> None:
    forged = {"auth": {"user": "customer:12347", "sig": "0" * 64}}
    events, dispatcher = run(ActionOrderStatus(), conversation(metadata=forged))
    assert responses(dispatcher) == ["utter_need_verification"]


# --------------------------------------------------------------------------- order status


def test_signed_customer_gets_their_latest_order() -> None:
    events, dispatcher = run(ActionOrderStatus(), conversation(
        intent="track_order", metadata=signed("customer:12347")))
    assert responses(dispatcher) == ["utter_latest_order", "utter_order_status_processing"]
    assert events == [SlotSet("order_id", "581001")]


def test_another_customers_order_is_not_found() -> None:
    events, dispatcher = run(ActionOrderStatus(), conversation(
        slots=verified(order_id="581002")))
    assert events == [SlotSet("order_id", None)]
    assert responses(dispatcher) == ["utter_order_not_found"]


def test_a_cancellation_note_is_described_as_a_credit() -> None:
    events, dispatcher = run(ActionOrderStatus(), conversation(slots=verified(order_id="c579001")))
    assert events == [SlotSet("order_id", "C579001")]  # the normalised number
    assert responses(dispatcher) == ["utter_order_status_credit"]
    assert dispatcher.messages[0]["total"] == "£5.10"


def test_order_status_when_the_crm_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    def down(**_: Any) -> None:
        raise CRMUnavailable("down")

    monkeypatch.setattr(support, "order_status", down)
    events, dispatcher = run(ActionOrderStatus(), conversation(slots=verified(order_id="579000")))
    assert events == [] and responses(dispatcher) == ["utter_crm_unavailable"]


# --------------------------------------------------------------------------- cancel


def test_cancel_asks_then_cancels() -> None:
    events, dispatcher = run(ActionCancelOrder(), conversation(
        intent="cancel_order", slots=verified(order_id="581001")))
    assert events == [SlotSet("confirming", "cancel_order:581001")]
    assert responses(dispatcher) == ["utter_confirm_cancel"]
    assert order_status("581001") == "processing"

    events, dispatcher = run(ActionConfirmChange(), conversation(
        intent="affirm", slots=verified(order_id="581001", confirming="cancel_order:581001")))
    assert events == [SlotSet("confirming", None)]
    assert responses(dispatcher) == ["utter_order_cancelled"]
    assert dispatcher.messages[0]["total"] == "£28.86"
    assert order_status("581001") == "cancelled"
    with session_scope() as s:
        entry = s.scalars(select(m.AuditLog).where(m.AuditLog.action == "cancel_order")).one()
        assert (entry.actor, entry.entity_id) == (SENDER, "581001")


def test_no_keeps_the_order() -> None:
    events, dispatcher = run(ActionDeclineChange(), conversation(
        intent="deny", slots=verified(confirming="cancel_order:581001")))
    assert events == [SlotSet("confirming", None)]
    assert responses(dispatcher) == ["utter_left_unchanged"]
    assert order_status("581001") == "processing"


def test_yes_without_a_question_changes_nothing() -> None:
    events, dispatcher = run(ActionConfirmChange(), conversation(intent="affirm",
                                                                 slots=verified()))
    assert events == [] and responses(dispatcher) == ["utter_nothing_to_confirm"]
    # An anonymous caller cannot confirm a change prepared in the slot.
    events, dispatcher = run(ActionConfirmChange(), conversation(
        intent="affirm", slots={"confirming": "cancel_order:581001"}))
    assert responses(dispatcher) == ["utter_nothing_to_confirm"]
    assert order_status("581001") == "processing"


def test_a_new_request_drops_an_unanswered_confirmation() -> None:
    events, _ = run(ActionOrderStatus(), conversation(
        slots=verified(order_id="579000", confirming="cancel_order:581001")))
    assert events[0] == SlotSet("confirming", None)


def test_cancel_needs_an_order_number() -> None:
    events, dispatcher = run(ActionCancelOrder(), conversation(intent="cancel_order",
                                                               slots=verified()))
    assert events == [SlotSet("pending_action", "action_cancel_order")]
    assert responses(dispatcher) == ["utter_ask_which_order"]


@pytest.mark.parametrize(("order_id", "answer"), [
    ("580900", "utter_cannot_cancel_shipped"),
    ("579000", "utter_cannot_cancel_delivered"),
    ("C579001", "utter_cannot_cancel_not_a_sale"),
])
def test_orders_that_cannot_be_cancelled_any_more(order_id: str, answer: str) -> None:
    events, dispatcher = run(ActionCancelOrder(), conversation(slots=verified(order_id=order_id)))
    assert events == [] and responses(dispatcher) == [answer]


def test_cancel_another_customers_order() -> None:
    events, dispatcher = run(ActionCancelOrder(), conversation(slots=verified(order_id="581002")))
    assert events == [SlotSet("order_id", None)]
    assert responses(dispatcher) == ["utter_order_not_found"]
    # Even a forged confirmation slot cannot cancel it.
    events, dispatcher = run(ActionConfirmChange(), conversation(
        slots=verified(confirming="cancel_order:581002")))
    assert responses(dispatcher) == ["utter_order_not_found"]
    assert order_status("581002") == "processing"


def test_cancel_when_the_crm_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    def down(**_: Any) -> None:
        raise CRMUnavailable("down")

    monkeypatch.setattr(support, "cancel_order", down)
    events, dispatcher = run(ActionConfirmChange(), conversation(
        slots=verified(confirming="cancel_order:581001")))
    assert events == [SlotSet("confirming", None)]
    assert responses(dispatcher) == ["utter_crm_unavailable"]


# --------------------------------------------------------------------------- change, invoice


def test_change_order_after_verification_keeps_the_request_text() -> None:
    tracker = conversation(
        text=GEORGE_EMAIL,
        slots={"order_id": "581001", "email": GEORGE_EMAIL,
               "pending_action": "action_change_order"},
        earlier=[said("add 6 more lanterns to order 581001", "change_order")])
    events, dispatcher = run(ActionVerifyCustomer(), tracker)
    assert responses(dispatcher) == ["utter_verified", "utter_order_change_passed"]
    with session_scope() as s:
        ticket = s.scalars(select(m.Ticket)).one()
    assert (ticket.kind, ticket.order_id, ticket.body) == (
        "order_change", "581001", "add 6 more lanterns to order 581001")
    assert dispatcher.messages[1]["ticket"] == ticket.id


@pytest.mark.parametrize(("order_id", "answer"), [
    ("579000", "utter_order_change_too_late"), ("C579001", "utter_order_change_not_possible")])
def test_orders_that_cannot_be_changed(order_id: str, answer: str) -> None:
    _, dispatcher = run(ActionChangeOrder(), conversation(slots=verified(order_id=order_id)))
    assert responses(dispatcher) == [answer]
    _, dispatcher = run(ActionCancelOrder(), conversation(slots=verified(order_id="581001")))
    run(ActionConfirmChange(), conversation(slots=verified(confirming="cancel_order:581001")))
    _, dispatcher = run(ActionChangeOrder(), conversation(slots=verified(order_id="581001")))
    assert responses(dispatcher) == ["utter_order_change_cancelled"]


def test_check_invoice_reads_the_lines() -> None:
    events, dispatcher = run(ActionCheckInvoice(), conversation(
        intent="check_invoice", slots=verified(order_id="579000")))
    assert events == []
    assert responses(dispatcher) == ["utter_invoice_summary"]
    assert dispatcher.messages[0]["lines"] == (
        "10 Jumbo bag red retrospot at £1.95, 24 Pack of 72 retrospot cake cases at £0.55 "
        "and 2 White hanging heart t-light holder at £2.55")


def test_get_invoice_opens_an_invoice_ticket() -> None:
    events, dispatcher = run(ActionGetInvoice(), conversation(
        intent="get_invoice", metadata=signed("customer:12347"), slots={"order_id": "580900"}))
    assert responses(dispatcher) == ["utter_invoice_summary", "utter_invoice_emailed"]
    with session_scope() as s:
        ticket = s.scalars(select(m.Ticket)).one()
    assert (ticket.kind, ticket.order_id, ticket.customer_id) == ("invoice", "580900", 12347)
    assert dispatcher.messages[1]["ticket"] == ticket.id


def test_anonymous_invoice_request_needs_verification() -> None:
    events, dispatcher = run(ActionGetInvoice(), conversation(
        intent="get_invoice", slots={"order_id": "580900"}))
    assert responses(dispatcher) == ["utter_ask_email"]
    assert events == [SlotSet("pending_action", "action_get_invoice")]
    with session_scope() as s:
        assert s.scalars(select(m.Ticket)).all() == []


# --------------------------------------------------------------------------- erased customers


def erased_caller(how: str, **slots: Any) -> dict[str, Any]:
    """Customer 12349 was erased: a signed identity from before, or a verification kept."""
    if how == "signed":
        return {"metadata": signed("customer:12349"), "slots": slots}
    return {"slots": {"verified_customer": "12349", **slots}}


@pytest.mark.parametrize("how", ["signed", "verified"])
@pytest.mark.parametrize(("action", "intent", "order_id"), [
    (ActionOrderStatus, "track_order", None), (ActionOrderStatus, "track_order", "581003"),
    (ActionCancelOrder, "cancel_order", "581003"), (ActionChangeOrder, "change_order", "581003"),
    (ActionCheckInvoice, "check_invoice", None), (ActionGetInvoice, "get_invoice", "581003"),
])
def test_an_erased_customer_finds_no_order(how: str, action: type[Action], intent: str,
                                           order_id: str | None) -> None:
    slots = {"order_id": order_id} if order_id else {}
    events, dispatcher = run(action(), conversation(
        text="my order", intent=intent, **erased_caller(how, **slots)))
    assert responses(dispatcher) == ["utter_order_not_found"]  # as for a stranger's order
    assert events == ([SlotSet("order_id", None)] if order_id else [])
    assert order_status("581003") == "processing"
    with session_scope() as s:
        assert s.scalars(select(m.Ticket)).all() == []


@pytest.mark.parametrize("how", ["signed", "verified"])
def test_an_erased_customers_confirmation_cancels_nothing(how: str) -> None:
    caller = erased_caller(how, confirming="cancel_order:581003")
    events, dispatcher = run(ActionConfirmChange(), conversation(
        text="yes", intent="affirm", **caller))
    assert events == [SlotSet("confirming", None)]
    assert responses(dispatcher) == ["utter_order_not_found"]
    assert order_status("581003") == "processing"
