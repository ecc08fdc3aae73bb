"""Recommendations: item-item CF on a hand-made matrix, fallbacks, temporal evaluation."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sqlalchemy import func, insert, select
from threadpoolctl import threadpool_limits

from crm_ml import recommend as rc
from crm_ml.db import models as m
from crm_ml.db import session_scope


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with threadpool_limits(limits=1):
        yield


def tx_frame(rows: list[tuple[int, str, str]]) -> pd.DataFrame:
    """Transactions from ``(customer, stock_code, day)``; one invoice per customer and day."""
    df = pd.DataFrame(rows, columns=["customer_id", "stock_code", "invoiced_at"])
    df["invoiced_at"] = pd.to_datetime(df["invoiced_at"])
    df["invoice"] = df["customer_id"].astype(str) + "-" + df["invoiced_at"].dt.strftime("%Y%m%d")
    df["quantity"] = 1
    df["unit_price"] = 1.0
    df["amount"] = 1.0
    df["country"] = "United Kingdom"
    df["kind"] = "sale"
    return df


#: 1: A B; 2: A B C; 3: B C; 4: D E; 5: A. Everything bought in the last 30 days.
TINY = tx_frame([
    (1, "A", "2011-12-01"), (1, "B", "2011-12-01"),
    (2, "A", "2011-12-02"), (2, "B", "2011-12-02"), (2, "C", "2011-12-02"),
    (3, "B", "2011-12-03"), (3, "C", "2011-12-03"),
    (4, "D", "2011-12-04"), (4, "E", "2011-12-04"),
    (5, "A", "2011-12-05"),
])
SEGMENTS = pd.Series({1: "Loyal", 2: "Loyal", 3: "Loyal", 4: "Lost", 5: "Lost"})


def test_cosine_similarity_of_a_tiny_matrix() -> None:
    # columns A B C D E, rows customers 1..5 as in TINY
    X = sp.csr_matrix(np.array([
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [0, 1, 1, 0, 0],
        [0, 0, 0, 1, 1],
        [1, 0, 0, 0, 0],
    ], dtype=float))
    S = rc.cosine_topk(X, k=0).toarray()
    assert S[0, 1] == pytest.approx(2 / 3)             # A-B: 2 common buyers of 3 and 3
    assert S[0, 2] == pytest.approx(1 / np.sqrt(6))    # A-C
    assert S[3, 4] == pytest.approx(1.0)               # D-E always together
    assert S[0, 3] == 0 and np.all(np.diag(S) == 0)
    np.testing.assert_allclose(S, S.T)
    top1 = rc.cosine_topk(X, k=1).toarray()
    assert (top1 > 0).sum(axis=1).tolist() == [1, 1, 1, 1, 1]
    assert top1[1].argmax() == 0 or top1[1].argmax() == 2  # B's single best: A or C (tie)


def test_item_cf_recommends_the_co_bought_items_first() -> None:
    model = rc.ItemCFRecommender(popularity_weight=0.0).fit(TINY, SEGMENTS)
    recs = model.recommend(5, n=2)
    assert [(code, src) for code, _score, src in recs] == [("B", "item_cf"), ("C", "item_cf")]
    assert recs[0][1] == pytest.approx(1.0)  # scaled to the customer's best
    assert recs[1][1] == pytest.approx((1 / np.sqrt(6)) / (2 / 3))


def test_already_bought_items_are_never_recommended() -> None:
    model = rc.ItemCFRecommender().fit(TINY, SEGMENTS)
    recs = model.recommend_many(None, n=5)
    bought = TINY.groupby("customer_id")["stock_code"].agg(set)
    for cid, group in recs.groupby("customer_id"):
        assert not set(group["stock_code"]) & bought[cid]
        assert group["rank"].tolist() == list(range(1, len(group) + 1))


def test_cold_start_falls_back_to_segment_then_popularity() -> None:
    model = rc.ItemCFRecommender(popularity_weight=0.0).fit(TINY, SEGMENTS)
    # 4 bought D and E, whose only neighbour is each other: no CF candidate left.
    # Lost customers (4, 5) bought A, D, E: A is the segment's pick; then best sellers.
    assert [(c, s) for c, _v, s in model.recommend(4, n=3)] == [
        ("A", "segment"), ("B", "popularity"), ("C", "popularity")]
    # an unknown customer: best sellers (A and B have 3 buyers each, then C)
    assert [(c, s) for c, _v, s in model.recommend(99, n=3)] == [
        ("A", "popularity"), ("B", "popularity"), ("C", "popularity")]
    assert model.popular(2) == [("A", 1.0), ("B", 1.0)]
    assert [c for c, _ in model.segment_popular("Loyal")] == ["B", "A", "C"]
    assert model.segment_popular("no such segment") == []


def test_profiles_decay_with_age() -> None:
    df = tx_frame([(1, "A", "2011-09-01"), (1, "B", "2011-12-01"), (2, "A", "2011-12-01"),
                   (2, "B", "2011-12-01")])
    model = rc.ItemCFRecommender(decay_days=90.0).fit(df, pd.Series({1: "x", 2: "x"}))
    row = model.profiles_[0].toarray().ravel()
    assert row[1] == pytest.approx(1.0)
    assert row[0] == pytest.approx(np.exp(-91 / 90), rel=1e-3)


def test_items_outside_the_history_window_are_not_recommended() -> None:
    df = pd.concat([TINY, tx_frame([(6, "OLD", "2010-01-01"), (6, "A", "2011-12-05")])])
    model = rc.ItemCFRecommender(history_days=180).fit(df, None)
    assert "OLD" not in set(model.items_)
    assert "OLD" not in set(model.recommend_many(None, n=5)["stock_code"])


def _grouped_purchases(seed: int = 0) -> tuple[pd.DataFrame, pd.Timestamp]:
    """4 groups of 10 items; each customer buys in their own group, before and after."""
    rng = np.random.default_rng(seed)
    rows = []
    cutoff = pd.Timestamp("2011-09-01")
    for cid in range(100, 180):
        group = cid % 4
        items = [f"G{group}-{i}" for i in rng.permutation(10)]
        for k, item in enumerate(items[:4]):
            rows.append((cid, item, str((cutoff - pd.Timedelta(days=10 + 7 * k)).date())))
        for k, item in enumerate(items[4:7]):
            rows.append((cid, item, str((cutoff + pd.Timedelta(days=5 + 7 * k)).date())))
    # a few very popular items bought by everybody long before
    for cid in range(100, 180):
        rows.append((cid, "HIT", str((cutoff - pd.Timedelta(days=60)).date())))
    return tx_frame(rows), cutoff


def test_temporal_evaluation_cf_beats_popularity_when_tastes_cluster() -> None:
    tx, cutoff = _grouped_purchases()
    res = rc.evaluate_temporal_split(tx, cutoff=cutoff, horizon_days=91)
    assert res["customers"] == 80
    assert res["precision_at_10"] > 0.2
    assert res["precision_at_10"] > res["popularity_precision_at_10"]
    assert 0 <= res["recall_at_10"] <= 1
    assert set(res) >= {"precision_at_10", "recall_at_10", "popularity_precision_at_10",
                        "segment_precision_at_10"}


def test_tune_ranks_parameter_sets_on_a_validation_split() -> None:
    tx, cutoff = _grouped_purchases()
    rows = rc.tune(tx, [{"n_neighbors": 1}, {"n_neighbors": 20}], cutoff=cutoff,
                   horizon_days=91)
    assert [r["n_neighbors"] for r in rows] in ([20, 1], [1, 20])
    assert rows[0]["precision_at_10"] >= rows[1]["precision_at_10"]
    assert all(r["cutoff"] == "2011-09-01" for r in rows)


def test_all_rows_and_write_recommendations(sqlite_url: str) -> None:
    model = rc.ItemCFRecommender().fit(TINY, SEGMENTS)
    rows = rc.all_rows(model, n=3)
    anon = rows[rows["customer_id"].isna()]
    assert set(anon["segment"].dropna()) == {"Loyal", "Lost"}
    assert (anon["segment"].isna() & (anon["source"] == "popularity")).sum() == 3
    with session_scope(sqlite_url) as s:
        s.execute(insert(m.Customer), [{"id": c, "name": f"c{c}", "email": f"{c}@x.org",
                                        "country": "UK"} for c in (1, 2, 3, 4)])  # 5 unknown
        s.execute(insert(m.Product), [{"stock_code": c, "description": c, "unit_price": 1}
                                      for c in "ABCDE"])
    with session_scope(sqlite_url) as s:
        n = rc.write_recommendations(session=s, rows=rows, model_version="v1")
    with session_scope(sqlite_url) as s:
        total = s.scalar(select(func.count()).select_from(m.Recommendation))
        mine = s.execute(select(m.Recommendation.stock_code, m.Recommendation.source)
                         .where(m.Recommendation.customer_id == 4)
                         .order_by(m.Recommendation.rank)).all()
        segment_rows = s.scalar(select(func.count()).select_from(m.Recommendation)
                                .where(m.Recommendation.customer_id.is_(None),
                                       m.Recommendation.segment == "Lost"))
    assert n == total == len(rows) - (rows["customer_id"] == 5).sum()
    assert [tuple(r) for r in mine][0] == ("A", "segment")
    assert segment_rows >= 1


@pytest.mark.slow
def test_item_cf_beats_popularity_on_real_data() -> None:
    from crm_ml.datasets import read_online_retail
    from crm_ml.features.transactions import clean_online_retail

    tx = clean_online_retail(read_online_retail())
    res = rc.evaluate_temporal_split(tx)
    assert res["cutoff"] == "2011-09-09"
    assert res["customers"] > 2000
    assert res["precision_at_10"] > 0.06
    assert res["precision_at_10"] > 1.3 * res["popularity_precision_at_10"]
    assert res["recall_at_10"] > res["popularity_recall_at_10"]
