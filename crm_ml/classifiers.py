"""Binary classifiers shared by lead scoring and churn: calibration, thresholds, metrics, reasons.

- :class:`OOFCalibratedClassifier`: a classifier Platt-calibrated and
  thresholded on out-of-fold scores (folds grouped when groups are given);
- :func:`best_threshold`: the probability threshold that maximises F1 or
  Youden's J;
- :func:`binary_metrics` and :func:`diagnostics`: held-out metrics, the
  calibration curve and the confusion matrix;
- :func:`group_contributions` and :func:`pick_reasons`: per feature group, how
  much a row's log-odds move away from a typical row, and which groups explain
  a score.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)
from sklearn.model_selection import GroupKFold, StratifiedKFold
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "MIN_WEIGHT",
    "N_REASONS",
    "OOFCalibratedClassifier",
    "best_threshold",
    "binary_metrics",
    "diagnostics",
    "group_contributions",
    "pick_reasons",
]

logger = logging.getLogger(__name__)

#: Reasons given per score.
N_REASONS = 3
#: Contributions below this (in log-odds) are too small to be worth a reason.
MIN_WEIGHT = 0.05


def _take(X: Any, idx: np.ndarray) -> Any:
    return X.iloc[idx] if hasattr(X, "iloc") else X[idx]


def _raw_score(estimator: Any, X: Any) -> np.ndarray:
    """The estimator's log-odds-like score for the positive class."""
    if hasattr(estimator, "decision_function"):
        return np.asarray(estimator.decision_function(X), dtype=float).ravel()
    p = np.clip(estimator.predict_proba(X)[:, 1], 1e-12, 1 - 1e-12)
    return np.log(p / (1 - p))


def best_threshold(y_true: Sequence[int], proba: Sequence[float], metric: str = "f1") -> float:
    """The probability threshold that maximises a metric (ties: the highest threshold).

    Args:
        y_true: 0/1 outcomes.
        proba: Predicted probabilities of 1.
        metric: ``"f1"`` (F1 of class 1) or ``"youden"`` (TPR - FPR, i.e. balanced
            accuracy: does not depend on the base rate).

    Returns:
        Threshold ``t``: predict 1 when ``proba >= t``.
    """
    if metric == "youden":
        fpr, tpr, thresholds = roc_curve(y_true, proba)
        j = tpr - fpr
        best = np.flatnonzero(j == j.max())[0]  # roc thresholds decrease: first = highest
        return float(min(thresholds[best], 1.0))
    if metric != "f1":
        raise ValueError(f"unknown threshold metric {metric!r}")
    precision, recall, thresholds = precision_recall_curve(y_true, proba)
    p, r = precision[:-1], recall[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    best = np.flatnonzero(f1 == f1.max())[-1]
    return float(thresholds[best])


def diagnostics(y_true: Sequence[int], proba: Sequence[float], threshold: float,
                bins: int = 10) -> dict[str, Any]:
    """The calibration curve and confusion matrix of held-out predictions (for the report)."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import confusion_matrix

    y = np.asarray(y_true).astype(int)
    p = np.asarray(proba, dtype=float)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=bins, strategy="quantile")
    matrix = confusion_matrix(y, (p >= threshold).astype(int), labels=[0, 1])
    return {"calibration": {"prob_pred": [round(float(v), 4) for v in prob_pred],
                            "prob_true": [round(float(v), 4) for v in prob_true]},
            "confusion_matrix": {"labels": ["no", "yes"], "matrix": matrix.tolist()}}


def binary_metrics(y_true: Sequence[int], proba: Sequence[float], threshold: float, *,
                   brier: bool = True) -> dict[str, float]:
    """Held-out metrics of a probabilistic binary classifier.

    Args:
        y_true: 0/1 outcomes.
        proba: Predicted probabilities of 1.
        threshold: Decision threshold for the label metrics.
        brier: Include the Brier score.

    Returns:
        ``auc, accuracy, precision, recall, f1`` (and ``brier``), as floats.
    """
    y = np.asarray(y_true).astype(int)
    p = np.asarray(proba, dtype=float)
    pred = (p >= threshold).astype(int)
    out = {
        "auc": float(roc_auc_score(y, p)),
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
    }
    if brier:
        out["brier"] = float(brier_score_loss(y, p))
    return out


class OOFCalibratedClassifier(ClassifierMixin, BaseEstimator):
    """A binary classifier calibrated and thresholded on out-of-fold scores.

    Like ``CalibratedClassifierCV(method="sigmoid", ensemble=False)``: the
    estimator's scores on each held-out fold train a Platt (sigmoid)
    calibrator, then the estimator is refitted on all rows. The same
    out-of-fold probabilities give the decision threshold and the
    out-of-fold AUC used to compare candidate models.

    Args:
        estimator: An unfitted binary classifier with ``decision_function`` or
            ``predict_proba``.
        cv: Number of folds.
        threshold: Metric the decision threshold maximises (see :func:`best_threshold`).
        random_state: Seed of the fold shuffle.

    Attributes:
        estimator_: The estimator fitted on all rows.
        calibrator_: Logistic regression from raw score to probability.
        threshold_: Best threshold on the out-of-fold probabilities.
        oof_auc_: AUC of the out-of-fold scores.
        oof_proba_: Out-of-fold calibrated probabilities of the training rows.
        classes_: ``[0, 1]``.
    """

    def __init__(self, estimator: Any, cv: int = 5, threshold: str = "f1",
                 random_state: int = 0) -> None:
        self.estimator = estimator
        self.cv = cv
        self.threshold = threshold
        self.random_state = random_state

    def fit(self, X: Any, y: Sequence[int], groups: Sequence[Any] | None = None
            ) -> OOFCalibratedClassifier:
        """Fit the calibrator on out-of-fold scores, then the estimator on all rows.

        Args:
            X: Training inputs.
            y: 0/1 targets.
            groups: Optional group labels: rows of one group stay in one fold
                (e.g. snapshots of one customer).

        Returns:
            self
        """
        y_arr = np.asarray(y).astype(int)
        if groups is None:
            splitter: Any = StratifiedKFold(self.cv, shuffle=True, random_state=self.random_state)
            splits = splitter.split(np.zeros(len(y_arr)), y_arr)
        else:
            splits = GroupKFold(self.cv).split(np.zeros(len(y_arr)), y_arr, np.asarray(groups))
        oof = np.empty(len(y_arr), dtype=float)
        for train_idx, test_idx in splits:
            est = clone(self.estimator).fit(_take(X, train_idx), y_arr[train_idx])
            oof[test_idx] = _raw_score(est, _take(X, test_idx))
        self.calibrator_ = LogisticRegression(C=1e6, max_iter=1000).fit(oof[:, None], y_arr)
        self.oof_proba_ = self.calibrator_.predict_proba(oof[:, None])[:, 1]
        self.oof_auc_ = float(roc_auc_score(y_arr, oof))
        self.threshold_ = best_threshold(y_arr, self.oof_proba_, self.threshold)
        self.estimator_ = clone(self.estimator).fit(X, y_arr)
        self.classes_ = np.array([0, 1])
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """The refitted estimator's raw score (uncalibrated log-odds)."""
        check_is_fitted(self, "estimator_")
        return _raw_score(self.estimator_, X)

    def calibrate(self, score: np.ndarray) -> np.ndarray:
        """Map raw scores to calibrated probabilities of class 1."""
        return self.calibrator_.predict_proba(np.asarray(score, dtype=float)[:, None])[:, 1]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Calibrated probabilities, shape ``(n, 2)``."""
        p = self.calibrate(self.decision_function(X))
        return np.column_stack([1 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        """0/1 labels at :attr:`threshold_`."""
        return (self.predict_proba(X)[:, 1] >= self.threshold_).astype(int)


def group_contributions(score: Callable[[pd.DataFrame], np.ndarray], X: pd.DataFrame,
                        reference: Mapping[str, Any], groups: Mapping[str, Sequence[str]]
                        ) -> pd.DataFrame:
    """How much each feature group moves each row's score away from a typical row.

    Args:
        score: Function from a frame to one score per row (log-odds).
        X: The rows, with every column the groups name.
        reference: Typical value of every column.
        groups: Group name -> columns explained together.

    Returns:
        A frame (rows of ``X`` x groups): ``score(row) - score(row with the
        group's columns set to the reference)``; positive raises the score.
    """
    base = score(X)
    out = {}
    for name, cols in groups.items():
        moved = X.copy()
        for c in cols:
            value = np.empty(len(X), dtype=X[c].dtype)
            value[:] = reference[c]
            moved[c] = pd.Series(value, index=X.index, dtype=X[c].dtype)
        out[name] = base - score(moved)
    return pd.DataFrame(out, index=X.index)


def pick_reasons(contrib: Mapping[str, float], *, positive: bool, k: int = N_REASONS,
                 min_weight: float = MIN_WEIGHT) -> list[tuple[str, float]]:
    """Choose the groups that explain a score.

    The ``k`` groups pushing most in the direction of the verdict (up when
    ``positive``), then, if fewer than ``k`` do, the strongest of the others.

    Args:
        contrib: Group -> contribution (log-odds).
        positive: Whether to explain a high score (True) or a low one.
        k: How many reasons.
        min_weight: Contributions smaller than this in magnitude are ignored.

    Returns:
        ``[(group, contribution), ...]``, at most ``k``.
    """
    sign = 1.0 if positive else -1.0
    items = [(g, float(w)) for g, w in contrib.items() if abs(w) >= min_weight]
    main = sorted((it for it in items if sign * it[1] > 0), key=lambda it: -sign * it[1])
    rest = sorted((it for it in items if sign * it[1] <= 0), key=lambda it: -abs(it[1]))
    return (main + rest)[:k]

