"""The agents' console's own rows: who claimed which thread.

A thread is an escalation or a ticket (``kind`` plus its id); one claim per
thread, replaced when another agent takes it over. Written by
:mod:`crm_ml.inbox`, read by the console's inbox and thread pages.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from crm_ml.db.base import Base, utcnow

__all__ = ["ThreadClaim"]


class ThreadClaim(Base):
    """An agent's claim on a thread, so that two agents do not answer one customer."""

    __tablename__ = "thread_claims"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # escalation | ticket
    thread_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), index=True)
    claimed_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
