"""Lead scoring: leak-free features, calibration, thresholds, reasons in words, CRM scores."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sqlalchemy import func, select
from threadpoolctl import threadpool_limits

from crm_ml import registry, scoring
from crm_ml.db import models as m
from crm_ml.db import session_scope
from crm_ml.features import leads as lf

BANK_ROW = {
    "age": 41, "job": "management", "marital": "married", "education": "university.degree",
    "default": "no", "housing": "yes", "loan": "no", "contact": "cellular", "month": "may",
    "day_of_week": "mon", "duration": 310, "campaign": 3, "pdays": 999, "previous": 0,
    "poutcome": "nonexistent", "emp.var.rate": 1.1, "cons.price.idx": 93.994,
    "cons.conf.idx": -36.4, "euribor3m": 4.857, "nr.employed": 5191.0,
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """One BLAS/OpenMP thread, as training runs: thread pools thrash on a busy machine."""
    with threadpool_limits(limits=1):
        yield


# --------------------------------------------------------------------------- known answers

def test_best_threshold_known_answers() -> None:
    y = [0, 0, 1, 1]
    p = [0.1, 0.4, 0.35, 0.8]
    # t=0.35 predicts [0,1,1,1]: precision 2/3, recall 1, F1 0.8 (the best).
    assert scoring.best_threshold(y, p) == pytest.approx(0.35)
    # Youden's J is 0.5 at 0.8 and at 0.35: ties go to the higher threshold.
    assert scoring.best_threshold(y, p, "youden") == pytest.approx(0.8)
    with pytest.raises(ValueError):
        scoring.best_threshold(y, p, "accuracy")


def test_binary_metrics_known_answers() -> None:
    y = [0, 0, 1, 1]
    p = [0.1, 0.6, 0.4, 0.9]
    out = scoring.binary_metrics(y, p, 0.5)
    assert out == pytest.approx({
        "auc": 0.75, "accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5,
        "brier": (0.01 + 0.36 + 0.36 + 0.01) / 4,
    })
    assert "brier" not in scoring.binary_metrics(y, p, 0.5, brier=False)


def test_group_contributions_of_a_linear_score() -> None:
    X = pd.DataFrame({"a": [1.0, 3.0], "b": [2.0, -1.0], "c": [5.0, 5.0]})

    def score(frame: pd.DataFrame) -> np.ndarray:
        return (2 * frame["a"] + frame["b"] + frame["c"]).to_numpy()

    out = scoring.group_contributions(score, X, {"a": 0.0, "b": 0.0, "c": 1.0},
                                      {"first": ["a"], "rest": ["b", "c"]})
    assert out["first"].tolist() == [2.0, 6.0]
    assert out["rest"].tolist() == [6.0, 3.0]


def test_pick_reasons_prefers_the_verdicts_direction() -> None:
    contrib = {"a": 0.9, "b": -1.5, "c": 0.2, "d": 0.01, "e": 0.4}
    assert scoring.pick_reasons(contrib, positive=True) == [("a", 0.9), ("e", 0.4), ("c", 0.2)]
    # A cold lead: the one lowering group first, then the strongest others; "d" is noise.
    assert scoring.pick_reasons(contrib, positive=False) == [("b", -1.5), ("a", 0.9),
                                                             ("e", 0.4)]
    assert scoring.pick_reasons({"d": 0.01}, positive=True) == []


def test_oof_calibrated_classifier_is_calibrated_on_fixed_seed() -> None:
    X, y = make_classification(n_samples=3000, n_features=8, n_informative=4,
                               weights=[0.8, 0.2], random_state=0)
    model = scoring.OOFCalibratedClassifier(
        LogisticRegression(class_weight="balanced"), cv=5, random_state=0).fit(X, y)
    p = model.predict_proba(X)[:, 1]
    # Balanced weights push raw probabilities up; the calibrator brings them back.
    assert abs(p.mean() - y.mean()) < 0.01
    assert model.oof_auc_ == pytest.approx(0.785, abs=0.01)
    assert 0.0 < model.threshold_ < 1.0
    assert set(model.predict(X)) == {0, 1}
    assert model.predict_proba(X).shape == (3000, 2)


# --------------------------------------------------------------------------- features

def test_leaky_columns_never_reach_the_model() -> None:
    for spec in lf.SPECS.values():
        assert not set(spec.columns) & set(spec.dropped)
        grouped = [c for cols in spec.groups.values() for c in cols]
        assert sorted(grouped) == sorted(spec.columns)
    assert {"duration", "y"} <= set(lf.BANK_SPEC.dropped)
    assert {"Tags", "Lead Quality", "Lead Profile", "Last Activity", "Last Notable Activity",
            "Asymmetrique Activity Score", "Converted"} <= set(lf.X_EDUCATION_SPEC.dropped)


def test_prepare_bank_handles_pdays_and_crm_records() -> None:
    raw = pd.DataFrame([BANK_ROW, {**BANK_ROW, "pdays": 6, "previous": 1,
                                   "poutcome": "success", "job": None}])
    X = lf.prepare(raw, lf.BANK_SPEC)
    assert list(X.columns) == lf.BANK_SPEC.columns
    assert "duration" not in X.columns
    assert np.isnan(X.loc[0, "days_since_previous"]) and X.loc[0, "contacted_before"] == 0.0
    assert X.loc[1, "days_since_previous"] == 6.0 and X.loc[1, "contacted_before"] == 1.0
    assert X["job"].dtype == object and pd.isna(X.loc[1, "job"])


def test_prepare_x_education_reads_select_null_and_missing_columns() -> None:
    raw = pd.DataFrame([
        {"Lead Origin": "API", "Lead Source": "Google", "Specialization": "Select",
         "TotalVisits": None, "Total Time Spent on Website": 1500, "City": None,
         "Tags": "Closed by Horizzon"},
    ])
    X = lf.prepare(raw, lf.X_EDUCATION_SPEC)
    assert list(X.columns) == lf.X_EDUCATION_SPEC.columns
    assert pd.isna(X.loc[0, "Specialization"]) and pd.isna(X.loc[0, "Country"])
    assert np.isnan(X.loc[0, "TotalVisits"])
    assert X.loc[0, "Total Time Spent on Website"] == 1500.0
    assert X.loc[0, "form_fields_missing"] == 5.0
    assert "Tags" not in X.columns


@pytest.mark.parametrize(("spec", "group", "row", "text"), [
    (lf.BANK_SPEC, "campaign", {"campaign": 3.0}, "contacted 3 times this campaign"),
    (lf.BANK_SPEC, "campaign", {"campaign": 1.0}, "contacted once this campaign"),
    (lf.BANK_SPEC, "history", {"poutcome": "success", "previous": 1.0,
                               "days_since_previous": np.nan}, "previous campaign succeeded"),
    (lf.BANK_SPEC, "history", {"poutcome": "nonexistent", "previous": 0.0,
                               "days_since_previous": np.nan},
     "never contacted before this campaign"),
    (lf.BANK_SPEC, "contact", {"contact": "cellular"}, "reached on a mobile phone"),
    (lf.BANK_SPEC, "month", {"month": "mar"}, "called in March"),
    (lf.BANK_SPEC, "economy", {"euribor3m": 0.9}, "interest rates low when called "
                                                  "(3-month Euribor 0.9%)"),
    (lf.X_EDUCATION_SPEC, "time_on_site", {"Total Time Spent on Website": 1500.0},
     "spent 25 minutes on the website"),
    (lf.X_EDUCATION_SPEC, "time_on_site", {"Total Time Spent on Website": 20.0},
     "spent under a minute on the website"),
    (lf.X_EDUCATION_SPEC, "visits", {"TotalVisits": 4.0}, "visited the website 4 times"),
    (lf.X_EDUCATION_SPEC, "pages", {"Page Views Per Visit": 1.0}, "viewed 1 page per visit"),
    (lf.X_EDUCATION_SPEC, "pages", {"Page Views Per Visit": 2.5}, "viewed 2.5 pages per visit"),
    (lf.X_EDUCATION_SPEC, "source", {"Lead Source": "Reference"}, "was referred by someone"),
    (lf.X_EDUCATION_SPEC, "occupation", {"What is your current occupation": np.nan},
     "did not give an occupation"),
    (lf.X_EDUCATION_SPEC, "do_not_email", {"Do Not Email": "Yes"}, "asked not to be emailed"),
])
def test_reasons_are_worded_for_a_sales_rep(spec: lf.LeadDataset, group: str, row: dict,
                                             text: str) -> None:
    assert lf.describe(spec, group, row) == text


# --------------------------------------------------------------------------- model on real slices

@pytest.fixture(scope="module")
def bank_slice() -> pd.DataFrame:
    from crm_ml.datasets import read_bank_marketing

    raw = read_bank_marketing()
    return raw.sample(6000, random_state=1).reset_index(drop=True)


@pytest.fixture(scope="module")
def small_bank_model(bank_slice: pd.DataFrame) -> scoring.LeadScorer:
    X = bank_slice.drop(columns=["y"])
    y = lf.target(bank_slice, lf.BANK_SPEC)
    return scoring.LeadScorer(lf.BANK, estimator="logistic_regression", cv=3).fit(X, y)


def test_lead_scorer_on_a_bank_slice(small_bank_model: scoring.LeadScorer,
                                     bank_slice: pd.DataFrame) -> None:
    model = small_bank_model
    assert model.estimator_name_ == "logistic_regression"
    assert 0.70 < model.cv_auc_["logistic_regression"] < 0.90
    X = bank_slice.drop(columns=["y"]).head(200)
    p = model.predict_proba(X)[:, 1]
    assert ((p > 0) & (p < 1)).all()
    # Duration is dropped: changing it changes nothing.
    assert np.allclose(model.predict_proba(X.assign(duration=4000))[:, 1], p)


def test_reasons_explain_a_hot_bank_lead(small_bank_model: scoring.LeadScorer) -> None:
    hot = {**BANK_ROW, "poutcome": "success", "pdays": 3, "previous": 2, "month": "mar",
           "euribor3m": 0.8, "emp.var.rate": -1.8, "nr.employed": 5099.1}
    cold = {**BANK_ROW, "campaign": 12, "contact": "telephone"}
    scores, reasons = small_bank_model.score_and_explain(pd.DataFrame([hot, cold]))
    assert scores[0] > 0.5 > scores[1]
    texts = [r["text"] for r in reasons[0]]
    assert len(reasons[0]) == 3
    assert all(r["effect"] == "raises" for r in reasons[0])
    assert any(t.startswith("previous campaign succeeded") for t in texts)
    assert all(r["effect"] == "lowers" for r in reasons[1])
    assert "contacted 12 times this campaign" in [r["text"] for r in reasons[1]]


def test_lead_scorer_rejects_unknown_estimator(bank_slice: pd.DataFrame) -> None:
    with pytest.raises(ValueError):
        scoring.LeadScorer(lf.BANK, estimator="svm").fit(bank_slice.drop(columns=["y"]),
                                                          lf.target(bank_slice, lf.BANK_SPEC))


# --------------------------------------------------------------------------- the CRM

def _add_leads(url: str, records: list[tuple[int, str, dict]]) -> None:
    with session_scope(url) as s:
        s.add(m.SalesRep(id=1, handle="rep:1", name="Alice Morgan", email="a@example.com",
                         role="rep"))
        s.flush()
        for lead_id, source, features in records:
            s.add(m.Lead(id=lead_id, source=source, external_ref=str(lead_id),
                         name=f"Lead {lead_id}", rep_id=1, features=features))


def test_lead_scores_replace_earlier_rows(sqlite_url: str,
                                          small_bank_model: scoring.LeadScorer) -> None:
    _add_leads(sqlite_url, [
        (1, lf.BANK, BANK_ROW),
        (2, lf.BANK, {**BANK_ROW, "poutcome": "success", "pdays": 4, "previous": 1}),
        (41189, lf.X_EDUCATION, {"Lead Origin": "API", "Specialization": None}),
    ])
    with session_scope(sqlite_url) as s:
        leads = scoring.read_leads(session=s)
    assert leads["id"].tolist() == [1, 2, 41189]
    scores = scoring.compute_lead_scores(leads, {lf.BANK: small_bank_model})
    assert [s["lead_id"] for s in scores] == [1, 2]  # no x_education model given
    for _ in range(2):
        with session_scope(sqlite_url) as s:
            assert scoring.write_lead_scores(session=s, scores=scores, model_version="v1") == 2
    with session_scope(sqlite_url) as s:
        rows = s.execute(select(m.LeadScore).order_by(m.LeadScore.lead_id)).scalars().all()
        assert [r.lead_id for r in rows] == [1, 2]
        assert rows[1].score > rows[0].score
        assert rows[1].reasons[0]["text"].startswith("previous campaign succeeded")


def test_train_and_store_writes_run_artifact_and_scores(
        sqlite_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole path on small slices of both datasets (the real run is the slow test)."""
    full = {name: scoring.read_dataset(name) for name in (lf.BANK, lf.X_EDUCATION)}
    monkeypatch.setattr(scoring, "read_dataset",
                        lambda name: full[name].sample(2500, random_state=0))
    monkeypatch.delitem(scoring.CANDIDATES, "hist_gradient_boosting")  # speed
    xed = json.loads(full[lf.X_EDUCATION].drop(columns=["Converted"]).iloc[0].to_json())
    _add_leads(sqlite_url, [(1, lf.BANK, BANK_ROW), (41189, lf.X_EDUCATION, xed)])
    messages: list[str] = []
    out = scoring.train_and_store(url=sqlite_url, models_dir=tmp_path, progress=messages.append)
    assert set(out) == {lf.BANK, lf.X_EDUCATION}
    for metrics in out.values():
        assert set(metrics) == {"auc", "accuracy", "precision", "recall", "f1", "brier"}
    assert messages and "lead scores written" in messages[-1]
    info = registry.latest(scoring.MODEL_NAME, models_dir=tmp_path)
    assert info is not None and info.metrics == out
    models = scoring.load_latest(models_dir=tmp_path)
    assert set(models) == {lf.BANK, lf.X_EDUCATION}
    with session_scope(sqlite_url) as s:
        runs = s.execute(select(m.ModelRun.name, m.ModelRun.version)).all()
        assert runs == [(scoring.MODEL_NAME, info.version)]
        assert s.execute(select(func.count()).select_from(m.LeadScore)).scalar_one() == 2
        versions = set(s.execute(select(m.LeadScore.model_version)).scalars())
        assert versions == {info.version}


# --------------------------------------------------------------------------- held-out targets

@pytest.mark.slow
@pytest.mark.parametrize(("name", "target_auc"), [(lf.BANK, 0.78), (lf.X_EDUCATION, 0.85)])
def test_held_out_metrics_meet_targets(name: str, target_auc: float) -> None:
    model, metrics = scoring.fit_and_evaluate(scoring.read_dataset(name), name)
    assert metrics["auc"] >= target_auc
    assert metrics["brier"] < 0.2
    assert 0 < metrics["precision"] <= 1 and 0 < metrics["recall"] <= 1
    # Calibrated: the mean score is close to the observed conversion rate.
    raw = scoring.read_dataset(name)
    _, X_te, _, y_te = scoring.split(raw, name)
    assert abs(model.predict_proba(X_te)[:, 1].mean() - y_te.mean()) < 0.03
