"""The training table's one-line summary of each model's held-out figures."""

from __future__ import annotations

import pytest

from crm_ml.cli_models import _headline

SAMPLES = {
    "clv": ({"spearman": 0.627, "baseline_spearman": 0.593, "mae": 573.0,
             "baseline_mae": 613.0}, ["0.627", "0.593", "573.000", "613.000"]),
    "anomalies": ({"precision_at_k": 0.7, "baseline_precision_at_k": 0.34},
                  ["0.700", "0.340"]),
    "topics": ({"method": "nmf", "k": 4, "nmi_tweets": 0.177, "baseline_nmi_tweets": 0.001},
               ["nmf", "k=4", "0.177", "0.001"]),
    "nba": ({"dr_gain": 0.025, "ci_low": 0.013, "ci_high": 0.037},
            ["0.025", "[0.013, 0.037]"]),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_the_papers_models_show_their_figures_beside_the_baseline(name: str) -> None:
    metrics, shown = SAMPLES[name]
    line = _headline(name, metrics)
    for part in shown:
        assert part in line, (part, line)


def test_a_missing_figure_reads_n_a() -> None:
    assert "n/a" in _headline("clv", {})
