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
   server) behind HAProxy (scripts/haproxy_config.py); throughput of each,
   every sender's replies and its stored conversation checked for order, and
   the cores busy (ours, PostgreSQL and Redis, the rest of the machine).
8. **crm_ml figures.** Batch scoring against scikit-learn's plain pipeline,
   forecasting against pmdarima's auto_arima (:mod:`bench.crm_figures`).

Writes ``bench/results.json`` and prints a table. Every figure names its
baseline; both are measured in this run.

Where each step lives: :mod:`bench.plan` (what a run measures, paths),
:mod:`bench.prepare` (steps 1-2), :mod:`bench.stack` (the processes of step 3),
:mod:`bench.phases` (steps 4 and 7), :mod:`bench.accuracy` (steps 5-6),
:mod:`bench.machine` (CPU and load readings), :mod:`bench.headline` (the
contract keys) and :mod:`bench.report` (the table).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import platform
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import pg, report
from bench.accuracy import conversation_tests, labelled_texts, nlu_latency, node_profile
from bench.conversations import CRMSample, conversation, sample_crm
from bench.headline import headline
from bench.machine import git_state, loadavg
from bench.phases import scaling, single_process
from bench.plan import BOTS, QUICK, RESULTS, STORIES, Plan, say
from bench.prepare import prepare_crm, train_assistants
from bench.stack import ROOT, Processes, server_env

logger = logging.getLogger(__name__)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """One whole run (steps 1-8 above); the results with the headline keys first."""
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
            say("NLU parse with and without the sentence encoder; each encoder runtime")
            results["nlu_latency"] = nlu_latency(models["ours"], workdir / "nlu-latency.json")
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
    """Command line of ``python -m bench``: run, write the results file, print the table."""
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
    """JSON for the numpy scalars and paths in the results."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value).__name__)
