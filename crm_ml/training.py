"""The skeleton every model's ``train_and_store`` shares: progress, timing, threads, storing.

Each model module (:mod:`crm_ml.scoring`, :mod:`crm_ml.churn`,
:mod:`crm_ml.segmentation`, :mod:`crm_ml.recommend`, :mod:`crm_ml.forecasting`)
trains inside :func:`training` and stores through :meth:`Training.store`::

    def train_and_store(*, url=None, models_dir=None, progress=None) -> dict:
        with training(MODEL_NAME, url=url, models_dir=models_dir, progress=progress,
                      preload=("sklearn.cluster",)) as run:
            run.say("segments: reading")
            ...                                     # read, evaluate, fit
            params["seconds"] = run.seconds         # when the model records its time
            info, n = run.store(model, metrics=metrics, data_hash=data_hash, params=params,
                                write=lambda s, version: write_rows(session=s, ...))
            run.say(f"segments: {n} rows written")
        return metrics

What the skeleton does, once for all models:

- **progress**: :attr:`Training.say` is the caller's callback, or a no-op;
- **timing**: :attr:`Training.seconds` is the wall time since the run started;
- **threads**: the run holds BLAS/OpenMP thread pools to ``threads`` (one by
  default: pools thrash on a busy 2-core machine); ``preload`` names modules to
  import first, because a limit only reaches the libraries already loaded;
- **storing**: :meth:`Training.store` saves the artifact with
  :func:`crm_ml.registry.save` and, in the same short transaction, adds its
  ``model_runs`` row and writes the model's rows to the CRM (``write``).

The data hash stays with each model (a file hash, a transaction-table hash...):
:meth:`Training.store` takes it as given.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crm_ml.registry import ArtifactInfo

__all__ = ["Progress", "Training", "training"]

logger = logging.getLogger(__name__)

#: A progress callback: gets one short message per step.
Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    """The progress callback of a run nobody watches."""


@dataclass
class Training:
    """One model's training run (made by :func:`training`).

    Attributes:
        name: Registry name of the model (``segmentation``, ``churn``...).
        url: CRM database URL (None: the configured CRM).
        models_dir: Registry root (None: the configured ``models/``).
        say: Progress callback (never None).
        started: :func:`time.perf_counter` at the start of the run.
    """

    name: str
    url: str | None = None
    models_dir: Path | None = None
    say: Progress = _quiet
    started: float = field(default_factory=time.perf_counter)

    @property
    def seconds(self) -> float:
        """Wall time since the run started, rounded to a tenth of a second."""
        return round(time.perf_counter() - self.started, 1)

    def store(self, obj: Any, *, metrics: Mapping[str, Any], data_hash: str,
              params: Mapping[str, Any] | None = None,
              extra_files: dict[str, bytes] | None = None,
              write: Callable[[Any, str], int] | None = None) -> tuple[ArtifactInfo, int | None]:
        """Save the artifact, record the run and write the model's rows, in one transaction.

        Args:
            obj: The fitted object (None: only ``extra_files`` and the metadata).
            metrics: Held-out metrics of this run.
            data_hash: sha256 of the training data.
            params: Hyperparameters and facts worth recording.
            extra_files: More files to store beside the artifact (name -> bytes).
            write: Called as ``write(session, version)`` to write the model's rows
                (scores, segments...) under the new version; returns rows written.

        Returns:
            The stored artifact's info, and what ``write`` returned (None without it).
        """
        from crm_ml import registry
        from crm_ml.db import session_scope

        with session_scope(self.url) as session:
            info = registry.save(self.name, obj, metrics=dict(metrics), data_hash=data_hash,
                                 params=dict(params or {}), models_dir=self.models_dir,
                                 session=session, extra_files=extra_files)
            written = write(session, info.version) if write is not None else None
        return info, written


@contextmanager
def training(name: str, *, url: str | None = None, models_dir: Path | None = None,
             progress: Progress | None = None, preload: Sequence[str] = (),
             threads: int = 1) -> Iterator[Training]:
    """Open a model's training run: progress, clock, thread limits (see the module doc).

    Args:
        name: Registry name of the model.
        url: CRM database URL (default: the configured CRM).
        models_dir: Registry root (default: the configured ``models/``).
        progress: Called with a short message at each step (default: nothing).
        preload: Modules to import before limiting threads (``"scipy.sparse"``...),
            so that the limit reaches the BLAS or OpenMP they load.
        threads: Threads allowed to BLAS/OpenMP pools during the run.

    Yields:
        The :class:`Training` of this run.
    """
    from threadpoolctl import threadpool_limits

    for module in preload:
        importlib.import_module(module)
    run = Training(name, url, models_dir, progress or _quiet)
    with threadpool_limits(limits=threads):
        yield run
    logger.info("%s trained in %.1f s", name, run.seconds)
