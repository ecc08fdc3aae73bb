"""Training pipeline: order, timing, lazy imports and errors; a real run on a small CRM."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from crm_ml import pipeline, registry
from crm_ml.datasets import RETAIL_COLUMNS
from crm_ml.db import models as m
from crm_ml.db import session_scope


def test_resolve_keeps_the_training_order() -> None:
    assert pipeline.resolve("all") == ["segments", "recommendations", "forecast", "leads",
                                       "churn", "sentiment", "anomalies", "nba", "clv",
                                       "topics"]
    assert pipeline.resolve("forecast, segments") == ["segments", "forecast"]
    assert pipeline.resolve("Churn") == ["churn"]
    with pytest.raises(ValueError, match="unknown model"):
        pipeline.resolve("everything")


def _fake(name: str, calls: list[tuple[str, dict[str, Any]]], *, fail: bool = False
          ) -> types.ModuleType:
    module = types.ModuleType(name)

    def train_and_store(*, url: str | None = None, models_dir: Path | None = None,
                        progress: Any = None) -> dict[str, Any]:
        calls.append((name, {"url": url, "models_dir": models_dir}))
        progress(f"{name}: working")
        if fail:
            raise RuntimeError(f"{name} exploded")
        return {"score": len(calls)}

    module.train_and_store = train_and_store  # type: ignore[attr-defined]
    return module


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Replace the six model modules by fakes recording their calls."""
    calls: list[tuple[str, dict[str, Any]]] = []
    models = {}
    for model in pipeline.MODELS:
        mod_name = f"fake_crm_{model}"
        monkeypatch.setitem(sys.modules, mod_name, _fake(mod_name, calls,
                                                         fail=model == "churn"))
        models[model] = mod_name
    monkeypatch.setattr(pipeline, "MODELS", models)
    from crm_ml import coldstart

    monkeypatch.setattr(coldstart, "fill", lambda **_k: calls.append(("coldstart", {})) or 0)
    return calls


def test_train_runs_every_model_in_order_and_times_it(fakes: list, tmp_path: Path) -> None:
    messages: list[str] = []
    with pytest.raises(pipeline.TrainingError, match="churn exploded") as info:
        pipeline.train("all", url="sqlite:///x.db", models_dir=tmp_path,
                       progress=messages.append)
    assert [name for name, _ in fakes] == [f"fake_crm_{n}" for n in pipeline.MODELS]  # churn
    # failed, so the cold-start defaults were not written
    assert all(kw == {"url": "sqlite:///x.db", "models_dir": tmp_path} for _, kw in fakes)
    results = info.value.results  # type: ignore[attr-defined]
    assert list(results) == list(pipeline.MODELS)
    assert not results["churn"].ok and results["sentiment"].ok  # the others still trained
    assert results["segments"].metrics == {"score": 1}
    assert all(r.seconds >= 0 for r in results.values())
    assert any("working" in msg for msg in messages)


def test_one_model_stops_at_its_error(fakes: list) -> None:
    with pytest.raises(pipeline.TrainingError, match="churn"):
        pipeline.train("churn", progress=False)
    results = pipeline.train("segments,forecast", progress=False)
    assert list(results) == ["segments", "forecast"] and all(r.ok for r in results.values())


def test_rich_progress_display_runs(fakes: list) -> None:
    results = pipeline.train("segments", progress=True)
    assert results["segments"].ok


def test_a_missing_module_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "MODELS", {"churn": "crm_ml.no_such_module"})
    with pytest.raises(pipeline.TrainingError, match="crm_ml.no_such_module is missing"):
        pipeline.train("churn", progress=False)


# ------------------------------------------------------------------- a real run


def synthetic_retail(seed: int = 0) -> pd.DataFrame:
    """Two years of Online Retail II-shaped sales of 80 customers in 4 taste groups.

    Weekly orders follow a yearly season (autumn peak), nobody buys in the New
    Year week, and customers start and stop at different times, so that every
    kind of RFM customer exists.
    """
    rng = np.random.default_rng(seed)
    days = pd.date_range("2009-12-01", "2011-12-09", freq="D")
    countries = ["United Kingdom", "United Kingdom", "France", "Germany", "EIRE"]
    rows = []
    invoice = 600_000
    for c in range(80):
        cid = 20_000 + c
        group = c % 4
        start = days[int(rng.integers(0, 500))]
        stop = days[int(rng.integers(400, len(days)))] if c % 3 == 0 else days[-1]
        rate = rng.choice([0.01, 0.03, 0.08])
        country = countries[c % len(countries)]
        for day in days[(days >= start) & (days <= stop)]:
            season = 1.0 + 0.8 * np.cos(2 * np.pi * (day.dayofyear / 365.25 - 0.87))
            if (day.month == 12 and day.day >= 23) or (day.month == 1 and day.day <= 3):
                continue
            if rng.random() < rate * season:
                invoice += 1
                for item in rng.choice(10, size=3, replace=False):
                    rows.append((str(invoice), f"9{group}{item:03d}", f"ITEM {group}-{item}",
                                 int(rng.integers(1, 12)), day + pd.Timedelta(hours=10),
                                 float(rng.choice([0.85, 1.25, 2.1, 4.95])), cid, country))
    df = pd.DataFrame(rows, columns=RETAIL_COLUMNS)
    df["Customer ID"] = df["Customer ID"].astype("Int64")
    return df


@pytest.fixture(scope="module")
def small_crm(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite CRM holding the synthetic sales, loaded by the project's loader."""
    from crm_ml import loader
    from crm_ml.db import migrate
    from crm_ml.db.session import get_engine

    url = f"sqlite:///{tmp_path_factory.mktemp('crm') / 'crm.db'}"
    migrate.upgrade(url)
    tables = loader.prepare_retail(synthetic_retail())
    with get_engine(url).begin() as conn:
        loader.load_retail(conn, tables, data_hash="synthetic")
    return url


@pytest.mark.slow
def test_segments_recommendations_forecast_on_a_small_crm(small_crm: str, tmp_path: Path) -> None:
    from crm_ml import report

    messages: list[str] = []
    results = pipeline.train("segments,recommendations,forecast", url=small_crm,
                             models_dir=tmp_path, progress=messages.append)
    assert list(results) == ["segments", "recommendations", "forecast"]
    assert set(results["segments"].metrics) == {"k", "silhouette", "segment_counts"}
    assert 2 <= results["segments"].metrics["k"] <= 10
    assert set(results["forecast"].metrics) == {"rmse", "mape", "mase", "interval_coverage",
                                                "seasonal_naive_mape"}
    assert set(results["recommendations"].metrics) == {
        "precision_at_10", "recall_at_10", "popularity_precision_at_10"}
    with session_scope(small_crm) as s:
        buyers = s.scalar(select(func.count(func.distinct(m.Order.customer_id)))
                          .where(m.Order.kind == "sale"))
        assert s.scalar(select(func.count()).select_from(m.Segment)) == buyers
        per_customer = s.scalar(select(func.count(func.distinct(m.Recommendation.customer_id))))
        assert per_customer == buyers
        anonymous = s.execute(select(m.Recommendation.segment, func.count())
                              .where(m.Recommendation.customer_id.is_(None))
                              .group_by(m.Recommendation.segment)).all()
        assert any(seg is None for seg, _ in anonymous)  # overall best sellers
        assert any(seg is not None for seg, _ in anonymous)  # per segment
        series = set(s.scalars(select(m.Forecast.series).distinct()))
        assert "total" in series and any(x.startswith("country:") for x in series)
        assert any(x.startswith("segment:") for x in series)
        assert s.scalar(select(func.count()).select_from(m.Forecast)
                        .where(m.Forecast.series == "total")) == 13
        runs = set(s.scalars(select(m.ModelRun.name)))
    assert runs == {"segmentation", "recommendations", "forecast"}
    for name in runs:
        assert registry.latest(name, models_dir=tmp_path) is not None
    assert (registry.latest("forecast", models_dir=tmp_path).path / "backtest.csv").is_file()
    from crm_ml.forecasting import chart_png

    assert chart_png(20, "total", models_dir=tmp_path)[:4] == b"\x89PNG"
    shown = json.loads(report.metrics_json(models_dir=tmp_path, url=small_crm))
    assert shown["segmentation"] == results["segments"].metrics
    assert shown["lead_scoring"] is None
    assert messages
