"""Churn: labels and features on hand-made orders, no leakage, CRM reads and writes, targets."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select
from threadpoolctl import threadpool_limits

from crm_ml import churn, registry
from crm_ml.db import models as m
from crm_ml.db import session_scope
from crm_ml.features import churn as fc
from tests.support.retail import retail_frame

CUTOFF = pd.Timestamp("2011-01-01")


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with threadpool_limits(limits=1):
        yield


def _orders(rows: list[tuple[str, int, str, str, float]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=fc.ORDER_COLUMNS)
    df["invoiced_at"] = pd.to_datetime(df["invoiced_at"])
    return df


#: Customer 1 buys monthly and again after the cutoff; 2 bought once long ago;
#: 3 only buys after the cutoff; 4 has a cancellation and returns exactly 90 days
#: after the cutoff (outside the window); 5 buys exactly at the cutoff.
ORDERS = _orders([
    ("1001", 1, "2010-09-15 10:00", "sale", 100.0),
    ("1002", 1, "2010-10-15 10:00", "sale", 50.0),
    ("1003", 1, "2010-11-15 10:00", "sale", 30.0),
    ("1004", 1, "2010-12-15 10:00", "sale", 20.0),
    ("1005", 1, "2011-01-20 10:00", "sale", 40.0),
    ("2001", 2, "2010-03-01 09:00", "sale", 500.0),
    ("3001", 3, "2011-02-01 09:00", "sale", 10.0),
    ("4001", 4, "2010-12-01 12:00", "sale", 80.0),
    ("4002", 4, "2010-12-11 12:00", "sale", 20.0),
    ("C4003", 4, "2010-12-12 12:00", "cancellation", 20.0),
    ("4004", 4, "2011-04-01 00:00", "sale", 70.0),
    ("5001", 5, "2010-06-01 08:00", "sale", 60.0),
    ("5002", 5, "2011-01-01 00:00", "sale", 60.0),
])


# --------------------------------------------------------------------------- known answers

def test_labels_on_hand_made_orders() -> None:
    X = fc.build_features(ORDERS, CUTOFF)
    assert X.index.tolist() == [1, 2, 4, 5]  # 3 has bought nothing yet
    y = fc.build_labels(ORDERS, CUTOFF, X.index)
    # 1 buys on Jan 20 (stays); 2 never returns; 4 returns on day 90 exactly, outside
    # [cutoff, cutoff + 90 days); 5 buys at the cutoff itself, inside the window.
    assert y.to_dict() == {1: 0, 2: 1, 4: 1, 5: 0}


def test_features_on_hand_made_orders() -> None:
    X = fc.build_features(ORDERS, CUTOFF)
    one = X.loc[1]
    assert one["frequency"] == 4 and one["monetary"] == 200.0 and one["avg_basket"] == 50.0
    assert one["recency_days"] == pytest.approx(16 + 14 / 24)  # Dec 15 10:00 -> Jan 1
    assert one["tenure_days"] == pytest.approx(107 + 14 / 24)
    assert one["mean_gap_days"] == pytest.approx(91 / 3)
    assert one["orders_last_90"] == 3 and one["orders_prev_90"] == 1  # Oct 3 = cutoff - 90
    assert one["order_trend"] == 2 and one["cancellation_share"] == 0
    four = X.loc[4]
    assert four["frequency"] == 2 and four["cancellation_share"] == pytest.approx(1 / 3)
    assert four["last_gap_ratio"] == pytest.approx(1.0)
    two = X.loc[2]
    assert np.isnan(two["mean_gap_days"]) and two["purchase_days"] == 1
    five = X.loc[5]
    assert five["frequency"] == 1  # the order at the cutoff is the label's, not a feature
    assert list(X.columns) == [*fc.FEATURES, "first_purchase", "last_purchase"]


def test_features_never_see_the_future() -> None:
    later = _orders([("9001", 2, "2011-01-02 10:00", "sale", 999.0),
                     ("C9002", 1, "2011-01-03 10:00", "cancellation", 5.0)])
    before = fc.build_features(ORDERS, CUTOFF)
    after = fc.build_features(pd.concat([ORDERS, later], ignore_index=True), CUTOFF)
    pd.testing.assert_frame_equal(before, after)


def test_line_level_input_is_collapsed_to_orders() -> None:
    lines = pd.concat([ORDERS, ORDERS.assign(amount=1.0)], ignore_index=True)
    X = fc.build_features(lines, CUTOFF)
    assert X.loc[1, "frequency"] == 4
    assert X.loc[1, "monetary"] == 204.0


def test_snapshots_refuse_label_windows_past_the_data() -> None:
    with pytest.raises(ValueError, match="label window"):
        fc.build_snapshots(ORDERS, [pd.Timestamp("2011-03-01")])
    X, y = fc.build_snapshots(ORDERS, [pd.Timestamp("2010-10-01"), CUTOFF])
    assert len(X) == len(y) and set(X["cutoff"]) == {pd.Timestamp("2010-10-01"), CUTOFF}


def test_cutoffs_keep_training_labels_before_the_test_snapshot() -> None:
    days = pd.date_range("2009-12-01", "2011-12-09", freq="7D")
    orders = _orders([(str(i), 1, str(d), "sale", 1.0) for i, d in enumerate(days)])
    cuts = churn.cutoffs(orders)
    assert cuts["score"] == pd.Timestamp(days[-1].normalize() + pd.Timedelta(days=1))
    assert cuts["test"] == cuts["score"] - pd.Timedelta(days=90)
    assert len(cuts["train"]) == churn.N_SNAPSHOTS
    assert max(cuts["train"]) + pd.Timedelta(days=90) <= cuts["test"]
    assert max(cuts["final_train"]) == cuts["test"]


def test_orders_from_raw_retail_rows() -> None:
    orders = fc.orders_from_retail(retail_frame()).set_index("invoice")
    # Valid sales with a customer id; postage and bank charges left out; the guest
    # order, the zero-price line and the fee-only invoice give no order.
    assert sorted(orders.index) == ["500001", "500002", "500007", "C500004"]
    assert orders.loc["500001", "amount"] == pytest.approx(6 * 2.55 + 6 * 3.39)
    assert orders.loc["C500004", "kind"] == "cancellation"
    assert orders.loc["C500004", "amount"] == pytest.approx(2 * 2.55)


@pytest.mark.parametrize(("group", "values", "text"), [
    ("recency", {"recency_days": 140.2, "mean_gap_days": np.nan}, "no purchase for 140 days"),
    ("recency", {"recency_days": 140.0, "mean_gap_days": 20.0},
     "no purchase for 140 days (usually orders every 20 days)"),
    ("recency", {"recency_days": 12.0, "mean_gap_days": 20.0}, "last purchase 12 days ago"),
    ("trend", {"orders_last_90": 1, "orders_prev_90": 4, "last_gap_ratio": 1.0,
               "spend_trend": 0.0}, "orders becoming rarer (1 in the last 3 months, 4 in the 3 "
                                    "before)"),
    ("trend", {"orders_last_90": 0, "orders_prev_90": 0, "last_gap_ratio": 1.0,
               "spend_trend": 0.0}, "no orders in the last 6 months"),
    ("frequency", {"frequency": 1, "tenure_days": 400}, "only one order so far"),
    ("frequency", {"frequency": 12, "tenure_days": 365}, "12 orders in 12 months"),
    ("cancellations", {"cancellation_share": 0.25}, "cancelled 25% of orders"),
    ("spend", {"monetary": 1234.4}, "spent £1,234 in total"),
])
def test_reasons_in_words(group: str, values: dict, text: str) -> None:
    assert fc.describe(group, pd.Series(values), raises_risk=True) == text


# --------------------------------------------------------------------------- model

def _synthetic_orders(n_customers: int = 300, seed: int = 0) -> pd.DataFrame:
    """Customers with their own buying rate; some stop buying at a random date."""
    rng = np.random.default_rng(seed)
    start, end = pd.Timestamp("2010-01-01"), pd.Timestamp("2011-12-01")
    rows = []
    for c in range(n_customers):
        rate = rng.uniform(3, 60)  # days between orders
        stop = start + pd.Timedelta(days=float(rng.uniform(60, 800)))
        t = start + pd.Timedelta(days=float(rng.uniform(0, 120)))
        while t < min(stop, end):
            rows.append((f"{c}-{len(rows)}", c + 1, t.floor("s"), "sale",
                         round(float(rng.gamma(2, 50)), 2)))
            t += pd.Timedelta(days=float(rng.exponential(rate)) + 1)
    return _orders(rows)


def test_churn_model_on_synthetic_orders_fixed_seed() -> None:
    orders = _synthetic_orders()
    model, metrics, info = churn.fit_and_evaluate(orders, estimator="logistic_regression",
                                                  n_snapshots=4)
    assert set(metrics) == {"auc", "accuracy", "precision", "recall", "f1"}
    assert metrics["auc"] > 0.8  # stopping customers are easy to see from recency
    assert info["test_rows"] > 100 and len(info["train_cutoffs"]) == 4
    X = fc.build_features(orders, pd.Timestamp(info["test_cutoff"]))
    proba, reasons = model.score_and_explain(X)
    assert ((proba > 0) & (proba < 1)).all()
    most = int(np.argmax(proba))
    assert reasons[most][0]["effect"] == "raises"
    assert any(r["text"].startswith("no purchase for") for r in reasons[most])


# --------------------------------------------------------------------------- the CRM

def _fill_crm(url: str) -> None:
    with session_scope(url) as s:
        for cid in (1, 2, 4, 5, 7):
            s.add(m.Customer(id=cid, name=f"C {cid}", email=f"c{cid}@example.com",
                             country="United Kingdom"))
        s.add(m.Product(stock_code="85123A", description="HEART", unit_price=2.5))
        s.flush()
        for inv, cid, at, kind, amount in ORDERS.itertuples(index=False):
            if cid == 3:
                continue
            sign = -1 if kind == "cancellation" else 1
            s.add(m.Order(id=inv, customer_id=cid, invoiced_at=at.to_pydatetime(),
                          country="United Kingdom", kind=kind,
                          status="cancelled" if sign < 0 else "delivered", total=sign * amount))
            s.flush()
            s.add(m.OrderLine(order_id=inv, stock_code="85123A", quantity=sign * 2,
                              unit_price=amount / 4))
            s.add(m.OrderLine(order_id=inv, stock_code="85123A", quantity=sign * 1,
                              unit_price=amount / 2))
        # A line with a zero price does not count in a sale's amount.
        s.add(m.OrderLine(order_id="1001", stock_code="85123A", quantity=5, unit_price=0))


def test_read_orders_from_the_crm(sqlite_url: str) -> None:
    _fill_crm(sqlite_url)
    with session_scope(sqlite_url) as s:
        orders = churn.read_orders(session=s)
    expected = ORDERS[ORDERS["customer_id"] != 3].sort_values(["invoiced_at", "invoice"])
    assert orders["invoice"].tolist() == expected["invoice"].tolist()
    assert orders["amount"].tolist() == pytest.approx(expected["amount"].tolist())
    assert orders["kind"].tolist() == expected["kind"].tolist()
    pd.testing.assert_frame_equal(
        fc.build_features(orders, CUTOFF),
        fc.build_features(expected.reset_index(drop=True), CUTOFF), check_dtype=False)


def test_read_orders_of_an_empty_crm(sqlite_url: str) -> None:
    with session_scope(sqlite_url) as s:
        orders = churn.read_orders(session=s)
    assert orders.empty and list(orders.columns) == fc.ORDER_COLUMNS


def test_churn_scores_replace_earlier_rows_for_known_customers(sqlite_url: str) -> None:
    _fill_crm(sqlite_url)
    scores = [{"customer_id": 1, "probability": 0.2, "reasons": [{"text": "x"}]},
              {"customer_id": 2, "probability": 0.9, "reasons": []},
              {"customer_id": 99, "probability": 0.5, "reasons": []}]  # not in the CRM
    for _ in range(2):
        with session_scope(sqlite_url) as s:
            assert churn.write_churn_scores(session=s, scores=scores, model_version="v") == 2
    with session_scope(sqlite_url) as s:
        rows = s.execute(select(m.ChurnScore.customer_id, m.ChurnScore.probability)
                         .order_by(m.ChurnScore.customer_id)).all()
    assert rows == [(1, 0.2), (2, 0.9)]


def test_train_and_store_from_the_crm(sqlite_url: str, tmp_path) -> None:
    orders = _synthetic_orders(n_customers=120, seed=1)
    with session_scope(sqlite_url) as s:
        s.add(m.Product(stock_code="P1", description="P", unit_price=1))
        for cid in sorted(orders["customer_id"].unique()):
            s.add(m.Customer(id=int(cid), name="c", email="c@example.com", country="UK"))
        s.flush()
        for inv, cid, at, kind, amount in orders.itertuples(index=False):
            s.add(m.Order(id=inv, customer_id=int(cid), invoiced_at=at.to_pydatetime(),
                          country="UK", kind=kind, status="delivered", total=amount))
            s.add(m.OrderLine(order_id=inv, stock_code="P1", quantity=1,
                              unit_price=round(amount, 2)))
    messages: list[str] = []
    out = churn.train_and_store(url=sqlite_url, models_dir=tmp_path, progress=messages.append)
    assert set(out) == {"auc", "accuracy", "precision", "recall", "f1"}
    assert "from the crm" in messages[0]
    info = registry.latest(churn.MODEL_NAME, models_dir=tmp_path)
    assert info is not None and info.metrics == out
    assert isinstance(churn.load_latest(models_dir=tmp_path), churn.ChurnModel)
    with session_scope(sqlite_url) as s:
        n = s.execute(select(func.count()).select_from(m.ChurnScore)).scalar_one()
        assert n == orders["customer_id"].nunique()
        assert s.execute(select(m.ModelRun.name)).scalars().all() == [churn.MODEL_NAME]
        row = s.execute(select(m.ChurnScore).limit(1)).scalar_one()
        assert 0 < row.probability < 1 and row.model_version == info.version
        assert row.scored_at <= dt.datetime.now(dt.UTC).replace(tzinfo=None)


def test_train_and_store_falls_back_to_the_files(sqlite_url: str, tmp_path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty CRM: train on the Online Retail files, score the customers the CRM has."""
    orders = _synthetic_orders(n_customers=120, seed=2)
    raw = pd.DataFrame({
        "Invoice": orders["invoice"], "StockCode": "85123A", "Description": "HEART",
        "Quantity": 1, "InvoiceDate": orders["invoiced_at"], "Price": orders["amount"],
        "Customer ID": orders["customer_id"].astype("Int64"), "Country": "United Kingdom",
    })
    monkeypatch.setattr("crm_ml.datasets.read_online_retail", lambda: raw)
    with session_scope(sqlite_url) as s:
        s.add(m.Customer(id=1, name="c", email="c@example.com", country="UK"))
    messages: list[str] = []
    out = churn.train_and_store(url=sqlite_url, models_dir=tmp_path, progress=messages.append)
    assert "files" in messages[0] and out["auc"] > 0.5
    with session_scope(sqlite_url) as s:
        assert s.execute(select(m.ChurnScore.customer_id)).scalars().all() == [1]


# --------------------------------------------------------------------------- real data

@pytest.mark.slow
def test_held_out_snapshot_meets_target_on_online_retail() -> None:
    from crm_ml.datasets import read_online_retail

    orders = fc.orders_from_retail(read_online_retail())
    model, metrics, info = churn.fit_and_evaluate(orders)
    assert info["test_cutoff"] == "2011-09-11"
    assert info["train_cutoffs"][-1] == "2011-06-13"
    assert metrics["auc"] >= 0.78
    assert metrics["accuracy"] > 0.65 and metrics["f1"] > 0.7
    X = fc.build_features(orders, pd.Timestamp(info["test_cutoff"]))
    _, reasons = model.score_and_explain(X.head(50))
    assert all(1 <= len(r) <= 3 for r in reasons)
