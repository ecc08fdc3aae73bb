"""Churn features and labels from transactions, as of a cutoff date.

A customer *churns* at cutoff ``t`` when they buy nothing in the 90 days from
``t`` on (``t <= invoiced_at < t + 90 days``). Features use only what happened
strictly before ``t``; labels only what happened from ``t`` on, so a snapshot
never sees its own future.

Input: a transaction table with one row per order or per order line, columns

============ =============================================================
column       meaning
============ =============================================================
invoice      order id, str
customer_id  customer id, int
invoiced_at  order time, datetime64
kind         ``"sale"`` or ``"cancellation"``
amount       value of the row; cancellations may be negative (sign ignored)
============ =============================================================

:func:`crm_ml.features.transactions.read_transactions` (sales lines) and
:func:`read_orders` (sales and cancellations, one row per order)
both give this shape; :func:`orders_from_retail` builds it from the raw
Online Retail II rows.

A valid sale has a customer id, a positive quantity and price and an invoice
that does not start with ``C``; as the CRM loader does, lines with a fee code
(postage, bank charges...) and ``A`` (bad-debt adjustment) invoices are left
out too. Cancellations (``C`` invoices with a customer id) only feed the
cancellation features.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from crm_ml.features.transactions import crm_or_files, frame_hash, is_product_code

__all__ = [
    "CANCELLATION",
    "FEATURES",
    "GROUPS",
    "HORIZON_DAYS",
    "ORDER_COLUMNS",
    "SALE",
    "build_features",
    "build_labels",
    "build_snapshots",
    "describe",
    "load_orders",
    "orders_from_retail",
    "orders_hash",
    "read_orders",
    "to_orders",
]

logger = logging.getLogger(__name__)

HORIZON_DAYS = 90
SALE = "sale"
CANCELLATION = "cancellation"
ORDER_COLUMNS = ["invoice", "customer_id", "invoiced_at", "kind", "amount"]

#: Model inputs, in order.
FEATURES: list[str] = [
    "recency_days",
    "tenure_days",
    "frequency",
    "purchase_days",
    "monetary",
    "avg_basket",
    "mean_gap_days",
    "overdue_ratio",
    "orders_last_90",
    "orders_prev_90",
    "order_trend",
    "spend_last_90",
    "spend_trend",
    "orders_per_month",
    "last_gap_ratio",
    "cancellation_share",
]

#: Features that move together, explained as one reason.
GROUPS: dict[str, list[str]] = {
    "recency": ["recency_days", "overdue_ratio"],
    "frequency": ["frequency", "purchase_days", "orders_per_month"],
    "trend": ["orders_last_90", "orders_prev_90", "order_trend", "spend_last_90", "spend_trend",
              "last_gap_ratio"],
    "spend": ["monetary"],
    "basket": ["avg_basket"],
    "tenure": ["tenure_days"],
    "rhythm": ["mean_gap_days"],
    "cancellations": ["cancellation_share"],
}


def orders_from_retail(raw: pd.DataFrame) -> pd.DataFrame:
    """Build the order table (sales and cancellations) from raw Online Retail II rows.

    Args:
        raw: Rows shaped like :func:`crm_ml.datasets.read_online_retail` (a slice is fine).

    Returns:
        One row per invoice with :data:`ORDER_COLUMNS`; ``amount`` is positive.
    """
    invoice = raw["Invoice"].astype(str)
    codes = raw["StockCode"].astype(str)
    uniq = codes.unique()
    product = {c for c in uniq if is_product_code(c)}
    has_customer = raw["Customer ID"].notna()
    is_product = codes.isin(product)
    cancel = invoice.str.startswith("C")
    sale = (has_customer & ~cancel & ~invoice.str.startswith("A") & (raw["Quantity"] > 0)
            & (raw["Price"] > 0) & is_product)
    keep = sale | (has_customer & cancel & is_product)
    df = raw.loc[keep]
    lines = pd.DataFrame({
        "invoice": invoice[keep].to_numpy(),
        "customer_id": df["Customer ID"].astype("int64").to_numpy(),
        "invoiced_at": pd.to_datetime(df["InvoiceDate"]).to_numpy(),
        "kind": np.where(cancel[keep].to_numpy(), CANCELLATION, SALE),
        "amount": (df["Quantity"] * df["Price"]).abs().to_numpy(dtype=float),
    })
    return to_orders(lines)


def to_orders(tx: pd.DataFrame) -> pd.DataFrame:
    """Collapse a transaction table to one row per invoice.

    Args:
        tx: Rows with :data:`ORDER_COLUMNS` (order lines or whole orders).

    Returns:
        One row per invoice: first customer, earliest time, its kind, summed
        absolute amount; sorted by time.
    """
    missing = [c for c in ORDER_COLUMNS if c not in tx.columns]
    if missing:
        raise ValueError(f"transaction table lacks columns {missing}")
    df = tx[ORDER_COLUMNS].copy()
    df["amount"] = pd.to_numeric(df["amount"], errors="coerce").astype(float).abs()
    df["invoiced_at"] = pd.to_datetime(df["invoiced_at"])
    df = df[df["customer_id"].notna()]
    g = df.groupby("invoice", sort=False)
    out = pd.DataFrame({
        "invoice": g.size().index.astype(str),
        "customer_id": g["customer_id"].first().astype("int64").to_numpy(),
        "invoiced_at": g["invoiced_at"].min().to_numpy(),
        "kind": g["kind"].first().astype(str).to_numpy(),
        "amount": g["amount"].sum().to_numpy(dtype=float),
    })
    return out.sort_values(["invoiced_at", "invoice"], kind="stable").reset_index(drop=True)


def read_orders(*, session: Any) -> pd.DataFrame:
    """Sales and cancellations of the CRM, one row per order.

    ``amount`` is the sum of ``|quantity * unit_price|`` over the order's lines
    (for sales only lines with a positive quantity and price).

    Args:
        session: An open session (the caller owns the transaction).

    Returns:
        A frame with :data:`ORDER_COLUMNS`.
    """
    from sqlalchemy import Float, and_, func, or_, select

    from crm_ml.db.models import Order, OrderLine

    amount = func.sum(func.abs(OrderLine.quantity * OrderLine.unit_price), type_=Float)
    stmt = (
        select(Order.id, Order.customer_id, Order.invoiced_at, Order.kind, amount)
        .join(OrderLine, OrderLine.order_id == Order.id)
        .where(Order.customer_id.is_not(None),
               Order.kind.in_([SALE, CANCELLATION]),
               or_(Order.kind == CANCELLATION,
                   and_(OrderLine.quantity > 0, OrderLine.unit_price > 0)))
        .group_by(Order.id, Order.customer_id, Order.invoiced_at, Order.kind)
    )
    rows = session.execute(stmt).all()
    df = pd.DataFrame(rows, columns=ORDER_COLUMNS)
    if df.empty:
        return pd.DataFrame({"invoice": pd.Series(dtype=object),
                             "customer_id": pd.Series(dtype="int64"),
                             "invoiced_at": pd.Series(dtype="datetime64[us]"),
                             "kind": pd.Series(dtype=object),
                             "amount": pd.Series(dtype=float)})
    df["amount"] = df["amount"].astype(float)
    df["invoiced_at"] = pd.to_datetime(df["invoiced_at"])
    logger.info("read_orders: %d orders", len(df))
    return to_orders(df)


def load_orders(url: str | None, say: Callable[[str], None],
                what: str = "churn") -> tuple[pd.DataFrame, str]:
    """Read the CRM's orders, or build them from the Online Retail II files when it has none.

    Args:
        url: CRM database URL.
        say: Progress callback.
        what: Name of the model, for messages.

    Returns:
        The order table and where it came from (``"crm"`` or the files).
    """
    orders, source = crm_or_files(url, lambda s: read_orders(session=s), orders_from_retail)
    if source != "crm":
        logger.warning("%s: the CRM has no orders; training on the Online Retail II files", what)
    say(f"{what}: {len(orders)} orders from the {source}")
    return orders, source


def orders_hash(orders: pd.DataFrame) -> str:
    """Return a sha256 of an order table, used as the churn model's data hash."""
    return frame_hash(orders[ORDER_COLUMNS].sort_values(["invoiced_at", "invoice"]))


def _days(delta: pd.Series) -> np.ndarray:
    """Timedeltas as float days."""
    return np.asarray(pd.to_timedelta(delta) / pd.Timedelta(days=1), dtype=float)


def build_features(orders: pd.DataFrame, cutoff: pd.Timestamp | str) -> pd.DataFrame:
    """Per-customer features from everything invoiced strictly before ``cutoff``.

    Only customers with at least one sale before the cutoff get a row.

    Args:
        orders: Output of :func:`to_orders` (or any table :func:`to_orders` accepts).
        cutoff: The "as of" time.

    Returns:
        A frame indexed by ``customer_id`` with the columns :data:`FEATURES`
        plus ``last_purchase`` and ``first_purchase`` (timestamps, for wording).
    """
    cutoff = pd.Timestamp(cutoff)
    if orders["invoice"].duplicated().any():
        orders = to_orders(orders)
    past = orders[orders["invoiced_at"] < cutoff]
    sales = past[past["kind"] == SALE]
    cancels = past[past["kind"] == CANCELLATION]
    if sales.empty:
        return pd.DataFrame(columns=[*FEATURES, "first_purchase", "last_purchase"],
                            index=pd.Index([], name="customer_id", dtype="int64"))

    g = sales.groupby("customer_id")
    first = g["invoiced_at"].min()
    last = g["invoiced_at"].max()
    frequency = g.size().astype(float)
    monetary = g["amount"].sum()
    days = sales.assign(day=sales["invoiced_at"].dt.normalize())
    purchase_days = days.groupby("customer_id")["day"].nunique().astype(float)

    out = pd.DataFrame(index=first.index)
    out.index.name = "customer_id"
    out["recency_days"] = _days(cutoff - last)
    out["tenure_days"] = _days(cutoff - first)
    out["frequency"] = frequency
    out["purchase_days"] = purchase_days
    out["monetary"] = monetary
    out["avg_basket"] = monetary / frequency
    span = _days(last - first)
    gaps = np.where(purchase_days > 1, span / np.maximum(purchase_days - 1, 1), np.nan)
    out["mean_gap_days"] = gaps
    out["overdue_ratio"] = out["recency_days"] / out["mean_gap_days"].clip(lower=1.0)

    recent = sales["invoiced_at"] >= cutoff - pd.Timedelta(days=90)
    before = (sales["invoiced_at"] >= cutoff - pd.Timedelta(days=180)) & ~recent
    last90 = sales[recent].groupby("customer_id")
    prev90 = sales[before].groupby("customer_id")
    out["orders_last_90"] = last90.size().reindex(out.index, fill_value=0).astype(float)
    out["orders_prev_90"] = prev90.size().reindex(out.index, fill_value=0).astype(float)
    out["order_trend"] = out["orders_last_90"] - out["orders_prev_90"]
    spend_last = last90["amount"].sum().reindex(out.index, fill_value=0.0)
    spend_prev = prev90["amount"].sum().reindex(out.index, fill_value=0.0)
    out["spend_last_90"] = spend_last
    out["spend_trend"] = spend_last - spend_prev
    out["orders_per_month"] = frequency / np.maximum(out["tenure_days"], 30.0) * 30.0

    # Gap between the last two purchase days, relative to the customer's usual gap:
    # above 1 means orders are becoming rarer.
    uniq_days = days[["customer_id", "day"]].drop_duplicates().sort_values(["customer_id", "day"])
    uniq_days["gap"] = _days(uniq_days.groupby("customer_id")["day"].diff())
    last_gap = uniq_days.groupby("customer_id")["gap"].last()
    out["last_gap_ratio"] = (last_gap.reindex(out.index) / out["mean_gap_days"].clip(lower=1.0))

    n_cancel = cancels.groupby("customer_id").size().reindex(out.index, fill_value=0)
    out["cancellation_share"] = n_cancel / (n_cancel + frequency)
    out = out[FEATURES].astype(float)
    out["first_purchase"] = first
    out["last_purchase"] = last
    return out


def build_labels(orders: pd.DataFrame, cutoff: pd.Timestamp | str, customers: pd.Index,
                 horizon_days: int = HORIZON_DAYS) -> pd.Series:
    """Churn labels: 1 when the customer has no sale in ``[cutoff, cutoff + horizon)``.

    Args:
        orders: Output of :func:`to_orders` (or any table it accepts).
        cutoff: Start of the label window.
        customers: The customers to label (usually the index of :func:`build_features`).
        horizon_days: Length of the label window in days.

    Returns:
        A 0/1 integer Series indexed like ``customers``.
    """
    cutoff = pd.Timestamp(cutoff)
    end = cutoff + pd.Timedelta(days=horizon_days)
    window = orders[(orders["invoiced_at"] >= cutoff) & (orders["invoiced_at"] < end)
                    & (orders["kind"] == SALE)]
    buyers = set(window["customer_id"].astype("int64").unique())
    labels = np.array([0 if int(c) in buyers else 1 for c in customers], dtype=np.int64)
    return pd.Series(labels, index=customers, name="churned")


def build_snapshots(orders: pd.DataFrame, cutoffs: Sequence[pd.Timestamp],
                    horizon_days: int = HORIZON_DAYS) -> tuple[pd.DataFrame, pd.Series]:
    """Stack features and labels of several cutoffs into one training table.

    Every cutoff's label window must end on or before the last order time seen,
    otherwise its labels would count customers as churned for lack of data.

    Args:
        orders: Output of :func:`to_orders`.
        cutoffs: Snapshot times.
        horizon_days: Label window length.

    Returns:
        ``(X, y)``: features (with a ``cutoff`` column) and labels, index reset.

    Raises:
        ValueError: a cutoff's label window runs past the end of the data.
    """
    orders = to_orders(orders) if orders["invoice"].duplicated().any() else orders
    end_of_data = orders["invoiced_at"].max()
    xs, ys = [], []
    for cutoff in cutoffs:
        cutoff = pd.Timestamp(cutoff)
        if cutoff + pd.Timedelta(days=horizon_days) > end_of_data + pd.Timedelta(days=1):
            raise ValueError(
                f"cutoff {cutoff:%Y-%m-%d}: its {horizon_days}-day label window ends after "
                f"the data ({end_of_data:%Y-%m-%d})"
            )
        X = build_features(orders, cutoff)
        y = build_labels(orders, cutoff, X.index, horizon_days)
        X = X.assign(cutoff=cutoff)
        xs.append(X.reset_index())
        ys.append(y.reset_index(drop=True))
    return pd.concat(xs, ignore_index=True), pd.concat(ys, ignore_index=True)


def describe(group: str, row: pd.Series, *, raises_risk: bool) -> str:
    """Say in words what a feature group of one customer shows.

    Args:
        group: A key of :data:`GROUPS`.
        row: One row of :func:`build_features`.
        raises_risk: Whether this group pushes the churn risk up (changes the wording
            of trend-like groups only).

    Returns:
        A short phrase a sales rep understands ("no purchase for 140 days").
    """
    if group == "recency":
        d = int(round(row["recency_days"]))
        gap = row["mean_gap_days"]
        if d <= 1:
            base = "bought in the last day"
        elif d <= 60:
            base = f"last purchase {d} days ago"
        else:
            base = f"no purchase for {d} days"
        if np.isfinite(gap) and gap >= 1 and d > 1.5 * gap:
            return f"{base} (usually orders every {int(round(gap))} days)"
        return base
    if group == "frequency":
        n = int(row["frequency"])
        if n == 1:
            return "only one order so far"
        months = max(row["tenure_days"] / 30.0, 1.0)
        return f"{n} orders in {int(round(months))} months"
    if group == "trend":
        last, prev = int(row["orders_last_90"]), int(row["orders_prev_90"])
        ratio = row["last_gap_ratio"]
        if last == 0 and prev == 0:
            return "no orders in the last 6 months"
        if last < prev:
            return f"orders becoming rarer ({last} in the last 3 months, {prev} in the 3 before)"
        if last > prev:
            return f"orders becoming more frequent ({last} in the last 3 months, {prev} before)"
        if raises_risk and row["spend_trend"] < 0:
            return (f"spending less lately (£{row['spend_last_90']:,.0f} in the last 3 months, "
                    f"£{row['spend_last_90'] - row['spend_trend']:,.0f} in the 3 before)")
        if np.isfinite(ratio) and ratio > 1.5:
            return "orders becoming rarer (the last gap between orders was longer than usual)"
        return f"steady ordering ({last} orders in each of the last two quarters)"
    if group == "spend":
        return f"spent £{row['monetary']:,.0f} in total"
    if group == "basket":
        return f"spends about £{row['avg_basket']:,.0f} per order"
    if group == "tenure":
        d = int(round(row["tenure_days"]))
        if d < 90:
            return f"new customer (first order {d} days ago)"
        return f"first order {d // 30} months ago"
    if group == "rhythm":
        gap = row["mean_gap_days"]
        if not np.isfinite(gap):
            return "has bought on one day only"
        return f"usually orders every {int(round(gap))} days"
    if group == "cancellations":
        share = row["cancellation_share"]
        if share <= 0:
            return "never cancelled an order"
        return f"cancelled {share:.0%} of orders"
    raise KeyError(group)
