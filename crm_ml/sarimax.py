"""SARIMAX on shifted-log weekly revenue with yearly Fourier terms (the estimator).

The model is described in :mod:`crm_ml.forecasting`, which also backtests it,
forecasts every series and stores the result. Here: the exogenous regressors
(:func:`fourier_terms`, :func:`holiday_dummies`, :func:`seasonal_exog`), the
choice of the differencing order (:func:`choose_d`) and of ``(p, q)`` by AIC
(:func:`select_order`), and :class:`SeasonalSARIMAX` itself.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "HORIZON_WEEKS",
    "SeasonalSARIMAX",
    "choose_d",
    "fourier_terms",
    "holiday_dummies",
    "seasonal_exog",
    "select_order",
]

logger = logging.getLogger(__name__)

#: Weeks forecast by default (a quarter).
HORIZON_WEEKS = 13


def fourier_terms(weeks: pd.DatetimeIndex, n_harmonics: int) -> pd.DataFrame:
    """Yearly Fourier terms of weekly periods.

    Args:
        weeks: The weeks' Mondays.
        n_harmonics: Pairs of sin/cos terms.

    Returns:
        Columns ``sin1, cos1, ..., sinK, cosK`` indexed like ``weeks``.
    """
    mid = weeks + pd.Timedelta(days=3)
    t = (mid.dayofyear.to_numpy() - 1) / 365.25
    cols: dict[str, np.ndarray] = {}
    for k in range(1, n_harmonics + 1):
        cols[f"sin{k}"] = np.sin(2 * np.pi * k * t)
        cols[f"cos{k}"] = np.cos(2 * np.pi * k * t)
    return pd.DataFrame(cols, index=weeks)


def holiday_dummies(weeks: pd.DatetimeIndex) -> pd.DataFrame:
    """Dummies of the week holding 25 December and the week holding 1 January.

    Args:
        weeks: The weeks' Mondays.
    """
    end = weeks + pd.Timedelta(days=6)

    def holds(month: int, day: int) -> np.ndarray:
        hit = np.zeros(len(weeks))
        for year_of in (weeks.year, end.year):
            date = pd.to_datetime({"year": year_of, "month": month, "day": day})
            hit = np.maximum(hit, ((date >= weeks) & (date <= end)).to_numpy(dtype=float))
        return hit

    return pd.DataFrame({"christmas": holds(12, 25), "new_year": holds(1, 1)}, index=weeks)


def seasonal_exog(weeks: pd.DatetimeIndex, n_harmonics: int = 2,
                  holidays: bool = True) -> pd.DataFrame:
    """Exogenous regressors of the model: Fourier terms and holiday dummies."""
    parts = [fourier_terms(weeks, n_harmonics)]
    if holidays:
        parts.append(holiday_dummies(weeks))
    return pd.concat(parts, axis=1)


def choose_d(z: np.ndarray, exog: np.ndarray | None, *, alpha: float = 0.05) -> int:
    """Pick the differencing order by a KPSS test on the seasonal regression's residuals.

    Args:
        z: The (transformed) series.
        exog: Regressors removed first by least squares (with a constant).
        alpha: Level of the test; stationarity rejected below it gives ``d = 1``.

    Returns:
        0 or 1.
    """
    from statsmodels.tsa.stattools import kpss

    X = np.ones((len(z), 1)) if exog is None else np.column_stack([np.ones(len(z)), exog])
    beta, *_ = np.linalg.lstsq(X, z, rcond=None)
    resid = z - X @ beta
    if np.allclose(resid, resid[0]):
        return 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _stat, p_value, *_ = kpss(resid, regression="c", nlags="auto")
    return int(p_value < alpha)


def select_order(z: np.ndarray, exog: np.ndarray | None = None, *, d: int = 0, p_max: int = 2,
                 q_max: int = 2, trend: str | None = None) -> tuple[tuple[int, int, int], Any,
                                                                    dict[str, float]]:
    """Fit SARIMAX(p, d, q) for p <= p_max, q <= q_max and keep the lowest AIC.

    Args:
        z: The series.
        exog: Exogenous regressors, or None.
        d: Differencing order (fixed: AIC cannot compare different d).
        p_max: Largest AR order.
        q_max: Largest MA order.
        trend: statsmodels trend; default a constant when ``d == 0``, none otherwise.

    Returns:
        The best order, its fitted results and the AIC of every order tried
        (``"p,d,q" -> AIC``; failed fits are left out).

    Raises:
        RuntimeError: no order could be fitted.
    """
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    if trend is None:
        trend = "c" if d == 0 else "n"
    best: tuple[float, tuple[int, int, int], Any] | None = None
    table: dict[str, float] = {}
    for p in range(p_max + 1):
        for q in range(q_max + 1):
            order = (p, d, q)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    res = SARIMAX(z, exog=exog, order=order, trend=trend,
                                  concentrate_scale=True).fit(disp=False)
            except (ValueError, np.linalg.LinAlgError) as exc:
                logger.debug("SARIMAX%s failed: %s", order, exc)
                continue
            if not np.isfinite(res.aic):
                continue
            table[f"{p},{d},{q}"] = float(res.aic)
            if best is None or res.aic < best[0]:
                best = (float(res.aic), order, res)
    if best is None:
        raise RuntimeError("no SARIMAX order could be fitted")
    return best[1], best[2], table


class SeasonalSARIMAX:
    """SARIMAX on shifted-log weekly revenue with yearly Fourier terms and holiday dummies.

    Args:
        n_harmonics: Pairs of yearly Fourier terms.
        holidays: Add the Christmas and New Year week dummies.
        offset_ratio: The log shift ``c`` as a share of the median positive week.
        p_max: Largest AR order tried.
        q_max: Largest MA order tried.
        d: Differencing order; None picks it by a KPSS test.
        alpha: 1 - level of the prediction intervals.

    Attributes:
        offset_: The log shift ``c``.
        columns_: Exogenous columns used (all-zero columns of the fit are dropped).
        d_: Differencing order used.
        order_: The (p, d, q) chosen by AIC.
        aic_: Its AIC.
        aic_table_: AIC of every order tried.
        results_: The fitted statsmodels results.
        last_week_: Monday of the last week fitted.
    """

    def __init__(self, n_harmonics: int = 2, holidays: bool = True, offset_ratio: float = 0.1,
                 p_max: int = 2, q_max: int = 2, d: int | None = None,
                 alpha: float = 0.05) -> None:
        self.n_harmonics = n_harmonics
        self.holidays = holidays
        self.offset_ratio = offset_ratio
        self.p_max = p_max
        self.q_max = q_max
        self.d = d
        self.alpha = alpha

    def _exog(self, weeks: pd.DatetimeIndex) -> pd.DataFrame:
        return seasonal_exog(weeks, self.n_harmonics, self.holidays)

    def fit(self, y: pd.Series) -> SeasonalSARIMAX:
        """Fit on weekly revenue.

        Args:
            y: Revenue per week, indexed by consecutive Mondays, no gaps.

        Returns:
            self
        """
        y = y.astype(float)
        if len(y) < 8:
            raise ValueError(f"need at least 8 weeks of history, got {len(y)}")
        weeks = pd.DatetimeIndex(y.index)
        positive = y[y > 0]
        self.offset_ = float(self.offset_ratio * positive.median()) if len(positive) else 1.0
        self.offset_ = max(self.offset_, 1e-6)
        z = np.log(y.clip(lower=0).to_numpy() + self.offset_)
        X = self._exog(weeks)
        self.columns_ = [c for c in X.columns if X[c].abs().sum() > 0]
        exog = X[self.columns_].to_numpy() if self.columns_ else None
        self.d_ = choose_d(z, exog) if self.d is None else int(self.d)
        self.order_, self.results_, self.aic_table_ = select_order(
            z, exog, d=self.d_, p_max=self.p_max, q_max=self.q_max)
        self.aic_ = float(self.results_.aic)
        self.last_week_ = weeks[-1]
        return self

    def predict(self, horizon: int = HORIZON_WEEKS) -> pd.DataFrame:
        """Forecast the next ``horizon`` weeks.

        Returns:
            Columns ``yhat``, ``lower``, ``upper`` (the 1 - alpha interval), indexed
            by the weeks' Mondays; never below zero.
        """
        weeks = pd.date_range(self.last_week_ + pd.Timedelta(days=7), periods=horizon,
                              freq="W-MON")
        exog = self._exog(weeks)[self.columns_].to_numpy() if self.columns_ else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fc = self.results_.get_forecast(horizon, exog=exog)
            mean = np.asarray(fc.predicted_mean, dtype=float)
            ci = np.asarray(fc.conf_int(alpha=self.alpha), dtype=float)
        def back(v: np.ndarray) -> np.ndarray:  # log(y + c) -> y, monotone
            return np.maximum(np.exp(v) - self.offset_, 0.0)

        return pd.DataFrame({"yhat": back(mean), "lower": back(ci[:, 0]), "upper": back(ci[:, 1])},
                            index=pd.DatetimeIndex(weeks, name="week"))
