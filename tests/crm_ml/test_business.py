"""crm_ml.sales.business: known answers from the Online Retail II files, and who may ask.

The known answers are computed here with pandas straight from the dataset files,
cleaned as the loader's docstring says (customer id present; cancellations kept
with their negative quantities; fee and postage codes dropped; other lines with a
non-positive quantity or price dropped), and compared with what the CRM at
var/crm.db (``make load``) answers in SQL.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import select

from crm_ml import asof, periods
from crm_ml.authz import Forbidden
from crm_ml.config import PROJECT_ROOT
from crm_ml.db import models as m
from crm_ml.db.session import session_scope
from crm_ml.identity import Identity
from crm_ml.sales import business

CRM = PROJECT_ROOT / "var" / "crm.db"
URL = f"sqlite:///{CRM}"
REP2 = Identity("rep", 2)
MANAGER = Identity("manager", 1)
FEES = {"POST", "DOT", "M", "m", "C2", "D", "S", "B", "BANK CHARGES", "ADJUST", "ADJUST2",
        "AMAZONFEE", "PADS", "CRUK", "TEST001", "TEST002"}

pytestmark = pytest.mark.skipif(not CRM.is_file(), reason="var/crm.db not loaded (make load)")


@pytest.fixture(scope="module")
def lines() -> pd.DataFrame:
    """Kept lines of Online Retail II, read from the files, with an ``amount`` column."""
    from crm_ml import datasets

    try:
        df = datasets.read_online_retail()
    except FileNotFoundError as exc:  # pragma: no cover - the datasets folder is absent
        pytest.skip(f"Online Retail II files not found: {exc}")
    df = df[df["Customer ID"].notna()]
    fee = df["StockCode"].isin(FEES) | df["StockCode"].str.startswith(("gift_0001_", "TEST"))
    cancel = df["Invoice"].str.startswith("C")
    sale = ~cancel & (df["Quantity"] > 0) & (df["Price"] > 0)
    df = df[~fee & (cancel | sale)].copy()
    df["cancel"] = df["Invoice"].str.startswith("C")
    df["amount"] = df["Quantity"] * df["Price"]
    return df


def _between(df: pd.DataFrame, start: str, end: str) -> pd.DataFrame:
    return df[(df["InvoiceDate"] >= start) & (df["InvoiceDate"] < end)]


def test_revenue_of_november_2011(lines: pd.DataFrame) -> None:
    nov = _between(lines, "2011-11-01", "2011-12-01")
    with session_scope(URL) as s:
        period = periods.parse("november 2011", today=asof.today(s))
        got = business.revenue(session=s, identity=REP2, period=period)
    assert got.totals.revenue == pytest.approx(nov["amount"].sum(), abs=1.0)
    assert got.totals.orders == nov.loc[~nov["cancel"], "Invoice"].nunique()
    assert got.totals.customers == nov.loc[~nov["cancel"], "Customer ID"].nunique()


def test_revenue_by_country_2011(lines: pd.DataFrame) -> None:
    year = _between(lines, "2011-01-01", "2012-01-01")
    # the order's country is its invoice's (first line's) country
    first = year.groupby("Invoice")["Country"].transform("first")
    expected = year.groupby(first)["amount"].sum().sort_values(ascending=False)
    with session_scope(URL) as s:
        got = business.revenue(session=s, identity=MANAGER,
                               period=periods.parse("2011", today=dt.date(2011, 12, 9)),
                               group_by="country", limit=25)
    assert got.groups == len(expected)
    assert [r.name for r in got.rows[:10]] == list(expected.index[:10])
    for row in got.rows:
        assert row.figures.revenue == pytest.approx(expected[row.name], abs=1.0)
    assert got.totals.revenue == pytest.approx(year["amount"].sum(), abs=5.0)


def test_top_5_products_in_germany_2011(lines: pd.DataFrame) -> None:
    de = _between(lines, "2011-01-01", "2012-01-01")
    de = de[de.groupby("Invoice")["Country"].transform("first") == "Germany"]
    expected = de.groupby("StockCode")["amount"].sum().sort_values(ascending=False).head(5)
    by_units = de.groupby("StockCode")["Quantity"].sum().sort_values(ascending=False).head(5)
    with session_scope(URL) as s:
        period = periods.parse("2011", today=dt.date(2011, 12, 9))
        got = business.top_products(session=s, identity=REP2, period=period, country="Germany")
        units = business.top_products(session=s, identity=REP2, period=period,
                                      country="Germany", by="quantity")
    assert [r.key for r in got] == list(expected.index)
    assert [r.revenue for r in got] == pytest.approx(list(expected), abs=0.5)
    assert [r.quantity for r in units] == list(by_units)


def test_customers_inactive_180_days(lines: pd.DataFrame) -> None:
    with session_scope(URL) as s:
        today = asof.today(s)
        got = business.inactive_customers(session=s, identity=Identity("agent", 1), days=180)
        rep = business.inactive_customers(session=s, identity=REP2, days=180, limit=25)
        owners = dict(s.execute(select(m.Account.customer_id, m.Account.rep_id)).all())
    since = pd.Timestamp(today + dt.timedelta(days=1) - dt.timedelta(days=180))
    last = lines[~lines["cancel"]].groupby("Customer ID")["InvoiceDate"].max()
    expected = set(last[last < since].index.astype(int))
    assert today == dt.date(2011, 12, 9) or asof.as_of().source == "setting"
    assert got.since == since.date()
    assert got.count == len(expected)
    mine = {c for c in expected if owners.get(c) == 2}
    assert rep.count == len(mine)
    assert {c[0] for c in rep.customers} <= mine


def test_customer_lists_are_the_callers() -> None:
    with session_scope(URL) as s:
        rep = business.top_customers(session=s, identity=REP2, limit=10)
        team = business.top_customers(session=s, identity=MANAGER, limit=10)
        owners = dict(s.execute(select(m.Account.customer_id, m.Account.rep_id)).all())
        count, leads = business.leads_filtered(session=s, identity=REP2,
                                               source="bank_marketing", min_score=0.5)
        lead_owner = dict(s.execute(select(m.Lead.id, m.Lead.rep_id)
                                    .where(m.Lead.id.in_([x.lead_id for x in leads]))).all())
    assert rep and all(owners[int(r.key)] == 2 for r in rep)
    assert team[0].revenue >= rep[0].revenue
    assert [r.revenue for r in rep] == sorted((r.revenue for r in rep), reverse=True)
    assert count >= len(leads) > 0
    assert all(x.source == "bank_marketing" and (x.score or 0) >= 0.5 for x in leads)
    assert set(lead_owner.values()) == {2}


@pytest.mark.parametrize("who", [Identity("customer", 12347), Identity("anonymous", None)])
def test_customers_get_nothing(who: Identity) -> None:
    with session_scope(URL) as s:
        for call in (business.revenue, business.top_products, business.top_customers,
                     business.inactive_customers):
            with pytest.raises(Forbidden):
                call(session=s, identity=who)
        with pytest.raises(Forbidden):
            business.leads_filtered(session=s, identity=who)


def test_breakdowns_and_change() -> None:
    today = dt.date(2011, 12, 9)
    with session_scope(URL) as s:
        months = business.revenue(session=s, identity=REP2,
                                  period=periods.parse("this year", today=today),
                                  group_by="month")
        nov = periods.parse("last month", today=today)
        change = business.revenue_change(session=s, identity=REP2, period=nov,
                                         before=periods.previous(nov))
        by_rep = business.revenue(session=s, identity=REP2, period=nov, group_by="rep")
        assert business.canonical_country("uk", session=s) == "United Kingdom"
        assert business.canonical_country("germany", session=s) == "Germany"
        assert business.canonical_country("Narnia", session=s) is None
    assert [r.name for r in months.rows][:2] == ["January 2011", "February 2011"]
    assert len(months.rows) == 12
    assert sum(r.figures.revenue for r in months.rows) == pytest.approx(
        months.totals.revenue, abs=1.0)
    assert change.current.totals.revenue == by_rep.totals.revenue
    assert change.change == pytest.approx(
        change.current.totals.revenue / change.before.totals.revenue - 1)
    assert business.canonical_source("Bank Marketing") == "bank_marketing"
    assert business.canonical_source("twitter") is None


# ------------------------------------------------------------- questions in words

from crm_ml.sales import questions  # noqa: E402


@pytest.mark.parametrize(("text", "expected"), [
    ("top 3 products by quantity", {"n": 3, "by": "quantity"}),
    ("top ten customers by number of orders", {"n": 10, "by": "orders"}),
    ("revenue by country", {"group_by": "country"}),
    ("monthly revenue this year", {"group_by": "month"}),
    ("sales per rep", {"group_by": "rep"}),
    ("revenue last month vs the month before", {"compare": True}),
    ("leads from bank marketing with a score above 80", {"source": "bank_marketing",
                                                         "min_score": 0.8}),
    ("x education leads with score between 50 and 70", {"source": "x_education",
                                                        "min_score": 0.5, "max_score": 0.7}),
    ("qualified leads scoring under 0.3", {"status": "qualified", "max_score": 0.3}),
    ("top 500 products", {"n": business.MAX_ROWS}),
])
def test_terms_of(text: str, expected: dict) -> None:
    terms = questions.terms_of(text)
    for key, value in expected.items():
        assert getattr(terms, key) == pytest.approx(value) if isinstance(value, float) else \
            getattr(terms, key) == value, (key, terms)


def test_questions_ask_back_instead_of_guessing() -> None:
    with session_scope(URL) as s:
        narnia = questions.ask_top_products(session=s, identity=REP2,
                                            text="top products in narnia")
        germany = questions.ask_top_products(session=s, identity=REP2,
                                             text="top products in germany")
        mine = questions.ask_top_customers(session=s, identity=REP2,
                                           text="top customers in my accounts")
        segment = questions.ask_revenue(session=s, identity=REP2,
                                        text="revenue from champions last month")
        unclear = questions.ask_revenue(session=s, identity=REP2, text="revenue",
                                        period="next quarter")
        october = questions.ask_revenue(session=s, identity=REP2,
                                        text="how much did we make in october")
    assert isinstance(narnia.problem, questions.UnknownCountry)
    assert narnia.problem.raw == "narnia" and narnia.problem.known[0] == "United Kingdom"
    assert narnia.result is None
    assert germany.country == "Germany" and germany.problem is None
    assert mine.problem is None and mine.country is None
    assert segment.extra == {"segment": "Champions"} and segment.period.label == "November 2011"
    assert isinstance(unclear.problem, questions.UnclearPeriod)
    assert october.period.label == "October 2011"
    assert october.as_of_note == "As of 9 December 2011, the last day of the loaded data."


def test_inactive_since_the_start_of_a_period() -> None:
    with session_scope(URL) as s:
        year = questions.ask_inactive_customers(session=s, identity=REP2,
                                                text="customers who have not purchased this "
                                                     "year", period="this year")
        months = questions.ask_inactive_customers(session=s, identity=REP2,
                                                  text="which customers haven't ordered in 6 "
                                                       "months", period="6 months")
        ahead = questions.ask_inactive_customers(session=s, identity=REP2, text="inactive",
                                                 period="next quarter")
    assert year.result.since == dt.date(2011, 1, 1)
    assert months.result.since == dt.date(2011, 6, 10)
    assert 0 < year.result.count < months.result.count
    assert isinstance(ahead.problem, questions.UnclearPeriod)
