"""After-delivery claims and the order list, on the seeded CRM of tests/crm_ml/test_support.py."""

from __future__ import annotations

import pytest
from rasa_sdk.events import SlotSet
from sqlalchemy import select

from actions.claims import (
    ActionChooseItem,
    ActionConfirmLineRefund,
    ActionListOrders,
    ActionMissingParcel,
    ActionWrongItem,
    pick_item,
)
from actions.orders import ActionDeclineChange, ActionVerifyCustomer
from crm_ml import claims
from crm_ml.db import models as m
from crm_ml.db import session_scope
from tests.actions.test_orders import conversation, responses, run, said, signed, verified
from tests.crm_ml.test_support import (  # noqa: F401 - shared fixtures
    GEORGE_EMAIL,
    crm,
    crm_template,
)

pytestmark = pytest.mark.usefixtures("crm")


def tickets(kind: str) -> list[m.Ticket]:
    with session_scope() as s:
        found = s.scalars(select(m.Ticket).where(m.Ticket.kind == kind)
                          .order_by(m.Ticket.id)).all()
        s.expunge_all()
        return list(found)


def line_ids(order_id: str) -> dict[str, int]:
    with session_scope() as s:
        rows = s.execute(select(m.OrderLine.stock_code, m.OrderLine.id)
                         .where(m.OrderLine.order_id == order_id)).all()
        return {code: int(line) for code, line in rows}


# --------------------------------------------------------------------------- missing parcel


def test_missing_parcel_needs_verification_first() -> None:
    events, dispatcher = run(ActionMissingParcel(), conversation(
        text="the parcel says delivered but it's not here", intent="report_missing_parcel"))
    assert responses(dispatcher) == ["utter_need_verification"]
    assert events == [SlotSet("pending_action", "action_missing_parcel")]
    assert tickets("missing_parcel") == []


def test_missing_parcel_claim_after_verification_once_per_order() -> None:
    request = said("the parcel says delivered but it's not here", "report_missing_parcel")
    tracker = conversation(text=f"579000 {GEORGE_EMAIL}", earlier=[request],
                           slots={"order_id": "579000", "email": GEORGE_EMAIL,
                                  "pending_action": "action_missing_parcel"})
    events, dispatcher = run(ActionVerifyCustomer(), tracker)
    assert responses(dispatcher) == ["utter_verified", "utter_parcel_claim_opened"]
    assert SlotSet("verified_customer", "12347") in events
    [claim] = tickets("missing_parcel")
    assert (claim.customer_id, claim.order_id, claim.status) == (12347, "579000", "open")
    assert claim.body == "the parcel says delivered but it's not here"
    assert dispatcher.messages[1]["ticket"] == claim.id
    _, again = run(ActionMissingParcel(), conversation(
        text="still nothing here", intent="report_missing_parcel",
        slots=verified(order_id="579000")))
    assert responses(again) == ["utter_parcel_claim_already_open"]
    assert len(tickets("missing_parcel")) == 1


@pytest.mark.parametrize(("order_id", "answer"), [
    ("581001", "utter_parcel_not_shipped"),
    ("581002", "utter_order_not_found"),  # Olivia's order
])
def test_no_claim_for_an_order_not_shipped_or_not_theirs(order_id: str, answer: str) -> None:
    _, dispatcher = run(ActionMissingParcel(), conversation(
        intent="report_missing_parcel", slots=verified(order_id=order_id)))
    assert responses(dispatcher) == [answer]
    assert tickets("missing_parcel") == []


# --------------------------------------------------------------------------- wrong or damaged item


def test_wrong_item_offers_the_order_lines_as_buttons() -> None:
    events, dispatcher = run(ActionWrongItem(), conversation(
        text="wrong item received", intent="report_wrong_item",
        slots=verified(order_id="579000")))
    assert responses(dispatcher) == ["utter_sorry_wrong_item", "utter_ask_which_item"]
    buttons = dispatcher.messages[1]["buttons"]
    lines = line_ids("579000")
    assert [b["payload"] for b in buttons] == [
        f'/choose_item{{"order_line":"{lines[code]}"}}' for code in ("85099B", "21212", "85123A")]
    assert buttons[0]["title"] == "10 x Jumbo bag red retrospot (£19.50)"
    assert "3: 2 x White hanging heart t-light holder" in dispatcher.messages[1]["choices"]
    assert events == [SlotSet("order_id", "579000"), SlotSet("item_problem", "wrong")]
    assert tickets("refund") == []


def test_damaged_item_chosen_confirmed_refunds_that_line_only() -> None:
    lines = line_ids("579000")
    history = [said("the cake cases arrived crushed", "report_damaged_item")]
    slots = verified(order_id="579000", item_problem="damaged")
    choose = conversation(text=f'/choose_item{{"order_line":"{lines["21212"]}"}}',
                          intent="choose_item", earlier=history, slots=slots,
                          entities=[{"entity": "order_line", "value": str(lines["21212"])}])
    events, dispatcher = run(ActionChooseItem(), choose)
    assert responses(dispatcher) == ["utter_confirm_line_refund"]
    assert dispatcher.messages[0]["amount"] == "£13.20"
    confirm = f"line_refund:579000:{lines['21212']}:damaged"
    assert events == [SlotSet("confirming", confirm)]
    assert tickets("refund") == []  # nothing before the customer's yes

    events, dispatcher = run(ActionConfirmLineRefund(), conversation(
        text="yes please", intent="affirm", slots={**slots, "confirming": confirm}))
    assert responses(dispatcher) == ["utter_line_refund_opened"]
    [refund] = tickets("refund")
    assert (refund.order_id, refund.customer_id) == ("579000", 12347)
    assert "24 x PACK OF 72 RETROSPOT CAKE CASES" in refund.body
    assert "refund 13.20 for this line only" in refund.body
    assert "37.80" not in refund.body.split("(")[0]  # not the order's total as the refund
    assert SlotSet("confirming", None) in events


def test_no_to_the_line_refund_opens_nothing() -> None:
    lines = line_ids("579000")
    confirm = f"line_refund:579000:{lines['21212']}:wrong"
    events, dispatcher = run(ActionDeclineChange(), conversation(
        text="no", intent="deny", slots=verified(confirming=confirm)))
    assert responses(dispatcher) == ["utter_left_unchanged"]
    assert tickets("refund") == []


def test_a_typed_choice_by_position_or_name() -> None:
    items = [claims.OrderItem(1, "JUMBO BAG RED RETROSPOT", 10, 1.95),
             claims.OrderItem(2, "PACK OF 72 RETROSPOT CAKE CASES", 24, 0.55),
             claims.OrderItem(3, "WHITE HANGING HEART T-LIGHT HOLDER", 2, 2.55)]
    assert pick_item(items, None, "the second one") is items[1]
    assert pick_item(items, None, "number 3") is items[2]
    assert pick_item(items, None, "the last one") is items[2]
    assert pick_item(items, None, "it's the cake cases") is items[1]
    assert pick_item(items, None, "the retrospot one") is None  # two match: ask again
    assert pick_item(items, "2", "") is items[1]
    assert pick_item(items, "99", "") is None


def test_a_line_of_another_order_cannot_be_refunded() -> None:
    other = line_ids("580900")["22423"]
    _, dispatcher = run(ActionChooseItem(), conversation(
        intent="choose_item", slots=verified(order_id="579000"),
        entities=[{"entity": "order_line", "value": str(other)}]))
    assert responses(dispatcher) == ["utter_which_item_unclear"]
    _, dispatcher = run(ActionConfirmLineRefund(), conversation(
        intent="affirm", slots=verified(confirming=f"line_refund:579000:{other}:wrong")))
    assert responses(dispatcher) == ["utter_order_not_found"]
    assert tickets("refund") == []


def test_no_item_claim_on_an_order_still_being_prepared() -> None:
    _, dispatcher = run(ActionWrongItem(), conversation(
        intent="report_damaged_item", slots=verified(order_id="581001")))
    assert responses(dispatcher) == ["utter_item_claim_not_possible"]


# --------------------------------------------------------------------------- my orders


def test_signed_in_customer_sees_only_their_orders() -> None:
    _, dispatcher = run(ActionListOrders(), conversation(
        text="show me my orders", intent="show_orders", metadata=signed("customer:12347")))
    assert responses(dispatcher) == ["utter_your_orders"]
    listed = dispatcher.messages[0]["orders"]
    assert listed.split("; ")[0].startswith("581001 of 8 December 2011, £28.86, processing")
    assert "C579001" in listed and "credit of £5.10" in listed
    assert "581002" not in listed and "560000" not in listed  # Olivia's
    assert dispatcher.messages[0]["count"] == "4"


def test_anonymous_order_list_asks_for_verification() -> None:
    events, dispatcher = run(ActionListOrders(), conversation(
        text="show me my orders", intent="show_orders"))
    assert responses(dispatcher) == ["utter_need_verification"]
    assert events == [SlotSet("pending_action", "action_list_orders")]
