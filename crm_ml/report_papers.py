"""The figures the papers behind this project report, beside which ``crm-ml report``
puts ours (:mod:`crm_ml.report`)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PAPER_FIGURES", "PaperFigure"]


@dataclass(frozen=True)
class PaperFigure:
    """A figure reported in the literature the project follows.

    Attributes:
        section: Report section.
        metric: Our metric it compares with (a key of the section, or a
            ``dataset.key`` path for lead scoring; None when nothing is comparable).
        label: What the paper reports.
        value: The number, as a fraction (or as MAPE percent), or None.
    """

    section: str
    metric: str | None
    label: str
    value: float | None


PAPER_FIGURES: tuple[PaperFigure, ...] = (
    PaperFigure("lead_scoring", "accuracy", "lead scoring: accuracy 85%", 0.85),
    PaperFigure("lead_scoring", "f1", "lead scoring: F1 85%", 0.85),
    PaperFigure("lead_scoring", "accuracy", "gradient boosting: accuracy 84.3%", 0.843),
    PaperFigure("sentiment", "accuracy", "sentiment: accuracy 85-90%", 0.85),
    PaperFigure("churn", "auc", "churn: AUC 0.82", 0.82),
    PaperFigure("forecast", "mape", "sales forecast: MAPE 4.8%", 4.8),
    PaperFigure("segmentation", None, "RFM scores + K-Means segments (no figure)", None),
    PaperFigure("recommendations", None, "no figure; our baseline: popularity", None),
    PaperFigure("anomalies", None, "Isolation Forest for unusual activity (no figure); "
                "our baseline: robust z-scores", None),
    PaperFigure("next_best_action", None, "reinforcement learning for next-best-action (no "
                "figure); ours: an offline bandit judged off-policy", None),
    PaperFigure("clv", None, "customer lifetime value (no figure); ours: BG/NBD + Gamma-Gamma "
                "against each customer's historical spend rate", None),
    PaperFigure("topics", None, "LDA topic modelling of customer feedback (no figure); ours: "
                "NMF and LDA, k by NPMI coherence, judged on the tweets' negative reasons "
                "against random topics", None),
)
