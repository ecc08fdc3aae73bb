"""Load phases: ours against stock in one process each, then one against two processes."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import pg
from bench.accuracy import nlu_scores
from bench.loadgen import PhaseResult, order_check, run_phase, summarize
from bench.machine import cpu_seconds, machine_jiffies, own_cpu_seconds, service_cpu
from bench.plan import BOTS, HOLDOUT, PLAIN, Plan, say
from bench.stack import ROOT, Processes, Server, endpoints_yaml, haproxy_servers

logger = logging.getLogger(__name__)


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


def haproxy_sessions(stats_url: str | None) -> dict[str, int]:
    """Requests each Rasa replica took, from HAProxy's statistics."""
    if not stats_url:
        return {}
    return {name: int(row["stot"] or 0) for name, row in haproxy_servers(stats_url).items()}


async def scaling(plan: Plan, procs: Processes, model: Path, crm_url: str,
                  make: Callable[[int], Any], results: dict[str, Any]) -> None:
    """One vs two Rasa processes (PostgreSQL tracker store and CRM, Redis locks), behind
    HAProxy as ``make run`` puts them (leastconn, no stickiness)."""
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
        one = procs.haproxy("haproxy-one", rasas[:1])
        two = procs.haproxy("haproxy-two", rasas)
        sticky = procs.haproxy("haproxy-two-sticky", rasas, sticky=True)
        servers = {"one_process": one, "two_processes": two, "two_processes_sticky": sticky,
                   "one_process_direct": rasas[0]}
        watch = {"one_process": [one, rasas[0], actions[0]],
                 "two_processes": [two, *rasas, *actions],
                 "two_processes_sticky": [sticky, *rasas, *actions],
                 "one_process_direct": [rasas[0], actions[0]]}
        say(f"load: 32 concurrent through HAProxy to one and to two processes "
            f"({plan.rounds} x {plan.duration:.0f} s each)")
        got = await measure(servers, make, label="scale-c32", concurrency=32,
                            warmup=plan.warmup_c32, plan=plan, first_id=10_000_000, watch=watch)
        out: dict[str, Any] = {"tracker_store": "SQL on PostgreSQL 127.0.0.1:5432",
                               "crm": f"PostgreSQL copy of the CRM ({sum(copy['rows'].values()):,}"
                                      f" rows copied in {copy_s:.0f} s)",
                               "lock_store": "Redis 127.0.0.1:6379",
                               "routing": "HAProxy leastconn, no stickiness "
                                          "(scripts/haproxy_config.py)",
                               "action_servers": "one per Rasa process"}
        for name, (phases, cpu) in got.items():
            out[name] = with_cpu(summarize(phases), phases, cpu)
            say(f"  {name}: {out[name]['throughput_msgs_per_s']} msgs/s")
        two_phases = got["two_processes"][0]
        out["order_check_replies"] = order_check(two_phases)
        out["order_check_stored"] = stored_order(db, two_phases)
        out["requests_per_process"] = haproxy_sessions(two.stats_url)
        out["requests_per_process_sticky"] = haproxy_sessions(sticky.stats_url)
        results["scaling"] = out
        results["peak_rss_mb"].update({r.name: round(r.peak_rss_mb() or 0, 1) for r in rasas})
        for s in (one, two, sticky, *rasas, *actions):
            procs.stop(s)
    finally:
        pg.drop_db(db)
        pg.drop_db(crm_db)
        pg.clear_redis(prefix)
