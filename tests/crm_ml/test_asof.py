"""crm_ml.asof: the as-of date from the setting, the loaded data or the calendar."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from crm_ml import asof
from crm_ml.db import models as m
from crm_ml.db.session import session_scope


def _crm(url: str, last_order: dt.datetime) -> None:
    with session_scope(url) as s:
        s.add(m.Customer(id=12347, name="Acme", email="a@example.com", country="France"))
        s.flush()
        s.add(m.Order(id="1", customer_id=12347, invoiced_at=last_order, country="France",
                      kind="sale", status="delivered", total=10))


def test_demo_data_gives_its_last_day(sqlite_url: str, env: pytest.MonkeyPatch) -> None:
    env.delenv("CRM_TODAY", raising=False)
    _crm(sqlite_url, dt.datetime(2011, 12, 9, 12, 50))
    with session_scope(sqlite_url) as s:
        info = asof.as_of(s, calendar=dt.date(2026, 12, 5))
        assert (info.day, info.source) == (dt.date(2011, 12, 9), "data")
        assert asof.stated(s, calendar=dt.date(2026, 12, 5)) == (
            "As of 9 December 2011, the last day of the loaded data.")


def test_recent_data_gives_the_calendar(sqlite_url: str, env: pytest.MonkeyPatch) -> None:
    env.delenv("CRM_TODAY", raising=False)
    _crm(sqlite_url, dt.datetime(2026, 11, 30))
    with session_scope(sqlite_url) as s:
        assert asof.today(s, calendar=dt.date(2026, 12, 5)) == dt.date(2026, 12, 5)
        assert asof.stated(s, calendar=dt.date(2026, 12, 5)) is None


def test_setting_wins(sqlite_url: str, env: pytest.MonkeyPatch) -> None:
    env.setenv("CRM_TODAY", "2011-06-30")
    _crm(sqlite_url, dt.datetime(2011, 12, 9))
    with session_scope(sqlite_url) as s:
        info = asof.as_of(s, calendar=dt.date(2026, 12, 5))
        assert (info.day, info.source) == (dt.date(2011, 6, 30), "setting")
        assert "30 June 2011" in (asof.stated(s, calendar=dt.date(2026, 12, 5)) or "")


def test_bad_setting_is_ignored(env: pytest.MonkeyPatch) -> None:
    env.setenv("CRM_TODAY", "next tuesday")
    assert asof.today(None, calendar=dt.date(2026, 1, 2)) == dt.date(2026, 1, 2)


def test_empty_crm_gives_the_calendar(sqlite_url: str, env: pytest.MonkeyPatch,
                                      tmp_path: Path) -> None:
    env.delenv("CRM_TODAY", raising=False)
    with session_scope(sqlite_url) as s:
        assert asof.as_of(s, calendar=dt.date(2026, 1, 2)).source == "calendar"
