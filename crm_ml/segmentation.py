"""Customer segmentation: RFM scores, named RFM segments and K-Means clusters.

**RFM.** From the transactions (:func:`crm_ml.features.transactions.rfm_table`):
recency in days from the reference date (the day after the last transaction),
frequency as distinct invoices, monetary as the sum of line amounts.

**Scores 1-5.** Quintile scores: the cut points are the 20/40/60/80th
percentiles of the fitted customers, kept in ``edges_`` so that new customers
are scored against the same population. A value on a cut point goes to the
lower quintile, so tied customers share a score (many customers have exactly
one invoice: they all get ``F = 1``, never a score that depends on row order).
Recency is reversed: the most recent fifth gets ``R = 5``.

**Named segments.** The usual R/F map of RFM segmentation (the one of the
well-known 10-segment regex table, with its bottom corner ``R = 1, F = 1`` split
out as *Lost*); the first matching row wins:

=====================  ========  ========
segment                R score   F score
=====================  ========  ========
Lost                   1         1
Hibernating            1-2       1-2
At Risk                1-2       3-4
Can't Lose             1-2       5
About to Sleep         3         1-2
Need Attention         3         3
Loyal                  3-4       4-5
Promising              4         1
New Customers          5         1
Potential Loyalists    4-5       2-3
Champions              5         4-5
=====================  ========  ========

Every one of the 25 (R, F) pairs falls in exactly one segment. M does not enter
the names (as in the usual map); it is stored beside them.

**K-Means.** On ``log1p`` of recency, frequency and monetary, standardized. k
runs over 2..10 with a fixed seed; the elbow of the inertia curve is found with
the "kneedle" rule (the k farthest above the chord from the first to the last
point of the normalized curve), and k is the best silhouette among the elbow
and its two neighbours. Silhouette alone prefers k = 2 on this kind of data (a
split into "active" and "gone" that tells a sales team nothing); the elbow alone
ignores how well separated the clusters are. Each cluster gets a profile (size,
mean RFM, the commonest RFM segment) and a readable name from its centre
("Recent frequent high-spend buyers").
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crm_ml.features.transactions import load_transactions
from crm_ml.outputs import read_segments, write_segments
from crm_ml.training import Progress, training

__all__ = [
    "MODEL_NAME",
    "RFM_COLUMNS",
    "SEGMENTS",
    "SEGMENT_RULES",
    "Progress",
    "RFMSegmenter",
    "cluster_name",
    "elbow_k",
    "load_transactions",
    "quintile_edges",
    "quintile_scores",
    "read_segments",
    "rfm_segment",
    "rfm_segments_of",
    "segment_customers",
    "stored_or_computed_segments",
    "train_and_store",
    "write_segments",
]

logger = logging.getLogger(__name__)

MODEL_NAME = "segmentation"

#: The named RFM segments, best first.
SEGMENTS: tuple[str, ...] = (
    "Champions", "Loyal", "Potential Loyalists", "New Customers", "Promising",
    "Need Attention", "About to Sleep", "At Risk", "Can't Lose", "Hibernating", "Lost",
)

#: ``(R scores, F scores, segment)``, first match wins (see the module docstring).
SEGMENT_RULES: tuple[tuple[str, str, str], ...] = (
    ("1", "1", "Lost"),
    ("12", "12", "Hibernating"),
    ("12", "34", "At Risk"),
    ("12", "5", "Can't Lose"),
    ("3", "12", "About to Sleep"),
    ("3", "3", "Need Attention"),
    ("34", "45", "Loyal"),
    ("4", "1", "Promising"),
    ("5", "1", "New Customers"),
    ("45", "23", "Potential Loyalists"),
    ("5", "45", "Champions"),
)

RFM_COLUMNS = ("recency_days", "frequency", "monetary")


def _segment_grid() -> np.ndarray:
    grid = np.empty((6, 6), dtype=object)
    for r in range(1, 6):
        for f in range(1, 6):
            grid[r, f] = next(name for rs, fs, name in SEGMENT_RULES
                              if str(r) in rs and str(f) in fs)
    return grid


_GRID = _segment_grid()


def rfm_segment(r_score: int, f_score: int) -> str:
    """Return the named RFM segment of an (R, F) score pair.

    Args:
        r_score: Recency score, 1 (long ago) to 5 (recent).
        f_score: Frequency score, 1 (rare) to 5 (frequent).

    Raises:
        ValueError: a score outside 1..5.
    """
    if not (1 <= r_score <= 5 and 1 <= f_score <= 5):
        raise ValueError(f"RFM scores must be 1..5, got R={r_score} F={f_score}")
    return str(_GRID[r_score, f_score])


def quintile_edges(values: np.ndarray) -> np.ndarray:
    """Return the 20/40/60/80th percentiles of ``values`` (the score cut points)."""
    return np.quantile(np.asarray(values, dtype=float), [0.2, 0.4, 0.6, 0.8])


def quintile_scores(values: np.ndarray, edges: np.ndarray, *, reverse: bool = False) -> np.ndarray:
    """Score values 1-5 against quintile cut points.

    A value equal to a cut point goes to the lower quintile.

    Args:
        values: The values to score.
        edges: Four increasing cut points (:func:`quintile_edges`).
        reverse: Give 5 to the smallest values (recency).

    Returns:
        Integer scores 1..5.
    """
    values = np.asarray(values, dtype=float)
    above = (values[:, None] > np.asarray(edges)[None, :]).sum(axis=1)
    return (5 - above if reverse else 1 + above).astype(int)


def elbow_k(ks: list[int], inertias: list[float]) -> int:
    """Return the elbow of a decreasing inertia curve ("kneedle" rule).

    Both axes are scaled to [0, 1]; the elbow is the k whose point lies farthest
    above the chord joining the first and the last point.

    Args:
        ks: Increasing numbers of clusters.
        inertias: Within-cluster sums of squares, one per k.
    """
    x = np.asarray(ks, dtype=float)
    y = np.asarray(inertias, dtype=float)
    if len(x) < 3 or y[0] == y[-1]:
        return int(x[0])
    xn = (x - x[0]) / (x[-1] - x[0])
    yn = (y[0] - y) / (y[0] - y[-1])  # rising from 0 to 1
    return int(x[int(np.argmax(yn - xn))])


def _level(z: float, low: str, mid: str, high: str) -> str:
    return high if z > 0.5 else low if z < -0.5 else mid


def cluster_name(center: np.ndarray) -> str:
    """Name a cluster from its centre in standardized log-RFM units.

    Args:
        center: ``(recency, frequency, monetary)`` z-scores of the centre.

    Returns:
        For example ``"Recent frequent high-spend buyers"``.
    """
    r, f, m = (float(v) for v in center)
    recency = _level(-r, "lapsed", "cooling", "recent")
    frequency = _level(f, "one-off", "occasional", "frequent")
    spend = _level(m, "low-spend", "mid-spend", "high-spend")
    return f"{recency} {frequency} {spend} buyers".capitalize()


class RFMSegmenter:
    """RFM scores, named segments and K-Means clusters of customers.

    Args:
        k_min: Smallest number of clusters tried.
        k_max: Largest number of clusters tried.
        random_state: Seed of K-Means (and of the silhouette sample).
        n_init: K-Means restarts per k.
        silhouette_sample: Customers (a seeded sample) used for the silhouette curve
            over k; the chosen k's reported silhouette uses every customer.

    Attributes:
        edges_: Quintile cut points per RFM column.
        ks_: The k values tried.
        inertias_: K-Means inertia per k.
        silhouettes_: Silhouette per k (on the sample).
        elbow_k_: The elbow of the inertia curve.
        k_: The chosen k.
        silhouette_: Silhouette of the chosen k, on every customer.
        scaler_: The fitted StandardScaler (on log1p RFM).
        kmeans_: The fitted KMeans of the chosen k.
        cluster_names_: Readable name per cluster number.
        profiles_: One row per cluster: name, size, share, mean RFM, top segment.
    """

    def __init__(self, k_min: int = 2, k_max: int = 10, random_state: int = 0, n_init: int = 10,
                 silhouette_sample: int = 4_000) -> None:
        self.k_min = k_min
        self.k_max = k_max
        self.random_state = random_state
        self.n_init = n_init
        self.silhouette_sample = silhouette_sample

    @staticmethod
    def _log_features(rfm: pd.DataFrame) -> np.ndarray:
        return np.log1p(rfm.loc[:, list(RFM_COLUMNS)].to_numpy(dtype=float).clip(min=0))

    def fit(self, rfm: pd.DataFrame) -> RFMSegmenter:
        """Learn the quintile cut points, choose k and fit K-Means.

        Args:
            rfm: One row per customer with ``recency_days``, ``frequency``,
                ``monetary`` (:func:`crm_ml.features.transactions.rfm_table`).

        Returns:
            self
        """
        from sklearn.cluster import KMeans
        from sklearn.metrics import silhouette_score
        from sklearn.preprocessing import StandardScaler

        if len(rfm) < self.k_min + 1:
            raise ValueError(f"need more than {self.k_min} customers, got {len(rfm)}")
        self.edges_ = {c: quintile_edges(rfm[c].to_numpy()) for c in RFM_COLUMNS}
        self.scaler_ = StandardScaler().fit(self._log_features(rfm))
        z = self.scaler_.transform(self._log_features(rfm))
        k_max = min(self.k_max, len(rfm) - 1)
        self.ks_ = list(range(self.k_min, k_max + 1))
        sample = min(self.silhouette_sample, len(rfm))
        models: dict[int, Any] = {}
        self.inertias_, self.silhouettes_ = [], []
        for k in self.ks_:
            km = KMeans(n_clusters=k, n_init=self.n_init, random_state=self.random_state).fit(z)
            models[k] = km
            self.inertias_.append(float(km.inertia_))
            sil = silhouette_score(z, km.labels_, sample_size=sample if sample < len(z) else None,
                                   random_state=self.random_state)
            self.silhouettes_.append(float(sil))
        self.elbow_k_ = elbow_k(self.ks_, self.inertias_)
        around = [k for k in (self.elbow_k_ - 1, self.elbow_k_, self.elbow_k_ + 1) if k in models]
        self.k_ = max(around, key=lambda k: self.silhouettes_[self.ks_.index(k)])
        self.kmeans_ = models[self.k_]
        self.silhouette_ = float(silhouette_score(z, self.kmeans_.labels_))
        names = [cluster_name(c) for c in self.kmeans_.cluster_centers_]
        self.cluster_names_ = {}
        for i, name in enumerate(names):
            dup = names[:i].count(name)
            self.cluster_names_[i] = f"{name} ({dup + 1})" if dup else name
        self.profiles_ = self._profiles(rfm)
        logger.info("segmentation: elbow k=%d, chosen k=%d, silhouette %.3f",
                    self.elbow_k_, self.k_, self.silhouette_)
        return self

    def _profiles(self, rfm: pd.DataFrame) -> pd.DataFrame:
        seg = self.transform(rfm)
        g = seg.groupby("cluster")
        prof = pd.DataFrame({
            "name": pd.Series(self.cluster_names_),
            "size": g.size(),
            "recency_days": g["recency_days"].mean(),
            "frequency": g["frequency"].mean(),
            "monetary": g["monetary"].mean(),
            "top_segment": g["rfm_segment"].agg(lambda s: s.value_counts().index[0]),
        })
        prof["share"] = prof["size"] / prof["size"].sum()
        prof.index.name = "cluster"
        return prof.sort_values("monetary", ascending=False)

    def scores(self, rfm: pd.DataFrame) -> pd.DataFrame:
        """Return the R, F, M scores (1-5) and the named segment of each customer.

        Args:
            rfm: One row per customer (as in :meth:`fit`).
        """
        r = quintile_scores(rfm["recency_days"].to_numpy(), self.edges_["recency_days"],
                            reverse=True)
        f = quintile_scores(rfm["frequency"].to_numpy(), self.edges_["frequency"])
        m = quintile_scores(rfm["monetary"].to_numpy(), self.edges_["monetary"])
        return pd.DataFrame({"r_score": r, "f_score": f, "m_score": m,
                             "rfm_segment": _GRID[r, f].astype(str)}, index=rfm.index)

    def transform(self, rfm: pd.DataFrame) -> pd.DataFrame:
        """Score, name and cluster customers.

        Args:
            rfm: One row per customer (as in :meth:`fit`).

        Returns:
            ``rfm``'s RFM columns plus ``r_score``, ``f_score``, ``m_score``,
            ``rfm_segment``, ``cluster`` and ``cluster_name``.
        """
        out = rfm.loc[:, list(RFM_COLUMNS)].copy()
        out = out.join(self.scores(rfm))
        clusters = self.kmeans_.predict(self.scaler_.transform(self._log_features(rfm)))
        out["cluster"] = clusters.astype(int)
        out["cluster_name"] = [self.cluster_names_[c] for c in clusters]
        return out

    def fit_transform(self, rfm: pd.DataFrame) -> pd.DataFrame:
        """Fit, then transform the same customers."""
        return self.fit(rfm).transform(rfm)

    def metrics(self, segments: pd.DataFrame) -> dict[str, Any]:
        """Return ``{k, silhouette, segment_counts}`` (the report's shape).

        Args:
            segments: Output of :meth:`transform`.
        """
        counts = segments["rfm_segment"].value_counts()
        return {
            "k": int(self.k_),
            "silhouette": round(float(self.silhouette_), 4),
            "segment_counts": {name: int(counts.get(name, 0)) for name in SEGMENTS},
        }

    def curves(self) -> dict[str, Any]:
        """The elbow and silhouette curves and the cluster profiles, JSON-ready."""
        prof = self.profiles_.reset_index()
        return {
            "ks": self.ks_, "inertias": [round(v, 3) for v in self.inertias_],
            "silhouettes": [round(v, 4) for v in self.silhouettes_], "elbow_k": self.elbow_k_,
            "profiles": [
                {"cluster": int(r.cluster), "name": r.name, "size": int(r.size),
                 "share": round(float(r.share), 4),
                 "recency_days": round(float(r.recency_days), 1),
                 "frequency": round(float(r.frequency), 2),
                 "monetary": round(float(r.monetary), 2), "top_segment": r.top_segment}
                for r in prof.itertuples(index=False)
            ],
        }


def segment_customers(transactions: pd.DataFrame, **params: Any
                      ) -> tuple[RFMSegmenter, pd.DataFrame]:
    """Fit an :class:`RFMSegmenter` on a transaction table and segment its customers.

    Args:
        transactions: A transaction table (see :mod:`crm_ml.features.transactions`).
        **params: Hyperparameters of :class:`RFMSegmenter`.

    Returns:
        The fitted segmenter and one row per customer with purchases.
    """
    from crm_ml.features.transactions import rfm_table

    rfm = rfm_table(transactions)
    model = RFMSegmenter(**params).fit(rfm)
    return model, model.transform(rfm)


def rfm_segments_of(transactions: pd.DataFrame) -> pd.Series:
    """Return each customer's named RFM segment (quintiles of these transactions).

    Cheaper than :func:`segment_customers` (no K-Means): for fallbacks and splits.

    Args:
        transactions: A transaction table.
    """
    from crm_ml.features.transactions import rfm_table

    rfm = rfm_table(transactions)
    model = RFMSegmenter()
    model.edges_ = {c: quintile_edges(rfm[c].to_numpy()) for c in RFM_COLUMNS}
    return model.scores(rfm)["rfm_segment"]


def stored_or_computed_segments(url: str | None, transactions: pd.DataFrame,
                                say: Progress | None = None, what: str = "") -> pd.Series:
    """The CRM's stored segments, or RFM segments of ``transactions`` when none is stored.

    Args:
        url: CRM database URL.
        transactions: A transaction table (used only when the CRM has no segments).
        say: Progress callback, told when the segments are computed.
        what: Name of the model, for that message.

    Returns:
        Named RFM segment per customer id.
    """
    from crm_ml.db import session_scope

    with session_scope(url) as s:
        segments = read_segments(session=s)
    if not segments.empty:
        return segments
    if say is not None:
        say(f"{what}: no stored segments, computing RFM segments")
    return rfm_segments_of(transactions)


def train_and_store(*, url: str | None = None, models_dir: Path | None = None,
                    progress: Progress | None = None) -> dict[str, Any]:
    """Segment every customer with purchases, store the model and the ``segments`` rows.

    Args:
        url: CRM database URL (default: the configured CRM).
        models_dir: Registry root (default: the configured ``models/``).
        progress: Called with a short message at each step.

    Returns:
        ``{k, silhouette, segment_counts}``.
    """
    from crm_ml.features.transactions import reference_date, rfm_table, transactions_hash

    # sklearn.cluster is loaded first so that the thread limit reaches its OpenMP.
    with training(MODEL_NAME, url=url, models_dir=models_dir, progress=progress,
                  preload=("sklearn.cluster",)) as run:
        tx, source = load_transactions(url, run.say, "segments")
        rfm = rfm_table(tx)
        run.say(f"segments: RFM of {len(rfm):,} customers, K-Means for k=2..10")
        model = RFMSegmenter().fit(rfm)
        seg = model.transform(rfm)
        metrics = model.metrics(seg)
        params = {
            "k_range": [model.k_min, model.k_max], "random_state": model.random_state,
            "n_init": model.n_init, "reference_date": str(reference_date(tx).date()),
            "edges": {c: [float(v) for v in e] for c, e in model.edges_.items()},
            "source": source, "customers": len(rfm), **model.curves(),
            "seconds": run.seconds,
        }
        _info, n = run.store(model, metrics=metrics, data_hash=transactions_hash(tx),
                             params=params, write=lambda s, version: write_segments(
                                 session=s, segments=seg, model_version=version))
        run.say(f"segments: k={model.k_} (silhouette {model.silhouette_:.3f}), {n:,} rows written")
    return metrics
