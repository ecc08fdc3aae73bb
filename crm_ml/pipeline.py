"""Training pipeline: every model, in dependency order, timed, with progress.

Each model lives in its own module exposing the same function::

    train_and_store(*, url=None, models_dir=None, progress=None) -> dict

which reads its data, evaluates on held-out data, fits, saves the artifact with
:func:`crm_ml.registry.save` (a ``model_runs`` row included) and writes its
scores to the CRM, returning the report-shaped metrics; the skeleton they share
(progress, timing, thread limits, storing) is :func:`crm_ml.training.training`. Modules are imported
only when their model is trained, so that a missing or broken module names
itself in the error instead of breaking the others.

Order: segments come before recommendations and the forecast, which read the
``segments`` table (segment fallbacks, per-segment revenue).
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crm_ml.errors import CRMError

__all__ = ["MODELS", "ModelResult", "TrainingError", "resolve", "train"]

logger = logging.getLogger(__name__)

#: Model -> module with ``train_and_store``, in training order.
MODELS: dict[str, str] = {
    "segments": "crm_ml.segmentation",
    "recommendations": "crm_ml.recommend",
    "forecast": "crm_ml.forecasting",
    "leads": "crm_ml.scoring",
    "churn": "crm_ml.churn",
    "sentiment": "crm_ml.sentiment",
    "anomalies": "crm_ml.anomalies",
    "nba": "crm_ml.nba",
    "clv": "crm_ml.clv",
    "topics": "crm_ml.topics",
}

Message = Callable[[str], None]


class TrainingError(CRMError):
    """A model could not be trained (its module is missing or its training failed)."""


@dataclass
class ModelResult:
    """Outcome of one model's training.

    Attributes:
        name: Model name (``segments``, ``leads``...).
        seconds: Wall time of its training.
        metrics: What its ``train_and_store`` returned (empty on failure).
        error: The error message when it failed, else None.
    """

    name: str
    seconds: float
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the model trained."""
        return self.error is None


def resolve(what: str) -> list[str]:
    """Return the models to train for ``what``, in training order.

    Args:
        what: ``all`` or one model name (see :data:`MODELS`); a comma-separated
            list is accepted too (``segments,forecast``).

    Raises:
        ValueError: an unknown name.
    """
    names = [w.strip().lower() for w in what.split(",") if w.strip()]
    if not names or "all" in names:
        return list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise ValueError(f"unknown model {', '.join(unknown)}: choose all or "
                         f"{', '.join(MODELS)}")
    return [n for n in MODELS if n in names]


def _trainer(name: str) -> Callable[..., dict[str, Any]]:
    module_name = MODELS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise TrainingError(f"cannot train {name}: module {module_name} is missing") from exc
        raise TrainingError(f"cannot train {name}: {module_name} needs the package "
                            f"{exc.name!r}, which is not installed") from exc
    fn = getattr(module, "train_and_store", None)
    if fn is None:
        raise TrainingError(f"cannot train {name}: {module_name} has no train_and_store()")
    return fn


@contextmanager
def _rich_progress(names: list[str]) -> Iterator[Callable[[str, str | None], None]]:
    """A rich progress display on stderr: one line per model, the latest message on it."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=False) as bar:
        tasks = {n: bar.add_task(f"[dim]{n}: waiting", total=1, start=False) for n in names}

        def update(name: str, message: str | None) -> None:
            task = tasks[name]
            if message is None:  # done
                bar.update(task, completed=1)
                bar.stop_task(task)
                return
            bar.start_task(task)
            bar.update(task, description=message)

        yield update


def train(what: str = "all", *, url: str | None = None, models_dir: Path | None = None,
          progress: bool | Message = True, stop_on_error: bool | None = None
          ) -> dict[str, ModelResult]:
    """Train the models named by ``what``, timing each.

    Args:
        what: ``all``, one of :data:`MODELS` or a comma-separated list.
        url: CRM database URL (default: the configured CRM).
        models_dir: Registry root (default: the configured ``models/``).
        progress: True shows a rich progress display on stderr; a callable gets
            every message instead; False only logs.
        stop_on_error: Stop at the first failure (default: only when one model
            is asked for; with several, the others still train).

    Returns:
        Model name -> :class:`ModelResult`, in training order.

    Raises:
        ValueError: ``what`` names an unknown model.
        TrainingError: a model failed (after the others were trained, unless
            ``stop_on_error``); the results so far are in its ``results`` attribute.
    """
    names = resolve(what)
    stop = len(names) == 1 if stop_on_error is None else stop_on_error
    results: dict[str, ModelResult] = {}

    def run(update: Callable[[str, str | None], None]) -> None:
        for name in names:
            start = time.perf_counter()

            def say(message: str, _name: str = name) -> None:
                logger.info("%s", message)
                update(_name, f"{_name}: {message.split(': ', 1)[-1]}")

            say("starting")
            try:
                metrics = _trainer(name)(url=url, models_dir=models_dir, progress=say)
                result = ModelResult(name, time.perf_counter() - start, dict(metrics or {}))
            except Exception as exc:  # noqa: BLE001 - reported per model, then raised
                logger.exception("training %s failed", name)
                result = ModelResult(name, time.perf_counter() - start, error=str(exc) or
                                     type(exc).__name__)
                results[name] = result
                update(name, f"[red]{name}: failed ({result.error})")
                update(name, None)
                if stop:
                    err = TrainingError(f"{name}: {result.error}")
                    err.results = results  # type: ignore[attr-defined]
                    raise err from exc
                continue
            results[name] = result
            update(name, f"[green]{name}: done in {result.seconds:.1f} s")
            update(name, None)
            logger.info("trained %s in %.1f s", name, result.seconds)

    if progress is True:
        with _rich_progress(names) as update:
            run(update)
    else:
        sink = progress if callable(progress) else None

        def update(_name: str, message: str | None) -> None:
            if sink is not None and message is not None:
                sink(message)

        run(update)
    # Writers of per-customer rows replace them all: give the customers without a
    # product purchase their defaults again, unless one of those writers failed.
    cold = [name for name in ("segments", "churn", "recommendations") if name in results]
    if cold and all(results[name].ok for name in cold):
        from crm_ml import coldstart
        from crm_ml.db import session_scope

        with session_scope(url) as s:
            coldstart.fill(session=s)
    failed = [r for r in results.values() if not r.ok]
    if failed:
        err = TrainingError("; ".join(f"{r.name}: {r.error}" for r in failed))
        err.results = results  # type: ignore[attr-defined]
        raise err
    return results
