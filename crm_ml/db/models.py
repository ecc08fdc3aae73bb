"""The CRM schema, SQLAlchemy 2 declarative style.

Tables follow DESIGN.md: the commercial core (customers, products, orders,
order lines), the sales side (sales reps, leads, accounts), the conversation
side (interactions, escalations, tickets, channel identities), the scores that
``crm_ml`` writes and the actions read (lead_scores, churn_scores, segments,
recommendations, forecasts), and the bookkeeping (model_runs, data_loads,
audit_log). Changes to this file go with an Alembic revision.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from crm_ml.db.base import NAMING, Base, utcnow

__all__ = [
    "Account",
    "Agent",
    "AuditLog",
    "Base",
    "ChannelIdentity",
    "ChurnScore",
    "Customer",
    "DataLoad",
    "Escalation",
    "Forecast",
    "Interaction",
    "Lead",
    "LeadScore",
    "ModelRun",
    "NAMING",
    "Order",
    "OrderLine",
    "Product",
    "Recommendation",
    "SalesRep",
    "Segment",
    "Ticket",
]

_now = utcnow



class SalesRep(Base):
    """A sales rep or manager; ``handle`` is the identity (``rep:3``, ``manager:1``)."""

    __tablename__ = "sales_reps"

    id: Mapped[int] = mapped_column(primary_key=True)
    handle: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # "rep" | "manager"
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("sales_reps.id"))
    # IANA zone their follow-ups are due in (None: the CRM's CRM_TIMEZONE).
    timezone: Mapped[str | None] = mapped_column(String(64))


class Customer(Base):
    """A customer, keyed by the Online Retail II customer id."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str] = mapped_column(String(200), index=True)
    phone: Mapped[str | None] = mapped_column(String(40))
    country: Mapped[str] = mapped_column(String(80))
    first_seen: Mapped[dt.datetime | None] = mapped_column(DateTime)
    shipping_address: Mapped[str | None] = mapped_column(Text)
    anonymized: Mapped[bool] = mapped_column(Boolean, default=False)


class Account(Base):
    """The commercial relationship with a customer, owned by one rep."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), unique=True)
    rep_id: Mapped[int] = mapped_column(ForeignKey("sales_reps.id"), index=True)
    name: Mapped[str] = mapped_column(String(160))
    opened_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class Product(Base):
    """A stock item of the shop."""

    __tablename__ = "products"

    stock_code: Mapped[str] = mapped_column(String(20), primary_key=True)
    description: Mapped[str] = mapped_column(String(200))
    unit_price: Mapped[float] = mapped_column(Numeric(10, 2))


class Order(Base):
    """An invoice. Cancellations (``C`` invoices) are kept as ``kind='cancellation'``."""

    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    invoiced_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    country: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(16))  # "sale" | "cancellation"
    status: Mapped[str] = mapped_column(String(24))  # delivered | cancelled | ...
    total: Mapped[float] = mapped_column(Numeric(12, 2))


class OrderLine(Base):
    """One product line of an order."""

    __tablename__ = "order_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    stock_code: Mapped[str] = mapped_column(ForeignKey("products.stock_code"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[float] = mapped_column(Numeric(10, 2))


class Lead(Base):
    """A sales lead from Bank Marketing or X Education, owned by one rep."""

    __tablename__ = "leads"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    source: Mapped[str] = mapped_column(String(32), index=True)
    external_ref: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(120), index=True)
    rep_id: Mapped[int] = mapped_column(ForeignKey("sales_reps.id"), index=True)
    status: Mapped[str] = mapped_column(String(24), default="new")
    features: Mapped[dict[str, Any]] = mapped_column(JSON)
    converted: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)

    __table_args__ = (UniqueConstraint("source", "external_ref"),)


class ChannelIdentity(Base):
    """Links a channel sender (``tg:42``) to a customer or a rep."""

    __tablename__ = "channel_identities"

    sender_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("sales_reps.id"))
    verified_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)


class Interaction(Base):
    """Every message, call or note, with its channel and sentiment."""

    __tablename__ = "interactions"

    id: Mapped[int] = mapped_column(primary_key=True)
    sender_id: Mapped[str] = mapped_column(String(128), index=True)
    channel: Mapped[str] = mapped_column(String(24))
    direction: Mapped[str] = mapped_column(String(8))  # "in" | "out"
    kind: Mapped[str] = mapped_column(String(16), default="message")  # message | call | note
    text: Mapped[str] = mapped_column(Text)
    intent: Mapped[str | None] = mapped_column(String(64))
    sentiment: Mapped[str | None] = mapped_column(String(16))
    sentiment_confidence: Mapped[float | None] = mapped_column(Float)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("sales_reps.id"))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"), index=True)
    event_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now, index=True)


class Escalation(Base):
    """A conversation handed to a human agent."""

    __tablename__ = "escalations"

    id: Mapped[int] = mapped_column(primary_key=True)
    sender_id: Mapped[str] = mapped_column(String(128), index=True)
    channel: Mapped[str] = mapped_column(String(24))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    reason: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    sentiment: Mapped[str | None] = mapped_column(String(16))
    transcript: Mapped[list[Any]] = mapped_column(JSON, default=list)
    sentiment_history: Mapped[list[Any]] = mapped_column(JSON, default=list)
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    agent: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class Ticket(Base):
    """A support ticket: complaint, review, refund, erasure request, after-hours handoff."""

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    sender_id: Mapped[str | None] = mapped_column(String(128))
    order_id: Mapped[str | None] = mapped_column(String(20))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)


class LeadScore(Base):
    """The latest conversion probability of a lead, with its reasons in words."""

    __tablename__ = "lead_scores"

    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), primary_key=True)
    score: Mapped[float] = mapped_column(Float)
    reasons: Mapped[list[Any]] = mapped_column(JSON)
    model_version: Mapped[str] = mapped_column(String(64))
    scored_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)

    __table_args__ = (Index("ix_lead_scores_score", "score"),)


class ChurnScore(Base):
    """Probability that a customer buys nothing in the next 90 days."""

    __tablename__ = "churn_scores"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    probability: Mapped[float] = mapped_column(Float, index=True)
    reasons: Mapped[list[Any]] = mapped_column(JSON)
    model_version: Mapped[str] = mapped_column(String(64))
    scored_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)


class Segment(Base):
    """RFM values, the named RFM segment and the K-Means cluster of a customer."""

    __tablename__ = "segments"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    recency_days: Mapped[int] = mapped_column(Integer)
    frequency: Mapped[int] = mapped_column(Integer)
    monetary: Mapped[float] = mapped_column(Float)
    r_score: Mapped[int] = mapped_column(Integer)
    f_score: Mapped[int] = mapped_column(Integer)
    m_score: Mapped[int] = mapped_column(Integer)
    rfm_segment: Mapped[str] = mapped_column(String(40), index=True)
    cluster: Mapped[int | None] = mapped_column(Integer)
    cluster_name: Mapped[str | None] = mapped_column(String(60))
    model_version: Mapped[str] = mapped_column(String(64))


class Recommendation(Base):
    """Top-N products for a customer (or for a segment when customer_id is null)."""

    __tablename__ = "recommendations"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    segment: Mapped[str | None] = mapped_column(String(40))
    rank: Mapped[int] = mapped_column(Integer)
    stock_code: Mapped[str] = mapped_column(ForeignKey("products.stock_code"))
    score: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(24))  # item_cf | popularity | segment
    model_version: Mapped[str] = mapped_column(String(64))


class Forecast(Base):
    """One forecast point of a series (``total``, ``country:United Kingdom``...)."""

    __tablename__ = "forecasts"

    id: Mapped[int] = mapped_column(primary_key=True)
    series: Mapped[str] = mapped_column(String(80), index=True)
    period_start: Mapped[dt.date] = mapped_column(Date)
    yhat: Mapped[float] = mapped_column(Float)
    lower: Mapped[float] = mapped_column(Float)
    upper: Mapped[float] = mapped_column(Float)
    model_version: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)


class ModelRun(Base):
    """One training run: name, version, metrics, data hash, time."""

    __tablename__ = "model_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    data_hash: Mapped[str] = mapped_column(String(64))
    artifact_path: Mapped[str | None] = mapped_column(String(300))
    trained_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)


class DataLoad(Base):
    """A completed load of a dataset: makes ``crm-ml load`` idempotent."""

    __tablename__ = "data_loads"

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset: Mapped[str] = mapped_column(String(64), index=True)
    data_hash: Mapped[str] = mapped_column(String(64))
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    loaded_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)


class Agent(Base):
    """A human support agent who answers escalated conversations."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(300))
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class AuditLog(Base):
    """Who changed what, and when."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now, server_default=func.now())


# Each part's tables live in a companion module ``crm_ml/db/models_<part>.py`` (sales,
# insights...) and join the same metadata; imported last, as they use Base.
def _import_companions() -> None:
    import importlib
    import pkgutil

    from crm_ml import db

    for info in sorted(pkgutil.iter_modules(db.__path__), key=lambda i: i.name):
        if info.name.startswith("models_"):
            importlib.import_module(f"crm_ml.db.{info.name}")


_import_companions()
