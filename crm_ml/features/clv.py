"""Lifetime value inputs: the per-customer RFM summary that BG/NBD and Gamma-Gamma read.

From the transaction table (:mod:`crm_ml.features.transactions`) or the order
table with its cancellations (:mod:`crm_ml.features.churn`, see
:func:`purchase_days`), one row per customer with a sale before ``end``, in
the convention of Fader, Hardie & Lee (2005) and of lifetimes'
``summary_data_from_transaction_data``:

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

Seasons: BG/NBD assumes each customer buys at a constant rate, and Online
Retail's repeat purchases run at 1.6 times the year's average pace in weeks
40-48 (up to 1.96 in week 47) and 0.65 times in weeks 1-8. With a
:class:`SeasonalClock` the summary's times are measured in *operational* time
instead: each calendar day counts as much as the season's
purchase intensity that week (:func:`season_index`, 1 on average over a year),
so a customer buying at ``lambda x season`` buys at a constant rate on that
clock, and the model's assumption holds again (dropout happens at purchases,
so it does not care which clock is used).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["TIME_UNITS", "SeasonalClock", "calibration_and_holdout", "purchase_days",
           "rfm_summary", "season_index", "unit_days"]

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
    """Collapse sold lines or orders into one row per customer and purchase day.

    When ``tx`` has a ``kind`` column with cancellations (the order table of
    :mod:`crm_ml.features.churn`, amounts positive), each cancellation's amount
    is taken off the customer's latest purchase day at or before it (never below
    zero), and days left with nothing are no purchase: an order cancelled in
    full, as Online Retail's largest ones were, adds neither a purchase nor value.

    Args:
        tx: Rows with ``customer_id``, ``invoiced_at``, ``amount`` (and maybe ``kind``).

    Returns:
        Columns ``customer_id``, ``day`` (midnight) and ``amount`` (the day's net
        spend), sorted by customer and day.
    """
    cancel = (tx["kind"] == "cancellation") if "kind" in tx.columns else None
    sales = tx if cancel is None else tx[tx["kind"] == "sale"]
    days = (sales.assign(day=sales["invoiced_at"].dt.normalize())
            .groupby(["customer_id", "day"], sort=True)["amount"].sum().reset_index())
    if cancel is None or not cancel.any() or days.empty:
        return days
    back = (tx.loc[cancel, ["customer_id", "invoiced_at", "amount"]]
            .rename(columns={"amount": "cancelled"}).sort_values("invoiced_at"))
    keyed = days.reset_index().rename(columns={"index": "row"}).sort_values("day")
    matched = pd.merge_asof(back, keyed[["row", "customer_id", "day"]], left_on="invoiced_at",
                            right_on="day", by="customer_id", direction="backward")
    taken = matched.dropna(subset=["row"]).groupby("row")["cancelled"].sum()
    days.loc[taken.index.astype(int), "amount"] -= taken.to_numpy()
    days["amount"] = days["amount"].clip(lower=0.0)
    return days[days["amount"] > 0.005].reset_index(drop=True)


def _week_of_year(days: pd.DatetimeIndex | pd.Series) -> np.ndarray:
    """ISO week 1..52 of each day (week 53 counts as 52)."""
    weeks = pd.DatetimeIndex(days).isocalendar().week.to_numpy()
    return np.minimum(weeks.astype(int), 52)


def season_index(tx: pd.DataFrame, *, end: pd.Timestamp, smooth: int = 1) -> np.ndarray:
    """Relative purchase intensity of each ISO week of the year, 1 on average.

    Counts the repeat purchase days (a customer's later days, not the first: that
    is acquisition) per observed day of each calendar week before ``end``,
    averages each week of the year over the years seen, fills weeks never seen
    from their neighbours and smooths over ``2 * smooth + 1`` weeks around the year.

    Args:
        tx: A transaction table.
        end: Only lines before it count.
        smooth: Half-width of the circular moving average, in weeks.

    Returns:
        52 factors (week 1 first); all ones when there are no repeat purchases.
    """
    days = purchase_days(tx[tx["invoiced_at"] < end])
    first = days.groupby("customer_id")["day"].transform("min")
    repeat = days.loc[days["day"] > first, "day"]
    if repeat.empty:
        return np.ones(52)
    # Repeat purchase days per observed day of each (ISO year, week): the data's
    # first and last weeks are partly seen, a week with no repeat purchase is a 0.
    observed = pd.date_range(days["day"].min(), pd.Timestamp(end) - pd.Timedelta(1, "ns"),
                             freq="D", normalize=True)
    obs_iso = observed.isocalendar()
    seen = pd.Series(1.0, index=[obs_iso.year.to_numpy(), _week_of_year(observed)]).groupby(
        level=[0, 1]).sum()
    iso = pd.DatetimeIndex(repeat).isocalendar()
    counts = pd.Series(1.0, index=[iso.year.to_numpy(), _week_of_year(repeat)]).groupby(
        level=[0, 1]).sum().reindex(seen.index, fill_value=0.0)
    per_week = (counts / seen).groupby(level=1).mean().reindex(range(1, 53)).astype(float)
    values = per_week.interpolate(limit_direction="both").to_numpy()
    width = 2 * smooth + 1
    values = sum(np.roll(values, k) for k in range(-smooth, smooth + 1)) / width
    return values / values.mean()


class SeasonalClock:
    """Operational time: calendar days weighted by their week's purchase intensity.

    ``clock(when)`` is the operational time, in days, from ``origin`` to each
    ``when``; a day of week ``w`` lasts ``index[w - 1]`` operational days. With
    an index of ones it is plain calendar time.

    Args:
        index: 52 weekly factors, e.g. from :func:`season_index`.
        origin: Where operational time starts (any day before the times asked).
    """

    def __init__(self, index: Any, origin: pd.Timestamp) -> None:
        self.index = np.asarray(index, dtype=float)
        self.origin = pd.Timestamp(origin).normalize()

    def __call__(self, when: Any) -> np.ndarray:
        """Operational days from :attr:`origin` to each time in ``when``."""
        stamps = pd.DatetimeIndex(pd.to_datetime(np.atleast_1d(when)))
        offset = (stamps - self.origin).total_seconds().to_numpy() / 86400.0
        if offset.size == 0:
            return offset
        if offset.min() < 0:
            raise ValueError("a time before the clock's origin")
        whole = np.floor(offset).astype(int)
        days = pd.date_range(self.origin, periods=int(whole.max()) + 1, freq="D")
        rate = self.index[_week_of_year(days) - 1]
        cum = np.concatenate([[0.0], np.cumsum(rate)])
        return cum[whole] + (offset - whole) * rate[whole]

    def span(self, start: pd.Timestamp, days: float) -> float:
        """Operational days in the ``days`` calendar days after ``start``."""
        start = pd.Timestamp(start)
        both = self([start, start + pd.Timedelta(days=days)])
        return float(both[1] - both[0])


def rfm_summary(tx: pd.DataFrame, *, end: pd.Timestamp, unit: str = "W",
                clock: SeasonalClock | None = None) -> pd.DataFrame:
    """The BG/NBD and Gamma-Gamma summary of each customer as of ``end``.

    Args:
        tx: A transaction table; lines at or after ``end`` are ignored.
        end: End of the observation period (usually a midnight).
        unit: Time unit of ``recency`` and ``T``: ``"W"`` or ``"D"``.
        clock: Measure ``recency`` and ``T`` in its operational time (None: calendar).

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
    if clock is None:
        recency = (last - first).dt.days / per_unit
        age = (pd.Timestamp(end) - first).dt.total_seconds() / 86400.0 / per_unit
    else:
        start = clock(first.to_numpy())
        recency = pd.Series((clock(last.to_numpy()) - start) / per_unit, index=first.index)
        age = pd.Series((clock([end])[0] - start) / per_unit, index=first.index)
    out = pd.DataFrame({
        "frequency": frequency,
        "recency": recency,
        "T": age,
        "monetary": (repeat_spend / frequency.where(frequency > 0)).fillna(0.0),
        "spend": spend.astype(float),
        "first_spend": first_spend.astype(float),
    })
    out.index.name = "customer_id"
    return out


def calibration_and_holdout(tx: pd.DataFrame, *, cutoff: pd.Timestamp, end: pd.Timestamp,
                            unit: str = "W", clock: SeasonalClock | None = None
                            ) -> pd.DataFrame:
    """The summary as of ``cutoff`` and what each customer did in ``[cutoff, end)``.

    Only customers with a sale before ``cutoff`` are kept: the model predicts
    the customers it knows.

    Args:
        tx: A transaction table.
        cutoff: End of the calibration period.
        end: End of the holdout period.
        unit: Time unit (see :func:`rfm_summary`).
        clock: Operational time (see :func:`rfm_summary`).

    Returns:
        :func:`rfm_summary` at ``cutoff`` plus ``holdout_spend`` and
        ``holdout_days`` (purchase days in the holdout), zero for customers who
        did not buy then.

    Raises:
        ValueError: ``cutoff`` is not before ``end``.
    """
    if not pd.Timestamp(cutoff) < pd.Timestamp(end):
        raise ValueError("the cutoff must come before the end of the holdout")
    summary = rfm_summary(tx, end=cutoff, unit=unit, clock=clock)
    later = tx[(tx["invoiced_at"] >= cutoff) & (tx["invoiced_at"] < end)]
    days = purchase_days(later)
    g = days.groupby("customer_id")
    summary["holdout_spend"] = g["amount"].sum().reindex(summary.index, fill_value=0.0)
    summary["holdout_days"] = g["day"].size().reindex(summary.index, fill_value=0).astype("int64")
    logger.info("clv summary: %d customers before %s, %d of them bought after",
                len(summary), pd.Timestamp(cutoff).date(), int((summary["holdout_days"] > 0).sum()))
    return summary
