"""Words for numbers, dates, lists and products: one way, for every action.

Every reply may be read aloud (the voice channel), so figures are written the
way people say them and no meaning is carried by emoji or layout. Customer and
rep actions both format through these helpers; the sentences themselves are
domain responses in ``domain/``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crm_ml import sales, support
    from crm_ml.identity import Identity

__all__ = [
    "a_or_an",
    "cap",
    "catalogue_name",
    "order_facts",
    "product_name",
    "reason_phrase",
    "say_count",
    "say_date",
    "say_list",
    "say_money",
    "say_percent",
    "say_price",
    "scope_of",
    "whose",
]


def cap(text: str) -> str:
    """First letter upper-cased, the rest untouched (unlike ``str.capitalize``)."""
    return text[:1].upper() + text[1:]


def say_list(items: Sequence[str]) -> str:
    """"a", "a and b", "a, b and c" (empty items are left out)."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def say_date(day: dt.date | dt.datetime) -> str:
    """"12 December 2011": reads well on screen and by voice."""
    return f"{day.day} {day:%B %Y}"


def say_count(n: int, singular: str, plural: str | None = None) -> str:
    """1 -> "1 lead", 6300 -> "6,300 leads"."""
    return f"{n:,} {singular if n == 1 else (plural or singular + 's')}"


def say_money(amount: float) -> str:
    """Pounds, rounded the way people say them: "£2.15 million", "£845 thousand", "£1,234".

    For figures (forecasts, spend); an amount a customer pays or gets back is
    :func:`say_price`.
    """
    sign = "minus " if amount < 0 else ""
    x = abs(amount)
    if x >= 1_000_000:
        text = f"{x / 1_000_000:.2f}".rstrip("0").rstrip(".")
        return f"{sign}£{text} million"
    if x >= 100_000:
        return f"{sign}£{round(x / 1000):,} thousand"
    if x >= 100:
        return f"{sign}£{round(x):,}"
    return f"{sign}£{x:,.2f}"


def say_price(amount: float) -> str:
    """An exact amount to the penny, without sign: "£1,234.50".

    For what a customer pays or gets back (a credit note's negative total is
    said as the amount credited).
    """
    return f"£{abs(amount):,.2f}"


def say_percent(p: float) -> str:
    """0.873 -> "87%", with "under 1%" and "over 99%" at the ends."""
    pct = p * 100
    if 0 < pct < 1:
        return "under 1%"
    if 99 < pct < 100:
        return "over 99%"
    return f"{round(pct)}%"


def a_or_an(word: str) -> str:
    """"a 35% chance", "an 87% chance", "an 11% chance": the article of the spoken word."""
    number = word.split("%")[0]
    vowel = number.startswith("8") or number in {"11", "18"} or word[:1].lower() in "aeiou"
    return f"{'an' if vowel else 'a'} {word}"


REASONS_SHOWN = 2
"""How many reasons a one-line answer gives (a lead's, a churn risk's)."""


def reason_phrase(reasons: Sequence[sales.Reason], *, effect: str | None = None,
                  limit: int = REASONS_SHOWN) -> str:
    """The first ``limit`` reasons (of one effect, when given) joined as a phrase."""
    chosen = [r.text for r in reasons if effect is None or r.effect in {effect, None}]
    return say_list(chosen[:limit])


def product_name(description: str) -> str:
    """A product as customers hear it: sentence case, tidy commas.

    Online Retail II descriptions are upper case: "PAPER CRAFT , LITTLE BIRDIE"
    -> "Paper craft, little birdie". Every description is sentence-cased.
    """
    text = " ".join(description.replace(" ,", ",").split())
    return text[:1].upper() + text[1:].lower()


def catalogue_name(description: str) -> str:
    """A product as reps see it in the catalogue: only shouting is lowered.

    "WHITE HANGING HEART" -> "White hanging heart"; a description that is not
    all capitals keeps its own case and punctuation (whitespace collapsed).
    """
    text = " ".join(description.split())
    return cap(text.lower()) if text.isupper() else text


def scope_of(identity: Identity) -> str:
    """``own`` for a rep, ``team`` for a manager, ``all`` otherwise."""
    return {"rep": "own", "manager": "team"}.get(identity.role, "all")


def whose(scope: str, thing: str) -> str:
    """"your leads", "your team's leads", "our leads" for scope own/team/all."""
    return {"own": f"your {thing}", "team": f"your team's {thing}"}.get(scope, f"our {thing}")


def order_facts(order: support.OrderSummary) -> dict[str, str]:
    """The variables of the order responses: ``order_id``, ``date``, ``items``, ``total``."""
    return {"order_id": order.order_id, "date": say_date(order.invoiced_at),
            "items": say_count(order.items, "item"), "total": say_price(order.total)}
