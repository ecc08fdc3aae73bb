"""Segmentation: RFM of hand-made transactions, score and segment rules, K-Means k choice."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import sklearn.cluster  # noqa: F401 - OpenMP loaded before the thread limit below
from sqlalchemy import insert, select
from threadpoolctl import threadpool_limits

from crm_ml import segmentation as sg
from crm_ml.db import models as m
from crm_ml.db import session_scope
from crm_ml.features.transactions import (
    clean_online_retail,
    complete_weeks,
    is_product_code,
    rfm_table,
    weekly_revenue,
)
from tests.support.retail import retail_frame


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with threadpool_limits(limits=1):
        yield


def tx_frame(rows: list[tuple[str, int, str, str, int, float]]) -> pd.DataFrame:
    """Transactions from ``(invoice, customer, time, stock_code, qty, price)`` tuples."""
    df = pd.DataFrame(rows, columns=["invoice", "customer_id", "invoiced_at", "stock_code",
                                     "quantity", "unit_price"])
    df["invoiced_at"] = pd.to_datetime(df["invoiced_at"])
    df["amount"] = df["quantity"] * df["unit_price"]
    df["country"] = "United Kingdom"
    df["kind"] = "sale"
    return df


HAND = tx_frame([
    ("1", 1, "2011-01-03 10:00", "A", 2, 5.0),   # customer 1: two invoices, 3 lines
    ("1", 1, "2011-01-03 10:00", "B", 1, 10.0),
    ("2", 1, "2011-01-30 23:59", "A", 4, 5.0),
    ("3", 2, "2011-01-10 09:00", "C", 1, 100.0),  # customer 2: one invoice
    ("4", 3, "2011-01-31 08:00", "A", 1, 5.0),    # customer 3: the last day
])


# ------------------------------------------------------------------- RFM features


def test_rfm_of_hand_made_transactions() -> None:
    rfm = rfm_table(HAND)
    # reference = the day after the last transaction = 2011-02-01
    assert rfm.loc[1, ["recency_days", "frequency", "monetary"]].tolist() == [2, 2, 40.0]
    assert rfm.loc[2, ["recency_days", "frequency", "monetary"]].tolist() == [22, 1, 100.0]
    assert rfm.loc[3, ["recency_days", "frequency", "monetary"]].tolist() == [1, 1, 5.0]


def test_rfm_with_an_explicit_reference_ignores_later_purchases() -> None:
    rfm = rfm_table(HAND, reference=pd.Timestamp("2011-01-15"))
    assert sorted(rfm.index) == [1, 2]
    assert rfm.loc[1, ["recency_days", "frequency", "monetary"]].tolist() == [12, 1, 20.0]


def test_clean_online_retail_keeps_valid_product_sales_only() -> None:
    tx = clean_online_retail(retail_frame())
    # kept: 500001 (two product lines; POST dropped), 500002, 500007; dropped: no customer,
    # cancellation, zero price, bank charges
    assert tx["invoice"].tolist() == ["500001", "500001", "500002", "500007"]
    assert tx["amount"].round(2).tolist() == [15.3, 20.34, 30.6, 12.75]
    assert set(tx["kind"]) == {"sale"}
    assert tx["customer_id"].dtype == "int64"


def test_non_product_codes() -> None:
    for code in ("POST", "DOT", "M", "m", "C2", "BANK CHARGES", "ADJUST", "TEST001",
                 "gift_0001_20", "PADS"):
        assert not is_product_code(code), code
    for code in ("85123A", "22423", "79323W", "DCGS0003"):
        assert is_product_code(code), code


def test_complete_weeks_leave_out_the_week_under_way() -> None:
    df = tx_frame([("1", 1, "2011-11-29 10:00", "A", 1, 1.0),   # a Tuesday
                   ("2", 1, "2011-12-09 12:00", "A", 1, 2.0)])  # a Friday: its week is open
    weeks = complete_weeks(df)
    assert list(weeks) == [pd.Timestamp("2011-11-28")]
    rev = weekly_revenue(df)
    assert rev.tolist() == [1.0]
    df2 = tx_frame([("1", 1, "2011-11-29 10:00", "A", 1, 1.0),
                    ("2", 1, "2011-12-11 12:00", "A", 1, 2.0)])  # Sunday closes the week
    assert weekly_revenue(df2).tolist() == [1.0, 2.0]


def test_weekly_revenue_by_group_fills_empty_weeks_with_zero() -> None:
    df = tx_frame([("1", 1, "2011-01-03 10:00", "A", 1, 1.0),
                   ("2", 2, "2011-01-17 10:00", "A", 1, 3.0),
                   ("3", 2, "2011-01-23 10:00", "A", 1, 4.0)])
    df.loc[1:, "country"] = "France"
    by = weekly_revenue(df, by="country")
    assert by["France"].tolist() == [0.0, 0.0, 7.0]
    assert by["United Kingdom"].tolist() == [1.0, 0.0, 0.0]


# ------------------------------------------------------------------- scores and segments


def test_segment_rules() -> None:
    assert sg.rfm_segment(5, 5) == "Champions"
    assert sg.rfm_segment(5, 1) == "New Customers"
    assert sg.rfm_segment(4, 1) == "Promising"
    assert sg.rfm_segment(4, 4) == "Loyal"
    assert sg.rfm_segment(3, 3) == "Need Attention"
    assert sg.rfm_segment(3, 1) == "About to Sleep"
    assert sg.rfm_segment(5, 2) == "Potential Loyalists"
    assert sg.rfm_segment(2, 3) == "At Risk"
    assert sg.rfm_segment(1, 5) == "Can't Lose"
    assert sg.rfm_segment(2, 1) == "Hibernating"
    assert sg.rfm_segment(1, 1) == "Lost"
    with pytest.raises(ValueError):
        sg.rfm_segment(0, 3)


def test_every_score_pair_has_one_segment_and_every_segment_is_reachable() -> None:
    seen = set()
    for r in range(1, 6):
        for f in range(1, 6):
            matches = [name for rs, fs, name in sg.SEGMENT_RULES if str(r) in rs and str(f) in fs]
            # first match wins; only Lost overlaps (with Hibernating's corner)
            assert matches[0] == sg.rfm_segment(r, f)
            assert len(matches) == 1 or matches == ["Lost", "Hibernating"]
            seen.add(matches[0])
    assert seen == set(sg.SEGMENTS)


def test_quintile_scores_give_ties_one_score() -> None:
    values = np.array([1, 1, 1, 1, 1, 1, 2, 3, 5, 9])
    edges = sg.quintile_edges(values)
    scores = sg.quintile_scores(values, edges)
    assert len(set(scores[:6])) == 1 and scores[0] == 1
    assert scores[-1] == 5
    assert np.all(np.diff(scores) >= 0)
    recency = sg.quintile_scores(np.array([1, 400]), np.array([20, 59, 187, 409]), reverse=True)
    assert recency.tolist() == [5, 2]


def test_elbow_of_a_known_curve() -> None:
    assert sg.elbow_k([2, 3, 4, 5, 6], [100, 40, 20, 15, 12]) == 3
    assert sg.elbow_k([2, 3, 4, 5], [10, 10, 10, 10]) == 2


def test_cluster_names() -> None:
    assert sg.cluster_name(np.array([-1.0, 1.2, 1.0])) == "Recent frequent high-spend buyers"
    assert sg.cluster_name(np.array([1.0, -1.0, -0.9])) == "Lapsed one-off low-spend buyers"
    assert sg.cluster_name(np.array([0.0, 0.1, 0.0])) == "Cooling occasional mid-spend buyers"


def _blobs(seed: int = 0) -> pd.DataFrame:
    """Three well separated customer groups in log-RFM space."""
    rng = np.random.default_rng(seed)
    groups = [(5, 30, 10_000), (60, 5, 1_000), (400, 1, 100)]
    rows = []
    for r, f, mon in groups:
        for _ in range(150):
            noise = np.exp(rng.normal(0, 0.1, size=3))
            rows.append((r * noise[0], max(1, round(f * noise[1])), mon * noise[2]))
    df = pd.DataFrame(rows, columns=["recency_days", "frequency", "monetary"])
    df["recency_days"] = df["recency_days"].round().astype(int)
    df.index = pd.RangeIndex(1000, 1000 + len(df), name="customer_id")
    return df


def test_kmeans_finds_three_blobs() -> None:
    model = sg.RFMSegmenter(k_max=6).fit(_blobs())
    assert model.k_ == 3
    assert model.silhouette_ > 0.7
    assert len(model.inertias_) == len(model.ks_) == 5
    names = set(model.cluster_names_.values())
    assert "Recent frequent high-spend buyers" in names
    assert "Lapsed one-off low-spend buyers" in names
    seg = model.transform(_blobs())
    assert seg["cluster"].nunique() == 3
    metrics = model.metrics(seg)
    assert set(metrics) == {"k", "silhouette", "segment_counts"}
    assert sum(metrics["segment_counts"].values()) == len(seg)
    assert list(metrics["segment_counts"]) == list(sg.SEGMENTS)
    assert model.profiles_["size"].sum() == len(seg)


def test_fixed_seed_gives_the_same_clusters() -> None:
    a = sg.RFMSegmenter(k_max=5).fit(_blobs()).transform(_blobs())
    b = sg.RFMSegmenter(k_max=5).fit(_blobs()).transform(_blobs())
    pd.testing.assert_frame_equal(a, b)


def test_write_segments_only_for_known_customers(sqlite_url: str) -> None:
    blobs = _blobs()
    model = sg.RFMSegmenter(k_max=4).fit(blobs)
    seg = model.transform(blobs)
    known = list(seg.index[:100])
    with session_scope(sqlite_url) as s:
        s.execute(insert(m.Customer), [{"id": int(c), "name": f"c{c}", "email": f"{c}@x.org",
                                        "country": "UK"} for c in known])
    with session_scope(sqlite_url) as s:
        n = sg.write_segments(session=s, segments=seg, model_version="v1")
    assert n == 100
    with session_scope(sqlite_url) as s:
        stored = sg.read_segments(session=s)
        row = s.get(m.Segment, int(known[0]))
        assert row is not None and row.model_version == "v1"
        assert row.rfm_segment == seg.loc[known[0], "rfm_segment"]
        assert 1 <= row.r_score <= 5
        assert len(s.scalars(select(m.Segment.customer_id)).all()) == 100
    assert len(stored) == 100


# ------------------------------------------------------------------- real data


@pytest.mark.slow
def test_segmentation_of_the_real_customers() -> None:
    from crm_ml.datasets import read_online_retail

    tx = clean_online_retail(read_online_retail())
    model, seg = sg.segment_customers(tx)
    metrics = model.metrics(seg)
    assert len(seg) == 5852
    assert 3 <= metrics["k"] <= 6
    assert metrics["silhouette"] > 0.3
    counts = metrics["segment_counts"]
    assert sum(counts.values()) == 5852
    assert all(counts[name] > 0 for name in sg.SEGMENTS)
    # Champions buy more often and spend more than the Lost
    champ = seg[seg["rfm_segment"] == "Champions"]
    lost = seg[seg["rfm_segment"] == "Lost"]
    assert champ["monetary"].median() > 10 * lost["monetary"].median()
