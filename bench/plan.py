"""What one benchmark run measures and where: the plan, the paths, the progress line."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass

from bench.stack import ROOT

logger = logging.getLogger(__name__)

CACHE = ROOT / "var" / "bench"
RESULTS = ROOT / "bench" / "results.json"
HOLDOUT = ROOT / "tests" / "data" / "nlu_holdout.yml"
STORIES = ROOT / "tests" / "stories" / "core.yml"  # the set both models were compared on
BOTS = ("ours", "stock")
PLAIN = "ours_rasa_paths"  # ours served by Rasa's own code paths (CRM_RASA_SPEEDUPS=0)


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
