"""``make bench``: our assistant against stock Rasa, side by side, in one run.

What one run does (``python -m bench``; ``--quick`` for a smoke run):

1. **CRM.** Loads the public datasets into an empty SQLite CRM in a temporary
   directory (timed: the loader's rows/s), then trains every crm_ml model on
   it (``crm-ml train all``, seconds per model). ``--quick`` copies
   ``var/crm.db`` instead and trains only what the scripts need and it lacks.
2. **Two assistants, same domain and data.** Trains ours (``config.yml``)
   from scratch, and the stock one: Rasa 3.6's default configuration, what
   ``rasa init`` leaves in force (DIET, ResponseSelector, TED and
   UnexpecTED, 100 epochs each). The stock model is cached under
   ``var/bench/`` by a hash of its inputs (it takes 10+ minutes to train on
   two cores); ``--retrain-stock`` trains it again.
3. **Serving, as ``make run`` does.** For each assistant a ``rasa run`` with
   the project's ``credentials.yml`` (REST channel) and its own action
   server, against that CRM, with the production endpoints (SQL tracker store
   in a SQLite file, the CRM event broker); and a second pair with an
   in-memory tracker and no broker, to show what persistence costs.
4. **Load.** A closed-loop generator (asyncio + httpx, :mod:`bench.loadgen`)
   runs scripted conversations (:mod:`bench.conversations`) at 1 and 32
   concurrent users, ours and stock alternating in rounds so that both see the
   same machine; warm-up excluded; every reply checked against its script.
5. **Accuracy.** Intent macro-F1 of both on the held-out NLU file (never in
   training) and on the users' own words of the conversation tests; ``rasa
   test core`` on ``tests/test_stories.yml`` for both.
6. **Where the time goes.** Milliseconds per graph node of both models,
   in-process (:mod:`bench.profile_nodes`).
7. **Scaling.** Tracker store and CRM on PostgreSQL (:mod:`bench.pg`), Redis
   lock store, one and then two Rasa processes (each with its own action
   server) behind the sticky proxy (:mod:`bench.proxy`); throughput of each,
   every sender's replies and its stored conversation checked for order, and
   the cores busy (ours, PostgreSQL and Redis, the rest of the machine).
8. **crm_ml figures.** Batch scoring against scikit-learn's plain pipeline,
   forecasting against pmdarima's auto_arima (:mod:`bench.crm_figures`).

Writes ``bench/results.json`` and prints a table. Every figure names its
baseline; both are measured in this run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import logging
import os
import platform
import resource
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench import pg, report
from bench.conversations import CRMSample, conversation, sample_crm
from bench.loadgen import PhaseResult, order_check, percentiles, run_phase, summarize
from bench.stack import (
    BOT_PY,
    BOT_RASA,
    ROOT,
    Processes,
    Server,
    endpoints_yaml,
    server_env,
)

logger = logging.getLogger("bench")

CACHE = ROOT / "var" / "bench"
RESULTS = ROOT / "bench" / "results.json"
HOLDOUT = ROOT / "tests" / "data" / "nlu_holdout.yml"
STORIES = ROOT / "tests" / "test_stories.yml"
BOTS = ("ours", "stock")
PLAIN = "ours_rasa_paths"  # ours served by Rasa's own code paths (CRM_RASA_SPEEDUPS=0)
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Plan:
    """How long and how much to measure."""

    warmup_c1: float = 3.0
    warmup_c32: float = 5.0
    duration: float = 10.0  # measured seconds per phase
    rounds: int = 2  # ours/stock alternate this many times per setting
    memory_variant: bool = True
    conversation_tests: bool = True
    crm_full: bool = True
    scaling: bool = True
    node_profile: bool = True


QUICK = Plan(warmup_c1=1.0, warmup_c32=2.0, duration=4.0, rounds=1, memory_variant=False,
             conversation_tests=False, crm_full=False, scaling=True, node_profile=False)


def say(message: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return float("nan")


def own_cpu_seconds() -> float:
    """CPU seconds of this process (the load generator)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


SERVICES = ("postgres", "redis-server")


def service_cpu() -> dict[int, tuple[str, float]]:
    """pid -> (name, CPU seconds) of the database services (PostgreSQL, Redis) on this machine."""
    out: dict[int, tuple[str, float]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.find("(") + 1:text.rfind(")")]
        if name in SERVICES:
            fields = text.rsplit(")", 1)[1].split()
            out[int(stat.parent.name)] = (name, (int(fields[11]) + int(fields[12])) / CLK_TCK)
    return out


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine, from /proc/stat."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


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
    h.update((ROOT / "domain.yml").read_bytes())
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
            [str(BOT_RASA), "train", "--config", str(config), "--domain", "domain.yml",
             "--data", "data", "--out", str(out), "--fixed-model-name", name, "--quiet"],
            cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    if run.returncode != 0:
        raise RuntimeError(f"rasa train {name} failed:\n{log.read_text()[-3000:]}")
    return time.perf_counter() - start


def train_assistants(workdir: Path, crm_models: Path, retrain_stock: bool,
                     results: dict[str, Any], stock_model: Path | None = None
                     ) -> dict[str, Path]:
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


# --------------------------------------------------------------------------- NLU accuracy


def labelled_texts() -> dict[str, Any]:
    """Held-out NLU texts and the conversation tests' user texts, from the bot env."""
    if not HOLDOUT.is_file():
        say(f"no {HOLDOUT.relative_to(ROOT)}: no NLU accuracy")
        return {"holdout": [], "in_training": [], "stories": [], "stories_in_training": []}
    cmd = [str(BOT_PY), "-m", "bench.bot_tools", "--holdout", str(HOLDOUT), "--data", "data"]
    if STORIES.is_file():
        cmd += ["--stories", str(STORIES)]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "RASA_TELEMETRY_ENABLED": "false"})
    if run.returncode != 0:
        raise RuntimeError(f"bench.bot_tools failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout)


def nlu_scores(url: str, examples: list[dict[str, str]]) -> dict[str, Any]:
    """Intent macro-F1 via /model/parse (labels: true and predicted, as ``rasa test nlu``)."""
    from sklearn.metrics import accuracy_score, f1_score

    if not examples:
        return {"n": 0}
    truth, predicted, latency = [], [], []
    with httpx.Client(base_url=url, timeout=60) as client:
        for ex in examples:
            start = time.perf_counter()
            r = client.post("/model/parse", json={"text": ex["text"]})
            latency.append(1000 * (time.perf_counter() - start))
            r.raise_for_status()
            truth.append(ex["intent"])
            predicted.append(((r.json().get("intent") or {}).get("name")) or "None")
    return {
        "n": len(truth),
        "macro_f1": round(float(f1_score(truth, predicted, average="macro", zero_division=0)), 4),
        "accuracy": round(float(accuracy_score(truth, predicted)), 4),
        "parse_latency_ms": percentiles(latency),
        "errors": [{"text": ex["text"], "intent": t, "predicted": p}
                   for ex, t, p in zip(examples, truth, predicted, strict=True) if t != p][:40],
    }


def conversation_tests(model: Path, out: Path, secret: str) -> dict[str, Any]:
    """``rasa test core`` on the conversation tests: action and conversation accuracy."""
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "CRM_IDENTITY_SECRET": secret,
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.perf_counter()
    run = subprocess.run([str(BOT_RASA), "test", "core", "--stories", str(STORIES),
                          "--model", str(model), "--out", str(out)],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    report_file = out / "story_report.json"
    if run.returncode != 0 or not report_file.is_file():
        return {"error": (run.stderr or run.stdout)[-1500:]}
    data = json.loads(report_file.read_text())
    conv = data.get("conversation_accuracy") or {}
    return {"conversation_accuracy": conv.get("accuracy"),
            "conversations_correct": conv.get("correct"), "conversations": conv.get("total"),
            "action_accuracy": round(float(data.get("accuracy", float("nan"))), 4),
            "seconds": round(seconds, 1)}


def node_profile(model: Path, out: Path) -> dict[str, Any]:
    """Milliseconds per graph node and outside the graph, in-process (bench.profile_nodes)."""
    run = subprocess.run([str(BOT_PY), "-m", "bench.profile_nodes", str(model), "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "RASA_TELEMETRY_ENABLED": "false",
                              "TF_CPP_MIN_LOG_LEVEL": "2"})
    if run.returncode != 0 or not out.is_file():
        return {"error": (run.stderr or run.stdout)[-1500:]}
    return json.loads(out.read_text())


# --------------------------------------------------------------------------- load phases


async def measure(servers: dict[str, Server], make: Callable[[int], Any], *, label: str,
                  concurrency: int, warmup: float, plan: Plan, first_id: int,
                  watch: dict[str, list[Server]] | None = None
                  ) -> dict[str, tuple[list[PhaseResult], dict[str, float]]]:
    """Alternate the servers over ``plan.rounds`` rounds; pool each one's phases.

    Returns, per server name, its phases and the CPU seconds its processes
    (``watch``: the server itself by default) used during them.
    """
    out: dict[str, tuple[list[PhaseResult], dict[str, float]]] = {
        name: ([], {}) for name in servers}
    for r in range(plan.rounds):
        for name, server in servers.items():
            procs = (watch or {}).get(name, [server])
            before = {p.name: cpu_seconds(p.proc.pid) for p in procs}
            before["loadgen"] = own_cpu_seconds()
            busy0, total0 = machine_jiffies()
            services0 = service_cpu()
            wall0 = time.perf_counter()
            phase = await run_phase(server.url, make, name=f"{name}-{label}-r{r}",
                                    concurrency=concurrency, warmup=warmup,
                                    duration=plan.duration, first_id=first_id)
            phases, cpu = out[name]
            phases.append(phase)
            for p in procs:
                cpu[p.name] = cpu.get(p.name, 0.0) + cpu_seconds(p.proc.pid) - before[p.name]
            cpu["loadgen"] = cpu.get("loadgen", 0.0) + own_cpu_seconds() - before["loadgen"]
            busy1, total1 = machine_jiffies()
            for pid, (svc, seconds) in service_cpu().items():
                key = f"_svc_{svc}"
                cpu[key] = cpu.get(key, 0.0) + seconds - services0.get(pid, (svc, 0.0))[1]
            cpu["_machine_busy_s"] = cpu.get("_machine_busy_s", 0.0) + (
                (busy1 - busy0) / (total1 - total0) * (os.cpu_count() or 1)
                * (time.perf_counter() - wall0) if total1 > total0 else 0.0)
            cpu["_wall_s"] = cpu.get("_wall_s", 0.0) + time.perf_counter() - wall0
            first_id += 1000
            await asyncio.sleep(0.5)
    return out


def with_cpu(summary: dict[str, Any], phases: list[PhaseResult], cpu: dict[str, float]
             ) -> dict[str, Any]:
    """Add CPU milliseconds per turn (all turns the phases sent) of each watched process."""
    turns = sum(len(p.turns) for p in phases)
    ours = {name: s for name, s in cpu.items() if not name.startswith("_")}
    summary["cpu_ms_per_turn"] = {name: round(1000 * s / turns, 2) if turns else None
                                  for name, s in ours.items()}
    wall = cpu.get("_wall_s") or 0.0
    services = {name[5:]: s for name, s in cpu.items() if name.startswith("_svc_")}
    if turns:
        summary["cpu_ms_per_turn"].update(
            {name: round(1000 * s / turns, 2) for name, s in services.items()})
    if wall:
        bench = sum(ours.values()) / wall
        machine = cpu.get("_machine_busy_s", 0.0) / wall
        svc = sum(services.values()) / wall
        summary["cores_busy"] = {
            "machine": round(machine, 2), "benchmark_processes": round(bench, 2),
            "postgres_and_redis": round(svc, 2),
            "everything_else": round(max(machine - bench - svc, 0.0), 2),
            "note": "everything_else: other workers on this shared machine, the kernel"}
    return summary


async def single_process(plan: Plan, procs: Processes, models: dict[str, Path],
                         make: Callable[[int], Any], texts: dict[str, Any],
                         results: dict[str, Any]) -> None:
    """Ours vs stock, one Rasa process each, at 1 and 32 users (production endpoints)."""
    actions = {bot: procs.actions(f"actions-{bot}") for bot in BOTS}
    variants = {"prod": ("sqlite", True)}
    if plan.memory_variant:
        variants["memory"] = ("memory", False)
    servers: dict[str, dict[str, Server]] = {v: {} for v in variants}
    for variant, (tracker, broker) in variants.items():
        for bot in BOTS:
            wd = procs.workdir / f"{bot}-{variant}"
            wd.mkdir(exist_ok=True)
            # The baseline runs Rasa's own REST channel and SQL tracker store; both
            # keep the CRM event broker (every message in interactions is a feature).
            endpoints = endpoints_yaml(f"{actions[bot].url}/webhook", tracker=tracker,
                                       workdir=wd, broker=broker, stock_store=bot == "stock")
            servers[variant][bot] = procs.rasa(f"rasa-{bot}-{variant}", models[bot], endpoints,
                                               wait=False, stock_channels=bot == "stock")
    # Ours with Rasa's own serving code (its SQL tracker store, dask graph runner,
    # per-call validator and HTTP session; CRM_RASA_SPEEDUPS=0): what bot/speedups.py
    # and bot/tracker_store.py add on top of the pipeline and policies.
    wd = procs.workdir / "ours-rasa-paths"
    wd.mkdir(exist_ok=True)
    servers["prod"][PLAIN] = procs.rasa(
        "rasa-ours-rasa-paths", models["ours"],
        endpoints_yaml(f"{actions['ours'].url}/webhook", tracker="sqlite", workdir=wd,
                       broker=True, stock_store=True),
        wait=False, extra_env={"CRM_RASA_SPEEDUPS": "0"})
    say("starting " + ", ".join(s.name for v in servers.values() for s in v.values()))
    started = time.perf_counter()
    for v in servers.values():
        for s in v.values():
            procs.wait(s)
    results["startup_s_all_rasa_servers"] = round(time.perf_counter() - started, 1)

    say("NLU: held-out intents through /model/parse")
    holdout = [h for h in texts["holdout"] if h["text"] not in set(texts["in_training"])]
    stories = [s for s in texts["stories"] if s["text"] not in set(texts["stories_in_training"])]
    nlu: dict[str, Any] = {"holdout_file": str(HOLDOUT.relative_to(ROOT)),
                           "holdout_texts_also_in_training": len(texts["in_training"]),
                           "story_texts_in_training_left_out": len(texts["stories_in_training"])}
    for bot in BOTS:
        url = servers["prod"][bot].url
        nlu[bot] = {"holdout": nlu_scores(url, holdout), "story_texts": nlu_scores(url, stories)}
    results["nlu"] = nlu

    figures: dict[str, Any] = {}
    first_id = 0
    for variant in variants:
        vservers = servers[variant]
        vwatch = {bot: [vservers[bot], actions[bot]] for bot in BOTS}
        if PLAIN in vservers:
            vwatch[PLAIN] = [vservers[PLAIN], actions["ours"]]
        for c, warmup in ((1, plan.warmup_c1), (32, plan.warmup_c32)):
            say(f"load: {variant} endpoints, {c} concurrent, ours and stock alternating "
                f"({plan.rounds} x {plan.duration:.0f} s each, after {warmup:.0f} s warm-up)")
            got = await measure(vservers, make, label=f"{variant}-c{c}", concurrency=c,
                                warmup=warmup, plan=plan, first_id=first_id, watch=vwatch)
            first_id += 100_000
            for bot, (phases, cpu) in got.items():
                figures.setdefault(variant, {}).setdefault(bot, {})[f"c{c}"] = with_cpu(
                    summarize(phases), phases, cpu)
                say(f"  {bot}: {figures[variant][bot][f'c{c}']['throughput_msgs_per_s']} msgs/s,"
                    f" p50 {figures[variant][bot][f'c{c}']['latency_ms']['p50']} ms")
    results["load"] = figures
    results["peak_rss_mb"] = {s.name: round(s.peak_rss_mb() or 0, 1)
                              for v in servers.values() for s in v.values()}
    results["peak_rss_mb"].update({a.name: round(a.peak_rss_mb() or 0, 1)
                                   for a in actions.values()})
    for v in servers.values():
        for s in v.values():
            procs.stop(s)
    for a in actions.values():
        procs.stop(a)


# --------------------------------------------------------------------------- scaling


def stored_order(db: str, phases: list[PhaseResult]) -> dict[str, Any]:
    """Each sender's user messages as stored in the tracker store, against its script."""
    import psycopg

    sent: dict[str, list[str]] = {}
    for p in phases:
        for t in sorted(p.turns, key=lambda t: t.start):
            sent.setdefault(t.sender, []).append(p.scripts[t.sender].turns[t.index].text)
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{db}") as c:
        rows = c.execute("SELECT sender_id, data FROM events WHERE type_name = 'user' "
                         "ORDER BY id").fetchall()
    stored: dict[str, list[str]] = {}
    for sender, data in rows:
        stored.setdefault(sender, []).append(json.loads(data).get("text") or "")
    wrong = [s for s, texts in sent.items() if stored.get(s, [])[:len(texts)] != texts]
    return {"senders": len(sent), "senders_stored_out_of_order_or_missing": len(wrong),
            "examples": wrong[:3]}


async def scaling(plan: Plan, procs: Processes, model: Path, crm_url: str,
                  make: Callable[[int], Any], results: dict[str, Any]) -> None:
    """One vs two Rasa processes (PostgreSQL tracker store and CRM, Redis locks), same proxy."""
    tag = secrets.token_hex(4)
    db, crm_db, prefix = f"crm_bench_{tag}", f"crm_bench_{tag}_crm", f"crm-bench-{tag}:"
    pg.create_db(db)
    pg.create_db(crm_db)
    try:
        say("copying the CRM to PostgreSQL")
        start = time.perf_counter()
        copy = pg.copy_crm(crm_url, crm_db)
        copy_s = time.perf_counter() - start
        env = {"CRM_DATABASE_URL": copy["url"]}
        actions = [procs.actions(f"actions-scale-{i}", env) for i in (1, 2)]
        rasas = [procs.rasa(f"rasa-scale-{i}", model, endpoints_yaml(
            f"{a.url}/webhook", tracker="postgres", workdir=procs.workdir,
            postgres_db=db, redis_prefix=prefix), wait=False, extra_env=env)
            for i, a in zip((1, 2), actions, strict=True)]
        say("starting two Rasa processes (PostgreSQL tracker store, Redis lock store)")
        for r in rasas:
            procs.wait(r)
        one = procs.proxy("proxy-one", rasas[:1])
        two = procs.proxy("proxy-two", rasas)
        servers = {"one_process": one, "two_processes": two, "one_process_direct": rasas[0]}
        watch = {"one_process": [one, rasas[0], actions[0]],
                 "two_processes": [two, *rasas, *actions],
                 "one_process_direct": [rasas[0], actions[0]]}
        say(f"load: 32 concurrent through the proxy to one and to two processes "
            f"({plan.rounds} x {plan.duration:.0f} s each)")
        got = await measure(servers, make, label="scale-c32", concurrency=32,
                            warmup=plan.warmup_c32, plan=plan, first_id=10_000_000, watch=watch)
        out: dict[str, Any] = {"tracker_store": "SQL on PostgreSQL 127.0.0.1:5432",
                               "crm": f"PostgreSQL copy of the CRM ({sum(copy['rows'].values()):,}"
                                      f" rows copied in {copy_s:.0f} s)",
                               "lock_store": "Redis 127.0.0.1:6379",
                               "routing": "bench/proxy.py: crc32(sender) % processes",
                               "action_servers": "one per Rasa process"}
        for name, (phases, cpu) in got.items():
            out[name] = with_cpu(summarize(phases), phases, cpu)
            say(f"  {name}: {out[name]['throughput_msgs_per_s']} msgs/s")
        two_phases = got["two_processes"][0]
        out["order_check_replies"] = order_check(two_phases)
        out["order_check_stored"] = stored_order(db, two_phases)
        stats = httpx.get(f"{two.url}/proxy/stats", timeout=10).json()
        out["requests_per_process"] = stats
        results["scaling"] = out
        results["peak_rss_mb"].update({r.name: round(r.peak_rss_mb() or 0, 1) for r in rasas})
        for s in (one, two, *rasas, *actions):
            procs.stop(s)
    finally:
        pg.drop_db(db)
        pg.drop_db(crm_db)
        pg.clear_redis(prefix)


# --------------------------------------------------------------------------- assembling


def headline(results: dict[str, Any]) -> dict[str, Any]:
    """The contract keys (DESIGN.md) and the issue's targets, each with its baseline."""
    load = results.get("load", {}).get("prod", {})
    ours, stock = load.get("ours", {}), load.get("stock", {})
    nlu = results.get("nlu", {})
    scale = results.get("scaling", {})

    def get(d: dict[str, Any], *path: str) -> Any:
        for p in path:
            if not isinstance(d, dict):
                return None
            d = d.get(p)
        return d

    def ratio(a: Any, b: Any) -> float | None:
        return round(a / b, 3) if isinstance(a, int | float) and b else None

    h: dict[str, Any] = {
        "throughput_c32": get(ours, "c32", "throughput_msgs_per_s"),
        "stock_throughput_c32": get(stock, "c32", "throughput_msgs_per_s"),
        "p50_ms_c1_no_action": get(ours, "c1", "latency_ms_no_action", "p50"),
        "p50_ms_c1_action": get(ours, "c1", "latency_ms_action", "p50"),
        "stock_p50_ms_c1_no_action": get(stock, "c1", "latency_ms_no_action", "p50"),
        "stock_p50_ms_c1_action": get(stock, "c1", "latency_ms_action", "p50"),
        "nlu_macro_f1": get(nlu, "ours", "holdout", "macro_f1"),
        "stock_nlu_macro_f1": get(nlu, "stock", "holdout", "macro_f1"),
        "ours_rasa_paths_throughput_c32": get(load.get(PLAIN, {}), "c32",
                                              "throughput_msgs_per_s"),
        "two_process_throughput_c32": get(scale, "two_processes", "throughput_msgs_per_s"),
        "one_process_throughput_c32": get(scale, "one_process", "throughput_msgs_per_s"),
    }
    h["throughput_ratio_c32"] = ratio(h["throughput_c32"], h["stock_throughput_c32"])
    h["two_process_ratio"] = ratio(h["two_process_throughput_c32"],
                                   h["one_process_throughput_c32"])
    h["two_process_ratio_vs_direct"] = ratio(
        h["two_process_throughput_c32"], get(scale, "one_process_direct", "throughput_msgs_per_s"))
    h["cpu_ceilings"] = cpu_ceilings(results)
    baselines = {
        "throughput_c32": "stock_throughput_c32 (ratio: throughput_ratio_c32)",
        "stock_throughput_c32": "Rasa 3.6 default config (what `rasa init` runs) served by "
                                "stock Rasa (its REST channel and SQL tracker store), same "
                                "domain, data, CRM event broker and action server, same run, "
                                "alternating rounds",
        "ours_rasa_paths_throughput_c32": "ours (same model) served by Rasa's own code paths "
                                          "(CRM_RASA_SPEEDUPS=0, Rasa's SQL tracker store)",
        "p50_ms_c1_no_action": "stock_p50_ms_c1_no_action",
        "p50_ms_c1_action": "stock_p50_ms_c1_action",
        "nlu_macro_f1": "stock_nlu_macro_f1, same held-out texts",
        "two_process_ratio": "one process behind the same sticky proxy, PostgreSQL tracker "
                             "store and Redis lock store (two_process_ratio_vs_direct: one "
                             "process without the proxy)",
    }
    targets = {
        "throughput_ratio_c32 >= 5": (h["throughput_ratio_c32"], 5.0, "ge"),
        "p50_ms_c1_no_action <= 15": (h["p50_ms_c1_no_action"], 15.0, "le"),
        "p50_ms_c1_action <= 40": (h["p50_ms_c1_action"], 40.0, "le"),
        "nlu_macro_f1 >= stock - 0.01": (h["nlu_macro_f1"],
                                         (h["stock_nlu_macro_f1"] or 0) - 0.01, "ge"),
        "two_process_ratio >= 1.6": (h["two_process_ratio"], 1.6, "ge"),
    }
    h["targets"] = {
        name: {"value": v, "target": round(t, 4),
               "met": None if v is None else (v >= t if op == "ge" else v <= t)}
        for name, (v, t, op) in targets.items()}
    h["baselines"] = baselines
    return h


def cpu_ceilings(results: dict[str, Any]) -> dict[str, Any]:
    """What the CPU cost per turn allows on this machine's 2 cores were they idle.

    One Rasa process runs on one core, so its messages/s cannot pass
    1000 / (its CPU ms per turn); all processes together (Rasa, action servers,
    proxy, load generator, PostgreSQL, Redis) cannot pass cores x 1000 / (their
    summed CPU ms per turn). Measured CPU per turn is far less disturbed by
    other work on a shared machine than wall-clock throughput.
    """
    cores = os.cpu_count() or 1
    out: dict[str, Any] = {"cores": cores}

    def ms(phase: dict[str, Any] | None, prefix: str = "") -> float:
        return sum(v for k, v in ((phase or {}).get("cpu_ms_per_turn") or {}).items()
                   if v and k.startswith(prefix))

    for variant, load in results.get("load", {}).items():
        o, s = ms(_dig(load, "ours", "c32"), "rasa"), ms(_dig(load, "stock", "c32"), "rasa")
        if o and s:
            out[f"{variant}_c32"] = {
                "ours_rasa_cpu_ms_per_turn": round(o, 2), "stock_rasa_cpu_ms_per_turn": round(s, 2),
                "ours_ceiling_msgs_per_s": round(min(1000 / o, cores * 1000 / ms(
                    _dig(load, "ours", "c32"))), 1),
                "stock_ceiling_msgs_per_s": round(min(1000 / s, cores * 1000 / ms(
                    _dig(load, "stock", "c32"))), 1),
                "ratio_ceiling": round(s / o, 2)}
    scale = results.get("scaling", {})
    one, two = scale.get("one_process"), scale.get("two_processes")
    if one and two and ms(one) and ms(two):
        ceil_one = min(1000 / ms(one, "rasa"), cores * 1000 / ms(one))
        ceil_two = min(2 * 1000 / ms(two, "rasa"), cores * 1000 / ms(two))
        out["scaling_c32"] = {"one_process_ceiling_msgs_per_s": round(ceil_one, 1),
                              "two_processes_ceiling_msgs_per_s": round(ceil_two, 1),
                              "ratio_ceiling": round(ceil_two / ceil_one, 2)}
    return out


def _dig(d: Any, *path: str) -> Any:
    for p in path:
        d = d.get(p) if isinstance(d, dict) else None
    return d


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD"),
            "dirty_files": len(git("status", "--porcelain").splitlines())}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    plan = QUICK if args.quick else Plan()
    if args.duration:
        plan = Plan(**{**plan.__dict__, "duration": args.duration})
    if args.rounds:
        plan = Plan(**{**plan.__dict__, "rounds": args.rounds})
    if args.no_scaling:
        plan = Plan(**{**plan.__dict__, "scaling": False})
    started = time.perf_counter()
    results: dict[str, Any] = {
        "meta": {"started_at": dt.datetime.now().isoformat(timespec="seconds"),
                 "quick": args.quick, "plan": plan.__dict__, "cpus": os.cpu_count(),
                 "loadavg_at_start": loadavg(), "python": platform.python_version(),
                 **git_state()}}
    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    say(f"work directory {workdir}")
    secret = secrets.token_hex(16)
    procs = Processes(workdir, {})
    try:
        crm_url, crm_models = prepare_crm(plan, workdir, results)
        procs.env = server_env(crm_url, secret, crm_models)
        models = train_assistants(workdir, crm_models, args.retrain_stock, results,
                                  args.stock_model)
        texts = labelled_texts()
        crm: CRMSample = sample_crm(crm_url)

        def make(n: int) -> Any:
            return conversation(n, crm, secret)

        await single_process(plan, procs, models, make, texts, results)
        if plan.conversation_tests and STORIES.is_file():
            say("conversation tests: rasa test core on tests/test_stories.yml, both models")
            results["conversation_tests"] = {
                bot: conversation_tests(models[bot], workdir / f"core-{bot}", secret)
                for bot in BOTS}
        if plan.node_profile:
            say("where a turn goes inside Rasa: ms per graph node, both models")
            results["node_profile"] = {
                bot: node_profile(models[bot], workdir / f"profile-{bot}.json") for bot in BOTS}
        if plan.scaling:
            reason = pg.unavailable()
            if reason:
                say(f"scaling skipped: {reason}")
                results["scaling"] = {"skipped": reason}
            else:
                await scaling(plan, procs, models["ours"], crm_url, make, results)
        if plan.crm_full:
            from bench import crm_figures

            say("crm_ml: batch scoring against the plain scikit-learn pipeline")
            results["scoring"] = crm_figures.scoring_throughput(crm_url, crm_models)
            say("crm_ml: forecasting backtest against pmdarima auto_arima")
            results["forecasting"] = crm_figures.forecast_peer(crm_url)
    finally:
        procs.stop_all()
        if args.keep:
            say(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results["meta"]["loadavg_at_end"] = loadavg()
    results["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    return {**headline(results), **results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: short phases, CRM copied from var/crm.db, no "
                             "in-memory variant, conversation tests or crm_ml figures")
    parser.add_argument("--retrain-stock", action="store_true",
                        help="train the stock model even if var/bench/ has it for these inputs")
    parser.add_argument("--stock-model", type=Path,
                        help="a trained stock model to use instead of var/bench/'s")
    parser.add_argument("--duration", type=float, help="measured seconds per phase")
    parser.add_argument("--rounds", type=int, help="ours/stock alternations per setting")
    parser.add_argument("--no-scaling", action="store_true", help="skip the two-process part")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        from uvloop import run as arun
    except ImportError:
        arun = asyncio.run
    results = arun(run(args))
    args.out.write_text(json.dumps(results, indent=2, default=_json_default) + "\n")
    print(report.table(results))
    say(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value).__name__)
