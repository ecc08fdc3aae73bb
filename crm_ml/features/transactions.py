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
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "NON_PRODUCT_CODES",
    "NON_PRODUCT_PREFIXES",
    "ONLINE_RETAIL_FILES",
    "TRANSACTION_COLUMNS",
    "clean_online_retail",
    "complete_weeks",
    "crm_or_files",
    "frame_hash",
    "is_product_code",
    "load_transactions",
    "read_transactions",
    "reference_date",
    "rfm_table",
    "transactions_hash",
    "weekly_revenue",
]

logger = logging.getLogger(__name__)

#: Where the training data came from when the CRM had none (recorded in ``params``).
ONLINE_RETAIL_FILES = "online_retail_ii files"

TRANSACTION_COLUMNS = [
    "invoice", "customer_id", "invoiced_at", "stock_code", "quantity", "unit_price", "amount",
    "country", "kind",
]

#: Stock codes of Online Retail II that are not goods: postage, carriage, manual
#: entries, discounts, samples, fees, adjustments, test items. The same list as
#: the CRM loader's (``crm_ml.loader.NON_PRODUCT_CODES``), compared case-blind.
NON_PRODUCT_CODES: frozenset[str] = frozenset({
    "POST", "DOT", "M", "C2", "D", "S", "B", "BANK CHARGES", "ADJUST", "ADJUST2", "AMAZONFEE",
    "PADS", "CRUK", "TEST001", "TEST002",
})
#: Prefixes of non-goods codes (gift vouchers, tests), as in the loader.
NON_PRODUCT_PREFIXES: tuple[str, ...] = ("gift_0001_", "TEST")


def is_product_code(code: str) -> bool:
    """Tell whether an Online Retail stock code names a real product.

    Args:
        code: The stock code as written in the data (``85123A``, ``POST``...).

    Returns:
        False for postage, fees, manual lines, adjustments, tests and gift vouchers.
    """
    return (bool(code.strip()) and code.strip().upper() not in NON_PRODUCT_CODES
            and not code.startswith(NON_PRODUCT_PREFIXES))


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
    leaves 788,189 rows of 5,852 customers: the 791,044 valid rows of MANIFEST.md
    minus 2,855 postage, carriage, manual, discount and fee lines.

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
        "stock_code": df["StockCode"],
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
    from sqlalchemy import Float, cast, select

    from crm_ml.db.models import Order, OrderLine

    columns = ["invoice", "customer_id", "invoiced_at", "stock_code", "quantity", "unit_price",
               "country", "kind"]
    stmt = (
        select(
            Order.id, Order.customer_id, Order.invoiced_at, OrderLine.stock_code,
            OrderLine.quantity,
            cast(OrderLine.unit_price, Float),  # floats, not one Decimal per row
            Order.country, Order.kind,
        )
        .join(OrderLine, OrderLine.order_id == Order.id)
        .where(Order.kind == "sale", OrderLine.quantity > 0, OrderLine.unit_price > 0)
    )
    if since is not None:
        stmt = stmt.where(Order.invoiced_at >= since)
    # Core execution on the session's connection: no ORM row processing per line.
    rows = session.connection().execute(stmt).all()
    if not rows:
        return pd.DataFrame({
            "invoice": pd.Series(dtype=str), "customer_id": pd.Series(dtype="int64"),
            "invoiced_at": pd.Series(dtype="datetime64[ns]"), "stock_code": pd.Series(dtype=str),
            "quantity": pd.Series(dtype="int64"), "unit_price": pd.Series(dtype="float64"),
            "amount": pd.Series(dtype="float64"), "country": pd.Series(dtype=str),
            "kind": pd.Series(dtype=str),
        })
    df = pd.DataFrame(dict(zip(columns, (list(c) for c in zip(*rows, strict=True)),
                               strict=True)))
    logger.info("read_transactions: %d lines", len(df))
    return _typed(df)


def crm_or_files(url: str | None, read: Callable[[Any], pd.DataFrame],
                 from_files: Callable[[pd.DataFrame], pd.DataFrame]) -> tuple[pd.DataFrame, str]:
    """Read a table from the CRM, or build it from the Online Retail II files if it is empty.

    Args:
        url: CRM database URL (None: the configured CRM).
        read: Reads the table in an open session (``read(session)``).
        from_files: Builds the same table from :func:`crm_ml.datasets.read_online_retail`.

    Returns:
        The table and where it came from: ``"crm"`` or :data:`ONLINE_RETAIL_FILES`.
    """
    from crm_ml.db import session_scope

    with session_scope(url) as s:
        table = read(s)
    if not table.empty:
        return table, "crm"
    from crm_ml.datasets import read_online_retail

    return from_files(read_online_retail()), ONLINE_RETAIL_FILES


def load_transactions(url: str | None, say: Callable[[str], None],
                      what: str) -> tuple[pd.DataFrame, str]:
    """Read the CRM's transactions, or the Online Retail II files when the CRM has none.

    Args:
        url: CRM database URL.
        say: Progress callback.
        what: Name of the model, for messages.

    Returns:
        The transaction table and where it came from (``"crm"`` or the files).
    """
    tx, source = crm_or_files(url, read_transactions, clean_online_retail)
    if source == "crm":
        say(f"{what}: {len(tx):,} sold lines from the CRM")
    else:
        logger.warning("%s: the CRM has no sales; training on the Online Retail II files", what)
        say(f"{what}: {len(tx):,} sold lines from the Online Retail II files (CRM empty)")
    return tx, source


def frame_hash(df: pd.DataFrame) -> str:
    """Return a sha256 of a frame's values, row by row (the index left out).

    Args:
        df: The frame, with its columns and rows in the order that defines it.
    """
    import hashlib

    return hashlib.sha256(
        pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes()).hexdigest()


def transactions_hash(df: pd.DataFrame) -> str:
    """Return a sha256 of the transaction table, used as the models' data hash.

    Args:
        df: A transaction table.
    """
    return frame_hash(
        df[["invoice", "customer_id", "invoiced_at", "stock_code", "quantity", "unit_price"]])


def reference_date(df: pd.DataFrame) -> pd.Timestamp:
    """Return the day after the last transaction (midnight), the usual RFM reference.

    Args:
        df: A non-empty transaction table.
    """
    return pd.Timestamp(df["invoiced_at"].max()).normalize() + pd.Timedelta(days=1)


def rfm_table(df: pd.DataFrame, *, reference: pd.Timestamp | None = None) -> pd.DataFrame:
    """Recency, frequency and monetary value per customer.

    ``recency_days`` counts whole days from the day of the last purchase to the
    reference date (so a purchase on the reference date's eve has recency 1),
    ``frequency`` counts distinct invoices and ``monetary`` sums the line
    amounts. Transactions at or after ``reference`` are ignored.

    Args:
        df: A transaction table.
        reference: Reference date (default: :func:`reference_date`).

    Returns:
        One row per customer with purchases, indexed by ``customer_id``, with
        columns ``recency_days`` (int), ``frequency`` (int), ``monetary`` (float),
        ``first_purchase`` and ``last_purchase``.
    """
    if reference is None:
        reference = reference_date(df)
    df = df[df["invoiced_at"] < reference]
    g = df.groupby("customer_id", sort=True)
    out = pd.DataFrame({
        "last_purchase": g["invoiced_at"].max(),
        "first_purchase": g["invoiced_at"].min(),
        "frequency": g["invoice"].nunique().astype("int64"),
        "monetary": g["amount"].sum().astype("float64"),
    })
    out.insert(0, "recency_days",
               (reference - out["last_purchase"].dt.normalize()).dt.days.astype("int64"))
    out.index.name = "customer_id"
    return out[["recency_days", "frequency", "monetary", "first_purchase", "last_purchase"]]


def complete_weeks(df: pd.DataFrame) -> pd.DatetimeIndex:
    """Return the Monday of every complete week the transactions cover.

    Weeks run Monday to Sunday. The first week is the one of the first
    transaction; the last is the last week whose Sunday the data reaches, so a
    week still under way at the end of the data (Online Retail II ends on a
    Friday) is left out rather than counted as a weak week.

    Args:
        df: A non-empty transaction table.
    """
    first = pd.Timestamp(df["invoiced_at"].min()).normalize()
    last = pd.Timestamp(df["invoiced_at"].max()).normalize()
    start = first - pd.Timedelta(days=first.dayofweek)
    # the week holding `last` is complete only when `last` is its Sunday
    stop = last - pd.Timedelta(days=last.dayofweek) - pd.Timedelta(days=7 * (last.dayofweek < 6))
    return pd.date_range(start, stop, freq="W-MON", name="week")


def weekly_revenue(df: pd.DataFrame, *, by: str | pd.Series | None = None,
                   weeks: pd.DatetimeIndex | None = None) -> pd.DataFrame | pd.Series:
    """Sales revenue per week (Monday start), weeks without sales as zero.

    Args:
        df: A transaction table.
        by: None for the total; a column name (``"country"``) or a Series aligned
            on ``df`` (e.g. each line's customer segment) for one column per group.
        weeks: The week starts to report (default: :func:`complete_weeks`).

    Returns:
        A Series named ``revenue`` (total) or a DataFrame with one column per group,
        indexed by the week's Monday.
    """
    if weeks is None:
        weeks = complete_weeks(df)
    week = df["invoiced_at"].dt.normalize() - pd.to_timedelta(df["invoiced_at"].dt.dayofweek,
                                                               unit="D")
    if by is None:
        s = df["amount"].groupby(week).sum()
        return s.reindex(weeks, fill_value=0.0).rename("revenue").astype(float)
    key = df[by] if isinstance(by, str) else by
    table = df["amount"].groupby([week, key]).sum().unstack(fill_value=0.0)
    return table.reindex(weeks, fill_value=0.0).astype(float)
