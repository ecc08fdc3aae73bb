"""Time spans in words ("next quarter", "3 months", "next 8 weeks", "q1") as weeks.

The NLU extracts a ``time_span`` entity as the user said it; forecasts are weekly,
so every span is turned into a whole number of weeks between :data:`MIN_WEEKS`
and :data:`MAX_WEEKS`:

=====================  =====
text                   weeks
=====================  =====
next week, this week   1
next 8 weeks, 8 wks    8
next month             4
3 months, next quarter 13
q1 .. q4 (a quarter)   13
6 months, half a year  26
next year, 12 months   52
next 90 days           13 (days are rounded up to whole weeks)
=====================  =====

Months are ``52 / 12`` weeks each, rounded to the nearest week. Standard library
only.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass

__all__ = [
    "DEFAULT_WEEKS",
    "MAX_WEEKS",
    "MIN_WEEKS",
    "TimeSpan",
    "TimeSpanError",
    "parse",
    "weeks",
]

logger = logging.getLogger(__name__)

MIN_WEEKS = 1
MAX_WEEKS = 52
DEFAULT_WEEKS = 13

_WEEKS_PER_UNIT = {"day": 1 / 7, "week": 1.0, "month": 52 / 12, "quarter": 13.0, "year": 52.0}
_UNITS = {
    "d": "day", "day": "day", "days": "day",
    "w": "week", "wk": "week", "wks": "week", "week": "week", "weeks": "week",
    "fortnight": "fortnight", "fortnights": "fortnight",
    "mo": "month", "mos": "month", "mth": "month", "mths": "month",
    "month": "month", "months": "month",
    "q": "quarter", "qtr": "quarter", "qtrs": "quarter", "quarter": "quarter",
    "quarters": "quarter",
    "y": "year", "yr": "year", "yrs": "year", "year": "year", "years": "year",
}
_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "single": 1, "two": 2, "couple": 2, "a couple": 2,
    "couple of": 2, "a couple of": 2, "three": 3, "few": 3, "a few": 3, "four": 4,
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11,
    "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "twenty": 20, "twenty four": 24, "twenty six": 26, "thirty": 30, "fifty two": 52,
}
_PAST = {"last", "past", "previous", "prior"}
_FILLER = {"the", "next", "this", "coming", "following", "upcoming", "for", "over", "in",
           "within", "ahead", "from", "now", "of", "rest", "remaining", "current", "forward"}

_QUARTER_RE = re.compile(r"^q\s*([1-4])(?:\s*(?:fy)?\s*'?(?:20)?\d\d)?$")
_HALF_YEAR = {"half a year", "half year", "a half year"}
_ORDINAL_QUARTER_RE = re.compile(r"^(?:first|second|third|fourth|[1-4] (?:st|nd|rd|th)) quarter$")


class TimeSpanError(ValueError):
    """A time span that cannot be read, or lies outside 1..52 weeks.

    Attributes:
        text: The span as given.
        reason: ``"unclear"`` (not a span), ``"too_long"`` or ``"too_short"``.
        weeks: The weeks it amounts to, when it could be read.
    """

    def __init__(self, text: str, reason: str, weeks: int | None = None) -> None:
        self.text = text
        self.reason = reason
        self.weeks = weeks
        if reason == "unclear":
            message = (f"{text!r} is not a period I can read; say it in weeks, months or "
                       "quarters, e.g. 'next 8 weeks' or 'next quarter'")
        else:
            message = (f"{text!r} is {weeks} weeks; a period must be between {MIN_WEEKS} "
                       f"and {MAX_WEEKS} weeks")
        super().__init__(message)


@dataclass(frozen=True)
class TimeSpan:
    """A parsed time span.

    Attributes:
        weeks: Length in whole weeks, within ``MIN_WEEKS..MAX_WEEKS``.
        past: Whether the text looks back ("last 3 months") rather than ahead.
        text: The span as given.
    """

    weeks: int
    past: bool
    text: str


def _normalise(text: str) -> list[str]:
    lowered = text.lower().replace("’", "'").replace("-", " ")
    lowered = re.sub(r"(\d)([a-z])", r"\1 \2", lowered)  # "8wks" -> "8 wks"
    return re.findall(r"[a-z]+|\d+(?:\.\d+)?|'\d\d", lowered)


def _amount(words: list[str]) -> float | None:
    if not words:
        return 1.0
    phrase = " ".join(words)
    if re.fullmatch(r"\d+(?:\.\d+)?", phrase):
        return float(phrase)
    return _NUMBERS.get(phrase)


def parse(text: str | None) -> TimeSpan:
    """Read a time span.

    Args:
        text: What the user said ("next quarter", "3 months", "q1", "next 8 weeks").

    Returns:
        The span in weeks.

    Raises:
        TimeSpanError: the text is not a period, or amounts to under 1 or over 52 weeks.
    """
    raw = (text or "").strip()
    words = _normalise(raw)
    past = any(w in _PAST for w in words)
    core = [w for w in words if w not in _PAST and w not in _FILLER]
    phrase = " ".join(core)
    if not core:
        raise TimeSpanError(raw, "unclear")
    if phrase in _HALF_YEAR:
        return _bounded(raw, 26.0, past)
    if _QUARTER_RE.match(phrase) or _ORDINAL_QUARTER_RE.match(phrase):
        return _bounded(raw, 13.0, past)
    unit = _UNITS.get(core[-1])
    amount = _amount(core[:-1])
    if unit is None or amount is None:
        raise TimeSpanError(raw, "unclear")
    if unit == "fortnight":
        span = 2 * amount
    elif unit == "day":
        span = float(math.ceil(amount / 7))
    else:
        span = amount * _WEEKS_PER_UNIT[unit]
    return _bounded(raw, span, past)


def _bounded(raw: str, weeks: float, past: bool) -> TimeSpan:
    whole = int(math.floor(weeks + 0.5))  # round half up: 1.5 months -> 7 weeks
    if whole < MIN_WEEKS:
        raise TimeSpanError(raw, "too_short", whole)
    if whole > MAX_WEEKS:
        raise TimeSpanError(raw, "too_long", whole)
    return TimeSpan(whole, past, raw)


def weeks(text: str | None, *, default: int = DEFAULT_WEEKS) -> int:
    """The number of weeks in ``text``, or ``default`` when no span was given.

    Raises:
        TimeSpanError: as :func:`parse`.
    """
    if text is None or not str(text).strip():
        return default
    return parse(str(text)).weeks
