"""Anomalies: unusual orders and customer weeks (Isolation Forest, robust z baseline).

Features come from :mod:`crm_ml.features.anomalies`. Two detectors share one
API: :class:`AnomalyDetector` with ``method="iforest"`` (scikit-learn
:class:`~sklearn.ensemble.IsolationForest` on robustly scaled features) or
``method="robust_z"`` (the baseline: per-feature median/MAD z-scores, score =
max |z|). Reasons are the features with the largest robust |z|.

Evaluation without fraud labels (:func:`evaluate_anomalies`): the last 8 weeks
are held out; copies of real held-out orders get one known change each (huge
amount, huge quantity, odd hour, unusual country, many cancellations, sudden
spend jump vs the customer's median); both detectors fit on the earlier
period and rank the held-out orders plus the injected copies; precision@k
(k = number injected) and recall per kind within the top k.

Training writes the flagged real orders and customer weeks (the top
:data:`FLAG_SHARE` of each, at least :data:`N_FLAGGED`) with their reasons into
``unusual_activity`` (:func:`write_flagged`); :func:`unusual_orders` reads that table
for a period and, for a rep, their own accounts.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crm_ml.features import anomalies as fa
from crm_ml.training import Progress, training

__all__ = [
    "KINDS",
    "MODEL_NAME",
    "AnomalyDetector",
    "AnomalyArtifact",
    "describe",
    "evaluate_anomalies",
    "fit_artifact",
    "inject",
    "train_and_store",
    "unusual_orders",
    "write_flagged",
]

logger = logging.getLogger(__name__)

MODEL_NAME = "anomalies"
#: Held-out weeks at the end of the data.
HOLDOUT_WEEKS = 8
#: Injected copies per kind.
N_PER_KIND = 20
#: Kinds of injected anomaly -> the feature each one changes.
KINDS: dict[str, str] = {
    "huge_amount": "log_amount",
    "huge_quantity": "log_quantity",
    "odd_hour": "hour",
    "unusual_country": "country_unusual",
    "many_cancellations": "cancel_share",
    "spend_jump": "log_amount_vs_customer",
}
#: Flagged real orders / weeks: the most unusual share of them, and at least N_FLAGGED.
FLAG_SHARE = 0.01
N_FLAGGED = 200
#: Quantile of the training |z| beyond which a value counts as out of range.
RANGE_QUANTILE = 0.999
#: Orders the Isolation Forest fits on at most (subsample for speed).
MAX_FIT_ROWS = 20000


class AnomalyDetector:
    """Isolation Forest or robust-z scorer with per-feature reasons.

    An Isolation Forest only splits within the values it was fitted on: a
    feature constant in training (no cancelled line, the usual country) or a
    value far beyond the training range lands in an ordinary leaf. The
    ``iforest`` score therefore adds ``log1p`` of the total robust |z| beyond
    each feature's 99.9th training percentile (:data:`RANGE_QUANTILE`).

    Args:
        method: ``"iforest"`` or ``"robust_z"``.
        n_estimators: Trees of the forest.
        random_state: Seed.
    """

    def __init__(self, method: str = "iforest", n_estimators: int = 200,
                 random_state: int = 0) -> None:
        self.method = method
        self.n_estimators = n_estimators
        self.random_state = random_state

    def fit(self, X: pd.DataFrame) -> AnomalyDetector:
        """Learn medians, robust scales and (iforest) the forest.

        Args:
            X: Feature frame of normal-period rows.

        Returns:
            self.
        """
        values = X.to_numpy(dtype=float)
        self.features_ = list(X.columns)
        self.median_ = np.median(values, axis=0)
        mad = 1.4826 * np.median(np.abs(values - self.median_), axis=0)
        std = values.std(axis=0)
        self.scale_ = np.where(mad > 1e-9, mad, np.where(std > 1e-9, std, 1.0))
        # A constant feature (std 0) gets a small scale: any change is unusual.
        self.scale_ = np.where((mad <= 1e-9) & (std <= 1e-9), 0.1, self.scale_)
        if self.method == "iforest":
            from sklearn.ensemble import IsolationForest

            z = self._z(values)
            self.z_high_ = np.quantile(np.abs(z), RANGE_QUANTILE, axis=0)
            if len(z) > MAX_FIT_ROWS:
                rng = np.random.default_rng(self.random_state)
                z = z[rng.choice(len(z), MAX_FIT_ROWS, replace=False)]
            self.forest_ = IsolationForest(n_estimators=self.n_estimators,
                                           random_state=self.random_state).fit(z)
        elif self.method != "robust_z":
            raise ValueError(f"unknown method {self.method!r}")
        return self

    def _z(self, values: np.ndarray) -> np.ndarray:
        """Robust z-scores, clipped to +-50."""
        return np.clip((values - self.median_) / self.scale_, -50.0, 50.0)

    def robust_z(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-feature robust z-scores of ``X``."""
        return pd.DataFrame(self._z(X[self.features_].to_numpy(dtype=float)),
                            columns=self.features_, index=X.index)

    def score(self, X: pd.DataFrame) -> np.ndarray:
        """Anomaly score: higher is more unusual.

        Args:
            X: Feature frame.
        """
        z = self._z(X[self.features_].to_numpy(dtype=float))
        if self.method == "iforest":
            beyond = np.clip(np.abs(z) - self.z_high_, 0.0, None).sum(axis=1)
            return -self.forest_.score_samples(z) + np.log1p(beyond)
        return np.abs(z).max(axis=1)

    def reasons(self, X: pd.DataFrame, k: int = 2) -> list[list[str]]:
        """The ``k`` features with the largest robust |z| per row (names only).

        Args:
            X: Feature frame.
            k: Reasons per row.
        """
        z = np.abs(self.robust_z(X).to_numpy())
        top = np.argsort(-z, axis=1)[:, :k]
        return [[self.features_[j] for j in row] for row in top]


def describe(feature: str, row: pd.Series, z: float) -> str:
    """One readable reason, e.g. ``"amount 40x the customer's median"``.

    Args:
        feature: Feature name.
        row: The order's raw values and features.
        z: The feature's robust z-score.
    """
    if feature == "log_amount_vs_customer":
        return f"amount {np.exp(row[feature]):.0f}x the customer's median"
    if feature == "log_amount":
        return f"amount {row.get('amount', np.expm1(row[feature])):,.2f} (robust z {z:+.1f})"
    if feature == "log_quantity":
        return f"quantity {row.get('quantity', np.expm1(row[feature])):,.0f} (robust z {z:+.1f})"
    if feature == "hour":
        return f"placed at {int(row[feature]):02d}:00 (robust z {z:+.1f})"
    if feature == "country_unusual":
        return f"country {row.get('country', '?')} unusual for the customer"
    if feature == "cancel_share":
        return f"{row[feature]:.0%} of lines cancelled"
    if feature == "n_lines":
        return f"{int(row[feature])} lines (robust z {z:+.1f})"
    if feature == "log_mean_price":
        return f"mean unit price {np.expm1(row[feature]):,.2f} (robust z {z:+.1f})"
    if feature == "spend_change":
        return f"week's spend {np.exp(row[feature]):.0f}x the previous weeks' mean"
    return f"{feature} {row[feature]:.2f} (robust z {z:+.1f})"


def inject(orders: pd.DataFrame, history: pd.DataFrame, *, n_per_kind: int = N_PER_KIND,
           seed: int = 0) -> pd.DataFrame:
    """Copies of real orders, each with one known anomaly (column ``kind``).

    Args:
        orders: Output of :func:`crm_ml.features.anomalies.order_table` to copy from.
        history: Customer history (for the unusual country and spend jump).
        n_per_kind: Copies per kind of :data:`KINDS`.
        seed: Seed.

    Returns:
        The injected orders (invoice ids prefixed ``INJ-``).
    """
    rng = np.random.default_rng(seed)
    known = orders[orders["customer_id"].isin(history.index)]
    countries = orders["country"].unique()
    out = []
    for kind in KINDS:
        c = known.iloc[rng.choice(len(known), n_per_kind, replace=False)].copy()
        if kind == "huge_amount":
            c["mean_price"] *= 40
            c["amount"] *= 40
        elif kind == "huge_quantity":
            c["quantity"] *= 50
        elif kind == "odd_hour":
            at = pd.to_datetime(c["invoiced_at"]).dt.normalize()
            c["invoiced_at"] = at + pd.Timedelta(hours=3)
            c["hour"] = 3
        elif kind == "unusual_country":
            usual = history.loc[c["customer_id"], "usual_country"].to_numpy()
            c["country"] = [next(x for x in rng.permutation(countries) if x != u) for u in usual]
        elif kind == "many_cancellations":
            c["cancel_share"] = 0.8
        elif kind == "spend_jump":
            med = history.loc[c["customer_id"], "median_amount"].to_numpy()
            c["amount"] = med * 25
        c["invoice"] = [f"INJ-{kind}-{i}" for i in range(len(c))]
        c["kind"] = kind
        out.append(c)
    return pd.concat(out, ignore_index=True)


def _split(orders: pd.DataFrame, weeks: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit-period and held-out orders (the last ``weeks`` weeks)."""
    at = pd.to_datetime(orders["invoiced_at"])
    cut = at.max().normalize() - pd.Timedelta(weeks=weeks)
    return orders[at < cut].reset_index(drop=True), orders[at >= cut].reset_index(drop=True)


def evaluate_anomalies(orders: pd.DataFrame, *, holdout_weeks: int = HOLDOUT_WEEKS,
                       n_per_kind: int = N_PER_KIND, seed: int = 0) -> dict[str, Any]:
    """Precision@k and recall per kind on the held-out period with injected anomalies.

    Args:
        orders: Output of :func:`crm_ml.features.anomalies.order_table`.
        holdout_weeks: Held-out weeks at the end.
        n_per_kind: Injected copies per kind.
        seed: Seed for injection and the forest.

    Returns:
        ``precision_at_k``, ``recall_by_kind``, ``baseline_precision_at_k``,
        ``baseline_recall_by_kind``.
    """
    fit, held = _split(orders, holdout_weeks)
    history = fa.customer_history(fit)
    injected = inject(held, history, n_per_kind=n_per_kind, seed=seed)
    test = pd.concat([held.assign(kind=""), injected], ignore_index=True)
    X_fit, X_test = fa.order_features(fit, history), fa.order_features(test, history)
    k = len(injected)
    metrics: dict[str, Any] = {}
    for prefix, method in (("", "iforest"), ("baseline_", "robust_z")):
        det = AnomalyDetector(method, random_state=seed).fit(X_fit)
        top = np.argsort(-det.score(X_test), kind="stable")[:k]
        kinds = test["kind"].to_numpy()[top]
        metrics[f"{prefix}precision_at_k"] = round(float((kinds != "").mean()), 4)
        metrics[f"{prefix}recall_by_kind"] = {
            kind: round(float((kinds == kind).sum() / n_per_kind), 4) for kind in KINDS}
    return metrics


class AnomalyArtifact:
    """What is stored: the fitted detectors and the flagged real orders/weeks.

    Attributes:
        orders_model: Detector fitted on all orders.
        weeks_model: Detector fitted on all customer weeks.
        flagged_orders: Top orders with ``score`` and ``reasons`` (list of str).
        flagged_weeks: Top customer weeks with ``score`` and ``reasons``.
    """

    def __init__(self, orders_model: AnomalyDetector, weeks_model: AnomalyDetector,
                 flagged_orders: pd.DataFrame, flagged_weeks: pd.DataFrame) -> None:
        self.orders_model = orders_model
        self.weeks_model = weeks_model
        self.flagged_orders = flagged_orders
        self.flagged_weeks = flagged_weeks


def _flag(det: AnomalyDetector, X: pd.DataFrame, raw: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` highest-scoring rows of ``raw`` with readable reasons."""
    scores = det.score(X)
    top = np.argsort(-scores, kind="stable")[:n]
    z = det.robust_z(X.iloc[top])
    reasons = []
    for i, names in enumerate(det.reasons(X.iloc[top], k=2)):
        row = pd.Series({**raw.iloc[top[i]].to_dict(), **X.iloc[top[i]].to_dict()})
        reasons.append([describe(f, row, float(z.iloc[i][f])) for f in names])
    out = raw.iloc[top].reset_index(drop=True).copy()
    out["score"] = np.round(scores[top], 4)
    out["reasons"] = reasons
    return out


def fit_artifact(orders: pd.DataFrame, *, seed: int = 0) -> AnomalyArtifact:
    """Fit both detectors on all data and keep the most unusual real orders and weeks.

    Args:
        orders: Output of :func:`crm_ml.features.anomalies.order_table`.
        seed: Seed.
    """
    history = fa.customer_history(orders)
    X = fa.order_features(orders, history)
    om = AnomalyDetector("iforest", random_state=seed).fit(X)
    weeks = fa.week_features(orders)
    W = weeks[list(fa.WEEK_FEATURES)]
    wm = AnomalyDetector("iforest", random_state=seed).fit(W)
    raw = orders[["invoice", "customer_id", "invoiced_at", "country", "amount", "quantity"]]
    return AnomalyArtifact(om, wm, _flag(om, X, raw, _n_flagged(len(X))),
                           _flag(wm, W, weeks[["customer_id", "week"]], _n_flagged(len(W))))


def _n_flagged(n: int) -> int:
    return max(N_FLAGGED, int(n * FLAG_SHARE))


def write_flagged(*, session: Any, artifact: AnomalyArtifact, version: str) -> int:
    """Replace ``unusual_activity`` with the artifact's flagged orders and weeks.

    Returns:
        Rows written.
    """
    from sqlalchemy import delete, insert

    from crm_ml.db.models_insights import UnusualActivity

    def number(value: Any) -> Any:
        return None if value is None or pd.isna(value) else value

    rows: list[dict[str, Any]] = []
    for r in artifact.flagged_orders.to_dict("records"):
        rows.append({"scope": "order", "invoice": str(r["invoice"]),
                     "customer_id": number(r.get("customer_id")),
                     "occurred_at": pd.Timestamp(r["invoiced_at"]).to_pydatetime(),
                     "country": r.get("country"), "amount": float(r["amount"]),
                     "quantity": float(r["quantity"]), "score": float(r["score"]),
                     "reasons": list(r["reasons"])})
    for r in artifact.flagged_weeks.to_dict("records"):
        rows.append({"scope": "week", "invoice": None, "customer_id": number(r.get("customer_id")),
                     "occurred_at": pd.Timestamp(r["week"]).to_pydatetime(), "country": None,
                     "amount": None, "quantity": None, "score": float(r["score"]),
                     "reasons": list(r["reasons"])})
    for row in rows:
        if row["customer_id"] is not None:
            row["customer_id"] = int(row["customer_id"])
        row["model_version"] = version
    table = UnusualActivity.__table__
    session.execute(delete(table))
    if rows:
        session.execute(insert(table), rows)
    return len(rows)


def _lines(url: str | None, say: Progress) -> tuple[pd.DataFrame, str]:
    """Sold lines from the CRM, or the Online Retail II files (no cancelled lines there)."""
    from crm_ml.features.transactions import load_transactions

    return load_transactions(url, say, MODEL_NAME)


def train_and_store(*, url: str | None = None, models_dir: Path | None = None,
                    progress: Progress | None = None) -> dict[str, Any]:
    """Evaluate with injected anomalies, fit on all data, store the artifact.

    Reads the sold lines (:func:`crm_ml.features.transactions.load_transactions`:
    sales only, so ``cancel_share`` is 0 on real orders and only injected
    cancellations move it). The forest fits on at most :data:`MAX_FIT_ROWS`
    orders (a random subsample) to stay well under 40 s. No CRM table is
    written: the flagged orders and weeks stay in the artifact.

    Args:
        url: CRM database URL.
        models_dir: Registry root.
        progress: Progress callback.

    Returns:
        ``precision_at_k``, ``recall_by_kind``, ``baseline_precision_at_k``,
        ``baseline_recall_by_kind``.
    """
    from crm_ml.features.transactions import transactions_hash

    with training(MODEL_NAME, url=url, models_dir=models_dir, progress=progress,
                  preload=("sklearn.ensemble",)) as run:
        lines, source = _lines(url, run.say)
        orders = fa.order_table(lines)
        run.say(f"anomalies: {len(orders):,} orders; evaluating on the last {HOLDOUT_WEEKS} weeks")
        metrics = evaluate_anomalies(orders)
        run.say("anomalies: fitting on all orders and customer weeks")
        artifact = fit_artifact(orders)
        params = {"orders_source": source, "holdout_weeks": HOLDOUT_WEEKS,
                  "n_per_kind": N_PER_KIND, "max_fit_rows": MAX_FIT_ROWS,
                  "seconds": run.seconds}
        saved, n = run.store(artifact, metrics=metrics, data_hash=transactions_hash(lines),
                             params=params, write=lambda s, version: write_flagged(
                                 session=s, artifact=artifact, version=version))
        run.say(f"anomalies: stored version {saved.version}, {n:,} unusual orders and weeks")
    return metrics


def unusual_orders(*, session: Any, since: Any | None = None, until: Any | None = None,
                   customer_ids: Any | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """Flagged real orders from ``unusual_activity``, most unusual first.

    Args:
        session: CRM session.
        since: Only orders placed at or after this time.
        until: Only orders placed before this time.
        customer_ids: Only these customers' orders (a rep's accounts); None: all.
        limit: At most this many.

    Returns:
        Dicts with ``invoice, customer_id, invoiced_at, country, amount, quantity, score,
        reasons``.
    """
    from sqlalchemy import select

    from crm_ml.db.models_insights import UnusualActivity as t
    query = select(t).where(t.scope == "order")
    if since is not None:
        query = query.where(t.occurred_at >= pd.Timestamp(since).to_pydatetime())
    if until is not None:
        query = query.where(t.occurred_at < pd.Timestamp(until).to_pydatetime())
    if customer_ids is not None:
        query = query.where(t.customer_id.in_(list(customer_ids)))
    rows = session.scalars(query.order_by(t.score.desc(), t.id).limit(limit)).all()
    return [{"invoice": r.invoice, "customer_id": r.customer_id, "invoiced_at": r.occurred_at,
             "country": r.country, "amount": r.amount, "quantity": r.quantity, "score": r.score,
             "reasons": list(r.reasons or [])} for r in rows]
