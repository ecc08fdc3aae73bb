"""Care actions: complaints, reviews, payment problems, refunds and product suggestions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.orders import ActionConfirmChange, ActionDeclineChange, ActionVerifyCustomer
from actions.support import (
    ActionComplaint,
    ActionPaymentIssue,
    ActionRecommendProducts,
    ActionRefundStatus,
    ActionRequestRefund,
    ActionReview,
    ActionSubmitDetails,
    ValidateDetailsForm,
    email_in,
    is_generic,
)
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


def down(**_: Any) -> None:
    raise CRMUnavailable("down")


def all_tickets() -> list[m.Ticket]:
    with session_scope() as s:
        return list(s.scalars(select(m.Ticket).order_by(m.Ticket.id)))


@pytest.mark.parametrize(("text", "generic"), [
    ("I want to make a complaint", True), ("i'd like to leave a review", True),
    ("I'm not happy", True), ("i want to edit my account", True),
    ("my parcel arrived broken", False), ("the lantern is lovely, 5 stars", False),
    ("change my surname to Rossi", False),
])
def test_is_generic(text: str, generic: bool) -> None:
    assert is_generic(text) is generic


def test_email_in() -> None:
    assert email_in("use New.Me@Example.com please") == "new.me@example.com"
    assert email_in("no address here") is None


# --------------------------------------------------------------------------- complaints, reviews


def test_a_complaint_becomes_a_ticket_without_verification() -> None:
    text = "my parcel arrived broken and nobody answers my emails"
    events, dispatcher = run(ActionComplaint(), conversation(
        text=text, intent="complaint", slots={"order_id": "579000"}))
    assert events == [] and responses(dispatcher) == ["utter_complaint_recorded"]
    [ticket] = all_tickets()
    # Anonymous: not tied to the customer, nor to the order (kept in the text, unverified).
    assert (ticket.kind, ticket.customer_id, ticket.order_id, ticket.sender_id) == (
        "complaint", None, None, SENDER)
    assert ticket.body.startswith(text) and "not verified: 579000" in ticket.body
    assert dispatcher.messages[0]["ticket"] == ticket.id


def test_a_verified_complaint_is_tied_to_the_order() -> None:
    run(ActionComplaint(), conversation(text="the cakestand arrived chipped",
                                        intent="complaint", slots=verified(order_id="580900")))
    [ticket] = all_tickets()
    assert (ticket.customer_id, ticket.order_id) == (12347, "580900")


def test_a_vague_complaint_asks_what_happened() -> None:
    events, dispatcher = run(ActionComplaint(), conversation(
        text="I want to make a complaint", intent="complaint"))
    assert events == [SlotSet("details_kind", "complaint"), FollowupAction("details_form")]
    assert dispatcher.messages == [] and all_tickets() == []


def test_the_details_form_files_the_ticket() -> None:
    dispatcher = CollectingDispatcher()
    result = asyncio.run(ValidateDetailsForm().validate_request_details(
        "!", dispatcher, conversation(), {}))
    assert result == {"request_details": None}
    assert responses(dispatcher) == ["utter_details_too_short"]

    events, dispatcher = run(ActionSubmitDetails(), conversation(
        text="the box was crushed", slots={"details_kind": "complaint",
                                           "request_details": "the box was crushed"}))
    assert events == [SlotSet("details_kind", None), SlotSet("request_details", None)]
    assert responses(dispatcher) == ["utter_complaint_recorded"]
    [ticket] = all_tickets()
    assert (ticket.kind, ticket.body) == ("complaint", "the box was crushed")


def test_the_details_form_for_an_account_change() -> None:
    events, dispatcher = run(ActionSubmitDetails(), conversation(
        text="new.me@example.com",
        slots=verified(details_kind="account_change", request_details="new.me@example.com",
                       email="new.me@example.com")))
    assert events == [SlotSet("details_kind", None), SlotSet("request_details", None),
                      SlotSet("email", None)]
    assert responses(dispatcher) == ["utter_account_change_recorded"]
    [ticket] = all_tickets()
    assert (ticket.kind, ticket.subject) == ("account_change", "E-mail change request")


def test_a_review_becomes_a_ticket() -> None:
    _, dispatcher = run(ActionReview(), conversation(
        text="the lantern is lovely, 5 stars", intent="review",
        metadata=signed("customer:12347")))
    assert responses(dispatcher) == ["utter_review_recorded"]
    [ticket] = all_tickets()
    assert (ticket.kind, ticket.customer_id) == ("review", 12347)


def test_complaint_when_the_crm_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(support, "open_customer_ticket", down)
    events, dispatcher = run(ActionComplaint(), conversation(
        text="my parcel arrived broken", intent="complaint"))
    assert events == [] and responses(dispatcher) == ["utter_crm_unavailable"]


def test_payment_issue_opens_a_payment_ticket() -> None:
    events, dispatcher = run(ActionPaymentIssue(), conversation(
        text="i was charged twice", intent="payment_issue"))
    assert events == [] and responses(dispatcher) == ["utter_payment_recorded"]
    [ticket] = all_tickets()
    assert (ticket.kind, ticket.body) == ("payment", "i was charged twice")


# --------------------------------------------------------------------------- refunds


def test_refund_of_a_delivered_order_is_confirmed_first() -> None:
    events, dispatcher = run(ActionRequestRefund(), conversation(
        text="i want a refund for 579000", intent="get_refund", slots=verified(order_id="579000")))
    assert events == [SlotSet("confirming", "refund_order:579000")]
    assert responses(dispatcher) == ["utter_confirm_refund"]
    assert all_tickets() == []  # nothing before the customer's yes
    events, dispatcher = run(ActionConfirmChange(), conversation(
        text="yes", intent="affirm", earlier=[said("i want a refund for 579000", "get_refund")],
        slots=verified(order_id="579000", confirming="refund_order:579000")))
    assert events == [SlotSet("confirming", None)]
    assert responses(dispatcher) == ["utter_refund_requested"]
    [ticket] = all_tickets()
    assert (ticket.kind, ticket.order_id, ticket.body) == (
        "refund", "579000", "i want a refund for 579000")
    assert dispatcher.messages[0]["ticket"] == ticket.id
    _, again = run(ActionConfirmChange(), conversation(
        intent="affirm", slots=verified(confirming="refund_order:579000")))
    assert responses(again) == ["utter_refund_already_requested"]
    assert len(all_tickets()) == 1


def test_no_to_a_whole_order_refund_opens_nothing() -> None:
    _, dispatcher = run(ActionDeclineChange(), conversation(
        text="no", intent="deny", slots=verified(confirming="refund_order:579000")))
    assert responses(dispatcher) == ["utter_left_unchanged"]
    assert all_tickets() == []


def test_refund_after_verification_uses_the_original_request() -> None:
    request = said("refund order 580900 please, wrong colour", "get_refund")
    events, dispatcher = run(ActionVerifyCustomer(), conversation(
        text=GEORGE_EMAIL,
        slots={"order_id": "580900", "email": GEORGE_EMAIL,
               "pending_action": "action_request_refund"},
        earlier=[request]))
    assert responses(dispatcher) == ["utter_verified", "utter_confirm_refund"]
    assert SlotSet("confirming", "refund_order:580900") in events
    _, dispatcher = run(ActionConfirmChange(), conversation(
        text="yes", intent="affirm", earlier=[request],
        slots=verified(confirming="refund_order:580900")))
    [ticket] = all_tickets()
    assert ticket.body == "refund order 580900 please, wrong colour"


@pytest.mark.parametrize(("order_id", "answer"), [
    ("581001", "utter_refund_not_shipped"), ("C579001", "utter_refund_not_a_sale")])
def test_refund_not_possible(order_id: str, answer: str) -> None:
    events, dispatcher = run(ActionRequestRefund(), conversation(
        intent="get_refund", slots=verified(order_id=order_id)))
    assert responses(dispatcher) == [answer] and all_tickets() == []


def test_refund_for_anonymous_and_for_another_customers_order() -> None:
    events, dispatcher = run(ActionRequestRefund(), conversation(intent="get_refund"))
    assert events == [SlotSet("pending_action", "action_request_refund")]
    assert responses(dispatcher) == ["utter_need_verification"]
    events, dispatcher = run(ActionRequestRefund(), conversation(
        intent="get_refund", slots=verified(order_id="581002")))
    assert events == [SlotSet("order_id", None)]
    assert responses(dispatcher) == ["utter_order_not_found"]
    assert all_tickets() == []


def test_refund_status_reads_requests_and_credits() -> None:
    run(ActionConfirmChange(), conversation(intent="affirm",
                                            slots=verified(confirming="refund_order:579000")))
    events, dispatcher = run(ActionRefundStatus(), conversation(intent="track_refund",
                                                                slots=verified()))
    assert events == [] and responses(dispatcher) == ["utter_refund_status"]
    details = dispatcher.messages[0]["details"]
    assert "refund request for order 579000" in details and "is being handled" in details
    assert "£5.10 was credited back to you on 21 November 2011" in details


def test_refund_status_without_refunds() -> None:
    _, dispatcher = run(ActionRefundStatus(), conversation(
        intent="track_refund", metadata=signed("customer:12348")))
    assert responses(dispatcher) == ["utter_no_refunds"]


def test_refund_status_is_not_for_anonymous_callers() -> None:
    events, dispatcher = run(ActionRefundStatus(), conversation(intent="track_refund"))
    assert events == [SlotSet("pending_action", "action_refund_status")]
    assert responses(dispatcher) == ["utter_need_verification"]


def test_refund_status_when_the_crm_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(support, "refund_status", down)
    events, dispatcher = run(ActionRefundStatus(), conversation(slots=verified()))
    assert events == [] and responses(dispatcher) == ["utter_crm_unavailable"]


# --------------------------------------------------------------------------- suggestions


def test_anonymous_visitors_get_the_best_sellers() -> None:
    events, dispatcher = run(ActionRecommendProducts(), conversation(intent="ask_recommendation"))
    assert events == [] and responses(dispatcher) == ["utter_suggest_best_sellers"]
    assert dispatcher.messages[0]["products"] == (
        "Pack of 72 retrospot cake cases at £0.55, Jumbo bag red retrospot at £1.95 and "
        "White hanging heart t-light holder at £2.55")


def test_a_verified_customer_gets_their_recommendations() -> None:
    with session_scope() as s:
        s.add(m.Recommendation(customer_id=12347, rank=1, stock_code="22423", score=0.9,
                               source="item_cf", model_version="t"))
    _, dispatcher = run(ActionRecommendProducts(), conversation(slots=verified()))
    assert responses(dispatcher) == ["utter_suggest_personal"]
    assert dispatcher.messages[0]["products"] == "Regency cakestand 3 tier at £12.75"
    # Staff ("top products this month") get the business question's top products, with
    # its period and figures, not a shopper's suggestions.
    _, dispatcher = run(ActionRecommendProducts(), conversation(
        text="top 2 products", intent="ask_recommendation", metadata=signed("rep:1")))
    assert dispatcher.messages[0]["text"].startswith(
        "Top 2 products by net revenue across all the data:"), dispatcher.messages


def test_suggestions_when_the_crm_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(support, "suggestions", down)
    events, dispatcher = run(ActionRecommendProducts(), conversation())
    assert events == [] and responses(dispatcher) == ["utter_crm_unavailable"]


# --------------------------------------------------------------------------- erased customers


@pytest.mark.parametrize("caller", [{"metadata": signed("customer:12349")},
                                    {"slots": {"verified_customer": "12349"}}])
def test_an_erased_customer_is_a_stranger_to_refunds_and_ideas(caller: dict[str, Any]) -> None:
    """12349 was erased: their old identity reads no refunds and no personal ideas."""
    with session_scope() as s:
        s.add(m.Recommendation(customer_id=12349, rank=1, stock_code="22423", score=0.9,
                               source="item_cf", model_version="t"))
    _, dispatcher = run(ActionRefundStatus(), conversation(intent="track_refund", **caller))
    assert responses(dispatcher) == ["utter_not_found"]
    slots = {**caller.get("slots", {}), "order_id": "581003"}
    _, dispatcher = run(ActionRequestRefund(), conversation(
        intent="get_refund", metadata=caller.get("metadata"), slots=slots))
    assert responses(dispatcher) == ["utter_order_not_found"]
    _, dispatcher = run(ActionRecommendProducts(), conversation(
        intent="ask_recommendation", **caller))
    assert responses(dispatcher) == ["utter_suggest_best_sellers"]
    assert "Regency" not in dispatcher.messages[0]["products"]
    _, dispatcher = run(ActionComplaint(), conversation(
        text="my parcel arrived broken", intent="complaint", **caller))
    [ticket] = all_tickets()
    assert ticket.customer_id is None  # filed, as from an anonymous visitor
