"""Staff actions over the papers' remaining models: unusual orders, complaint topics,
next best action, lifetime value.

Each action checks the caller is staff, makes one call into
:mod:`crm_ml.sales.insights` (which reads the rows the models wrote and keeps a rep to
their own accounts and leads), and answers in sentences that read well aloud. A period
that is not understood is asked back (``utter_business_unclear_period``).
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.crm import crm_call
from actions.gate import permitted
from actions.identity import identify
from actions.parsing import customer_ref, entity, target_ref
from actions.speech import say_date, say_list, say_money, say_percent
from crm_ml import sales
from crm_ml.identity import Identity
from crm_ml.sales import insights

logger = logging.getLogger(__name__)

__all__ = ["ActionComplaintTopics", "ActionCustomerValue", "ActionNextBestAction",
           "ActionUnusualOrders"]

SHOWN = 5


def _text(tracker: Tracker) -> str:
    return str((tracker.latest_message or {}).get("text") or "")


def _period(tracker: Tracker) -> str | None:
    return entity(tracker, "period") or entity(tracker, "time_span")


def _with_note(lines: list[str], note: str | None) -> str:
    return "\n".join([*lines, note] if note else lines)


async def _period_question(dispatcher: CollectingDispatcher, tracker: Tracker,
                           identity: Identity, fn: Any) -> Any:
    """The staff check and one call of a question about a period; the answer, or None
    after a refusal, a failure or a period asked back."""
    if not permitted(dispatcher, identity, "analytics.read"):
        return None
    answer = await crm_call(dispatcher, fn, identity=identity, text=_text(tracker),
                            period=_period(tracker), limit=SHOWN)
    if answer is not None and answer.unclear is not None:
        dispatcher.utter_message(response="utter_business_unclear_period",
                                 period=answer.unclear)
        return None
    return answer


def order_line(order: dict[str, Any]) -> str:
    """One flagged order: number, day, customer, amount, why."""
    who = f"customer {order['customer_id']}" if order.get("customer_id") else "a guest"
    why = say_list(list(order.get("reasons") or [])[:2])
    return (f"order {order['invoice']} of {say_date(order['invoiced_at'])} by {who}, "
            f"{say_money(order['amount'])}" + (f": {why}" if why else ""))


class ActionUnusualOrders(Action):
    """"Any unusual orders this week?", "suspicious orders last month"."""

    def name(self) -> str:
        return "action_unusual_orders"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        identity = identify(tracker)
        answer = await _period_question(dispatcher, tracker, identity, insights.unusual_orders)
        if answer is None:
            return []
        where = "among your accounts' orders" if identity.role == "rep" else "among the orders"
        if answer.orders:
            # Built here: one line per flagged order.
            n = len(answer.orders)
            lines = [f"{n} unusual {'order' if n == 1 else 'orders'} {where} in "
                     f"{answer.period.label}, most unusual first:"]
            lines += [f"- {order_line(o)}" for o in answer.orders]
        else:
            lines = [f"No unusual orders {where} in {answer.period.label}."]
            if answer.earlier:
                lines.append("The latest ones before that: "
                             + "; ".join(order_line(o) for o in answer.earlier) + ".")
        dispatcher.utter_message(text=_with_note(lines, answer.note))
        return []


def _trend(topic: dict[str, Any]) -> str:
    now, before = int(topic.get("count") or 0), topic.get("previous_count")
    if before is None:
        return ""
    before = int(before)
    if before == 0:
        return ", new this period" if now else ""
    change = now / before - 1
    if abs(change) < 0.05:
        return ", about as often as the period before"
    return f", {'up' if change > 0 else 'down'} {abs(change):.0%} on the period before"


class ActionComplaintTopics(Action):
    """"What are customers complaining about this month?"."""

    def name(self) -> str:
        return "action_complaint_topics"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        answer = await _period_question(dispatcher, tracker, identify(tracker),
                                        insights.complaint_topics)
        if answer is None:
            return []
        if answer.in_period:
            head = f"What customers complained about in {answer.period.label}, most often first:"
        else:
            head = (f"No customer complaints were written in {answer.period.label}; the topics "
                    f"across everything customers wrote, largest first:")
        # Built here: one line per topic.
        lines = [head]
        for t in answer.topics:
            example = next(iter(t.get("examples") or []), None)
            lines.append(f"- {t['label']}: {int(t.get('count') or 0):,} messages{_trend(t)}"
                         + (f' (e.g. "{example}")' if example else ""))
        dispatcher.utter_message(text=_with_note(lines, answer.note))
        return []


class ActionNextBestAction(Action):
    """"What should I do next with lead 41562", "next best action for customer 12347"."""

    def name(self) -> str:
        return "action_next_best_action"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        identity = identify(tracker)
        if not permitted(dispatcher, identity, "leads.read"):
            return []
        number, kind, invalid = target_ref(tracker)
        example = "what's the next best action for lead 41562"
        if invalid is not None:
            dispatcher.utter_message(response="utter_invalid_lead_id", lead_id=invalid,
                                     example=example)
            return []
        if number is None:
            dispatcher.utter_message(response="utter_ask_lead_or_customer_number",
                                     example=example)
            return []
        if kind is None:
            targets = await crm_call(dispatcher, sales.resolve_number, identity=identity,
                                     number=number)
            if targets is None:
                return []
            if len(targets) > 1:
                dispatcher.utter_message(response="utter_which_lead_or_customer", number=number)
                return []
            kind = targets[0].kind if targets else "lead"
        ids = {"lead_id": number} if kind == "lead" else {"customer_id": number}
        answer = await crm_call(dispatcher, insights.next_best_action, identity=identity,
                                **ids)
        if answer is None:
            return []
        why = say_list(answer.reasons[:3])
        text = f"Next best action for {answer.kind} {answer.id}, {answer.name}: {answer.action}."
        if answer.expected_rate is not None:
            text += (f" Expected chance of a yes: {say_percent(answer.expected_rate)}, "
                     f"{say_percent(abs(answer.uplift or 0))} "
                     f"{'above' if (answer.uplift or 0) >= 0 else 'below'} the campaign's "
                     f"average.")
        if why:
            text += f" Why: {why}."
        dispatcher.utter_message(text=text)
        return []


class ActionCustomerValue(Action):
    """"What's the lifetime value of 12347", "how much will customer 12347 spend"."""

    def name(self) -> str:
        return "action_customer_value"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        identity = identify(tracker)
        if not permitted(dispatcher, identity, "customers.read"):
            return []
        ok, customer_id = customer_ref(dispatcher, tracker, "what's the lifetime value of "
                                       "customer 12347")
        if not ok:
            return []
        v = await crm_call(dispatcher, insights.customer_value, identity=identity,
                           customer_id=customer_id)
        if v is None:
            return []
        text = (f"Customer {v.id}, {v.name}: {say_money(v.value_so_far)} so far over "
                f"{v.orders:,} {'order' if v.orders == 1 else 'orders'}.")
        if v.spend_6m is None:
            text += (" There is no predicted value yet: the lifetime-value model has not "
                     "scored them.")
        else:
            text += (f" Predicted: {say_money(v.spend_6m)} in the next 6 months and "
                     f"{say_money(v.spend_12m)} in the next 12 (about {v.purchases_12m:.1f} "
                     f"orders); {say_percent(v.prob_alive)} likely still active.")
        dispatcher.utter_message(text=text)
        return []
