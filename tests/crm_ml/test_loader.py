"""Loader: every row kept or dropped for a named reason, idempotent, all or nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from sqlalchemy import func, select

from crm_ml import loader
from crm_ml.db import models as m
from crm_ml.db.session import get_engine
from tests.conftest import ROOT
from tests.support.retail import retail_frame


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The same tests on a SQLite file and on the loopback PostgreSQL server."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


def _count(url: str, table: type[m.Base]) -> int:
    with get_engine(url).connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_prepare_retail_counts_every_decision() -> None:
    t = loader.prepare_retail(retail_frame())
    s = t.summary
    assert s.rows_read == 10
    assert s.dropped == {
        "no_customer_id": 1,
        "cancellation_fee_lines": 1,
        "non_product_code": 2,
        "non_positive_quantity_or_price": 1,
    }
    assert s.kept == {"cancellation_lines": 1, "sale_lines": 4}
    assert s.rows_kept + sum(s.dropped.values()) == s.rows_read
    assert s.facts["customers"] == 4
    assert s.facts["customers_with_valid_purchase"] == 4  # MANIFEST's definition
    assert s.facts["customers_with_product_purchase"] == 3  # 12349 only paid bank charges
    assert sorted(t.products["stock_code"]) == ["22423", "71053", "85123A"]
    orders = t.orders.set_index("id")
    assert orders.loc["500001", "total"] == pytest.approx(6 * 2.55 + 6 * 3.39)
    assert orders.loc["C500004", "kind"] == "cancellation"
    assert orders.loc["C500004", "status"] == "cancelled"
    assert orders.loc["500002", "kind"] == "sale"
    assert set(t.lines["order_id"]) == {"500001", "500002", "C500004", "500007"}


def test_non_product_codes() -> None:
    codes = pd.Series(["POST", "85123A", "gift_0001_20", "TEST001", "DCGS0058", "m", "C2"])
    assert loader.is_non_product(codes).tolist() == [True, False, True, True, False, True, True]


def test_load_writes_tables_and_assigns_reps(db_url: str) -> None:
    tables = loader.prepare_retail(retail_frame())
    with get_engine(db_url).begin() as conn:
        s = loader.load_retail(conn, tables, data_hash="h1")
    assert not s.skipped
    assert _count(db_url, m.Customer) == 4
    assert _count(db_url, m.Order) == 4
    assert _count(db_url, m.OrderLine) == 5
    assert _count(db_url, m.Product) == 3
    with get_engine(db_url).connect() as conn:
        reps = dict(conn.execute(select(m.SalesRep.handle, m.SalesRep.role)).all())
        owners = conn.execute(
            select(m.Account.customer_id, m.Account.rep_id).order_by(m.Account.customer_id)
        ).all()
        email = conn.execute(select(m.Customer.email).where(m.Customer.id == 12347)).scalar_one()
    assert reps["manager:1"] == "manager"
    assert sorted(h for h, r in reps.items() if r == "rep") == [f"rep:{i}" for i in range(1, 9)]
    assert owners == [(12347, 1), (12348, 2), (12349, 3), (12350, 4)]
    assert email.endswith("@example.com") and "12347" in email


def test_loading_twice_changes_nothing(db_url: str) -> None:
    for expected_skip in (False, True):
        tables = loader.prepare_retail(retail_frame())
        with get_engine(db_url).begin() as conn:
            assert loader.load_retail(conn, tables, data_hash="same").skipped is expected_skip
        assert _count(db_url, m.OrderLine) == 5
        assert _count(db_url, m.DataLoad) == 1


def test_interrupted_load_leaves_nothing(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(loader, "_insert_lines", boom)
    tables = loader.prepare_retail(retail_frame())
    with pytest.raises(RuntimeError), get_engine(db_url).begin() as conn:
        loader.load_retail(conn, tables, data_hash="h")
    for table in (m.Customer, m.Order, m.Product, m.SalesRep, m.DataLoad, m.Account):
        assert _count(db_url, table) == 0, table.__tablename__


def test_leads_ids_owners_and_outcomes(db_url: str) -> None:
    bank = pd.DataFrame({"age": [30, 41, 52], "duration": [100, 200, 300],
                         "y": ["no", "yes", "no"]})
    xedu = pd.DataFrame({"Lead Number": [660737, 660728], "TotalVisits": [5.0, float("nan")],
                         "Converted": [1, 0]})
    records, summary = loader.prepare_leads(bank, xedu)
    with get_engine(db_url).begin() as conn:
        loader.load_leads(conn, records, summary, data_hash="x")
    with get_engine(db_url).connect() as conn:
        rows = conn.execute(select(m.Lead.id, m.Lead.source, m.Lead.external_ref, m.Lead.rep_id,
                                m.Lead.converted, m.Lead.features).order_by(m.Lead.id)).all()
    assert [r.id for r in rows] == [1, 2, 3, 4, 5]
    assert [r.rep_id for r in rows] == [1, 2, 3, 4, 5]
    assert [r.converted for r in rows] == [False, True, False, True, False]
    assert rows[3].source == "x_education" and rows[3].external_ref == "660737"
    assert rows[4].features["TotalVisits"] is None  # NaN stored as null
    assert "y" not in rows[0].features and rows[0].features["duration"] == 100


@pytest.mark.slow
def test_full_online_retail_through_the_cli(tmp_path) -> None:
    """`crm-ml load` on the whole data: the counts of MANIFEST.md, then idempotent."""
    env = {**os.environ, "CRM_DATABASE_URL": f"sqlite:///{tmp_path / 'full.db'}"}
    cmd = [sys.executable, "-m", "crm_ml.cli", "load", "--json"]
    first = json.loads(subprocess.run(cmd, env=env, cwd=ROOT, check=True,
                                      capture_output=True, text=True).stdout)
    retail = next(s for s in first if s["dataset"] == "online_retail_ii")
    assert retail["rows_read"] == 1_044_847
    assert retail["facts"]["distinct_customer_ids"] == 5_942
    assert retail["facts"]["invoices"] == 53_628
    assert retail["facts"]["customers_with_valid_purchase"] == 5_878
    assert retail["facts"]["valid_purchase_rows"] == 791_044
    assert retail["rows_kept"] + sum(retail["dropped"].values()) == 1_044_847
    leads = next(s for s in first if s["dataset"] == "leads")
    assert leads["kept"] == {"bank_marketing": 41_188, "x_education": 9_240}
    url = env["CRM_DATABASE_URL"]
    assert _count(url, m.Customer) == 5_942
    assert _count(url, m.OrderLine) == retail["rows_kept"]
    assert _count(url, m.Lead) == 50_428
    second = json.loads(subprocess.run(cmd, env=env, cwd=ROOT, check=True,
                                       capture_output=True, text=True).stdout)
    assert all(s["skipped"] for s in second)
    assert _count(url, m.OrderLine) == retail["rows_kept"]
    assert _count(url, m.DataLoad) == 2
