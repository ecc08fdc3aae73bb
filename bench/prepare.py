"""The benchmark's CRM and its two assistants (ours and stock Rasa), trained from scratch."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.plan import CACHE, Plan, say
from bench.stack import BOT_PY, BOT_RASA, ROOT

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- CRM


def copy_sqlite(src: Path, dst: Path) -> None:
    """A consistent copy of a live SQLite database (WAL included)."""
    with sqlite3.connect(src) as source, sqlite3.connect(dst) as target:
        source.backup(target)


def missing_models(url: str) -> list[str]:
    """The crm_ml models whose scores the scripts need and the CRM lacks."""
    from sqlalchemy import func, select

    from crm_ml.db import models as m
    from crm_ml.db import session_scope

    need = {"segments": m.Segment, "leads": m.LeadScore, "churn": m.ChurnScore}
    with session_scope(url) as s:
        return [name for name, table in need.items()
                if not s.scalar(select(func.count()).select_from(table))]


def prepare_crm(plan: Plan, workdir: Path, results: dict[str, Any]) -> tuple[str, Path]:
    """Build the benchmark's CRM; return its URL and the models directory it was scored with."""
    from bench import crm_figures

    db = workdir / "crm.db"
    url = f"sqlite:///{db}"
    models_dir = workdir / "models"
    if plan.crm_full:
        say("loading the datasets into an empty CRM (timed)")
        results["crm_load"] = crm_figures.load_throughput(url)
        say(f"  {results['crm_load']['rows_per_s']:,} rows/s; training every crm_ml model")
        results["crm_training_s"] = crm_figures.train_models(url, models_dir)
        say(f"  trained in {results['crm_training_s']['total']} s")
        return url, models_dir
    source = ROOT / "var" / "crm.db"
    if source.is_file():
        say(f"copying {source.relative_to(ROOT)}")
        copy_sqlite(source, db)
    else:
        say("no var/crm.db: loading the datasets")
        results["crm_load"] = crm_figures.load_throughput(url)
    missing = missing_models(url)
    if missing:
        say(f"training {', '.join(missing)} (the scripts need their scores)")
        results["crm_training_s"] = crm_figures.train_models(url, models_dir, ",".join(missing))
    else:
        models_dir = Path(os.environ.get("CRM_MODELS_DIR", ROOT / "models"))
    return url, models_dir


# --------------------------------------------------------------------------- Rasa models


def stock_config_text() -> str:
    """Rasa 3.6's default configuration: what ``rasa init``'s commented config runs with."""
    found = sorted((ROOT / ".venv-bot" / "lib").glob(
        "python3*/site-packages/rasa/engine/recipes/config_files/default_config.yml"))
    if not found:
        raise FileNotFoundError("Rasa's default_config.yml not found in .venv-bot")
    return found[0].read_text()


def training_inputs_hash(config_text: str) -> str:
    """Hash of a configuration, the domain, the training data and the Rasa version."""
    h = hashlib.sha256(config_text.encode())
    for part in sorted((ROOT / "domain").glob("*.yml")):
        h.update(part.read_bytes())
    for path in sorted((ROOT / "data").rglob("*.yml")):
        h.update(str(path.relative_to(ROOT)).encode())
        h.update(path.read_bytes())
    version = subprocess.run([str(BOT_PY), "-c", "import rasa; print(rasa.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    h.update(version.encode())
    return h.hexdigest()[:16]


def sentiment_models_dir(crm_models: Path) -> Path:
    """Where ``rasa train`` finds the sentiment artifact (the project's, as ``make train``)."""
    project = Path(os.environ.get("CRM_MODELS_DIR", ROOT / "models"))
    return project if (project / "sentiment" / "LATEST").is_file() else crm_models


def rasa_train(name: str, config: Path, out: Path, cache: Path, models_dir: Path) -> float:
    """``rasa train`` from scratch (an empty training cache); return its wall time."""
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2",
           "RASA_CACHE_DIRECTORY": str(cache), "CRM_MODELS_DIR": str(models_dir)}
    log = out.parent / f"train-{name}.log"
    start = time.perf_counter()
    with log.open("w") as fh:
        run = subprocess.run(
            [str(BOT_RASA), "train", "--config", str(config), "--domain", "domain",
             "--data", "data", "--out", str(out), "--fixed-model-name", name, "--quiet"],
            cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    if run.returncode != 0:
        raise RuntimeError(f"rasa train {name} failed:\n{log.read_text()[-3000:]}")
    return time.perf_counter() - start


def train_assistants(workdir: Path, crm_models: Path, retrain_stock: bool,
                     results: dict[str, Any], stock_model: Path | None = None
                     ) -> dict[str, Path]:
    """Train ours and take stock from the cache (or train it); return both model files."""
    models_dir = sentiment_models_dir(crm_models)
    out = workdir / "rasa"
    out.mkdir()
    say("training ours (config.yml) from scratch")
    ours_s = rasa_train("ours", ROOT / "config.yml", out, workdir / "cache-ours", models_dir)
    stock_cfg = workdir / "stock-config.yml"
    stock_cfg.write_text(stock_config_text())
    key = training_inputs_hash(stock_cfg.read_text())
    cached, meta = CACHE / f"stock-{key}.tar.gz", CACHE / f"stock-{key}.json"
    if stock_model is not None:
        say(f"stock model given: {stock_model}")
        cached, meta = stock_model, stock_model.with_suffix("").with_suffix(".json")
        stock_s = json.loads(meta.read_text())["training_s"] if meta.is_file() else float("nan")
        from_cache = True
    elif cached.is_file() and meta.is_file() and not retrain_stock:
        stock_s = json.loads(meta.read_text())["training_s"]
        say(f"stock model from the cache ({cached.relative_to(ROOT)}, trained in "
            f"{stock_s:.0f} s when its inputs were the same)")
        from_cache = True
    else:
        say("training stock (Rasa's default config) from scratch: 10+ minutes on 2 cores")
        stock_s = rasa_train("stock", stock_cfg, out, workdir / "cache-stock", models_dir)
        CACHE.mkdir(parents=True, exist_ok=True)
        shutil.copy2(out / "stock.tar.gz", cached)
        meta.write_text(json.dumps({"training_s": round(stock_s, 1), "inputs": key,
                                    "trained_at": dt.datetime.now().isoformat(timespec="seconds")}))
        from_cache = False
    results["rasa_training"] = {
        "ours_s": round(ours_s, 1), "stock_s": round(stock_s, 1),
        "stock_from_cache": from_cache, "stock_inputs_hash": key,
        "ratio_stock_over_ours": round(stock_s / ours_s, 1),
        "baseline": "stock: Rasa 3.6 default config on the same domain and data",
    }
    return {"ours": out / "ours.tar.gz",
            "stock": cached if from_cache else out / "stock.tar.gz"}
