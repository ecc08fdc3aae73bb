"""Support hours and who is online: whether a handoff can be live or becomes a ticket.

:func:`availability` says whether the desk is open (``CRM_SUPPORT_HOURS`` in
``CRM_TIMEZONE``) and how many agents were seen in the last
:data:`AGENT_ONLINE_WINDOW`; :mod:`crm_ml.handoff` decides from it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_ml.audit import utcnow
from crm_ml.config import get_settings
from crm_ml.db import models as m

__all__ = ["AGENT_ONLINE_WINDOW", "Availability", "SupportHours", "agents_online",
           "availability", "support_hours"]

AGENT_ONLINE_WINDOW = dt.timedelta(minutes=5)
_DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
_HOURS_RE = re.compile(r"^(\w{3})-(\w{3})\s+(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class SupportHours:
    """Weekly opening hours of the human support desk, in one time zone."""

    first_day: int
    last_day: int
    opens: dt.time
    closes: dt.time
    tz: ZoneInfo
    always: bool = False

    @classmethod
    def parse(cls, spec: str, tz: str) -> SupportHours:
        """Parse ``Mon-Fri 08:00-20:00`` (or ``always``) in time zone ``tz``."""
        zone = ZoneInfo(tz)
        if spec.strip().lower() in {"always", "24/7"}:
            return cls(0, 6, dt.time(0), dt.time(23, 59), zone, always=True)
        match = _HOURS_RE.match(spec.strip())
        if not match:
            raise ValueError(f"support hours {spec!r}: expected e.g. 'Mon-Fri 08:00-20:00'")
        d1, d2, h1, m1, h2, m2 = match.groups()
        return cls(_DAYS.index(d1.title()), _DAYS.index(d2.title()),
                   dt.time(int(h1), int(m1)), dt.time(int(h2), int(m2)), zone)

    def is_open(self, when_utc: dt.datetime) -> bool:
        """Whether the desk is open at ``when_utc`` (naive UTC)."""
        if self.always:
            return True
        local = when_utc.replace(tzinfo=dt.UTC).astimezone(self.tz)
        return (self.first_day <= local.weekday() <= self.last_day
                and self.opens <= local.time() < self.closes)

    def next_opening(self, when_utc: dt.datetime) -> dt.datetime:
        """The next time the desk opens after ``when_utc``, in the desk's time zone."""
        local = when_utc.replace(tzinfo=dt.UTC).astimezone(self.tz)
        for days in range(0, 8):
            day = (local + dt.timedelta(days=days)).date()
            start = dt.datetime.combine(day, self.opens, tzinfo=self.tz)
            if self.first_day <= day.weekday() <= self.last_day and start > local:
                return start
        return local


@dataclass(frozen=True)
class Availability:
    """Whether a human can take the conversation now, and if not, when."""

    available: bool
    reason: str  # "open" | "closed" | "no_agent_online"
    next_opening: dt.datetime | None

    def expectation(self) -> str:
        """When the customer can expect an answer, in words."""
        if self.available:
            return "A colleague will be with you in a few minutes."
        if self.reason == "callback":
            return "A colleague will call you back shortly."
        if self.reason == "no_agent_online" or self.next_opening is None:
            return "All our colleagues are busy right now; one will reply within 4 hours."
        when = self.next_opening
        return (f"Our team is back on {when:%A} at {when:%H:%M} ({when.tzname()}) "
                "and will reply then.")


def support_hours() -> SupportHours:
    """The configured support hours."""
    settings = get_settings()
    return SupportHours.parse(settings.support_hours, settings.timezone)


def agents_online(*, session: Session, now: dt.datetime | None = None) -> int:
    """How many agents were seen in the console in the last few minutes."""
    now = now or utcnow()
    return session.scalar(
        select(func.count()).select_from(m.Agent)
        .where(m.Agent.last_seen_at >= now - AGENT_ONLINE_WINDOW)
    ) or 0


def availability(*, session: Session, now: dt.datetime | None = None) -> Availability:
    """Whether an escalation can be answered live now."""
    now = now or utcnow()
    hours = support_hours()
    if not hours.is_open(now):
        return Availability(False, "closed", hours.next_opening(now))
    if agents_online(session=session, now=now) == 0:
        return Availability(False, "no_agent_online", None)
    return Availability(True, "open", None)
