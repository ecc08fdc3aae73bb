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
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from crm_ml.classifiers import (
    MIN_WEIGHT,
    N_REASONS,
    OOFCalibratedClassifier,
    best_threshold,
    binary_metrics,
    diagnostics,
    group_contributions,
    pick_reasons,
)
from crm_ml.features import leads as lf
from crm_ml.features.leads import read_leads
from crm_ml.outputs import write_lead_scores
from crm_ml.training import Progress, training

__all__ = [
    "CANDIDATES",
    "MIN_WEIGHT",
    "MODEL_NAME",
    "N_REASONS",
    "SEED",
    "TEST_SIZE",
    "LeadScorer",
    "OOFCalibratedClassifier",
    "Progress",
    "best_threshold",
    "binary_metrics",
    "compute_lead_scores",
    "diagnostics",
    "evaluate",
    "fit_and_evaluate",
    "group_contributions",
    "load_latest",
    "pick_reasons",
    "read_dataset",
    "read_leads",
    "split",
    "train_and_store",
    "write_lead_scores",
]

logger = logging.getLogger(__name__)

MODEL_NAME = "lead_scoring"
TEST_SIZE = 0.2
SEED = 42


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
    from crm_ml import datasets
    from crm_ml.db import session_scope

    models: dict[str, LeadScorer] = {}
    metrics: dict[str, dict[str, float]] = {}
    params: dict[str, Any] = {"test_size": TEST_SIZE, "split_seed": SEED, "cv": 5,
                              "calibration": "sigmoid (Platt) on out-of-fold scores",
                              "threshold": "F1-optimal on out-of-fold probabilities"}
    with training(MODEL_NAME, url=url, models_dir=models_dir, progress=progress) as run:
        for name in (lf.BANK, lf.X_EDUCATION):
            run.say(f"lead scoring: fitting {name}")
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
        run.say(f"lead scoring: scoring {len(leads)} CRM leads")
        scores = compute_lead_scores(leads, models)
        info, n = run.store(models, metrics=metrics, data_hash=data_hash, params=params,
                            write=lambda s, version: write_lead_scores(
                                session=s, scores=scores, model_version=version))
        run.say(f"lead scoring: {n} lead scores written (version {info.version})")
    return metrics


def load_latest(models_dir: Path | None = None) -> dict[str, LeadScorer]:
    """The lead scorers in use, keyed by source."""
    from crm_ml import registry

    models, _info = registry.load(MODEL_NAME, models_dir=models_dir)
    return models
