"""The papers' remaining models' rows: lifetime value, unusual activity, topics, next-best-action.

Each table is written by its model's ``train_and_store`` (in the same transaction
as the registry record, stamped with the artifact version) and only read by the
actions, the console and the customer view.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm_ml.db.base import Base, utcnow

__all__ = ["CustomerValue", "FeedbackTopic", "NextBestAction", "TopicAssignment",
           "UnusualActivity"]


class CustomerValue(Base):
    """Predicted lifetime value of a customer (BG/NBD + Gamma-Gamma)."""

    __tablename__ = "customer_values"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    prob_alive: Mapped[float] = mapped_column(Float)
    purchases_6m: Mapped[float] = mapped_column(Float)
    spend_6m: Mapped[float] = mapped_column(Float, index=True)
    purchases_12m: Mapped[float] = mapped_column(Float)
    spend_12m: Mapped[float] = mapped_column(Float)
    avg_order_value: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[str] = mapped_column(String(64))
    scored_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class UnusualActivity(Base):
    """An order or a customer week the anomaly detector flagged, with its reasons."""

    __tablename__ = "unusual_activity"

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(8), index=True)  # order | week
    invoice: Mapped[str | None] = mapped_column(String(32))
    customer_id: Mapped[int | None] = mapped_column(Integer, index=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    country: Mapped[str | None] = mapped_column(String(60))
    amount: Mapped[float | None] = mapped_column(Float)
    quantity: Mapped[float | None] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    model_version: Mapped[str] = mapped_column(String(64))


class FeedbackTopic(Base):
    """A topic found in what customers write, named by its top terms."""

    __tablename__ = "feedback_topics"

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(120))
    top_terms: Mapped[list[Any]] = mapped_column(JSON, default=list)
    examples: Mapped[list[Any]] = mapped_column(JSON, default=list)
    size: Mapped[int] = mapped_column(Integer, default=0)
    model_version: Mapped[str] = mapped_column(String(64))


class TopicAssignment(Base):
    """Which topic one written message (interaction, ticket, escalation, tweet) belongs to."""

    __tablename__ = "topic_assignments"

    id: Mapped[int] = mapped_column(primary_key=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("feedback_topics.id"), index=True)
    source: Mapped[str] = mapped_column(String(16), index=True)
    source_id: Mapped[str] = mapped_column(String(64))
    written_at: Mapped[dt.datetime | None] = mapped_column(DateTime, index=True)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    text: Mapped[str] = mapped_column(Text, default="")


class NextBestAction(Base):
    """The next best action for a lead or a customer, with its expected effect and reasons."""

    __tablename__ = "next_best_actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"), index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    action: Mapped[str] = mapped_column(String(200))
    expected_rate: Mapped[float | None] = mapped_column(Float)
    uplift: Mapped[float | None] = mapped_column(Float)
    reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    model_version: Mapped[str] = mapped_column(String(64))
    scored_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
