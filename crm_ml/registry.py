"""Model registry: versioned artifacts under ``models/`` and a ``model_runs`` row each.

Layout::

    models/<name>/<version>/model.joblib   the fitted object (joblib)
    models/<name>/<version>/meta.json      name, version, metrics, params, data hash, time
    models/<name>/LATEST                   the version in use

A version is ``<UTC timestamp>-<first 8 hex of the data hash>``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crm_ml.config import get_settings

__all__ = ["ArtifactInfo", "latest", "load", "save"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArtifactInfo:
    """What the registry knows of one stored artifact."""

    name: str
    version: str
    path: Path
    metrics: dict[str, Any]
    params: dict[str, Any]
    data_hash: str
    trained_at: str


def _root(models_dir: Path | None) -> Path:
    return Path(models_dir) if models_dir else get_settings().models_dir


def save(
    name: str,
    obj: Any,
    *,
    metrics: dict[str, Any],
    data_hash: str,
    params: dict[str, Any] | None = None,
    models_dir: Path | None = None,
    session: Any | None = None,
    extra_files: dict[str, bytes] | None = None,
) -> ArtifactInfo:
    """Store ``obj`` as the newest version of ``name`` and record the run.

    Args:
        name: Model name (``lead_scoring_bank``, ``sentiment``...).
        obj: The fitted object; saved with joblib unless it is None.
        metrics: Held-out metrics of this run.
        data_hash: sha256 of the training data.
        params: Hyperparameters worth recording.
        models_dir: Root folder (default: the configured ``models/``).
        session: When given, a ``model_runs`` row is added in this transaction.
        extra_files: More files to write beside the model (name -> bytes).

    Returns:
        The stored artifact's info.
    """
    now = dt.datetime.now(dt.UTC)
    version = f"{now:%Y%m%dT%H%M%S}-{data_hash[:8]}"
    folder = _root(models_dir) / name / version
    folder.mkdir(parents=True, exist_ok=True)
    if obj is not None:
        import joblib

        joblib.dump(obj, folder / "model.joblib", compress=3)
    for fname, blob in (extra_files or {}).items():
        (folder / fname).write_bytes(blob)
    meta = {
        "name": name,
        "version": version,
        "metrics": metrics,
        "params": params or {},
        "data_hash": data_hash,
        "trained_at": now.isoformat(timespec="seconds"),
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2, default=float), encoding="utf-8")
    (folder.parent / "LATEST").write_text(version, encoding="utf-8")
    if session is not None:
        from crm_ml.db.models import ModelRun

        session.add(
            ModelRun(
                name=name,
                version=version,
                metrics=json.loads(json.dumps(metrics, default=float)),
                params=json.loads(json.dumps(params or {}, default=str)),
                data_hash=data_hash,
                artifact_path=str(folder),
                trained_at=now.replace(tzinfo=None),
            )
        )
    logger.info("saved %s version %s", name, version)
    return ArtifactInfo(name, version, folder, metrics, params or {}, data_hash, meta["trained_at"])


def latest(name: str, *, models_dir: Path | None = None) -> ArtifactInfo | None:
    """Return the version of ``name`` in use, or None if it was never trained."""
    base = _root(models_dir) / name
    marker = base / "LATEST"
    if not marker.is_file():
        return None
    version = marker.read_text(encoding="utf-8").strip()
    folder = base / version
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    return ArtifactInfo(
        name, version, folder, meta["metrics"], meta.get("params", {}), meta["data_hash"],
        meta["trained_at"],
    )


def load(name: str, *, models_dir: Path | None = None) -> tuple[Any, ArtifactInfo]:
    """Load the fitted object of the version of ``name`` in use.

    Raises:
        FileNotFoundError: the model was never trained.
    """
    info = latest(name, models_dir=models_dir)
    if info is None:
        raise FileNotFoundError(f"model {name!r} is not trained yet: run `crm-ml train`")
    import joblib

    return joblib.load(info.path / "model.joblib"), info
