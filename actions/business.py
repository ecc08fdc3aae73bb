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

import logging
from typing import Any

from rasa_sdk import Action, Tracker
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
from crm_ml.sales import business_chart, questions

logger = logging.getLogger(__name__)

__all__ = [
    "CHART_LINK_TTL",
    "ActionAskRevenue",
    "ActionInactiveCustomers",
    "ActionLeadsFiltered",
    "ActionTopCustomers",
    "ActionTopProducts",
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
    return False


def _where(answer: questions.Answer) -> str:
    parts = []
    if answer.extra.get("segment"):
        parts.append(f"from the {answer.extra['segment']} segment")
    if answer.country:
        parts.append(f"in {answer.country}")
    if answer.period is not None:
        parts.append(f"in {answer.period.label}")
    return " ".join(parts) or "across all the data"


def _say(dispatcher: CollectingDispatcher, answer: questions.Answer, lines: list[str]) -> None:
    """The answer's lines, then the as-of sentence when there is one."""
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


class ActionAskRevenue(Action):
    """"What was our revenue last month", "revenue by country", "sales per rep in q3"."""

    def name(self) -> str:
        return "action_ask_revenue"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        identity = identify(tracker)
        if not permitted(dispatcher, identity, "analytics.read"):
            return []
        answer = await crm_call(dispatcher, questions.ask_revenue, identity=identity,
                                text=_text(tracker), period=_period_entity(tracker),
                                country=entity(tracker, "country"))
        if answer is None or _asked_back(dispatcher, answer):
            return []
        result = answer.result
        if answer.before is not None:  # a change against the period before
            now, then = result.current.totals, result.before.totals
            _say(dispatcher, answer, [
                f"Revenue {_where(answer)}: {say_money(now.revenue)} from "
                f"{say_count(now.orders, 'order')}, {_change(now.revenue, then.revenue)} "
                f"({answer.before.label}: {say_money(then.revenue)} from "
                f"{say_count(then.orders, 'order')})."])
            return []
        totals = result.totals
        if totals.orders == 0 and totals.revenue == 0:
            dispatcher.utter_message(response="utter_business_nothing", what=_where(answer))
            return []
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
        return []


class ActionTopProducts(Action):
    """"Top 5 products in Germany in 2011", "best sellers by quantity last quarter"."""

    def name(self) -> str:
        return "action_top_products"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        identity = identify(tracker)
        if not permitted(dispatcher, identity, "analytics.read"):
            return []
        answer = await crm_call(dispatcher, questions.ask_top_products, identity=identity,
                                text=_text(tracker), period=_period_entity(tracker),
                                country=entity(tracker, "country"))
        if answer is None or _asked_back(dispatcher, answer):
            return []
        if not answer.result:
            dispatcher.utter_message(response="utter_business_nothing", what=_where(answer))
            return []
        by = "units sold" if answer.terms.by == "quantity" else "net revenue"
        # Built here: one line per product, as many as were asked for.
        lines = [f"Top {len(answer.result)} products by {by} {_where(answer)}:"]
        for rank, row in enumerate(answer.result, start=1):
            lines.append(f"{rank}. {catalogue_name(row.name)} (code {row.key}): "
                         f"{say_money(row.revenue)}, {row.quantity:,} units")
        _say(dispatcher, answer, lines)
        return []


class ActionTopCustomers(Action):
    """"Top customers by spend": the caller's accounts (a manager's team's)."""

    def name(self) -> str:
        return "action_top_customers"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        identity = identify(tracker)
        if not permitted(dispatcher, identity, "customers.read"):
            return []
        answer = await crm_call(dispatcher, questions.ask_top_customers, identity=identity,
                                text=_text(tracker), period=_period_entity(tracker),
                                country=entity(tracker, "country"))
        if answer is None or _asked_back(dispatcher, answer):
            return []
        scope = whose(scope_of(identity), "accounts")
        if not answer.result:
            dispatcher.utter_message(response="utter_business_no_customers", whose=scope,
                                     what=f"ordered {_where(answer)}")
            return []
        by = "orders" if answer.terms.by in {"orders", "quantity"} else "net spend"
        # Built here: one line per customer, as many as were asked for.
        lines = [f"Top {len(answer.result)} of {scope} by {by} {_where(answer)}:"]
        for rank, row in enumerate(answer.result, start=1):
            lines.append(f"{rank}. {row.name} (customer {row.key}): {say_money(row.revenue)}, "
                         f"{say_count(row.quantity, 'order')}")
        _say(dispatcher, answer, lines)
        return []


class ActionInactiveCustomers(Action):
    """"Which customers haven't ordered in 6 months": the caller's accounts."""

    def name(self) -> str:
        return "action_inactive_customers"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        identity = identify(tracker)
        if not permitted(dispatcher, identity, "customers.read"):
            return []
        answer = await crm_call(dispatcher, questions.ask_inactive_customers,
                                identity=identity, text=_text(tracker),
                                period=entity(tracker, "time_span"))
        if answer is None or _asked_back(dispatcher, answer):
            return []
        result = answer.result
        scope = whose(scope_of(identity), "accounts")
        since = say_date(result.since)
        if result.count == 0:
            dispatcher.utter_message(response="utter_business_no_customers", whose=scope,
                                     what=f"has been without orders since {since}")
            return []
        # Built here: one line per customer, the most valuable first.
        lines = [f"{say_count(result.count, 'customer')} of {scope} ordered before but not "
                 f"since {since}. The most valuable:"]
        for cid, name, last, spend in result.customers:
            lines.append(f"- {name} (customer {cid}): last order {say_date(last)}, "
                         f"{say_money(spend)} in all")
        _say(dispatcher, answer, lines)
        return []


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
