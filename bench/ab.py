"""A/B of serving code: two source trees, one CRM, alternating load phases (app env).

Each tree (a ``git worktree`` of another commit, say) is served by its own
``rasa run`` with its own ``models/rasa/crm.tar.gz`` and the production
endpoints (SQLite tracker store, CRM event broker), beside one shared action
server, on a copy of ``var/crm.db``. The load generator alternates the trees
phase by phase, so both see the same machine; per tree it prints messages/s,
median turns with and without an action, and the Rasa process's CPU
milliseconds per turn (the steadiest figure on a shared machine).

Usage::

    git worktree add /tmp/before HEAD~1   # then link .venv-bot, models, var into it
    .venv/bin/python -m bench.ab before=/tmp/before after=. [--rounds 3] [--c 1,32]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import shutil
import tempfile
from pathlib import Path

from bench.conversations import conversation, sample_crm
from bench.loadgen import PhaseResult, run_phase, summarize
from bench.machine import cpu_seconds
from bench.prepare import copy_sqlite
from bench.stack import ROOT, Processes, Server, endpoints_yaml, server_env

logger = logging.getLogger(__name__)


def start(procs: Processes, name: str, tree: Path, actions_url: str) -> Server:
    """``rasa run`` from ``tree`` (its code first on the path, its model and credentials)."""
    wd = procs.workdir / name
    wd.mkdir()
    return procs.rasa(
        name, tree / "models/rasa/crm.tar.gz",
        endpoints_yaml(actions_url, tracker="sqlite", workdir=wd, broker=True),
        wait=False, extra_env={"PYTHONPATH": str(tree)}, cwd=tree)


async def main(args: argparse.Namespace) -> None:
    """Serve every tree, then alternate load phases over them and print one line per tree."""
    wd = Path(tempfile.mkdtemp(prefix="crm-ab-"))
    copy_sqlite(ROOT / "var" / "crm.db", wd / "crm.db")
    url = f"sqlite:///{wd / 'crm.db'}"
    secret = secrets.token_hex(16)
    procs = Processes(wd, server_env(url, secret, ROOT / "models"))
    try:
        actions = procs.actions("actions")
        servers = {}
        for spec in args.trees:
            name, tree = spec.split("=", 1)
            servers[name] = start(procs, name, Path(tree).resolve(), f"{actions.url}/webhook")
        for server in servers.values():
            procs.wait(server)
        crm = sample_crm(url)

        def make(n: int) -> object:
            return conversation(n, crm, secret)

        first = 0
        for c in (int(x) for x in args.c.split(",")):
            for server in servers.values():  # warm-up, not counted
                await run_phase(server.url, make, name=f"warm-{server.name}-c{c}",
                                concurrency=c, warmup=0, duration=2, first_id=first)
                first += 1000
            phases: dict[str, list[PhaseResult]] = {name: [] for name in servers}
            cpu = dict.fromkeys(servers, 0.0)
            for r in range(args.rounds):
                for name, server in servers.items():
                    before = cpu_seconds(server.proc.pid)
                    phases[name].append(await run_phase(
                        server.url, make, name=f"{name}-c{c}-r{r}", concurrency=c, warmup=1,
                        duration=args.duration, first_id=first))
                    cpu[name] += cpu_seconds(server.proc.pid) - before
                    first += 1000
            for name, got in phases.items():
                s = summarize(got)
                turns = sum(len(p.turns) for p in got)
                print(f"c{c} {name:>10}: {s['throughput_msgs_per_s']:6.1f} msg/s, median "
                      f"{s['latency_ms_no_action']['p50']} ms without an action, "
                      f"{s['latency_ms_action']['p50']} ms with one; Rasa CPU "
                      f"{1000 * cpu[name] / turns:.2f} ms/turn; as scripted "
                      f"{s['replies_as_scripted']}, errors {s['errors']}", flush=True)
    finally:
        procs.stop_all()
        shutil.rmtree(wd, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("trees", nargs="+", help="name=path of a source tree")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0, help="measured s per phase")
    parser.add_argument("--c", default="1,32", help="concurrent users, comma-separated")
    asyncio.run(main(parser.parse_args()))
