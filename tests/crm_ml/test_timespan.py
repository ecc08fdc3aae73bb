"""crm_ml.timespan: time spans in words as whole weeks (1..52)."""

from __future__ import annotations

import pytest

from crm_ml import timespan
from crm_ml.timespan import TimeSpanError


@pytest.mark.parametrize("text,weeks", [
    ("next quarter", 13), ("3 months", 13), ("next 8 weeks", 8), ("q1", 13),
    ("Q4 2012", 13), ("q2 '12", 13), ("this quarter", 13), ("coming quarter", 13),
    ("first quarter", 13), ("1st quarter", 13), ("next month", 4), ("next 6 months", 26),
    ("half a year", 26), ("next year", 52), ("this year", 52), ("12 months", 52),
    ("next week", 1), ("this week", 1), ("13 weeks", 13), ("8wks", 8), ("next 12 wks", 12),
    ("next 90 days", 13), ("10 days", 2), ("a fortnight", 2), ("next few weeks", 3),
    ("two weeks", 2), ("twenty six weeks", 26), ("1.5 months", 7), ("52 weeks", 52),
    ("for the next 4 weeks", 4), ("NEXT QUARTER", 13),
])
def test_spans_in_weeks(text: str, weeks: int) -> None:
    span = timespan.parse(text)
    assert span.weeks == weeks
    assert span.text == text
    assert not span.past


def test_looking_back_is_flagged() -> None:
    assert timespan.parse("last 3 months") == timespan.TimeSpan(13, True, "last 3 months")
    assert timespan.parse("past week").past


@pytest.mark.parametrize("text", ["banana", "q5", "", "   ", "next", "lots of weeks",
                                  "next tuesday", "3", "weeks weeks 3"])
def test_nonsense_is_unclear(text: str) -> None:
    with pytest.raises(TimeSpanError) as err:
        timespan.parse(text)
    assert err.value.reason == "unclear"
    assert err.value.weeks is None
    assert "weeks, months or quarters" in str(err.value)


@pytest.mark.parametrize("text,reason,weeks", [
    ("2 years", "too_long", 104), ("53 weeks", "too_long", 53), ("400 days", "too_long", 58),
    ("0 weeks", "too_short", 0), ("0 days", "too_short", 0),
])
def test_out_of_bounds(text: str, reason: str, weeks: int) -> None:
    with pytest.raises(TimeSpanError) as err:
        timespan.parse(text)
    assert (err.value.reason, err.value.weeks) == (reason, weeks)
    assert "between 1 and 52 weeks" in str(err.value)


def test_weeks_defaults_without_a_span() -> None:
    assert timespan.weeks(None) == 13
    assert timespan.weeks("  ", default=4) == 4
    assert timespan.weeks("next 8 weeks") == 8
    with pytest.raises(TimeSpanError):
        timespan.weeks("forever")
