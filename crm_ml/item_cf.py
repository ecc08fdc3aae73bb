"""Item-item collaborative filtering with segment and popularity fallbacks (the estimator).

See :mod:`crm_ml.recommend` for the model's description, its evaluation and its
training; this module holds the algorithm: :func:`cosine_topk` (each item's most
similar items) and :class:`ItemCFRecommender` (profiles, scores, fallbacks).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["TOP_N", "ItemCFRecommender", "cosine_topk"]

logger = logging.getLogger(__name__)

#: Items per list.
TOP_N = 10


def cosine_topk(X: Any, k: int, *, block: int = 1024) -> Any:
    """Item-item cosine similarity of the columns of ``X``, keeping each item's top k.

    Args:
        X: Sparse customer x item matrix (binary or weighted).
        k: Neighbours kept per item (the item itself excluded); 0 keeps all.
        block: Items processed at once (memory: ``block x n_items`` floats).

    Returns:
        A CSR ``n_items x n_items`` matrix: row ``i`` holds item ``i``'s
        neighbours ``j`` and their similarity.
    """
    import scipy.sparse as sp

    X = sp.csc_matrix(X, dtype=np.float64)
    n_items = X.shape[1]
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=0)).ravel())
    norms[norms == 0] = 1.0
    Xt = X.T.tocsr()
    rows, cols, vals = [], [], []
    for start in range(0, n_items, block):
        stop = min(start + block, n_items)
        co = (Xt[start:stop] @ X).toarray()
        co /= norms[start:stop, None] * norms[None, :]
        co[np.arange(stop - start), np.arange(start, stop)] = 0.0  # no self-similarity
        if k and k < n_items - 1:
            top = np.argpartition(-co, k, axis=1)[:, :k]
        else:
            top = np.tile(np.arange(n_items), (stop - start, 1))
        val = np.take_along_axis(co, top, axis=1)
        keep = val > 0
        rows.append(np.nonzero(keep)[0] + start)
        cols.append(top[keep])
        vals.append(val[keep])
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(n_items, n_items))


class ItemCFRecommender:
    """Item-item collaborative filtering with segment and popularity fallbacks.

    Args:
        n_neighbors: Most similar items kept per item.
        history_days: Days of purchases (before the last one) that define the
            similarities and the recommendable items.
        decay_days: Time constant of the profile weights (None: no decay).
        popularity_days: Days of purchases that define the best sellers.
        popularity_weight: Weight of recent popularity added to the CF score.

    Attributes:
        reference_time_: Time of the last purchase seen in fit.
        items_: Recommendable stock codes (sold in the window), sorted.
        similarity_: CSR item x item matrix of the top neighbours.
        customers_: Customer ids with a profile, sorted.
        profiles_: CSR customer x item matrix of decayed purchase weights.
        bought_: CSR customer x item matrix, 1 where the customer ever bought the item.
        popularity_: Recent distinct buyers per item (array over ``items_``).
        popular_order_: Item indices, best sellers first (only items sold recently).
        segments_: Named RFM segment per customer id.
        segment_counts_: Segment -> buyers per item among the segment's customers
            (whole history, current stock only).
        segment_order_: Segment -> item indices, the segment's best sellers first.
    """

    def __init__(self, n_neighbors: int = 20, history_days: int = 180,
                 decay_days: float | None = 90.0, popularity_days: int = 30,
                 popularity_weight: float = 0.5) -> None:
        self.n_neighbors = n_neighbors
        self.history_days = history_days
        self.decay_days = decay_days
        self.popularity_days = popularity_days
        self.popularity_weight = popularity_weight

    def fit(self, transactions: pd.DataFrame, segments: pd.Series | None = None
            ) -> ItemCFRecommender:
        """Learn similarities, profiles and best-seller lists from purchases.

        Args:
            transactions: A transaction table (see :mod:`crm_ml.features.transactions`).
            segments: Named RFM segment per customer id; computed from
                ``transactions`` when None.

        Returns:
            self
        """
        import scipy.sparse as sp

        from crm_ml.segmentation import rfm_segments_of

        tx = transactions
        if tx.empty:
            raise ValueError("no transactions to learn from")
        self.reference_time_ = pd.Timestamp(tx["invoiced_at"].max())
        window = tx[tx["invoiced_at"] > self.reference_time_ - pd.Timedelta(days=self.history_days)]
        self.items_ = np.sort(window["stock_code"].unique().astype(object))
        item_pos = pd.Index(self.items_)

        wc = window[["customer_id", "stock_code"]].drop_duplicates()
        w_cust = np.sort(wc["customer_id"].unique())
        Xw = sp.csr_matrix(
            (np.ones(len(wc)), (np.searchsorted(w_cust, wc["customer_id"]),
                                item_pos.get_indexer(wc["stock_code"]))),
            shape=(len(w_cust), len(self.items_)))
        self.similarity_ = cosine_topk(Xw, self.n_neighbors)

        known = tx[tx["stock_code"].isin(item_pos)]
        last = known.groupby(["customer_id", "stock_code"], sort=False)["invoiced_at"].max()
        last = last.reset_index()
        self.customers_ = np.sort(tx["customer_id"].unique())
        r = np.searchsorted(self.customers_, last["customer_id"].to_numpy())
        c = item_pos.get_indexer(last["stock_code"])
        if self.decay_days:
            age = (self.reference_time_ - last["invoiced_at"]).dt.total_seconds() / 86400.0
            w = np.exp(-age.to_numpy() / float(self.decay_days))
        else:
            w = np.ones(len(last))
        shape = (len(self.customers_), len(self.items_))
        self.profiles_ = sp.csr_matrix((w, (r, c)), shape=shape)
        self.bought_ = sp.csr_matrix((np.ones(len(last), dtype=np.int8), (r, c)), shape=shape)

        recent = tx[tx["invoiced_at"] > self.reference_time_
                    - pd.Timedelta(days=self.popularity_days)]
        buyers = recent.groupby("stock_code")["customer_id"].nunique()
        self.popularity_ = buyers.reindex(self.items_).fillna(0).to_numpy(dtype=float)
        self.popular_order_ = self._order(self.popularity_, np.zeros(len(self.items_)))

        self.segments_ = (segments if segments is not None else rfm_segments_of(tx)).copy()
        seg_of = self.segments_.reindex(last["customer_id"]).to_numpy()
        self.segment_counts_, self.segment_order_ = {}, {}
        for seg in pd.unique(self.segments_.dropna()):
            mask = seg_of == seg
            counts = np.bincount(c[mask], minlength=len(self.items_)).astype(float)
            counts[self.popularity_ == 0] = 0.0  # current stock only
            self.segment_counts_[str(seg)] = counts
            self.segment_order_[str(seg)] = self._order(counts, self.popularity_)
        logger.info("item_cf: %d items, %d customers, %d similarities", len(self.items_),
                    len(self.customers_), self.similarity_.nnz)
        return self

    @staticmethod
    def _order(score: np.ndarray, tie: np.ndarray) -> np.ndarray:
        """Indices of items with a positive score, best first (ties by ``tie``, then code)."""
        idx = np.nonzero(score > 0)[0]
        return idx[np.lexsort((idx, -tie[idx], -score[idx]))]

    def _pop_scores(self) -> np.ndarray:
        top = self.popularity_.max()
        return self.popularity_ / top if top > 0 else self.popularity_

    def popular(self, n: int = TOP_N, exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
        """Return the recent best sellers as ``(stock_code, share of the top seller)``.

        Args:
            n: How many.
            exclude: Stock codes to leave out (e.g. already bought).
        """
        pop = self._pop_scores()
        skip = set(exclude)
        out = [(str(self.items_[i]), float(pop[i])) for i in self.popular_order_[:n + len(skip)]
               if self.items_[i] not in skip]
        return out[:n]

    def segment_popular(self, segment: str, n: int = TOP_N, exclude: Iterable[str] = ()
                        ) -> list[tuple[str, float]]:
        """Return a segment's best sellers among current stock (empty for an unknown one).

        Scores are the share of the segment's top item's buyer count.

        Args:
            segment: Named RFM segment.
            n: How many.
            exclude: Stock codes to leave out.
        """
        order = self.segment_order_.get(segment)
        if order is None or len(order) == 0:
            return []
        skip = set(exclude)
        counts = self.segment_counts_[segment]
        top = counts[order[0]]
        out = [(str(self.items_[i]), float(counts[i] / top)) for i in order[:n + len(skip)]
               if self.items_[i] not in skip]
        return out[:n]

    def _cf_block(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """CF and blended scores of profile rows (dense ``len(rows) x n_items``)."""
        cf = (self.profiles_[rows] @ self.similarity_).toarray()
        top = cf.max(axis=1, keepdims=True)
        top[top == 0] = 1.0
        cf /= top
        blended = cf + self.popularity_weight * self._pop_scores()[None, :]
        bought = self.bought_[rows].toarray().astype(bool)
        blended[bought | (cf <= 0)] = -np.inf
        return cf, blended

    def recommend_many(self, customer_ids: Sequence[int] | np.ndarray | None = None,
                       n: int = TOP_N, *, block: int = 512) -> pd.DataFrame:
        """Top-``n`` items for many customers, with their source.

        Args:
            customer_ids: Customers (default: every customer seen in fit). Unknown
                ones get their segment's best sellers, if their segment is known,
                then the overall best sellers.
            n: Items per customer.
            block: Customers scored at once.

        Returns:
            Columns ``customer_id, rank, stock_code, score, source`` (rank from 1).
        """
        ids = self.customers_ if customer_ids is None else np.asarray(customer_ids)
        pos = np.searchsorted(self.customers_, ids)
        pos = np.minimum(pos, max(len(self.customers_) - 1, 0))
        known = (len(self.customers_) > 0) & (self.customers_[pos] == ids)
        out_c, out_r, out_s, out_v, out_src = [], [], [], [], []

        def emit(cid: int, picks: list[tuple[str, float, str]]) -> None:
            for rank, (code, score, src) in enumerate(picks[:n], start=1):
                out_c.append(cid)
                out_r.append(rank)
                out_s.append(code)
                out_v.append(score)
                out_src.append(src)

        known_idx = np.nonzero(known)[0]
        for start in range(0, len(known_idx), block):
            chunk = known_idx[start:start + block]
            rows = pos[chunk]
            cf, blended = self._cf_block(rows)
            k = min(n, blended.shape[1] - 1) if blended.shape[1] > 1 else 1
            part = np.argpartition(-blended, k - 1, axis=1)[:, :k] if blended.shape[1] else \
                np.zeros((len(rows), 0), dtype=int)
            for j, i in enumerate(chunk):
                cand = part[j][np.isfinite(blended[j, part[j]])]
                cand = cand[np.lexsort((cand, -blended[j, cand]))]
                picks = [(str(self.items_[c]), float(blended[j, c]), "item_cf") for c in cand]
                if len(picks) < n:
                    picks = self._fill(picks, int(ids[i]), rows[j], n)
                emit(int(ids[i]), picks)
        for i in np.nonzero(~known)[0]:
            emit(int(ids[i]), self._fill([], int(ids[i]), None, n))
        return pd.DataFrame({"customer_id": np.asarray(out_c, dtype="int64"),
                             "rank": np.asarray(out_r, dtype="int64"), "stock_code": out_s,
                             "score": np.asarray(out_v, dtype=float), "source": out_src})

    def _fill(self, picks: list[tuple[str, float, str]], customer_id: int, row: int | None,
              n: int) -> list[tuple[str, float, str]]:
        """Complete a short list with segment, then overall best sellers."""
        skip = {p[0] for p in picks}
        if row is not None:
            skip |= {str(self.items_[j]) for j in self.bought_[row].indices}
        seg = self.segments_.get(customer_id)
        if isinstance(seg, str):
            for code, score in self.segment_popular(seg, n, exclude=skip):
                if len(picks) >= n:
                    break
                picks.append((code, score, "segment"))
                skip.add(code)
        for code, score in self.popular(n, exclude=skip):
            if len(picks) >= n:
                break
            picks.append((code, score, "popularity"))
        return picks

    def recommend(self, customer_id: int, n: int = TOP_N) -> list[tuple[str, float, str]]:
        """Top-``n`` ``(stock_code, score, source)`` for one customer."""
        df = self.recommend_many([customer_id], n)
        return list(zip(df["stock_code"], df["score"], df["source"], strict=True))
