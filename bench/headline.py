"""The contract keys of ``bench/results.json`` (DESIGN.md) and the CPU ceilings."""

from __future__ import annotations

import logging
import os
from typing import Any

from bench.plan import PLAIN

logger = logging.getLogger(__name__)


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
        "nlu_parse_p50_ms_with_encoder": get(results, "nlu_latency", "parse",
                                             "p50_ms_with_encoder"),
        "nlu_parse_p50_ms_without_encoder": get(results, "nlu_latency", "parse",
                                                "p50_ms_without_encoder"),
        "two_process_throughput_c32": get(scale, "two_processes", "throughput_msgs_per_s"),
        "one_process_throughput_c32": get(scale, "one_process", "throughput_msgs_per_s"),
        "two_process_sticky_throughput_c32": get(scale, "two_processes_sticky",
                                                 "throughput_msgs_per_s"),
    }
    h["throughput_ratio_c32"] = ratio(h["throughput_c32"], h["stock_throughput_c32"])
    h["two_process_ratio"] = ratio(h["two_process_throughput_c32"],
                                   h["one_process_throughput_c32"])
    h["two_process_ratio_vs_direct"] = ratio(
        h["two_process_throughput_c32"], get(scale, "one_process_direct", "throughput_msgs_per_s"))
    h["sticky_ratio"] = ratio(h["two_process_sticky_throughput_c32"],
                              h["two_process_throughput_c32"])
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
        "nlu_parse_p50_ms_with_encoder": "nlu_parse_p50_ms_without_encoder: the same model "
                                         "with the encoder's vectors precomputed, interleaved",
        "two_process_ratio": "one process behind the same HAProxy, PostgreSQL tracker "
                             "store and Redis lock store (two_process_ratio_vs_direct: one "
                             "process without HAProxy)",
        "sticky_ratio": "two processes behind HAProxy hashing each sender to one process "
                        "against the same two with leastconn (scripts/haproxy_config.py "
                        "--sticky), same run, alternating rounds",
    }
    targets = {
        "throughput_ratio_c32 >= 4": (h["throughput_ratio_c32"], 4.0, "ge"),
        "p50_ms_c1_no_action <= 25": (h["p50_ms_c1_no_action"], 25.0, "le"),
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
    HAProxy, load generator, PostgreSQL, Redis) cannot pass cores x 1000 / (their
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
                              "ratio_ceiling": round(ceil_two / ceil_one, 2),
                              # the capacity model: turns one core serves, Rasa alone and
                              # with everything a turn costs (actions, HAProxy, databases)
                              "msgs_per_s_per_rasa_core": round(1000 / ms(two, "rasa"), 1),
                              "msgs_per_s_per_core_all_processes": round(1000 / ms(two), 1)}
    return out


def _dig(d: Any, *path: str) -> Any:
    """``d[path[0]][path[1]]...``, or None where a level is missing."""
    for p in path:
        d = d.get(p) if isinstance(d, dict) else None
    return d
