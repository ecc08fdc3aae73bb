"""Sales-rep actions about accounts and analytics: churn, segments, offers, forecast.

Like :mod:`actions.leads`: read and check the entities (:mod:`actions.parsing`),
one call into :mod:`crm_ml.sales` (:func:`actions.crm.crm_call`), answer in
sentences that read well aloud (:mod:`actions.speech`). The forecast
answer also shows the console's chart (``/charts/forecast.png``) to chat
channels that display images; its text says everything the chart shows. The
chart's link is signed and expires (:mod:`crm_ml.signing`): chat clients fetch
it without a console session, and nobody else can read the forecast with it.
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.crm import crm_call
from actions.gate import permitted
from actions.identity import identify
from actions.parsing import customer_ref, entity
from actions.speech import (
    a_or_an,
    cap,
    catalogue_name,
    reason_phrase,
    say_count,
    say_date,
    say_list,
    say_money,
    say_percent,
    scope_of,
    whose,
)
from crm_ml import sales, signing, timespan
from crm_ml.config import get_settings
from crm_ml.identity import Identity

logger = logging.getLogger(__name__)

__all__ = [
    "ActionChurnRisk",
    "ActionCustomerRecommendations",
    "ActionCustomerSegment",
    "ActionSalesForecast",
    "ActionSegmentSummary",
    "console_url",
    "forecast_chart_url",
]

TOP_ACCOUNTS = 5
RECOMMENDATIONS = 5
DEFAULT_CONSOLE_URL = "http://127.0.0.1:8000"
CHART_LINK_TTL = 15 * 60  # seconds: the chat client fetches the image right away


def console_url() -> str:
    """Base URL of the console as the chat client reaches it."""
    return str(getattr(get_settings(), "console_url", DEFAULT_CONSOLE_URL)
               or DEFAULT_CONSOLE_URL).rstrip("/")


def forecast_chart_url(series: str, weeks: int, *, now: float | None = None) -> str | None:
    """The signed console URL of the forecast chart of ``series`` over ``weeks`` weeks.

    The link works without a console session for :data:`CHART_LINK_TTL` seconds.

    Returns:
        The URL, or None when no ``CRM_IDENTITY_SECRET`` is set (nothing can be signed).
    """
    secret = get_settings().identity_secret
    if not secret:
        logger.warning("no CRM_IDENTITY_SECRET: the forecast chart is not linked")
        return None
    query = signing.sign_query(signing.FORECAST_CHART, {"series": series, "weeks": weeks},
                               secret, ttl=CHART_LINK_TTL, now=now)
    return f"{console_url()}{signing.FORECAST_CHART}?{query}"


def risk_level(p: float) -> str:
    """"high", "medium" or "low" churn risk."""
    return "high" if p >= 0.7 else "medium" if p >= 0.4 else "low"


def _account(customer_id: int, name: str) -> str:
    return f"customer {customer_id}, {name}" if name else f"customer {customer_id}"


class ActionChurnRisk(Action):
    """"Which of my accounts may churn" (top 5), or one customer's churn risk."""

    def name(self) -> str:
        return "action_churn_risk"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        identity = identify(tracker)
        if not permitted(dispatcher, identity, "accounts.read"):
            return []
        ok, customer_id = customer_ref(dispatcher, tracker, "churn risk for customer 12347",
                                       required=False)
        if not ok:
            return []
        if customer_id is not None:
            return await self._one(dispatcher, identity, customer_id)
        risks = await crm_call(dispatcher, sales.churn_risks, identity=identity,
                               limit=TOP_ACCOUNTS)
        if risks is None:
            return []
        accounts = whose(scope_of(identity), "accounts") if identity.role != "agent" \
            else "our accounts"
        if not risks:
            dispatcher.utter_message(response="utter_no_churn_scores", whose=accounts)
            return []
        lines = [f"{cap(accounts)} most likely to buy nothing in the next 90 days:"]
        for rank, risk in enumerate(risks, start=1):
            why = reason_phrase(risk.reasons, effect="raises")
            because = f", because: {why}" if why else ""
            lines.append(f"{rank}. {cap(_account(risk.customer_id, risk.name))}: "
                         f"{say_percent(risk.probability or 0)}, "
                         f"{risk_level(risk.probability or 0)} risk{because}.")
        # Built here: one line per account at risk, as many as there are (up to TOP_ACCOUNTS).
        dispatcher.utter_message(text="\n".join(lines))
        return []

    async def _one(self, dispatcher: CollectingDispatcher, identity: Identity,
                   customer_id: int) -> list[dict[str, Any]]:
        risk = await crm_call(dispatcher, sales.churn_risk, identity=identity,
                              customer_id=customer_id)
        if risk is None:
            return []
        who = cap(_account(risk.customer_id, risk.name))
        if risk.probability is None:
            dispatcher.utter_message(response="utter_no_churn_score", customer=who)
            return []
        text = (f"{who}, has {a_or_an(say_percent(risk.probability))} chance of buying nothing in "
                f"the next 90 days: {risk_level(risk.probability)} risk.")
        ups = reason_phrase(risk.reasons, effect="raises", limit=3)
        downs = [r.text for r in risk.reasons if r.effect == "lowers"][:2]
        if ups:
            text += f" What raises it: {ups}."
        if downs:
            text += f" What lowers it: {say_list(downs)}."
        # Built here: the sentences on what raises and lowers the risk appear only with reasons.
        dispatcher.utter_message(text=text)
        return []


class ActionCustomerSegment(Action):
    """"What segment is customer 12347 in": RFM segment, values in words, cluster."""

    def name(self) -> str:
        return "action_customer_segment"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        identity = identify(tracker)
        if not permitted(dispatcher, identity, "customers.read"):
            return []
        ok, customer_id = customer_ref(dispatcher, tracker, "what segment is customer 12347 in")
        if not ok or customer_id is None:
            return []
        asked = sales.canonical_segment(entity(tracker, "segment"))
        seg = await crm_call(dispatcher, sales.customer_segment, identity=identity,
                             customer_id=customer_id)
        if seg is None:
            return []
        who = cap(_account(seg.customer_id, seg.name))
        if seg.segment is None:
            dispatcher.utter_message(response="utter_no_customer_segment", customer=who)
            return []
        last = ("bought in the last day" if (seg.recency_days or 0) <= 1
                else f"last bought {seg.recency_days:,} days ago")
        text = (f"{who}, is in the {seg.segment} segment: {last}, "
                f"{say_count(seg.frequency or 0, 'order')}, {say_money(seg.monetary or 0)} "
                f"spent in total. Their scores out of 5: recency {seg.r_score}, frequency "
                f"{seg.f_score}, spending {seg.m_score}.")
        if seg.cluster is not None:
            named = f", {seg.cluster_name}" if seg.cluster_name else ""
            text += f" In the K-Means clustering they're in cluster {seg.cluster}{named}."
        if asked is not None:
            same = sales.canonical_segment(seg.segment) == asked
            text += (f" So yes, they're {asked}." if same
                     else f" So no, they're not in {asked}.")
        # Built here: the cluster and the answer to "are they ..." are added only when known.
        dispatcher.utter_message(text=text)
        return []


class ActionSegmentSummary(Action):
    """"How many customers are in each segment": counts and average spend (or one segment)."""

    def name(self) -> str:
        return "action_segment_summary"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        identity = identify(tracker)
        if not permitted(dispatcher, identity, "analytics.read"):
            return []
        raw = entity(tracker, "segment")
        segment = sales.canonical_segment(raw) if raw is not None else None
        if raw is not None and segment is None:
            dispatcher.utter_message(response="utter_unknown_segment", segment=raw,
                                     segments=say_list(list(sales.RFM_SEGMENTS)))
            return []
        summary = await crm_call(dispatcher, sales.segment_summary, identity=identity,
                                 segment=segment)
        if summary is None:
            return []
        if segment is not None and not summary.segments:
            dispatcher.utter_message(response="utter_segment_empty", segment=segment)
            return []
        if segment is not None:
            # Built here: the share among the caller's accounts and their biggest, when any.
            dispatcher.utter_message(text=self._one(summary, segment))
            return []
        theirs = {"own": "yours", "team": "your team's"}.get(summary.scope, "")
        lines = [f"Our {summary.total_customers:,} segmented customers, largest segment "
                 "first:"]
        for stats in summary.segments:
            yours = ""
            if stats.yours is not None and theirs:
                yours = (f"; {stats.yours:,} of them {theirs}" if stats.yours
                         else f"; none of them {theirs}")
            lines.append(f"{stats.segment}: {say_count(stats.customers, 'customer')}, "
                         f"spending {say_money(stats.avg_monetary)} on average{yours}.")
        # Built here: one line per segment, as many as the segmentation found.
        dispatcher.utter_message(text="\n".join(lines))
        return []

    @staticmethod
    def _one(summary: sales.SegmentSummary, segment: str) -> str:
        n = sum(s.customers for s in summary.segments)
        total = sum(s.total_monetary for s in summary.segments)
        recency = sum(s.avg_recency_days * s.customers for s in summary.segments) / n
        frequency = sum(s.avg_frequency * s.customers for s in summary.segments) / n
        text = (f"The {segment} segment has {say_count(n, 'customer')}, "
                f"{say_percent(n / summary.total_customers)} of all, spending "
                f"{say_money(total / n)} each on average. They last bought "
                f"{round(recency):,} days ago on average, with about "
                f"{say_count(round(frequency), 'order')} each.")
        yours = [s.yours for s in summary.segments if s.yours is not None]
        if yours:
            mine = whose(summary.scope, "accounts")
            count = sum(yours)
            text += (f" Of these, {count:,} {'is' if count == 1 else 'are'} among {mine}."
                     if count else f" None of them is among {mine}.")
            if summary.top_accounts:
                biggest = say_list([f"{a.name}, customer {a.customer_id}, with "
                                    f"{say_money(a.monetary)} spent"
                                    for a in summary.top_accounts])
                text += f" {cap(whose(summary.scope, 'biggest'))} there: {biggest}."
        return text


class ActionCustomerRecommendations(Action):
    """"What should I offer customer 12347": their top product picks with descriptions."""

    def name(self) -> str:
        return "action_customer_recommendations"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        identity = identify(tracker)
        if not permitted(dispatcher, identity, "customers.read"):
            return []
        ok, customer_id = customer_ref(dispatcher, tracker,
                                       "what should I offer customer 12347")
        if not ok or customer_id is None:
            return []
        recs = await crm_call(dispatcher, sales.customer_recommendations, identity=identity,
                              customer_id=customer_id, limit=RECOMMENDATIONS)
        if recs is None:
            return []
        who = _account(recs.customer_id, recs.name)
        if not recs.products:
            dispatcher.utter_message(response="utter_no_recommendations", customer=who)
            return []
        head = {
            "customer": f"For {who}, I'd suggest these, picked from what similar customers "
                        "buy:",
            "segment": f"{cap(who)}, has no picks of their own yet, so here are the best "
                       f"sellers in their segment, {recs.segment}:",
            "popular": f"{cap(who)}, has no picks of their own yet, so here are our best "
                       "sellers:",
        }[recs.basis]
        lines = [head]
        for rank, p in enumerate(recs.products, start=1):
            lines.append(f"{rank}. {catalogue_name(p.description)}, {say_money(p.unit_price)} "
                         f"each (code {p.stock_code}).")
        # Built here: one line per product picked, as many as there are (up to RECOMMENDATIONS).
        dispatcher.utter_message(text="\n".join(lines))
        return []


class ActionSalesForecast(Action):
    """"Forecast revenue for the next quarter": total, 95% range, weekly range, chart."""

    def name(self) -> str:
        return "action_sales_forecast"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        identity = identify(tracker)
        if not permitted(dispatcher, identity, "analytics.read"):
            return []
        raw_span = entity(tracker, "time_span")
        past = False
        try:
            if raw_span is None:
                weeks = timespan.DEFAULT_WEEKS
            else:
                span = timespan.parse(raw_span)
                weeks, past = span.weeks, span.past
        except timespan.TimeSpanError as exc:
            if exc.reason == "unclear":
                dispatcher.utter_message(response="utter_time_span_unclear",
                                         time_span=raw_span)
            else:
                dispatcher.utter_message(response="utter_time_span_out_of_range",
                                         time_span=raw_span, weeks=exc.weeks)
            return []
        raw_segment = entity(tracker, "segment")
        segment = sales.canonical_segment(raw_segment)
        forecast = await crm_call(dispatcher, sales.sales_forecast, identity=identity,
                                  weeks=weeks, segment=segment)
        if forecast is None:
            return []
        notes = []
        if past:
            notes.append(f"I can only forecast ahead, so here are the next "
                         f"{say_count(weeks, 'week')}.")
        if segment is not None and forecast.series == "total":
            notes.append(f"I have no separate forecast for the {segment} segment, so this "
                         "is all revenue.")
        if forecast.weeks < forecast.requested_weeks:
            notes.append(f"The stored forecast only covers {say_count(forecast.weeks, 'week')}.")
        kind, _, label = forecast.series.partition(":")
        what = {"segment": f"Revenue forecast from the {label} segment",
                "country": f"Revenue forecast from {label}"}.get(kind, "Revenue forecast")
        first, last = forecast.points[0], forecast.points[-1]
        period = (f"the week of {say_date(first.period_start)}" if forecast.weeks == 1 else
                  f"the {say_count(forecast.weeks, 'week')} from the week of "
                  f"{say_date(first.period_start)} to the week of {say_date(last.period_start)}")
        first_week, later_week = forecast.extremes_in_time_order
        text = (f"{what} for {period}: about {say_money(forecast.total)} in total, "
                f"with a 95% range of {say_money(forecast.lower)} to "
                f"{say_money(forecast.upper)}.")
        if forecast.weeks > 1:
            text += (f" Week by week it runs from {say_money(first_week.yhat)}, in the week of "
                     f"{say_date(first_week.period_start)}, to {say_money(later_week.yhat)}, in "
                     f"the week of {say_date(later_week.period_start)}.")
        if forecast.as_of_note:  # why it starts where it does when the calendar says otherwise
            text += " " + forecast.as_of_note
        # Built here: notes on what was asked but not forecast, and a weekly range for > 1 week.
        dispatcher.utter_message(text=" ".join([*notes, text]))
        chart = forecast_chart_url(forecast.series, forecast.weeks)
        if chart is not None:
            dispatcher.utter_message(image=chart)
        return []
