"""Questions about the business: revenue, top products and customers, inactive customers,
leads by source, status and score.

Each action checks the caller is staff, makes one call into
:mod:`crm_ml.sales.questions` (which reads the words, validates the country and
period, and queries the CRM in SQL), and answers: the fixed replies are domain
responses (``utter_business_*``); the tables are built here, one line per row,
with a comment saying so. A country or period that cannot be understood is asked
back, never guessed. Every answer about a period says the as-of date when it is
not the calendar date (the demo data ends on 9 December 2011).
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.crm import crm_call
from actions.gate import permitted
from actions.identity import identify
from actions.parsing import entity
from actions.speech import (
    catalogue_name,
    say_count,
    say_date,
    say_list,
    say_money,
    scope_of,
    whose,
)
from crm_ml import signing
from crm_ml.config import get_settings
from crm_ml.identity import Identity
from crm_ml.sales import business_chart, questions

logger = logging.getLogger(__name__)

__all__ = [
    "CHART_LINK_TTL",
    "PENDING_SLOT",
    "QUESTIONS",
    "ActionAskRevenue",
    "ActionBusinessFollowUp",
    "ActionInactiveCustomers",
    "ActionLeadsFiltered",
    "ActionTopCustomers",
    "ActionTopProducts",
    "BusinessQuestion",
    "revenue_chart_url",
]

SOURCE_NAMES = {"bank_marketing": "bank marketing", "x_education": "X Education"}
COUNTRIES_SHOWN = 12
CHART_LINK_TTL = 15 * 60  # seconds: the chat client fetches the image right away
DEFAULT_CONSOLE_URL = "http://127.0.0.1:8000"


def revenue_chart_url(answer: questions.Answer, *, now: float | None = None) -> str | None:
    """The signed console URL of the monthly revenue chart of the answer's period.

    None without a period or without ``CRM_IDENTITY_SECRET`` (nothing can be signed).
    """
    settings = get_settings()
    if answer.period is None or not settings.identity_secret:
        return None
    query = signing.sign_query(business_chart.REVENUE_CHART,
                               business_chart.chart_query(answer.period, answer.country),
                               settings.identity_secret, ttl=CHART_LINK_TTL, now=now)
    base = str(getattr(settings, "console_url", "") or DEFAULT_CONSOLE_URL).rstrip("/")
    return f"{base}{business_chart.REVENUE_CHART}?{query}"


def _text(tracker: Tracker) -> str:
    return str((tracker.latest_message or {}).get("text") or "")


def _period_entity(tracker: Tracker) -> str | None:
    return entity(tracker, "period") or entity(tracker, "time_span")


def _asked_back(dispatcher: CollectingDispatcher, answer: questions.Answer) -> bool:
    """Ask back what was not understood; True when the answer stops there."""
    problem = answer.problem
    if isinstance(problem, questions.UnknownCountry):
        known = problem.known[:COUNTRIES_SHOWN]
        more = len(problem.known) - len(known)
        countries = say_list([*known, f"{more} more" if more > 0 else ""])
        dispatcher.utter_message(response="utter_business_which_country",
                                 country=problem.raw, countries=countries)
        return True
    if isinstance(problem, questions.UnclearPeriod):
        dispatcher.utter_message(response="utter_business_unclear_period", period=problem.raw)
        return True
    if isinstance(problem, questions.UnknownProduct):
        dispatcher.utter_message(response="utter_business_which_product", product=problem.raw)
        return True
    return False


def _where(answer: questions.Answer) -> str:
    parts = []
    if answer.extra.get("product"):
        parts.append(f"of {catalogue_name(answer.extra['product'])}")
    if answer.extra.get("segment"):
        parts.append(f"from the {answer.extra['segment']} segment")
    if answer.country:
        parts.append(f"in {answer.country}")
    parts.append(f"in {answer.period.label}" if answer.period is not None
                 else "across all the data")
    return " ".join(parts)


def _say(dispatcher: CollectingDispatcher, answer: questions.Answer, lines: list[str]) -> None:
    """The answer's lines, a word when fewer rows than asked are listed, then the as-of
    sentence when there is one."""
    if answer.terms.asked is not None:
        lines = [*lines, f"You asked for {answer.terms.asked:,}; I list at most "
                         f"{answer.terms.n} at a time, so these are the first {answer.terms.n}."]
    if answer.as_of_note:
        lines = [*lines, answer.as_of_note]
    dispatcher.utter_message(text="\n".join(lines))


def _change(now: float, before: float) -> str:
    if before == 0:
        return "there was no revenue the period before"
    rel = now / before - 1
    direction = "up" if rel > 0 else "down" if rel < 0 else "unchanged"
    if direction == "unchanged":
        return "unchanged on the period before"
    return f"{direction} {abs(rel) * 100:.1f}% on the period before"


PENDING_SLOT = "business_pending"


class BusinessQuestion(Action, ABC):
    """A business question: the staff check, one call into crm_ml, the answer.

    Subclasses give :attr:`permission` and :meth:`answer`. When the country or the
    period is asked back, the question waits in the ``business_pending`` slot, so
    that the next message ("Germany") completes it (:class:`ActionBusinessFollowUp`).
    The rasa-sdk executor skips this abstract base.
    """

    permission: ClassVar[str] = "analytics.read"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        identity = identify(tracker)
        if not permitted(dispatcher, identity, self.permission):
            return []
        return await self.ask(dispatcher, identity, _text(tracker), _period_entity(tracker),
                              entity(tracker, "country"), entity(tracker, "product"))

    async def ask(self, dispatcher: CollectingDispatcher, identity: Identity, text: str,
                  period: str | None, country: str | None,
                  product: str | None = None) -> list[dict[str, Any]]:
        """Answer ``text``; ask back (and remember the question) what is not understood."""
        answer = await self.call(dispatcher, identity, text, period, country, product)
        if answer is None:
            return []
        if _asked_back(dispatcher, answer):
            raw = getattr(answer.problem, "raw", "")
            return [SlotSet(PENDING_SLOT, json.dumps({"action": self.name(), "text": text,
                                                      "raw": raw}))]
        self.answer(dispatcher, identity, answer)
        return []

    @abstractmethod
    async def call(self, dispatcher: CollectingDispatcher, identity: Identity, text: str,
                   period: str | None, country: str | None,
                   product: str | None = None) -> questions.Answer | None:
        """The one crm_ml call (via :func:`actions.crm.crm_call`)."""

    @abstractmethod
    def answer(self, dispatcher: CollectingDispatcher, identity: Identity,
               answer: questions.Answer) -> None:
        """Say the answer (the question was understood)."""


class ActionAskRevenue(BusinessQuestion):
    """"What was our revenue last month", "revenue by country", "sales per rep in q3"."""

    def name(self) -> str:
        return "action_ask_revenue"

    async def call(self, dispatcher: CollectingDispatcher, identity: Identity, text: str,
                   period: str | None, country: str | None,
                   product: str | None = None) -> questions.Answer | None:
        return await crm_call(dispatcher, questions.ask_revenue, identity=identity, text=text,
                              period=period, country=country, product=product)

    def answer(self, dispatcher: CollectingDispatcher, identity: Identity,
               answer: questions.Answer) -> None:
        result = answer.result
        if answer.before is not None:  # a change against the period before
            now, then = result.current.totals, result.before.totals
            _say(dispatcher, answer, [
                f"Revenue {_where(answer)}: {say_money(now.revenue)} from "
                f"{say_count(now.orders, 'order')}, {_change(now.revenue, then.revenue)} "
                f"({answer.before.label}: {say_money(then.revenue)} from "
                f"{say_count(then.orders, 'order')})."])
            return
        totals = result.totals
        if totals.orders == 0 and totals.revenue == 0:
            dispatcher.utter_message(response="utter_business_nothing", what=_where(answer))
            return
        # Built here: a total line, then one line per group of the breakdown asked for.
        lines = [f"Revenue {_where(answer)}: {say_money(totals.revenue)} from "
                 f"{say_count(totals.orders, 'order')} by "
                 f"{say_count(totals.customers, 'customer')} (net of cancellations)."]
        if result.group_by is not None:
            label = {"rep": "sales rep"}.get(result.group_by, result.group_by)
            lines.append(f"By {label}:" if result.group_by == "month" else
                         f"By {label}, largest first ({len(result.rows)} of {result.groups}):")
            for row in result.rows:
                lines.append(f"- {row.name}: {say_money(row.figures.revenue)}, "
                             f"{say_count(row.figures.orders, 'order')}")
        _say(dispatcher, answer, lines)
        chart = revenue_chart_url(answer) if result.group_by == "month" else None
        if chart is not None:  # a trend was asked for: the months as bars too
            dispatcher.utter_message(image=chart)


class ActionTopProducts(BusinessQuestion):
    """"Top 5 products in Germany in 2011", "best sellers by quantity last quarter"."""

    def name(self) -> str:
        return "action_top_products"

    async def call(self, dispatcher: CollectingDispatcher, identity: Identity, text: str,
                   period: str | None, country: str | None,
                   product: str | None = None) -> questions.Answer | None:
        return await crm_call(dispatcher, questions.ask_top_products, identity=identity,
                              text=text, period=period, country=country)

    def answer(self, dispatcher: CollectingDispatcher, identity: Identity,
               answer: questions.Answer) -> None:
        if not answer.result:
            dispatcher.utter_message(response="utter_business_nothing", what=_where(answer))
            return
        by = "units sold" if answer.terms.by == "quantity" else "net revenue"
        # Built here: one line per product, as many as were asked for.
        lines = [f"Top {len(answer.result)} products by {by} {_where(answer)}:"]
        for rank, row in enumerate(answer.result, start=1):
            lines.append(f"{rank}. {catalogue_name(row.name)} (code {row.key}): "
                         f"{say_money(row.revenue)}, {row.quantity:,} units")
        _say(dispatcher, answer, lines)


class ActionTopCustomers(BusinessQuestion):
    """"Top customers by spend": the caller's accounts (a manager's team's)."""

    permission = "customers.read"

    def name(self) -> str:
        return "action_top_customers"

    async def call(self, dispatcher: CollectingDispatcher, identity: Identity, text: str,
                   period: str | None, country: str | None,
                   product: str | None = None) -> questions.Answer | None:
        return await crm_call(dispatcher, questions.ask_top_customers, identity=identity,
                              text=text, period=period, country=country)

    def answer(self, dispatcher: CollectingDispatcher, identity: Identity,
               answer: questions.Answer) -> None:
        scope = whose(scope_of(identity), "accounts")
        if not answer.result:
            dispatcher.utter_message(response="utter_business_no_customers", whose=scope,
                                     what=f"ordered {_where(answer)}")
            return
        by = "orders" if answer.terms.by in {"orders", "quantity"} else "net spend"
        # Built here: one line per customer, as many as were asked for.
        lines = [f"Top {len(answer.result)} of {scope} by {by} {_where(answer)}:"]
        for rank, row in enumerate(answer.result, start=1):
            lines.append(f"{rank}. {row.name} (customer {row.key}): {say_money(row.revenue)}, "
                         f"{say_count(row.quantity, 'order')}")
        _say(dispatcher, answer, lines)


class ActionInactiveCustomers(BusinessQuestion):
    """"Which customers haven't ordered in 6 months": the caller's accounts."""

    permission = "customers.read"

    def name(self) -> str:
        return "action_inactive_customers"

    async def call(self, dispatcher: CollectingDispatcher, identity: Identity, text: str,
                   period: str | None, country: str | None,
                   product: str | None = None) -> questions.Answer | None:
        return await crm_call(dispatcher, questions.ask_inactive_customers, identity=identity,
                              text=text, period=period)

    def answer(self, dispatcher: CollectingDispatcher, identity: Identity,
               answer: questions.Answer) -> None:
        result = answer.result
        scope = whose(scope_of(identity), "accounts")
        since = say_date(result.since)
        if result.count == 0:
            dispatcher.utter_message(response="utter_business_no_customers", whose=scope,
                                     what=f"has been without orders since {since}")
            return
        # Built here: one line per customer, the most valuable first.
        lines = [f"{say_count(result.count, 'customer')} of {scope} ordered before but not "
                 f"since {since}. The most valuable:"]
        for cid, name, last, spend in result.customers:
            lines.append(f"- {name} (customer {cid}): last order {say_date(last)}, "
                         f"{say_money(spend)} in all")
        _say(dispatcher, answer, lines)


class ActionBusinessFollowUp(Action):
    """The answer to "Which country?" or "Which period?": completes the waiting question.

    The question waits in the ``business_pending`` slot (set by
    :meth:`BusinessQuestion.ask`): the words not understood are replaced by the
    answer ("top products in narnia" + "Germany" -> "top products in Germany"), and
    the question is asked again. Without a waiting question, the assistant asks
    what the answer is for.
    """

    def name(self) -> str:
        return "action_business_followup"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        identity = identify(tracker)
        pending = _pending(tracker.get_slot(PENDING_SLOT))
        action = QUESTIONS.get(str(pending.get("action"))) if pending else None
        if action is None or pending is None:
            dispatcher.utter_message(response="utter_business_what_question")
            return []
        if not permitted(dispatcher, identity, action.permission):
            return [SlotSet(PENDING_SLOT, None)]
        reply = _text(tracker).strip()
        text, raw = str(pending.get("text") or ""), str(pending.get("raw") or "")
        where = text.lower().find(raw.lower()) if raw else -1
        if where >= 0:
            text = text[:where] + reply + text[where + len(raw):]
        else:
            text = f"{text} {reply}"
        events = await action.ask(dispatcher, identity, text, entity(tracker, "period")
                                  or entity(tracker, "time_span"), entity(tracker, "country"))
        return [SlotSet(PENDING_SLOT, None), *events]  # asked back again: set anew


def _pending(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, str) or len(value) > 2000:
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


class ActionLeadsFiltered(Action):
    """"Leads from bank marketing with a score above 80": the caller's leads."""

    def name(self) -> str:
        return "action_leads_filtered"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        identity = identify(tracker)
        if not permitted(dispatcher, identity, "leads.read"):
            return []
        answer = await crm_call(dispatcher, questions.ask_leads, identity=identity,
                                text=_text(tracker), status=entity(tracker, "lead_status"))
        if answer is None:
            return []
        count, leads = answer.result
        t = answer.terms
        parts = [f"from {SOURCE_NAMES[t.source]}" if t.source else "",
                 f"status {t.status}" if t.status else "",
                 f"score at least {t.min_score * 100:.0f}%" if t.min_score is not None else "",
                 f"score at most {t.max_score * 100:.0f}%" if t.max_score is not None else ""]
        what = say_list(parts) or "any lead"
        scope = whose(scope_of(identity), "leads")
        if count == 0:
            dispatcher.utter_message(response="utter_business_no_leads", whose=scope,
                                     what=what)
            return []
        # Built here: one line per lead, best score first.
        lines = [f"{say_count(count, 'lead')} of {scope} match ({what}); "
                 f"the first {len(leads)}, best score first:"]
        for lead in leads:
            score = "no score" if lead.score is None else f"score {lead.score * 100:.0f}%"
            lines.append(f"- lead {lead.lead_id}, {lead.name} "
                         f"({SOURCE_NAMES.get(lead.source, lead.source)}, {lead.status}, "
                         f"{score})")
        dispatcher.utter_message(text="\n".join(lines))
        return []


QUESTIONS: dict[str, BusinessQuestion] = {
    action.name(): action for action in (ActionAskRevenue(), ActionTopProducts(),
                                         ActionTopCustomers(), ActionInactiveCustomers())}
