"""Features of the anomaly model: orders (invoice level) and customers' weeks.

Orders: one row per invoice from a line table with the columns of
:mod:`crm_ml.features.transactions` (``invoice``, ``customer_id``,
``invoiced_at``, ``quantity``, ``unit_price``, ``country``; an optional bool
``cancelled`` marks cancelled lines, absent means none). The customer-relative
features (country unusual for the customer, amount relative to the customer's
median order) compare each order with a *history* table of earlier orders, so
that a held-out period is judged against the fit period only.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

__all__ = [
    "ORDER_FEATURES",
    "WEEK_FEATURES",
    "customer_history",
    "order_features",
    "order_table",
    "week_features",
]

logger = logging.getLogger(__name__)

#: Order features, in the model's column order.
ORDER_FEATURES: tuple[str, ...] = (
    "log_amount", "log_quantity", "n_lines", "log_mean_price", "cancel_share", "hour",
    "country_unusual", "log_amount_vs_customer",
)
#: Customer-week features, in the model's column order.
WEEK_FEATURES: tuple[str, ...] = (
    "log_spend", "orders", "log_quantity", "cancelled_lines", "spend_change",
)


def order_table(lines: pd.DataFrame) -> pd.DataFrame:
    """Aggregate lines to one row per invoice (raw values, no derived features).

    Args:
        lines: Line table (see the module docstring).

    Returns:
        Columns ``invoice, customer_id, invoiced_at, country, amount, quantity,
        n_lines, mean_price, cancel_share, hour``.
    """
    df = lines.assign(
        amount=lines["quantity"].abs() * lines["unit_price"],
        qty=lines["quantity"].abs(),
        cancelled=(lines["cancelled"].astype(bool) if "cancelled" in lines
                   else np.zeros(len(lines), dtype=bool)),
    )
    g = df.groupby("invoice", sort=False)
    out = g.agg(customer_id=("customer_id", "first"), invoiced_at=("invoiced_at", "first"),
                country=("country", "first"), amount=("amount", "sum"), quantity=("qty", "sum"),
                n_lines=("qty", "size"), mean_price=("unit_price", "mean"),
                cancel_share=("cancelled", "mean")).reset_index()
    out["hour"] = pd.to_datetime(out["invoiced_at"]).dt.hour
    return out


def customer_history(orders: pd.DataFrame) -> pd.DataFrame:
    """Each customer's median order amount and usual (most frequent) country.

    Args:
        orders: Output of :func:`order_table` (the reference period).

    Returns:
        Indexed by ``customer_id``: ``median_amount``, ``usual_country``, ``n_orders``.
    """
    g = orders.groupby("customer_id")
    usual = (orders.groupby(["customer_id", "country"]).size().reset_index(name="n")
             .sort_values(["customer_id", "n"], ascending=[True, False])
             .drop_duplicates("customer_id").set_index("customer_id")["country"])
    return pd.DataFrame({"median_amount": g["amount"].median(), "usual_country": usual,
                         "n_orders": g.size()})


def order_features(orders: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """The model's order features (:data:`ORDER_FEATURES`), one row per order.

    Customers without history get ``country_unusual = 0`` and
    ``log_amount_vs_customer = 0`` (nothing to compare with).

    Args:
        orders: Output of :func:`order_table`.
        history: Output of :func:`customer_history` on the earlier period.

    Returns:
        The feature frame, same index as ``orders``.
    """
    h = history.reindex(orders["customer_id"].to_numpy())
    known = h["median_amount"].notna().to_numpy()
    rel = np.where(known, np.log((orders["amount"].to_numpy() + 1.0)
                                 / (h["median_amount"].fillna(1.0).to_numpy() + 1.0)), 0.0)
    unusual = known & (orders["country"].to_numpy() != h["usual_country"].to_numpy())
    return pd.DataFrame({
        "log_amount": np.log1p(orders["amount"].to_numpy(dtype=float)),
        "log_quantity": np.log1p(orders["quantity"].to_numpy(dtype=float)),
        "n_lines": orders["n_lines"].to_numpy(dtype=float),
        "log_mean_price": np.log1p(orders["mean_price"].to_numpy(dtype=float)),
        "cancel_share": orders["cancel_share"].to_numpy(dtype=float),
        "hour": orders["hour"].to_numpy(dtype=float),
        "country_unusual": unusual.astype(float),
        "log_amount_vs_customer": rel,
    }, index=orders.index)


def week_features(orders: pd.DataFrame, *, lookback: int = 4) -> pd.DataFrame:
    """Customers' weekly behaviour (:data:`WEEK_FEATURES`), one row per active customer-week.

    ``spend_change`` is ``log1p(spend)`` minus ``log1p`` of the customer's mean
    weekly spend over the ``lookback`` previous weeks (weeks without orders count
    as zero).

    Args:
        orders: Output of :func:`order_table`.
        lookback: Previous weeks compared with.

    Returns:
        Columns ``customer_id, week`` and the features.
    """
    week = pd.to_datetime(orders["invoiced_at"]).dt.to_period("W").dt.start_time
    df = orders.assign(week=week, cancelled_lines=orders["cancel_share"] * orders["n_lines"])
    w = df.groupby(["customer_id", "week"]).agg(
        spend=("amount", "sum"), orders=("invoice", "size"), quantity=("quantity", "sum"),
        cancelled_lines=("cancelled_lines", "sum")).reset_index()
    spend = w.pivot(index="week", columns="customer_id", values="spend")
    full = pd.date_range(spend.index.min(), spend.index.max(), freq="W-MON")
    spend = spend.reindex(full.union(spend.index)).fillna(0.0)
    prev = spend.shift(1).rolling(lookback, min_periods=1).mean().fillna(0.0)
    prev_long = prev.stack().rename("prev").reset_index()
    prev_long.columns = ["week", "customer_id", "prev"]
    w = w.merge(prev_long, on=["week", "customer_id"], how="left")
    return pd.DataFrame({
        "customer_id": w["customer_id"], "week": w["week"],
        "log_spend": np.log1p(w["spend"]), "orders": w["orders"].astype(float),
        "log_quantity": np.log1p(w["quantity"].astype(float)),
        "cancelled_lines": w["cancelled_lines"].astype(float),
        "spend_change": np.log1p(w["spend"]) - np.log1p(w["prev"].fillna(0.0)),
    })
