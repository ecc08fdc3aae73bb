"""Forecasting: ARIMA order recovery, seasonal regressors, backtest metrics, charts, storage."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import statsmodels.tsa.statespace.sarimax  # noqa: F401 - BLAS loaded before the limit below
from sqlalchemy import select
from statsmodels.tsa.arima_process import ArmaProcess
from threadpoolctl import threadpool_limits

from crm_ml import forecasting as fc
from crm_ml.db import models as m
from crm_ml.db import session_scope


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with threadpool_limits(limits=1):
        yield


def arma_sample(ar: list[float], ma: list[float], seed: int, n: int = 400) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ArmaProcess(ar, ma).generate_sample(n, distrvs=rng.standard_normal, burnin=200) + 5.0


# ------------------------------------------------------------------- known answers


def test_aic_recovers_the_order_of_a_simulated_arma_2_1() -> None:
    # y_t = 0.6 y_{t-1} - 0.3 y_{t-2} + e_t + 0.5 e_{t-1}
    y = arma_sample([1, -0.6, 0.3], [1, 0.5], seed=0)
    order, res, table = fc.select_order(y, d=0)
    assert order == (2, 0, 1)
    assert len(table) == 9 and min(table, key=table.get) == "2,0,1"
    ar1, ar2, ma1 = res.params[1:4]
    assert ar1 == pytest.approx(0.6, abs=0.15)
    assert ar2 == pytest.approx(-0.3, abs=0.15)
    assert ma1 == pytest.approx(0.5, abs=0.15)


def test_aic_recovers_the_order_of_a_simulated_ar_2() -> None:
    y = arma_sample([1, -0.5, 0.4], [1], seed=1)
    order, _res, _table = fc.select_order(y, d=0)
    assert order == (2, 0, 0)


def test_kpss_picks_the_differencing_order() -> None:
    walk = np.cumsum(np.random.default_rng(0).standard_normal(300))
    noise = np.random.default_rng(0).standard_normal(300)
    assert fc.choose_d(walk, None) == 1
    assert fc.choose_d(noise, None) == 0
    # an ARIMA(1,1,0): d by KPSS, then AIC finds p = 1
    diff = arma_sample([1, -0.6], [1], seed=2, n=300)
    y = np.cumsum(diff - 5.0)
    assert fc.choose_d(y, None) == 1
    assert fc.select_order(y, d=1)[0] == (1, 1, 0)


def test_fourier_terms_and_holiday_weeks() -> None:
    weeks = pd.date_range("2010-12-13", periods=4, freq="W-MON")
    hol = fc.holiday_dummies(weeks)
    assert hol["christmas"].tolist() == [0, 1, 0, 0]   # week of 20 Dec 2010 holds the 25th
    assert hol["new_year"].tolist() == [0, 0, 1, 0]    # week of 27 Dec holds 1 Jan 2011
    f = fc.fourier_terms(pd.date_range("2010-01-04", periods=106, freq="W-MON"), 2)
    assert list(f.columns) == ["sin1", "cos1", "sin2", "cos2"]
    # the same week a year later has (nearly) the same value: a yearly pattern
    np.testing.assert_allclose(f.iloc[0], f.iloc[52], atol=0.05)
    assert f["sin1"].abs().max() <= 1


def test_forecast_metrics_known_answer() -> None:
    detail = pd.DataFrame({
        "actual": [100.0, 0.0, 200.0],
        "yhat": [110.0, 10.0, 180.0],
        "lower": [90.0, 0.0, 190.0],
        "upper": [130.0, 20.0, 195.0],
        "naive": [80.0, 0.0, 260.0],
    })
    got = fc.forecast_metrics(detail)
    assert got["mape"] == pytest.approx((10 / 100 + 20 / 200) / 2 * 100)  # zero week left out
    assert got["mase"] == pytest.approx(((10 + 10 + 20) / 3) / ((20 + 0 + 60) / 3))
    assert got["rmse"] == pytest.approx(np.sqrt((100 + 100 + 400) / 3), abs=0.01)
    assert got["interval_coverage"] == pytest.approx(2 / 3, abs=1e-4)  # 200 is above 195
    assert got["seasonal_naive_mape"] == pytest.approx((20 / 100 + 60 / 200) / 2 * 100)


def seasonal_weekly(seed: int = 0, years: int = 2) -> pd.Series:
    """Two years of weekly revenue: autumn peak, closed New Year week, noise."""
    weeks = pd.date_range("2009-11-30", periods=52 * years + 1, freq="W-MON")
    t = (weeks + pd.Timedelta(days=3)).dayofyear.to_numpy() / 365.25
    rng = np.random.default_rng(seed)
    level = 150_000 * np.exp(0.45 * np.cos(2 * np.pi * (t - 0.85)) + rng.normal(0, 0.12, len(t)))
    hol = fc.holiday_dummies(weeks)
    level[hol["new_year"].to_numpy() == 1] = 0.0
    level[hol["christmas"].to_numpy() == 1] *= 0.2
    return pd.Series(level, index=weeks, name="revenue")


def test_seasonal_sarimax_follows_the_season_and_the_closed_week() -> None:
    y = seasonal_weekly()
    # one year of history (from 30 Nov 2009), then 13 weeks over Christmas and New Year
    model = fc.SeasonalSARIMAX(p_max=1, q_max=1).fit(y.iloc[:50])
    pred = model.predict(13)
    actual = y.iloc[50:63]
    assert list(pred.index) == list(actual.index)
    assert (pred["lower"] <= pred["yhat"]).all() and (pred["yhat"] <= pred["upper"]).all()
    assert (pred["lower"] >= 0).all()
    closed = fc.holiday_dummies(pred.index)["new_year"].to_numpy() == 1
    assert closed.any() and pred["yhat"][closed].max() < 1_000  # ~0 in the closed week
    open_weeks = actual[~closed].to_numpy()
    mape = np.mean(np.abs(pred["yhat"][~closed].to_numpy() - open_weeks) / open_weeks)
    assert mape < 0.25
    assert model.offset_ > 0 and model.d_ in (0, 1)


def test_backtest_rows_and_metrics_on_a_synthetic_series() -> None:
    y = seasonal_weekly(seed=3)
    metrics, detail = fc.backtest(y, n_origins=3, params={"p_max": 1, "q_max": 0})
    assert len(detail) == 12 and detail["week"].max() == y.index[-1]
    assert detail["origin"].nunique() == 3
    assert set(metrics) >= {"rmse", "mape", "mase", "interval_coverage", "seasonal_naive_mape"}
    # noise is 12% a week: both forecasts are close, the model smoother than last year
    assert metrics["mase"] < 1.2
    with pytest.raises(ValueError):
        fc.backtest(y.iloc[:60], n_origins=13)


def test_forecast_chart_png() -> None:
    y = seasonal_weekly()
    pred = fc.SeasonalSARIMAX(p_max=0, q_max=0, d=0).fit(y).predict(8)
    png = fc.forecast_chart_png(y, pred, weeks=4)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000
    png = fc.forecast_chart_png(y.iloc[:-4], pred.iloc[:4], actuals=y.iloc[-4:])
    assert png[:4] == b"\x89PNG"


def test_chart_of_the_stored_model_for_any_horizon(tmp_path) -> None:
    from crm_ml import registry

    y = seasonal_weekly()
    model = fc.SeasonalSARIMAX(p_max=0, q_max=0, d=0).fit(y)
    rows = model.predict(13).reset_index().assign(series="total")
    registry.save(fc.MODEL_NAME, fc.ForecastArtifact({"total": model}, {"total": y}, rows),
                  metrics={}, data_hash="0" * 64, models_dir=tmp_path)
    png = fc.chart_png(26, models_dir=tmp_path)
    assert png[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="no forecast model"):
        fc.chart_png(4, "country:Mars", models_dir=tmp_path)
    with pytest.raises(ValueError, match="between 1 and 52"):
        fc.chart_png(60, models_dir=tmp_path)
    with pytest.raises(FileNotFoundError):
        fc.chart_png(4, models_dir=tmp_path / "nothing")


def test_write_forecasts_replaces_the_series(sqlite_url: str) -> None:
    rows = pd.DataFrame({
        "series": ["total"] * 2 + ["country:France"] * 2,
        "week": pd.to_datetime(["2011-12-05", "2011-12-12"] * 2),
        "yhat": [1.0, 2.0, 3.0, 4.0], "lower": [0.5, 1.0, 2.0, 3.0], "upper": [2, 3, 4, 5],
    })
    with session_scope(sqlite_url) as s:
        assert fc.write_forecasts(session=s, rows=rows, model_version="v1") == 4
    with session_scope(sqlite_url) as s:
        fc.write_forecasts(session=s, rows=rows[rows["series"] == "total"], model_version="v2")
    with session_scope(sqlite_url) as s:
        got = s.execute(select(m.Forecast.series, m.Forecast.model_version)).all()
    assert sorted(got) == [("country:France", "v1"), ("country:France", "v1"),
                           ("total", "v2"), ("total", "v2")]


# ------------------------------------------------------------------- real data


@pytest.mark.slow
def test_backtest_beats_seasonal_naive_on_real_weekly_revenue() -> None:
    from crm_ml.datasets import read_online_retail
    from crm_ml.features.transactions import clean_online_retail

    tx = clean_online_retail(read_online_retail())
    series = fc.revenue_series(tx)
    total = series["total"]
    assert len(total) == 105 and (total == 0).sum() == 2  # the two New Year weeks
    assert total.index[-1] == pd.Timestamp("2011-11-28")  # the week of 5 Dec is incomplete
    assert {"country:United Kingdom", "country:EIRE", "country:Netherlands"} <= set(series)
    metrics, detail = fc.backtest(total)
    assert len(detail) == 52
    assert metrics["mase"] < 1.0
    assert metrics["mape"] < metrics["seasonal_naive_mape"]
    assert 0.85 <= metrics["interval_coverage"] <= 1.0


# ------------------------------------------------- the forecast from the as-of date


def _seed_forecast(url: str, weekly: list[float], last_order: str) -> None:
    import datetime as dt

    with session_scope(url) as s:
        s.add(m.Customer(id=12347, name="Acme", email="a@example.com", country="France"))
        s.flush()
        s.add(m.Order(id="1", customer_id=12347, country="France", kind="sale",
                      status="delivered", total=10,
                      invoiced_at=dt.datetime.fromisoformat(last_order)))
        for k, y in enumerate(weekly):
            s.add(m.Forecast(series="total", period_start=dt.date(2011, 12, 5)
                             + dt.timedelta(weeks=k), yhat=y, lower=y / 2, upper=y * 2,
                             model_version="v1"))


def test_forecast_reads_in_time_order_from_the_as_of_date(sqlite_url: str,
                                                          env: pytest.MonkeyPatch) -> None:
    import datetime as dt

    from crm_ml import sales
    from crm_ml.identity import Identity

    env.delenv("CRM_TODAY", raising=False)
    # the case: the high week (5 December) comes before the low one (26 December)
    _seed_forecast(sqlite_url, [213_000.0, 150_000.0, 90_000.0, 230.0, 120_000.0],
                   "2011-12-09 12:50")
    with session_scope(sqlite_url) as s:
        f = sales.sales_forecast(session=s, identity=Identity("rep", 2), weeks=4)
    first, second = f.extremes_in_time_order
    assert first.period_start < second.period_start
    assert (first.yhat, second.yhat) == (213_000.0, 230.0)
    assert f.points[0].period_start == dt.date(2011, 12, 5)  # the week holding 9 December
    assert f.as_of == dt.date(2011, 12, 9)
    assert f.as_of_note == "As of 9 December 2011, the last day of the loaded data."


def test_forecast_skips_weeks_before_a_set_as_of_date(sqlite_url: str,
                                                      env: pytest.MonkeyPatch) -> None:
    import datetime as dt

    from crm_ml import sales
    from crm_ml.identity import Identity

    env.setenv("CRM_TODAY", "2011-12-20")
    _seed_forecast(sqlite_url, [1.0, 2.0, 3.0, 4.0, 5.0], "2011-12-09 12:50")
    with session_scope(sqlite_url) as s:
        f = sales.sales_forecast(session=s, identity=Identity("rep", 2), weeks=13)
    assert [p.period_start for p in f.points][:1] == [dt.date(2011, 12, 19)]
    assert len(f.points) == 3
    assert f.as_of_note is not None and "20 December 2011" in f.as_of_note
