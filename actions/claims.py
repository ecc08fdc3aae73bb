"""After-delivery problems: a parcel that never came, a wrong or damaged item; my orders.

All three go through the customer gate (:mod:`actions.gate`): a signed-in
customer is served at once, anyone else is asked for an order number and the
e-mail on it first. A wrong or damaged item is refunded line by line: the bot
apologises, shows the order's lines as buttons (a number or the product's name
works too, by voice), asks to confirm the chosen line, and only the
customer's "yes" (:class:`ActionConfirmLineRefund`) opens the refund.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.crm import NOT_FOUND, crm_call
from actions.gate import CONFIRM_SLOT, ORDER_SLOT, CustomerAction
from actions.identity import identify
from actions.parsing import entity, last_user_text
from actions.speech import order_facts, product_name, say_date, say_list, say_price
from crm_ml import claims, support
from crm_ml.identity import Identity

logger = logging.getLogger(__name__)

__all__ = [
    "LINE_REFUND",
    "PROBLEM_SLOT",
    "ActionChooseItem",
    "ActionConfirmLineRefund",
    "ActionListOrders",
    "ActionMissingParcel",
    "ActionWrongItem",
    "pick_item",
]

PROBLEM_SLOT = "item_problem"
"""``wrong`` or ``damaged``: what the customer said about the item being chosen."""
LINE_ENTITY = "order_line"
LINE_REFUND = "line_refund"
"""The prefix of the confirmation ``line_refund:<order>:<line>:<problem>``."""
ITEM_INTENTS = {"report_wrong_item": "wrong", "report_damaged_item": "damaged"}
_ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3,
             "fourth": 4, "4th": 4, "fifth": 5, "5th": 5, "last": -1}
_WORD = re.compile(r"[a-z0-9]+")


class ActionMissingParcel(CustomerAction):
    """"It says delivered but it's not here": a missing-parcel claim for the order."""

    order_needed = "optional"

    def name(self) -> str:
        return "action_missing_parcel"

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     identity: Identity, order_id: str | None) -> list[EventType]:
        text = last_user_text(tracker, {"report_missing_parcel"})
        claim = await crm_call(dispatcher, claims.open_missing_parcel_claim, identity=identity,
                               order_id=order_id, text=text, sender_id=tracker.sender_id,
                               not_found="utter_order_not_found")
        if claim is NOT_FOUND:
            return [SlotSet(ORDER_SLOT, None)] if order_id else []
        if not isinstance(claim, claims.Claim):
            return []
        response = {"opened": "utter_parcel_claim_opened",
                    "already_open": "utter_parcel_claim_already_open",
                    "processing": "utter_parcel_not_shipped",
                    "cancelled": "utter_order_status_cancelled"}.get(
                        claim.outcome, "utter_refund_not_a_sale")
        dispatcher.utter_message(response=response, ticket=claim.ticket_id,
                                 status=claim.order.status, **order_facts(claim.order))
        return [] if claim.order.order_id == order_id else [SlotSet(ORDER_SLOT,
                                                                    claim.order.order_id)]


def _problem(tracker: Tracker) -> str:
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            name = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
            if name in ITEM_INTENTS:
                return ITEM_INTENTS[name]
    slot = tracker.get_slot(PROBLEM_SLOT)
    return slot if slot in claims.CLAIM_PROBLEMS else "wrong"


def _item_label(item: claims.OrderItem) -> str:
    return f"{item.quantity} x {product_name(item.description)} ({say_price(item.amount)})"


class ActionWrongItem(CustomerAction):
    """A wrong or damaged item: say sorry and ask which of the order's items it is."""

    order_needed = "optional"

    def name(self) -> str:
        return "action_wrong_item"

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     identity: Identity, order_id: str | None) -> list[EventType]:
        problem = _problem(tracker)
        found = await crm_call(dispatcher, claims.order_items, identity=identity,
                               order_id=order_id, not_found="utter_order_not_found")
        if found is NOT_FOUND:
            return [SlotSet(ORDER_SLOT, None)] if order_id else []
        if found is None:
            return []
        order, items = found
        facts = order_facts(order)
        if order.kind != "sale" or order.status in {"processing", "cancelled"} or not items:
            dispatcher.utter_message(response="utter_item_claim_not_possible", **facts)
            return []
        buttons = [{"title": _item_label(item),
                    "payload": f'/choose_item{{"{LINE_ENTITY}":"{item.line_id}"}}'}
                   for item in items]
        numbered = say_list([f"{n}: {_item_label(item)}" for n, item in enumerate(items, 1)])
        dispatcher.utter_message(response=f"utter_sorry_{problem}_item", **facts)
        dispatcher.utter_message(response="utter_ask_which_item", buttons=buttons,
                                 choices=numbered, **facts)
        return [SlotSet(ORDER_SLOT, order.order_id), SlotSet(PROBLEM_SLOT, problem)]


def pick_item(items: list[claims.OrderItem], line: str | None,
              text: str) -> claims.OrderItem | None:
    """The item the customer chose: a button's line id, a position, or the product's words.

    Args:
        items: The order's items, in the order they were offered.
        line: The ``order_line`` entity (a button's payload), if any.
        text: What the customer typed or said.

    Returns:
        The one item meant, or None when it is not clear.
    """
    if line is not None:
        return next((i for i in items if str(i.line_id) == line.strip()), None)
    words = _WORD.findall(text.lower())
    for word in words:
        position = _ORDINALS.get(word) or (int(word) if word.isdigit() and len(word) < 3 else 0)
        if position and -len(items) <= (position - 1 if position > 0 else position) < len(items):
            return items[position - 1 if position > 0 else position]
    asked = {w for w in words if len(w) > 2}
    scored = [(len(asked & set(_WORD.findall(i.description.lower()))), i) for i in items]
    best = max((s for s, _ in scored), default=0)
    matches = [i for s, i in scored if s == best and s > 0]
    return matches[0] if len(matches) == 1 else None


class ActionChooseItem(Action):
    """The customer chose the item: apologise again, show it, ask to confirm its refund."""

    def name(self) -> str:
        return "action_choose_item"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[EventType]:
        identity = identify(tracker)
        order_id = support.clean_order_id(tracker.get_slot(ORDER_SLOT) or "")
        if identity.role != "customer" or order_id is None:
            dispatcher.utter_message(response="utter_nothing_to_confirm")
            return []
        found = await crm_call(dispatcher, claims.order_items, identity=identity,
                               order_id=order_id, not_found="utter_order_not_found")
        if not isinstance(found, tuple):
            return []
        order, items = found
        text = (tracker.latest_message or {}).get("text") or ""
        item = pick_item(items, entity(tracker, LINE_ENTITY), text)
        if item is None:
            dispatcher.utter_message(response="utter_which_item_unclear")
            return []
        problem = _problem(tracker)
        dispatcher.utter_message(response="utter_confirm_line_refund", item=_item_label(item),
                                 product=product_name(item.description),
                                 amount=say_price(item.amount), **order_facts(order))
        return [SlotSet(CONFIRM_SLOT, f"{LINE_REFUND}:{order.order_id}:{item.line_id}:{problem}")]


class ActionConfirmLineRefund(Action):
    """The customer said yes to the refund of the chosen line: open it for that line only."""

    def name(self) -> str:
        return "action_confirm_line_refund"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[EventType]:
        pending = tracker.get_slot(CONFIRM_SLOT)
        identity = identify(tracker)
        what, _, subject = (pending if isinstance(pending, str) else "").partition(":")
        order_id, _, rest = subject.partition(":")
        line, _, problem = rest.partition(":")
        done: list[EventType] = [SlotSet(CONFIRM_SLOT, None)] if pending else []
        if what != LINE_REFUND or identity.role != "customer" or not line.isdigit() \
                or problem not in claims.CLAIM_PROBLEMS or support.clean_order_id(order_id) is None:
            dispatcher.utter_message(response="utter_nothing_to_confirm")
            return done
        outcome = await crm_call(dispatcher, claims.request_line_refund, identity=identity,
                                 order_id=order_id, line_id=int(line), problem=problem,
                                 sender_id=tracker.sender_id, not_found="utter_order_not_found")
        if isinstance(outcome, claims.LineRefund):
            response = {"opened": "utter_line_refund_opened",
                        "already_open": "utter_line_refund_already_open"}.get(
                            outcome.outcome, "utter_item_claim_not_possible")
            dispatcher.utter_message(response=response, ticket=outcome.ticket_id,
                                     item=_item_label(outcome.item),
                                     amount=say_price(outcome.item.amount),
                                     **order_facts(outcome.order))
        return [*done, SlotSet(PROBLEM_SLOT, None)]


class ActionListOrders(CustomerAction):
    """"Show me my orders": the customer's latest orders with date, status and total."""

    def name(self) -> str:
        return "action_list_orders"

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     identity: Identity, order_id: str | None) -> list[EventType]:
        orders = await crm_call(dispatcher, claims.recent_orders, identity=identity)
        if orders is None:
            return []
        if not orders:
            dispatcher.utter_message(response="utter_no_orders")
            return []
        lines = [f"{o.order_id} of {say_date(o.invoiced_at)}, "
                 + (f"a credit of {say_price(abs(o.total))}" if o.kind == "cancellation"
                    else f"{say_price(o.total)}, {o.status}")
                 for o in orders]
        dispatcher.utter_message(response="utter_your_orders", count=str(len(orders)),
                                 orders="; ".join(lines))
        return []
