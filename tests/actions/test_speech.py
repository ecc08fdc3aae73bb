"""actions.speech: figures, dates, lists and product names that read well aloud."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from actions.speech import (
    a_or_an,
    catalogue_name,
    product_name,
    say_count,
    say_date,
    say_list,
    say_money,
    say_percent,
    say_price,
)
from tests.actions.wording import responses


def test_formatting_reads_well_aloud() -> None:
    assert product_name("PAPER CRAFT , LITTLE BIRDIE") == "Paper craft, little birdie"
    assert say_list(["a"]) == "a" and say_list(["a", "b", "c"]) == "a, b and c"


def test_customers_and_reps_hear_products_named_their_own_way() -> None:
    """Customers: always sentence case, tidy commas; reps: the catalogue's own case."""
    assert product_name("Bank Charges") == "Bank charges"
    assert catalogue_name("Bank Charges") == "Bank Charges"
    assert catalogue_name("WHITE  HANGING HEART") == "White hanging heart"
    assert catalogue_name("PAPER CRAFT , LITTLE BIRDIE") == "Paper craft , little birdie"


def test_amounts_exact_for_customers_rounded_for_figures() -> None:
    assert say_price(-1234.5) == "£1,234.50"
    assert say_money(1234.5) == "£1,234"


def test_counts_and_dates() -> None:
    assert say_count(2, "other line") == "2 other lines"
    assert say_date(dt.datetime(2010, 12, 1, 8, 26)) == "1 December 2010"
    assert say_date(dt.date(2011, 12, 9)) == "9 December 2011"


@pytest.mark.parametrize("amount,words", [
    (2_154_321.0, "£2.15 million"), (3_000_000.0, "£3 million"), (845_300.0, "£845 thousand"),
    (12_345.6, "£12,346"), (99.5, "£99.50"), (-1200.0, "minus £1,200"),
])
def test_money_in_words(amount: float, words: str) -> None:
    assert say_money(amount) == words


def test_articles_follow_the_spoken_number() -> None:
    assert [a_or_an(w) for w in ("87%", "35%", "11%", "18%", "8%", "1%", "80%",
                                 "under 1%", "100%")] == [
        "an 87%", "a 35%", "an 11%", "an 18%", "an 8%", "a 1%", "an 80%", "an under 1%",
        "a 100%"]


def test_percent_and_lists() -> None:
    assert [say_percent(p) for p in (0.873, 0.004, 0.996, 0.0, 1.0)] == [
        "87%", "under 1%", "over 99%", "0%", "100%"]
    assert say_list(["a", "b", "c"]) == "a, b and c"
    assert say_count(1, "lead") == "1 lead" and say_count(6300, "lead") == "6,300 leads"


def test_every_response_the_actions_name_is_in_the_domain() -> None:
    """A response named in full in actions/ exists in domain/ (others are built from
    a prefix, e.g. ``utter_order_status_<status>``, and are tested by their actions)."""
    actions = Path(__file__).resolve().parents[2] / "actions"
    named = {name for path in actions.glob("*.py")
             for name in re.findall(r'"(utter_[a-z_]+)"', path.read_text(encoding="utf-8"))}
    assert named and named <= set(responses()), sorted(named - set(responses()))
