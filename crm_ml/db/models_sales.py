"""Sales-assistant tables: follow-up tasks and undoable writes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm_ml.db.base import Base, utcnow

__all__ = ["Task", "UndoEntry"]


class Task(Base):
    """A rep's follow-up ("call lead 49498 tomorrow at 10"), linked to a lead or customer."""

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    rep_id: Mapped[int] = mapped_column(ForeignKey("sales_reps.id"), index=True)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"), index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="call")  # call | email | meeting | todo
    title: Mapped[str] = mapped_column(String(300))
    due_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)  # naive UTC
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/London")
    # open | done | cancelled
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    sender_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    done_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    reminded_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class UndoEntry(Base):
    """One write made in a conversation, with what is needed to revert it."""

    __tablename__ = "undo_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    sender_id: Mapped[str] = mapped_column(String(128), index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(64))
    summary: Mapped[str] = mapped_column(Text, default="")
    before: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    undone_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
