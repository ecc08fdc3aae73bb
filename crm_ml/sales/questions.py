"""Business questions as typed in a chat: the words read, checked, and answered in one call.

The chat actions pass the message text and the entities the NLU found
(``period``/``time_span`` and ``country``); this module reads the rest of the
request from the words (how many, by revenue or quantity, broken down by what,
lead source, status and score range), validates every part, resolves relative
periods against the as-of date (:mod:`crm_ml.asof`) and runs one query of
:mod:`crm_ml.sales.business`. What cannot be understood raises an error that
names it (:class:`UnknownCountry`, :class:`UnclearPeriod`), so the chat asks
back instead of guessing.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from crm_ml import asof, periods
from crm_ml.errors import CRMError
from crm_ml.identity import Identity
from crm_ml.periods import Period
from crm_ml.sales import business, catalogue
from crm_ml.sales.common import canonical_segment, parse_status

__all__ = [
    "Answer",
    "Terms",
    "UnclearPeriod",
    "UnknownCountry",
    "ask_inactive_customers",
    "ask_leads",
    "ask_revenue",
    "ask_top_customers",
    "ask_top_products",
    "segment_in",
    "terms_of",
]

logger = logging.getLogger(__name__)

DEFAULT_TOP = 5
DEFAULT_INACTIVE = "last 6 months"
_WORD_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                 "eight": 8, "nine": 9, "ten": 10, "fifteen": 15, "twenty": 20}
_GROUP_WORDS = [("month", r"\b(?:by|per|each|every|a|monthly|month by)\s+month|\bmonthly\b|"
                          r"\bmonth by month\b|\bover the months\b|\btrend\b"),
                ("country", r"\b(?:by|per|each|every|across)\s+countr(?:y|ies)|\bcountry by "
                            r"country\b|\bwhich countr"),
                ("product", r"\b(?:by|per|each)\s+product"),
                ("segment", r"\b(?:by|per|each)\s+segment|\bwhich segment"),
                ("rep", r"\b(?:by|per|each)\s+(?:sales\s*)?(?:rep|reps|salesperson|person)\b|"
                        r"\bwhich rep")]
_NOT_PLACES = set("""
    my our the total all each every last this next previous past general a an terms units in
    from for
    quantity spend value revenue sales orders order customers customer products product value
    bank x education marketing it them their your stock sum q1 q2 q3 q4 ytd year years month
    months week weeks day days quarter quarters between from to and there here total numbers
    """.split()) | {m.lower() for m in (
        "january february march april may june july august september october november "
        "december jan feb mar apr jun jul aug sep sept oct nov dec").split()}


class UnknownCountry(CRMError):
    """The question names a place that is not a country of the CRM's orders.

    Attributes:
        raw: The words taken for a country.
        known: The countries with orders, most orders first.
    """

    def __init__(self, raw: str, known: list[str]) -> None:
        self.raw = raw
        self.known = known
        super().__init__(f"unknown country {raw!r}")


class UnclearPeriod(CRMError):
    """The question names a period that cannot be read as dates.

    Attributes:
        raw: The words of the period.
    """

    def __init__(self, raw: str) -> None:
        self.raw = raw
        super().__init__(f"unclear period {raw!r}")


class UnknownProduct(CRMError):
    """The question names a product the catalogue does not hold.

    Attributes:
        raw: The words taken for a product.
    """

    def __init__(self, raw: str) -> None:
        self.raw = raw
        super().__init__(f"unknown product {raw!r}")


@dataclass(frozen=True)
class Terms:
    """What the words of a question ask for besides the period and country.

    Attributes:
        n: How many rows (None: the default).
        by: ``"revenue"``, ``"quantity"`` or ``"orders"``.
        group_by: A breakdown (one of :data:`business.GROUPS`) or None.
        compare: Whether a change against the period before is asked.
        source: A lead source as stored, or None.
        status: A lead status, or None.
        min_score: Lowest lead score (0..1), or None.
        max_score: Highest lead score (0..1), or None.
        asked: The N as asked, when it was more than the most listed at once
            (:data:`business.MAX_ROWS`), so that the answer can say so.
    """

    n: int | None = None
    by: str = "revenue"
    group_by: str | None = None
    compare: bool = False
    source: str | None = None
    status: str | None = None
    min_score: float | None = None
    max_score: float | None = None
    asked: int | None = None


@dataclass(frozen=True)
class Answer:
    """A query's result with the period it covers and the as-of sentence.

    Attributes:
        result: What :mod:`crm_ml.sales.business` returned.
        period: The period asked about (None: all the data).
        country: The country as stored, or None.
        terms: The terms read from the words.
        as_of: The as-of date used.
        as_of_note: The sentence to add when the as-of date is not the calendar's.
        before: The period compared with, for a change.
        problem: What could not be understood (:class:`UnknownCountry`,
            :class:`UnclearPeriod`); ``result`` is None then and the chat asks back.
    """

    result: Any
    period: Period | None
    country: str | None
    terms: Terms
    as_of: dt.date
    as_of_note: str | None
    before: Period | None = None
    problem: CRMError | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _asks_back(fn: Callable[..., Answer]) -> Callable[..., Answer]:
    """Return what was not understood as ``Answer.problem`` rather than raising it."""

    @functools.wraps(fn)
    def wrapper(*, session: Session, identity: Identity, **kwargs: Any) -> Answer:
        try:
            return fn(session=session, identity=identity, **kwargs)
        except (UnknownCountry, UnclearPeriod, UnknownProduct) as exc:
            logger.info("business question not understood: %s", type(exc).__name__)
            return Answer(None, None, None, Terms(), asof.today(session), None, problem=exc)

    return wrapper


def _score(text: str) -> float:
    value = float(text)
    return value / 100 if value > 1 else value


def terms_of(text: str) -> Terms:
    """The terms of a question in words ("top 3 products by quantity", "score above 80")."""
    t = " ".join((text or "").lower().replace("’", "'").split())[:300]
    n = asked = None
    m = re.search(r"\b(?:top|best|first|largest|biggest|worst)\s+(\d{1,4}|" +
                  "|".join(_WORD_NUMBERS) + r")\b", t) or re.search(
        r"\b(\d{1,2})\s+(?:best|top|biggest|largest|most)\b", t)
    if m:
        n = int(m.group(1)) if m.group(1).isdigit() else _WORD_NUMBERS[m.group(1)]
        asked = n if n > business.MAX_ROWS else None
        n = max(1, min(n, business.MAX_ROWS))
    by = "revenue"
    if re.search(r"\b(?:quantity|quantities|units?|volume|pieces|items sold|most sold|"
                 r"how many sold)\b", t):
        by = "quantity"
    elif re.search(r"\b(?:most orders|by orders|number of orders|order count|"
                   r"most frequent|most often)\b", t):
        by = "orders"
    group_by = next((name for name, pattern in _GROUP_WORDS if re.search(pattern, t)), None)
    compare = bool(re.search(r"\b(?:compared?|vs\.?|versus|change|growth|grow|grew|up or "
                             r"down|than the|against|difference|increase|decrease)\b", t))
    source = next((business.canonical_source(k) for k in sorted(business.LEAD_SOURCES,
                                                              key=len, reverse=True)
                   if " " in k and k in t), None)
    if source is None and re.search(r"\bx[ -]?ed(?:ucation)?\b", t):
        source = "x_education"
    if source is None and re.search(r"\bbank\b", t):
        source = "bank_marketing"
    status = next((parse_status(w) for w in ("contacted", "qualified", "won", "lost")
                   if re.search(rf"\b{w}\b", t)), None)
    if status is None and re.search(r"\b(?:status new|new leads|leads? (?:that are|still) "
                                    r"new)\b", t):
        status = "new"
    low = high = None
    num = r"(\d{1,3}(?:\.\d+)?)\s*%?"
    m = re.search(rf"\bscores?\s+(?:between|from)\s+{num}\s+(?:and|to|-)\s+{num}", t)
    if m:
        low, high = sorted((_score(m.group(1)), _score(m.group(2))))
    else:
        m = re.search(rf"\b(?:score|scored|scoring)\s+(?:above|over|at least|>=?|greater than|"
                      rf"more than|of at least)\s+{num}", t) or re.search(
            rf"\b(?:above|over|at least)\s+{num}\s*(?:score|points)?", t)
        if m:
            low = _score(m.group(1))
        m2 = re.search(rf"\b(?:score|scored|scoring)\s+(?:below|under|at most|<=?|less than|"
                       rf"lower than)\s+{num}", t) or re.search(
            rf"\b(?:below|under|at most)\s+{num}", t)
        if m2:
            high = _score(m2.group(1))
    for bound in (low, high):
        if bound is not None and not 0 <= bound <= 1:
            low = high = None
    return Terms(n, by, group_by, compare, source, status, low, high, asked)


_SEGMENT_WORDS = re.compile(
    r"\b(champions?|loyal customers|loyalists?|potential loyalists?|hibernating|"
    r"about to sleep|need(?:s|ing)? attention|can'?t lose(?: them)?|"
    r"(?:at[ -]risk|lost|promising|new customers)(?=\s+(?:segment|group|customers segment)))\b")


def segment_in(text: str) -> str | None:
    """An RFM segment named in the words ("from champions", "the at risk segment"), else None."""
    m = _SEGMENT_WORDS.search((text or "").lower().replace("’", "'"))
    return canonical_segment(m.group(1).replace("-", " ")) if m else None


def _place_words(text: str) -> str | None:
    """Words after "in"/"from"/"for" that may name a place, for the unknown-country check."""
    t = (text or "").lower()
    for m in re.finditer(r"\b(?:in|from)\s+(?:the\s+)?([a-z][a-z]+(?:\s+[a-z][a-z]+)?)", t):
        words = m.group(1).split()
        if words[0] in _NOT_PLACES or words[0].isdigit() or canonical_segment(words[0]) \
                or canonical_segment(m.group(1)) or segment_in(m.group(1)):
            continue  # "from champions": a segment, not a place
        return words[0] if len(words) == 1 or words[1] in _NOT_PLACES else m.group(1)
    return None


def _country(session: Session, raw: str | None, text: str) -> str | None:
    if raw:
        country = business.canonical_country(raw, session=session)
        if country is None:
            raise UnknownCountry(raw, business.countries(session=session))
        return country
    guess = _place_words(text)
    if guess is None:
        return None
    country = (business.canonical_country(guess, session=session)
               or business.canonical_country(guess.split()[0], session=session))
    if country is None:
        words = set(re.findall(r"[a-z]+", guess))
        if words & {"accounts", "account", "book", "portfolio", "team", "pipeline", "stock",
                    "crm", "shop", "store", "data", "total", "general", "chat", "detail",
                    "details", "words", "text", "list", "table", "short", "brief"}:
            return None
        raise UnknownCountry(guess, business.countries(session=session))
    return country


def find_period(raw: str | None, text: str, today: dt.date,
                default: str | None) -> Period | None:
    """The period of a question: the ``raw`` entity's words, else a period phrase in
    ``text``, else ``default`` (None: no period).

    Raises:
        UnclearPeriod: ``raw`` is not a period understood here.
    """
    if raw:
        for words in (raw, f"last {raw}"):  # "6 months" asked about the past: the last 6
            try:
                return periods.parse(words, today=today)
            except periods.PeriodError:
                continue
        raise UnclearPeriod(raw)
    t = (text or "").lower()
    for pattern in (r"\bbetween\s+\S+\s+and\s+\S+", r"\b(?:year to date|ytd)\b",
                    r"\b(?:last|this|previous|past)\s+(?:\d+\s+|\w+\s+)?(?:days?|weeks?|months?|"
                    r"quarters?|years?)\b", r"\bq[1-4](?:\s+20\d\d)?\b",
                    r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\s+20\d\d\b",
                    r"\b(?:in|during|for)\s+20\d\d\b", r"\byesterday\b",
                    r"(?<=\bin )(?:january|february|march|april|june|july|august|september|"
                    r"october|november|december)\b"):
        m = re.search(pattern, t)
        if m:
            try:
                return periods.parse(m.group(0), today=today)
            except periods.PeriodError:
                continue
    return periods.parse(default, today=today) if default else None


def _start(session: Session, identity: Identity, text: str, period: str | None,
           country: str | None, default: str | None = None) -> tuple[
               dt.date, str | None, Period | None, str | None, Terms]:
    from crm_ml import authz

    authz.require(identity, "analytics.read")
    info = asof.as_of(session)  # one look at the data gives both the day and its note
    today = info.day
    return (today, info.note, find_period(period, text, today, default),
            _country(session, country, text), terms_of(text))


@_asks_back
def ask_revenue(*, session: Session, identity: Identity, text: str = "",
                period: str | None = None, country: str | None = None,
                segment: str | None = None, product: str | None = None) -> Answer:
    """Revenue (orders, customers) asked in words; a change when the words ask for one.

    Without a period: the last month (``"last month"`` as of the as-of date)... unless a
    breakdown by month is asked, then this year.

    Raises:
        Forbidden: the caller is not staff.
        UnknownCountry: the words name a place with no orders.
        UnclearPeriod: the period entity cannot be read.
        UnknownProduct: the product entity names nothing in the catalogue.
    """
    terms = terms_of(text)
    segment = segment or segment_in(text)
    extra: dict[str, Any] = {"segment": segment} if segment else {}
    code = None
    if product:
        found = catalogue.find_products(product, session=session, limit=1)
        if not found:
            raise UnknownProduct(product)
        code, extra["product"] = found[0]
    default = "this year" if terms.group_by else "last month"
    today, note, when, place, terms = _start(session, identity, text, period, country, default)
    if terms.compare and when is not None and terms.group_by is None:
        before = periods.previous(when)
        result = business.revenue_change(session=session, identity=identity, period=when,
                                         before=before, country=place, segment=segment,
                                         product=code)
        return Answer(result, when, place, terms, today, note, before, extra=extra)
    result = business.revenue(session=session, identity=identity, period=when, country=place,
                              segment=segment, product=code, group_by=terms.group_by,
                              limit=terms.n or 10)
    return Answer(result, when, place, terms, today, note, extra=extra)


@_asks_back
def ask_top_products(*, session: Session, identity: Identity, text: str = "",
                     period: str | None = None, country: str | None = None) -> Answer:
    """Top products by net revenue or units, in a country and period (default: all data)."""
    today, note, when, place, terms = _start(session, identity, text, period, country)
    by = "quantity" if terms.by == "quantity" else "revenue"
    rows = business.top_products(session=session, identity=identity, period=when,
                                 country=place, by=by, limit=terms.n or DEFAULT_TOP)
    return Answer(rows, when, place, terms, today, note)


@_asks_back
def ask_top_customers(*, session: Session, identity: Identity, text: str = "",
                      period: str | None = None, country: str | None = None) -> Answer:
    """The caller's top customers by net spend or orders (default: all data)."""
    today, note, when, place, terms = _start(session, identity, text, period, country)
    by = "orders" if terms.by in {"orders", "quantity"} else "revenue"
    rows = business.top_customers(session=session, identity=identity, period=when,
                                  country=place, by=by, limit=terms.n or DEFAULT_TOP)
    return Answer(rows, when, place, terms, today, note)


@_asks_back
def ask_inactive_customers(*, session: Session, identity: Identity, text: str = "",
                           period: str | None = None) -> Answer:
    """The caller's customers with no order in a span ("6 months", default 6 months)."""
    today, note, _, _, terms = _start(session, identity, text, None, None)
    raw = period
    if raw is None:
        m = re.search(r"\b(\d{1,3}|a|one|two|three|four|six|nine|twelve)\s+"
                      r"(days?|weeks?|months?|years?)\b", (text or "").lower())
        raw = f"last {m.group(1)} {m.group(2)}" if m else DEFAULT_INACTIVE
    span = None
    for words in (f"last {raw}", raw):  # "6 months": the last 6; "this year": since 1 January
        try:
            span = periods.parse(words, today=today)
            break
        except periods.PeriodError:
            continue
    tomorrow = today + dt.timedelta(days=1)
    if span is None or span.start >= tomorrow:
        raise UnclearPeriod(period or raw)
    result = business.inactive_customers(session=session, identity=identity,
                                         days=(tomorrow - span.start).days,
                                         limit=terms.n or 10, today=today)
    return Answer(result, span, None, terms, today, note)


def ask_leads(*, session: Session, identity: Identity, text: str = "",
              status: str | None = None) -> Answer:
    """The caller's leads filtered by the source, status and score range in the words."""
    terms = terms_of(text)
    if status is not None and parse_status(status):
        terms = Terms(terms.n, terms.by, terms.group_by, terms.compare, terms.source,
                      parse_status(status), terms.min_score, terms.max_score)
    result = business.leads_filtered(session=session, identity=identity, source=terms.source,
                                     status=terms.status, min_score=terms.min_score,
                                     max_score=terms.max_score, limit=terms.n or 10)
    today = asof.today(session)
    return Answer(result, None, None, terms, today, None)
