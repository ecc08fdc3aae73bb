"""Staff questions about the papers' remaining models: unusual orders, complaint topics,
next best action and lifetime value.

Every function reads only the rows the models wrote (``unusual_activity``,
``feedback_topics`` / ``topic_assignments``, ``next_best_actions``,
``customer_values``), checks the caller as everywhere (:mod:`crm_ml.authz`: a rep
sees their accounts and leads, a manager the team's, an agent all; customers are
refused) and counts relative periods from the as-of date (:mod:`crm_ml.asof`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_ml import anomalies, asof, authz, nba, periods
from crm_ml.db import models as m
from crm_ml.db.models_insights import CustomerValue
from crm_ml.identity import Identity
from crm_ml.sales import questions
from crm_ml.sales.common import (
    LeadNotFound,
    NoData,
    in_scope,
    lead_scope,
    reachable_customer,
    scope_word,
)

__all__ = ["ActionAnswer", "TopicsAnswer", "UnusualAnswer", "ValueAnswer", "complaint_topics",
           "customer_value", "next_best_action", "unusual_orders"]

#: The period asked about when the message names none.
DEFAULT_UNUSUAL_PERIOD = "this week"
DEFAULT_TOPICS_PERIOD = "this month"


@dataclass(frozen=True)
class UnusualAnswer:
    """Flagged orders in a period (or, when none there, the latest ones before it)."""

    period: periods.Period | None
    orders: list[dict[str, Any]] = field(default_factory=list)
    earlier: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None
    unclear: str | None = None  # the period's words, when they were not understood


@dataclass(frozen=True)
class TopicsAnswer:
    """Complaint topics with counts in a period and the trend against the period before."""

    period: periods.Period | None
    topics: list[dict[str, Any]] = field(default_factory=list)
    in_period: bool = False
    note: str | None = None
    unclear: str | None = None  # the period's words, when they were not understood


@dataclass(frozen=True)
class ActionAnswer:
    """The next best action for one lead or customer."""

    kind: str  # lead | customer
    id: int
    name: str
    action: str
    expected_rate: float | None
    uplift: float | None
    reasons: list[str]


@dataclass(frozen=True)
class ValueAnswer:
    """A customer's value so far and the lifetime-value model's outlook."""

    id: int
    name: str
    value_so_far: float
    orders: int
    prob_alive: float | None = None
    spend_6m: float | None = None
    spend_12m: float | None = None
    purchases_12m: float | None = None


def _period(raw: str | None, text: str, default: str,
            session: Session) -> tuple[periods.Period, str | None]:
    """The period asked about (``default`` when the message names none) and the as-of note.

    Raises:
        UnclearPeriod: a period entity that is not understood (asked back).
    """
    when = asof.as_of(session)
    span = questions.find_period(raw, text, when.day, default)
    return span or periods.parse(default, today=when.day), when.note


def _customer_ids(session: Session, identity: Identity) -> list[int] | None:
    """The caller's customers (None: all of them)."""
    scope = authz.rep_scope(identity, session=session)
    if scope is authz.ALL:
        return None
    return list(session.scalars(select(m.Account.customer_id)
                                .where(in_scope(m.Account.rep_id, scope),
                                       m.Account.customer_id.is_not(None))))


def unusual_orders(*, session: Session, identity: Identity, text: str = "",
                   period: str | None = None, limit: int = 5) -> UnusualAnswer:
    """"Any unusual orders this week?": the flagged orders of the caller's customers.

    Args:
        session: CRM session.
        identity: The caller (staff).
        text: The message (a period phrase in it is used when no entity was found).
        period: The period entity's words ("this week", "last month"); default this week.
        limit: At most this many orders.

    Returns:
        The answer; with ``unclear`` set (and nothing else) when the period's words are
        not understood, to be asked back.

    Raises:
        Forbidden: the caller is not staff.
    """
    authz.require(identity, "analytics.read")
    try:
        span, note = _period(period, text, DEFAULT_UNUSUAL_PERIOD, session)
    except questions.UnclearPeriod as exc:
        return UnusualAnswer(None, unclear=exc.raw)
    ids = _customer_ids(session, identity)
    found = anomalies.unusual_orders(session=session, since=span.start, until=span.end,
                                     customer_ids=ids, limit=limit)
    earlier: list[dict[str, Any]] = []
    if not found:
        earlier = anomalies.unusual_orders(session=session, until=span.start,
                                           customer_ids=ids, limit=200)
        earlier = sorted(earlier, key=lambda r: r["invoiced_at"], reverse=True)[:3]
    return UnusualAnswer(span, found, earlier, note)


def complaint_topics(*, session: Session, identity: Identity, text: str = "",
                     period: str | None = None, limit: int = 5) -> TopicsAnswer:
    """"What are customers complaining about this month?": topics with counts and trend.

    Returns:
        The answer; with ``unclear`` set when the period's words are not understood.

    Raises:
        Forbidden: the caller is not staff.
        NoData: no topic model has been trained.
    """
    authz.require(identity, "analytics.read")
    from crm_ml import topics

    try:
        span, note = _period(period, text, DEFAULT_TOPICS_PERIOD, session)
    except questions.UnclearPeriod as exc:
        return TopicsAnswer(None, unclear=exc.raw)
    start = dt.datetime.combine(span.start, dt.time())
    end = dt.datetime.combine(span.end, dt.time())
    result = topics.complaint_topics(session=session, since=start, until=end, limit=limit)
    rows = result["topics"] if isinstance(result, dict) else list(result)
    in_period = bool(result.get("in_period", True)) if isinstance(result, dict) else True
    if not rows:
        raise NoData("topics")
    return TopicsAnswer(span, rows, in_period, note)


def next_best_action(*, session: Session, identity: Identity, lead_id: int | None = None,
                     customer_id: int | None = None) -> ActionAnswer:
    """The stored next best action of one of the caller's leads or customers.

    Raises:
        Forbidden: the caller is not staff.
        LeadNotFound / CustomerNotFound: not among the caller's leads or accounts.
        NoData: the model has not been trained (nothing stored for them).
    """
    if lead_id is not None:
        scope = lead_scope(identity, session)
        lead = session.execute(select(m.Lead.id, m.Lead.name, m.Lead.source).where(
            m.Lead.id == lead_id, in_scope(m.Lead.rep_id, scope))).first()
        if lead is None:
            raise LeadNotFound(lead_id=lead_id, scope=scope_word(identity))
        stored = nba.action_for(session=session, lead_id=lead_id)
        if stored is None:
            raise NoData("next_best_action_lead")
        return ActionAnswer("lead", lead_id, lead.name, stored["text"], stored["expected_rate"],
                            stored["uplift"], stored["reasons"])
    if customer_id is None:
        raise ValueError("a lead or a customer is needed")
    name = reachable_customer(session, identity, customer_id)
    stored = nba.action_for(session=session, customer_id=customer_id)
    if stored is None:
        raise NoData("next_best_action")
    return ActionAnswer("customer", customer_id, name, stored["text"], None, None,
                        stored["reasons"])


def customer_value(*, session: Session, identity: Identity, customer_id: int) -> ValueAnswer:
    """"What's the lifetime value of 12347": value so far and predicted.

    Raises:
        Forbidden / CustomerNotFound: as :func:`crm_ml.sales.common.reachable_customer`.
    """
    name = reachable_customer(session, identity, customer_id)
    total = session.scalar(select(func.coalesce(func.sum(m.Order.total), 0))
                           .where(m.Order.customer_id == customer_id))  # net of cancellations
    orders = session.scalar(select(func.count(m.Order.id)).where(
        m.Order.customer_id == customer_id, m.Order.kind == "sale"))
    value = session.get(CustomerValue, customer_id)
    if value is None:
        return ValueAnswer(customer_id, name, float(total or 0), int(orders))
    return ValueAnswer(customer_id, name, float(total or 0), int(orders), value.prob_alive,
                       value.spend_6m, value.spend_12m, value.purchases_12m)

