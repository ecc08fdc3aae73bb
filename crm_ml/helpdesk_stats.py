"""Helpdesk figures over the CRM: how the bot and the agents do, per day and per channel.

* **conversations**: distinct ``sender_id`` in ``interactions`` with a message
  from the customer; staff conversations (a rep's messages, a sender linked to a
  rep) and CRM notes are not conversations; a conversation's day and channel are
  those of its first customer message;
* **escalation rate**: the share of conversations with an escalation row (a live
  handoff or a ticket opened because nobody was online); **containment rate**
  is the rest: conversations that never needed a human;
* **first response time**: from an escalation's opening to the first agent
  message (``interactions.kind = 'agent'``) of that conversation after it;
* **time to resolution**: from an escalation's opening to ``resolved_at``;
* **CSAT**: the share of ratings of 4 or 5 (out of 1-5) in the rating store,
  when there is one (``None``: "no ratings yet").

Counts, joins and grouping run in SQL (portable between SQLite and PostgreSQL);
medians of the durations are taken in Python from the rows SQL returns.
Escalation durations count on the escalation's day and channel.
"""

from __future__ import annotations

import datetime as dt
import logging
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import case, exists, func, select
from sqlalchemy.orm import Session

from crm_ml.db import models as m
from crm_ml.db.models_helpdesk import ConversationRating

__all__ = [
    "Figures",
    "HelpdeskStats",
    "helpdesk_stats",
    "report_section",
]

logger = logging.getLogger(__name__)

SATISFIED = 4  # a rating of 4 or 5 out of 5 counts as satisfied


@dataclass
class Figures:
    """The figures of one group (a day, a channel, or everything)."""

    key: str
    conversations: int = 0
    escalated: int = 0
    answered: int = 0
    resolved: int = 0
    ratings: int = 0
    satisfied: int = 0
    _first_response: list[float] = field(default_factory=list, repr=False)
    _resolution: list[float] = field(default_factory=list, repr=False)

    @property
    def escalation_rate(self) -> float | None:
        """Escalated conversations over conversations (None without conversations)."""
        return self.escalated / self.conversations if self.conversations else None

    @property
    def containment_rate(self) -> float | None:
        """Conversations that never needed a human, over conversations."""
        rate = self.escalation_rate
        return None if rate is None else 1.0 - rate

    @property
    def first_response_median_min(self) -> float | None:
        """Median minutes from escalation to the first agent message."""
        return statistics.median(self._first_response) if self._first_response else None

    @property
    def first_response_mean_min(self) -> float | None:
        """Mean minutes from escalation to the first agent message."""
        return statistics.fmean(self._first_response) if self._first_response else None

    @property
    def resolution_median_min(self) -> float | None:
        """Median minutes from escalation to resolution."""
        return statistics.median(self._resolution) if self._resolution else None

    @property
    def resolution_mean_min(self) -> float | None:
        """Mean minutes from escalation to resolution."""
        return statistics.fmean(self._resolution) if self._resolution else None

    @property
    def csat(self) -> float | None:
        """Satisfied ratings (4-5) over ratings (None without ratings)."""
        return self.satisfied / self.ratings if self.ratings else None

    def as_dict(self) -> dict[str, Any]:
        """Plain figures, rates as fractions, durations in minutes."""
        data = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        for name in ("escalation_rate", "containment_rate", "first_response_median_min",
                     "first_response_mean_min", "resolution_median_min",
                     "resolution_mean_min", "csat"):
            value = getattr(self, name)
            data[name] = None if value is None else round(value, 4)
        return data


@dataclass(frozen=True)
class HelpdeskStats:
    """Helpdesk figures overall, per day (oldest first) and per channel (busiest first).

    ``ratings_store`` says the ratings were read (the schema holds ``conversation_ratings``).
    """

    overall: Figures
    per_day: list[Figures]
    per_channel: list[Figures]
    ratings_store: bool

    def as_dict(self) -> dict[str, Any]:
        """Everything as plain data (for the report and JSON)."""
        return {"overall": self.overall.as_dict(),
                "per_day": [f.as_dict() for f in self.per_day],
                "per_channel": [f.as_dict() for f in self.per_channel],
                "ratings_store": self.ratings_store}


def _day(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)[:10]


def _as_datetime(value: Any) -> dt.datetime:
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))


def _minutes(start: Any, end: Any) -> float:
    return (_as_datetime(end) - _as_datetime(start)).total_seconds() / 60.0


class _Groups:
    """Figures keyed by day and by channel, plus the overall ones."""

    def __init__(self) -> None:
        self.overall = Figures("all")
        self.days: dict[str, Figures] = {}
        self.channels: dict[str, Figures] = {}

    def each(self, day: str, channel: str) -> list[Figures]:
        return [self.overall, self.days.setdefault(day, Figures(day)),
                self.channels.setdefault(channel, Figures(channel))]


def _conversations(session: Session, groups: _Groups, since: dt.datetime | None) -> None:
    staff = m.Interaction.__table__.alias("staff")
    first = (select(m.Interaction.sender_id.label("sender_id"),
                    func.min(m.Interaction.created_at).label("first_at"))
             .where(m.Interaction.direction == "in", m.Interaction.kind != "note",
                    ~exists().where(staff.c.sender_id == m.Interaction.sender_id,
                                    staff.c.rep_id.is_not(None)),
                    ~exists().where(m.ChannelIdentity.sender_id == m.Interaction.sender_id,
                                    m.ChannelIdentity.rep_id.is_not(None)))
             .group_by(m.Interaction.sender_id).subquery())
    channel = (select(m.Interaction.channel).where(m.Interaction.sender_id == first.c.sender_id)
               .order_by(m.Interaction.created_at, m.Interaction.id).limit(1)
               .scalar_subquery())
    escalated = exists().where(m.Escalation.sender_id == first.c.sender_id)
    day = func.date(first.c.first_at).label("day")
    conv = select(first.c.sender_id, day, channel.label("channel"),
                  case((escalated, 1), else_=0).label("escalated"))
    if since is not None:
        conv = conv.where(first.c.first_at >= since)
    conv = conv.subquery()
    rows = session.execute(
        select(conv.c.day, conv.c.channel, func.count().label("n"),
               func.sum(conv.c.escalated).label("escalated"))
        .group_by(conv.c.day, conv.c.channel)
    ).all()
    for r in rows:
        for fig in groups.each(_day(r.day), r.channel or "unknown"):
            fig.conversations += int(r.n)
            fig.escalated += int(r.escalated or 0)


def _escalations(session: Session, groups: _Groups, since: dt.datetime | None) -> None:
    first_agent = (
        select(func.min(m.Interaction.created_at))
        .where(m.Interaction.sender_id == m.Escalation.sender_id,
               m.Interaction.kind == "agent",
               m.Interaction.created_at >= m.Escalation.created_at)
        .scalar_subquery()
    )
    query = select(m.Escalation.created_at, m.Escalation.channel, m.Escalation.resolved_at,
                   first_agent.label("first_agent_at"))
    if since is not None:
        query = query.where(m.Escalation.created_at >= since)
    for r in session.execute(query).all():
        for fig in groups.each(_day(r.created_at), r.channel or "unknown"):
            if r.first_agent_at is not None:
                fig.answered += 1
                fig._first_response.append(_minutes(r.created_at, r.first_agent_at))
            if r.resolved_at is not None:
                fig.resolved += 1
                fig._resolution.append(_minutes(r.created_at, r.resolved_at))


def _ratings(session: Session, groups: _Groups, since: dt.datetime | None) -> bool:
    """Count the ratings (``conversation_ratings``) per day and channel; True (the CRM
    has the rating store)."""
    r = ConversationRating
    day = func.date(r.created_at).label("day")
    query = (select(day, r.channel.label("channel"), func.count().label("n"),
                    func.sum(case((r.score >= SATISFIED, 1), else_=0)).label("ok"))
             .where(r.score.is_not(None)))
    if since is not None:
        query = query.where(r.created_at >= since)
    for row in session.execute(query.group_by(day, r.channel)).all():
        for fig in groups.each(_day(row.day), row.channel or "unknown"):
            fig.ratings += int(row.n)
            fig.satisfied += int(row.ok or 0)
    return True


def helpdesk_stats(*, session: Session, since: dt.datetime | None = None,
                   days: int | None = None) -> HelpdeskStats:
    """The helpdesk figures of the conversations in the CRM.

    Args:
        session: The caller's session (read only).
        since: Only conversations, escalations and ratings from this time on.
        days: Keep only the last ``days`` days that have any figure in ``per_day``.

    Returns:
        The figures overall, per day and per channel.
    """
    groups = _Groups()
    _conversations(session, groups, since)
    _escalations(session, groups, since)
    store = _ratings(session, groups, since)
    per_day = [groups.days[d] for d in sorted(groups.days)]
    if days is not None:
        per_day = per_day[-days:]
    per_channel = sorted(groups.channels.values(),
                         key=lambda f: (-f.conversations, -f.escalated, f.key))
    logger.info("helpdesk figures: %d conversations, %d escalated, %d days, %d channels",
                groups.overall.conversations, groups.overall.escalated, len(per_day),
                len(per_channel))
    return HelpdeskStats(groups.overall, per_day, per_channel, store)


def report_section(*, session: Session, days: int = 30) -> dict[str, Any]:
    """The helpdesk section for ``crm-ml report``: overall, per channel, the last ``days`` days.

    Rates are fractions, durations minutes; ``csat`` is None with ``note`` saying
    why when nobody has rated a conversation yet.
    """
    stats = helpdesk_stats(session=session, days=days)
    section = stats.as_dict()
    if not stats.overall.ratings:
        section["note"] = ("no ratings yet" if stats.ratings_store
                           else "no ratings yet (the CRM has no rating store)")
    return section
