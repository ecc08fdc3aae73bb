"""Report: the JSON contract from registry metadata, HTML and Markdown with pictures, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from crm_ml import registry, report
from crm_ml.db import session_scope

LEADS = {"auc": 0.93, "accuracy": 0.91, "precision": 0.6, "recall": 0.55, "f1": 0.57,
         "brier": 0.06, "threshold": 0.31}
RUNS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "lead_scoring": ({"bank_marketing": LEADS, "x_education": {**LEADS, "auc": 0.88}},
                     {"bank_marketing": {"calibration": {"prob_pred": [0.1, 0.5, 0.9],
                                                         "prob_true": [0.12, 0.45, 0.88]},
                                         "confusion_matrix": [[7000, 300], [400, 500]]}}),
    "churn": ({"auc": 0.8, "accuracy": 0.75, "precision": 0.7, "recall": 0.72, "f1": 0.71,
               "extra": 1}, {"confusion": {"labels": ["stays", "churns"],
                                           "matrix": [[500, 100], [90, 400]]}}),
    "sentiment": ({"accuracy": 0.8, "macro_f1": 0.75, "negative_recall": 0.9,
                   "negative_precision": 0.85}, {}),
    "forecast": ({"rmse": 32000.0, "mape": 17.4, "mase": 0.88, "interval_coverage": 0.94,
                  "seasonal_naive_mape": 19.6}, {"series": {"total": {"order": [0, 0, 1]}},
                                                 "seconds": 12.0}),
    "recommendations": ({"precision_at_10": 0.076, "recall_at_10": 0.038,
                         "popularity_precision_at_10": 0.047},
                        {"evaluation": {"cutoff": "2011-09-09", "customers": 2207,
                                        "horizon_days": 91, "segment_precision_at_10": 0.04,
                                        "popularity_recall_at_10": 0.018}}),
    "segmentation": ({"k": 4, "silhouette": 0.366,
                      "segment_counts": {"Champions": 823, "Lost": 714}},
                     {"ks": [2, 3, 4, 5], "inertias": [8500.0, 6300.0, 4900.0, 4100.0],
                      "silhouettes": [0.43, 0.34, 0.36, 0.34], "elbow_k": 5,
                      "profiles": [{"cluster": 0, "name": "Recent frequent high-spend buyers",
                                    "size": 1191, "share": 0.2, "recency_days": 28.5,
                                    "frequency": 19.1, "monetary": 10562.9,
                                    "top_segment": "Champions"}]}),
}


def _store(models_dir: Path, names: list[str] | None = None) -> None:
    for name, (metrics, params) in RUNS.items():
        if names is None or name in names:
            registry.save(name, None, metrics=metrics, params=params, data_hash="ab" * 32,
                          models_dir=models_dir)


@pytest.fixture
def offline_db(env: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Settings pointing at an empty registry and an empty (unmigrated) database."""
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    env.setenv("CRM_DATABASE_URL", url)
    env.setenv("CRM_MODELS_DIR", str(tmp_path / "models"))
    return url


def test_json_has_exactly_the_contract_shape(tmp_path: Path, offline_db: str) -> None:
    _store(tmp_path / "models")
    got = report.collect_metrics()
    assert list(got) == ["lead_scoring", "churn", "sentiment", "forecast", "recommendations",
                         "segmentation", "anomalies", "next_best_action", "clv", "topics",
                         "helpdesk"]
    assert got["helpdesk"] is None  # the empty database here is not migrated
    # not stored here
    assert got["anomalies"] is None and got["next_best_action"] is None and got["clv"] is None
    assert set(got["lead_scoring"]) == {"bank_marketing", "x_education"}
    assert set(got["lead_scoring"]["bank_marketing"]) == {"auc", "accuracy", "precision",
                                                          "recall", "f1", "brier"}
    assert got["lead_scoring"]["x_education"]["auc"] == 0.88
    assert set(got["churn"]) == {"auc", "accuracy", "precision", "recall", "f1"}  # no "extra"
    assert got["forecast"]["mase"] == 0.88
    assert got["segmentation"]["segment_counts"] == {"Champions": 823, "Lost": 714}
    assert got["recommendations"]["popularity_precision_at_10"] == 0.047


def test_models_never_trained_are_null(tmp_path: Path, offline_db: str) -> None:
    _store(tmp_path / "models", ["forecast"])
    got = report.collect_metrics()
    assert got["forecast"] is not None
    assert got["churn"] is None and got["lead_scoring"] is None


def test_latest_version_wins(tmp_path: Path, offline_db: str) -> None:
    _store(tmp_path / "models", ["churn"])
    registry.save("churn", None, metrics={**RUNS["churn"][0], "auc": 0.99}, data_hash="cd" * 32,
                  models_dir=tmp_path / "models")
    assert report.collect_metrics()["churn"]["auc"] == 0.99


def test_model_runs_row_is_the_fallback(sqlite_url: str, tmp_path: Path) -> None:
    with session_scope(sqlite_url) as s:
        registry.save("sentiment", None, metrics=RUNS["sentiment"][0], data_hash="ef" * 32,
                      models_dir=tmp_path / "elsewhere", session=s)
    got = report.collect_metrics(models_dir=tmp_path / "empty", url=sqlite_url)
    assert got["sentiment"]["macro_f1"] == 0.75


def test_html_report_with_pictures_and_paper_figures(tmp_path: Path, offline_db: str) -> None:
    _store(tmp_path / "models")
    out = report.write_report("html", tmp_path / "r" / "report.html")
    text = out.read_text(encoding="utf-8")
    assert "accuracy 84.3%" in text and "AUC 0.82" in text and "MAPE 4.8%" in text
    assert "17.4%" in text  # our MAPE
    assert text.count("<img ") >= 6  # elbow, segments, clusters, calibration, 2 confusions
    assert "calibration lead scoring bank marketing" in text
    assert "confusion lead scoring bank marketing" in text and "confusion churn" in text


def test_markdown_report_writes_figures(tmp_path: Path, offline_db: str) -> None:
    _store(tmp_path / "models", ["segmentation"])
    out = report.write_report("md", tmp_path / "md" / "report.md")
    text = out.read_text(encoding="utf-8")
    assert "| k | 4 |" in text
    assert "Not trained yet" in text  # the other models
    figures = list((tmp_path / "md" / "figures").glob("*.png"))
    assert len(figures) == 3
    assert all(f"figures/{f.name}" in text for f in figures)


def test_unknown_format_is_refused(tmp_path: Path, offline_db: str) -> None:
    with pytest.raises(ValueError, match="unknown report format"):
        report.write_report("pdf", tmp_path / "x.pdf")


def test_cli_prints_one_json_object(tmp_path: Path, offline_db: str) -> None:
    from crm_ml.cli_models import app

    _store(tmp_path / "models")
    result = CliRunner().invoke(app, ["report", "--format", "json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert got == report.collect_metrics()


def test_cli_mounted_on_crm_ml(tmp_path: Path, offline_db: str) -> None:
    from crm_ml.cli import app

    _store(tmp_path / "models", ["segmentation"])
    out = tmp_path / "rep.html"
    result = CliRunner().invoke(app, ["report", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "<img " in out.read_text(encoding="utf-8")
    result = CliRunner().invoke(app, ["train", "nonsense"])
    assert result.exit_code == 2


def test_the_papers_remaining_models_have_pictures_beside_their_baselines() -> None:
    def run(name: str, metrics: dict, params: dict | None = None) -> report.RunInfo:
        return report.RunInfo(name, "v1", "2026-12-05", metrics, params or {}, None)

    runs = {
        "anomalies": run("anomalies", {"precision_at_k": 0.7, "recall_by_kind": {"huge_amount": 0.9,
                         "odd_hour": 1.0}, "baseline_precision_at_k": 0.3,
                         "baseline_recall_by_kind": {"huge_amount": 1.0, "odd_hour": 0.0}}),
        "next_best_action": run("nba", {"ips_gain": 0.01, "dr_gain": 0.02, "ci_low": 0.01,
                                        "ci_high": 0.03, "significant": True,
                                        "logged_value": 0.12, "random_dr_value": 0.11}),
        "clv": run("clv", {"mae": 600.0, "spearman": 0.62, "top_decile_capture": 0.61,
                           "baseline_mae": 670.0, "baseline_spearman": 0.59,
                           "baseline_top_decile_capture": 0.60},
                   {"evaluation": {"cutoff": "2011-06-09", "end": "2011-12-09",
                                   "holdout_revenue": 4.1e6, "predicted_revenue": 3.8e6,
                                   "baseline_revenue": 3.5e6}}),
    }
    runs["topics"] = run("topics", {"k": 4, "coherence": 0.13, "nmi_tweets": 0.18,
                                    "purity_tweets": 0.49, "method": "nmf",
                                    "baseline_nmi_tweets": 0.001,
                                    "baseline_purity_tweets": 0.36},
                         {"labels": ["flight, delayed, late", "hold, hours, help"],
                          "sizes": [4441, 2886]})
    sections = {s.key: s for s in report.build_sections(runs)}
    for key, pictures in (("anomalies", 1), ("next_best_action", 1), ("clv", 2), ("topics", 2)):
        images = sections[key].images
        assert len(images) == pictures, key
        assert all(png.startswith(b"\x89PNG") for _, png in images)
    metrics = report.collect_metrics(runs=runs)
    assert metrics["clv"]["spearman"] == 0.62 and metrics["clv"]["baseline_spearman"] == 0.59
    assert sections["clv"].rows[0][0] == "mae"


def test_the_helpdesk_part_of_the_report() -> None:
    from crm_ml.report_helpdesk import helpdesk_rows

    figures = {"overall": {"conversations": 6, "containment_rate": 0.5, "escalation_rate": 0.5,
                           "first_response_median_min": 6.0, "resolution_median_min": 45.0,
                           "csat": None},
               "per_channel": [{"key": "web", "containment_rate": 2 / 3,
                                "escalation_rate": 1 / 3},
                               {"key": "telegram", "containment_rate": 1 / 3,
                                "escalation_rate": 2 / 3}],
               "note": "no ratings yet"}
    rows, notes, images = helpdesk_rows(figures)
    assert ("bot containment rate", "50%", "web: 67%; telegram: 33%") in rows
    assert ("CSAT", "n/a", "web: n/a; telegram: n/a") in rows
    assert "CSAT: no ratings yet." in notes
    assert len(images) == 1 and images[0][1].startswith(b"\x89PNG")
