"""Questions about the business: revenue, orders, customers, top products and customers.

Every figure is computed by the database (SQL ``SUM``/``COUNT``/``GROUP BY``/
``ORDER BY``/``LIMIT`` built with SQLAlchemy); no function here loops over order
rows in Python.

**What revenue means here.** What a shop calls its sales: the value of the goods
invoiced in the period, *net of cancellations*. Orders of kind ``cancellation``
(Online Retail's ``C`` invoices, kept by :mod:`crm_ml.loader` with negative
quantities and totals) are added in the period they were cancelled, so a refund
in November lowers November's revenue. Fees and postage are not goods and are not
in the CRM at all (the loader drops them). Revenue by product sums ``quantity *
unit_price`` of the order lines (cancellation lines are negative); revenue
otherwise sums the orders' totals (the same lines, summed per order and rounded to
the penny). ``orders`` counts sale orders only (a cancellation is not an order)
and ``customers`` the distinct customers with a sale order in the period.

**Who may ask.** Staff only (``analytics.read``: reps, managers, agents).
Revenue is about the shop, so any staff member gets the whole shop's figures. Lists
of customers (top customers, inactive customers) are limited to the caller's
accounts: a rep's own, a manager's team's (:func:`crm_ml.authz.rep_scope`). Lead
lists are limited to the caller's leads likewise.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, distinct, extract, func, select
from sqlalchemy.orm import Session

from crm_ml import asof, authz
from crm_ml.db import models as m
from crm_ml.identity import Identity
from crm_ml.periods import Period
from crm_ml.sales.common import canonical_segment, in_scope, lead_scope, stored_segments

__all__ = [
    "GROUPS",
    "LEAD_SOURCES",
    "MAX_ROWS",
    "Figures",
    "GroupRow",
    "InactiveCustomers",
    "LeadRow",
    "RankRow",
    "Revenue",
    "RevenueChange",
    "canonical_country",
    "canonical_source",
    "countries",
    "inactive_customers",
    "leads_filtered",
    "revenue",
    "revenue_change",
    "top_customers",
    "top_products",
]

logger = logging.getLogger(__name__)

GROUPS: tuple[str, ...] = ("country", "product", "segment", "rep", "month")
LEAD_SOURCES: dict[str, str] = {
    "bank marketing": "bank_marketing", "bank": "bank_marketing",
    "bank_marketing": "bank_marketing", "bank campaign": "bank_marketing",
    "x education": "x_education", "x_education": "x_education", "xeducation": "x_education",
    "education": "x_education", "x ed": "x_education",
}
MAX_ROWS = 25
_COUNTRY_ALIASES = {"uk": "United Kingdom", "britain": "United Kingdom",
                    "great britain": "United Kingdom", "england": "United Kingdom",
                    "us": "USA", "united states": "USA", "america": "USA",
                    "ireland": "EIRE", "eire": "EIRE", "south africa": "RSA",
                    "holland": "Netherlands", "the netherlands": "Netherlands",
                    "czechia": "Czech Republic", "uae": "United Arab Emirates",
                    "korea": "Korea", "south korea": "Korea"}


@dataclass(frozen=True)
class Figures:
    """Revenue, sale orders and buying customers of one period (or group)."""

    revenue: float
    orders: int
    customers: int


@dataclass(frozen=True)
class GroupRow:
    """One row of a breakdown: the group's name and its figures."""

    name: str
    figures: Figures


@dataclass(frozen=True)
class Revenue:
    """Revenue of a period, possibly filtered and broken down.

    Attributes:
        period: The period (None: all the data).
        totals: The figures of the whole selection.
        group_by: The breakdown asked for, or None.
        rows: The breakdown, largest revenue first (months in time order), at most
            ``limit`` rows.
        groups: How many groups there are in all.
        filters: What the selection was filtered on, e.g. ``{"country": "Germany"}``.
    """

    period: Period | None
    totals: Figures
    group_by: str | None
    rows: list[GroupRow]
    groups: int
    filters: dict[str, str]


@dataclass(frozen=True)
class RevenueChange:
    """Revenue of a period against the period before."""

    current: Revenue
    before: Revenue

    @property
    def change(self) -> float | None:
        """Relative change of revenue (0.1 = +10%), None when the period before had none."""
        if self.before.totals.revenue == 0:
            return None
        return self.current.totals.revenue / self.before.totals.revenue - 1


@dataclass(frozen=True)
class RankRow:
    """A product or a customer in a top list.

    Attributes:
        key: Stock code or customer id (as text).
        name: Description or account name.
        revenue: Net revenue in the period.
        quantity: Net units (products) or sale orders (customers).
    """

    key: str
    name: str
    revenue: float
    quantity: int


@dataclass(frozen=True)
class InactiveCustomers:
    """Customers with no order for a span before the as-of date.

    Attributes:
        since: The first day of the span without orders.
        count: How many of the caller's customers bought before and not since.
        customers: The most valuable of them (lifetime revenue first): ``(customer
            id, account name, last order date, lifetime revenue)``.
    """

    since: dt.date
    count: int
    customers: list[tuple[int, str, dt.date, float]]


@dataclass(frozen=True)
class LeadRow:
    """A lead in a filtered list."""

    lead_id: int
    name: str
    source: str
    status: str
    score: float | None


# ------------------------------------------------------------------ validation


def _key(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def countries(*, session: Session) -> list[str]:
    """The countries orders were shipped to, most orders first."""
    return list(session.scalars(
        select(m.Order.country).group_by(m.Order.country)
        .order_by(func.count().desc(), m.Order.country)))


def canonical_country(value: Any, *, session: Session) -> str | None:
    """The country as stored ("germany" -> "Germany", "uk" -> "United Kingdom"), else None."""
    if not isinstance(value, str) or not value.strip() or len(value) > 60:
        return None
    key = _key(value)
    known = {_key(c): c for c in countries(session=session)}
    if key in known:
        return known[key]
    alias = _COUNTRY_ALIASES.get(key)
    if alias and _key(alias) in known:
        return known[_key(alias)]
    for suffix in ("s",):  # "germans" is not a country; only a plural slip "germanys"
        if key.endswith(suffix) and key[:-1] in known:
            return known[key[:-1]]
    return None


def canonical_source(value: Any) -> str | None:
    """A lead source as stored ("bank marketing" -> "bank_marketing"), else None."""
    if not isinstance(value, str):
        return None
    return LEAD_SOURCES.get(_key(value.replace("_", " ")) if "_" in value else _key(value))


# -------------------------------------------------------------------- revenue


def _in_period(stmt: Select[Any], period: Period | None) -> Select[Any]:
    if period is None:
        return stmt
    return stmt.where(m.Order.invoiced_at >= dt.datetime.combine(period.start, dt.time()),
                      m.Order.invoiced_at < dt.datetime.combine(period.end, dt.time()))


def _segment_names(session: Session, segment: str) -> list[str]:
    canonical = canonical_segment(segment) or segment
    return stored_segments(session, m.Segment.rfm_segment, canonical) or [segment]


def _figures(row: Any) -> Figures:
    return Figures(round(float(row.revenue or 0), 2), int(row.orders or 0),
                   int(row.customers or 0))


def revenue(*, session: Session, identity: Identity, period: Period | None = None,
            country: str | None = None, product: str | None = None,
            segment: str | None = None, group_by: str | None = None,
            limit: int = 10) -> Revenue:
    """Revenue, sale orders and customers of a period, filtered and broken down.

    Args:
        session: The caller's session.
        identity: Any staff member (the whole shop's figures).
        period: The period; None for all the data.
        country: A country as stored (see :func:`canonical_country`).
        product: A stock code.
        segment: An RFM segment (as the user said it or as stored).
        group_by: One of :data:`GROUPS`, or None.
        limit: Rows of the breakdown to return (1..:data:`MAX_ROWS`; months: all).

    Raises:
        Forbidden: the caller is not staff.
        ValueError: ``group_by`` is not one of :data:`GROUPS`.
    """
    authz.require(identity, "analytics.read")
    if group_by is not None and group_by not in GROUPS:
        raise ValueError(f"group_by must be one of {GROUPS}")
    by_lines = product is not None or group_by == "product"
    if by_lines:
        amount = func.sum(m.OrderLine.quantity * m.OrderLine.unit_price)
    else:
        amount = func.sum(m.Order.total)
    sale_order = func.count(distinct(m.Order.id)).filter(m.Order.kind == "sale")
    buyers = func.count(distinct(m.Order.customer_id)).filter(m.Order.kind == "sale")
    columns = [amount.label("revenue"), sale_order.label("orders"), buyers.label("customers")]

    def base(*extra: Any) -> Select[Any]:
        stmt = select(*extra, *columns).select_from(m.Order)
        if by_lines:
            stmt = stmt.join(m.OrderLine, m.OrderLine.order_id == m.Order.id)
        stmt = _in_period(stmt, period)
        if country is not None:
            stmt = stmt.where(m.Order.country == country)
        if product is not None:
            stmt = stmt.where(m.OrderLine.stock_code == product)
        if segment is not None:
            stmt = stmt.join(m.Segment, m.Segment.customer_id == m.Order.customer_id).where(
                m.Segment.rfm_segment.in_(_segment_names(session, segment)))
        return stmt

    filters = {k: v for k, v in {"country": country, "product": product,
                                 "segment": segment}.items() if v}
    totals = _figures(session.execute(base()).one())
    rows: list[GroupRow] = []
    groups = 0
    if group_by is not None:
        stmt, key = _grouped(base, group_by)
        groups = int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
        if group_by == "month":
            stmt = stmt.order_by(key)
        else:
            stmt = stmt.order_by(func.coalesce(columns[0], 0).desc(), key).limit(
                max(1, min(limit, MAX_ROWS)))
        rows = [GroupRow(_month_name(r.name) if group_by == "month" else str(r.name),
                         _figures(r)) for r in session.execute(stmt).all()]
    return Revenue(period, totals, group_by, rows, groups, filters)


def _month_name(key: Any) -> str:
    number = int(key)
    return dt.date(number // 100, number % 100, 1).strftime("%B %Y")


def _grouped(base: Any, group_by: str) -> tuple[Select[Any], Any]:
    if group_by == "country":
        key = m.Order.country
        return base(key.label("name")).group_by(key), key
    if group_by == "product":
        key = m.OrderLine.stock_code
        stmt = (base(m.Product.description.label("name"))
                .join(m.Product, m.Product.stock_code == m.OrderLine.stock_code)
                .group_by(key, m.Product.description))
        return stmt, key
    if group_by == "segment":
        key = func.coalesce(m.Segment.rfm_segment, "No segment")
        stmt = (base(key.label("name"))
                .outerjoin(m.Segment, m.Segment.customer_id == m.Order.customer_id)
                .group_by(key))
        return stmt, key
    if group_by == "rep":
        key = func.coalesce(m.SalesRep.name, "No rep")
        stmt = (base(key.label("name"))
                .outerjoin(m.Account, m.Account.customer_id == m.Order.customer_id)
                .outerjoin(m.SalesRep, m.SalesRep.id == m.Account.rep_id)
                .group_by(key))
        return stmt, key
    key = (extract("year", m.Order.invoiced_at) * 100
           + extract("month", m.Order.invoiced_at))  # 201111 for November 2011
    return base(key.label("name")).group_by(key), key


def revenue_change(*, session: Session, identity: Identity, period: Period, before: Period,
                   country: str | None = None, segment: str | None = None,
                   product: str | None = None) -> RevenueChange:
    """Revenue of ``period`` against ``before`` (see :func:`crm_ml.periods.previous`)."""
    now = revenue(session=session, identity=identity, period=period, country=country,
                  segment=segment, product=product)
    then = revenue(session=session, identity=identity, period=before, country=country,
                   segment=segment, product=product)
    return RevenueChange(now, then)


# ------------------------------------------------------------------- top lists


def top_products(*, session: Session, identity: Identity, period: Period | None = None,
                 country: str | None = None, by: str = "revenue",
                 limit: int = 5) -> list[RankRow]:
    """The best-selling products by net revenue or net units, filtered by country and period.

    Raises:
        Forbidden: the caller is not staff.
        ValueError: ``by`` is neither ``"revenue"`` nor ``"quantity"``.
    """
    authz.require(identity, "analytics.read")
    if by not in {"revenue", "quantity"}:
        raise ValueError("by must be revenue or quantity")
    amount = func.sum(m.OrderLine.quantity * m.OrderLine.unit_price)
    units = func.sum(m.OrderLine.quantity)
    stmt = (select(m.OrderLine.stock_code.label("key"), m.Product.description.label("name"),
                   amount.label("revenue"), units.label("quantity"))
            .select_from(m.Order).join(m.OrderLine, m.OrderLine.order_id == m.Order.id)
            .join(m.Product, m.Product.stock_code == m.OrderLine.stock_code)
            .group_by(m.OrderLine.stock_code, m.Product.description))
    stmt = _in_period(stmt, period)
    if country is not None:
        stmt = stmt.where(m.Order.country == country)
    order = amount if by == "revenue" else units
    stmt = stmt.order_by(order.desc(), m.OrderLine.stock_code).limit(
        max(1, min(limit, MAX_ROWS)))
    return [RankRow(str(r.key), str(r.name), round(float(r.revenue or 0), 2),
                    int(r.quantity or 0)) for r in session.execute(stmt).all()]


def top_customers(*, session: Session, identity: Identity, period: Period | None = None,
                  country: str | None = None, by: str = "revenue",
                  limit: int = 5) -> list[RankRow]:
    """The caller's customers (own accounts, a manager's team's) by net spend or orders.

    ``RankRow.quantity`` is the number of sale orders.

    Raises:
        Forbidden: the caller may not read customers.
        ValueError: ``by`` is neither ``"revenue"`` nor ``"orders"``.
    """
    authz.require(identity, "customers.read")
    if by not in {"revenue", "orders", "quantity"}:
        raise ValueError("by must be revenue or orders")
    scope = authz.rep_scope(identity, session=session)
    amount = func.sum(m.Order.total)
    orders = func.count(m.Order.id).filter(m.Order.kind == "sale")
    stmt = (select(m.Order.customer_id.label("key"), m.Account.name.label("name"),
                   amount.label("revenue"), orders.label("quantity"))
            .select_from(m.Order).join(m.Account, m.Account.customer_id == m.Order.customer_id)
            .where(in_scope(m.Account.rep_id, scope))
            .group_by(m.Order.customer_id, m.Account.name))
    stmt = _in_period(stmt, period)
    if country is not None:
        stmt = stmt.where(m.Order.country == country)
    order = amount if by == "revenue" else orders
    stmt = stmt.order_by(order.desc(), m.Order.customer_id).limit(max(1, min(limit, MAX_ROWS)))
    return [RankRow(str(r.key), str(r.name), round(float(r.revenue or 0), 2),
                    int(r.quantity or 0)) for r in session.execute(stmt).all()]


def inactive_customers(*, session: Session, identity: Identity, days: int = 180,
                       limit: int = 10, today: dt.date | None = None) -> InactiveCustomers:
    """The caller's customers who ordered before but not in the ``days`` days to the as-of date.

    "Inactive for 180 days" as of 9 December 2011: the last sale order is before
    13 June 2011 (the 180 days are 13 June .. 9 December, both in). Customers who
    never ordered are not inactive customers (they are accounts that never ordered).

    Raises:
        Forbidden: the caller may not read customers.
        ValueError: ``days`` is outside 1..3650.
    """
    authz.require(identity, "customers.read")
    if not 1 <= days <= 3650:
        raise ValueError("days must be between 1 and 3650")
    scope = authz.rep_scope(identity, session=session)
    day = today or asof.today(session)
    since = day + dt.timedelta(days=1) - dt.timedelta(days=days)
    last = func.max(m.Order.invoiced_at)
    spend = func.sum(m.Order.total)
    per_customer = (
        select(m.Order.customer_id.label("cid"), last.label("last"), spend.label("spend"))
        .join(m.Account, m.Account.customer_id == m.Order.customer_id)
        .where(in_scope(m.Account.rep_id, scope), m.Order.kind == "sale")
        .group_by(m.Order.customer_id)
        .having(last < dt.datetime.combine(since, dt.time()))
    ).subquery()
    count = int(session.scalar(select(func.count()).select_from(per_customer)) or 0)
    rows = session.execute(
        select(per_customer.c.cid, m.Account.name, per_customer.c.last, per_customer.c.spend)
        .join(m.Account, m.Account.customer_id == per_customer.c.cid)
        .order_by(per_customer.c.spend.desc(), per_customer.c.cid)
        .limit(max(1, min(limit, MAX_ROWS)))
    ).all()
    out = [(int(r.cid), str(r.name), _as_date(r.last), round(float(r.spend or 0), 2))
           for r in rows]
    return InactiveCustomers(since, count, out)


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


# ----------------------------------------------------------------------- leads


def leads_filtered(*, session: Session, identity: Identity, source: str | None = None,
                   status: str | None = None, min_score: float | None = None,
                   max_score: float | None = None,
                   limit: int = 10) -> tuple[int, list[LeadRow]]:
    """The caller's leads filtered by source, status and score range, best score first.

    Scores are probabilities (0..1). Returns how many leads match and the first
    ``limit`` of them.

    Raises:
        Forbidden: the caller may not read leads.
    """
    scope = lead_scope(identity, session)
    where = [in_scope(m.Lead.rep_id, scope)]
    if source is not None:
        where.append(m.Lead.source == source)
    if status is not None:
        where.append(m.Lead.status == status)
    if min_score is not None:
        where.append(m.LeadScore.score >= min_score)
    if max_score is not None:
        where.append(m.LeadScore.score <= max_score)
    base = (select(m.Lead.id, m.Lead.name, m.Lead.source, m.Lead.status,
                   m.LeadScore.score)
            .outerjoin(m.LeadScore, m.LeadScore.lead_id == m.Lead.id).where(*where))
    count = int(session.scalar(select(func.count()).select_from(base.subquery())) or 0)
    rows = session.execute(
        base.order_by(m.LeadScore.score.desc().nulls_last(), m.Lead.id)
        .limit(max(1, min(limit, MAX_ROWS)))).all()
    return count, [LeadRow(int(r.id), str(r.name), str(r.source), str(r.status),
                           None if r.score is None else float(r.score)) for r in rows]
