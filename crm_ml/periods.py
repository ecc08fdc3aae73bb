"""Periods in words ("last month", "november 2011", "q3", "last 6 months") as date ranges.

Every period is a half-open range ``[start, end)`` of dates, relative to the as-of
date (:mod:`crm_ml.asof`) where the words are relative:

==========================================  ==========================================
text                                        range (as of 9 December 2011)
==========================================  ==========================================
last month / previous month                 2011-11-01 .. 2011-12-01
this month / month to date                  2011-12-01 .. 2011-12-10 (to the as-of day)
november 2011, nov 2011, 2011-11            2011-11-01 .. 2011-12-01
november (no year)                          the latest November that has begun
q3, third quarter, q3 2010                  the latest Q3 that has begun (or that year's)
last quarter / this quarter                 2011-07-01 .. 2011-10-01 / 2011-10-01 .. 12-10
this year / year to date / ytd              2011-01-01 .. 2011-12-10
last year, 2010                             2010-01-01 .. 2011-01-01
last 6 months, past 30 days, last 2 weeks   the span ending with the as-of day
between 2011-01-01 and 2011-03-31           2011-01-01 .. 2011-04-01 (both days in)
today, yesterday, this week, last week      as said (weeks start on Monday)
==========================================  ==========================================

:func:`previous` gives the period before (the month before a month, the same
span before a span), for period-over-period change. Standard library only.
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
import re
from dataclasses import dataclass

from crm_ml.asof import say_day

__all__ = [
    "Period",
    "PeriodError",
    "parse",
    "previous",
]

logger = logging.getLogger(__name__)

_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
_MONTHS["sept"] = 9
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))
_ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3,
             "fourth": 4, "4th": 4, "last": 4}
_NUMBERS = {"one": 1, "a": 1, "an": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
            "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
            "eighteen": 18, "twenty four": 24}
_MAX_TEXT = 80


class PeriodError(ValueError):
    """The words are not a period this module understands."""


@dataclass(frozen=True)
class Period:
    """A date range ``[start, end)`` with how to say it.

    Attributes:
        start: First day in the period.
        end: First day after the period.
        label: The period in words ("November 2011", "the 6 months to 9 December 2011").
        kind: ``"month"``, ``"quarter"``, ``"year"``, ``"week"``, ``"day"`` or ``"span"``.
    """

    start: dt.date
    end: dt.date
    label: str
    kind: str = "span"

    @property
    def days(self) -> int:
        """Days in the period."""
        return (self.end - self.start).days


def _add_months(d: dt.date, months: int) -> dt.date:
    index = d.year * 12 + d.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(d.day, last))


def _month(year: int, month: int) -> Period:
    start = dt.date(year, month, 1)
    return Period(start, _add_months(start, 1), f"{start:%B %Y}", "month")


def _quarter(year: int, q: int) -> Period:
    start = dt.date(year, 3 * (q - 1) + 1, 1)
    return Period(start, _add_months(start, 3), f"Q{q} {year}", "quarter")


def _year(year: int) -> Period:
    return Period(dt.date(year, 1, 1), dt.date(year + 1, 1, 1), str(year), "year")


def _to_date(period: Period, today: dt.date, label: str) -> Period:
    """The period cut at the as-of day (for "this month", "this year")."""
    end = min(period.end, today + dt.timedelta(days=1))
    return Period(period.start, end, f"{label} ({period.label}, to {say_day(today)})"
                  if end < period.end else period.label, period.kind)


def _date(text: str) -> dt.date:
    text = text.strip()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        pass
    m = re.fullmatch(rf"(\d{{1,2}})(?:st|nd|rd|th)?\s+({_MONTH_RE})\.?,?\s+(\d{{4}})", text)
    if m:
        return dt.date(int(m.group(3)), _MONTHS[m.group(2)], int(m.group(1)))
    m = re.fullmatch(rf"({_MONTH_RE})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})", text)
    if m:
        return dt.date(int(m.group(3)), _MONTHS[m.group(1)], int(m.group(2)))
    m = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", text)
    if m:  # day/month/year, the British way
        return dt.date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
    raise PeriodError(f"not a date: {text!r}")


def _count(word: str) -> int:
    word = word.strip()
    if word.isdigit():
        return int(word)
    if word in _NUMBERS:
        return _NUMBERS[word]
    raise PeriodError(f"not a number: {word!r}")


def parse(text: str, *, today: dt.date) -> Period:
    """The period the words name, relative to ``today`` (the as-of date).

    Raises:
        PeriodError: the words are not a period understood here, or name a range
            that ends before it starts.
    """
    if not isinstance(text, str) or not text.strip() or len(text) > _MAX_TEXT:
        raise PeriodError("no period")
    t = " ".join(re.sub(r"[^\w/\-\s]", " ", text.lower().replace("’", "'")).split())
    t = re.sub(r"^(?:in|for|during|over|of|since)\s+", "", t)
    t = re.sub(r"^the\s+", "", t)
    tomorrow = today + dt.timedelta(days=1)

    # between A and B / from A to B
    m = re.fullmatch(r"(?:between|from)\s+(.+?)\s+(?:and|to|until|till|-)\s+(.+)", t)
    if m:
        try:
            start, last = _date(m.group(1)), _date(m.group(2))
        except ValueError as exc:  # a day that does not exist, e.g. 31/02/2011
            raise PeriodError(str(exc)) from exc
        if last < start:
            raise PeriodError("the range ends before it starts")
        return Period(start, last + dt.timedelta(days=1),
                      f"{say_day(start)} to {say_day(last)}", "span")

    if t in {"today"}:
        return Period(today, tomorrow, say_day(today), "day")
    if t == "yesterday":
        day = today - dt.timedelta(days=1)
        return Period(day, today, say_day(day), "day")
    monday = today - dt.timedelta(days=today.weekday())
    if t in {"this week", "week to date", "wtd"}:
        return Period(monday, tomorrow, f"the week of {say_day(monday)}", "week")
    if t in {"last week", "previous week", "past week"}:
        start = monday - dt.timedelta(days=7)
        return Period(start, monday, f"the week of {say_day(start)}", "week")

    this_month = _month(today.year, today.month)
    if t in {"this month", "month to date", "mtd", "current month"}:
        return _to_date(this_month, today, "this month")
    if t in {"last month", "previous month", "past month"}:
        start = _add_months(this_month.start, -1)
        return _month(start.year, start.month)

    q_now = (today.month - 1) // 3 + 1
    if t in {"this quarter", "current quarter", "quarter to date", "qtd"}:
        return _to_date(_quarter(today.year, q_now), today, "this quarter")
    if t in {"last quarter", "previous quarter", "past quarter"}:
        year, q = (today.year, q_now - 1) if q_now > 1 else (today.year - 1, 4)
        return _quarter(year, q)

    if t in {"this year", "year to date", "ytd", "current year"}:
        return _to_date(_year(today.year), today, "this year")
    if t in {"last year", "previous year"}:
        return _year(today.year - 1)

    # last 6 months, past 30 days, last two weeks, past year
    m = re.fullmatch(r"(?:last|past|previous)\s+(?:(\w+(?: four)?)\s+)?(day|week|month|year)s?", t)
    if m:
        n = _count(m.group(1)) if m.group(1) else 1
        unit = m.group(2)
        if not 1 <= n <= {"day": 3650, "week": 520, "month": 120, "year": 10}[unit]:
            raise PeriodError("span out of range")
        if unit == "day":
            start = tomorrow - dt.timedelta(days=n)
        elif unit == "week":
            start = tomorrow - dt.timedelta(days=7 * n)
        else:
            start = _add_months(tomorrow, -n * (12 if unit == "year" else 1))
        word = f"{n} {unit}s" if n != 1 else unit
        return Period(start, tomorrow, f"the {word} to {say_day(today)}", "span")

    # q3, q3 2011, third quarter of 2010, 2011 q3
    m = (re.fullmatch(r"q([1-4])(?:\s+(?:of\s+)?(\d{4}))?", t)
         or re.fullmatch(r"(?:(\d{4})\s+)?q([1-4])", t))
    if m and t.startswith("q"):
        q, year = int(m.group(1)), m.group(2)
    elif m:
        q, year = int(m.group(2)), m.group(1)
    else:
        m = re.fullmatch(r"(first|1st|second|2nd|third|3rd|fourth|4th|last)\s+quarter"
                         r"(?:\s+(?:of\s+)?(\d{4}))?", t)
        q, year = (_ORDINALS[m.group(1)], m.group(2)) if m else (None, None)
    if q is not None:
        if year is not None:
            return _quarter(int(year), q)
        year_now = today.year if _quarter(today.year, q).start <= today else today.year - 1
        period = _quarter(year_now, q)
        return _to_date(period, today, f"Q{q}") if period.end > tomorrow else period

    # november 2011, nov 2011, 2011-11, november
    m = re.fullmatch(rf"({_MONTH_RE})\.?(?:\s+(?:of\s+)?(\d{{4}}))?", t)
    if m:
        month = _MONTHS[m.group(1)]
        if m.group(2):
            return _month(int(m.group(2)), month)
        year = today.year if month <= today.month else today.year - 1
        period = _month(year, month)
        return _to_date(period, today, period.label) if period.end > tomorrow else period
    m = re.fullmatch(r"(\d{4})-(\d{1,2})", t)
    if m and 1 <= int(m.group(2)) <= 12:
        return _month(int(m.group(1)), int(m.group(2)))
    m = re.fullmatch(r"(?:year\s+)?(\d{4})", t)
    if m and 1990 <= int(m.group(1)) <= 2100:
        return _year(int(m.group(1)))
    raise PeriodError(f"not a period: {text!r}")


def previous(period: Period) -> Period:
    """The period just before ``period``, of the same kind and length."""
    if period.kind == "month" and period.start.day == 1:
        start = _add_months(period.start, -1)
        return _month(start.year, start.month)
    if period.kind == "quarter" and period.end == _add_months(period.start, 3):
        start = _add_months(period.start, -3)
        return _quarter(start.year, (start.month - 1) // 3 + 1)
    if period.kind == "year" and period.end == dt.date(period.start.year + 1, 1, 1):
        return _year(period.start.year - 1)
    if period.kind in {"month", "quarter", "year"}:
        # a period cut at the as-of day: the same stretch one unit before
        months = {"month": 1, "quarter": 3, "year": 12}[period.kind]
        start, end = _add_months(period.start, -months), _add_months(period.end, -months)
        return Period(start, end, f"{say_day(start)} to {say_day(end - dt.timedelta(days=1))}",
                      "span")
    start = period.start - (period.end - period.start)
    return Period(start, period.start,
                  f"{say_day(start)} to {say_day(period.start - dt.timedelta(days=1))}", "span")
