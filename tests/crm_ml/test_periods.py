"""Periods in words as [start, end) date ranges, relative to the as-of date."""

from __future__ import annotations

import datetime as dt

import pytest

from crm_ml import periods

TODAY = dt.date(2011, 12, 9)
D = dt.date


@pytest.mark.parametrize(("text", "start", "end"), [
    ("last month", D(2011, 11, 1), D(2011, 12, 1)),
    ("in november 2011", D(2011, 11, 1), D(2011, 12, 1)),
    ("Nov 2011", D(2011, 11, 1), D(2011, 12, 1)),
    ("2011-11", D(2011, 11, 1), D(2011, 12, 1)),
    ("november", D(2011, 11, 1), D(2011, 12, 1)),
    ("december", D(2011, 12, 1), D(2011, 12, 10)),
    ("this month", D(2011, 12, 1), D(2011, 12, 10)),
    ("q3", D(2011, 7, 1), D(2011, 10, 1)),
    ("Q3 2010", D(2010, 7, 1), D(2010, 10, 1)),
    ("third quarter of 2010", D(2010, 7, 1), D(2010, 10, 1)),
    ("q4", D(2011, 10, 1), D(2011, 12, 10)),
    ("last quarter", D(2011, 7, 1), D(2011, 10, 1)),
    ("this year", D(2011, 1, 1), D(2011, 12, 10)),
    ("last year", D(2010, 1, 1), D(2011, 1, 1)),
    ("2010", D(2010, 1, 1), D(2011, 1, 1)),
    ("between 2011-01-01 and 2011-03-31", D(2011, 1, 1), D(2011, 4, 1)),
    ("from 1 march 2011 to 15 march 2011", D(2011, 3, 1), D(2011, 3, 16)),
    ("last 6 months", D(2011, 6, 10), D(2011, 12, 10)),
    ("past 30 days", D(2011, 11, 10), D(2011, 12, 10)),
    ("last two weeks", D(2011, 11, 26), D(2011, 12, 10)),
    ("yesterday", D(2011, 12, 8), D(2011, 12, 9)),
    ("last week", D(2011, 11, 28), D(2011, 12, 5)),
])
def test_parse(text: str, start: dt.date, end: dt.date) -> None:
    period = periods.parse(text, today=TODAY)
    assert (period.start, period.end) == (start, end)
    assert period.label


@pytest.mark.parametrize("text", ["", "blue", "last 500 years", "last 4000 days", "q5",
                                  "between 2011-03-01 and 2011-01-01", "x" * 200, "13/13/2011"])
def test_rejects(text: str) -> None:
    with pytest.raises(periods.PeriodError):
        periods.parse(text, today=TODAY)


def test_labels() -> None:
    assert periods.parse("last month", today=TODAY).label == "November 2011"
    assert "9 December 2011" in periods.parse("this year", today=TODAY).label


@pytest.mark.parametrize(("text", "start", "end"), [
    ("november 2011", D(2011, 10, 1), D(2011, 11, 1)),
    ("q1 2011", D(2010, 10, 1), D(2011, 1, 1)),
    ("2011", D(2010, 1, 1), D(2011, 1, 1)),
    ("this year", D(2010, 1, 1), D(2010, 12, 10)),
    ("last 30 days", D(2011, 10, 11), D(2011, 11, 10)),
])
def test_previous(text: str, start: dt.date, end: dt.date) -> None:
    before = periods.previous(periods.parse(text, today=TODAY))
    assert (before.start, before.end) == (start, end)
