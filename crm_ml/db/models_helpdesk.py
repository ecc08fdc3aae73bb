"""Helpdesk tables: the customers' ratings of resolved threads, anonymous visitors' e-mails."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from crm_ml.db.base import Base, utcnow

__all__ = ["ConversationRating", "VisitorContact"]


class ConversationRating(Base):
    """A customer's rating (1-5) of a resolved thread, asked right after the resolve."""

    __tablename__ = "conversation_ratings"

    id: Mapped[int] = mapped_column(primary_key=True)
    escalation_id: Mapped[int | None] = mapped_column(ForeignKey("escalations.id"), index=True)
    sender_id: Mapped[str] = mapped_column(String(128), index=True)
    channel: Mapped[str] = mapped_column(String(24))
    score: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class VisitorContact(Base):
    """The e-mail an anonymous visitor left so that the agent's answer can reach them."""

    __tablename__ = "visitor_contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    sender_id: Mapped[str] = mapped_column(String(128), unique=True)
    email: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
