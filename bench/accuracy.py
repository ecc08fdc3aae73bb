"""Accuracy of both assistants: intent macro-F1, conversation tests, time per graph node."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from bench.loadgen import percentiles
from bench.plan import HOLDOUT, STORIES, say
from bench.stack import BOT_PY, BOT_RASA, ROOT

logger = logging.getLogger(__name__)


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


def nlu_latency(model: Path, out: Path) -> dict[str, Any]:
    """Parse p50 with and without the encoder, and each encoder runtime (bench.nlu_latency)."""
    run = subprocess.run([str(BOT_PY), "-m", "bench.nlu_latency", str(model), "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "RASA_TELEMETRY_ENABLED": "false",
                              "TF_CPP_MIN_LOG_LEVEL": "2", "OMP_NUM_THREADS": "1"})
    if run.returncode != 0 or not out.is_file():
        return {"error": (run.stderr or run.stdout)[-1500:]}
    return json.loads(out.read_text())
