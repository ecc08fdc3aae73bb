"""Staff actions about one customer: the 360 view, their orders, and accounts that never
ordered. A rep sees their accounts, a manager the team's, an agent all; customers and
anonymous callers are refused (utter_not_allowed)."""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.crm import crm_call
from actions.gate import permitted
from actions.identity import identify
from actions.parsing import customer_ref, entity, latest_intent
from actions.speech import (
    reason_phrase,
    say_date,
    say_list,
    say_money,
    say_percent,
    scope_of,
    whose,
)
from crm_ml import customer360, sales

logger = logging.getLogger(__name__)

__all__ = ["ActionCustomer360", "ActionNeverOrdered"]

EXAMPLE = "tell me about customer 12347"


class ActionCustomer360(Action):
    """"Tell me about customer 12347", "who is George Rossi", "orders of 12347"."""

    def name(self) -> str:
        return "action_customer_360"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        identity = identify(tracker)
        if not permitted(dispatcher, identity, "customers.read"):
            return []
        ok, customer_id = customer_ref(dispatcher, tracker, EXAMPLE, required=False)
        if not ok:
            return []
        name = entity(tracker, "lead_name") or entity(tracker, "customer_name")
        if customer_id is None and not name:
            dispatcher.utter_message(response="utter_ask_customer_id", example=EXAMPLE)
            return []
        orders_only = latest_intent(tracker) == "ask_customer_orders"
        text = str((tracker.latest_message or {}).get("text") or "").lower()
        last_only = orders_only and "last" in text and "orders" not in text
        view = await crm_call(dispatcher, customer360.customer_360, identity=identity,
                              customer_id=customer_id, name=name,
                              orders=1 if last_only else (5 if orders_only else 3))
        if view is None:
            return []
        if isinstance(view, customer360.CustomerChoices):
            choose(dispatcher, view, latest_intent(tracker) or "ask_customer_360")
            return []
        if orders_only:
            dispatcher.utter_message(text=orders_text(view, last_only))
        else:
            dispatcher.utter_message(text=view_text(view))
        return []


def choose(dispatcher: CollectingDispatcher, choices: customer360.CustomerChoices,
           intent: str) -> None:
    """No match: say so; several: one button per customer (the number works as well)."""
    if not choices.candidates:
        dispatcher.utter_message(response="utter_customer_name_not_found", name=choices.name)
        return
    buttons = [{"title": f"{cid}, {name} ({country})",
                "payload": f'/{intent}{{"customer_id":"{cid}"}}'}
               for cid, name, country in choices.candidates]
    dispatcher.utter_message(response="utter_which_customer", name=choices.name,
                             count=str(len(choices.candidates)),
                             options=say_list([f"{c[0]} ({c[2]})" for c in choices.candidates]),
                             buttons=buttons)


def orders_text(view: customer360.Customer360, last_only: bool) -> str:
    """The customer's last order(s): number, date, amount."""
    if not view.last_orders:
        return f"Customer {view.id}, {view.name}, has no orders on record."
    lines = [f"{'a cancellation note' if o.kind != 'sale' else 'order'} {o.id} "
             f"of {say_date(o.date)}, {say_money(o.total)}" for o in view.last_orders]
    if last_only:
        return f"The last order of customer {view.id}, {view.name}, is {lines[0]}."
    # Built here: as many orders as the customer has, up to five.
    return (f"The last {len(lines)} orders of customer {view.id}, {view.name} "
            f"({view.orders:,} orders, {say_money(view.value_so_far)} in all): "
            + "; ".join(lines) + ".")


def predicted_text(p: customer360.PredictedValue) -> str:
    """The lifetime-value outlook in one sentence."""
    return (f"Predicted: {say_money(p.spend_6m)} in the next 6 months and "
            f"{say_money(p.spend_12m)} in the next 12 (about {p.purchases_12m:.1f} orders), "
            f"{say_percent(p.prob_alive)} likely still active.")


def view_text(v: customer360.Customer360) -> str:
    """The 360 in a few sentences (each only when the CRM holds the fact)."""
    who = f"Customer {v.id}, {v.name}"
    if v.account and v.account != v.name:
        who += f" (account {v.account})"
    parts = [f"{who}, from {v.country}"
             + (f", a customer since {say_date(v.first_seen)}" if v.first_seen else "")
             + (f"; account owner {v.owner}." if v.owner else ".")]
    if v.segment:
        parts.append(f"Segment: {v.segment}.")
    if v.churn is not None:
        why = reason_phrase(v.churn_reasons)
        parts.append(f"Churn risk {say_percent(v.churn)}" + (f", because: {why}." if why else "."))
    value = f"Value so far {say_money(v.value_so_far)} over {v.orders:,} orders"
    parts.append(value + ".")
    if v.predicted is not None:
        parts.append(predicted_text(v.predicted))
    if v.next_action:
        why = say_list(v.next_action_reasons[:2])
        parts.append(f"Next best action: {v.next_action}" + (f" ({why})." if why else "."))
    if v.last_orders:
        parts.append("Last orders: " + "; ".join(
            f"{o.id} of {say_date(o.date)}, {say_money(o.total)}" for o in v.last_orders) + ".")
    parts.append(f"Open tickets: {v.open_tickets}; open escalations: {v.open_escalations}.")
    if v.last_contact is not None:
        parts.append(f"Last contact: a {v.last_contact_kind or 'message'} on "
                     f"{say_date(v.last_contact)}.")
    else:
        parts.append("No contact logged yet.")
    # Built here: one sentence per fact the CRM holds about this customer.
    return " ".join(parts)


class ActionNeverOrdered(Action):
    """"Accounts that never ordered": a separate list from the churn risks."""

    def name(self) -> str:
        return "action_never_ordered"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        identity = identify(tracker)
        if not permitted(dispatcher, identity, "accounts.read"):
            return []
        found = await crm_call(dispatcher, sales.never_ordered, identity=identity, limit=10)
        if found is None:
            return []
        count, rows = found
        accounts = whose(scope_of(identity), "accounts")
        if not count:
            dispatcher.utter_message(response="utter_no_never_ordered", whose=accounts)
            return []
        names = say_list([f"customer {cid} ({name})" for cid, name in rows])
        dispatcher.utter_message(response="utter_never_ordered", count=f"{count:,}",
                                 whose=accounts, shown=str(len(rows)), names=names)
        return []
