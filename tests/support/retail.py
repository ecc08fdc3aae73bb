"""Small hand-made Online Retail II tables for loader tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from crm_ml.datasets import RETAIL_COLUMNS

ROWS = [
    # Invoice, StockCode, Description, Quantity, InvoiceDate, Price, Customer ID, Country
    ("500001", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 6, "2010-01-04 10:00", 2.55, 12347, "Iceland"),
    ("500001", "71053", "WHITE METAL LANTERN", 6, "2010-01-04 10:00", 3.39, 12347, "Iceland"),
    ("500001", "POST", "POSTAGE", 1, "2010-01-04 10:00", 18.00, 12347, "Iceland"),
    ("500002", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 12, "2010-02-01 09:30", 2.55, 12348, "Finland"),
    ("500003", "22423", "REGENCY CAKESTAND 3 TIER", 2, "2010-02-02 11:00", 12.75, None, "United Kingdom"),
    ("C500004", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", -2, "2010-02-03 12:00", 2.55, 12348, "Finland"),
    ("C500004", "M", "Manual", -1, "2010-02-03 12:00", 5.00, 12348, "Finland"),
    ("500005", "22423", "REGENCY CAKESTAND 3 TIER", -3, "2010-02-04 12:00", 0.0, 12349, "Italy"),
    ("500006", "BANK CHARGES", "Bank Charges", 1, "2010-02-05 12:00", 15.0, 12349, "Italy"),
    ("500007", "22423", "REGENCY CAKESTAND 3 TIER", 1, "2010-03-01 08:00", 12.75, 12350, "Norway"),
]


def retail_frame(rows: list[tuple] | None = None) -> pd.DataFrame:
    """Return ``rows`` in :func:`crm_ml.datasets.read_online_retail`'s shape."""
    df = pd.DataFrame(rows or ROWS, columns=RETAIL_COLUMNS)
    df["InvoiceDate"] = pd.to_datetime(df["InvoiceDate"])
    df["Customer ID"] = df["Customer ID"].astype("Int64")
    return df


def retail_crm(workdir: Path) -> str:
    """A migrated SQLite CRM in ``workdir`` holding :data:`ROWS`; its URL (end-to-end stacks)."""
    from crm_ml import loader
    from crm_ml.db import migrate
    from crm_ml.db.session import get_engine

    url = f"sqlite:///{workdir / 'crm.db'}"
    migrate.upgrade(url)
    with get_engine(url).begin() as conn:
        loader.load_retail(conn, loader.prepare_retail(retail_frame()), data_hash="e2e")
    get_engine(url).dispose()
    return url
