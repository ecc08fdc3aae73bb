"""Small hand-made Online Retail II tables for loader tests."""

from __future__ import annotations

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
