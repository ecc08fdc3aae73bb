"""The "as of" date: the day every relative period ("last month", "this year") counts from.

Three sources, in order:

1. ``CRM_TODAY`` (``get_settings().today``, ``YYYY-MM-DD``) when set;
2. the demo data: when the CRM's last order is more than :data:`STALE_DAYS` days
   before the calendar date (Online Retail II ends on 9 December 2011), the day
   of that last order, so that "last month" means November 2011 and not a month
   with no data at all;
3. otherwise the calendar date.

:func:`stated` gives the sentence an answer adds when the as-of date is not the
calendar date, so a user never wonders why "last month" is in 2011.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crm_ml.config import get_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = [
    "STALE_DAYS",
    "AsOf",
    "as_of",
    "say_day",
    "stated",
    "today",
]

logger = logging.getLogger(__name__)

STALE_DAYS = 365
"""The last order older than this (in days) marks the loaded data as a demo snapshot."""


@dataclass(frozen=True)
class AsOf:
    """The as-of date and where it comes from.

    Attributes:
        day: The as-of date.
        source: ``"setting"`` (CRM_TODAY), ``"data"`` (last day of the loaded
            data) or ``"calendar"``.
        calendar: The calendar date when it was decided.
    """

    day: dt.date
    source: str
    calendar: dt.date

    @property
    def note(self) -> str | None:
        """The sentence to add to an answer when the as-of date is not the calendar date.

        None when it is the calendar date (nothing to explain).
        """
        if self.day == self.calendar:
            return None
        if self.source == "data":
            return f"As of {say_day(self.day)}, the last day of the loaded data."
        return f"As of {say_day(self.day)}, the CRM's set date."


def _last_order_day(session: Session | None) -> dt.date | None:
    if session is None:
        return None
    from sqlalchemy import func, select

    from crm_ml.db import models as m

    value = session.scalar(select(func.max(m.Order.invoiced_at)))
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def as_of(session: Session | None = None, *, calendar: dt.date | None = None) -> AsOf:
    """The as-of date with its source (see the module docstring).

    Args:
        session: A CRM session, to find the last order; without one the setting
            or the calendar decide.
        calendar: The calendar date (default: today's date on this machine).
    """
    calendar = calendar or dt.date.today()
    raw = (get_settings().today or "").strip()
    if raw:
        try:
            return AsOf(dt.date.fromisoformat(raw), "setting", calendar)
        except ValueError:
            logger.warning("CRM_TODAY is not a YYYY-MM-DD date; ignoring it")
    last = _last_order_day(session)
    if last is not None and (calendar - last).days > STALE_DAYS:
        return AsOf(last, "data", calendar)
    return AsOf(calendar, "calendar", calendar)


def today(session: Session | None = None, *, calendar: dt.date | None = None) -> dt.date:
    """The as-of date (see :func:`as_of`)."""
    return as_of(session, calendar=calendar).day


def say_day(day: dt.date) -> str:
    """A date as people write it: ``9 December 2011``."""
    return f"{day.day} {day:%B %Y}"


def stated(session: Session | None = None, *, calendar: dt.date | None = None) -> str | None:
    """The sentence to add to an answer when the as-of date is not the calendar date
    (:attr:`AsOf.note`); None when it is the calendar date."""
    return as_of(session, calendar=calendar).note
