"""Lifetime value inputs: the per-customer RFM summary that BG/NBD and Gamma-Gamma read.

From the transaction table (:mod:`crm_ml.features.transactions`), one row per
customer with a sale before ``end``, in the convention of Fader, Hardie & Lee
(2005) and of lifetimes' ``summary_data_from_transaction_data``:

========== ===========================================================
column      meaning
========== ===========================================================
frequency   repeat purchase days: distinct days with a purchase, minus one
recency     time from the first purchase day to the last one (0 if no repeat)
T           time from the first purchase day to ``end``
monetary    mean spend of the repeat purchase days (0 if no repeat)
spend       total spend before ``end`` (all purchase days, the first included)
first_spend spend of the first purchase day
========== ===========================================================

Times are measured in ``unit`` (``"W"`` weeks or ``"D"`` days) from midnight of
each day, so a purchase day counts once whatever the number of invoices on it.
:func:`calibration_and_holdout` adds the spend and purchase days of the period
``[cutoff, end)`` for the held-out evaluation.
"""

from __future__ import annotations

import logging

import pandas as pd

__all__ = ["TIME_UNITS", "calibration_and_holdout", "purchase_days", "rfm_summary", "unit_days"]

logger = logging.getLogger(__name__)

#: Time units a summary can be measured in -> days per unit.
TIME_UNITS: dict[str, float] = {"W": 7.0, "D": 1.0}


def unit_days(unit: str) -> float:
    """Days in one time ``unit``.

    Args:
        unit: ``"W"`` or ``"D"``.

    Raises:
        ValueError: an unknown unit.
    """
    try:
        return TIME_UNITS[unit]
    except KeyError:
        raise ValueError(f"unknown time unit {unit!r}; use one of {sorted(TIME_UNITS)}") from None


def purchase_days(tx: pd.DataFrame) -> pd.DataFrame:
    """Collapse sold lines into one row per customer and purchase day.

    Args:
        tx: A transaction table (``customer_id``, ``invoiced_at``, ``amount``).

    Returns:
        Columns ``customer_id``, ``day`` (midnight) and ``amount`` (the day's spend),
        sorted by customer and day.
    """
    days = (tx.assign(day=tx["invoiced_at"].dt.normalize())
            .groupby(["customer_id", "day"], sort=True)["amount"].sum().reset_index())
    return days


def rfm_summary(tx: pd.DataFrame, *, end: pd.Timestamp, unit: str = "W") -> pd.DataFrame:
    """The BG/NBD and Gamma-Gamma summary of each customer as of ``end``.

    Args:
        tx: A transaction table; lines at or after ``end`` are ignored.
        end: End of the observation period (usually a midnight).
        unit: Time unit of ``recency`` and ``T``: ``"W"`` or ``"D"``.

    Returns:
        One row per customer with a sale before ``end``, indexed by ``customer_id``,
        with the columns of the module docstring.
    """
    per_unit = unit_days(unit)
    days = purchase_days(tx[tx["invoiced_at"] < end])
    if days.empty:
        return pd.DataFrame(columns=["frequency", "recency", "T", "monetary", "spend",
                                     "first_spend"],
                            index=pd.Index([], name="customer_id", dtype="int64"))
    g = days.groupby("customer_id", sort=True)
    first = g["day"].min()
    last = g["day"].max()
    n_days = g["day"].size()
    spend = g["amount"].sum()
    first_spend = g["amount"].first()
    frequency = (n_days - 1).astype("int64")
    repeat_spend = spend - first_spend
    out = pd.DataFrame({
        "frequency": frequency,
        "recency": (last - first).dt.days / per_unit,
        "T": (pd.Timestamp(end) - first).dt.total_seconds() / 86400.0 / per_unit,
        "monetary": (repeat_spend / frequency.where(frequency > 0)).fillna(0.0),
        "spend": spend.astype(float),
        "first_spend": first_spend.astype(float),
    })
    out.index.name = "customer_id"
    return out


def calibration_and_holdout(tx: pd.DataFrame, *, cutoff: pd.Timestamp, end: pd.Timestamp,
                            unit: str = "W") -> pd.DataFrame:
    """The summary as of ``cutoff`` and what each customer did in ``[cutoff, end)``.

    Only customers with a sale before ``cutoff`` are kept: the model predicts
    the customers it knows.

    Args:
        tx: A transaction table.
        cutoff: End of the calibration period.
        end: End of the holdout period.
        unit: Time unit (see :func:`rfm_summary`).

    Returns:
        :func:`rfm_summary` at ``cutoff`` plus ``holdout_spend`` and
        ``holdout_days`` (purchase days in the holdout), zero for customers who
        did not buy then.

    Raises:
        ValueError: ``cutoff`` is not before ``end``.
    """
    if not pd.Timestamp(cutoff) < pd.Timestamp(end):
        raise ValueError("the cutoff must come before the end of the holdout")
    summary = rfm_summary(tx, end=cutoff, unit=unit)
    later = tx[(tx["invoiced_at"] >= cutoff) & (tx["invoiced_at"] < end)]
    days = purchase_days(later)
    g = days.groupby("customer_id")
    summary["holdout_spend"] = g["amount"].sum().reindex(summary.index, fill_value=0.0)
    summary["holdout_days"] = g["day"].size().reindex(summary.index, fill_value=0).astype("int64")
    logger.info("clv summary: %d customers before %s, %d of them bought after",
                len(summary), pd.Timestamp(cutoff).date(), int((summary["holdout_days"] > 0).sum()))
    return summary
