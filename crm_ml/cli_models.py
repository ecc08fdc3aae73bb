"""``crm-ml train`` and ``crm-ml report``: the models' commands (mounted by crm_ml.cli).

Examples::

    crm-ml train all                 # every model, in dependency order, timed
    crm-ml train segments            # one model (or a comma-separated list)
    crm-ml report                    # reports/report.html
    crm-ml report --format md        # reports/report.md and reports/figures/
    crm-ml report --format json      # the held-out metrics as one JSON object
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

__all__ = ["app", "report", "train"]

logger = logging.getLogger(__name__)

app = typer.Typer(help="Train the models and report their held-out metrics.",
                  no_args_is_help=True, add_completion=False)


def _headline(name: str, metrics: dict) -> str:
    """One line of the most telling metrics of a model."""
    def f(v: object, pct: bool = False) -> str:
        if not isinstance(v, int | float):
            return "n/a"
        return f"{v:.1f}%" if pct else f"{v:.3f}"

    if name == "leads":
        return "; ".join(f"{ds}: AUC {f(m.get('auc'))}, F1 {f(m.get('f1'))}"
                         for ds, m in metrics.items() if isinstance(m, dict))
    if name == "churn":
        return f"AUC {f(metrics.get('auc'))}, F1 {f(metrics.get('f1'))}"
    if name == "sentiment":
        return f"accuracy {f(metrics.get('accuracy'))}, macro F1 {f(metrics.get('macro_f1'))}"
    if name == "segments":
        return f"k={metrics.get('k')}, silhouette {f(metrics.get('silhouette'))}"
    if name == "recommendations":
        return (f"precision@10 {f(metrics.get('precision_at_10'))} vs popularity "
                f"{f(metrics.get('popularity_precision_at_10'))}")
    if name == "forecast":
        return (f"MAPE {f(metrics.get('mape'), True)} (seasonal naive "
                f"{f(metrics.get('seasonal_naive_mape'), True)}), MASE {f(metrics.get('mase'))}, "
                f"coverage {f(metrics.get('interval_coverage'))}")
    if name == "clv":
        return (f"6-month spend: Spearman {f(metrics.get('spearman'))} (baseline "
                f"{f(metrics.get('baseline_spearman'))}), MAE {f(metrics.get('mae'))} "
                f"(baseline {f(metrics.get('baseline_mae'))})")
    if name == "anomalies":
        return (f"injected: precision@k {f(metrics.get('precision_at_k'))} (robust z "
                f"{f(metrics.get('baseline_precision_at_k'))})")
    if name == "topics":
        return (f"{metrics.get('method', '?')} k={metrics.get('k')}, NMI with the tweets' "
                f"reasons {f(metrics.get('nmi_tweets'))} (random "
                f"{f(metrics.get('baseline_nmi_tweets'))})")
    if name == "nba":
        return (f"doubly robust gain {f(metrics.get('dr_gain'))} [{f(metrics.get('ci_low'))}, "
                f"{f(metrics.get('ci_high'))}] over the logged policy")
    return ""


@app.command()
def train(what: str = typer.Argument(
        "all", help="all | segments | recommendations | forecast | leads | churn | sentiment "
                    "| anomalies | nba | clv | topics (or a comma-separated list)")) -> None:
    """Train models on the CRM's data, store them and write their scores to the CRM."""
    from rich.console import Console
    from rich.table import Table

    from crm_ml import pipeline

    console = Console(stderr=True)
    try:
        results = pipeline.train(what, progress=True)
        failed = False
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    except pipeline.TrainingError as exc:
        results = getattr(exc, "results", {})
        failed = True
        if not results:
            raise
    table = Table(title="Training")
    table.add_column("model")
    table.add_column("seconds", justify="right")
    table.add_column("held-out metrics")
    for r in results.values():
        table.add_row(r.name, f"{r.seconds:.1f}",
                      _headline(r.name, r.metrics) if r.ok else f"[red]failed: {r.error}")
    table.add_row("[b]total", f"[b]{sum(r.seconds for r in results.values()):.1f}", "")
    console.print(table)
    if failed:
        raise typer.Exit(1)


@app.command()
def report(
    format: str = typer.Option("html", "--format", "-f", help="html | md | json"),  # noqa: A002
    output: Path | None = typer.Option(None, "--output", "-o",  # noqa: B008
                                       help="file to write (html/md); default reports/"),
) -> None:
    """Report the held-out metrics of the models in use, beside the papers' figures.

    With --format json: one JSON object on stdout (DESIGN.md's shape), no file written.
    """
    from crm_ml import report as rep

    fmt = format.lower()
    if fmt == "json":
        typer.echo(rep.metrics_json())
        return
    try:
        path = rep.write_report(fmt, output)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"report written to {path}", err=True)
