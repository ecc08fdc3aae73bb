"""Anomaly detectors: known answer on synthetic orders, and the small API."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crm_ml import anomalies
from crm_ml.features import anomalies as fa


def _normal_lines(n_orders: int, seed: int) -> pd.DataFrame:
    """Synthetic normal order lines: 50 customers, each with one country, daytime orders."""
    rng = np.random.default_rng(seed)
    rows = []
    start = pd.Timestamp("2011-01-03")
    for i in range(n_orders):
        cust = int(rng.integers(50))
        at = start + pd.Timedelta(days=int(rng.integers(120)), hours=int(rng.integers(9, 17)))
        for _ in range(int(rng.integers(3, 8))):
            rows.append({"invoice": f"N{i}", "customer_id": cust, "invoiced_at": at,
                         "quantity": int(rng.integers(4, 13)),
                         "unit_price": float(rng.uniform(1.0, 3.0)),
                         "country": ["United Kingdom", "France", "Germany"][cust % 3]})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def synthetic() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    fit = fa.order_table(_normal_lines(1500, seed=1))
    test = fa.order_table(_normal_lines(300, seed=2))
    history = fa.customer_history(fit)
    injected = anomalies.inject(test, history, n_per_kind=5, seed=3)
    return fit, pd.concat([test.assign(kind=""), injected], ignore_index=True), history


def test_injected_orders_rank_on_top_with_the_changed_feature_as_reason(synthetic) -> None:
    fit, test, history = synthetic
    det = anomalies.AnomalyDetector(random_state=0).fit(fa.order_features(fit, history))
    X = fa.order_features(test, history)
    k = int((test["kind"] != "").sum())
    top = np.argsort(-det.score(X), kind="stable")[:k]
    assert (test["kind"].to_numpy()[top] != "").mean() >= 0.8
    injected = test["kind"] != ""
    reasons = det.reasons(X[injected], k=2)
    for kind, names in zip(test.loc[injected, "kind"], reasons, strict=True):
        assert anomalies.KINDS[kind] in names or (
            kind == "huge_amount" and "log_amount_vs_customer" in names), (kind, names)


def test_baseline_scores_max_abs_z() -> None:
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0, 4.0], "b": [1.0, 1.0, 1.0, 1.0, 2.0]})
    det = anomalies.AnomalyDetector("robust_z").fit(X)
    z = det.robust_z(X)
    assert np.allclose(det.score(X), z.abs().max(axis=1))
    assert det.reasons(X.tail(1), k=1) == [["b"]]


def test_unknown_method_raises() -> None:
    with pytest.raises(ValueError):
        anomalies.AnomalyDetector("nope").fit(pd.DataFrame({"a": [1.0, 2.0]}))


def test_describe_reads_amount_ratio() -> None:
    row = pd.Series({"log_amount_vs_customer": np.log(40.0)})
    assert anomalies.describe("log_amount_vs_customer", row, 9.0) == (
        "amount 40x the customer's median")


def test_evaluate_and_unusual_orders_round_trip(synthetic, tmp_path, monkeypatch) -> None:
    fit, _test, _history = synthetic
    orders = fit.copy()
    metrics = anomalies.evaluate_anomalies(orders, holdout_weeks=4, n_per_kind=3)
    assert set(metrics) == {"precision_at_k", "recall_by_kind", "baseline_precision_at_k",
                            "baseline_recall_by_kind"}
    assert set(metrics["recall_by_kind"]) == set(anomalies.KINDS)
    art = anomalies.fit_artifact(orders)
    assert {"score", "reasons"} <= set(art.flagged_orders.columns)
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from crm_ml.db import models  # noqa: F401  (registers every table)
    from crm_ml.db.base import Base

    engine = create_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        n = anomalies.write_flagged(session=session, artifact=art, version="v1")
        assert n == len(art.flagged_orders) + len(art.flagged_weeks)
        session.commit()
        got = anomalies.unusual_orders(session=session, since="2011-03-01", limit=5)
        assert 0 < len(got) <= 5
        assert all(pd.Timestamp(r["invoiced_at"]) >= pd.Timestamp("2011-03-01") for r in got)
        assert all(isinstance(r["reasons"], list) and r["reasons"] for r in got)
        assert [r["score"] for r in got] == sorted((r["score"] for r in got), reverse=True)
        one = got[0]["customer_id"]
        mine = anomalies.unusual_orders(session=session, customer_ids=[one], limit=50)
        assert mine and {r["customer_id"] for r in mine} == {one}
