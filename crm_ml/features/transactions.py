"""Transactions: one row per sold product line, from the CRM or from the raw files.

Segmentation, recommendations, churn and forecasting all start from the same
table, whatever its origin:

========== ===========================================================
column      meaning
========== ===========================================================
invoice     order id (Online Retail invoice number), str
customer_id Online Retail customer id, int64
invoiced_at invoice time, datetime64
stock_code  product code, str
quantity    units, int64 (> 0)
unit_price  price of one unit, float64 (> 0)
amount      ``quantity * unit_price``, float64
country     the order's country, str
kind        ``"sale"`` (only sales are returned)
========== ===========================================================

:func:`read_transactions` reads it from the CRM with SQLAlchemy 2; the loader
puts only valid product lines of sales in ``order_lines``.
:func:`clean_online_retail` builds the same table from
:func:`crm_ml.datasets.read_online_retail`, so that tests and benchmarks can run
from the raw files without a CRM.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

TRANSACTION_COLUMNS = [
    "invoice", "customer_id", "invoiced_at", "stock_code", "quantity", "unit_price", "amount",
    "country", "kind",
]

#: Stock codes of Online Retail II that are not products: postage, carriage,
#: manual entries, discounts, bank charges, adjustments and test items.
NON_PRODUCT_CODES: frozenset[str] = frozenset({
    "POST", "DOT", "C2", "M", "D", "CRUK", "BANK CHARGES", "AMAZONFEE", "ADJUST", "ADJUST2",
    "TEST001", "TEST002", "S", "B",
})

_GIFT_VOUCHER = re.compile(r"^gift_", re.IGNORECASE)


def is_product_code(code: str) -> bool:
    """Tell whether an Online Retail stock code names a real product.

    Args:
        code: The stock code as written in the data (``85123A``, ``POST``...).

    Returns:
        False for postage, fees, manual lines, adjustments, tests and gift vouchers.
    """
    code = code.strip()
    return bool(code) and code.upper() not in NON_PRODUCT_CODES and not _GIFT_VOUCHER.match(code)


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Give the transaction table its column order and dtypes."""
    out = pd.DataFrame({
        "invoice": df["invoice"].astype(str).to_numpy(),
        "customer_id": df["customer_id"].astype("int64").to_numpy(),
        "invoiced_at": pd.to_datetime(df["invoiced_at"]).to_numpy(),
        "stock_code": df["stock_code"].astype(str).to_numpy(),
        "quantity": df["quantity"].astype("int64").to_numpy(),
        "unit_price": df["unit_price"].astype("float64").to_numpy(),
        "country": df["country"].astype(str).to_numpy(),
        "kind": df["kind"].astype(str).to_numpy(),
    })
    out.insert(6, "amount", out["quantity"] * out["unit_price"])
    return out.sort_values(["invoiced_at", "invoice"], kind="stable").reset_index(drop=True)


def clean_online_retail(raw: pd.DataFrame) -> pd.DataFrame:
    """Turn raw Online Retail II rows into the transaction table (valid sales only).

    Keeps the rows with a customer id, a positive quantity and price, an invoice
    that is not a cancellation (``C...``) or an adjustment (``A...``), and a
    product stock code (see :data:`NON_PRODUCT_CODES`). On the full data this
    leaves 788,206 rows of 5,852 customers: the 791,044 valid rows of MANIFEST.md
    minus 2,838 postage, carriage, manual, discount and fee lines.

    Args:
        raw: Output of :func:`crm_ml.datasets.read_online_retail` (or a slice of it).

    Returns:
        The transaction table, sorted by time.
    """
    invoice = raw["Invoice"].astype(str)
    codes = raw["StockCode"].astype(str)
    product = np.fromiter((is_product_code(c) for c in codes.unique()), dtype=bool)
    product_codes = set(codes.unique()[product])
    keep = (
        raw["Customer ID"].notna()
        & (raw["Quantity"] > 0)
        & (raw["Price"] > 0)
        & ~invoice.str.startswith(("C", "A"))
        & codes.isin(product_codes)
    )
    df = raw.loc[keep]
    logger.info("clean_online_retail: kept %d of %d rows", len(df), len(raw))
    return _typed(pd.DataFrame({
        "invoice": df["Invoice"],
        "customer_id": df["Customer ID"],
        "invoiced_at": df["InvoiceDate"],
        "stock_code": df["StockCode"].str.strip(),
        "quantity": df["Quantity"],
        "unit_price": df["Price"],
        "country": df["Country"],
        "kind": "sale",
    }))


def read_transactions(session: Any, *, since: Any | None = None) -> pd.DataFrame:
    """Read the sold product lines of the CRM.

    Args:
        session: An open SQLAlchemy session (the caller owns the transaction).
        since: When given, only orders invoiced at or after this time.

    Returns:
        The transaction table (see the module docstring), sales only, sorted by time.
    """
    from sqlalchemy import select

    from crm_ml.db.models import Order, OrderLine

    stmt = (
        select(
            Order.id.label("invoice"),
            Order.customer_id,
            Order.invoiced_at,
            OrderLine.stock_code,
            OrderLine.quantity,
            OrderLine.unit_price,
            Order.country,
            Order.kind,
        )
        .join(OrderLine, OrderLine.order_id == Order.id)
        .where(Order.kind == "sale", OrderLine.quantity > 0, OrderLine.unit_price > 0)
    )
    if since is not None:
        stmt = stmt.where(Order.invoiced_at >= since)
    rows = session.execute(stmt).all()
    df = pd.DataFrame(rows, columns=[
        "invoice", "customer_id", "invoiced_at", "stock_code", "quantity", "unit_price",
        "country", "kind",
    ])
    if df.empty:
        return pd.DataFrame({
            "invoice": pd.Series(dtype=str), "customer_id": pd.Series(dtype="int64"),
            "invoiced_at": pd.Series(dtype="datetime64[ns]"), "stock_code": pd.Series(dtype=str),
            "quantity": pd.Series(dtype="int64"), "unit_price": pd.Series(dtype="float64"),
            "amount": pd.Series(dtype="float64"), "country": pd.Series(dtype=str),
            "kind": pd.Series(dtype=str),
        })
    df["unit_price"] = df["unit_price"].astype(float)  # Numeric columns arrive as Decimal
    logger.info("read_transactions: %d lines", len(df))
    return _typed(df)


def transactions_hash(df: pd.DataFrame) -> str:
    """Return a sha256 of the transaction table, used as the models' data hash.

    Args:
        df: A transaction table.
    """
    import hashlib

    h = hashlib.sha256()
    cols = ["invoice", "customer_id", "invoiced_at", "stock_code", "quantity", "unit_price"]
    h.update(pd.util.hash_pandas_object(df[cols], index=False).to_numpy().tobytes())
    return h.hexdigest()
