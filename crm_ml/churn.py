"""Churn: probability that a customer buys nothing in the next 90 days.

Features and labels come from :mod:`crm_ml.features.churn`. The split is in
time, never across it:

* ``score_cutoff``: midnight after the last order in the data; the final
  model scores every customer as of then.
* ``test_cutoff = score_cutoff - 90 days``: the held-out snapshot. Features
  from before it, labels from the 90 days after it (the end of the data).
* training snapshots every 30 days, the latest at ``test_cutoff - 90 days``,
  so every training label window ends on or before ``test_cutoff``: no
  training row sees anything from the test label window.

The model (:class:`ChurnModel`) is a histogram gradient boosting or a
logistic regression, whichever has the better out-of-fold AUC, Platt-calibrated
on out-of-fold scores with folds grouped by customer (a customer's snapshots
stay in one fold). The decision threshold for accuracy, precision, recall and
F1 maximises Youden's J (TPR - FPR) on those out-of-fold probabilities rather
than F1: churners are the majority here (56-68% per snapshot, lower before
Christmas), and an F1-optimal threshold then flags almost every customer
(recall 0.97, accuracy 0.68 on the held-out snapshot) while J does not depend
on the base rate, which moves with the season. For the scores written to
the CRM the same recipe is refitted with every snapshot shifted 90 days later
(the newest labels), then applied at ``score_cutoff``.

Reasons: per feature group, the change in log-odds when the customer's values
are replaced by the typical customer's (see :func:`crm_ml.classifiers.group_contributions`);
``churn_scores.reasons`` holds ``{"text", "effect", "weight"}`` dicts like
``lead_scores``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils.validation import check_is_fitted

from crm_ml.classifiers import (
    N_REASONS,
    OOFCalibratedClassifier,
    binary_metrics,
    diagnostics,
    group_contributions,
    pick_reasons,
)
from crm_ml.features import churn as fc
from crm_ml.features.churn import read_orders
from crm_ml.outputs import write_churn_scores
from crm_ml.training import Progress, training

__all__ = [
    "CANDIDATES",
    "MODEL_NAME",
    "MONOTONE",
    "N_SNAPSHOTS",
    "STEP_DAYS",
    "ChurnModel",
    "Progress",
    "compute_churn_scores",
    "cutoffs",
    "evaluate",
    "fit_and_evaluate",
    "fit_final",
    "load_latest",
    "read_orders",
    "train_and_store",
    "write_churn_scores",
]

logger = logging.getLogger(__name__)

MODEL_NAME = "churn"
N_SNAPSHOTS = 9
STEP_DAYS = 30


def _signed_log1p(a: np.ndarray) -> np.ndarray:
    return np.sign(a) * np.log1p(np.abs(a))


def _logistic(random_state: int) -> Pipeline:
    return Pipeline([
        ("impute", SimpleImputer(strategy="median", add_indicator=True)),
        ("log", FunctionTransformer(_signed_log1p)),
        ("scale", StandardScaler()),
        ("clf", LogisticRegression(C=1.0, max_iter=3000)),
    ])


#: Monotone effects on churn risk the boosting model must respect: more days since
#: the last order never lowers the risk, more orders or spend never raise it. Keeps
#: the reasons coherent ("41 orders" never counts *for* churn) at no cost in AUC.
MONOTONE: dict[str, int] = {
    "recency_days": 1, "overdue_ratio": 1, "frequency": -1, "purchase_days": -1,
    "monetary": -1, "orders_last_90": -1, "spend_last_90": -1, "orders_per_month": -1,
}


def _boosting(random_state: int) -> Pipeline:
    return Pipeline([
        ("clf", HistGradientBoostingClassifier(
            learning_rate=0.05, max_iter=200, max_leaf_nodes=15, min_samples_leaf=50,
            l2_regularization=1.0, early_stopping=False, random_state=random_state,
            monotonic_cst=[MONOTONE.get(f, 0) for f in fc.FEATURES])),
    ])


CANDIDATES: dict[str, Callable[[int], Pipeline]] = {
    "logistic_regression": _logistic,
    "hist_gradient_boosting": _boosting,
}


class ChurnModel(ClassifierMixin, BaseEstimator):
    """Calibrated 90-day churn probability from :data:`crm_ml.features.churn.FEATURES`.

    Args:
        estimator: ``"auto"`` (best out-of-fold AUC), ``"logistic_regression"``
            or ``"hist_gradient_boosting"``.
        cv: Folds (grouped by customer when groups are given to :meth:`fit`).
        random_state: Seed.

    Attributes:
        model_: The chosen :class:`crm_ml.classifiers.OOFCalibratedClassifier`.
        estimator_name_: Its name.
        cv_auc_: Out-of-fold AUC of each candidate.
        threshold_: Youden-optimal threshold on out-of-fold probabilities.
        reference_: Typical feature values (the reasons' baseline).
        base_rate_: Churn rate of the training rows.
        classes_: ``[0, 1]``.
    """

    def __init__(self, estimator: str = "auto", cv: int = 5, random_state: int = 0) -> None:
        self.estimator = estimator
        self.cv = cv
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: Sequence[int], groups: Sequence[Any] | None = None
            ) -> ChurnModel:
        """Fit on snapshot rows.

        Args:
            X: Rows with the columns :data:`crm_ml.features.churn.FEATURES`.
            y: 1 = churned.
            groups: Customer id of each row (keeps a customer in one fold).

        Returns:
            self
        """
        names = list(CANDIDATES) if self.estimator == "auto" else [self.estimator]
        if any(n not in CANDIDATES for n in names):
            raise ValueError(f"unknown estimator {self.estimator!r}")
        Xf = X[fc.FEATURES].astype(float)
        y_arr = np.asarray(y).astype(int)
        fitted = {
            n: OOFCalibratedClassifier(CANDIDATES[n](self.random_state), cv=self.cv,
                                       threshold="youden",
                                       random_state=self.random_state).fit(Xf, y_arr, groups)
            for n in names
        }
        self.cv_auc_ = {n: m.oof_auc_ for n, m in fitted.items()}
        self.estimator_name_ = max(self.cv_auc_, key=self.cv_auc_.__getitem__)
        self.model_ = fitted[self.estimator_name_]
        self.threshold_ = self.model_.threshold_
        self.reference_ = {
            c: (float(Xf[c].median()) if Xf[c].notna().mean() > 0.5 else np.nan)
            for c in fc.FEATURES
        }
        self.base_rate_ = float(y_arr.mean())
        self.classes_ = np.array([0, 1])
        logger.info("churn model: %s, out-of-fold AUC %s", self.estimator_name_,
                    {k: round(v, 4) for k, v in self.cv_auc_.items()})
        return self

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Uncalibrated log-odds."""
        check_is_fitted(self, "model_")
        return self.model_.decision_function(X[fc.FEATURES].astype(float))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities, shape ``(n, 2)``; column 1 is churn."""
        check_is_fitted(self, "model_")
        return self.model_.predict_proba(X[fc.FEATURES].astype(float))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """1 = will churn, at :attr:`threshold_`."""
        return (self.predict_proba(X)[:, 1] >= self.threshold_).astype(int)

    def score_and_explain(self, X: pd.DataFrame, k: int = N_REASONS
                          ) -> tuple[np.ndarray, list[list[dict[str, Any]]]]:
        """Churn probabilities and reasons.

        Args:
            X: Output of :func:`crm_ml.features.churn.build_features`.
            k: Reasons per customer.

        Returns:
            ``(probabilities, reasons)``, reasons as ``{"text", "effect", "weight"}``.
        """
        check_is_fitted(self, "model_")
        Xf = X[fc.FEATURES].astype(float)
        raw = self.model_.decision_function(Xf)
        proba = self.model_.calibrate(raw)
        contrib = group_contributions(self.model_.decision_function, Xf, self.reference_,
                                      fc.GROUPS)
        reasons = []
        for (_, row), c, p in zip(X.iterrows(), contrib.to_dict("records"), proba, strict=True):
            picked = pick_reasons(c, positive=bool(p >= self.base_rate_), k=k)
            reasons.append([
                {"text": fc.describe(g, row, raises_risk=w > 0),
                 "effect": "raises" if w > 0 else "lowers", "weight": round(w, 3)}
                for g, w in picked
            ])
        return proba, reasons


# --------------------------------------------------------------------------- time splits

def cutoffs(orders: pd.DataFrame, *, n_snapshots: int = N_SNAPSHOTS, step_days: int = STEP_DAYS,
            horizon_days: int = fc.HORIZON_DAYS) -> dict[str, Any]:
    """The snapshot times of a temporal evaluation.

    Args:
        orders: Order table (see :mod:`crm_ml.features.churn`).
        n_snapshots: Training snapshots wanted (fewer if the history is short).
        step_days: Days between training snapshots.
        horizon_days: Label window.

    Returns:
        ``{"score": t, "test": t - h, "train": [...], "final_train": [...]}``:
        ``train`` snapshots end their label windows on or before ``test``;
        ``final_train`` are the same snapshots ``h`` days later (for the model
        that scores at ``score``). Snapshots need 30 days of history before them.
    """
    first = orders["invoiced_at"].min()
    last = orders["invoiced_at"].max()
    horizon = pd.Timedelta(days=horizon_days)
    score = last.normalize() + pd.Timedelta(days=1)
    test = score - horizon
    earliest = first + pd.Timedelta(days=30)
    train = [test - horizon - pd.Timedelta(days=step_days * k) for k in range(n_snapshots)]
    train = sorted(c for c in train if c >= earliest)
    final_train = [c + horizon for c in train]
    return {"score": score, "test": test, "train": train, "final_train": final_train}


def evaluate(model: ChurnModel, X: pd.DataFrame, y: Sequence[int]) -> dict[str, float]:
    """Held-out metrics: ``auc, accuracy, precision, recall, f1`` (threshold from training)."""
    return binary_metrics(y, model.predict_proba(X)[:, 1], model.threshold_, brier=False)


def fit_and_evaluate(orders: pd.DataFrame, *, estimator: str = "auto",
                     n_snapshots: int = N_SNAPSHOTS) -> tuple[ChurnModel, dict[str, float],
                                                               dict[str, Any]]:
    """Train on the training snapshots, evaluate on the test snapshot.

    Args:
        orders: Order table.
        estimator: See :class:`ChurnModel`.
        n_snapshots: Training snapshots.

    Returns:
        ``(model, metrics, info)``; ``info`` has the cutoffs and row counts.

    Raises:
        ValueError: not enough history for one training snapshot.
    """
    orders = fc.to_orders(orders)
    cuts = cutoffs(orders, n_snapshots=n_snapshots)
    if not cuts["train"]:
        raise ValueError("not enough order history for a training snapshot (needs > 210 days)")
    X, y = fc.build_snapshots(orders, cuts["train"])
    model = ChurnModel(estimator=estimator).fit(X, y, groups=X["customer_id"])
    X_test = fc.build_features(orders, cuts["test"])
    y_test = fc.build_labels(orders, cuts["test"], X_test.index)
    metrics = evaluate(model, X_test, y_test)
    info = {
        "test_cutoff": str(cuts["test"].date()),
        "train_cutoffs": [str(c.date()) for c in cuts["train"]],
        "train_rows": len(X), "train_churn_rate": round(float(y.mean()), 4),
        "test_rows": len(X_test), "test_churn_rate": round(float(y_test.mean()), 4),
        "estimator": model.estimator_name_, "cv_auc": model.cv_auc_,
        "threshold": model.threshold_,
        **diagnostics(y_test, model.predict_proba(X_test)[:, 1], model.threshold_),
    }
    logger.info("churn held-out: %s", {k: round(v, 4) for k, v in metrics.items()})
    return model, metrics, info


def fit_final(orders: pd.DataFrame, *, estimator: str = "auto",
              n_snapshots: int = N_SNAPSHOTS) -> tuple[ChurnModel, pd.Timestamp]:
    """Refit on the newest snapshots (labels up to the end of the data).

    Returns:
        ``(model, score_cutoff)``.
    """
    orders = fc.to_orders(orders)
    cuts = cutoffs(orders, n_snapshots=n_snapshots)
    X, y = fc.build_snapshots(orders, cuts["final_train"])
    model = ChurnModel(estimator=estimator).fit(X, y, groups=X["customer_id"])
    return model, cuts["score"]


def compute_churn_scores(model: ChurnModel, orders: pd.DataFrame, cutoff: pd.Timestamp,
                         customers: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Churn probability and reasons of every customer with a sale before ``cutoff``.

    Args:
        model: A fitted model.
        orders: Order table.
        cutoff: The "as of" time.
        customers: When given, only these customer ids.

    Returns:
        ``[{"customer_id", "probability", "reasons"}, ...]``.
    """
    X = fc.build_features(fc.to_orders(orders), cutoff)
    if customers is not None:
        X = X[X.index.isin(list(customers))]
    if X.empty:
        return []
    proba, reasons = model.score_and_explain(X)
    return [{"customer_id": int(c), "probability": float(p), "reasons": r}
            for c, p, r in zip(X.index, proba, reasons, strict=True)]


# --------------------------------------------------------------------------- the CRM

def train_and_store(*, url: str | None = None, models_dir: Path | None = None,
                    progress: Progress | None = None) -> dict[str, float]:
    """Evaluate on the held-out snapshot, refit on the newest, score every customer.

    Orders come from the CRM (``orders``/``order_lines``); when the CRM holds
    none, from the Online Retail II files (then only customers present in the
    CRM get a score row).

    Args:
        url: CRM database URL.
        models_dir: Registry root.
        progress: Called with a short message at each step.

    Returns:
        ``{auc, accuracy, precision, recall, f1}`` on the held-out snapshot.
    """
    with training(MODEL_NAME, url=url, models_dir=models_dir, progress=progress) as run:
        orders, source = fc.load_orders(url, run.say, "churn")
        run.say("churn: fitting on the training snapshots, evaluating on the held-out one")
        _model, metrics, info = fit_and_evaluate(orders)
        run.say("churn: refitting on the newest snapshots")
        final, score_cutoff = fit_final(orders, estimator=info["estimator"])
        scores = compute_churn_scores(final, orders, score_cutoff)
        params = {**info, "orders_source": source, "score_cutoff": str(score_cutoff.date()),
                  "horizon_days": fc.HORIZON_DAYS, "final_estimator": final.estimator_name_,
                  "final_threshold": final.threshold_, "seconds": run.seconds}
        saved, n = run.store(final, metrics=metrics, data_hash=fc.orders_hash(orders),
                             params=params, write=lambda s, version: write_churn_scores(
                                 session=s, scores=scores, model_version=version))
        run.say(f"churn: {n} churn scores written (version {saved.version})")
    return metrics


def load_latest(models_dir: Path | None = None) -> ChurnModel:
    """The churn model in use."""
    from crm_ml import registry

    model, _info = registry.load(MODEL_NAME, models_dir=models_dir)
    return model
