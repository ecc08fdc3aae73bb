"""Lead scoring: calibrated conversion probabilities with reasons a sales rep reads.

One model per lead source (Bank Marketing, X Education; the columns used and
the ones left out as leaks are in :mod:`crm_ml.features.leads`). For each,
:class:`LeadScorer` fits a logistic regression and a histogram gradient
boosting model, both weighting the classes to balance them, and keeps the one
with the better out-of-fold AUC on the training data. Its scores are
calibrated with Platt scaling fitted on 5-fold out-of-fold scores
(:class:`OOFCalibratedClassifier`), so a score of 0.3 means about 30% of such
leads convert, and the decision threshold used for accuracy, precision,
recall and F1 is the one that maximises F1 on those same out-of-fold
probabilities: it never sees the held-out test rows.

Evaluation: a stratified 80/20 split with seed 42; metrics are computed on the
20% only (:func:`evaluate`).

Reasons: for each feature group (say "previous campaign": ``previous``,
``poutcome``, ``pdays``), the change in the model's log-odds when the lead's
values are replaced by those of a typical lead (median numbers, most frequent
categories). A hot lead gets the groups that raise its score most, a cold one
the groups that lower it most, each in words ("previous campaign succeeded",
"spent 25 minutes on the website"). ``lead_scores.reasons`` holds a list of
``{"text", "effect" ("raises" | "lowers"), "weight" (log-odds)}``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier
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
from sklearn.model_selection import GroupKFold, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from crm_ml.features import leads as lf

logger = logging.getLogger(__name__)

MODEL_NAME = "lead_scoring"
TEST_SIZE = 0.2
SEED = 42
N_REASONS = 3
#: Contributions below this (in log-odds) are too small to be worth a reason.
MIN_WEIGHT = 0.05

Progress = Callable[[str], None]


# --------------------------------------------------------------------------- generic parts

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


# --------------------------------------------------------------------------- the model

def _logistic(spec: lf.LeadDataset, random_state: int) -> Pipeline:
    return Pipeline([
        ("prep", lf.linear_preprocessor(spec)),
        ("clf", LogisticRegression(C=0.5, class_weight="balanced", max_iter=3000)),
    ])


def _boosting(spec: lf.LeadDataset, random_state: int) -> Pipeline:
    return Pipeline([
        ("prep", lf.tree_preprocessor(spec)),
        ("clf", HistGradientBoostingClassifier(
            categorical_features=list(range(len(spec.categorical))), learning_rate=0.05,
            max_iter=200, max_leaf_nodes=8, min_samples_leaf=40, l2_regularization=1.0,
            class_weight="balanced", early_stopping=False, random_state=random_state)),
    ])


CANDIDATES: dict[str, Callable[[lf.LeadDataset, int], Pipeline]] = {
    "logistic_regression": _logistic,
    "hist_gradient_boosting": _boosting,
}


class LeadScorer(ClassifierMixin, BaseEstimator):
    """Calibrated conversion probability of a lead, with reasons.

    Takes raw lead rows (file columns or ``leads.features`` records as a frame).

    Args:
        dataset: ``"bank_marketing"`` or ``"x_education"``.
        estimator: ``"auto"`` (best out-of-fold AUC), ``"logistic_regression"``
            or ``"hist_gradient_boosting"``.
        cv: Folds for calibration, threshold and model choice.
        random_state: Seed of folds and boosting.

    Attributes:
        model_: The chosen :class:`OOFCalibratedClassifier`.
        estimator_name_: Which candidate was chosen.
        cv_auc_: Out-of-fold AUC of every candidate tried.
        threshold_: F1-optimal decision threshold (from out-of-fold probabilities).
        reference_: Typical prepared values, the baseline of the reasons.
        base_rate_: Conversion rate of the training rows.
        classes_: ``[0, 1]``.
    """

    def __init__(self, dataset: str = lf.BANK, estimator: str = "auto", cv: int = 5,
                 random_state: int = 0) -> None:
        self.dataset = dataset
        self.estimator = estimator
        self.cv = cv
        self.random_state = random_state

    def _spec(self) -> lf.LeadDataset:
        return lf.get_spec(self.dataset)

    def fit(self, X: pd.DataFrame, y: Sequence[int]) -> LeadScorer:
        """Fit the candidates, keep the best, calibrate it.

        Args:
            X: Raw lead rows.
            y: 0/1 conversions.

        Returns:
            self
        """
        spec = lf.get_spec(self.dataset)
        names = list(CANDIDATES) if self.estimator == "auto" else [self.estimator]
        unknown = [n for n in names if n not in CANDIDATES]
        if unknown:
            raise ValueError(f"unknown estimator {unknown[0]!r}; use 'auto' or {list(CANDIDATES)}")
        Xp = lf.prepare(X, spec)
        y_arr = np.asarray(y).astype(int)
        fitted: dict[str, OOFCalibratedClassifier] = {}
        for name in names:
            start = time.perf_counter()
            fitted[name] = OOFCalibratedClassifier(
                CANDIDATES[name](spec, self.random_state), cv=self.cv,
                random_state=self.random_state,
            ).fit(Xp, y_arr)
            logger.info("%s %s: out-of-fold AUC %.4f (%.1fs)", self.dataset, name,
                        fitted[name].oof_auc_, time.perf_counter() - start)
        self.cv_auc_ = {n: m.oof_auc_ for n, m in fitted.items()}
        self.estimator_name_ = max(self.cv_auc_, key=self.cv_auc_.__getitem__)
        self.model_ = fitted[self.estimator_name_]
        self.threshold_ = self.model_.threshold_
        self.reference_ = lf.reference_values(Xp, spec)
        self.base_rate_ = float(y_arr.mean())
        self.classes_ = np.array([0, 1])
        return self

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Uncalibrated log-odds of raw rows."""
        check_is_fitted(self, "model_")
        return self.model_.decision_function(lf.prepare(X, self._spec()))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities of raw rows, shape ``(n, 2)``."""
        check_is_fitted(self, "model_")
        return self.model_.predict_proba(lf.prepare(X, self._spec()))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """0/1 at :attr:`threshold_`."""
        return (self.predict_proba(X)[:, 1] >= self.threshold_).astype(int)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Log-odds contribution of every feature group for raw rows (see module doc)."""
        check_is_fitted(self, "model_")
        spec = self._spec()
        Xp = lf.prepare(X, spec)
        return group_contributions(self.model_.decision_function, Xp, self.reference_,
                                   spec.groups)

    def score_and_explain(self, X: pd.DataFrame, k: int = N_REASONS
                          ) -> tuple[np.ndarray, list[list[dict[str, Any]]]]:
        """Scores and reasons of raw rows.

        Args:
            X: Raw lead rows.
            k: Reasons per lead.

        Returns:
            ``(scores, reasons)``: calibrated probabilities and, per lead, up to
            ``k`` dicts ``{"text", "effect", "weight"}``.
        """
        check_is_fitted(self, "model_")
        spec = self._spec()
        Xp = lf.prepare(X, spec)
        raw = self.model_.decision_function(Xp)
        scores = self.model_.calibrate(raw)
        contrib = group_contributions(self.model_.decision_function, Xp, self.reference_,
                                      spec.groups)
        rows = Xp.to_dict("records")
        reasons = []
        for i, (row, c) in enumerate(zip(rows, contrib.to_dict("records"), strict=True)):
            picked = pick_reasons(c, positive=bool(scores[i] >= self.base_rate_), k=k)
            reasons.append([
                {"text": lf.describe(spec, g, row), "effect": "raises" if w > 0 else "lowers",
                 "weight": round(w, 3)}
                for g, w in picked
            ])
        return scores, reasons

    def explain(self, X: pd.DataFrame, k: int = N_REASONS) -> list[list[dict[str, Any]]]:
        """Reasons of raw rows (see :meth:`score_and_explain`)."""
        return self.score_and_explain(X, k)[1]


# --------------------------------------------------------------------------- data and evaluation

def read_dataset(name: str) -> pd.DataFrame:
    """Read a lead dataset's raw rows from the datasets folder."""
    from crm_ml import datasets

    if name == lf.BANK:
        return datasets.read_bank_marketing()
    if name == lf.X_EDUCATION:
        return datasets.read_x_education()
    raise KeyError(name)


_DATA_FILES = {lf.BANK: "bank_additional", lf.X_EDUCATION: "leads"}


def split(raw: pd.DataFrame, name: str, *, test_size: float = TEST_SIZE, seed: int = SEED
          ) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
    """Stratified train/test split of raw rows (target column removed from X).

    Returns:
        ``(X_train, X_test, y_train, y_test)``.
    """
    spec = lf.get_spec(name)
    y = lf.target(raw, spec)
    X = raw.drop(columns=[spec.target])
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=test_size, stratify=y,
                                              random_state=seed)
    return X_tr, X_te, y_tr, y_te


def evaluate(model: LeadScorer, X: pd.DataFrame, y: Sequence[int]) -> dict[str, float]:
    """Held-out metrics (auc, accuracy, precision, recall, f1, brier) of a fitted scorer.

    The label metrics use the model's own threshold, fixed on training data.
    """
    return binary_metrics(y, model.predict_proba(X)[:, 1], model.threshold_)


def fit_and_evaluate(raw: pd.DataFrame, name: str, *, estimator: str = "auto",
                     seed: int = SEED) -> tuple[LeadScorer, dict[str, float]]:
    """Split, fit on the training part, evaluate on the held-out part.

    Args:
        raw: The dataset's raw rows (with the target).
        name: Dataset name.
        estimator: See :class:`LeadScorer`.
        seed: Split seed.

    Returns:
        ``(model, metrics)``.
    """
    X_tr, X_te, y_tr, y_te = split(raw, name, seed=seed)
    model = LeadScorer(name, estimator=estimator).fit(X_tr, y_tr)
    metrics = evaluate(model, X_te, y_te)
    logger.info("%s (%s): %s", name, model.estimator_name_,
                {k: round(v, 4) for k, v in metrics.items()})
    return model, metrics


# --------------------------------------------------------------------------- the CRM

def read_leads(*, session: Any) -> pd.DataFrame:
    """Every lead of the CRM: ``id``, ``source``, ``features`` (the raw dict)."""
    from sqlalchemy import select

    from crm_ml.db.models import Lead

    rows = session.execute(select(Lead.id, Lead.source, Lead.features).order_by(Lead.id)).all()
    return pd.DataFrame(rows, columns=["id", "source", "features"])


def compute_lead_scores(leads: pd.DataFrame, models: Mapping[str, LeadScorer]
                        ) -> list[dict[str, Any]]:
    """Scores and reasons of CRM leads.

    Args:
        leads: Output of :func:`read_leads`.
        models: Source -> fitted scorer. Leads of other sources are skipped.

    Returns:
        ``[{"lead_id", "score", "reasons"}, ...]``.
    """
    out: list[dict[str, Any]] = []
    for source, part in leads.groupby("source", sort=True):
        model = models.get(str(source))
        if model is None:
            logger.warning("no lead scoring model for source %r: %d leads left unscored",
                           source, len(part))
            continue
        raw = pd.DataFrame.from_records([f or {} for f in part["features"]])
        scores, reasons = model.score_and_explain(raw)
        out.extend(
            {"lead_id": int(i), "score": float(s), "reasons": r}
            for i, s, r in zip(part["id"], scores, reasons, strict=True)
        )
    return out


def write_lead_scores(*, session: Any, scores: Sequence[Mapping[str, Any]],
                      model_version: str) -> int:
    """Replace every row of ``lead_scores`` with ``scores`` (in the caller's transaction)."""
    import datetime as dt

    from sqlalchemy import delete, insert

    from crm_ml.db.models import LeadScore

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    session.execute(delete(LeadScore))
    rows = [{"lead_id": s["lead_id"], "score": s["score"], "reasons": s["reasons"],
             "model_version": model_version, "scored_at": now} for s in scores]
    for start in range(0, len(rows), 5000):
        session.execute(insert(LeadScore), rows[start:start + 5000])
    return len(rows)


def train_and_store(*, url: str | None = None, models_dir: Path | None = None,
                    progress: Progress | None = None) -> dict[str, dict[str, float]]:
    """Train both lead models, store them, score every CRM lead.

    Args:
        url: CRM database URL (default: the configured one).
        models_dir: Registry root (default: the configured ``models/``).
        progress: Called with a short message at each step.

    Returns:
        ``{"bank_marketing": {auc, accuracy, precision, recall, f1, brier},
        "x_education": {...}}``, measured on the held-out 20%.
    """
    from threadpoolctl import threadpool_limits

    from crm_ml import datasets, registry
    from crm_ml.db import session_scope

    say = progress or (lambda _msg: None)
    models: dict[str, LeadScorer] = {}
    metrics: dict[str, dict[str, float]] = {}
    params: dict[str, Any] = {"test_size": TEST_SIZE, "split_seed": SEED, "cv": 5,
                              "calibration": "sigmoid (Platt) on out-of-fold scores",
                              "threshold": "F1-optimal on out-of-fold probabilities"}
    # One thread: OpenMP/BLAS thread pools thrash on a busy 2-core machine.
    with threadpool_limits(limits=1):
        for name in (lf.BANK, lf.X_EDUCATION):
            say(f"lead scoring: fitting {name}")
            start = time.perf_counter()
            raw = read_dataset(name)
            model, m = fit_and_evaluate(raw, name)
            models[name], metrics[name] = model, m
            _, X_te, _, y_te = split(raw, name, seed=SEED)
            params[name] = {"estimator": model.estimator_name_, "cv_auc": model.cv_auc_,
                            "threshold": model.threshold_,
                            "dropped_columns": sorted(lf.get_spec(name).dropped),
                            "seconds": round(time.perf_counter() - start, 1),
                            **diagnostics(y_te, model.predict_proba(X_te)[:, 1],
                                          model.threshold_)}
        data_hash = datasets.file_hash(*(_DATA_FILES[n] for n in models))
        with session_scope(url) as s:
            leads = read_leads(session=s)
        say(f"lead scoring: scoring {len(leads)} CRM leads")
        scores = compute_lead_scores(leads, models)
    with session_scope(url) as s:
        info = registry.save(MODEL_NAME, models, metrics=metrics, data_hash=data_hash,
                             params=params, models_dir=models_dir, session=s)
        n = write_lead_scores(session=s, scores=scores, model_version=info.version)
    say(f"lead scoring: {n} lead scores written (version {info.version})")
    return metrics


def load_latest(models_dir: Path | None = None) -> dict[str, LeadScorer]:
    """The lead scorers in use, keyed by source."""
    from crm_ml import registry

    models, _info = registry.load(MODEL_NAME, models_dir=models_dir)
    return models
