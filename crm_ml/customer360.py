"""Customer 360 for staff: who a customer is, owner, segment, churn risk with reasons,
value so far and predicted (``customer_values``, :mod:`crm_ml.clv`), the next best
action (``next_best_actions``, :mod:`crm_ml.nba`), last orders, open tickets and
escalations, last contact.

A rep sees only their accounts, a manager the team's, an agent all; anyone else
gets :class:`~crm_ml.authz.Forbidden`. A customer outside the caller's reach is
reported like one that does not exist (:class:`~crm_ml.sales.CustomerNotFound`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from crm_ml import authz
from crm_ml.db import models as m
from crm_ml.db.models_insights import CustomerValue, NextBestAction
from crm_ml.identity import Identity
from crm_ml.sales.common import CustomerNotFound, Reason, in_scope, reasons_of, scope_word

__all__ = ["Customer360", "CustomerChoices", "OrderLine360", "PredictedValue", "customer_360",
           "find_customers"]


@dataclass(frozen=True)
class CustomerChoices:
    """Several (or none) of the caller's customers carry the name asked for.

    Attributes:
        name: The name asked for.
        candidates: (customer number, name, country) of each match, at most five.
    """

    name: str
    candidates: list[tuple[int, str, str]]


@dataclass(frozen=True)
class OrderLine360:
    """One order in the 360: number, date, amount."""

    id: str
    date: dt.date
    total: float
    kind: str


@dataclass(frozen=True)
class PredictedValue:
    """The lifetime-value model's outlook for a customer (from ``customer_values``)."""

    prob_alive: float
    purchases_6m: float
    spend_6m: float
    purchases_12m: float
    spend_12m: float


@dataclass(frozen=True)
class Customer360:
    """Everything a rep wants on one screen about a customer."""

    id: int
    name: str
    account: str | None
    country: str
    owner: str | None
    first_seen: dt.date | None
    segment: str | None
    churn: float | None
    churn_reasons: list[Reason]
    value_so_far: float
    orders: int
    last_orders: list[OrderLine360] = field(default_factory=list)
    open_tickets: int = 0
    open_escalations: int = 0
    last_contact: dt.datetime | None = None
    last_contact_kind: str | None = None
    predicted: PredictedValue | None = None
    next_action: str | None = None
    next_action_reasons: list[str] = field(default_factory=list)


def find_customers(*, session: Session, identity: Identity, name: str,
                   limit: int = 5) -> list[tuple[int, str, str]]:
    """The caller's customers whose name (or account name) matches ``name``."""
    authz.require(identity, "customers.read")
    scope = authz.rep_scope(identity, session=session)
    words = " ".join((name or "").split()).lower()
    if not words:
        return []
    rows = session.execute(
        select(m.Customer.id, m.Customer.name, m.Customer.country)
        .join(m.Account, m.Account.customer_id == m.Customer.id)
        .where(or_(func.lower(m.Customer.name) == words, func.lower(m.Account.name) == words),
               in_scope(m.Account.rep_id, scope), m.Customer.anonymized.is_(False))
        .order_by(m.Customer.id).limit(limit)).all()
    return [(int(r.id), r.name, r.country) for r in rows]


def customer_360(*, session: Session, identity: Identity, customer_id: int | None = None,
                 name: str | None = None, orders: int = 3) -> Customer360 | CustomerChoices:
    """The 360 of one of the caller's customers, by number or by name.

    Raises:
        Forbidden: the caller may not read customers.
        CustomerNotFound: no such customer among the caller's accounts.

    Returns:
        The 360; :class:`CustomerChoices` when ``name`` matches none or several.
    """
    authz.require(identity, "customers.read")
    scope = authz.rep_scope(identity, session=session)
    if customer_id is None:
        matches = find_customers(session=session, identity=identity, name=name or "")
        if len(matches) != 1:
            return CustomerChoices(" ".join((name or "").split()), matches)
        customer_id = matches[0][0]
    row = session.execute(
        select(m.Customer, m.Account.name.label("account"), m.Account.rep_id,
               m.SalesRep.name.label("owner"))
        .outerjoin(m.Account, m.Account.customer_id == m.Customer.id)
        .outerjoin(m.SalesRep, m.SalesRep.id == m.Account.rep_id)
        .where(m.Customer.id == customer_id)).first()
    if row is None or (scope is not authz.ALL and row.rep_id not in scope):
        raise CustomerNotFound(customer_id=customer_id, scope=scope_word(identity))
    customer: m.Customer = row[0]
    totals = session.execute(
        select(func.coalesce(func.sum(m.Order.total), 0), func.count(m.Order.id))
        .where(m.Order.customer_id == customer_id)).one()
    sales_count = session.scalar(select(func.count(m.Order.id)).where(
        m.Order.customer_id == customer_id, m.Order.kind == "sale")) or 0
    last = session.execute(
        select(m.Order.id, m.Order.invoiced_at, m.Order.total, m.Order.kind)
        .where(m.Order.customer_id == customer_id)
        .order_by(m.Order.invoiced_at.desc(), m.Order.id.desc()).limit(max(1, orders))).all()
    segment = session.get(m.Segment, customer_id)
    churn = session.get(m.ChurnScore, customer_id)
    tickets = session.scalar(select(func.count(m.Ticket.id)).where(
        m.Ticket.customer_id == customer_id, m.Ticket.status == "open")) or 0
    escalations = session.scalar(select(func.count(m.Escalation.id)).where(
        m.Escalation.customer_id == customer_id, m.Escalation.status == "open")) or 0
    contact = session.execute(
        select(m.Interaction.created_at, m.Interaction.kind)
        .where(m.Interaction.customer_id == customer_id)
        .order_by(m.Interaction.created_at.desc()).limit(1)).first()
    value = session.get(CustomerValue, customer_id)
    action = session.scalars(select(NextBestAction)
                             .where(NextBestAction.customer_id == customer_id).limit(1)).first()
    return Customer360(
        id=customer_id, name=customer.name, account=row.account, country=customer.country,
        owner=row.owner,
        first_seen=customer.first_seen.date() if customer.first_seen else None,
        segment=segment.rfm_segment if segment else None,
        churn=churn.probability if churn else None,
        churn_reasons=reasons_of(churn.reasons) if churn else [],
        value_so_far=float(totals[0] or 0), orders=int(sales_count),
        last_orders=[OrderLine360(str(o.id), o.invoiced_at.date(), float(o.total), o.kind)
                     for o in last],
        open_tickets=int(tickets), open_escalations=int(escalations),
        last_contact=contact.created_at if contact else None,
        last_contact_kind=contact.kind if contact else None,
        predicted=PredictedValue(value.prob_alive, value.purchases_6m, value.spend_6m,
                                 value.purchases_12m, value.spend_12m) if value else None,
        next_action=action.action if action else None,
        next_action_reasons=list(action.reasons or []) if action else [],
    )
